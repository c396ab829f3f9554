import random

import numpy as np
import pytest

from thresher.dedup.minhash import (MinHasher, band_hashes, bucket_edges, dedup_clusters, exact_jaccard,
                                    optimal_param, s_curve, shingle_batch, shingle_sets, sig_similarity,
                                    tokenize_batch)
from thresher.dedup.synth import mutate


def test_cjk_chars_and_latin_words_are_tokens():
    tok, doc = tokenize_batch(["去年夏天 hello world", "", "ab"])
    # 4 CJK chars + 2 words in doc 0, nothing in doc 1, one word in doc 2
    assert doc.tolist() == [0] * 6 + [2]
    # a whole Chinese clause is NOT one token: each character hashes separately
    assert len(set(tok[:4].tolist())) == 4


def test_width_and_case_are_folded():
    a = MinHasher().signatures(["ＨＥＬＬＯ　ｗｏｒｌｄ １２３ 你好世界"])
    b = MinHasher().signatures(["hello world 123 你好世界"])
    assert (a == b).all()


def test_short_text_is_one_shingle_and_empty_has_none():
    sh, d = shingle_batch(["你好", "", "一二三四五六"], 5)
    assert d.tolist() == [0, 2, 2]  # "一二三四五六" has 2 five-grams, "你好" one shingle


def test_batch_signature_equals_single(zh_docs):
    docs = zh_docs(50)
    h = MinHasher(num_perm=64)
    batch = h.signatures(docs, chunk=257)  # chunks that split documents
    single = np.stack([h.signatures([d])[0] for d in docs])
    assert (batch == single).all()


def test_signature_estimates_jaccard(zh_docs):
    rng = random.Random(1)
    h = MinHasher(num_perm=256)
    errs = []
    for d in zh_docs(60, 300):
        e = mutate(d, 0.08, rng)
        s = h.signatures([d, e])
        a, b = shingle_sets(h, [d, e])
        errs.append(sig_similarity(s[0], s[1]) - exact_jaccard(a, b))
    errs = np.array(errs)
    assert abs(errs.mean()) < 0.02  # unbiased
    assert errs.std() < 0.06  # ~ binomial sd sqrt(J(1-J)/256)


def test_optimal_param_matches_datasketch():
    lsh = pytest.importorskip("datasketch.lsh")
    for t in (0.5, 0.7, 0.8, 0.9):
        assert optimal_param(t, 128) == lsh._optimal_param(t, 128, 0.5, 0.5)
    curve = dict(s_curve(9, 13))
    assert curve[0.5] < 0.01 and curve[0.95] > 0.99


def test_near_duplicates_found_common_phrase_not(zh_docs):
    rng = random.Random(3)
    base = zh_docs(40, 300, seed=7)
    phrase = "中华人民共和国国务院关于进一步加强安全生产工作的决定"
    texts = list(base)
    texts.append(base[0])  # identical
    texts.append(mutate(base[1], 0.01, rng))  # small edits
    texts.append(mutate(base[2], 0.03, rng))
    texts.append(base[3][:150] + phrase + base[3][150:])  # insertion of a phrase
    unrelated = zh_docs(2, 300, seed=99)
    texts.append(unrelated[0] + phrase)  # share only the phrase with the next one
    texts.append(phrase + unrelated[1])
    for verify in ("none", "signature", "jaccard"):
        lab = dedup_clusters(texts, threshold=0.6, verify=verify)
        assert lab[40] == lab[0] and lab[41] == lab[1] and lab[42] == lab[2] and lab[43] == lab[3]
        assert lab[44] != lab[45], "texts sharing only a common phrase must not be merged"
        assert len(set(lab[:40].tolist())) == 40


def test_bucket_edges_star_from_smallest_key():
    keys = np.array([7, 3, 9, 5], np.int64)
    hashes = np.array([1, 1, 2, 1], np.uint64)
    assert sorted(map(tuple, bucket_edges(keys, hashes).tolist())) == [(3, 5), (3, 7)]


def test_band_hashes_differ_by_band():
    sig = np.zeros((1, 8), np.uint32)
    bh = band_hashes(sig, 4, 2)
    assert len(set(bh[0].tolist())) == 4  # equal values in different bands never collide


def test_signature_verification_trims_only_the_far_tail(zh_docs):
    """Default slack (3 standard errors) keeps candidates just below the threshold, as
    plain LSH does; slack 0 is a hard cut; candidates far below are dropped either way."""
    from thresher.dedup.minhash import sig_similarity, verify_cutoff
    assert abs(verify_cutoff(0.7, 128, 3.0) - (0.7 - 3 * (0.21 / 128) ** 0.5)) < 1e-9
    assert verify_cutoff(0.7, 128, 0.0) == 0.7
    rng = random.Random(12)
    base = zh_docs(30, 400, seed=13)
    h = MinHasher(num_perm=128, ngram=5)
    near, far = None, None
    for i, d in enumerate(base):  # find one pair in [cutoff, t) and one well below the cutoff
        for rate in (0.06, 0.07, 0.08, 0.25, 0.3):
            m = mutate(d, rate, rng)
            est = float(sig_similarity(*h.signatures([d, m])))
            if near is None and 0.6 <= est < 0.69:
                near = (i, m)
            if far is None and 0.2 <= est < 0.45:
                far = (i, m)
    assert near and far
    texts = list(base) + [near[1], far[1]]
    # bands x rows = 64 x 2: nearly every pair above J=0.2 becomes a candidate
    lab = dedup_clusters(texts, threshold=0.7, bands=64, rows=2, verify="signature")
    assert lab[30] == lab[near[0]] and lab[31] != lab[far[0]]
    strict = dedup_clusters(texts, threshold=0.7, bands=64, rows=2, verify="signature", verify_slack=0.0)
    assert strict[30] != strict[near[0]] and strict[31] != strict[far[0]]
    unverified = dedup_clusters(texts, threshold=0.7, bands=64, rows=2, verify="none")
    assert unverified[31] == unverified[far[0]]  # the tail that verification removes
