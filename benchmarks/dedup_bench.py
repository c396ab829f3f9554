"""MinHash dedup side by side on one corpus and machine: thresher vs a straightforward
datasketch pipeline (MinHash per record + MinHashLSH query/insert), same num_perm,
threshold and shingles (CJK character / Latin word 5-grams).  Optionally text-dedup's
MinHash from its own venv (.cache/bench-venv; never ours).

Corpus: CLUECorpusSmall sample docs (or short SFT-sized slices of them with --short)
plus edited copies (random char edits at 1-3%), shuffled; true clusters known, so F1
is pairwise F1 of the predicted clusters.  Each method runs in a fresh subprocess;
peak memory = that process's max RSS minus its RSS after imports and loading the corpus.

    .venv/bin/python benchmarks/dedup_bench.py [--short] [--repeat 2]
Writes benchmarks/results/dedup_bench[_short].{json,md}.
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "cluecorpussmall-sample", "CLUECorpusSmall_sampled.txt")
NUM_PERM, THRESHOLD, NGRAM = 128, 0.7, 5


def corpus(short: bool, scale: int) -> tuple[list[str], list[int]]:
    from thresher.dedup.synth import near_duplicate
    docs = [l.strip() for l in open(DATA, encoding="utf-8") if len(l.strip()) >= 50]
    if short:  # SFT-sized records: 60-200 char slices
        rng0 = random.Random(1)
        docs = [d[i:i + rng0.randint(60, 200)] for d in docs for i in range(0, len(d) - 60, 200)]
    docs = docs * scale if scale > 1 else docs
    rng = random.Random(0)
    alphabet = "".join(sorted(set("".join(docs[:200]))))
    items = []
    for i, d in enumerate(docs):
        if scale > 1:  # make the repeated docs distinct originals
            d = d + str(i)
        items.append((d, i))
        for _ in range(rng.choice([0, 0, 1, 2])):
            items.append((near_duplicate(d, rng.choice([0.01, 0.02, 0.03]), rng, alphabet), i))
    rng.shuffle(items)
    return [t for t, _ in items], [c for _, c in items]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pair_f1(pred: np.ndarray, gold: np.ndarray) -> dict:
    def pairs(labels):
        _, counts = np.unique(labels, return_counts=True)
        return int((counts * (counts - 1) // 2).sum())
    joint = pairs(pred.astype(np.int64) * (int(gold.max()) + 1) + gold)
    pp, gp = pairs(pred), pairs(gold)
    p = joint / pp if pp else 0.0
    r = joint / gp if gp else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0, 4)}


def run_thresher(texts: list[str], verify: str, slack: float = 3.0) -> np.ndarray:
    from thresher.dedup.minhash import dedup_clusters
    return dedup_clusters(texts, threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, verify=verify,
                          verify_slack=slack)


def slack_sweep(short: bool, scale: int) -> list[dict]:
    """F1 of signature verification per slack (standard errors below the threshold),
    with exact-Jaccard verification and no verification for reference: one set of
    signatures and candidates, so the rows differ only in the verification rule."""
    from thresher.dedup.minhash import (MinHasher, band_hashes, bucket_edges, empty_mask, exact_jaccard,
                                        optimal_param, shingle_sets, sig_similarity, verify_cutoff)
    from thresher.dedup.unionfind import components
    texts, gold = corpus(short, scale)
    gold = np.asarray(gold)
    h = MinHasher(num_perm=NUM_PERM, ngram=NGRAM)
    sig = np.concatenate([h.signatures(texts[i:i + 1024]) for i in range(0, len(texts), 1024)])
    b, r = optimal_param(THRESHOLD, NUM_PERM)
    bh = band_hashes(sig, b, r)
    keys = np.flatnonzero(~empty_mask(sig)).astype(np.int64)
    e = np.unique(np.concatenate([bucket_edges(keys, bh[keys, j]) for j in range(b)]), axis=0)
    est = sig_similarity(sig[e[:, 0]], sig[e[:, 1]])
    sets = shingle_sets(h, texts)
    jac = np.array([exact_jaccard(sets[a], sets[c]) for a, c in e.tolist()])
    same = gold[e[:, 0]] == gold[e[:, 1]]

    def f1(mask):
        lab = np.arange(len(texts))
        n, rt = components(e[mask])
        lab[n] = rt
        return pair_f1(lab, gold)
    rows = [{"rule": "none (LSH candidates)", "cutoff": None, **f1(np.ones(len(e), bool))}]
    for slack in (0.0, 1.0, 1.5, 2.0, 3.0):
        cut = verify_cutoff(THRESHOLD, NUM_PERM, slack)
        rows.append({"rule": f"signature, slack {slack}", "cutoff": round(cut, 4), **f1(est >= cut)})
    for t in (THRESHOLD, verify_cutoff(THRESHOLD, NUM_PERM, 3.0)):
        rows.append({"rule": f"exact Jaccard >= {t:.3f}", "cutoff": round(t, 4), **f1(jac >= t)})
    q = np.quantile(jac[same], [0.01, 0.05, 0.1, 0.25, 0.5]) if same.any() else np.zeros(5)
    rows.append({"rule": "true candidate pairs: exact Jaccard quantiles 1/5/10/25/50%",
                 "values": [round(float(x), 3) for x in q], "true_pairs_below_threshold": int((jac[same] < THRESHOLD).sum()),
                 "true_candidate_pairs": int(same.sum()), "false_candidate_pairs": int((~same).sum())})
    return rows


def py_shingles(text: str, n: int) -> set[bytes]:
    """Same tokens as thresher (CJK char / Latin word), in plain Python per record."""
    from thresher.dedup.minhash import CLASS_CJK, CLASS_WORD, char_classes, fold_table
    cls, fold = char_classes(), fold_table()
    toks, word = [], []
    for ch in text:
        cp = int(fold[ord(ch)])
        c = cls[cp]
        if c == CLASS_WORD:
            word.append(chr(cp))
            continue
        if word:
            toks.append("".join(word))
            word = []
        if c == CLASS_CJK:
            toks.append(chr(cp))
    if word:
        toks.append("".join(word))
    if not toks:
        return set()
    if len(toks) < n:
        return {" ".join(toks).encode()}
    return {" ".join(toks[i:i + n]).encode() for i in range(len(toks) - n + 1)}


def run_datasketch(texts: list[str]) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH
    from thresher.dedup.unionfind import components
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    edges = []
    for i, t in enumerate(texts):
        sh = py_shingles(t, NGRAM)
        if not sh:
            continue
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch(list(sh))
        edges += [(j, i) for j in lsh.query(m)]
        lsh.insert(i, m)
    labels = np.arange(len(texts))
    nodes, roots = components(np.array(edges, np.int64).reshape(-1, 2))
    labels[nodes] = roots
    return labels


def child(method: str, short: bool, scale: int) -> None:
    texts, gold = corpus(short, scale)
    if method.startswith("thresher"):
        from thresher.dedup.minhash import char_classes, fold_table
        char_classes(), fold_table()  # one-off tables, not per-record work
    if method == "datasketch":
        import datasketch  # noqa: F401
    base = rss_mb()
    t0 = time.perf_counter()
    if method == "thresher":  # the stage default: signature verification, slack 3 stderr
        pred = run_thresher(texts, "signature")
    elif method == "thresher-strict":
        pred = run_thresher(texts, "signature", 0.0)
    elif method == "thresher-noverify":
        pred = run_thresher(texts, "none")
    else:
        pred = run_datasketch(texts)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"method": method, "records": len(texts), "chars": sum(map(len, texts)), "seconds": round(dt, 3),
           "records_per_s": round(len(texts) / dt, 1), "peak_rss_mb": round(peak, 1),
           "peak_over_base_mb": round(peak - base, 1), "kept": int(len(np.unique(pred))),
           "true_clusters": len(set(gold)), **pair_f1(pred, np.asarray(gold))}
    print("RESULT " + json.dumps(out))


def spawn(method: str, short: bool, scale: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--scale", str(scale)] + (["--short"] if short else [])
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(line[7:])


TEXT_DEDUP_PY = os.path.join(ROOT, ".cache", "bench-venv", "bin", "python")


def run_text_dedup(short: bool, scale: int) -> dict | None:
    """text-dedup 0.4 MinHash (its own venv), same num_perm/threshold/ngram, one process.
    Its CLI reports no clusters, so we compare how many records it keeps with the true
    number of clusters (and with ours)."""
    if not os.path.exists(TEXT_DEDUP_PY):
        return None
    import shutil
    texts, gold = corpus(short, scale)
    work = os.path.join(ROOT, ".cache", "dedup", "text-dedup")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "corpus.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
    cmd = ["/usr/bin/time", "-f", "MAXRSS_KB %M", TEXT_DEDUP_PY, "-m", "text_dedup.minhash", "--path", "json",
           "--data_files", src, "--split", "train", "--cache_dir", os.path.join(work, "cache"),
           "--output", os.path.join(work, "out"), "--column", "text", "--num_perm", str(NUM_PERM),
           "--threshold", str(THRESHOLD), "--ngram", str(NGRAM), "--num_proc", "1"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        return {"method": "text-dedup", "error": p.stderr[-1500:]}
    rss = next((int(l.split()[1]) / 1024 for l in p.stderr.splitlines() if l.startswith("MAXRSS_KB")), None)
    after = next((l for l in (p.stdout + p.stderr).splitlines() if "After" in l), "")
    kept = int(after.rsplit(":", 1)[-1].strip().replace(",", "")) if after else None
    return {"method": "text-dedup", "records": len(texts), "seconds_incl_startup": round(dt, 2),
            "records_per_s_incl_startup": round(len(texts) / dt, 1), "peak_rss_mb": rss, "kept": kept,
            "true_clusters": len(set(gold))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.short, args.scale)
        return 0
    if not os.path.exists(DATA):
        print("../shared/data not present", file=sys.stderr)
        return 1
    rows = []
    for rep in range(args.repeat):  # interleaved so machine noise hits both alike
        for m in ("datasketch", "thresher", "thresher-strict", "thresher-noverify"):
            r = spawn(m, args.short, args.scale)
            r["repeat"] = rep
            rows.append(r)
            print(json.dumps(r), flush=True)
    best = {}
    for r in rows:
        if r["method"] not in best or r["records_per_s"] > best[r["method"]]["records_per_s"]:
            best[r["method"]] = r
    ds = best["datasketch"]
    summary = {m: {"speedup_vs_datasketch": round(r["records_per_s"] / ds["records_per_s"], 2),
                   "peak_mem_ratio_vs_datasketch": round(r["peak_over_base_mb"] / max(ds["peak_over_base_mb"], 0.1), 3),
                   "f1": r["f1"], "f1_datasketch": ds["f1"]} for m, r in best.items()}
    name = "dedup_bench" + ("_short" if args.short else "") + (f"_x{args.scale}" if args.scale > 1 else "")
    res = {"num_perm": NUM_PERM, "threshold": THRESHOLD, "ngram": NGRAM, "cpu_count": os.cpu_count(),
           "runs": rows, "best": best, "summary": summary}
    res["slack_sweep"] = sweep = slack_sweep(args.short, args.scale)
    td = run_text_dedup(args.short, args.scale)
    if td:
        res["text_dedup"] = td
        print(json.dumps(td))
    with open(os.path.join(ROOT, "benchmarks", "results", name + ".json"), "w") as f:
        json.dump(res, f, indent=2)
    md = [f"# {name}", "", f"num_perm={NUM_PERM} threshold={THRESHOLD} ngram={NGRAM}; {best['datasketch']['records']} "
          f"records, {best['datasketch']['chars']:,} chars; best of {args.repeat} interleaved runs; 2-core shared machine.",
          "", "| method | records/s | speedup | peak MB over base | P | R | F1 |", "|---|---|---|---|---|---|---|"]
    for m, r in best.items():
        md.append(f"| {m} | {r['records_per_s']:,.0f} | {summary[m]['speedup_vs_datasketch']}x | "
                  f"{r['peak_over_base_mb']} | {r['precision']} | {r['recall']} | {r['f1']} |")
    md += ["", "Verification rule vs F1 (same signatures and LSH candidates; `thresher` above = signature, slack 3):", "",
           "| rule | cutoff | P | R | F1 |", "|---|---|---|---|---|"]
    md += [f"| {r['rule']} | {r['cutoff']} | {r['precision']} | {r['recall']} | {r['f1']} |" for r in sweep if "f1" in r]
    md.append(f"\n{sweep[-1]['rule']}: {sweep[-1]['values']}; {sweep[-1]['true_pairs_below_threshold']} of "
              f"{sweep[-1]['true_candidate_pairs']} true candidate pairs are below the threshold "
              f"({sweep[-1]['false_candidate_pairs']} false candidate pairs).")
    md.append(f"\nKept records: true clusters {best['thresher']['true_clusters']}; thresher keeps "
              f"{best['thresher']['kept']}, datasketch {best['datasketch']['kept']}.")
    if td and "error" not in td:
        md.append(f"text-dedup 0.4 MinHash (own venv, 1 proc, HF datasets; time includes its startup): "
                  f"{td['records_per_s_incl_startup']:,.0f} records/s, peak RSS {td['peak_rss_mb']} MB (whole process), "
                  f"kept {td['kept']} of {td['records']} (true clusters: {td['true_clusters']}).")
    elif td:
        md.append("text-dedup failed: " + td["error"][-300:].replace("\n", " "))
    with open(os.path.join(ROOT, "benchmarks", "results", name + ".md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
