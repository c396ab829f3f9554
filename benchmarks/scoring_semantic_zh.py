"""Chinese semantic similarity, semantic dedup calibration, clustering and e5 throughput.

On ../shared/data (skips what is absent):

* ``pairs``: ROC AUC and best F1 per method (MinHash, tfidf_svd, hashed, MiniLM, e5) on
  AFQMC train and Chinese STS-B train (score >= 4 = duplicate), a seeded calibration
  sample of each; per embedder the largest eps whose pairwise precision (cos > 1 - eps,
  the stage's rule) is >= 0.95 on the STS-B calibration sample -> ``CALIBRATED_EPS`` in
  thresher/dedup/semantic.py.  AFQMC is reported, not calibrated on: its label-0 pairs
  include near-identical questions about different products (花呗 vs 借呗), so no eps of
  any embedder reaches precision 0.95 there;
* ``stage``: ``semantic_dedup`` at its defaults (only the backend named) run through the
  pipeline on the distinct texts of a held-out sample (pairs disjoint from the
  calibration sample); a labelled pair counts as merged when both texts end with the same
  keeper; precision / recall of that, and the fraction of distinct texts dropped;
* ``cluster``: purity / NMI at k=10 on thucnews-titles, e5 vs tfidf_svd;
* ``throughput``: e5 texts/s at 1 and 2 threads (short questions and 512-char documents),
  interleaved rounds, median.

    .venv/bin/python benchmarks/scoring_semantic_zh.py [pairs stage cluster throughput] [--n 1500]

Writes benchmarks/results/scoring_semantic_zh.{json,md} (sections merge into the json).
Embeddings are cached by text hash under .cache/bench-embed (derived data stays out of git).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OUT = os.path.join(REPO, "benchmarks", "results", "scoring_semantic_zh")
CACHE = os.path.join(REPO, ".cache", "bench-embed")
SETS = {"afqmc": ("zh-paraphrase-dev/AFQMC_train.txt", "tsv"),
        "stsb": ("zh-paraphrase-dev/Chinese-STS-B_sts-b-train.txt", "sts")}
TARGET_P = 0.95


def embedders() -> dict[str, dict]:
    from thresher.dedup.semantic import stage_embedder_params
    from thresher.scoring.embed import default_model_path
    out = {"e5": stage_embedder_params({"backend": "e5"}), "tfidf_svd": {"backend": "tfidf_svd", "dim": 128},
           "hashed": {"backend": "hashed"}}
    if default_model_path():
        out["minilm"] = {"backend": "sentence_transformers", "model_path": default_model_path(), "batch_size": 64}
    return out


CALIBRATE_ON = "stsb"


def load_sets(n: int, n_stsb: int) -> dict[str, tuple[list, list]]:
    """name -> (calibration pairs, held-out pairs), disjoint seeded samples: n each for
    AFQMC; STS-B's first ``n_stsb`` shuffled pairs calibrate, the rest are held out."""
    from thresher.dedup.evaluate import read_pairs
    out = {}
    for name, (rel, fmt) in SETS.items():
        path = os.path.join(DATA, rel)
        if not os.path.exists(path):
            continue
        rows = read_pairs(path, fmt)
        random.Random(0).shuffle(rows)
        k = n_stsb if name == "stsb" else n
        out[name] = (rows[:k], rows[k:] if name == "stsb" else rows[k:2 * k])
    return out


