"""Partitioned reduce of the bucket dedup stages: no process holds all links or all records.

Every step is one ``ctx.pmap`` over files (process pool locally, Ray tasks on a
cluster); the driver passes paths and sums counters.  With P partitions:

1. **scatter** (one task per shard / index part): the shard's band hashes regrouped by
   (band, bucket-hash partition ``hash % P``) into one row file with offsets, and its
   keeper columns as a memory-mappable ``.cols.npy``;
2. **buckets** (B x P tasks): task (b, q) reads the (b, q) slice of every shard's scatter
   file (whole buckets: a bucket lives in one partition), links each bucket's members to
   its smallest key, verifies the links on signatures and writes them, both directions,
   grouped by the node's partition;
3. **components** (``distcc``): large-star / small-star rounds, P tasks per round,
   until every component is a star around its smallest key; labels ``node -> root`` end
   up grouped by the root's partition, i.e. whole components per partition;
4. **keepers** (P tasks): per component the same keeper choice as the single-process
   path (``base.choose_keepers``, gathering only members' columns and ids), written as
   decision parts; the driver concatenates them into ``decision.npz``.

Same components (root = smallest key) and the same keeper order, so the decision is
identical to ``base.reference_decision`` for any P and any worker count (tested).
Memory of a task ~ its slice: buckets 16 B x records / P per band, components and
keepers ~ links and members of their partition (a single giant component stays in one
partition).  The driver holds the final decision (what ``load`` gives every worker).
"""
from __future__ import annotations

import os
import pickle
import shutil

import numpy as np

from ..pipeline import StageContext
from ..io.atomic import atomic_write_bytes
from .base import (INDEX_FLAG, Sources, band_edges, check_unique_ids, choose_keepers, ids_of,
                   save_npy, save_npz, write_decision)
from .distcc import both_directions, connected_components, read_part, remove_parts, write_parts

COLS = np.dtype([("length", "<i8"), ("score", "<f4"), ("src_rank", "<i4")])
# band slice per bucket task = 16 B x this (64 MB, a few times that while sorting)
RECORDS_PER_PARTITION = 4_000_000


