"""Cluster reduce cost, legacy settings vs current, in one process (ratios; the box is shared).

legacy = scoring v1's reduce: fit then encode (the sample vectorised twice), k by
silhouette over 8 k values on a 3000-point sub-sample, jieba keywords over every
sample text (2000 chars). current = ClusterStage defaults: ``fit_encode``, coarse-to-fine
k search on 2000 points, keywords from 100 texts x 200 chars per cluster.

Corpora: the demo corpus (``thresher demo``; written to a temp dir) and 20k
thucnews titles from ../shared/data (skipped when absent). Reports seconds per step,
the chosen k and the top-3 keyword overlap with the legacy labels.

Usage: python benchmarks/scoring_cluster_speed.py [--titles 20000]
Updates benchmarks/results/scoring_eval.json["cluster_reduce_speed"].
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OUT = os.path.join(REPO, "benchmarks", "results", "scoring_eval.json")


def legacy_choose_k(x, k_min, k_max, seed=0, max_points=3000):
    """scoring v1's search: 8 geometrically spaced k, each fit + silhouette on 3000 points."""
    from sklearn.metrics import silhouette_score

    from thresher.scoring.cluster import fit_kmeans
    rng = np.random.default_rng(seed)
    sub = x if len(x) <= max_points else x[np.sort(rng.choice(len(x), max_points, replace=False))]
    k_max = max(2, min(k_max, len(sub) - 1))
    cands = sorted({int(round(v)) for v in np.geomspace(max(2, k_min), k_max, num=min(8, k_max - max(2, k_min) + 1))})
    scores = {}
    for k in cands:
        lab = fit_kmeans(sub, k, seed, n_init=1).predict(sub)
        scores[k] = float(silhouette_score(sub, lab, metric="cosine")) if len(set(lab)) > 1 else -1.0
    return max(scores, key=lambda k: (scores[k], -k)), scores


def reduce_like(texts: list[str], legacy: bool) -> dict:
    """The cluster reduce's compute (no I/O), timed per step."""
    from thresher.scoring._common import blas_threads
    from thresher.scoring.cluster import assign, choose_k, cluster_keywords, fit_kmeans
    from thresher.scoring.embed import build_embedder
    t, out = time.perf_counter(), {}
    emb = build_embedder({})
    if legacy:
        emb.fit(texts)
        x = emb.encode(texts)
    else:
        x = emb.fit_encode(texts)
    out["embed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with blas_threads(1):
        k, _ = legacy_choose_k(x, 4, 40) if legacy else choose_k(x, 4, 40)
        out["choose_k_s"] = time.perf_counter() - t
        t = time.perf_counter()
        km = fit_kmeans(x, k, 0)
    out["kmeans_s"] = time.perf_counter() - t
    labels = assign(x, km.cluster_centers_.astype(np.float32))
    t = time.perf_counter()
    kws = cluster_keywords(texts, labels, k, 8, per_cluster=0) if legacy else cluster_keywords(texts, labels, k, 8)
    out["keywords_s"] = time.perf_counter() - t
    out = {a: round(b, 2) for a, b in out.items()}
    out["total_s"] = round(sum(out.values()), 2)
    out["k"] = k
    out["_kws"] = kws
    return out


def compare(name: str, texts: list[str], res: dict) -> None:
    from thresher.scoring._common import jieba_mod
    jieba_mod()  # loaded once per process either way; keep its ~1-2 s out of both sides
    before = reduce_like(texts, legacy=True)
    after = reduce_like(texts, legacy=False)
    kb, ka = before.pop("_kws"), after.pop("_kws")
    row = {"n": len(texts), "before": before, "after": after,
           "speedup": round(before["total_s"] / max(after["total_s"], 1e-9), 2)}
    if before["k"] == after["k"]:
        row["top3_keyword_overlap"] = round(float(np.mean([len(set(a[:3]) & set(b[:3])) / 3
                                                           for a, b in zip(kb, ka)])), 3)
    print(name, json.dumps(row), flush=True)
    res[name] = row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--titles", type=int, default=20000)
    a = ap.parse_args()
    from thresher.demo import write_demo_corpus
    from thresher.io.readers import iter_records
    from thresher.scoring._common import embed_text
    from thresher.scoring.cluster import sample_key
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_corpus(tmp)
        recs = [r for fn in sorted(os.listdir(tmp)) if fn.endswith(".jsonl") for r in iter_records(os.path.join(tmp, fn))]
    recs.sort(key=lambda r: (sample_key(r.id), r.id))  # the reduce's sample order
    compare("demo_corpus", [embed_text(r)[:2000] for r in recs], res)
    if os.path.isdir(DATA):
        rows = []
        for split in ("train.txt", "dev.txt", "test.txt"):
            p = os.path.join(DATA, "thucnews-titles", split)
            if os.path.exists(p):
                rows += [ln.split("\t")[0] for ln in open(p, encoding="utf-8") if ln.strip()]
        random.Random(0).shuffle(rows)
        compare(f"thucnews_titles_{a.titles // 1000}k", rows[: a.titles], res)
    old = json.load(open(OUT)) if os.path.exists(OUT) else {}
    old["cluster_reduce_speed"] = {"machine": f"{os.cpu_count()} cpus, shared", **res}
    with open(OUT, "w") as f:
        json.dump(old, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
