"""Persisted dedup index: band buckets (+ signatures, ids) of an earlier curated corpus.

Layout of ``index_dir``::

    meta.json              hashing parameters; a run must match them to use the index
    part-00000.bands.npy   same artifact format as a run shard (see base.py)
    part-00000.bkeys.npy / .table.npz / .ids.npy / .sig.npy
    ...

A run with ``index_dir`` adds the parts as extra sources in its reduce: a new record
whose bucket meets an indexed record is a duplicate of it (indexed records always
win).  ``write_index`` appends the records this stage kept as new parts (one per run
shard, so memory stays bounded) in ``finalize``.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from ..pipeline import ConfigError
from .base import INDEX_FLAG, load_json, save_json, save_npy, save_npz, shard_prefixes


def index_parts(index_dir: str, meta: dict) -> list[str]:
    if not index_dir:
        return []
    mpath = os.path.join(index_dir, "meta.json")
    if not os.path.exists(mpath):
        raise ConfigError(f"index_dir {index_dir!r}: no meta.json (not a thresher dedup index)")
    stored = load_json(mpath)
    diff = {k: (stored.get(k), v) for k, v in meta.items() if stored.get(k) != v}
    if diff:
        raise ConfigError(f"index_dir {index_dir!r} was built with different parameters: "
                          + ", ".join(f"{k}: index={a!r} recipe={b!r}" for k, (a, b) in diff.items()))
    return sorted(p[: -len(".table.npz")] for p in glob.glob(os.path.join(index_dir, "part-*.table.npz")))


def append_run(index_dir: str, meta: dict, artifact_dir: str, dropped: np.ndarray) -> int:
    """Add the records of a run's shards that were not dropped (``dropped``: their ids,
    sorted); returns how many."""
    os.makedirs(index_dir, exist_ok=True)
    mpath = os.path.join(index_dir, "meta.json")
    if os.path.exists(mpath):
        index_parts(index_dir, meta)  # raises on a parameter mismatch
    else:
        save_json(mpath, meta)
    part = len(glob.glob(os.path.join(index_dir, "part-*.table.npz")))
    added = 0
    for prefix in shard_prefixes(artifact_dir):
        with np.load(prefix + ".table.npz") as z:
            table = {k: z[k] for k in z.files}
        old = table["key"]
        ids = np.load(prefix + ".ids.npy")
        keep = ~np.isin(ids, dropped)
        if not keep.any():
            continue
        new_key = (INDEX_FLAG | (np.int64(part) << np.int64(32))) + np.arange(int(keep.sum()), dtype=np.int64)
        bkeys = np.load(prefix + ".bkeys.npy")
        bands = np.load(prefix + ".bands.npy")
        bpos = np.searchsorted(old, bkeys)
        bkeep = keep[bpos]
        remap = np.cumsum(keep) - 1
        out = os.path.join(index_dir, f"part-{part:05d}")
        save_npy(out + ".bands.npy", np.ascontiguousarray(bands[:, bkeep]))
        save_npy(out + ".bkeys.npy", new_key[remap[bpos[bkeep]]])
        if os.path.exists(prefix + ".sig.npy"):
            save_npy(out + ".sig.npy", np.load(prefix + ".sig.npy")[keep])
        save_npy(out + ".ids.npy", ids[keep])
        save_npz(out + ".table.npz", **{k: (new_key if k == "key" else v[keep]) for k, v in table.items()})
        part += 1
        added += int(keep.sum())
    return added
