import random

import numpy as np

from thresher.dedup.unionfind import UnionFind, components


def _naive(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x
    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def test_components_match_naive_union_find():
    rng = random.Random(0)
    edges = [(rng.randrange(2000), rng.randrange(2000)) for _ in range(1500)]
    nodes, roots = components(np.array(edges))
    assert dict(zip(nodes.tolist(), roots.tolist())) == _naive(edges)


def test_chain_split_over_shards_merges():
    # keys of 4 shards (shard << 32 | pos); each partition sees only one link of the chain
    k = [(s << 32) | p for s, p in [(0, 5), (1, 2), (2, 9), (3, 0), (1, 7)]]
    parts = [np.array([[k[0], k[1]]]), np.array([[k[2], k[1]]]), np.array([[k[3], k[2]]]), np.array([[k[4], k[3]]])]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        uf = UnionFind()
        for i in order:
            uf.add(parts[i])
        nodes, roots = uf.solve()
        assert set(roots.tolist()) == {min(k)} and len(nodes) == 5


def test_long_path_converges():
    n = 5000
    edges = np.stack([np.arange(1, n), np.arange(n - 1)], axis=1)[::-1]
    nodes, roots = components(edges)
    assert (roots == 0).all() and len(nodes) == n
