"""Run a recipe end to end with any executor: plan, segments, reduces, manifests, summary."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
from collections import Counter

import orjson

from ..io import fs
from ..io.atomic import atomic_write_bytes, atomic_write_json
from ..io.readers import plan_shards
from ..io.writers import write_manifest
from ..log import get_logger
from ..pipeline import ConfigError
from ..rundir import FILES as RUN_FILES, OUTPUTS as RUN_OUTPUTS, RunDir  # noqa: F401 - RUN_*: old names
from .pidfile import remove_if_same, write_pidfile
from .progress import Progress
from .tasks import Plan


class RunLocked(RuntimeError):
    pass


class RunLock:
    """An flock on ``<run>/.lock``: a second run on the same output is refused."""

    def __init__(self, run_dir: str | RunDir):
        self.path = (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).lock
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


class InputIncomplete(RuntimeError):
    """Some input could not be read in full and the recipe does not allow that."""


def plan_inputs(recipe: dict) -> list:
    """Shards of every input; record origins are relative to the inputs' common root,
    and a file listed by two entries is read once (by the first)."""
    from ..io.readers import _glob_root
    root = fs.commonroot([_glob_root(inp["path"]) for inp in recipe["inputs"]])
    shards, owner = [], {}
    for k, inp in enumerate(recipe["inputs"]):
        for spec in plan_shards(inp, recipe["executor"]["shard_bytes"], root=root):
            key = spec.path if fs.is_remote(spec.path) else os.path.realpath(spec.path)
            if owner.setdefault(key, k) == k:
                shards.append(spec)
    return shards


def input_fingerprints(shards: list) -> dict:
    """Size, mtime and a head+tail content hash of every input file, by origin name."""
    out = {}
    for spec in shards:
        if spec.name not in out:
            out[spec.name] = file_fingerprint(spec.path)
    return out


def file_fingerprint(path: str, sample: int = 256 << 10) -> dict:
    try:
        size, mtime_ns = fs.stat(path)
    except OSError:
        return {"missing": True}
    h = hashlib.blake2b(str(size).encode(), digest_size=12)
    with fs.open_file(path, "rb") as f:
        h.update(f.read(sample))
        if size > 2 * sample:
            f.seek(size - sample)
        h.update(f.read(sample))
    return {"size": size, "mtime_ns": mtime_ns, "hash": h.hexdigest()}


def code_fingerprint(recipe: dict) -> dict:
    from ..config import build_stages
    # which stages run is part of the recipe; here only what their code is
    return {"thresher": thresher_version(),
            "stages": {st.name: str(st.version) for st in sorted(build_stages(recipe), key=lambda st: st.name)}}


def thresher_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("thresher")
    except PackageNotFoundError:
        return "0"


def _changes(old: dict, new: dict) -> list[str]:
    """What differs between two input-fingerprint maps, one line per file."""
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            lines.append(f"{name}: new input")
        elif b is None or b.get("missing"):
            lines.append(f"{name}: deleted")
        elif a.get("size") != b.get("size"):
            lines.append(f"{name}: size {a.get('size')} -> {b.get('size')} bytes")
        elif a.get("hash") != b.get("hash"):
            lines.append(f"{name}: content changed (same size)")
        else:
            lines.append(f"{name}: modified (mtime changed)")
    return lines


def prepare_plan(recipe: dict, accept_changed: bool = False) -> Plan:
    """Shard the inputs, or reload the stored plan of an interrupted run.  A resume
    against changed inputs or changed code is refused unless ``accept_changed``."""
    run_dir = recipe["output"]["dir"]
    stored = RunDir.of(recipe).plan_file
    code = code_fingerprint(recipe)
    if not os.path.exists(stored):
        shards = plan_inputs(recipe)
        plan = Plan.build(recipe, shards)
        _store_plan(stored, plan, input_fingerprints(shards), code)
        return plan
    with open(stored, "rb") as f:
        old = orjson.loads(f.read())
    segments = Plan.build(recipe, []).segments
    if old.get("recipe_fingerprint") != Plan(recipe, [], segments).recipe_fingerprint():
        raise ConfigError(f"{run_dir} holds a run of a different recipe; "
                          "use a new output.dir, or `thresher run --restart` to discard it")
    inputs, shards = _inputs_now(recipe, old)
    changed = _changes(old.get("inputs", {}), inputs)
    if old.get("code") != code:
        changed.append(f"code: {old.get('code')} -> {code}")
    if changed and not accept_changed:
        raise ConfigError(f"{run_dir}: inputs or code changed since this run started:\n  " + "\n  ".join(changed)
                          + "\nresuming would mix old and new data; use `thresher run --restart` to start over, "
                            "or `--accept-changed` to resume anyway")
    plan = Plan(recipe=recipe, shards=old["shards"], segments=segments)
    if changed:  # accepted: finished shards stand, the rest reads the files as they are now
        get_logger().warning("resuming with changed inputs/code (--accept-changed):\n  %s", "\n  ".join(changed))
        _store_plan(stored, plan, inputs, code)
    elif shards is not None and [s.to_dict() for s in shards] != old["shards"]:
        raise ConfigError(f"{run_dir} holds a run of different inputs; "
                          "use a new output.dir, or `thresher run --restart` to discard it")
    return plan


def _inputs_now(recipe: dict, old: dict) -> tuple[dict, list | None]:
    """Fingerprints of the stored plan's files as they are now (a deleted one shows as
    missing), plus any file the recipe's inputs match now that the plan does not list."""
    from ..io.readers import ShardSpec
    inputs = {}
    for d in old["shards"]:
        spec = ShardSpec.from_dict(d)
        if spec.name not in inputs:
            inputs[spec.name] = file_fingerprint(spec.path)
    try:
        shards = plan_inputs(recipe)
    except FileNotFoundError:  # every file of an input is gone: already reported as deleted
        return inputs, None
    for name, fp in input_fingerprints(shards).items():
        inputs.setdefault(name, fp)
    return inputs, shards


