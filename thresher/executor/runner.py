"""Run a recipe end to end with any executor: plan, segments, reduces, manifests, summary."""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections import Counter

import orjson

from ..io.readers import plan_shards
from ..io.writers import atomic_write_bytes, atomic_write_json, write_manifest
from ..log import get_logger
from ..pipeline import ConfigError
from .progress import Progress
from .tasks import Plan


class RunLocked(RuntimeError):
    pass


class RunLock:
    """An flock on ``<run>/.lock``: a second run on the same output is refused."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, ".lock")
        self.fh = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"another thresher run is using {os.path.dirname(self.path)}") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def make_executor(recipe: dict):
    ex = recipe["executor"]
    if ex["type"] == "ray":
        from .ray_executor import RayExecutor
        return RayExecutor(ex)
    from .local import LocalExecutor
    return LocalExecutor(ex["workers"])


def prepare_plan(recipe: dict) -> Plan:
    """Shard the inputs, or reload the stored plan of an interrupted run."""
    run_dir = recipe["output"]["dir"]
    stored = os.path.join(run_dir, "state", "plan.json")
    shards = [s for inp in recipe["inputs"] for s in plan_shards(inp, recipe["executor"]["shard_bytes"])]
    plan = Plan.build(recipe, shards)
    if os.path.exists(stored):
        with open(stored, "rb") as f:
            old = orjson.loads(f.read())
        if old["fingerprint"] != plan.fingerprint():
            raise ConfigError(f"{run_dir} holds a run of a different recipe or different inputs; "
                              "use a new output.dir, or `thresher run --restart` to discard it")
    else:
        atomic_write_json(stored, {"fingerprint": plan.fingerprint(), "recipe": recipe, "shards": plan.shards})
    return plan


def discard_run(run_dir: str) -> None:
    """Remove what a run wrote (only thresher's own sub-folders of the run dir)."""
    for sub in ("state", "work", "kept", "rejected", "quarantine", "stats"):
        shutil.rmtree(os.path.join(run_dir, sub), ignore_errors=True)
    for f in ("manifest.json", "summary.txt", "stats.json"):
        if os.path.exists(os.path.join(run_dir, f)):
            os.remove(os.path.join(run_dir, f))


def run_recipe(recipe: dict, executor=None, restart: bool = False) -> dict:
    run_dir = recipe["output"]["dir"]
    os.makedirs(run_dir, exist_ok=True)
    log = get_logger()
    with RunLock(run_dir):
        if restart:
            discard_run(run_dir)
        plan = prepare_plan(recipe)
        executor = executor or make_executor(recipe)
        n = len(plan.shards)
        log.info("run %s: %d input shards, %d segments, executor=%s workers=%s", recipe["name"], n,
                 len(plan.segments), recipe["executor"]["type"], recipe["executor"]["workers"])
        progress = Progress(n, recipe["executor"]["progress_interval"])
        t0 = time.time()
        seg_results: list[list[dict]] = []
        reduces: dict[int, dict] = {}
        try:
            for seg in plan.segments:
                if seg.apply_global is not None:
                    log.info("reduce %s", plan.global_dir(seg.apply_global).rsplit("/", 1)[-1])
                    reduces[seg.apply_global] = executor.reduce(plan, seg.apply_global)
                expected = sum(r["kept"] for r in seg_results[-1]) if seg_results else None
                progress.start_segment(f"segment {seg.index + 1}/{len(plan.segments)}", 0, expected)
                results = executor.map_shards(plan, seg.index, list(range(n)), progress)
                progress.finish_segment()
                seg_results.append(sorted(results, key=lambda r: r["shard"]))
        finally:
            executor.close()
        summary = finalize(plan, seg_results, reduces, time.time() - t0)
    return summary


def finalize(plan: Plan, seg_results: list[list[dict]], reduces: dict, seconds: float) -> dict:
    """Manifests per sink, the conservation check, stats.json, summary.txt."""
    recipe = plan.recipe
    first, last = seg_results[0], seg_results[-1]
    totals = {"in": sum(r["in"] for r in first), "kept": sum(r["kept"] for r in last),
              "rejected": sum(r["rejected"] for seg in seg_results for r in seg),
              "quarantined": sum(r["quarantined"] for r in first)}
    conserved = totals["in"] == totals["kept"] + totals["rejected"] + totals["quarantined"]
    sinks = {}
    kept_entries = [o for r in last for o in r["outputs"]["kept"]]
    sinks["kept"] = write_manifest(plan.path("kept"), kept_entries)
    for group in sorted({o["group"] for o in kept_entries if "group" in o}):
        write_manifest(plan.path("kept", group), [o for o in kept_entries if o.get("group") == group],
                       {"group_by": recipe["output"]["split_by"], "group": group})
    sinks["rejected"] = write_manifest(plan.path("rejected"),
                                       [o for seg in seg_results for r in seg for o in r["outputs"]["rejected"]])
    sinks["quarantine"] = write_manifest(plan.path("quarantine"), [o for r in first for o in r["outputs"]["quarantine"]])
    stage_stats = _merge_stage_stats(seg_results)
    manifest = {"name": recipe["name"], "fingerprint": plan.fingerprint(), "counts": totals,
                "conserved": conserved, "sinks": {k: {"records": v["records"], "bytes": v["bytes"],
                                                      "tokens_est": v["tokens_est"]} for k, v in sinks.items()},
                "stages": stage_stats}
    atomic_write_json(plan.path("manifest.json"), manifest)
    _finalize_global_stages(plan)
    _write_samples(plan, seg_results, recipe["output"]["rejected_samples"])
    stats = {**manifest, "seconds": round(seconds, 2), "records_per_s": round(totals["in"] / max(seconds, 1e-9), 1),
             "reduces": {str(k): v for k, v in reduces.items()},
             "shard_seconds": [[r["seconds"] for r in seg] for seg in seg_results]}
    atomic_write_json(plan.path("stats.json"), stats)
    text = render_summary(manifest, seconds)
    with open(plan.path("summary.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text, flush=True)
    if not recipe["output"]["keep_work"]:
        for i in range(len(plan.segments) - 1):
            shutil.rmtree(plan.path("work", f"seg-{i}"), ignore_errors=True)
    if not conserved:
        raise RuntimeError(f"record conservation violated: {totals}")
    return stats


def _finalize_global_stages(plan: Plan) -> None:
    from ..config import build_stages
    from ..pipeline import GlobalStage
    for i, st in enumerate(build_stages(plan.recipe)):
        if isinstance(st, GlobalStage):
            st.finalize(plan.stage_context(i))


def _merge_stage_stats(seg_results: list[list[dict]]) -> dict:
    merged: dict[str, dict] = {}
    for seg in seg_results:
        for r in seg:
            for label, s in r["stages"].items():
                m = merged.setdefault(label, {"in": 0, "rejected": 0, "reasons": Counter(), "counts": Counter()})
                m["in"] += s["in"]
                m["rejected"] += s["rejected"]
                m["reasons"].update(s["reasons"])
                m["counts"].update(s["counts"])
    return {k: {"in": v["in"], "rejected": v["rejected"], "reasons": dict(sorted(v["reasons"].items())),
                "counts": dict(sorted(v["counts"].items()))} for k, v in merged.items()}


def _write_samples(plan: Plan, seg_results: list[list[dict]], per_reason: int) -> None:
    """Merge the per-shard rejected samples into ``stats/rejected_samples.jsonl``
    (at most ``per_reason`` per reason, in shard order)."""
    samples: dict[str, list[bytes]] = {}
    for seg in seg_results:
        for r in seg:
            path = plan.samples_file(r["segment"], r["shard"])
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                for line in f:
                    reason = orjson.loads(line)["reason"]
                    bucket = samples.setdefault(reason, [])
                    if len(bucket) < per_reason:
                        bucket.append(line)
    atomic_write_bytes(plan.path("stats", "rejected_samples.jsonl"),
                       b"".join(line for k in sorted(samples) for line in samples[k]))


def render_summary(manifest: dict, seconds: float) -> str:
    c = manifest["counts"]
    rows = [f"thresher run {manifest['name']!r} finished in {seconds:.1f}s "
            f"({c['in'] / max(seconds, 1e-9):,.0f} records/s)",
            f"  in {c['in']:,}  =  kept {c['kept']:,}  +  rejected {c['rejected']:,}  +  quarantined "
            f"{c['quarantined']:,}   [{'conserved' if manifest['conserved'] else 'NOT CONSERVED'}]",
            "", f"  {'stage':<28}{'in':>10}{'touched':>9}{'chars -':>10}{'rejected':>10}{'rej %':>7}  top reasons"]
    for label, s in manifest["stages"].items():
        pct = 100 * s["rejected"] / s["in"] if s["in"] else 0.0
        top = ", ".join(f"{k}={v}" for k, v in sorted(s["reasons"].items(), key=lambda kv: -kv[1])[:3])
        touched, removed = s["counts"].get("touched", 0), s["counts"].get("chars_removed", 0)
        rows.append(f"  {label:<28}{s['in']:>10,}{touched:>9,}{removed:>10,}{s['rejected']:>10,}{pct:>6.1f}%  {top}")
    sinks = manifest["sinks"]
    rows += ["", "  sink          records        bytes   tokens(est)"]
    for k, v in sinks.items():
        rows.append(f"  {k:<12}{v['records']:>9,}{v['bytes']:>13,}{v['tokens_est']:>14,}")
    return "\n".join(rows) + "\n"
