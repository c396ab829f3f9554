"""Look inside a run: records by id, by rejection reason, dedup clusters, output stats."""
from __future__ import annotations

import base64
import os
from collections import Counter
from typing import Iterator

import orjson

from .io.readers import _open_stream, split_compression
from .rundir import SINKS, RunDir  # noqa: F401 - SINKS: re-exported



def _sink_files(run_dir: str, sink: str) -> list[str]:
    return RunDir(run_dir).sink_files(sink)


def iter_sink(run_dir: str, sink: str) -> Iterator[dict]:
    for path in _sink_files(run_dir, sink):
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq
            for row in pq.read_table(path).to_pylist():
                if isinstance(row.get("meta"), str):
                    row["meta"] = orjson.loads(row["meta"])
                yield row
            continue
        with _open_stream(path, split_compression(path)[1]) as f:
            for line in f:
                if line.strip():
                    yield orjson.loads(line)


def find_by_id(run_dir: str, rid: str) -> list[tuple[str, dict]]:
    hits = []
    for sink in ("kept", "rejected"):
        hits += [(sink, r) for r in iter_sink(run_dir, sink) if r.get("id") == rid]
    return hits


def find_by_reason(run_dir: str, reason: str, limit: int = 5) -> list[tuple[str, dict]]:
    """``reason`` is a code (``too_short``) or ``stage:code``; quarantine errors match by substring."""
    hits = []
    for r in iter_sink(run_dir, "rejected"):
        rej = r["meta"]["reject"]
        if reason in (rej["reason"], f"{rej['stage']}:{rej['reason']}"):
            hits.append(("rejected", r))
            if len(hits) >= limit:
                return hits
    for q in iter_sink(run_dir, "quarantine"):
        if reason in q["error"]:
            q = {**q, "raw": base64.b64decode(q.pop("raw_b64"))[:500].decode("utf-8", "replace")}
            hits.append(("quarantine", q))
            if len(hits) >= limit:
                break
    return hits


def find_dup_cluster(run_dir: str, rid: str) -> list[tuple[str, dict]]:
    """The kept representative and every record rejected as its duplicate."""
    target = rid
    for r in iter_sink(run_dir, "rejected"):  # given a dropped member, find its representative
        if r["id"] == rid and r["meta"]["reject"].get("dup_of"):
            target = r["meta"]["reject"]["dup_of"]
            break
    hits = [("kept", r) for r in iter_sink(run_dir, "kept") if r["id"] == target]
    hits += [("rejected", r) for r in iter_sink(run_dir, "rejected")
             if r["meta"]["reject"].get("dup_of") == target or (r["id"] == target and not hits)]
    return hits


def output_stats(path: str) -> str:
    """Counts by kind and source, character lengths and token estimate of an output."""
    if os.path.isfile(path) and path.endswith("manifest.json"):
        path = os.path.dirname(path)
    from .io.readers import iter_records
    kinds, sources = Counter(), Counter()
    lengths = []
    for rec in iter_records(path):
        kinds[rec.kind] += 1
        sources[rec.source] += 1
        lengths.append(len(rec.full_text()))
    if not lengths:
        return f"{path}: no records"
    lengths.sort()
    q = lambda p: lengths[min(int(p * len(lengths)), len(lengths) - 1)]  # noqa: E731
    lines = [f"{path}: {len(lengths):,} records, {sum(lengths):,} characters",
             "  kinds: " + ", ".join(f"{k}={v:,}" for k, v in kinds.most_common()),
             "  sources: " + ", ".join(f"{k}={v:,}" for k, v in sources.most_common(10)),
             f"  chars p10/p50/p90/max: {q(0.1):,} / {q(0.5):,} / {q(0.9):,} / {lengths[-1]:,}"]
    man = os.path.join(path, "manifest.json")
    if os.path.exists(man):
        with open(man, "rb") as f:
            m = orjson.loads(f.read())
        lines.append(f"  manifest: {m.get('records', 0):,} records, {m.get('bytes', 0):,} bytes, "
                     f"~{m.get('tokens_est', 0):,} tokens in {len(m.get('files', []))} files")
    return "\n".join(lines)