def best_f1(score: np.ndarray, gold: np.ndarray) -> dict:
    order = np.argsort(-score, kind="mergesort")
    g = gold[order]
    tp = np.cumsum(g)
    k = np.arange(1, len(g) + 1)
    p, r = tp / k, tp / max(g.sum(), 1)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)
    i = int(np.argmax(f1))
    return {"best_f1": round(float(f1[i]), 4), "at": round(float(score[order][i]), 4),
            "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4)}


def eps_for_precision(cos: np.ndarray, gold: np.ndarray, target: float = TARGET_P) -> float:
    """Largest eps on a 0.001 grid whose rule cos > 1 - eps keeps precision >= target."""
    best = 0.0
    for eps in np.round(np.arange(0.001, 0.6, 0.001), 3):
        pred = cos > 1 - eps
        if pred.sum() >= 5 and (pred & gold).sum() / pred.sum() >= target:
            best = float(eps)
    return best


def pair_prf(pred: np.ndarray, gold: np.ndarray) -> dict:
    from thresher.dedup.evaluate import prf
    return prf(pred, gold)


def run_pairs(sets, res) -> None:
    from thresher.dedup.evaluate import minhash_predictions, roc_auc, semantic_cosines
    from thresher.dedup.semantic import CALIBRATED_EPS
    out, calib = {}, {}
    for name, (cal, _) in sets.items():
        a, b = [r[0] for r in cal], [r[1] for r in cal]
        gold = np.array([r[2] == 1 for r in cal])
        rows = {}
        for ng in (2, 3, 5):  # short questions: small shingles; the stage default is 5
            est: list = []
            minhash_predictions(a, b, [0.5], ng, 128, True, 3.0, est)
            rows[f"minhash_ng{ng}"] = {"auc": roc_auc(est[0], gold), **best_f1(est[0], gold)}
        for ename, params in embedders().items():
            t0 = time.perf_counter()
            cos = semantic_cosines(a, b, {**params, "cache_dir": CACHE})
            eps = eps_for_precision(cos, gold)
            backend = params["backend"]
            at_default = pair_prf(cos > 1 - CALIBRATED_EPS[backend], gold)
            rows[ename] = {"auc": roc_auc(cos, gold), **best_f1(cos, gold), "eps_for_p95": eps,
                           "default_eps": CALIBRATED_EPS[backend], "at_default_eps": at_default,
                           "seconds": round(time.perf_counter() - t0, 1)}
            if name == CALIBRATE_ON:
                calib[ename] = eps
            print(name, ename, rows[ename], flush=True)
        out[name] = {"pairs": len(cal), "positives": int(gold.sum()), "methods": rows}
    res["pairs"] = out
    res["calibrated_eps"] = calib
    print(f"calibrated eps (P >= {TARGET_P} on {CALIBRATE_ON}):", calib, flush=True)


def run_stage(sets, res, workers: int = 1) -> None:
    """semantic_dedup at its defaults through the real pipeline on held-out texts."""
    import orjson

    from thresher.config import validate
    from thresher.dedup.semantic import default_eps
    from thresher.executor.runner import run_recipe
    from thresher.io.readers import iter_records
    out = {}
    for name, (_, held) in sets.items():
        texts = list(dict.fromkeys([r[0] for r in held] + [r[1] for r in held]))
        gold = np.array([r[2] == 1 for r in held])
        out[name] = {}
        for ename, params in embedders().items():
            emb = {**params, "cache_dir": CACHE}
            with tempfile.TemporaryDirectory() as tmp:
                p = os.path.join(tmp, "in.jsonl")
                with open(p, "wb") as f:
                    f.write(b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts))
                recipe = {"inputs": [{"path": p, "name": "pairs"}], "output": {"dir": os.path.join(tmp, "run"),
                                                                               "format": "jsonl"},
                          "executor": {"workers": workers}, "stages": [{"semantic_dedup": {"embedder": emb}}]}
                t0 = time.perf_counter()
                run_recipe(validate(recipe))
                secs = time.perf_counter() - t0
                keeper = {r.text: r.id for r in iter_records(os.path.join(tmp, "run", "kept"))}
                for r in iter_records(os.path.join(tmp, "run", "rejected")):
                    keeper[r.text] = r.meta["reject"]["dup_of"]
            pred = np.array([keeper[a] == keeper[b] for a, b, _, _ in held])
            dropped = len(texts) - len(set(keeper.values()))
            out[name][ename] = {"eps": default_eps(params), **pair_prf(pred, gold), "texts": len(texts),
                                "dropped": dropped, "dropped_fraction": round(dropped / len(texts), 4),
                                "seconds": round(secs, 1)}
            print(name, "stage", ename, out[name][ename], flush=True)
    res["stage_defaults"] = out


