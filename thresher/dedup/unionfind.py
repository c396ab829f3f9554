"""Vectorised union-find (connected components) over int64 node keys.

Works on edge arrays, not Python objects, so a reduce can merge the partial
components of many band partitions (each reduced to ``node -> root`` edges) with one
more call: components of a union of forests are the components of the union.
The root of a component is its smallest key, so results do not depend on the order
edges arrive in (and hence not on the number of workers or shards).
"""
from __future__ import annotations

import numpy as np


def components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the graph given by ``edges`` (E, 2) int64 keys.

    Returns ``(nodes, roots)``: every node that appears in an edge (sorted) and the
    smallest key of its component.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(edges) == 0:
        e = np.empty(0, np.int64)
        return e, e
    nodes, inv = np.unique(edges, return_inverse=True)
    inv = inv.reshape(-1, 2)
    u, v = inv[:, 0], inv[:, 1]
    parent = np.arange(len(nodes), dtype=np.int64)  # compact ids are ordered like keys
    while True:
        pu, pv = parent[u], parent[v]
        low = np.minimum(pu, pv)
        before = parent.copy()
        # hook both current roots onto the smaller one (min is order-independent)
        np.minimum.at(parent, pu, low)
        np.minimum.at(parent, pv, low)
        _compress(parent)
        if np.array_equal(before, parent):
            break
    return nodes, nodes[parent]


def _compress(parent: np.ndarray) -> None:
    """Pointer jumping until every node points at its root."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return
        parent[:] = grand


def star_edges(nodes: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """A component as ``root -- member`` edges (the smallest edge set that keeps it)."""
    m = nodes != roots
    return np.stack([roots[m], nodes[m]], axis=1)


class UnionFind:
    """Incremental variant: add edge batches (e.g. one per band partition), then solve."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []

    def add(self, edges: np.ndarray) -> None:
        edges = np.asarray(edges, np.int64).reshape(-1, 2)
        if len(edges):
            # shrink each batch to its forest before keeping it: bounded by the node count
            self._parts.append(star_edges(*components(edges)))
            if len(self._parts) > 16:
                self._parts = [star_edges(*components(np.concatenate(self._parts)))]

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._parts:
            e = np.empty(0, np.int64)
            return e, e
        return components(np.concatenate(self._parts))
