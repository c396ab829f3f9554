"""Shared machinery of the hash-bucket dedup stages (exact and MinHash).

Both are "records sharing a bucket in some band are duplicates": exact dedup is one
band whose bucket is the normalised-text hash, MinHash LSH has ``bands`` of them.

Artifacts per shard (written by ``collect``; never the text):

* ``<shard>.bands.npy``  (bands, N) uint64 bucket hashes, band-major so a reduce task
  reads one contiguous row per shard (partitioned by band);
* ``<shard>.bkeys.npy``  (N,) int64 record keys of those columns (empty texts excluded);
* ``<shard>.table.npz``  key, length, score, source rank of every record (keeper policy);
* ``<shard>.ids.json``   record ids (to name the kept record in ``dup_of``);
* ``<shard>.sig.npy``    (N, num_perm) uint32 MinHash signatures (MinHash only).

A record key is ``shard << 32 | position``; records of a persisted index use
``INDEX_FLAG | part << 32 | position``.  ``reduce`` runs one ``ctx.pmap`` task per
band (group by bucket, shrink to a forest), merges the forests with a union-find,
picks a keeper per component and writes the decision: sorted dropped keys, the kept
record's id and the similarity.  ``collect`` tags each record with its key in
``meta["_dedup_key"]``, which ``process`` pops: the only way a process call can tell
two records apart that share a content-addressed id (same source, same text).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import orjson

from ..pipeline import GlobalStage, StageContext
from ..records import Record
from .keys import check_params, keeper_order, key_text, record_table
from .unionfind import UnionFind
from .minhash import bucket_edges

INDEX_FLAG = np.int64(1 << 62)
KEY_TAG = "_dedup_key"


# --- atomic artifact writing ------------------------------------------------------
def save_npy(path: str, arr: np.ndarray) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def save_npz(path: str, **arrays) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def save_json(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))
    os.replace(tmp, path)


def load_json(path: str):
    with open(path, "rb") as f:
        return orjson.loads(f.read())


def write_shard(prefix: str, keys: np.ndarray, bands: np.ndarray, valid: np.ndarray,
                table: dict, ids: list[str], sig: np.ndarray | None = None) -> None:
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    save_npy(prefix + ".bands.npy", np.ascontiguousarray(bands[valid].T))
    save_npy(prefix + ".bkeys.npy", keys[valid])
    save_npz(prefix + ".table.npz", key=keys, **table)
    save_json(prefix + ".ids.json", ids)
    if sig is not None:
        save_npy(prefix + ".sig.npy", sig)


def shard_prefixes(directory: str) -> list[str]:
    return sorted(p[: -len(".table.npz")] for p in glob.glob(os.path.join(directory, "*.table.npz")))


# --- reduce: band partitions -> forest -> components --------------------------------
def band_task(args: tuple) -> np.ndarray:
    """One band across all shards (and index parts): candidate edges (a forest, since
    each record sits in one bucket per band), optionally verified on signatures."""
    band, sources, verify_threshold = args
    keys, hashes = [], []
    for p in sources.prefixes():
        b = np.load(p + ".bands.npy", mmap_mode="r")
        if b.shape[1]:
            hashes.append(np.asarray(b[band]))
            keys.append(np.load(p + ".bkeys.npy"))
    if not keys:
        return np.empty((0, 2), np.int64)
    e = bucket_edges(np.concatenate(keys), np.concatenate(hashes))
    e = e[~((e[:, 0] & INDEX_FLAG) & (e[:, 1] & INDEX_FLAG)).astype(bool)]  # both already curated
    if verify_threshold > 0 and len(e):
        e = e[sources.similarity(e[:, 0], e[:, 1]) >= verify_threshold]
    return e


class Sources:
    """Where the artifacts of each key live: run shards and persisted index parts."""

    def __init__(self, shards: dict[int, str], index: dict[int, str] | None = None):
        self.shards, self.index = shards, index or {}

    @classmethod
    def of_run(cls, artifact_dir: str, index_parts: list[str] | None = None) -> "Sources":
        shards = {int(os.path.basename(p).split("-")[1]): p for p in shard_prefixes(artifact_dir)}
        return cls(shards, dict(enumerate(index_parts or [])))

    def prefixes(self) -> list[str]:
        return [self.shards[k] for k in sorted(self.shards)] + [self.index[k] for k in sorted(self.index)]

    def prefix_of(self, key: int) -> str:
        if key & int(INDEX_FLAG):
            return self.index[(key & ~int(INDEX_FLAG)) >> 32]
        return self.shards[key >> 32]

    def signatures(self, keys: np.ndarray) -> np.ndarray:
        """Signature rows of ``keys`` (memory-mapped: only these rows are read)."""
        out = None
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys.tolist()):
            groups.setdefault(self.prefix_of(k), []).append(i)
        for p, idx in groups.items():
            sig = np.load(p + ".sig.npy", mmap_mode="r")
            if out is None:
                out = np.empty((len(keys), sig.shape[1]), np.uint32)
            idx = np.asarray(idx)
            out[idx] = sig[keys[idx] & 0xFFFFFFFF]
        return out if out is not None else np.empty((0, 0), np.uint32)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(a) == 0:
            return np.empty(0, np.float32)
        return (self.signatures(a) == self.signatures(b)).mean(axis=1).astype(np.float32)


class RecordTables:
    """Keeper columns of every record (24 bytes each), looked up by key."""

    def __init__(self, prefixes: list[str]):
        cols: dict[str, list] = {"key": [], "length": [], "score": [], "src_rank": []}
        for p in prefixes:
            with np.load(p + ".table.npz") as z:
                for c in cols:
                    cols[c].append(z[c])
        self.prefixes = prefixes
        self.cols = {c: np.concatenate(v) if v else np.empty(0) for c, v in cols.items()}
        order = np.argsort(self.cols["key"], kind="stable")
        self.cols = {c: v[order] for c, v in self.cols.items()}

    def take(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        idx = np.searchsorted(self.cols["key"], keys)
        return {c: v[idx] for c, v in self.cols.items()}


class IdLookup:
    """Record ids by key, loading each shard's id list only when first needed."""

    def __init__(self, sources: Sources):
        self.sources = sources
        self.cache: dict[str, list] = {}

    def __call__(self, key: int) -> str:
        p = self.sources.prefix_of(key)
        if p not in self.cache:
            self.cache[p] = load_json(p + ".ids.json")
        return self.cache[p][key & 0xFFFFFFFF]


