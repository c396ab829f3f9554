"""The partitioned reduce (bucket partitions + distributed connected components +
per-partition keepers) against the single-process union-find path it replaced."""
import os

import multiprocess as mp
import numpy as np
import pytest

from thresher.dedup.base import Sources, reference_decision
from thresher.dedup.distcc import both_directions, connected_components, read_labels, write_parts
from thresher.dedup.reduce import partitioned_decision
from thresher.dedup.unionfind import components
from thresher.pipeline import StageContext

from .test_stages import STAGES, _decisions, _run, corpus  # noqa: F401  (fixture)


def serial(fn, items):
    return [fn(x) for x in items]


def _distributed(tmp_path, edges, n_parts, n_files=3, pmap=serial):
    files = []
    for i, chunk in enumerate(np.array_split(edges, n_files)):
        rows, dest = both_directions(chunk, n_parts)
        files.append(write_parts(str(tmp_path / f"in{i}"), rows, dest, n_parts))
    labels, rounds = connected_components(pmap, files, n_parts, str(tmp_path / "cc"))
    return read_labels(labels, n_parts), rounds


def _random_graph(rng, n):
    """Sparse random links plus a long chain through random keys (spans partitions)."""
    keys = rng.choice(1 << 40, n, replace=False).astype(np.int64) | (rng.integers(0, 64, n) << 32)
    e = keys[rng.integers(0, n, (int(rng.integers(1, n)), 2))]
    chain = rng.permutation(keys)[: int(rng.integers(2, n))]
    e = np.concatenate([e, np.stack([chain[:-1], chain[1:]], axis=1)])
    return e[e[:, 0] != e[:, 1]]


@pytest.mark.parametrize("n_parts", [1, 3, 4])
def test_distributed_components_equal_union_find(tmp_path, n_parts):
    rng = np.random.default_rng(n_parts)
    for trial in range(12):
        e = _random_graph(rng, int(rng.integers(5, 2000)))
        (nodes, roots), _ = _distributed(tmp_path / f"t{trial}", e, n_parts)
        ref_nodes, ref_roots = components(e)
        assert np.array_equal(nodes, ref_nodes) and np.array_equal(roots, ref_roots)


@pytest.mark.parametrize("edges", [[(1, 3), (2, 3)], [(1, 2), (2, 3)], [(5, 9), (7, 9), (7, 8), (1, 8)]])
def test_convergence_test_rejects_non_stars(tmp_path, edges):
    """Two smaller neighbours, or a smaller and a larger one, are not a finished star."""
    e = np.array(edges, np.int64)
    (nodes, roots), rounds = _distributed(tmp_path, e, 2, n_files=1)
    assert (roots == e.min()).all() and rounds > 1


def test_long_chain_across_partitions_converges_in_few_rounds(tmp_path):
    n = 20_000
    order = np.random.default_rng(0).permutation(n).astype(np.int64)  # neighbours in random partitions
    with mp.Pool(2) as pool:
        (nodes, roots), rounds = _distributed(tmp_path, np.stack([order[:-1], order[1:]], axis=1), 4,
                                              pmap=pool.map)
    assert len(nodes) == n and (roots == 0).all()
    assert rounds < 30  # O(log^2 n), not O(n) like plain label propagation


def _decision(state_dir):
    with np.load(os.path.join(state_dir, "decision.npz")) as z:
        return {k: z[k] for k in z.files}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if a[k].dtype.kind == "S":  # widths may differ, values may not
            assert a[k].tolist() == b[k].tolist(), k
        else:
            assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("keep", ["longest", "first"])
