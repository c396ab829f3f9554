"""Per-stage cost of the ``pretrain-zh`` stack on CLUECorpusSmall (+ Sogou news).

Each stage is timed on exactly the records it would see in the pipeline (the output of
the previous stage; rejected records are not passed on), best of ``--repeat`` passes, so
the µs/doc column is comparable between versions of the code.  ``--cprofile STAGE`` prints
the top functions of one stage.  Writes ``benchmarks/results/cleaning_profile.json``.

Run: ``.venv/bin/python benchmarks/cleaning_profile.py [--repeat 3] [--cprofile zh_quality_filter]``
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))

from thresher.config import build_stages, load_recipe  # noqa: E402
from thresher.records import make_record  # noqa: E402


def load_docs() -> list[str]:
    clue = [x for x in open(f"{SHARED}/cluecorpussmall-sample/CLUECorpusSmall_sampled.txt", encoding="utf-8")
            .read().split("\n") if x.strip()]
    sogou = [json.loads(x)["content"] for x in open(f"{SHARED}/sogou-news-smarty/sogou_smarty_utf8.jsonl",
                                                    encoding="utf-8") if x.strip()]
    return clue + [s for s in sogou if s.strip()]


def stage_inputs(stages, docs):
    """The records each stage sees: [stage index] -> list of deep copies ready to process."""
    recs = [make_record("text", "bench", text=d) for d in docs]
    inputs = []
    for st in stages:
        inputs.append([copy.deepcopy(r) for r in recs])
        recs = [r for r in (st.process(r) for r in recs) if not r.is_rejected]
    return inputs


def time_stage(st, recs, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        batch = [copy.deepcopy(r) for r in recs]
        t0 = time.perf_counter()
        for r in batch:
            st.process(r)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--recipe", default="pretrain-zh")
    ap.add_argument("--cprofile", default="")
    ap.add_argument("--label", default="current")
    args = ap.parse_args()
    if not os.path.isdir(SHARED):
        print("../shared/data not present; nothing to measure")
        return
    docs = load_docs()
    stages = build_stages(load_recipe(args.recipe))
    for st in stages:
        st.setup(None)
    inputs = stage_inputs(stages, docs)
    rows = []
    total = 0.0
    for st, recs in zip(stages, inputs):
        sec = time_stage(st, recs, args.repeat)
        # µs per *input document* of the whole run, so the column sums to the stack's cost per doc
        us = 1e6 * sec / len(docs)
        total += us
        rows.append({"stage": st.label, "records_in": len(recs), "us_per_doc": round(us, 1),
                     "us_per_record_in": round(1e6 * sec / max(len(recs), 1), 1)})
        print(f"{st.label:28s} in={len(recs):5d}  {us:9.1f} µs/doc  {1e6 * sec / max(len(recs), 1):9.1f} µs/rec-in")
    print(f"{'TOTAL':28s} {'':9s} {total:9.1f} µs/doc")
    if args.cprofile:
        i = [s.label for s in stages].index(args.cprofile)
        batch = [copy.deepcopy(r) for r in inputs[i]]
        pr = cProfile.Profile()
        pr.enable()
        for r in batch:
            stages[i].process(r)
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
    out = os.path.join(HERE, "results", "cleaning_profile.json")
    prev = json.load(open(out)) if os.path.exists(out) else {}
    prev[args.label] = {"docs": len(docs), "repeat": args.repeat, "stages": rows, "total_us_per_doc": round(total, 1)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(prev, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
