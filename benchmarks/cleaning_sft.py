"""Rejection rate per reason of the ``sft-zh`` recipe on the shared SFT/DPO sets.

Each set is loaded into records (alpaca instruction/input/output, ShareGPT
conversations, MOSS turns, BELLE question/std_answer, APAT ``data`` pairs, LLaMA-Factory
DPO), run through every stage of configs/sft-zh.yaml in-process, and the first
rejection reason is counted.  ``--examples N`` prints N rejected samples per top reason
(used to look for false positives).  Writes ``benchmarks/results/cleaning_sft.{json,md}``.

Run: ``.venv/bin/python benchmarks/cleaning_sft.py [--limit 2000] [--examples 5]``
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))

from thresher.config import build_stages, load_recipe  # noqa: E402
from thresher.records import make_record  # noqa: E402

_ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_MOSS_TAG = re.compile(r"^<\|\w+\|>:\s*|<eo[hma]>\s*$")


def _alpaca(path, limit):
    for r in json.load(open(path, encoding="utf-8"))[:limit]:
        q = (r["instruction"] + ("\n" + r["input"] if r.get("input") else "")).strip()
        yield make_record("sft", "alpaca", messages=[{"role": "user", "content": q},
                                                     {"role": "assistant", "content": r["output"]}])


def _sharegpt_msgs(conv):
    return [{"role": _ROLE.get(m["from"], "user"), "content": m["value"]} for m in conv]


def _sharegpt(path, limit):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            yield make_record("sft", "sharegpt", messages=_sharegpt_msgs(json.loads(line)["conversations"]))


def _moss(path, limit):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            msgs = []
            for _, turn in sorted(json.loads(line)["chat"].items(), key=lambda kv: int(kv[0].split("_")[1])):
                msgs.append({"role": "user", "content": _MOSS_TAG.sub("", turn["Human"]).strip()})
                msgs.append({"role": "assistant", "content": _MOSS_TAG.sub("", turn["MOSS"]).strip()})
            yield make_record("sft", "moss", messages=msgs)


def _apat(path, limit):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            d = json.loads(line)["data"]
            msgs = [{"role": "user" if j % 2 == 0 else "assistant", "content": t} for j, t in enumerate(d)]
            yield make_record("sft", "apat", messages=msgs)


def _belle(path, limit):  # JSON lines despite the .json name
    rows = [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]
    for r in rows[:limit]:
        yield make_record("sft", "belle", messages=[{"role": "user", "content": r["question"]},
                                                    {"role": "assistant", "content": r["std_answer"]}])


def _dpo(path, limit):
    for r in json.load(open(path, encoding="utf-8"))[:limit]:
        yield make_record("dpo", "dpo", messages=_sharegpt_msgs(r["conversations"]),
                          chosen=r["chosen"]["value"], rejected=r["rejected"]["value"])


SETS = {
    "seed alpaca-zh part-00": (_alpaca, "seed-xubuvd/alpaca-zh-data-part-00.json"),
    "seed alpaca-zh part-01": (_alpaca, "seed-xubuvd/alpaca-zh-data-part-01.json"),
    "seed cn-CS-APAT-5K": (_apat, "seed-xubuvd/cn-CS-APAT-sftdata-5K.jsonl"),
    "moss-003-sft (no plugins, part1)": (_moss, "moss-003-sft/conversations_without_plugins_part1.jsonl"),
    "medicalgpt sharegpt_zh_1K": (_sharegpt, "medicalgpt/sharegpt_zh_1K_format.jsonl"),
    "llamafactory dpo_zh_demo": (_dpo, "llamafactory-demo/dpo_zh_demo.json"),
    "belle eval_set": (_belle, "belle/eval_set.json"),
}


def run(stages, records):
    reasons: Counter = Counter()
    examples = defaultdict(list)
    n = 0
    for rec in records:
        n += 1
        for st in stages:
            if rec.kind not in st.applies_to:
                continue
            rec = st.process(rec)
            if rec.is_rejected:
                rj = rec.meta["reject"]
                key = f"{rj['stage']}:{rj['reason']}"
                reasons[key] += 1
                examples[key].append(rec)
                break
    return n, reasons, examples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--examples", type=int, default=0)
    args = ap.parse_args()
    if not os.path.isdir(SHARED):
        print("../shared/data not present; nothing to measure")
        return
    stages = build_stages(load_recipe("sft-zh"))
    for st in stages:
        st.setup(None)
    out, md = {}, ["# sft-zh rejection rates per reason on shared SFT/DPO sets\n",
                   f"(first {args.limit} records of each set; % of records, first failing reason)\n",
                   "| set | records | kept % | rejections by reason (%) |", "|---|---|---|---|"]
    for name, (loader, rel) in SETS.items():
        path = os.path.join(SHARED, rel)
        if not os.path.exists(path):
            continue
        n, reasons, examples = run(stages, loader(path, args.limit))
        rej = sum(reasons.values())
        out[name] = {"records": n, "kept_pct": round(100 * (n - rej) / max(n, 1), 2),
                     "reasons_pct": {k: round(100 * v / n, 2) for k, v in reasons.most_common()}}
        md.append(f"| {name} | {n} | {out[name]['kept_pct']} | "
                  + ", ".join(f"{k} {v}" for k, v in out[name]["reasons_pct"].items()) + " |")
        if args.examples:
            print(f"\n######## {name}: {dict(reasons.most_common())}")
            for key, _ in reasons.most_common(4):
                print(f"--- {key}")
                for rec in examples[key][:args.examples]:
                    rj = rec.meta["reject"]
                    print(f"  [{rj.get('value')} vs {rj.get('threshold')}]",
                          json.dumps([(r, t[-160:]) for r, t in rec.segments()], ensure_ascii=False)[:420])
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "cleaning_sft.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    with open(os.path.join(HERE, "results", "cleaning_sft.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
