"""Failures mid-run: a Ray worker killed with SIGKILL is retried by Ray; a driver killed
with SIGKILL resumes from the per-shard checkpoints.  Both end with the same output as
an uninterrupted local run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

import yaml

from thresher.config import validate
from thresher.executor.ray_executor import RayExecutor
from thresher.executor.runner import run_recipe

from ray_helpers import assert_same_outputs, plugin_recipe, run_outputs


def _kill_first_holder(hold_dir: str, killed: list, timeout: float = 60) -> None:
    """SIGKILL (by pid) the first worker that reports holding a task, then release the rest."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = sorted(int(f[:-4]) for f in os.listdir(hold_dir) if f.endswith(".pid"))
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            break
        time.sleep(0.05)
    with open(os.path.join(hold_dir, "killed"), "w") as f:
        f.write(str(killed))


@pytest.mark.parametrize("stage", ["rt_len", "rt_model"], ids=["task", "actor"])
def test_killed_worker_is_retried(ray_cluster, corpus, local_run, tmp_path, stage):
    hold = tmp_path / "hold"
    hold.mkdir()
    params = {"hold_dir": str(hold)}
    recipe = validate(plugin_recipe(corpus, str(tmp_path / "run"), {"type": "ray", "max_retries": 2},
                                    len_params=params if stage == "rt_len" else None,
                                    model_params=params if stage == "rt_model" else None))
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_holder, args=(str(hold), killed))
    killer.start()
    try:
        run_recipe(recipe, executor=RayExecutor(recipe["executor"]))
    finally:
        killer.join()
    # a Ray worker (not this driver) died inside a task, and the run still finished the same
    assert killed and killed[0] != os.getpid()
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert_same_outputs(local_run["out"], run_outputs(str(tmp_path / "run")))


def _cli(recipe_path: str, log, pidfile: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "thresher.cli", "run", recipe_path, "--executor", "ray"]
    if pidfile:
        cmd += ["--pidfile", pidfile]
    return subprocess.Popen(cmd, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)


def _wait_gone(procs: list, timeout: float) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def test_killed_driver_resumes(corpus, local_run, tmp_path):
    run_dir = tmp_path / "run"
    recipe = plugin_recipe(corpus, str(run_dir), {"type": "ray", "num_cpus": 2}, len_params={"sleep_ms": 20})
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    n_shards = len(local_run["stats"]["shard_seconds"][0])
    markers = run_dir / "state" / "seg-0"
    with open(tmp_path / "first.log", "wb") as log:
        proc = _cli(str(recipe_path), log, pidfile=str(tmp_path / "run.pid"))
        try:
            deadline = time.time() + 120
            while not (markers.is_dir() and len(os.listdir(markers)) >= 3):
                assert proc.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()
                time.sleep(0.05)
            # the driver and the local Ray cluster it started (gcs, raylet, workers)
            family = psutil.Process(proc.pid).children(recursive=True)
            assert any("raylet" in p.name() for p in family)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Ray workers sit in their own process groups; they must exit once their raylet is gone
    strays = _wait_gone(family, timeout=20)
    for p in strays:  # clean up by pid so a failure leaves nothing behind
        p.kill()
    assert not strays, [(p.pid, p.name()) for p in strays]
    done = sorted(os.listdir(markers))
    assert 3 <= len(done) < n_shards, "the driver was not killed mid-segment"
    before = {f: os.path.getmtime(markers / f) for f in done}

    with open(tmp_path / "second.log", "wb") as log:
        rc = _cli(str(recipe_path), log).wait(timeout=240)
    assert rc == 0, (tmp_path / "second.log").read_text()
    # checkpointed shards were reused, not recomputed, and the result is the uninterrupted one
    assert {f: os.path.getmtime(markers / f) for f in done} == before
    assert_same_outputs(local_run["out"], run_outputs(str(run_dir)))
