"""eval-dedup numbers for the issue: QQP, MRPC and a synthetic Chinese near-duplicate set.

Synthetic set: CLUECorpusSmall sample documents; per edit rate, positives are a doc and
a copy with random character insertions/deletions/substitutions at that rate (a quarter
also sentence-shuffled), negatives two unrelated docs (one edited alike).  The TSV is
written under .cache/ (derived from third-party data: never into the repo).

    .venv/bin/python benchmarks/dedup_eval.py
Writes benchmarks/results/dedup_eval.{json,md}.
"""
import csv
import os
import sys
import time

import orjson

from thresher.dedup.evaluate import best_per_method, evaluate, read_pairs, render
from thresher.dedup.synth import labelled_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
RATES = [0.01, 0.03, 0.05, 0.1, 0.2, 0.3]


def synth_tsv() -> str:
    out = os.path.join(ROOT, ".cache", "dedup", "synth_pairs.tsv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    docs = [l.strip() for l in open(os.path.join(DATA, "cluecorpussmall-sample", "CLUECorpusSmall_sampled.txt"),
                                    encoding="utf-8") if len(l.strip()) >= 50]
    rows = labelled_pairs(docs, RATES, 200, seed=0)
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        for a, b, y, g in rows:
            w.writerow([a.replace("\t", " ").replace("\n", " "), b.replace("\t", " ").replace("\n", " "), y, g])
    return out


def fixed_threshold_table(res: list[dict]) -> list[str]:
    """F1 per edit rate at fixed, realistic thresholds (what a recipe would use)."""
    rates = sorted({r["group"] for r in res} - {"all"}, key=float)
    out = ["F1 per edit rate at fixed thresholds (num_perm=128):", "",
           "| method | ngram | threshold | " + " | ".join(f"rate {g}" for g in rates) + " | all |",
           "|---|---|---|" + "---|" * (len(rates) + 1)]
    for m in ("minhash", "lsh", "datasketch", "jaccard"):
        for n in (3, 5):
            for t in (0.5, 0.7, 0.8):
                f1 = {r["group"]: r["f1"] for r in res if r["method"] == m and r["ngram"] == n and r["threshold"] == t}
                if f1:
                    out.append(f"| {m} | {n} | {t} | " + " | ".join(f"{f1[g]:.3f}" for g in rates) + f" | {f1['all']:.3f} |")
    return out + [""]


def main() -> int:
    if not os.path.isdir(DATA):
        print("../shared/data not present", file=sys.stderr)
        return 1
    th = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    sets = {
        "en-quora-qqp (test, 10k pairs)": (os.path.join(DATA, "en-quora-qqp", "quora_bimpm_test.tsv"), "qqp", [1, 2, 3]),
        "en-mrpc (test, 1725 pairs)": (os.path.join(DATA, "en-mrpc", "msr_paraphrase_test.txt"), "mrpc", [1, 2, 3]),
        "synthetic zh near-dups (cluecorpussmall)": (synth_tsv(), "tsv", [3, 5]),
    }
    report = {}
    for name, (path, fmt, ngrams) in sets.items():
        rows = read_pairs(path, fmt)
        t0 = time.time()
        res = evaluate(rows, {"exact", "minhash", "lsh", "jaccard", "datasketch", "semantic"}, th, ngrams,
                       eps_values=(0.02, 0.05, 0.1, 0.2, 0.3, 0.4))
        report[name] = {"path": os.path.relpath(path, ROOT), "pairs": len(rows), "positive": sum(r[2] for r in rows),
                        "format": fmt, "results": res, "seconds": round(time.time() - t0, 1)}
        print(f"== {name}: {len(rows)} pairs")
        print(render(best_per_method(res)))
    with open(os.path.join(ROOT, "benchmarks", "results", "dedup_eval.json"), "wb") as f:
        f.write(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    write_md(report)
    return 0


def write_md(report: dict) -> None:
    md = ["# eval-dedup results", "", "Produced by `benchmarks/dedup_eval.py` (same numbers as `thresher eval-dedup`).",
          "Methods: `exact` normalised-key equality; `minhash` LSH band collision + signature estimate >= threshold;",
          "`lsh` band collision only; `jaccard` exact shingle Jaccard >= threshold; `datasketch` datasketch MinHashLSH "
          "(same shingles, num_perm=128); `semantic` cosine >= 1-eps of the hashed n-gram fallback embedder.", ""]
    for name, rep in report.items():
        res = rep["results"]
        md += [f"## {name}", "", f"{rep['pairs']} pairs, {rep.get('positive', '?')} positive. Best F1 per method "
               "(over thresholds and n-gram sizes):", "", "```", render(best_per_method(res)), "```", ""]
        if rep.get("format", "tsv") == "tsv" and "synthetic" in name:
            md += fixed_threshold_table(res)
            md += ["F1 per edit rate (best threshold per method and rate; the negatives are unrelated docs, so low "
                   "thresholds win here):", "", "```"]
            for g in sorted({r["group"] for r in res} - {"all"}, key=float):
                md.append(render(best_per_method(res, g)).split("\n", 1)[1])
            md += ["```", ""]
        full = [r for r in res if r["group"] == "all" and r["method"] in ("minhash", "lsh", "datasketch", "jaccard")]
        md += ["<details><summary>all thresholds</summary>", "", "```", render(full), "```", "</details>", ""]
    with open(os.path.join(ROOT, "benchmarks", "results", "dedup_eval.md"), "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:  # re-render the markdown from the stored JSON
        with open(os.path.join(ROOT, "benchmarks", "results", "dedup_eval.json"), "rb") as f:
            write_md(orjson.loads(f.read()))
        sys.exit(0)
    sys.exit(main())