def _store_plan(path: str, plan: Plan, inputs: dict, code: dict) -> None:
    atomic_write_json(path, {"fingerprint": plan.fingerprint(), "recipe_fingerprint": plan.recipe_fingerprint(),
                             "recipe": plan.recipe, "shards": plan.shards, "inputs": inputs, "code": code})


def discard_run(run_dir: str | RunDir) -> None:
    """Remove what a run wrote (only thresher's own entries of the run dir)."""
    (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).discard()


def clean_temp_files(run_dir: str | RunDir) -> int:
    """Remove the atomic-write temp files a killed run left (we hold the run's lock, so
    no live writer owns them)."""
    return (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).clean_temp_files()


def run_recipe(recipe: dict, executor=None, restart: bool = False, accept_changed: bool = False,
               pidfile: str | None = None, run_token: str | None = None) -> dict:
    """Run (or resume) a recipe.  ``pidfile`` is written only once the run's lock is
    held, so a refused second start never touches the live run's file."""
    rd = RunDir.of(recipe)
    os.makedirs(rd.root, exist_ok=True)
    log = get_logger()
    if rd.remote:
        log.info("output %s: the run works in %s and uploads its results when it finishes", rd.output, rd.root)
    with RunLock(rd):
        owned = write_pidfile(pidfile, run_token or os.urandom(8).hex()) if pidfile else None
        try:
            if restart:
                rd.discard()
            removed = rd.clean_temp_files()
            if removed:
                log.info("removed %d temp file(s) left by an interrupted run", removed)
            stats = _run_locked(recipe, executor, accept_changed, log)
            sent = rd.publish()
            if sent:
                log.info("uploaded %s to %s", ", ".join(sent), rd.output)
            return stats
        finally:
            if owned is not None:
                remove_if_same(pidfile, owned)


def _run_locked(recipe: dict, executor, accept_changed: bool, log) -> dict:
    plan = prepare_plan(recipe, accept_changed)
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
                log.info("reduce %s", os.path.basename(plan.global_dir(seg.apply_global)))
                reduces[seg.apply_global] = executor.reduce(plan, seg.apply_global)
            expected = sum(r["kept"] for r in seg_results[-1]) if seg_results else None
            progress.start_segment(f"segment {seg.index + 1}/{len(plan.segments)}", 0, expected)
            results = executor.map_shards(plan, seg.index, list(range(n)), progress)
            progress.finish_segment()
            seg_results.append(sorted(results, key=lambda r: r["shard"]))
        return finalize(plan, seg_results, reduces, time.time() - t0, parallel_map=executor.parallel_map)
    finally:
        executor.close()


