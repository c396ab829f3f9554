import os

import pytest

import thresher.cleaning  # noqa: F401  (registers the stages)
from thresher.pipeline import REGISTRY
from thresher.records import make_record

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def build(name, **params):
    """A set-up stage, as a worker would have it."""
    st = REGISTRY[name](**params)
    st.setup(None)
    return st


def text_rec(text):
    return make_record("text", "t", text=text)


def sft_rec(*turns):
    roles = ["user", "assistant"] * len(turns)
    return make_record("sft", "s", messages=[{"role": r, "content": c} for r, c in zip(roles, turns)])


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED):
        pytest.skip("../shared/data not present")
    return SHARED
