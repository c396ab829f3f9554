"""Do the sft-zh normalisers leave code and Markdown alone?  Measured on real answers.

Two measurements over MOSS-003 part 1, MedicalGPT ShareGPT-zh and BELLE (eval set + seed
tasks):

1. **Per normaliser**, in-process: every turn before and after the stage; a turn "keeps
   its structure" when its fenced blocks are byte-identical, its Markdown heading count and
   the indentation of every code line are unchanged (``thresher.cleaning.structure``).
2. **Through the whole recipe**: the inputs are read once with no stages (the records as
   read, same ids) and once through ``configs/sft-zh.yaml``; every fenced block of every
   kept answer is compared byte for byte with the same record's input.

Writes ``benchmarks/results/sft_structure.{json,md}``.
Run: ``.venv/bin/python benchmarks/sft_structure.py``
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))

from thresher.cleaning.normalize import Normalizer  # noqa: E402
from thresher.cleaning.structure import fenced_blocks, structure  # noqa: E402
from thresher.config import build_stages, load_recipe  # noqa: E402
from thresher.executor.runner import run_recipe  # noqa: E402
from thresher.inspect import iter_sink  # noqa: E402
from thresher.records import Record  # noqa: E402

INPUTS = [
    {"path": os.path.join(SHARED, "moss-003-sft", "conversations_without_plugins_part1.jsonl"), "name": "moss"},
    {"path": os.path.join(SHARED, "medicalgpt", "sharegpt_zh_1K_format.jsonl"), "name": "sharegpt_zh"},
    {"path": os.path.join(SHARED, "belle", "eval_set.json"), "name": "belle_eval"},
    {"path": os.path.join(SHARED, "belle", "zh_seed_tasks.json"), "name": "belle_seed"},
]


def _recipe(out_dir: str, stages: list | None) -> dict:
    overrides = {"inputs": INPUTS, "output.dir": out_dir, "output.format": "jsonl", "executor.workers": 1}
    if stages is not None:
        overrides["stages"] = stages
    return load_recipe("sft-zh", overrides)


def per_normaliser(records: list[Record]) -> dict:
    stages = [s for s in build_stages(_recipe(os.path.join(ROOT, "runs", "bench-structure", "x"), None))
              if isinstance(s, Normalizer)]
    out = {}
    for st in stages:
        st.setup(None)
        turns = changed = broken = 0
        for rec in records:
            fn = st.text_fn(rec)
            for _, text in rec.segments():
                turns += 1
                after = fn(text)
                if after != text:
                    changed += 1
                    if structure(after) != structure(text):
                        broken += 1
        out[st.label] = {"turns": turns, "changed": changed, "structure_broken": broken}
    return out


def through_recipe(base: str) -> dict:
    raw_dir, run_dir = os.path.join(base, "input"), os.path.join(base, "sft-zh")
    run_recipe(_recipe(raw_dir, []), restart=True)
    run_recipe(_recipe(run_dir, None), restart=True)
    inputs = {r["id"]: Record.from_dict(r) for r in iter_sink(raw_dir, "kept")}
    per_source: Counter = Counter()
    same: Counter = Counter()
    answers_with_code: Counter = Counter()
    for r in iter_sink(run_dir, "kept"):
        kept = Record.from_dict(r)
        src = inputs[kept.id]
        for (_, before), (_, after) in zip(src.segments(), kept.segments()):
            blocks = fenced_blocks(before)
            if not blocks:
                continue
            answers_with_code[kept.source] += 1
            after_blocks = set(fenced_blocks(after))
            per_source[kept.source] += len(blocks)
            same[kept.source] += sum(b in after_blocks for b in blocks)
    return {"records_in": len(inputs), "by_source": {
        s: {"turns_with_fences": answers_with_code[s], "fenced_blocks": per_source[s], "byte_identical": same[s]}
        for s in sorted(per_source)}}


def main() -> int:
    if not os.path.isdir(SHARED):
        print("../shared/data not present")
        return 0
    base = os.path.join(ROOT, "runs", "bench-structure")
    result = {"recipe": through_recipe(base)}
    records = [Record.from_dict(r) for r in iter_sink(os.path.join(base, "input"), "kept")]
    result["per_normaliser"] = per_normaliser(records)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "sft_structure.json"), "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    lines = ["# sft-zh normalisers vs structure on real answers", "",
             f"{result['recipe']['records_in']} records in (MOSS part 1, ShareGPT-zh, BELLE eval + seed tasks).", "",
             "## Fenced code blocks in kept records, input vs output (whole recipe)", "",
             "| source | turns with fences | fenced blocks | byte-identical |", "|---|---|---|---|"]
    for s, v in result["recipe"]["by_source"].items():
        lines.append(f"| {s} | {v['turns_with_fences']} | {v['fenced_blocks']} | {v['byte_identical']} |")
    lines += ["", "## Per normaliser (every turn of every input record)", "",
              "| stage | turns | changed | structure broken |", "|---|---|---|---|"]
    for name, v in result["per_normaliser"].items():
        lines.append(f"| {name} | {v['turns']} | {v['changed']} | {v['structure_broken']} |")
    with open(os.path.join(HERE, "results", "sft_structure.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
