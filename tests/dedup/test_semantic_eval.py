import random

import numpy as np
import orjson

from thresher.config import validate
from thresher.dedup.base import Sources
from thresher.dedup.cli import sweep_main
from thresher.dedup.evaluate import main as eval_main
from thresher.dedup.semantic import HashedNgramEmbedder, _cluster_task, _resolve, spherical_kmeans
from thresher.dedup.synth import mutate
from thresher.executor.runner import run_recipe
from thresher.io.readers import iter_records


def test_blockwise_max_cosine_equals_dense(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(tmp_path / "shard-00000.emb.npy", emb)
    src = Sources({0: str(tmp_path / "shard-00000")})
    keys = np.array(rng.permutation(50), np.int64)
    k, best, near = _cluster_task((keys, src, 7))  # 7-row blocks, incl. partial ones
    e = emb[keys]
    dense = e @ e.T
    for j in range(1, 50):
        i = int(np.argmax(dense[j, :j]))
        assert np.isclose(best[j], dense[j, i], atol=1e-5) and near[j] == keys[i]
    assert best[0] == -1.0  # the first (preferred) member is never a duplicate


def test_resolve_follows_dropped_chain():
    keys = np.array([10, 11, 12, 13])
    nearest = np.array([10, 10, 11, 13])
    dropped, kept = _resolve(keys, nearest, np.array([False, True, True, False]))
    assert dropped.tolist() == [11, 12] and kept.tolist() == [10, 10]


def test_kmeans_separates_obvious_clusters():
    rng = np.random.default_rng(1)
    a = rng.normal([5, 0, 0], 0.1, size=(30, 3))
    b = rng.normal([0, 5, 0], 0.1, size=(30, 3))
    x = np.vstack([a, b]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c = spherical_kmeans(x, 2, seed=0)
    lab = np.argmax(x @ c.T, axis=1)
    assert len(set(lab[:30])) == 1 and len(set(lab[30:])) == 1 and lab[0] != lab[30]


def test_hashed_embedder_is_normalised_and_lexical(zh_docs):
    d = zh_docs(3, 200)
    e = HashedNgramEmbedder().encode([d[0], mutate(d[0], 0.02, random.Random(0)), d[1]])
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > 0.9 > 0.5 > e[0] @ e[2]


def _semantic_run(tmp_path, name, rows, params, workers=1):
    p = tmp_path / "in.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    recipe = {"inputs": [{"path": str(p), "name": "web"}], "output": {"dir": str(tmp_path / name), "format": "jsonl",
                                                                       "keep_work": True},
              "executor": {"workers": workers, "shard_bytes": "3KB"},
              "stages": [{"semantic_dedup": {"n_clusters": 3, "block": 16, **params}}]}
    run_recipe(validate(recipe))
    return ({r.id: r for r in iter_records(str(tmp_path / name / "kept"))},
            list(iter_records(str(tmp_path / name / "rejected"))))


def test_semantic_dedup_dry_run_then_drop(tmp_path, zh_docs, capsys):
    rng = random.Random(2)
    docs = zh_docs(40, 200, seed=5)
    rows = [{"text": d} for d in docs] + [{"text": mutate(d, 0.02, rng)} for d in docs[:6]]
    kept, rej = _semantic_run(tmp_path, "dry", rows, {"dry_run": True})
    assert len(kept) == 46 and not rej
    assert sweep_main([str(tmp_path / "dry")]) == 0
    out = capsys.readouterr().out
    assert "eps" in out and "dropped" in out
    kept1, rej1 = _semantic_run(tmp_path, "drop", rows, {"eps": 0.15})
    kept2, rej2 = _semantic_run(tmp_path, "drop2", rows, {"eps": 0.15}, workers=2)
    assert len(rej1) == 6 and all(r.meta["reject"]["reason"] == "semantic_dup" for r in rej1)
    assert all(r.meta["reject"]["dup_of"] in kept1 for r in rej1)
    assert sorted(kept1) == sorted(kept2)


def test_eval_dedup_cli(tmp_path, zh_docs, capsys):
    rng = random.Random(0)
    docs = zh_docs(30, 200, seed=9)
    lines = [f"{d}\t{mutate(d, 0.01, rng)}\t1" for d in docs[:10]]
    lines += [f"{docs[i]}\t{docs[i + 10]}\t0" for i in range(10, 20)]
    p = tmp_path / "pairs.tsv"
    p.write_text("\n".join(lines), encoding="utf-8")
    out_json = tmp_path / "r.json"
    assert eval_main([str(p), "--methods", "exact,minhash,jaccard", "--thresholds", "0.5",
                      "--json", str(out_json)]) == 0
    res = orjson.loads(out_json.read_bytes())["results"]
    mh = next(r for r in res if r["method"] == "minhash")
    assert mh["precision"] == 1.0 and mh["recall"] == 1.0
    ex = next(r for r in res if r["method"] == "exact")
    assert ex["recall"] < 0.5  # edited copies are not exact duplicates
    assert "best F1 per method" in capsys.readouterr().out
