"""The units of work every executor runs: pure functions of (plan, step, shard).

A run is a sequence of *segments*.  Segment 0 reads the raw input shards; segment
k > 0 reads segment k-1's kept shards.  Within a segment, a task applies the
preceding global stage's decision (if any), then the segment's map stages, then
``collect`` of the next global stage, and writes its kept / rejected / quarantine
shards plus a checkpoint marker.  Between segments one ``reduce`` task runs.

Each task writes its outputs atomically and its marker last, so a task that was
killed simply runs again, and the bytes it writes depend only on its input: a
resumed run is byte-identical to an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson

from ..config import build_stages
from ..io.readers import Quarantined, ShardAccount, ShardSpec, read_own_shard, read_shard
from ..io.atomic import atomic_write_bytes, atomic_write_json
from ..io.writers import ShardWriter
from ..pipeline import GlobalStage, Stage, StageContext
from ..records import Record
from ..rundir import RunDir

SAMPLES_PER_REASON_PER_SHARD = 3


@dataclass
class Segment:
    index: int
    apply_global: int | None  # stage index whose decision is applied first
    map_stages: list[int]
    collect_global: int | None  # stage index collected at the end


@dataclass
class Plan:
    recipe: dict
    shards: list[dict]  # ShardSpec dicts of segment 0
    segments: list[Segment] = field(default_factory=list)
    # differs per invocation, so worker caches never reuse stages (and loaded global
    # state) of an earlier run in the same process
    run_token: str = field(default_factory=lambda: os.urandom(8).hex())

    @property
    def rundir(self) -> RunDir:
        """Every path of the run (for a remote output: its local work dir)."""
        rd = self.__dict__.get("_rundir")
        if rd is None or rd.output != self.recipe["output"]["dir"]:
            rd = self.__dict__["_rundir"] = RunDir.of(self.recipe)
        return rd

    @property
    def run_dir(self) -> str:
        return self.rundir.root

    @classmethod
    def build(cls, recipe: dict, shards: list[ShardSpec]) -> "Plan":
        stages = build_stages(recipe)
        segments: list[Segment] = []
        current = Segment(0, None, [], None)
        for i, st in enumerate(stages):
            if isinstance(st, GlobalStage):
                current.collect_global = i
                segments.append(current)
                current = Segment(len(segments), i, [], None)
            else:
                current.map_stages.append(i)
        segments.append(current)
        return cls(recipe=recipe, shards=[s.to_dict() for s in shards], segments=segments)

    def recipe_fingerprint(self) -> str:
        """The recipe alone (input changes are reported file by file, see runner)."""
        recipe = {**self.recipe, "output": {k: v for k, v in self.recipe["output"].items() if k != "dir"},
                  "executor": {k: self.recipe["executor"][k] for k in ("shard_bytes", "batch_size")}}
        return hashlib.sha256(orjson.dumps(recipe, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def fingerprint(self) -> str:
        # where the run is written and how many workers/which engine run it are not part
        # of what it computes: a run may resume with another worker count or executor
        recipe = {**self.recipe, "output": {k: v for k, v in self.recipe["output"].items() if k != "dir"},
                  "executor": {k: self.recipe["executor"][k] for k in ("shard_bytes", "batch_size")}}
        body = orjson.dumps({"recipe": recipe, "shards": self.shards}, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()[:16]

    # paths ---------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return self.rundir.path(*parts)

    def rel(self, path: str) -> str:
        """``path`` relative to the run dir (what markers store, so a run dir can move)."""
        return self.rundir.rel(path)

    def marker(self, step: str, shard: int | None = None) -> str:
        return self.rundir.marker(step, shard)

    def kept_shard(self, seg: int, shard: int, group: str | None = None) -> str:
        if seg == len(self.segments) - 1:
            return self.rundir.kept_shard(shard, self.recipe["output"]["format"], group)
        return self.rundir.work_shard(seg, shard)

    def samples_file(self, seg: int, shard: int) -> str:
        return self.rundir.samples_file(seg, shard)

    def stage_name(self, stage_index: int) -> str:
        entry = self.recipe["stages"][stage_index]
        return entry if isinstance(entry, str) else next(iter(entry))

    def global_dir(self, stage_index: int) -> str:
        return self.rundir.global_dir(stage_index, self.stage_name(stage_index))

    def stage_context(self, stage_index: int, shard: int = -1, workers: int = 1) -> StageContext:
        name, rd = self.stage_name(stage_index), self.rundir
        return StageContext(run_dir=rd.root, artifact_dir=rd.artifacts(stage_index, name),
                            state_dir=rd.global_state(stage_index, name), shard_index=shard,
                            num_shards=len(self.shards), workers=workers, recipe=self.recipe)


# ---------------------------------------------------------------------------
# worker-side cache: stages are built and set up once per process, not per shard
_WORKER: dict = {}


def _stages_for(plan: Plan) -> list[Stage]:
    key = plan.run_token
    if _WORKER.get("key") != key:
        stages = build_stages(plan.recipe)
        for i, st in enumerate(stages):
            st.setup(plan.stage_context(i))
        _WORKER.clear()
        _WORKER.update(key=key, stages=stages, loaded=set())
    return _WORKER["stages"]


def _loaded_global(plan: Plan, stages: list[Stage], index: int) -> GlobalStage:
    st = stages[index]
    if index not in _WORKER["loaded"]:
        st.load(plan.stage_context(index))
        _WORKER["loaded"].add(index)
    return st  # type: ignore[return-value]


def _input_items(plan: Plan, seg: int, shard: int, account: ShardAccount):
    if seg == 0:
        return read_shard(ShardSpec.from_dict(plan.shards[shard]), account)
    return read_own_shard(plan.kept_shard(seg - 1, shard))


def stage_failure(st: Stage, rec: Record, err: BaseException, guard=None) -> Quarantined:
    """A record a stage raised on: quarantined with the exception, the run goes on
    (PII masked like a rejected record's, when the recipe masks sinks)."""
    origin = str(rec.meta.get("origin", ""))
    if guard is not None:
        try:
            guard(rec)
        except Exception:  # noqa: BLE001 - the record is broken for the masker too: keep no text
            rec.text, rec.messages, rec.chosen, rec.rejected = "", [], "", ""
    file, _, off = origin.rpartition(":")
    try:
        raw = rec.to_json()
    except (TypeError, orjson.JSONEncodeError):
        raw = repr(rec)[:1 << 20].encode("utf-8", "backslashreplace")
    return Quarantined(rec.source, file or origin, int(off) if off.isdigit() else -1,
                       f"stage {st.label} raised {type(err).__name__}: {err}", raw, -1, "stage_error",
                       origin=origin, record_id=rec.id)


class _StageStats:
    """Per-stage counters for one task: in / rejected / reasons plus the stage's own counts."""

    def __init__(self, stages: list[Stage]):
        self.by_stage: dict[str, dict] = {}
        self.samples: dict[str, list[bytes]] = {}
        self.stages = stages
        from ..cleaning.pii import sink_guard
        self.guard = sink_guard(stages)  # masks PII of rejected records before any sink sees them

    def run(self, st: Stage, batch: list[Record]) -> tuple[list[Record], list[Record], list[Quarantined]]:
        st.stats.clear()
        before = {id(r): r.is_rejected for r in batch}
        failed: list[Quarantined] = []
        try:
            out = st.process_batch(batch)
        except Exception:  # noqa: BLE001 - find the record(s) it fails on, one by one
            out, failed = _one_by_one(st, batch, self.guard)
        alive, dead = [], []
        for r in out:
            (dead if r.is_rejected and not before.get(id(r), False) else alive).append(r)
        s = self.stage(st.label)
        s["in"] += len(batch)
        s["rejected"] += len(dead)
        s["counts"].update(st.stats)
        if failed:
            s["counts"]["quarantined_on_error"] += len(failed)
        for r in dead:
            if self.guard is not None:
                self.guard(r)
            reason = f"{st.label}:{r.meta['reject']['reason']}"
            s["reasons"][r.meta["reject"]["reason"]] += 1
            bucket = self.samples.setdefault(reason, [])
            if len(bucket) < SAMPLES_PER_REASON_PER_SHARD:
                bucket.append(r.to_json())
        return alive, dead, failed

    def stage(self, label: str) -> dict:
        return self.by_stage.setdefault(label, {"in": 0, "rejected": 0, "reasons": Counter(), "counts": Counter()})

    def to_json(self) -> dict:
        return {k: {"in": v["in"], "rejected": v["rejected"], "reasons": dict(v["reasons"]),
                    "counts": dict(v["counts"])} for k, v in self.by_stage.items()}


def _one_by_one(st: Stage, batch: list[Record], guard) -> tuple[list[Record], list[Quarantined]]:
    """Re-run a failed batch record by record.  The batch call may have changed some
    records in place before it raised; normalisers are idempotent, so running them
    again on those records gives the same text."""
    st.stats.clear()
    out: list[Record] = []
    failed: list[Quarantined] = []
    for r in batch:
        try:
            out += st.process_batch([r])
        except Exception as e:  # noqa: BLE001
            failed.append(stage_failure(st, r, e, guard))
    return out, failed


def run_map_task(plan: Plan, seg_index: int, shard: int, progress=None) -> dict:
    """Process one shard through one segment; returns (and checkpoints) its stats."""
    marker = plan.rundir.map_marker(seg_index, shard)
    if os.path.exists(marker):
        with open(marker, "rb") as f:
            return {**orjson.loads(f.read()), "resumed": True}
    t0 = time.time()
    seg = plan.segments[seg_index]
    stages = _stages_for(plan)
    chain: list[Stage] = []
    if seg.apply_global is not None:
        gstage = _loaded_global(plan, stages, seg.apply_global)
        gstage.load_shard(plan.stage_context(seg.apply_global, shard))
        chain.append(gstage)
    chain += [stages[i] for i in seg.map_stages]
    batch_size = plan.recipe["executor"]["batch_size"]
    stats = _StageStats(stages)
    kept: list[Record] = []
    n_in = n_rejected = 0
    out_fmt = plan.recipe["output"]["format"]
    rej_fmt = "jsonl.zst" if out_fmt == "jsonl.zst" else out_fmt
    rej_rel = plan.rundir.rejected_rel(seg_index, shard, rej_fmt)
    q_rel = plan.rundir.quarantine_rel(seg_index, shard)  # always for raw input, else on stage errors
    account = ShardAccount(ShardSpec.from_dict(plan.shards[shard]).name if seg_index == 0 else "")
    with ShardWriter(plan.path(rej_rel), rej_fmt) as rej_w, \
            ShardWriter(plan.path(q_rel), "jsonl.zst", skip_empty=seg_index > 0) as q_w:
        batch: list[Record] = []
        for item in _input_items(plan, seg_index, shard, account):
            n_in += 1
            if isinstance(item, Quarantined):
                q_w.write_line(item.to_json())
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                n_rejected += _run_batch(batch, chain, stats, rej_w, q_w, kept, count_read=seg_index == 0)
                if progress is not None:
                    progress(seg_index, shard, len(batch))
                batch = []
        n_rejected += _run_batch(batch, chain, stats, rej_w, q_w, kept, count_read=seg_index == 0)
        if progress is not None:
            progress(seg_index, shard, len(batch))
    n_quarantined = q_w.records
    if seg.collect_global is not None:
        gstage = stages[seg.collect_global]
        gstage.collect(kept, plan.stage_context(seg.collect_global, shard))
    outputs = _write_kept(plan, seg_index, shard, kept)
    result = {
        "segment": seg_index, "shard": shard, "in": n_in, "kept": len(kept), "rejected": n_rejected,
        "quarantined": n_quarantined, "seconds": round(time.time() - t0, 3), "stages": stats.to_json(),
        # paths relative to the run dir: a run dir may be moved and resumed
        "outputs": {"kept": outputs, "rejected": [{"path": rej_rel, "records": rej_w.records,
                                                   "tokens": rej_w.tokens}],
                    "quarantine": [{"path": q_rel, "records": n_quarantined, "tokens": 0}] if q_w.written else []},
    }
    if seg_index == 0:
        result["input"] = account.to_dict()
    if n_in != len(kept) + n_rejected + n_quarantined:
        raise RuntimeError(f"segment {seg_index} shard {shard}: {n_in} in != {len(kept)} kept + "
                           f"{n_rejected} rejected + {n_quarantined} quarantined")
    # samples go to a file, not the result: results stay small however many shards a run has
    atomic_write_bytes(plan.samples_file(seg_index, shard),
                       b"".join(orjson.dumps({"reason": k, "record": orjson.Fragment(x)}) + b"\n"
                                for k in sorted(stats.samples) for x in stats.samples[k]))
    atomic_write_json(marker, result)
    return result


def _run_batch(batch: list[Record], chain: list[Stage], stats: _StageStats, rej_w: ShardWriter,
               q_w: ShardWriter, kept: list[Record], count_read: bool) -> int:
    """Send a batch through the chain; rejected records go to ``rej_w``, records a
    stage raised on to ``q_w``, survivors to ``kept``.  Returns the number rejected."""
    read = stats.stage("read")
    read["in"] += len(batch) if count_read else 0
    alive, n_rejected = [], 0
    for r in batch:  # rejected before any stage: empty content, or read back already rejected
        if r.is_rejected:
            read["rejected"] += 1
            read["reasons"][r.meta["reject"]["reason"]] += 1
            rej_w.write_record(r)
            n_rejected += 1
        else:
            alive.append(r)
    for st in chain:
        if not alive:
            break
        alive, dead, failed = stats.run(st, alive)
        for r in dead:
            rej_w.write_record(r)
        for q in failed:
            q_w.write_line(q.to_json())
        n_rejected += len(dead)
    kept.extend(alive)
    return n_rejected


def _write_kept(plan: Plan, seg_index: int, shard: int, kept: list[Record]) -> list[dict]:
    split_by = plan.recipe["output"].get("split_by")
    last = seg_index == len(plan.segments) - 1
    if not (last and split_by):
        path = plan.kept_shard(seg_index, shard)
        with ShardWriter(path, plan.recipe["output"]["format"] if last else "jsonl.zst") as w:
            for r in kept:
                w.write_record(r)
        return [{"path": plan.rel(path), "records": w.records, "tokens": w.tokens}]
    groups: dict[str, list[Record]] = {}
    for r in kept:
        groups.setdefault(str(r.meta.get(split_by, "none")), []).append(r)
    outputs = []
    for group in sorted(groups):
        path = plan.kept_shard(seg_index, shard, group)
        with ShardWriter(path, plan.recipe["output"]["format"]) as w:
            for r in groups[group]:
                w.write_record(r)
        outputs.append({"path": plan.rel(path), "records": w.records, "tokens": w.tokens, "group": group})
    return outputs


def run_reduce_task(plan: Plan, stage_index: int, workers: int = 1, parallel_map=None) -> dict:
    marker = plan.rundir.reduce_marker(stage_index)
    if os.path.exists(marker):
        with open(marker, "rb") as f:
            return orjson.loads(f.read())
    t0 = time.time()
    stage = build_stages(plan.recipe)[stage_index]
    ctx = plan.stage_context(stage_index, workers=workers)
    ctx.parallel_map = parallel_map
    os.makedirs(ctx.state_dir, exist_ok=True)
    stage.setup(ctx)
    result = {"stage": stage.label, "stats": stage.reduce(ctx) or {}, "seconds": round(time.time() - t0, 3)}
    atomic_write_json(marker, result)
    return result