def finalize(plan: Plan, seg_results: list[list[dict]], reduces: dict, seconds: float, parallel_map=None) -> dict:
    """Manifests per sink, the conservation checks, stats.json, summary.txt."""
    recipe = plan.recipe
    first, last = seg_results[0], seg_results[-1]
    totals = {"in": sum(r["in"] for r in first), "kept": sum(r["kept"] for r in last),
              "rejected": sum(r["rejected"] for seg in seg_results for r in seg),
              "quarantined": sum(r["quarantined"] for seg in seg_results for r in seg)}
    inputs, incomplete = input_accounts(plan, first)
    bytes_ok = all(f["covered"] == f["expected"] for f in inputs.values() if f["expected"] is not None)
    conserved = totals["in"] == totals["kept"] + totals["rejected"] + totals["quarantined"] and bytes_ok
    sinks = {}
    outs = lambda segs, sink: [{**o, "path": plan.path(o["path"])}  # noqa: E731
                               for seg in segs for r in seg for o in r["outputs"][sink]]
    kept_entries = outs([last], "kept")
    sinks["kept"] = write_manifest(plan.rundir.kept, kept_entries)
    for group in sorted({o["group"] for o in kept_entries if "group" in o}):
        write_manifest(plan.rundir.sink("kept", group), [o for o in kept_entries if o.get("group") == group],
                       {"group_by": recipe["output"]["split_by"], "group": group})
    sinks["rejected"] = write_manifest(plan.rundir.sink("rejected"), outs(seg_results, "rejected"))
    sinks["quarantine"] = write_manifest(plan.rundir.sink("quarantine"), outs(seg_results, "quarantine"))
    stage_stats = _merge_stage_stats(seg_results, stage_order(recipe))
    manifest = {"name": recipe["name"], "fingerprint": plan.fingerprint(), "counts": totals,
                "conserved": conserved, "bytes_conserved": bytes_ok, "inputs": inputs,
                "incomplete_inputs": incomplete,
                "sinks": {k: {"records": v["records"], "bytes": v["bytes"],
                              "tokens_est": v["tokens_est"]} for k, v in sinks.items()},
                "stages": stage_stats}
    atomic_write_json(plan.rundir.manifest, manifest)
    _finalize_global_stages(plan, parallel_map)
    _write_samples(plan, seg_results, recipe["output"]["rejected_samples"])
    stats = {**manifest, "seconds": round(seconds, 2), "records_per_s": round(totals["in"] / max(seconds, 1e-9), 1),
             "reduces": {str(k): v for k, v in reduces.items()},
             "shard_seconds": [[r["seconds"] for r in seg] for seg in seg_results]}
    atomic_write_json(plan.rundir.stats_json, stats)
    atomic_write_bytes(plan.rundir.summary, render_summary(manifest).encode("utf-8"))
    print(render_summary(manifest, seconds), flush=True)
    if not recipe["output"]["keep_work"]:
        for i in range(len(plan.segments) - 1):
            shutil.rmtree(plan.rundir.segment_work(i), ignore_errors=True)
    if not conserved:
        raise RuntimeError(f"record conservation violated: {totals}; bytes conserved: {bytes_ok}")
    failing = [m for m in incomplete if m["on_missing"] == "fail"]
    if failing:
        raise InputIncomplete("input not read in full (set inputs[].on_missing_input: quarantine to allow):\n  "
                              + "\n  ".join(m["problem"] for m in failing))
    return stats


def input_accounts(plan: Plan, first: list[dict]) -> tuple[dict, list[dict]]:
    """Per input file: units read and bytes (Parquet: rows) covered vs. what was
    planned, plus every problem (truncated, vanished, changed during the run)."""
    files: dict[str, dict] = {}
    problems: list[dict] = []
    planned = _stored_inputs(plan)
    for r in first:
        spec = plan.shards[r["shard"]]
        acc = r.get("input") or {"file": spec.get("rel") or spec["path"], "unit": "bytes", "covered": 0,
                                 "units": 0, "incomplete": []}
        f = files.setdefault(acc["file"], {"unit": acc["unit"], "covered": 0, "units": 0, "expected": 0,
                                           "on_missing": spec.get("on_missing", "fail")})
        f["covered"] += acc["covered"]
        f["units"] += acc["units"]
        if acc["unit"] == "rows":
            f["expected"] += max(spec.get("rows", 0), 0)
        elif acc["unit"] == "file":
            f["unit"], f["expected"] = "file", None  # unreadable container: reported below
        problems += [{"file": acc["file"], "problem": p, "on_missing": f["on_missing"]} for p in acc["incomplete"]]
    for name, f in files.items():
        if f["unit"] == "bytes":
            f["expected"] = planned.get(name, {}).get("size", f["covered"])
        if f["expected"] is not None and f["covered"] != f["expected"]:
            problems.append({"file": name, "problem": f"{name}: covered {f['covered']} of {f['expected']} "
                             f"{f['unit']}", "on_missing": f["on_missing"]})
    problems += _changed_during_run(plan, planned, files)
    return files, problems