def test_stage_decision_equals_single_process_reference(tmp_path, corpus, keep):  # noqa: F811
    """Same artifacts, reduced by the old path and by the partitioned one with P = 1, 2, 5:
    byte-equal dropped ids, dup_of, similarities, keepers and cluster sizes."""
    inp, _ = corpus
    out, _, _ = _run(tmp_path, "run", inp, [{"exact_dedup": {"keep": keep}},
                                            {"minhash_dedup": {"threshold": 0.7, "keep": keep}}])
    for stage_dir, n_bands, verify, sim in [("global-00-exact_dedup", 1, 0.0, False),
                                            ("global-01-minhash_dedup", None, 0.58, True)]:
        art = str(out / "work" / stage_dir / "artifacts")
        sources = Sources.of_run(art)
        n_bands = n_bands or int(np.load(sources.prefixes()[0] + ".bands.npy", mmap_mode="r").shape[0])
        results = {}
        for name in ["ref", 1, 2, 5]:
            state = tmp_path / f"{stage_dir}-{name}"
            state.mkdir()
            ctx = StageContext(run_dir=str(out), artifact_dir=art, state_dir=str(state))
            if name == "ref":
                stats = reference_decision(ctx, sources, n_bands, verify, keep, sim)
            else:
                stats = partitioned_decision(ctx, sources, n_bands, verify, keep, sim, partitions=name)
                assert stats["partitions"] == name and not (state / "partitioned").exists()
            results[name] = (_decision(str(state)), {k: stats[k] for k in ("edges", "clusters", "dropped")})
        assert len(results["ref"][0]["dropped"]) > 0
        for name in (1, 2, 5):
            _same(results["ref"][0], results[name][0])
            assert results[name][1] == results["ref"][1]


def test_outputs_independent_of_partitions_and_workers(tmp_path, corpus):  # noqa: F811
    inp, _ = corpus
    runs = {}
    for parts, workers in [(1, 1), (4, 1), (4, 2), (0, 2)]:
        stages = [{k: {**v, "partitions": parts}} for s in STAGES for k, v in s.items()]
        _, kept, rej = _run(tmp_path, f"p{parts}w{workers}", inp, stages, workers=workers)
        runs[parts, workers] = (sorted(kept), _decisions(rej))
    first = runs[1, 1]
    assert len(first[1]) == 9  # 2 exact + 7 near dups planted (incl. a 2-step chain)
    assert all(r == first for r in runs.values())


def test_incremental_index_with_partitions(tmp_path, zh_docs):
    """Index parts go through the same scatter/bucket/keeper steps (indexed records win)."""
    import random

    from thresher.dedup.synth import mutate
    from .test_stages import _write
    rng = random.Random(3)
    old = zh_docs(20, 250, seed=31)
    p_old, p_new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    _write(p_old, [{"text": d} for d in old])
    _write(p_new, [{"text": mutate(d, 0.01, rng)} for d in old[:4]] + [{"text": d} for d in zh_docs(5, 250, seed=32)])
    idx = str(tmp_path / "index")
    stage = {"threshold": 0.7, "partitions": 3}
    _, kept_old, _ = _run(tmp_path, "old", p_old, [{"minhash_dedup": {**stage, "write_index": idx}}], source="c")
    _, kept_new, rej = _run(tmp_path, "new", p_new, [{"minhash_dedup": {**stage, "index_dir": idx}}], source="b")
    expected = sorted(k for k, r in kept_old.items() if r.text in old[:4])
    assert sorted(r.meta["reject"]["dup_of"] for r in rej) == expected
    assert len(kept_new) == 5


def test_negative_partitions_is_a_config_error():
    from thresher.pipeline import ConfigError
    from thresher.dedup.stages import MinHashDedup
    with pytest.raises(ConfigError, match="partitions"):
        MinHashDedup(partitions=-1)


def test_auto_partitions_follow_record_count(tmp_path, corpus, monkeypatch):  # noqa: F811
    import orjson

    from thresher.dedup import reduce
    inp, _ = corpus
    monkeypatch.setattr(reduce, "RECORDS_PER_PARTITION", 20)  # 69 records -> 4 partitions
    out, _, rej = _run(tmp_path, "auto", inp, STAGES)
    stats = orjson.loads((out / "work" / "global-01-minhash_dedup" / "state" / "stats.json").read_bytes())
    assert stats["partitions"] == 4 and stats["cc_rounds"] >= 1
    assert len(rej) == 9