def run_cluster(res, n: int) -> None:
    from thresher.scoring._common import blas_threads
    from thresher.scoring.cluster import assign, fit_kmeans, purity_nmi
    from thresher.scoring.embed import build_embedder
    path = os.path.join(DATA, "thucnews-titles", "test.txt")
    if not os.path.exists(path):
        return
    rows = [ln.rstrip("\n").split("\t") for ln in open(path, encoding="utf-8")]
    random.Random(0).shuffle(rows)
    rows = rows[:n]
    texts, labels = [r[0] for r in rows], [r[1] for r in rows]
    from thresher.dedup.semantic import embed_texts
    out = {}
    for name, params in {"e5": {"backend": "e5", "max_chars": 256}, "tfidf_svd": {"backend": "tfidf_svd",
                                                                                  "dim": 128}}.items():
        emb = build_embedder({**params, "cache_dir": CACHE})
        if emb.needs_fit:
            emb.fit(texts)
        x = embed_texts(emb, texts)
        scores = []
        with blas_threads(1):
            for seed in (0, 1, 2):
                scores.append(purity_nmi(labels, assign(x, fit_kmeans(x, 10, seed).cluster_centers_)))
        out[name] = {"k10_purity": round(statistics.median(s[0] for s in scores), 4),
                     "k10_nmi": round(statistics.median(s[1] for s in scores), 4), "kmeans_seeds": 3}
        print("cluster", name, out[name], flush=True)
    res["clustering_thucnews"] = {"n": len(texts), "labels": 10, **out}


def run_throughput(res, rounds: int = 3) -> None:
    from thresher.scoring.embed import build_embedder
    q = [ln.split("\t")[0] for ln in open(os.path.join(DATA, SETS["afqmc"][0]), encoding="utf-8")][:300]
    docs = [ln.strip()[:512] for ln in open(os.path.join(DATA, "cluecorpussmall-sample", "CLUECorpusSmall_sampled.txt"),
                                             encoding="utf-8") if len(ln.strip()) >= 512][:40]
    out = {}
    for label, texts in (("questions", q), ("docs_512chars", docs)):
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(rounds):  # interleaved, so load drifts hit both settings alike
            for th in (1, 2):
                emb = build_embedder({"backend": "e5", "threads": th, "max_chars": 512})
                t0 = time.perf_counter()
                emb.encode(texts)
                times[th].append(time.perf_counter() - t0)
        out[label] = {f"threads_{th}": round(len(texts) / statistics.median(v), 1) for th, v in times.items()}
        out[label]["texts"] = len(texts)
        out[label]["ratio_2_vs_1"] = round(statistics.median(times[1]) / statistics.median(times[2]), 2)
        print("throughput", label, out[label], flush=True)
    res["e5_throughput_texts_per_s"] = {**out, "rounds": rounds, "cpus": os.cpu_count(),
                                        "load_avg_at_end": round(os.getloadavg()[0], 2)}


