"""Shared machinery of the hash-bucket dedup stages (exact and MinHash).

Both are "records sharing a bucket in some band are duplicates": exact dedup is one
band whose bucket is the normalised-text hash, MinHash LSH has ``bands`` of them.

Artifacts per shard (written by ``collect``; never the text):

* ``<shard>.bands.npy``  (bands, N) uint64 bucket hashes, band-major so a reduce task
  reads one contiguous row per shard (partitioned by band);
* ``<shard>.bkeys.npy``  (N,) int64 record keys of those columns (empty texts excluded);
* ``<shard>.table.npz``  key, length, score, source rank of every record (keeper policy);
* ``<shard>.ids.npy``    record ids as fixed-width UTF-8 bytes (memory-mapped: the reduce
  reads only the ids of cluster members, to break keeper ties and name ``dup_of``);
* ``<shard>.sig.npy``    (N, num_perm) uint32 MinHash signatures (MinHash only).

Inside the reduce a record is addressed by an int64 key ``shard << 32 | position``
(its row in the shard's arrays; index records use ``INDEX_FLAG | part << 32 | position``).
``reduce`` (``reduce.py``) groups buckets per (band, hash partition), computes the
connected components in partitioned rounds (``distcc.py``), picks a keeper per component
and writes the decision by record id (ids are unique per occurrence, see ``records.make_record``):
sorted dropped ids, the kept record's id and the similarity.  ``process`` looks each
record's id up there, so nothing is carried in the record between segments.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import orjson

from ..io.atomic import atomic_open, atomic_write_bytes
from ..pipeline import GlobalStage, StageContext
from ..records import Record
from .keys import check_params, keeper_order, key_text, record_table
from .unionfind import UnionFind
from .minhash import bucket_edges

INDEX_FLAG = np.int64(1 << 62)


# --- atomic artifact writing ------------------------------------------------------
def save_npy(path: str, arr: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.save(f, arr)


def save_npz(path: str, **arrays) -> None:
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def save_json(path: str, obj) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))


def load_json(path: str):
    with open(path, "rb") as f:
        return orjson.loads(f.read())


def id_array(ids: list[str]) -> np.ndarray:
    """Record ids as a sortable fixed-width bytes array (what decisions are keyed on)."""
    return np.array([i.encode("utf-8", "surrogatepass") for i in ids], dtype=bytes) if ids else np.empty(0, "S1")


def check_unique_ids(ids: np.ndarray, where: str) -> None:
    """Decisions are keyed on ids, so two records sharing one would share a fate."""
    u, c = np.unique(ids, return_counts=True)
    if (c > 1).any():
        raise ValueError(f"dedup: record id {u[c > 1][0].decode(errors='replace')!r} occurs {int(c.max())} times "
                         f"({where}); ids must be unique per record (records.make_record with an origin)")


def write_shard(prefix: str, keys: np.ndarray, bands: np.ndarray, valid: np.ndarray,
                table: dict, ids: list[str], sig: np.ndarray | None = None) -> None:
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    idarr = id_array(ids)
    check_unique_ids(idarr, os.path.basename(prefix))
    save_npy(prefix + ".bands.npy", np.ascontiguousarray(bands[valid].T))
    save_npy(prefix + ".bkeys.npy", keys[valid])
    save_npz(prefix + ".table.npz", key=keys, **table)
    save_npy(prefix + ".ids.npy", idarr)
    if sig is not None:
        save_npy(prefix + ".sig.npy", sig)


def shard_prefixes(directory: str) -> list[str]:
    return sorted(p[: -len(".table.npz")] for p in glob.glob(os.path.join(directory, "*.table.npz")))


# --- reduce: band partitions -> forest -> components --------------------------------
def band_task(args: tuple) -> np.ndarray:
    """One band across all shards (and index parts): candidate edges (a forest, since
    each record sits in one bucket per band), optionally verified on signatures.
    (Single-process reference path, see ``reference_decision``.)"""
    band, sources, verify_threshold = args
    keys, hashes = [], []
    for p in sources.prefixes():
        b = np.load(p + ".bands.npy", mmap_mode="r")
        if b.shape[1]:
            hashes.append(np.asarray(b[band]))
            keys.append(np.load(p + ".bkeys.npy"))
    if not keys:
        return np.empty((0, 2), np.int64)
    return band_edges(np.concatenate(keys), np.concatenate(hashes), sources, verify_threshold)


def band_edges(keys: np.ndarray, hashes: np.ndarray, sources: "Sources", verify_threshold: float) -> np.ndarray:
    """Duplicate links among records of one band (or of whole buckets of it): bucket
    stars ``(smallest key, member)``, minus index-index links, verified on signatures."""
    e = bucket_edges(keys, hashes)
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

    def rows(self, keys: np.ndarray, suffix: str) -> np.ndarray | None:
        """Rows of ``keys`` in the per-shard arrays ``<prefix><suffix>`` (memory-mapped:
        only these rows are read).  None when ``keys`` is empty."""
        keys = np.asarray(keys, np.int64)
        if len(keys) == 0:
            return None
        src = np.where(keys & INDEX_FLAG, (keys & ~INDEX_FLAG) >> 32 | (1 << 40), keys >> 32)
        order = np.argsort(src, kind="stable")
        bounds = np.flatnonzero(np.concatenate([[True], src[order][1:] != src[order][:-1], [True]]))
        parts = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            idx = order[lo:hi]
            arr = np.load(self.prefix_of(int(keys[idx[0]])) + suffix, mmap_mode="r")
            parts.append(np.asarray(arr[keys[idx] & 0xFFFFFFFF]))
        width = max(p.dtype.itemsize for p in parts)
        dtype = parts[0].dtype if parts[0].dtype.kind != "S" else np.dtype(f"S{width}")
        out = np.empty((len(keys),) + parts[0].shape[1:], dtype)
        for (lo, hi), p in zip(zip(bounds[:-1], bounds[1:]), parts):
            out[order[lo:hi]] = p
        return out

    def ids(self, keys: np.ndarray) -> np.ndarray:
        out = self.rows(keys, ".ids.npy")
        return out if out is not None else np.empty(0, "S1")

    def signatures(self, keys: np.ndarray) -> np.ndarray:
        out = self.rows(keys, ".sig.npy")
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


def choose_keepers(nodes: np.ndarray, roots: np.ndarray, tables: RecordTables, sources: Sources,
                   policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per component the preferred record.

    Returns (dropped keys, their keeper's key, keeper keys, component sizes, ids of
    ``nodes``); ids are read only for component members (ties and ``dup_of``)."""
    if len(nodes) == 0:
        e = np.empty(0, np.int64)
        return e, e, e, e, np.empty(0, "S1")
    t = tables.take(nodes)
    ids = sources.ids(nodes)
    check_unique_ids(ids, "duplicate clusters")
    is_index = (nodes & INDEX_FLAG) != 0
    pri = keeper_order(policy, nodes, ids, t["length"], t["score"], t["src_rank"], is_index)
    rank = np.empty(len(nodes), np.int64)
    rank[pri] = np.arange(len(nodes))
    order = np.lexsort((rank, roots))  # by component, best first
    n_sorted, r_sorted = nodes[order], roots[order]
    head = np.concatenate([[True], r_sorted[1:] != r_sorted[:-1]])
    grp = np.cumsum(head) - 1
    keepers = n_sorted[head]
    sizes = np.bincount(grp)
    drop = ~head & ((n_sorted & INDEX_FLAG) == 0)  # index records are not in this run
    return n_sorted[drop], keepers[grp[drop]], keepers, sizes, ids


