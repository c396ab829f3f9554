"""Throughput of the sft-zh cleaning stages: this checkout vs a baseline commit, side by side.

Both trees run *their own* configs/sft-zh.yaml map stages (normalisers, turn filter, quality,
blacklist, PII; dedup is a global stage and not part of this comparison) over the same
records: the real SFT sets read once by this checkout (MOSS part 1, ShareGPT-zh, BELLE,
harmlessness, safety, CS-APAT, alpaca-zh part 0).  Each measurement is a fresh process with
one worker; rounds alternate baseline / current, and the ratio of medians is reported.

Run: ``.venv/bin/python benchmarks/cleaning_sft_speed.py [--baseline 4ab3130] [--rounds 5]``
Writes ``benchmarks/results/cleaning_sft_speed.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
INPUTS = [("moss-003-sft/conversations_without_plugins_part1.jsonl", "moss"),
          ("medicalgpt/sharegpt_zh_1K_format.jsonl", "sharegpt_zh"), ("belle/eval_set.json", "belle_eval"),
          ("belle/zh_seed_tasks.json", "belle_seed"), ("seed-xubuvd/cn-Chinese-harmlessness-1K.jsonl", "harmless"),
          ("seed-xubuvd/cn-Safety-Prompts-gpt12k_baichuan1K.jsonl", "safety"),
          ("seed-xubuvd/cn-CS-APAT-sftdata-5K.jsonl", "apat"), ("seed-xubuvd/alpaca-zh-data-part-00.json", "alpaca_zh")]


def dump_records(path: str) -> int:
    """Read the inputs once (no stages) and write the records as JSON lines."""
    sys.path.insert(0, ROOT)
    from thresher.config import load_recipe
    from thresher.executor.runner import run_recipe
    from thresher.inspect import iter_sink
    out_dir = os.path.join(ROOT, "runs", "bench-sft-speed-input")
    recipe = load_recipe("sft-zh", {"inputs": [{"path": os.path.join(SHARED, p), "name": n} for p, n in INPUTS],
                                    "output.dir": out_dir, "output.format": "jsonl", "stages": [],
                                    "executor.workers": 1})
    run_recipe(recipe, restart=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in iter_sink(out_dir, "kept"):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def worker(tree: str, records_path: str) -> None:
    """Time the map stages of ``tree``'s sft-zh over the records; print JSON."""
    sys.path.insert(0, tree)
    from thresher.config import build_stages, load_recipe
    from thresher.records import Record
    stages = [s for s in build_stages(load_recipe(os.path.join(tree, "configs", "sft-zh.yaml"))) if s.kind == "map"]
    for s in stages:
        s.setup(None)
    with open(records_path, encoding="utf-8") as f:
        records = [Record.from_dict(json.loads(line)) for line in f]
    t0 = time.perf_counter()
    for s in stages:
        records = [r for r in s.process_batch([r for r in records if not r.is_rejected])]
    dt = time.perf_counter() - t0
    import thresher
    print(json.dumps({"seconds": dt, "records": len(records), "stages": [s.label for s in stages],
                      "package": os.path.dirname(thresher.__file__)}))


def _run(tree: str, records_path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", tree, records_path], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": tree})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--baseline", default="4ab3130", help="commit to compare against")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--worker", nargs=2, metavar=("TREE", "RECORDS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(*a.worker)
        return 0
    if not os.path.isdir(SHARED):
        print("../shared/data not present")
        return 0
    base_tree = os.path.join(ROOT, "runs", "bench-baseline")
    if not os.path.isdir(base_tree):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", base_tree, a.baseline], check=True)
    records = os.path.join(ROOT, "runs", "bench-sft-speed-records.jsonl")
    n = dump_records(records)
    times = {"baseline": [], "current": []}
    for _ in range(a.rounds):
        for name, tree in (("baseline", base_tree), ("current", ROOT)):
            times[name].append(_run(tree, records)["seconds"])
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"records": n, "baseline": a.baseline, "rounds": a.rounds, "seconds": times,
              "median_seconds": med, "records_per_s": {k: round(n / v, 1) for k, v in med.items()},
              "current_vs_baseline_throughput": round(med["baseline"] / med["current"], 3)}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "cleaning_sft_speed.json"), "w") as f:
        json.dump(result, f, indent=1)
    md = ["# sft-zh cleaning stages: throughput vs baseline", "",
          f"{n} records (real SFT sets), map stages of each tree's own sft-zh, one worker, "
          f"{a.rounds} interleaved rounds, median.", "",
          "| tree | median s | records/s |", "|---|---|---|",
          f"| baseline {a.baseline} | {med['baseline']:.2f} | {result['records_per_s']['baseline']} |",
          f"| current | {med['current']:.2f} | {result['records_per_s']['current']} |", "",
          f"current / baseline throughput: **{result['current_vs_baseline_throughput']}**"]
    with open(os.path.join(HERE, "results", "cleaning_sft_speed.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