def _stored_inputs(plan: Plan) -> dict:
    try:
        with open(plan.rundir.plan_file, "rb") as f:
            return orjson.loads(f.read()).get("inputs", {})
    except (OSError, orjson.JSONDecodeError):
        return {}


def _changed_during_run(plan: Plan, planned: dict, files: dict) -> list[dict]:
    """Inputs whose size or mtime differ now from when the run was planned."""
    from ..io.readers import ShardSpec
    out, seen = [], set()
    for d in plan.shards:
        spec = ShardSpec.from_dict(d)
        if spec.name in seen or spec.name not in planned:
            continue
        seen.add(spec.name)
        try:
            now = fs.stat(spec.path)
        except OSError:
            now = None
        was = (planned[spec.name].get("size"), planned[spec.name].get("mtime_ns"))
        if now != was:
            what = "deleted" if now is None else f"size {was[0]} -> {now[0]}" if now[0] != was[0] else "modified"
            out.append({"file": spec.name, "problem": f"{spec.name}: changed during the run ({what})",
                        "on_missing": files.get(spec.name, {}).get("on_missing", spec.on_missing)})
    return out


def stage_order(recipe: dict) -> list[str]:
    from ..config import build_stages
    return ["read"] + [st.label for st in build_stages(recipe)]


def _finalize_global_stages(plan: Plan, parallel_map=None) -> None:
    from ..config import build_stages
    from ..pipeline import GlobalStage
    for i, st in enumerate(build_stages(plan.recipe)):
        if isinstance(st, GlobalStage):
            ctx = plan.stage_context(i)
            ctx.parallel_map = parallel_map
            st.finalize(ctx)


def _merge_stage_stats(seg_results: list[list[dict]], order: list[str]) -> dict:
    """Per-stage totals in pipeline order (markers store them with sorted keys)."""
    merged: dict[str, dict] = {}
    for seg in seg_results:
        for r in seg:
            for label, s in r["stages"].items():
                m = merged.setdefault(label, {"in": 0, "rejected": 0, "reasons": Counter(), "counts": Counter()})
                m["in"] += s["in"]
                m["rejected"] += s["rejected"]
                m["reasons"].update(s["reasons"])
                m["counts"].update(s["counts"])
    rank = {label: i for i, label in enumerate(order)}
    return {k: {"in": v["in"], "rejected": v["rejected"], "reasons": dict(sorted(v["reasons"].items())),
                "counts": dict(sorted(v["counts"].items()))}
            for k, v in sorted(merged.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))}


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
    atomic_write_bytes(plan.rundir.rejected_samples,
                       b"".join(line for k in sorted(samples) for line in samples[k]))


def render_summary(manifest: dict, seconds: float | None = None) -> str:
    """The end-of-run table.  Without ``seconds`` it is a pure function of the data
    (summary.txt: a resumed run's file is byte-identical to an uninterrupted one's)."""
    c = manifest["counts"]
    timing = "" if seconds is None else f" in {seconds:.1f}s ({c['in'] / max(seconds, 1e-9):,.0f} records/s)"
    inputs = manifest.get("inputs", {})
    rows = [f"thresher run {manifest['name']!r} finished{timing}",
            f"  in {c['in']:,}  =  kept {c['kept']:,}  +  rejected {c['rejected']:,}  +  quarantined "
            f"{c['quarantined']:,}   [{'conserved' if manifest['conserved'] else 'NOT CONSERVED'}]",
            f"  input files {len(inputs):,}: all bytes accounted for"
            if manifest.get("bytes_conserved", True) else "  input bytes NOT all accounted for (see manifest inputs)"]
    rows += [f"  INCOMPLETE INPUT: {m['problem']}" for m in manifest.get("incomplete_inputs", [])]
    rows += ["", f"  {'stage':<28}{'in':>10}{'touched':>9}{'chars -':>10}{'rejected':>10}{'rej %':>7}  top reasons"]
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