def ids_of(keys: np.ndarray, nodes: np.ndarray, node_ids: np.ndarray) -> np.ndarray:
    """Ids of ``keys`` (a subset of the sorted ``nodes`` whose ids are ``node_ids``)."""
    return node_ids[np.searchsorted(nodes, keys)] if len(keys) else np.empty(0, "S1")


def write_decision(state_dir: str, dropped: np.ndarray, kept_of: np.ndarray, sims: np.ndarray,
                   keepers: np.ndarray, sizes: np.ndarray) -> None:
    """The decision by record id: ``dropped``/``kept_of`` (dup_of) and ``keepers`` are id
    arrays; stored sorted so ``process`` finds a record with one binary search."""
    order = np.argsort(dropped, kind="stable")
    korder = np.argsort(keepers, kind="stable")
    save_npz(os.path.join(state_dir, "decision.npz"), dropped=dropped[order], kept_of=kept_of[order],
             sims=np.asarray(sims, np.float32)[order], keepers=keepers[korder],
             keeper_sizes=np.asarray(sizes, np.int64)[korder])


def _find(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in ``sorted_ids`` and whether each is there."""
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    i = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return i, sorted_ids[i] == ids


class DedupStage(GlobalStage):
    """Base of the bucket dedup stages: collect tags keys, load/process apply the decision."""
    reason = "dup"
    common_defaults = {
        "key_field": "auto", "keep": "longest", "score_name": "quality", "source_priority": [],
        "index_dir": "", "write_index": "",
        # keys shorter than this are never duplicates: two different questions may both be
        # answered "好的。" or "正确选项是B"
        "min_key_chars": 0,
    }

    def __init__(self, label=None, **params):
        super().__init__(label, **params)
        check_params(self)

    # collect helpers ---------------------------------------------------------------
    def keys_and_table(self, records: list[Record], ctx: StageContext):
        """Row keys of this shard's artifacts, key texts and keeper columns."""
        keys = (np.int64(ctx.shard_index) << np.int64(32)) + np.arange(len(records), dtype=np.int64)
        texts = [key_text(r, self.key_field) for r in records]
        if self.min_key_chars:
            texts = [t if len(t.strip()) >= self.min_key_chars else "" for t in texts]
        table = record_table(records, self.score_name, self.source_priority)
        return keys, texts, table

    def prefix(self, ctx: StageContext) -> str:
        return ctx.artifact_path("")

    # load/process ------------------------------------------------------------------
    def load(self, ctx: StageContext) -> None:
        with np.load(os.path.join(ctx.state_dir, "decision.npz")) as z:
            self.dropped, self.kept_of, self.sims = z["dropped"], z["kept_of"], z["sims"]
            self.keepers, self.keeper_sizes = z["keepers"], z["keeper_sizes"]

    def process_batch(self, records: list[Record]) -> list[Record]:
        if not records:
            return records
        ids = id_array([r.id for r in records])
        di, dropped = _find(self.dropped, ids)
        ki, keeper = _find(self.keepers, ids)
        for r, i, is_dup, j, is_keeper in zip(records, di.tolist(), dropped.tolist(), ki.tolist(), keeper.tolist()):
            if is_dup:
                sim = round(float(self.sims[i]), 4)
                r.signals()[self.label] = sim
                self.reject(r, self.reason, sim, self.threshold_value(),
                            dup_of=self.kept_of[i].decode("utf-8", "surrogatepass"), similarity=sim)
            elif is_keeper:
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


def reference_decision(ctx: StageContext, sources: Sources, n_bands: int, verify_threshold: float, policy: str,
                       signature_similarity: bool) -> dict:
    """The single-process merge (one task per band, the driver holds every link and all
    keeper columns): kept as the reference the partitioned reduce (``reduce.py``) is
    tested and benchmarked against.  Writes the same ``decision.npz``."""
    nodes, roots, n_edges = merge_forests(ctx, n_bands, sources, verify_threshold)
    tables = RecordTables(sources.prefixes())
    dropped, kept_of, keepers, sizes, node_ids = choose_keepers(nodes, roots, tables, sources, policy)
    sims = sources.similarity(dropped, kept_of) if signature_similarity else np.ones(len(dropped), np.float32)
    run = (keepers & INDEX_FLAG) == 0  # indexed keepers are not in this run
    write_decision(ctx.state_dir, ids_of(dropped, nodes, node_ids), ids_of(kept_of, nodes, node_ids), sims,
                   ids_of(keepers[run], nodes, node_ids), sizes[run])
    return {"edges": n_edges, "clusters": int(len(keepers)), "dropped": int(len(dropped)),
            "dropped_vs_index": int(((kept_of >> 62) & 1).sum())}
