"""Fit and check the heuristic difficulty against labelled proxies (../shared/data).

* PhasedSFT en-alpaca52k-stage3 (``score`` = GPT-4 difficulty, 3.5-5): split 50/50 at
  random (seed 0); per-term Spearman and a ridge fit on the *train* half only; Spearman of
  the shipped weights (thresher/scoring/heuristic.py) and of the refit on the *held-out* half.
* BELLE eval_set (zh, no difficulty label): ROC AUC of the score for class math/code
  (positive) vs open qa (negative), scored on question + std_answer and on the question
  alone (std_answer is empty for most open-ended classes, which would leak the class).

Usage: python benchmarks/scoring_difficulty.py [--print-weights]
Updates benchmarks/results/scoring_eval.json["difficulty_phasedsft"] and ["difficulty_belle"].
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OUT = os.path.join(REPO, "benchmarks", "results", "scoring_eval.json")


def phased_rows() -> list[tuple[str, str, float]]:
    rows = [json.loads(ln) for ln in open(os.path.join(DATA, "seed-xubuvd", "en-alpaca52k-stage3.jsonl"))]
    return [(r["data"][0], r["data"][1], float(r["score"])) for r in rows
            if len(r["data"]) >= 2 and str(r.get("score", "")).strip() not in ("", "None")]


def fit_weights(x: np.ndarray, y: np.ndarray, keys: list[str]) -> tuple[dict, float]:
    """Ridge on the [0, 1] terms, rescaled to sum(|w|) = 1, bias centring the train scores at 0."""
    from sklearn.linear_model import Ridge
    coef = Ridge(alpha=1.0).fit(x, y).coef_
    w = coef / np.abs(coef).sum()
    return {k: round(float(v), 3) for k, v in zip(keys, w)}, round(float(-(x @ w).mean()), 3)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--print-weights", action="store_true", help="print the refit weights as Python")
    a = ap.parse_args()
    if not os.path.isdir(DATA):
        print("../shared/data not present; nothing to measure")
        return 0
    from scipy.stats import spearmanr

    from thresher.scoring._common import jieba_mod
    from thresher.scoring.fasttext_quality import roc_auc
    from thresher.scoring.heuristic import _D_WEIGHTS, difficulty_components, heuristic_difficulty
    cut = jieba_mod().lcut
    rows = phased_rows()
    idx = list(range(len(rows)))
    random.Random(0).shuffle(idx)
    tr, te = idx[: len(idx) // 2], idx[len(idx) // 2:]
    keys = list(_D_WEIGHTS)
    comps = [difficulty_components(i, o, cut(o[:1500])) for i, o, _ in rows]
    x = np.array([[c[k] for k in keys] for c in comps])
    y = np.array([s for _, _, s in rows])
    per_term = {k: round(float(spearmanr(x[tr, j], y[tr]).statistic), 4) for j, k in enumerate(keys)}
    w, bias = fit_weights(x[tr], y[tr], keys)
    shipped = np.array([heuristic_difficulty(i, o, cut(o[:1500])) for i, o, _ in rows])
    refit = x @ np.array([w[k] for k in keys])
    out = {"n": len(rows), "split": "random 50/50, seed 0", "train": len(tr), "heldout": len(te),
           "per_term_spearman_train": per_term, "refit_weights": w, "refit_bias": bias,
           "heldout_spearman_shipped": round(float(spearmanr(shipped[te], y[te]).statistic), 4),
           "heldout_spearman_refit": round(float(spearmanr(refit[te], y[te]).statistic), 4),
           "train_spearman_shipped": round(float(spearmanr(shipped[tr], y[tr]).statistic), 4),
           "all_spearman_shipped": round(float(spearmanr(shipped, y).statistic), 4)}
    print(json.dumps(out, indent=1))
    if a.print_weights:
        print("_D_WEIGHTS =", w, "\n_D_BIAS =", bias)

    belle = [json.loads(ln) for ln in open(os.path.join(DATA, "belle", "eval_set.json"), encoding="utf-8")]
    belle = [(b["question"], b.get("std_answer") or "", b["class"].replace("\xa0", " ").strip()) for b in belle]
    pos = [b for b in belle if b[2] in ("math", "code")]
    neg = [b for b in belle if b[2] == "open qa"]
    lab = [1] * len(pos) + [0] * len(neg)
    with_ans = [heuristic_difficulty(q, s, cut(s[:1500])) for q, s, _ in pos + neg]
    q_only = [heuristic_difficulty(q, "", []) for q, _, _ in pos + neg]
    bout = {"positive": "math+code", "negative": "open qa", "n_pos": len(pos), "n_neg": len(neg),
            "open_qa_with_std_answer": sum(1 for b in neg if b[1]),
            "roc_auc_question_and_answer": round(roc_auc(lab, with_ans), 4),
            "roc_auc_question_only": round(roc_auc(lab, q_only), 4)}
    print(json.dumps(bout, indent=1))
    res = json.load(open(OUT)) if os.path.exists(OUT) else {}
    res["difficulty_phasedsft"] = out
    res["difficulty_belle"] = bout
    with open(OUT, "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
