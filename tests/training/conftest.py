"""Fixtures for the training tests; builders live in training_util."""
from __future__ import annotations

import os

import pytest

from training_util import build_tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(str(d))
    return str(d)


@pytest.fixture(scope="session")
def tiny_tok(tiny_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="session")
def ext_cache(tmp_path_factory):
    """Shared TORCH_EXTENSIONS_DIR so DeepSpeed's CPU comm op compiles once per machine."""
    d = os.environ.get("TORCH_EXTENSIONS_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", ".cache",
                                                                "torch_extensions")
    os.makedirs(d, exist_ok=True)
    return os.path.abspath(d)
