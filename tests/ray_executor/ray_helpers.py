"""Recipe and run-comparison helpers for the Ray executor tests."""
from __future__ import annotations

import os

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(HERE, "ray_plug.py")


def plugin_recipe(corpus: list[str], out_dir: str, executor: dict, len_params: dict | None = None,
                  model_params: dict | None = None) -> dict:
    """clean (rt_len) -> dedup with a pmap reduce (rt_exact) -> score on an actor pool
    (rt_model) -> tier (rt_tier), split by tier; ~17 shards of 16 KB."""
    return {
        "name": "ray-test", "plugins": [PLUGIN],
        "inputs": [{"path": p} for p in corpus],
        "output": {"dir": out_dir, "split_by": "tier"},
        "executor": {"shard_bytes": "16KB", "batch_size": 32, **executor},
        "stages": [{"rt_len": len_params or {}}, "rt_exact", {"rt_model": model_params or {}}, "rt_tier"],
    }


def run_outputs(run_dir: str) -> dict:
    """Everything a user could tell two runs apart by (except timings and paths)."""
    from thresher.io.readers import iter_records

    def load(*parts):
        with open(os.path.join(run_dir, *parts), "rb") as f:
            return orjson.loads(f.read())

    kept = sorted((r.id, r.meta.get("tier"), orjson.dumps(r.meta, option=orjson.OPT_SORT_KEYS))
                  for r in iter_records(os.path.join(run_dir, "kept", "manifest.json")))
    rejected = sorted((r.id, r.meta["reject"]["stage"], r.meta["reject"]["reason"], r.meta["reject"].get("dup_of"))
                      for r in iter_records(os.path.join(run_dir, "rejected", "manifest.json")))
    manifest = load("manifest.json")
    return {
        "kept": kept, "rejected": rejected,
        "counts": manifest["counts"], "conserved": manifest["conserved"], "stages": manifest["stages"],
        "sinks": manifest["sinks"],
        # file lists with sha256: byte-identical shards, not just the same records
        "kept_files": load("kept", "manifest.json")["files"],
        "rejected_files": load("rejected", "manifest.json")["files"],
        "quarantine_files": load("quarantine", "manifest.json")["files"],
    }


def assert_same_outputs(a: dict, b: dict) -> None:
    assert a["conserved"] and b["conserved"]
    assert a["counts"] == b["counts"]
    assert [k[:2] for k in a["kept"]] == [k[:2] for k in b["kept"]]  # kept ids and tiers
    assert a["kept"] == b["kept"]  # ... and every signal/score in meta
    assert a["rejected"] == b["rejected"]  # ids, stage, reason, dup_of
    assert a["stages"] == b["stages"]
    for key in ("sinks", "kept_files", "rejected_files", "quarantine_files"):
        assert a[key] == b[key], key


def progress_snapshots(executor):
    """Wrap map_shards to record what the progress line showed at the end of each segment."""
    snaps = []
    inner = executor.map_shards

    def map_shards(plan, seg, shards, progress):
        results = inner(plan, seg, shards, progress)
        snaps.append({"seg": seg, "records": progress.records, "shards": progress.done_shards,
                      "kept": progress.kept, "rejected": progress.rejected,
                      "quarantined": progress.quarantined, "stage_rejects": dict(progress.stage_rejects)})
        return results
    executor.map_shards = map_shards
    return snaps
