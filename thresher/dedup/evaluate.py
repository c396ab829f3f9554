"""``thresher eval-dedup``: precision / recall / F1 of dedup methods on labelled pairs.

Input: TSV rows ``q1<TAB>q2<TAB>label[<TAB>group]`` (``--format tsv``), graded STS rows
``s1<TAB>s2<TAB>score(0-5)`` (``--format sts``: duplicate when score >= ``--sts-min``), or
the QQP (``label q1 q2 id``) and MRPC (header; ``label id1 id2 s1 s2``) layouts.  A method
predicts "duplicate" for a pair when its stage would put the two texts in one cluster:

* ``exact``        normalised keys equal;
* ``minhash``      the pair collides in some LSH band (bands x rows optimal for the
                   threshold) and its signature estimate reaches ``minhash_dedup``'s
                   verification cutoff (threshold - ``--verify-slack`` standard errors);
* ``lsh``          band collision alone (no verification), like MinHashLSH.query;
* ``jaccard``      exact shingle Jaccard >= threshold (what MinHash approximates);
* ``datasketch``   datasketch MinHash + MinHashLSH with the same num_perm/threshold
                   (reference implementation; needs datasketch);
* ``semantic``     cosine of embeddings > 1 - eps (``semantic_dedup``'s rule; its default
                   eps for the embedder is always among the rows).

Each method also gets a ROC AUC of its underlying score (signature estimate, Jaccard,
cosine) over the pairs, which does not depend on a threshold.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict

import numpy as np

from .minhash import (MinHasher, band_hashes, exact_jaccard, optimal_param, shingle_sets, sig_similarity,
                      verify_cutoff)
from .normalize import normalize_key


def read_pairs(path: str, fmt: str = "tsv", sts_min: float = 4.0) -> list[tuple[str, str, int, str]]:
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for i, r in enumerate(reader):
            if fmt == "mrpc":
                if i == 0 or len(r) < 5:
                    continue
                rows.append((r[3], r[4], int(r[0]), ""))
            elif fmt == "sts":
                if len(r) >= 3 and r[2].strip().replace(".", "", 1).isdigit():
                    rows.append((r[0], r[1], int(float(r[2]) >= sts_min), ""))
            elif fmt == "qqp":
                if len(r) >= 3 and r[0] in ("0", "1"):
                    rows.append((r[1], r[2], int(r[0]), ""))
            else:
                if len(r) >= 3 and r[2].strip() in ("0", "1"):
                    rows.append((r[0], r[1], int(r[2]), r[3] if len(r) > 3 else ""))
    return rows


def prf(pred: np.ndarray, gold: np.ndarray) -> dict:
    tp = int((pred & gold).sum())
    fp = int((pred & ~gold).sum())
    fn = int((~pred & gold).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
            "predicted": tp + fp}


def roc_auc(score: np.ndarray, gold: np.ndarray) -> float | None:
    """Mann-Whitney AUC (ties count half); None when one class is missing."""
    score, gold = np.asarray(score, float), np.asarray(gold, bool)
    npos, nneg = int(gold.sum()), int((~gold).sum())
    if not npos or not nneg:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = score[order]
    # average ranks over ties
    lo = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    hi = np.r_[lo[1:], len(s)]
    ranks[order] = np.repeat((lo + hi + 1) / 2.0, hi - lo)
    return round(float((ranks[gold].sum() - npos * (npos + 1) / 2) / (npos * nneg)), 4)


def minhash_predictions(a: list[str], b: list[str], thresholds: list[float], ngram: int, num_perm: int,
                        verify: bool, slack: float = 3.0, est_out: list | None = None) -> dict[float, np.ndarray]:
    """``minhash_dedup``'s decision: band collision, then (``verify``) the signature check at
    ``verify_cutoff(threshold, num_perm, slack)`` (slack 0 = a hard cut at the threshold)."""
    h = MinHasher(num_perm=num_perm, ngram=ngram)
    sa, sb = h.signatures(a), h.signatures(b)
    est = sig_similarity(sa, sb)
    if est_out is not None:
        est_out.append(est)
    out = {}
    for t in thresholds:
        bands, rows = optimal_param(t, num_perm)
        hit = (band_hashes(sa, bands, rows) == band_hashes(sb, bands, rows)).any(axis=1)
        out[t] = hit & (est >= verify_cutoff(t, num_perm, slack)) if verify else hit
    return out


def jaccard_values(a: list[str], b: list[str], ngram: int) -> np.ndarray:
    h = MinHasher(ngram=ngram)
    sets = shingle_sets(h, a + b)
    return np.array([exact_jaccard(sets[i], sets[len(a) + i]) for i in range(len(a))])


def datasketch_predictions(a: list[str], b: list[str], thresholds: list[float], ngram: int,
                           num_perm: int) -> dict[float, np.ndarray]:
    from datasketch import MinHash, MinHashLSH
    h = MinHasher(ngram=ngram)

    def mh(shingles):
        m = MinHash(num_perm=num_perm)
        m.update_batch([int(x).to_bytes(4, "little") for x in shingles])
        return m
    sets = shingle_sets(h, a + b)  # same shingles as ours; datasketch hashes them itself
    ma = [mh(s) for s in sets[: len(a)]]
    mb = [mh(s) for s in sets[len(a):]]
    out = {}
    for t in thresholds:
        lsh = MinHashLSH(threshold=t, num_perm=num_perm)
        for i, m in enumerate(ma):
            lsh.insert(i, m)
        out[t] = np.array([i in set(lsh.query(m)) for i, m in enumerate(mb)])
    return out


def semantic_cosines(a: list[str], b: list[str], embedder: dict) -> np.ndarray:
    """Cosines as ``semantic_dedup`` computes them: the same embedder build, fitted on the
    texts themselves when it needs a fit (tfidf_svd), as the stage's reduce does."""
    from .semantic import build_embedder, embed_texts
    emb = build_embedder(embedder)
    uniq = list(dict.fromkeys(a + b))
    if getattr(emb, "needs_fit", False):
        emb.fit(uniq)
    vec = np.asarray(embed_texts(emb, uniq), np.float32)
    pos = {t: i for i, t in enumerate(uniq)}
    ia, ib = [pos[t] for t in a], [pos[t] for t in b]
    return (vec[ia] * vec[ib]).sum(axis=1)


