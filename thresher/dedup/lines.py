"""CCNet-style line dedup: strip lines that occur in many documents (boilerplate:
navigation, copyright footers, "点击查看更多").

collect: per shard, the sorted unique (normalised-line hash, number of documents)
pairs; reduce: sums counts over shards, one ``ctx.pmap`` task per hash range, keeps
hashes seen in >= ``min_docs`` documents; process: removes those lines.  A document
left with no text is rejected (``boilerplate_only``); otherwise it is a text change.
"""
from __future__ import annotations

import os

import numpy as np
import xxhash

from ..pipeline import COUNT, POSITIVE, GlobalStage, StageContext, register
from ..records import Record
from .base import save_json, save_npy, save_npz
from .normalize import normalize_key

_PARTS = 16  # hash ranges the reduce works on in parallel
_TOP = np.uint64(60)


def _line_hash(line: str) -> int:
    return xxhash.xxh3_64_intdigest(normalize_key(line).encode("utf-8", "surrogatepass"))


def _count_task(args: tuple[int, list[str], int]) -> np.ndarray:
    """Boilerplate hashes in one hash range: sum document counts over all shards."""
    part, paths, min_docs = args
    hs, cs = [], []
    for p in paths:
        with np.load(p) as z:
            h = z["hash"]
            lo, hi = np.searchsorted(h >> _TOP, [part, part + 1])
            hs.append(h[lo:hi])
            cs.append(z["count"][lo:hi])
    if not hs:
        return np.empty(0, np.uint64)
    uniq, inv = np.unique(np.concatenate(hs), return_inverse=True)
    total = np.bincount(inv, weights=np.concatenate(cs), minlength=len(uniq))
    return uniq[total >= min_docs]


@register("line_dedup")
class LineDedup(GlobalStage):
    defaults = {"min_docs": 3, "min_line_chars": 5}
    rules = {"min_docs": POSITIVE, "min_line_chars": COUNT}
    applies_to = ("text",)

    def _hashes(self, rec: Record) -> set[int]:
        return {_line_hash(ln) for ln in (rec.text or "").split("\n") if len(ln.strip()) >= self.min_line_chars}

    def collect(self, records: list[Record], ctx: StageContext) -> None:
        hs = [h for r in records if r.kind == "text" for h in self._hashes(r)]  # set per doc: count documents
        uniq, counts = np.unique(np.asarray(hs, np.uint64), return_counts=True)
        save_npz(ctx.artifact_path(".lines.npz"), hash=uniq, count=counts.astype(np.int64))

    def reduce(self, ctx: StageContext) -> dict:
        paths = sorted(os.path.join(ctx.artifact_dir, f) for f in os.listdir(ctx.artifact_dir)
                       if f.endswith(".lines.npz"))
        parts = ctx.pmap(_count_task, [(p, paths, self.min_docs) for p in range(_PARTS)])
        bad = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.uint64)
        save_npy(os.path.join(ctx.state_dir, "boilerplate.npy"), bad)
        stats = {"boilerplate_lines": int(len(bad))}
        save_json(os.path.join(ctx.state_dir, "stats.json"), stats)
        return stats

    def load(self, ctx: StageContext) -> None:
        self.bad = set(np.load(os.path.join(ctx.state_dir, "boilerplate.npy")).tolist())

    def process(self, rec: Record) -> Record:
        lines = (rec.text or "").split("\n")
        keep = [ln for ln in lines if len(ln.strip()) < self.min_line_chars or _line_hash(ln) not in self.bad]
        removed = len(lines) - len(keep)
        rec.signals()["line_dedup"] = removed
        if not removed:
            return rec
        new = "\n".join(keep)
        self.count("lines_removed", removed)
        self.count("chars_removed", len(rec.text or "") - len(new))
        if not new.strip():
            return self.reject(rec, "boilerplate_only", removed, self.min_docs)
        rec.text = new
        return rec