def write_md(res: dict) -> None:
    lines = ["# Chinese semantic similarity, semantic dedup calibration, clustering (benchmarks/scoring_semantic_zh.py)",
             "", "Data: ../shared/data/zh-paraphrase-dev (AFQMC train 0/1; Chinese STS-B train, score >= 4 = dup), "
             "thucnews-titles. Seeded samples; see the json for every number.", ""]
    if "pairs" in res:
        lines += ["## Pairwise ROC AUC / best F1 (calibration sample)", "",
                  "| set | method | ROC AUC | best F1 (P / R) | eps with P >= 0.95 | P / R at default eps |",
                  "|---|---|---|---|---|---|"]
        for s, d in res["pairs"].items():
            for m, r in d["methods"].items():
                dflt = r.get("at_default_eps")
                lines.append(f"| {s} ({d['pairs']} pairs, {d['positives']} pos) | {m} | {r['auc']} | {r['best_f1']} "
                             f"({r['precision']} / {r['recall']}) | {r.get('eps_for_p95', '')} | "
                             + (f"{dflt['precision']} / {dflt['recall']} at eps {r['default_eps']}" if dflt else "")
                             + " |")
        lines += ["", f"Calibrated eps (largest with pairwise P >= {TARGET_P} on the STS-B calibration sample): "
                      f"{res.get('calibrated_eps')} (0.0: no eps reaches it; CALIBRATED_EPS then uses the "
                      "strictest grid value 0.001). MiniLM (an English model) puts many distinct Chinese "
                      "questions at cosine > 0.999 (18% of distinct AFQMC texts dropped at eps 0.001).",
                      ""]
    if "stage_defaults" in res:
        lines += ["## semantic_dedup at its defaults (held-out pairs, through the pipeline)", "",
                  "| set | embedder | eps | pair precision | pair recall | distinct texts dropped |",
                  "|---|---|---|---|---|---|"]
        for s, d in res["stage_defaults"].items():
            for m, r in d.items():
                lines.append(f"| {s} | {m} | {r['eps']} | {r['precision']} | {r['recall']} | "
                             f"{r['dropped']} / {r['texts']} ({r['dropped_fraction']:.1%}) |")
        lines.append("")
    if "clustering_thucnews" in res:
        c = res["clustering_thucnews"]
        lines += [f"## Clustering thucnews-titles ({c['n']} titles, k=10, median of 3 k-means seeds)", "",
                  "| embedder | purity | NMI |", "|---|---|---|"]
        lines += [f"| {m} | {c[m]['k10_purity']} | {c[m]['k10_nmi']} |" for m in ("e5", "tfidf_svd") if m in c]
        lines.append("")
    if "e5_throughput_texts_per_s" in res:
        t = res["e5_throughput_texts_per_s"]
        lines += [f"## e5 throughput (texts/s, median of {t['rounds']} interleaved rounds, {t['cpus']} shared cores, "
                  f"load {t['load_avg_at_end']})", "", "| texts | 1 thread | 2 threads |", "|---|---|---|"]
        lines += [f"| {k} ({v['texts']}) | {v['threads_1']} | {v['threads_2']} |" for k, v in t.items()
                  if isinstance(v, dict)]
    with open(OUT + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("parts", nargs="*", default=["pairs", "stage", "cluster", "throughput"],
                    help="pairs stage cluster throughput, or md (rewrite the .md from the .json)")
    ap.add_argument("--n", type=int, default=1500, help="AFQMC pairs in each sample")
    ap.add_argument("--n-stsb", type=int, default=3000, help="STS-B pairs that calibrate (the rest are held out)")
    ap.add_argument("--cluster-n", type=int, default=2000)
    args = ap.parse_args()
    if not os.path.isdir(DATA):
        print("../shared/data not present", file=sys.stderr)
        return 0
    res = json.load(open(OUT + ".json")) if os.path.exists(OUT + ".json") else {}
    sets = load_sets(args.n, args.n_stsb) if args.parts != ["md"] else {}
    if sets:
        res["samples"] = {k: {"calibration": len(v[0]), "held_out": len(v[1])} for k, v in sets.items()}
    if "pairs" in args.parts:
        run_pairs(sets, res)
    if "stage" in args.parts:
        run_stage(sets, res)
    if "cluster" in args.parts:
        run_cluster(res, args.cluster_n)
    if "throughput" in args.parts:
        run_throughput(res)
    if args.parts != ["md"]:
        with open(OUT + ".json", "w", encoding="utf-8") as f:
            json.dump(res, f, ensure_ascii=False, indent=1)
    write_md(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