def evaluate(rows, methods, thresholds, ngrams, num_perm=128, verify=True, eps_values=(0.05, 0.1, 0.2, 0.3),
             embedder=None, verify_slack=3.0) -> list[dict]:
    """One result row per (group, method, ngram, threshold); rows with ``threshold`` None
    carry the method's ROC AUC (``auc``) instead."""
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups["all"].append(i)
        if r[3]:
            groups[r[3]].append(i)
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    gold = np.array([r[2] == 1 for r in rows])
    preds: list[tuple[str, int, float, np.ndarray]] = []
    scores: list[tuple[str, int, np.ndarray]] = []  # per-pair scores for the AUC rows
    if "exact" in methods:
        preds.append(("exact", 0, 1.0, np.array([normalize_key(x) == normalize_key(y) for x, y in zip(a, b)])))
    for n in ngrams:
        if "minhash" in methods:
            est: list = []
            for t, p in minhash_predictions(a, b, thresholds, n, num_perm, verify, verify_slack, est).items():
                preds.append(("minhash", n, t, p))
            scores.append(("minhash", n, est[0]))
        if "lsh" in methods:  # band collisions only, as MinHashLSH reports them
            for t, p in minhash_predictions(a, b, thresholds, n, num_perm, False).items():
                preds.append(("lsh", n, t, p))
        if "jaccard" in methods:
            j = jaccard_values(a, b, n)
            preds += [("jaccard", n, t, j >= t) for t in thresholds]
            scores.append(("jaccard", n, j))
        if "datasketch" in methods:
            for t, p in datasketch_predictions(a, b, thresholds, n, num_perm).items():
                preds.append(("datasketch", n, t, p))
    if "semantic" in methods:
        from .semantic import default_eps
        embedder = embedder or {}
        cos = semantic_cosines(a, b, embedder)
        eps_all = sorted(set(eps_values) | {default_eps(embedder)})
        preds += [("semantic", 0, round(1 - e, 4), cos > 1 - e) for e in eps_all]
        scores.append(("semantic", 0, cos))
    out = []
    for g in sorted(groups, key=lambda x: (x != "all", x)):
        idx = np.array(groups[g])
        for m, n, t, p in preds:
            out.append({"group": g, "method": m, "ngram": n, "threshold": t, "pairs": len(idx),
                        **prf(p[idx], gold[idx])})
        for m, n, sc in scores:
            out.append({"group": g, "method": m, "ngram": n, "threshold": None, "pairs": len(idx),
                        "auc": roc_auc(sc[idx], gold[idx])})
    return out


