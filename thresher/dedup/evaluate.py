"""``thresher eval-dedup``: precision / recall / F1 of dedup methods on labelled pairs.

Input: TSV rows ``q1<TAB>q2<TAB>label[<TAB>group]`` (``--format tsv``), or the QQP
(``label q1 q2 id``) and MRPC (header; ``label id1 id2 s1 s2``) layouts.  A method
predicts "duplicate" for a pair when it would put the two texts in one cluster:

* ``exact``        normalised keys equal;
* ``minhash``      the pair collides in some LSH band (bands x rows optimal for the
                   threshold), verified on the signature estimate when ``--verify``;
* ``lsh``          band collision alone (no verification), like MinHashLSH.query;
* ``jaccard``      exact shingle Jaccard >= threshold (what MinHash approximates);
* ``datasketch``   datasketch MinHash + MinHashLSH with the same num_perm/threshold
                   (reference implementation; needs datasketch);
* ``semantic``     cosine of embeddings >= 1 - eps (SemDeDup's pairwise criterion).
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict

import numpy as np

from .minhash import MinHasher, band_hashes, exact_jaccard, optimal_param, shingle_sets, sig_similarity
from .normalize import normalize_key


def read_pairs(path: str, fmt: str = "tsv") -> list[tuple[str, str, int, str]]:
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for i, r in enumerate(reader):
            if fmt == "mrpc":
                if i == 0 or len(r) < 5:
                    continue
                rows.append((r[3], r[4], int(r[0]), ""))
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


def minhash_predictions(a: list[str], b: list[str], thresholds: list[float], ngram: int, num_perm: int,
                        verify: bool) -> dict[float, np.ndarray]:
    h = MinHasher(num_perm=num_perm, ngram=ngram)
    sa, sb = h.signatures(a), h.signatures(b)
    est = sig_similarity(sa, sb)
    out = {}
    for t in thresholds:
        bands, rows = optimal_param(t, num_perm)
        hit = (band_hashes(sa, bands, rows) == band_hashes(sb, bands, rows)).any(axis=1)
        out[t] = hit & (est >= t) if verify else hit
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
    from .semantic import build_embedder
    emb = build_embedder(embedder)
    ea, eb = emb.encode(a), emb.encode(b)
    return (np.asarray(ea) * np.asarray(eb)).sum(axis=1)


def evaluate(rows, methods, thresholds, ngrams, num_perm=128, verify=True, eps_values=(0.05, 0.1, 0.2, 0.3),
             embedder=None) -> list[dict]:
    """One result row per (group, method, ngram, threshold)."""
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups["all"].append(i)
        if r[3]:
            groups[r[3]].append(i)
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    gold = np.array([r[2] == 1 for r in rows])
    preds: list[tuple[str, int, float, np.ndarray]] = []
    if "exact" in methods:
        preds.append(("exact", 0, 1.0, np.array([normalize_key(x) == normalize_key(y) for x, y in zip(a, b)])))
    for n in ngrams:
        if "minhash" in methods:
            for t, p in minhash_predictions(a, b, thresholds, n, num_perm, verify).items():
                preds.append(("minhash", n, t, p))
        if "lsh" in methods:  # band collisions only, as MinHashLSH reports them
            for t, p in minhash_predictions(a, b, thresholds, n, num_perm, False).items():
                preds.append(("lsh", n, t, p))
        if "jaccard" in methods:
            j = jaccard_values(a, b, n)
            preds += [("jaccard", n, t, j >= t) for t in thresholds]
        if "datasketch" in methods:
            for t, p in datasketch_predictions(a, b, thresholds, n, num_perm).items():
                preds.append(("datasketch", n, t, p))
    if "semantic" in methods:
        cos = semantic_cosines(a, b, embedder or {})
        preds += [("semantic", 0, round(1 - e, 4), cos >= 1 - e) for e in eps_values]
    out = []
    for g in sorted(groups, key=lambda x: (x != "all", x)):
        idx = np.array(groups[g])
        for m, n, t, p in preds:
            out.append({"group": g, "method": m, "ngram": n, "threshold": t, "pairs": len(idx),
                        **prf(p[idx], gold[idx])})
    return out


def render(results: list[dict]) -> str:
    lines = [f"{'group':<8}{'method':<12}{'ngram':>6}{'thresh':>8}{'P':>8}{'R':>8}{'F1':>8}{'pred+':>8}{'pairs':>8}"]
    for r in results:
        lines.append(f"{r['group']:<8}{r['method']:<12}{r['ngram']:>6}{r['threshold']:>8.3f}{r['precision']:>8.3f}"
                     f"{r['recall']:>8.3f}{r['f1']:>8.3f}{r['predicted']:>8}{r['pairs']:>8}")
    return "\n".join(lines)


def best_per_method(results: list[dict], group: str = "all") -> list[dict]:
    best: dict[str, dict] = {}
    for r in results:
        if r["group"] == group and (r["method"] not in best or r["f1"] > best[r["method"]]["f1"]):
            best[r["method"]] = r
    return list(best.values())


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="thresher eval-dedup", description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", help="TSV of labelled pairs")
    ap.add_argument("--format", choices=("tsv", "qqp", "mrpc"), default="tsv")
    ap.add_argument("--methods", default="exact,minhash,jaccard,semantic",
                    help="comma list of exact,minhash,lsh,jaccard,datasketch,semantic")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--ngram", default="5", help="comma list of shingle sizes (tokens)")
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--no-verify", action="store_true", help="LSH collisions alone, no signature check")
    ap.add_argument("--eps", default="0.02,0.05,0.1,0.2,0.3")
    ap.add_argument("--embedder", default="hashed", help="semantic backend: hashed | tfidf_svd | sentence_transformers")
    ap.add_argument("--model", default="", help="local model path for sentence_transformers")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the result rows here")
    args = ap.parse_args(argv)
    rows = read_pairs(args.pairs, args.format)
    if args.limit:
        rows = rows[: args.limit]
    if not rows:
        print(f"no labelled pairs read from {args.pairs}", file=sys.stderr)
        return 2
    emb = {"backend": args.embedder, **({"model": args.model} if args.model else {})}
    res = evaluate(rows, set(args.methods.split(",")), _floats(args.thresholds),
                   [int(x) for x in args.ngram.split(",")], args.num_perm, not args.no_verify,
                   _floats(args.eps), emb)
    print(f"{args.pairs}: {len(rows)} pairs ({sum(r[2] for r in rows)} positive)")
    print(render(res))
    print("\nbest F1 per method:")
    print(render(best_per_method(res)))
    if args.json:
        import orjson
        with open(args.json, "wb") as f:
            f.write(orjson.dumps({"pairs": args.pairs, "n": len(rows), "results": res}, option=orjson.OPT_INDENT_2))
    return 0