def choose_keepers(nodes: np.ndarray, roots: np.ndarray, tables: RecordTables,
                   policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per component the preferred record; returns (dropped, their keeper, keepers, sizes)."""
    if len(nodes) == 0:
        e = np.empty(0, np.int64)
        return e, e, e, e
    t = tables.take(nodes)
    is_index = (nodes & INDEX_FLAG) != 0
    pri = keeper_order(policy, nodes, t["length"], t["score"], t["src_rank"], is_index)
    rank = np.empty(len(nodes), np.int64)
    rank[pri] = np.arange(len(nodes))
    order = np.lexsort((rank, roots))  # by component, best first
    n_sorted, r_sorted = nodes[order], roots[order]
    head = np.concatenate([[True], r_sorted[1:] != r_sorted[:-1]])
    grp = np.cumsum(head) - 1
    keepers = n_sorted[head]
    sizes = np.bincount(grp)
    drop = ~head & ((n_sorted & INDEX_FLAG) == 0)  # index records are not in this run
    return n_sorted[drop], keepers[grp[drop]], keepers, sizes


def write_decision(state_dir: str, dropped: np.ndarray, kept_ids: list[str], sims: np.ndarray,
                   keepers: np.ndarray, sizes: np.ndarray) -> None:
    order = np.argsort(dropped)
    save_npz(os.path.join(state_dir, "decision.npz"), dropped=dropped[order], sims=sims[order].astype(np.float32),
             keepers=np.sort(keepers[(keepers & INDEX_FLAG) == 0]),
             keeper_sizes=sizes[np.argsort(keepers)][(np.sort(keepers) & INDEX_FLAG) == 0])
    save_json(os.path.join(state_dir, "kept_ids.json"), [kept_ids[i] for i in order])


class DedupStage(GlobalStage):
    """Base of the bucket dedup stages: collect tags keys, load/process apply the decision."""
    reason = "dup"
    common_defaults = {
        "key_field": "auto", "keep": "longest", "score_name": "quality", "source_priority": [],
        "index_dir": "", "write_index": "",
    }

    def __init__(self, label=None, **params):
        super().__init__(label, **params)
        check_params(self)

    # collect helpers ---------------------------------------------------------------
    def tag_and_table(self, records: list[Record], ctx: StageContext):
        keys = (np.int64(ctx.shard_index) << np.int64(32)) + np.arange(len(records), dtype=np.int64)
        texts = [key_text(r, self.key_field) for r in records]
        for r, k in zip(records, keys.tolist()):
            r.meta[KEY_TAG] = k
        table = record_table(records, self.score_name, self.source_priority)
        return keys, texts, table

    def prefix(self, ctx: StageContext) -> str:
        return ctx.artifact_path("")

    # load/process ------------------------------------------------------------------
    def load(self, ctx: StageContext) -> None:
        with np.load(os.path.join(ctx.state_dir, "decision.npz")) as z:
            self.dropped, self.sims = z["dropped"], z["sims"]
            self.keepers, self.keeper_sizes = z["keepers"], z["keeper_sizes"]
        self.kept_ids = load_json(os.path.join(ctx.state_dir, "kept_ids.json"))

    def process_batch(self, records: list[Record]) -> list[Record]:
        for r in records:
            key = r.meta.pop(KEY_TAG, None)
            if key is None:
                continue
            i = np.searchsorted(self.dropped, key)
            if i < len(self.dropped) and self.dropped[i] == key:
                sim = round(float(self.sims[i]), 4)
                r.signals()[self.label] = sim
                self.reject(r, self.reason, sim, self.threshold_value(), dup_of=self.kept_ids[i], similarity=sim)
                continue
            j = np.searchsorted(self.keepers, key)
            if j < len(self.keepers) and self.keepers[j] == key:
                r.signals()[self.label] = {"dups": int(self.keeper_sizes[j]) - 1}
                self.count("cluster_keepers")
        return records

    def threshold_value(self):
        return None


def merge_forests(ctx: StageContext, n_bands: int, sources: Sources,
                  verify_threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Band partitions in parallel, then one union-find over their forests."""
    uf = UnionFind()
    n_edges = 0
    for e in ctx.pmap(band_task, [(j, sources, verify_threshold) for j in range(n_bands)]):
        n_edges += len(e)
        uf.add(e)
    nodes, roots = uf.solve()
    return nodes, roots, n_edges
