"""Connected components over partitioned edge files, bounded memory per task.

The graph never sits in one process: nodes (int64 keys) are hash-partitioned into ``P``
partitions, every task reads only the rows addressed to its partition and writes its
output as one file whose rows are sorted by destination partition (``<path>.rows.npy``
+ ``<path>.off.npy``), so a consumer reads one contiguous memory-mapped slice of each
producer's file.  The driver passes file paths and sums small counters.

Algorithm: alternating large-star / small-star rounds (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014), each one ``pmap`` over the P
partitions.  Both operations keep connectivity and move every node's edges towards the
smallest node of its component; O(log^2 n) rounds worst case, a handful in practice,
also for long chains.  Convergence test (at the input of a large-star round): no node
has both a smaller and a larger neighbour and no node has two smaller neighbours.  Then
every edge joins a node with only larger neighbours to a node with exactly one (smaller)
neighbour, i.e. each component is a star around its smallest key, and the round's
``node -> min(node, neighbours)`` labels are the components: the same roots as
``unionfind.components`` (root = smallest key).
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .base import save_npy
from .minhash import mix64

MAX_ROUNDS = 200  # far above log^2 of any record count: a safety stop, not a tuning knob


# --- partitioned row files ------------------------------------------------------
def node_part(keys: np.ndarray, n_parts: int) -> np.ndarray:
    """Partition of each node key (mixed, so shard-major keys spread evenly)."""
    return (mix64(np.asarray(keys, np.int64).view(np.uint64)) % np.uint64(n_parts)).astype(np.int64)


def write_parts(path: str, rows: np.ndarray, dest: np.ndarray, n_parts: int) -> str:
    """Rows grouped by destination partition (stable: deterministic files)."""
    order = np.argsort(dest, kind="stable")
    off = np.concatenate([[0], np.cumsum(np.bincount(dest, minlength=n_parts))]).astype(np.int64)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_npy(path + ".rows.npy", np.ascontiguousarray(rows[order]))
    save_npy(path + ".off.npy", off)  # written last: a reader never sees offsets without rows
    return path


def read_part(paths: list[str], part: int, width: int = 2) -> np.ndarray:
    """Rows addressed to ``part`` from every producer file (only that slice is read)."""
    out = []
    for p in paths:
        off = np.load(p + ".off.npy")
        lo, hi = int(off[part]), int(off[part + 1])
        if hi > lo:
            out.append(np.asarray(np.load(p + ".rows.npy", mmap_mode="r")[lo:hi]))
    return np.concatenate(out) if out else np.empty((0, width), np.int64)


def remove_parts(paths: list[str]) -> None:
    for p in paths:
        for suffix in (".rows.npy", ".off.npy"):
            if os.path.exists(p + suffix):
                os.remove(p + suffix)


def both_directions(edges: np.ndarray, n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency rows (u, w) for both ends of each edge, with u's partition."""
    rows = np.concatenate([edges, edges[:, ::-1]]) if len(edges) else np.empty((0, 2), np.int64)
    return rows, node_part(rows[:, 0], n_parts)


# --- the two star operations ------------------------------------------------------
def _adjacency(paths: list[str], part: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (u, w) of this partition sorted by (u, w), the group of each row and
    the first row of each u."""
    e = read_part(paths, part)
    e = e[e[:, 0] != e[:, 1]]
    if len(e):
        e = np.unique(e, axis=0)
    u, w = e[:, 0], e[:, 1]
    head = np.concatenate([[True], u[1:] != u[:-1]]) if len(u) else np.empty(0, bool)
    return u, w, np.cumsum(head) - 1, np.flatnonzero(head)


def large_star_task(args: tuple) -> dict:
    """Input: full adjacency of this partition's nodes.  Writes the labels
    ``u -> m(u) = min(u, neighbours)`` (by the label's partition, for the keeper step)
    and the edges ``(w, m(u))`` for every neighbour ``w > u``, keyed by ``w`` (the larger
    end, as small-star wants them); counts the nodes that are not yet star-shaped."""
    part, inputs, n_parts, out = args
    u, w, grp, first = _adjacency(inputs, part)
    nodes = u[first]
    m = np.minimum(nodes, w[first]) if len(first) else nodes  # w sorted within u: w[first] = min
    smaller = np.bincount(grp, weights=w < u, minlength=len(first))
    larger = np.bincount(grp, weights=w > u, minlength=len(first))
    unsettled = int((((smaller > 0) & (larger > 0)) | (smaller >= 2)).sum())
    labels = np.stack([nodes, m], axis=1)
    write_parts(out + "-labels", labels, node_part(m, n_parts), n_parts)
    up = w > u
    edges = np.stack([w[up], m[grp[up]]], axis=1)
    write_parts(out + "-edges", edges, node_part(edges[:, 0], n_parts), n_parts)
    return {"labels": out + "-labels", "edges": out + "-edges", "unsettled": unsettled,
            "nodes": int(len(nodes)), "rows": int(len(u))}


def small_star_task(args: tuple) -> dict:
    """Input: edges keyed by their larger end ``u`` (neighbours ``w < u``).  Connects
    u and all its smaller neighbours to the smallest of them; writes both directions
    (large-star wants full adjacency)."""
    part, inputs, n_parts, out = args
    u, w, grp, first = _adjacency(inputs, part)
    m = w[first]  # smallest smaller neighbour (< u)
    keep = w != m[grp]
    a = np.concatenate([w[keep], u[first]])
    b = np.concatenate([m[grp[keep]], m])
    rows, dest = both_directions(np.stack([a, b], axis=1), n_parts)
    write_parts(out, rows, dest, n_parts)
    return {"edges": out, "rows": int(len(u))}


# --- driver ---------------------------------------------------------------------------
def connected_components(pmap: Callable, edge_files: list[str], n_parts: int, work_dir: str) -> tuple[list[str], int]:
    """Components of the graph whose adjacency rows (both directions, partitioned by
    ``node_part``) are in ``edge_files``.  Returns the label files (rows ``(node, root)``,
    root = smallest key of the component, partitioned by the root's partition) and the
    number of large-star rounds.  ``pmap(fn, items)`` runs the tasks (``ctx.pmap``)."""
    inputs, owned = list(edge_files), False
    for r in range(MAX_ROUNDS):
        res = pmap(large_star_task, [(q, inputs, n_parts, os.path.join(work_dir, f"r{r:03d}-large-{q:05d}"))
                                     for q in range(n_parts)])
        if owned:
            remove_parts(inputs)
        labels = [x["labels"] for x in res]
        if sum(x["unsettled"] for x in res) == 0:
            remove_parts([x["edges"] for x in res])
            return labels, r + 1
        remove_parts(labels)
        stars = [x["edges"] for x in res]
        res = pmap(small_star_task, [(q, stars, n_parts, os.path.join(work_dir, f"r{r:03d}-small-{q:05d}"))
                                     for q in range(n_parts)])
        remove_parts(stars)
        inputs, owned = [x["edges"] for x in res], True
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def read_labels(label_files: list[str], n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``(nodes, roots)`` sorted by node (tests and small runs only)."""
    lab = np.concatenate([read_part(label_files, q) for q in range(n_parts)])
    order = np.argsort(lab[:, 0], kind="stable")
    return lab[order, 0], lab[order, 1]
