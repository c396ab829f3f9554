"""Shared fixtures for the Ray executor tests: one small local Ray cluster (2 CPUs) for
the package, the demo corpus, and the local executor's reference run."""
from __future__ import annotations

import os

import pytest

try:  # the test modules skip themselves without Ray (pytest.importorskip); a conftest must not
    import ray
except ImportError:
    ray = None


HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def ray_cluster():
    """Started once for tests/ray_executor (Ray start costs seconds); the executor sees Ray is
    initialised and uses it instead of starting its own."""
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 << 20,
                 logging_level="WARNING")
    yield
    ray.shutdown()


def pytest_runtest_teardown(item, nextitem):
    """Shut the cluster down after the last test of this folder, not at session end:
    later folders fork process pools, which is unsafe in a process holding a Ray driver.
    (A plain folder without __init__.py gets no package scope to do this.)"""
    if ray is not None and ray.is_initialized() and (nextitem is None or not str(nextitem.path).startswith(HERE + os.sep)):
        ray.shutdown()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> list[str]:
    from thresher.demo import write_demo_corpus
    return write_demo_corpus(str(tmp_path_factory.mktemp("corpus")), seed=7, n_docs=400)


@pytest.fixture(scope="session")
def local_run(corpus, tmp_path_factory):
    """The reference: the plugin recipe on the local executor (one process: forking a
    pool from a process that holds a Ray driver is not safe)."""
    from ray_helpers import plugin_recipe, progress_snapshots, run_outputs
    from thresher.config import validate
    from thresher.executor.local import LocalExecutor
    from thresher.executor.runner import run_recipe
    out = str(tmp_path_factory.mktemp("local"))
    recipe = validate(plugin_recipe(corpus, out, {"type": "local", "workers": 1}))
    executor = LocalExecutor(1)
    snaps = progress_snapshots(executor)
    stats = run_recipe(recipe, executor=executor)
    return {"out": run_outputs(out), "progress": snaps, "stats": stats}
