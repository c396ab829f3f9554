"""Cluster reduce building blocks: fit_encode == encode, the k search and capped keywords."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

TOPICS = {"体育": "比赛 球队 进球 冠军 联赛 教练", "财经": "股市 基金 银行 利率 投资 上涨",
          "科技": "芯片 手机 人工智能 软件 算法 电脑", "教育": "学生 考试 老师 学校 高考 课程"}


def _corpus(n=240, seed=0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        t = list(TOPICS)[i % 4]
        words = TOPICS[t].split()
        texts.append("".join(rng.choice(words, 6)) + "的消息。")
        labels.append(t)
    return texts, labels


def test_tfidf_fit_encode_equals_encode_and_fills_cache(tmp_path):
    from thresher.scoring.embed import build_embedder
    texts, _ = _corpus()
    ids = [f"t/{i}" for i in range(len(texts))]
    a = build_embedder({"dim": 16, "cache_dir": str(tmp_path / "c")})
    xa = a.fit_encode(texts, ids=ids)
    b = build_embedder({"dim": 16})
    b.fit(texts)
    assert np.array_equal(xa, b.encode(texts))  # bit-identical: workers mix cached and fresh vectors
    assert np.array_equal(a.encode(texts, ids=ids), xa)  # served from the cache


def test_choose_k_is_deterministic_and_finds_the_topics():
    from thresher.scoring.cluster import choose_k
    from thresher.scoring.embed import build_embedder
    texts, _ = _corpus(400)
    x = build_embedder({"dim": 16}).fit_encode(texts)
    k1, s1 = choose_k(x, 2, 20, max_points=300)
    k2, s2 = choose_k(x, 2, 20, max_points=300)
    assert (k1, s1) == (k2, s2)
    assert len(s1) <= 7 and 3 <= k1 <= 6  # coarse-to-fine: few candidates, near the 4 topics


def test_keywords_from_capped_sample_name_the_topic():
    from thresher.scoring.cluster import cluster_keywords
    texts, labels = _corpus(400)
    names = sorted(TOPICS)
    lab = np.array([names.index(t) for t in labels])
    kws = cluster_keywords(texts, lab, 4, top=3, per_cluster=20)
    for i, t in enumerate(names):
        assert set(kws[i]) <= set(TOPICS[t].split()), (t, kws[i])