def auto_partitions(sources: Sources) -> int:
    """P from the number of banded records (array headers only)."""
    n = sum(np.load(p + ".bkeys.npy", mmap_mode="r").shape[0] for p in sources.prefixes())
    return max(1, -(-n // RECORDS_PER_PARTITION))


def work_sources(sources: Sources, work: str) -> Sources:
    """Where ``scatter`` puts each source's files (same keys, so ``Sources.rows`` works)."""
    return Sources({s: os.path.join(work, "src", f"shard-{s:05d}") for s in sources.shards},
                   {i: os.path.join(work, "src", f"index-{i:05d}") for i in sources.index})


# --- tasks ---------------------------------------------------------------------------------
def scatter_task(args: tuple) -> str:
    prefix, out, n_bands, n_parts = args
    bands = np.load(prefix + ".bands.npy", mmap_mode="r")
    keys = np.load(prefix + ".bkeys.npy")
    rows, dest = [np.empty((0, 2), np.int64)], [np.empty(0, np.int64)]
    for b in range(n_bands if bands.shape[1] else 0):
        h = np.asarray(bands[b])
        rows.append(np.stack([h.view(np.int64), keys], axis=1))
        dest.append(b * n_parts + (h % np.uint64(n_parts)).astype(np.int64))
    write_parts(out + "-buckets", np.concatenate(rows), np.concatenate(dest), n_bands * n_parts)
    with np.load(prefix + ".table.npz") as z:
        cols = np.empty(len(z["key"]), COLS)  # table rows are in position order, like the keys
        for c in COLS.names:
            cols[c] = z[c]
    save_npy(out + ".cols.npy", cols)
    return out + "-buckets"


def save_plan(path: str, **plan) -> str:
    """Per-shard lists shared by many tasks go through one file, not into every task's
    arguments (3,500 bucket tasks x 16,000 shard paths would be GBs of pickles)."""
    atomic_write_bytes(path, pickle.dumps(plan))
    return path


def load_plan(path: str) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


def bucket_task(args: tuple) -> dict:
    band, part, plan_path, out = args
    plan = load_plan(plan_path)
    scatter_files, n_parts, sources, verify_threshold = (plan[k] for k in ("scattered", "n_parts", "sources",
                                                                           "verify_threshold"))
    rows = read_part(scatter_files, band * n_parts + part)
    hashes = np.ascontiguousarray(rows[:, 0]).view(np.uint64)
    e = band_edges(np.ascontiguousarray(rows[:, 1]), hashes, sources, verify_threshold)
    adj, dest = both_directions(e, n_parts)
    return {"edges": write_parts(out, adj, dest, n_parts), "n": int(len(e))}


class ColumnTables:
    """Keeper columns of given keys, gathered from the scatter ``.cols.npy`` files."""

    def __init__(self, cols: Sources):
        self.cols = cols

    def take(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        rows = self.cols.rows(keys, ".cols.npy")
        return {c: rows[c] for c in COLS.names}


def keeper_task(args: tuple) -> dict:
    part, label_files, plan_path, policy, signature_similarity, out = args
    plan = load_plan(plan_path)
    sources, cols = plan["sources"], plan["cols"]
    lab = read_part(label_files, part)
    order = np.argsort(lab[:, 0], kind="stable")
    nodes, roots = lab[order, 0], lab[order, 1]
    dropped, kept_of, keepers, sizes, node_ids = choose_keepers(nodes, roots, ColumnTables(cols), sources, policy)
    sims = sources.similarity(dropped, kept_of) if signature_similarity else np.ones(len(dropped), np.float32)
    run = (keepers & INDEX_FLAG) == 0  # indexed keepers are not in this run
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_npz(out, dropped=ids_of(dropped, nodes, node_ids), kept_of=ids_of(kept_of, nodes, node_ids),
             sims=np.asarray(sims, np.float32), keepers=ids_of(keepers[run], nodes, node_ids),
             sizes=np.asarray(sizes[run], np.int64))
    return {"path": out, "clusters": int(len(keepers)), "dropped": int(len(dropped)),
            "dropped_vs_index": int(((kept_of >> 62) & 1).sum())}


# --- driver -------------------------------------------------------------------------------------
def partitioned_decision(ctx: StageContext, sources: Sources, n_bands: int, verify_threshold: float, policy: str,
                         signature_similarity: bool, partitions: int = 0) -> dict:
    """Run steps 1-4 and write ``decision.npz``; returns the reduce stats."""
    n_parts = partitions or auto_partitions(sources)
    work = os.path.join(ctx.state_dir, "partitioned")
    shutil.rmtree(work, ignore_errors=True)  # a re-run reduce starts clean
    cols = work_sources(sources, work)
    prefixes, outs = sources.prefixes(), cols.prefixes()
    scattered = ctx.pmap(scatter_task, [(p, o, n_bands, n_parts) for p, o in zip(prefixes, outs)])
    plan = save_plan(os.path.join(work, "plan.pkl"), scattered=scattered, n_parts=n_parts, sources=sources,
                     cols=cols, verify_threshold=verify_threshold)
    links = ctx.pmap(bucket_task, [(b, q, plan, os.path.join(work, "links", f"b{b:03d}-q{q:05d}"))
                                   for b in range(n_bands) for q in range(n_parts)])
    remove_parts(scattered)
    edge_files = [x["edges"] for x in links]
    labels, rounds = connected_components(ctx.pmap, edge_files, n_parts, os.path.join(work, "cc"))
    remove_parts(edge_files)
    parts = ctx.pmap(keeper_task, [(q, labels, plan, policy, signature_similarity,
                                    os.path.join(work, "decision", f"part-{q:05d}.npz")) for q in range(n_parts)])
    merge_decision(ctx.state_dir, [x["path"] for x in parts])
    shutil.rmtree(work, ignore_errors=True)
    return {"edges": sum(x["n"] for x in links), "clusters": sum(x["clusters"] for x in parts),
            "dropped": sum(x["dropped"] for x in parts),
            "dropped_vs_index": sum(x["dropped_vs_index"] for x in parts),
            "partitions": n_parts, "cc_rounds": rounds}


def merge_decision(state_dir: str, part_files: list[str]) -> None:
    cols: dict[str, list] = {"dropped": [], "kept_of": [], "sims": [], "keepers": [], "sizes": []}
    for p in part_files:
        with np.load(p) as z:
            for c in cols:
                cols[c].append(z[c])
    cat = {c: np.concatenate(v) if v else np.empty(0) for c, v in cols.items()}
    for c in ("dropped", "kept_of", "keepers"):
        if not len(cat[c]):
            cat[c] = np.empty(0, "S1")
    # components are checked one partition at a time; an id repeated across them shows here
    check_unique_ids(np.concatenate([cat["dropped"], cat["keepers"]]), "duplicate clusters")
    write_decision(state_dir, cat["dropped"], cat["kept_of"], cat["sims"], cat["keepers"], cat["sizes"])