def render(results: list[dict]) -> str:
    lines = [f"{'group':<8}{'method':<12}{'ngram':>6}{'thresh':>8}{'P':>8}{'R':>8}{'F1':>8}{'pred+':>8}{'pairs':>8}"]
    for r in results:
        if r["threshold"] is None:
            auc = "n/a" if r["auc"] is None else f"{r['auc']:.3f}"
            lines.append(f"{r['group']:<8}{r['method']:<12}{r['ngram']:>6}{'ROC AUC':>8}{auc:>8}{'':>24}{r['pairs']:>8}")
            continue
        lines.append(f"{r['group']:<8}{r['method']:<12}{r['ngram']:>6}{r['threshold']:>8.3f}{r['precision']:>8.3f}"
                     f"{r['recall']:>8.3f}{r['f1']:>8.3f}{r['predicted']:>8}{r['pairs']:>8}")
    return "\n".join(lines)


def best_per_method(results: list[dict], group: str = "all") -> list[dict]:
    best: dict[str, dict] = {}
    for r in results:
        if r["threshold"] is None:
            continue
        if r["group"] == group and (r["method"] not in best or r["f1"] > best[r["method"]]["f1"]):
            best[r["method"]] = r
    return list(best.values())


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="thresher eval-dedup", description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", help="TSV of labelled pairs")
    ap.add_argument("--format", choices=("tsv", "sts", "qqp", "mrpc"), default="tsv")
    ap.add_argument("--sts-min", type=float, default=4.0, help="sts format: score counted as a duplicate")
    ap.add_argument("--methods", default="exact,minhash,jaccard,semantic",
                    help="comma list of exact,minhash,lsh,jaccard,datasketch,semantic")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--ngram", default="5", help="comma list of shingle sizes (tokens)")
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--no-verify", action="store_true", help="LSH collisions alone, no signature check")
    ap.add_argument("--verify-slack", type=float, default=3.0,
                    help="minhash_dedup's verify_slack (standard errors below the threshold; 0 = hard cut)")
    ap.add_argument("--eps", default="0.02,0.05,0.1,0.2,0.3")
    ap.add_argument("--embedder", default="e5",
                    help="semantic backend: e5 | hashed | tfidf_svd | sentence_transformers")
    ap.add_argument("--model", "--model-path", dest="model", default="",
                    help="local model path (sentence_transformers directory; e5 .bin)")
    ap.add_argument("--max-chars", type=int, default=0, help="embedder max_chars (0: semantic_dedup's default)")
    ap.add_argument("--cache-dir", default="", help="embedding cache directory (vectors by text hash)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the result rows here")
    args = ap.parse_args(argv)
    rows = read_pairs(args.pairs, args.format, args.sts_min)
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        print(f"no labelled pairs read from {args.pairs}", file=sys.stderr)
        return 2
    from .semantic import stage_embedder_params
    emb = stage_embedder_params({"backend": args.embedder, **({"model_path": args.model} if args.model else {}),
                                 **({"max_chars": args.max_chars} if args.max_chars else {}),
                                 **({"cache_dir": args.cache_dir} if args.cache_dir else {})})
    res = evaluate(rows, set(args.methods.split(",")), _floats(args.thresholds),
                   [int(x) for x in args.ngram.split(",")], args.num_perm, not args.no_verify,
                   _floats(args.eps), emb, args.verify_slack)
    print(f"{args.pairs}: {len(rows)} pairs ({sum(r[2] for r in rows)} positive)")
    print(render(res))
    print("\nbest F1 per method:")
    print(render(best_per_method(res)))
    if args.json:
        import orjson
        with open(args.json, "wb") as f:
            f.write(orjson.dumps({"pairs": args.pairs, "n": len(rows), "results": res}, option=orjson.OPT_INDENT_2))
    return 0
