"""Local and Ray executors produce the same run: same kept ids, tiers, rejection
reasons, manifests (byte-identical shards) and the same progress/summary numbers."""
from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray")

from thresher.config import validate
from thresher.executor.ray_executor import RayExecutor, segment_resources, stage_resources
from thresher.executor.runner import run_recipe
from thresher.executor.tasks import Plan

from ray_helpers import PLUGIN, assert_same_outputs, plugin_recipe, progress_snapshots, run_outputs


def test_ray_matches_local(ray_cluster, corpus, local_run, tmp_path):
    recipe = validate(plugin_recipe(corpus, str(tmp_path / "ray"), {"type": "ray", "num_cpus": 2}))
    executor = RayExecutor(recipe["executor"])
    snaps = progress_snapshots(executor)
    stats = run_recipe(recipe, executor=executor)
    ours = run_outputs(str(tmp_path / "ray"))
    assert_same_outputs(local_run["out"], ours)
    # the corpus really exercises every path: rejections by both stages, quarantine, three tiers
    reasons = {r[2] for r in ours["rejected"]}
    assert {"too_short", "exact_dup"} <= reasons
    assert ours["counts"]["quarantined"] > 0
    assert {k[1] for k in ours["kept"]} == {"A", "B", "C"}
    n_shards = len(stats["shard_seconds"][0])
    assert n_shards > 8
    # CPU segments ran as tasks, the model-backed segment on a pool of 2 actors (2 CPUs)
    assert executor.segment_modes == {0: "tasks", 1: "actors:2", 2: "tasks"}
    # the dedup reduce's pmap ran in Ray workers, not in this (driver) process
    pmap_pids = stats["reduces"]["1"]["stats"]["pmap_pids"]
    assert pmap_pids and os.getpid() not in pmap_pids
    assert stats["reduces"]["1"]["stats"]["dups"] == local_run["stats"]["reduces"]["1"]["stats"]["dups"]
    # progress shows the same numbers as with the local executor, segment by segment
    assert snaps == local_run["progress"]
    assert [s["shards"] for s in snaps] == [n_shards] * 3

    # the same recipe into a second dir on the same (warm) workers: the workers must not
    # reuse the first run's plan (its paths), and the second run writes its own shards
    recipe2 = validate(plugin_recipe(corpus, str(tmp_path / "ray2"), {"type": "ray", "num_cpus": 2}))
    run_recipe(recipe2, executor=RayExecutor(recipe2["executor"]))
    assert len(os.listdir(tmp_path / "ray2" / "state" / "seg-0")) == n_shards
    assert_same_outputs(ours, run_outputs(str(tmp_path / "ray2")))


def test_parallel_map_keeps_order_and_runs_plugin_functions(ray_cluster, corpus, tmp_path):
    import importlib
    recipe = validate(plugin_recipe(corpus, str(tmp_path / "o"), {"type": "ray"}))
    plug = importlib.import_module("thresher_plugin_ray_plug")  # registered by validate()
    executor = RayExecutor(recipe["executor"])
    executor._plan = Plan.build(recipe, [])
    state = tmp_path / "state"
    art = tmp_path / "art"
    state.mkdir()
    art.mkdir()
    (art / "shard-00000.p1.tsv").write_text("h1\tb\nh1\ta\nh2\tc\n")
    (art / "shard-00001.p1.tsv").write_text("h2\td\nh1\tc0\n")
    jobs = [(str(art), str(state), k) for k in (3, 1, 0, 2)]
    out = executor.parallel_map(plug._reduce_partition, jobs)
    assert [o["partition"] for o in out] == [3, 1, 0, 2]
    assert [o["dups"] for o in out] == [0, 3, 0, 0]
    assert (state / "p1.json").read_bytes() == b'{"b":"a","c0":"a","d":"c"}'
    assert executor.parallel_map(plug._reduce_partition, []) == []
    executor.close()
    assert ray.is_initialized()  # a cluster the executor did not start is left running


def test_model_backed_stages_get_actor_pools():
    from thresher.config import build_stages
    recipe = {"plugins": [PLUGIN], "stages": ["rt_len", "rt_exact", {"rt_model": {"num_cpus": 2, "num_gpus": 1}},
                                               "rt_tier"]}
    stages = build_stages(recipe)
    assert stage_resources(stages[0]) is None
    assert stage_resources(stages[2]) == {"num_cpus": 2, "num_gpus": 1}
    plan = Plan.build({**recipe, "output": {"dir": "/nonexistent"}}, [])
    assert [segment_resources(plan, i, stages) for i in range(3)] == [None, {"num_cpus": 2, "num_gpus": 1}, None]

    class GpuParam:  # a plain stage asking for a GPU in its recipe parameters
        params = {"num_gpus": 0.5}
    assert stage_resources(GpuParam()) == {"num_cpus": 1, "num_gpus": 0.5}



def test_gpu_request_nested_in_embedder_params():
    class Semantic:  # semantic_dedup / cluster carry the embedder's resources one level down
        params = {"eps": 0.05, "embedder": {"backend": "st", "num_gpus": 1, "num_cpus": 4}}

    class CpuEmbedder:
        params = {"embedder": {"num_gpus": 0.0, "num_cpus": 2}, "dry_run": True}
    assert stage_resources(Semantic()) == {"num_cpus": 4, "num_gpus": 1}
    assert stage_resources(CpuEmbedder()) is None  # CPU-only: plain tasks


def test_cuda_device_param_means_one_gpu_actor():
    class LmScorer:  # scoring.lm stages: `device: cuda` and no explicit num_gpus
        params = {"model_path": "/models/qwen", "device": "cuda:0", "batch_size": 8}

    class CpuLm:
        params = {"model_path": "/models/qwen", "device": "cpu"}
    assert stage_resources(LmScorer()) == {"num_cpus": 1, "num_gpus": 1}
    assert stage_resources(CpuLm()) is None


def test_gpu_stage_on_a_cluster_without_gpus_fails_clearly(ray_cluster, corpus, tmp_path):
    recipe = validate(plugin_recipe(corpus, str(tmp_path / "o"), {"type": "ray"}, model_params={"num_gpus": 1}))
    with pytest.raises(RuntimeError, match="GPU"):  # not an actor pool waiting forever for a GPU
        run_recipe(recipe, executor=RayExecutor(recipe["executor"]))
