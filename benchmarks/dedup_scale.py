"""Scale check: 1M synthetic SFT-sized records deduped through the real pipeline
(exact_dedup + minhash_dedup, local executor) on this machine; wall time and peak RSS
of the driver and of the worker processes.

Records: instruction = 2 random sentences, answer = 2 random sentences from the
CLUECorpusSmall sentence file; 5% exact copies and 10% near-dup copies (1-3% char
edits).  Input is written under .cache/ (derived from third-party data).

    .venv/bin/python benchmarks/dedup_scale.py [--n 1000000] [--workers 2] [--partitions 0]
Writes benchmarks/results/dedup_scale.json.
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTS = os.path.join(ROOT, "..", "shared", "data", "cluecorpussmall-sample", "CLUECorpusSmall_bert_sampled.txt")


def make_input(n: int, path: str) -> dict:
    from thresher.dedup.synth import mutate
    sents = [s.strip() for s in open(SENTS, encoding="utf-8") if 10 <= len(s.strip()) <= 80]
    rng = random.Random(0)
    alphabet = "".join(sorted(set("".join(sents[:500]))))
    made = {"exact": 0, "near": 0}
    with open(path, "wb") as f:
        recent: list[dict] = []
        for i in range(n):
            r = rng.random()
            if recent and r < 0.05:
                rec = rng.choice(recent)
                made["exact"] += 1
            elif recent and r < 0.15:
                src = rng.choice(recent)
                rate = rng.choice([0.01, 0.02, 0.03])
                rec = {"instruction": mutate(src["instruction"], rate, rng, alphabet),
                       "output": mutate(src["output"], rate, rng, alphabet)}
                made["near"] += 1
            else:
                rec = {"instruction": rng.choice(sents) + rng.choice(sents) + f"（{i}）",
                       "output": rng.choice(sents) + rng.choice(sents)}
                recent.append(rec)
                if len(recent) > 5000:
                    recent.pop(rng.randrange(len(recent)))
            f.write(orjson.dumps(rec) + b"\n")
    return made


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=0, help="dedup reduce partitions (0 = auto)")
    args = ap.parse_args()
    if not os.path.exists(SENTS):
        print("../shared/data not present", file=sys.stderr)
        return 1
    work = os.path.join(ROOT, ".cache", "dedup", f"scale-{args.n}")
    os.makedirs(work, exist_ok=True)
    inp = os.path.join(work, "in.jsonl")
    t0 = time.time()
    made = make_input(args.n, inp)
    gen_s = time.time() - t0
    from thresher.config import validate
    from thresher.executor.runner import run_recipe
    recipe = validate({"inputs": [{"path": inp, "name": "sft", "mapping": {"format": "alpaca"}}],
                       "output": {"dir": os.path.join(work, "run"), "format": "jsonl.zst"},
                       "executor": {"workers": args.workers, "shard_bytes": "32MB", "batch_size": 2048},
                       "stages": [{"exact_dedup": {"partitions": args.partitions}},
                                  {"minhash_dedup": {"threshold": 0.7, "partitions": args.partitions}}]})
    t0 = time.time()
    stats = run_recipe(recipe, restart=True)
    wall = time.time() - t0
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    st = stats["stages"]
    out = {"records": args.n, "input_bytes": os.path.getsize(inp), "planted": made, "generate_seconds": round(gen_s, 1),
           "run_seconds": round(wall, 1), "records_per_s": round(args.n / wall, 1), "workers": args.workers,
           "partitions": args.partitions, "peak_rss_driver_mb": round(self_mb, 1),
           "peak_rss_largest_worker_mb": round(child_mb, 1),
           "rejected": {k: v["reasons"] for k, v in st.items() if v["rejected"]},
           "reduces": stats["reduces"], "conserved": stats["conserved"]}
    print(json.dumps(out, indent=2))
    with open(os.path.join(ROOT, "benchmarks", "results", "dedup_scale.json"), "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
