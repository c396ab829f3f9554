"""Hand audits of a run's decisions: a stratified sample to mark, and precision per reason.

``thresher audit RUN_DIR --per-reason 20 --kept 40 --out audit.tsv`` samples, for every
rejection reason, ``--per-reason`` rejected records taken round-robin over sources (so a
reason that fires mostly on one source still shows the others), plus ``--kept`` kept
records, into a TSV a person fills in.  ``thresher audit --score audit.tsv`` prints, per
reason, how many rejections the run made, how many rows were read and the precision
(the share of read rejections the reader agreed with).

Sampling is bottom-k on a seeded hash of the record id, per (reason, source): streaming,
deterministic, and independent of shard order, so re-running on the same run gives the
same sheet.

Columns: ``row_kind`` (rejected | kept), ``reason``, ``source``, ``id``, ``value``,
``threshold``, ``verdict`` (``agree`` = the decision is right, ``disagree`` = it is wrong;
empty = not read yet), ``note``, ``text`` (newlines shown as ``⏎``).  Lines starting with
``#`` carry the run's total count per reason.
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from .inspect import iter_sink

COLUMNS = ("row_kind", "reason", "source", "id", "value", "threshold", "verdict", "note", "text")
VERDICTS = ("agree", "disagree")
KEPT = "kept"


def record_turns(rec: dict) -> list[tuple[str, str]]:
    if rec.get("kind") == "text":
        return [("text", rec.get("text") or "")]
    turns = [(m["role"], m["content"]) for m in rec.get("messages") or ()]
    if rec.get("kind") == "dpo":
        turns += [("chosen", rec.get("chosen") or ""), ("rejected", rec.get("rejected") or "")]
    return turns


def record_text(rec: dict, chars: int | None = None) -> str:
    """The text a reader judges: turns labelled by role (the failing one marked ``▶``), each cut
    to its head and tail so the end of an answer (truncation, sign-off) stays visible."""
    turns = record_turns(rec)
    failed = ((rec.get("meta") or {}).get("reject") or {}).get("turn")
    if failed is not None and failed < 0:  # a DPO answer: -1 chosen, -2 rejected
        failed = len(turns) + failed
    budget = max(80, chars // max(1, len(turns))) if chars else None
    parts = []
    for i, (role, text) in enumerate(turns):
        if budget and len(text) > budget:
            head = budget * 3 // 5
            text = text[:head] + " … " + text[-(budget - head):]
        label = f"[{role}]" if rec.get("kind") != "text" else ""
        parts.append(("▶" if i == failed else "") + (f"{label} " if label else "") + text)
    return "\n".join(parts)


def _cell(v, limit: int | None = None) -> str:
    s = "" if v is None else (v if isinstance(v, str) else orjson.dumps(v).decode())
    s = s.replace("\t", " ").replace("\r", "").replace("\n", "⏎")
    return s[:limit] + "…" if limit and len(s) > limit else s


@dataclass
class _Strata:
    """Bottom-k samples per (reason, source) and the total count per reason."""
    k: int
    seed: int
    heaps: dict = field(default_factory=lambda: defaultdict(list))
    totals: dict = field(default_factory=lambda: defaultdict(int))

    def offer(self, reason: str, rec: dict) -> None:
        self.totals[reason] += 1
        if self.k <= 0:
            return
        h = hashlib.blake2b(f"{self.seed}:{rec.get('id')}".encode(), digest_size=8).digest()
        key = -int.from_bytes(h, "big")  # max-heap of the k smallest hashes
        heap = self.heaps[(reason, rec.get("source", ""))]
        if len(heap) < self.k:
            heapq.heappush(heap, (key, rec.get("id", ""), rec))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, rec.get("id", ""), rec))

    def rows(self, reason: str, n: int) -> list[dict]:
        """``n`` records of a reason, round-robin over its sources (sources in name order)."""
        per_source = [sorted(h, reverse=True) for (r, _), h in sorted(self.heaps.items()) if r == reason]
        out = []
        for group in itertools.zip_longest(*per_source):
            out += [item[2] for item in group if item is not None]
        return out[:n]


def reason_of(rec: dict) -> str:
    return (rec.get("meta") or {}).get("reject", {}).get("reason", "?")


def sample(run_dir: str, per_reason: int = 20, kept: int = 40, seed: int = 0) -> tuple[list[dict], dict]:
    """(rows, totals): rows as dicts of COLUMNS (``text`` holds the record), totals = {reason: rejections}."""
    rej = _Strata(per_reason, seed)
    for rec in iter_sink(run_dir, "rejected"):
        rej.offer(reason_of(rec), rec)
    keep = _Strata(kept, seed)
    for rec in iter_sink(run_dir, "kept"):
        keep.offer(KEPT, rec)
    rows = []
    for reason in sorted(rej.totals, key=lambda r: (-rej.totals[r], r)):
        for rec in rej.rows(reason, per_reason):
            info = rec["meta"]["reject"]
            rows.append(_row("rejected", reason, rec, info.get("value"), info.get("threshold")))
    for rec in keep.rows(KEPT, kept):
        rows.append(_row(KEPT, KEPT, rec, None, None))
    totals = dict(rej.totals)
    totals[KEPT] = keep.totals.get(KEPT, 0)
    return rows, totals


def _row(kind: str, reason: str, rec: dict, value, threshold) -> dict:
    return {"row_kind": kind, "reason": reason, "source": rec.get("source", ""), "id": rec.get("id", ""),
            "value": value, "threshold": threshold, "verdict": "", "note": "", "text": rec}


def write_tsv(path: str, rows: list[dict], totals: dict, text_chars: int = 600) -> None:
    from .io.atomic import atomic_open
    with atomic_open(path, "w", encoding="utf-8") as f:
        for reason, n in sorted(totals.items()):
            f.write(f"# count\t{reason}\t{n}\n")
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            cells = {**r, "text": record_text(r["text"], text_chars) if isinstance(r["text"], dict) else r["text"]}
            f.write("\t".join(_cell(cells[c], text_chars + 200 if c == "text" else None) for c in COLUMNS) + "\n")


def read_tsv(path: str) -> tuple[list[dict], dict]:
    rows, totals = [], {}
    header = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split("\t")
                if len(parts) == 3 and parts[0] == "# count":
                    totals[parts[1]] = int(parts[2])
                continue
            cells = line.split("\t")
            if header is None:
                header = cells
                missing = [c for c in ("row_kind", "reason", "verdict") if c not in header]
                if missing:
                    raise ValueError(f"{path}: header lacks column(s) {missing}")
                continue
            row = dict(zip(header, cells))
            v = row.get("verdict", "").strip().lower()
            if v and v not in VERDICTS:
                raise ValueError(f"{path}:{n}: verdict {v!r} is not one of {VERDICTS} (or empty)")
            row["verdict"] = v
            rows.append(row)
    return rows, totals


@dataclass
class ReasonScore:
    reason: str
    total: int
    read: int
    agree: int

    @property
    def precision(self) -> float | None:
        return self.agree / self.read if self.read else None


def score(rows: list[dict], totals: dict) -> list[ReasonScore]:
    read: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        read[r["reason"]].append(r["verdict"])
    out = []
    for reason in sorted(set(read) | set(totals), key=lambda x: (x == KEPT, -totals.get(x, 0), x)):
        marked = [v for v in read.get(reason, []) if v]
        out.append(ReasonScore(reason, totals.get(reason, len(read.get(reason, []))), len(marked),
                               sum(v == "agree" for v in marked)))
    return out


def format_scores(scores: list[ReasonScore]) -> str:
    lines = [f"{'reason':28s} {'in run':>7s} {'read':>5s} {'agree':>6s} {'precision':>9s}"]
    for s in scores:
        p = "-" if s.precision is None else f"{s.precision:.2f}"
        label = s.reason + (" (kept: share right)" if s.reason == KEPT else "")
        lines.append(f"{label:28s} {s.total:7d} {s.read:5d} {s.agree:6d} {p:>9s}")
    return "\n".join(lines)


def failing(scores: list[ReasonScore], min_count: int, target: float, min_read: int) -> list[str]:
    """Reasons that reject >= min_count records yet were read too little or fall below target."""
    bad = []
    for s in scores:
        if s.reason == KEPT or s.total < min_count:
            continue
        if s.read < min(min_read, s.total):
            bad.append(f"{s.reason}: only {s.read} of {min(min_read, s.total)} rows marked")
        elif s.precision is not None and s.precision < target:
            bad.append(f"{s.reason}: precision {s.precision:.2f} < {target}")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="thresher audit", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", nargs="?", help="run folder to sample")
    p.add_argument("--per-reason", type=int, default=20)
    p.add_argument("--kept", type=int, default=40, help="kept records to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chars", type=int, default=600, help="text characters per row")
    p.add_argument("--out", help="TSV to write (default: RUN_DIR/audit.tsv)")
    p.add_argument("--score", nargs="+", metavar="TSV", help="print precision per reason of marked sheets")
    p.add_argument("--check", action="store_true",
                   help="with --score: exit 1 if a reason with >= --min-count rejections is under --target")
    p.add_argument("--min-count", type=int, default=20)
    p.add_argument("--target", type=float, default=0.9)
    a = p.parse_args(argv)
    if a.score:
        rows, totals = [], defaultdict(int)
        for path in a.score:
            r, t = read_tsv(path)
            rows += r
            for k, v in t.items():
                totals[k] += v
        scores = score(rows, totals)
        print(format_scores(scores))
        bad = failing(scores, a.min_count, a.target, a.per_reason)
        for b in bad:
            print("FAIL", b)
        return 1 if a.check and bad else 0
    if not a.run_dir:
        p.error("give a RUN_DIR to sample, or --score TSV")
    from .rundir import RunDir
    if not os.path.isdir(RunDir(a.run_dir).sink("rejected")) and not os.path.isdir(RunDir(a.run_dir).kept):
        print(f"{a.run_dir}: not a run folder (no kept/ or rejected/)", file=sys.stderr)
        return 2
    rows, totals = sample(a.run_dir, a.per_reason, a.kept, a.seed)
    out = a.out or os.path.join(a.run_dir, "audit.tsv")
    write_tsv(out, rows, totals, a.chars)
    n_rej = sum(1 for r in rows if r["row_kind"] == "rejected")
    print(f"wrote {out}: {n_rej} rejected rows over {len(totals) - 1} reasons, "
          f"{len(rows) - n_rej} kept rows; mark the verdict column agree/disagree, then "
          f"`thresher audit --score {out}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
