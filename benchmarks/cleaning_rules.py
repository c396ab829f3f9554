"""Measured behaviour of the cleaning rules on ../shared/data.

1. Rejection rate per rule of the ``pretrain-zh`` recipe on four corpora: CLUECorpusSmall
   sample, llamafactory c4 (English), Sogou news, noisy wiki lines.  For each rule we
   report both "alone" (would this rule reject the document if it were the only filter)
   and "first" (the reason the recipe's cascade actually records).
2. Precision/recall of the blacklist stage against the COLD offensive-language labels.
3. Five gne-news-html pages after HTML stripping + boilerplate trimming, compared with
   GNE's own extraction (result.txt), with what was lost or kept wrongly.

4. ``--real-sets``: the full pretrain-zh recipe (dedup included, books read as chapters)
   over the real sets, and over their known-good documents (medical textbook, novel,
   edited news, company prose): share kept per source, rejections by reason.  Its full
   run is what the marked audits benchmarks/results/audit-pretrain-*.tsv sample.

Run: ``.venv/bin/python benchmarks/cleaning_rules.py [--gne | --real-sets]``.  Writes
``benchmarks/results/cleaning_rules.{json,md}``, ``cleaning_gne.md``, ``cleaning_real_sets.{json,md}``.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from thresher.config import build_stages, load_recipe  # noqa: E402
from thresher.records import make_record  # noqa: E402

SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
RESULTS = os.path.join(HERE, "results")


def load_corpora() -> dict[str, list[str]]:
    d = SHARED
    clue = open(f"{d}/cluecorpussmall-sample/CLUECorpusSmall_sampled.txt", encoding="utf-8").read().split("\n")
    clue = [x for x in clue if x.strip()]
    c4 = [json.loads(x)["text"] for x in open(f"{d}/llamafactory-demo/c4_demo.jsonl", encoding="utf-8") if x.strip()]
    sogou = [json.loads(x)["content"] for x in open(f"{d}/sogou-news-smarty/sogou_smarty_utf8.jsonl", encoding="utf-8")
             if x.strip()]
    wiki = [x for x in open(f"{d}/zh-spelling-errors/wiki_zh_200.txt", encoding="utf-8").read().split("\n") if x.strip()]
    return {"cluecorpussmall": clue, "c4_en": c4, "sogou_news": sogou, "wiki_noisy": wiki}


def stack(recipe_name: str):
    recipe = load_recipe(recipe_name)
    # map stages only: global ones (repeated lines, dedup) need a run, see real_sets_run
    stages = [st for st in build_stages(recipe) if st.kind != "global"]
    for st in stages:
        st.setup(None)
    return stages


def measure_corpus(stages, docs: list[str]) -> dict:
    from thresher.cleaning.normalize import Normalizer
    from thresher.cleaning.pii import PiiMasker
    alone: Counter = Counter()
    first: Counter = Counter()
    touched: Counter = Counter()
    kept = 0
    for doc in docs:
        rec = make_record("text", "b", text=doc)
        first_reason = None
        for st in stages:
            if isinstance(st, (Normalizer, PiiMasker)):
                before = rec.text
                st.process(rec)
                if rec.text != before:
                    touched[st.label] += 1
                continue
            rec.meta.pop("reject", None)
            st.process(rec)
            rej = rec.meta.get("reject")
            if rej:
                reasons = {rej["reason"]} | set(rej.get("failed", []))
                for r in reasons:
                    alone[f"{st.label}:{r}"] += 1
                alone[f"{st.label}:*"] += 1
                if first_reason is None:
                    first_reason = f"{st.label}:{rej['reason']}"
        if first_reason:
            first[first_reason] += 1
        else:
            kept += 1
    n = len(docs)
    pct = lambda c: {k: round(100 * v / n, 1) for k, v in sorted(c.items(), key=lambda kv: -kv[1])}  # noqa: E731
    return {"docs": n, "kept_pct": round(100 * kept / n, 1), "rejected_first_pct": pct(first),
            "would_reject_alone_pct": pct(alone), "normaliser_touched_pct": pct(touched)}


# the real sets read the way a recipe should read them: books as chapters (issue 11)
REAL_INPUTS = [("clue", "cluecorpussmall-sample/CLUECorpusSmall_sampled.txt", "line"),
               ("sogou", "sogou-news-smarty/sogou_smarty_utf8.jsonl", "line"),
               ("fever", "medicalgpt/pretrain_fever.txt", "chapter"),
               ("tlbb", "medicalgpt/pretrain_tianlongbabu.txt", "chapter"),
               ("firefly", "firefly/dummy_pretrain.jsonl", "line"),
               ("wiki_zh", "zh-spelling-errors/wiki_zh_200.txt", "line")]
# known-good by provenance: a medical textbook, a novel full of dialogue, edited news articles
# (Sogou items of >= 200 characters; shorter ones are photo captions), product/company prose
KNOWN_GOOD_SOURCES = ("fever", "tlbb", "sogou", "firefly")


def real_sets_run(out_dir: str, known_good_only: bool = False) -> dict:
    """The full pretrain-zh recipe (dedup included) over the real sets; returns kept/rejected
    per source and reason.  ``thresher audit OUT_DIR --per-reason 20`` samples it for marking."""
    import shutil
    import tempfile

    from thresher.config import validate
    from thresher.executor.runner import run_recipe
    from thresher.io.readers import iter_records
    recipe = load_recipe("pretrain-zh")
    tmp = tempfile.mkdtemp()
    inputs = []
    for name, rel, unit in REAL_INPUTS:
        if known_good_only and name not in KNOWN_GOOD_SOURCES:
            continue
        path = f"{SHARED}/{rel}"
        if known_good_only and name == "sogou":
            path = os.path.join(tmp, "sogou_articles.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                for line in open(f"{SHARED}/{rel}", encoding="utf-8"):
                    c = json.loads(line)["content"] if line.strip() else ""
                    if len(c) >= 200 and not c.startswith("中国雅虎侠客平台"):
                        f.write(json.dumps({"text": c}, ensure_ascii=False) + "\n")
        inputs.append({"path": path, "name": name, "unit": unit})
    recipe["inputs"] = inputs
    recipe["output"] = {"dir": out_dir, "format": "jsonl.zst"}
    recipe["executor"] = {"type": "local", "workers": 1}
    shutil.rmtree(out_dir, ignore_errors=True)
    run_recipe(validate(recipe))
    shutil.rmtree(tmp, ignore_errors=True)
    per: dict = {}
    for sink in ("kept", "rejected"):
        for r in iter_records(os.path.join(out_dir, sink)):
            d = per.setdefault(r.source, {"kept": 0, "rejected": Counter()})
            if sink == "kept":
                d["kept"] += 1
            else:
                d["rejected"][r.meta["reject"]["reason"]] += 1
    return {src: {"kept": d["kept"], "docs": d["kept"] + sum(d["rejected"].values()),
                  "kept_pct": round(100 * d["kept"] / max(1, d["kept"] + sum(d["rejected"].values())), 1),
                  "rejected": dict(d["rejected"].most_common())} for src, d in sorted(per.items())}


def blacklist_pr(recipe_name: str) -> dict:
    stages = [s for s in stack(recipe_name) if s.name == "blacklist_filter"]
    bl = stages[0]
    out = {}
    for split in ("test", "dev"):
        rows = list(csv.DictReader(open(f"{SHARED}/cold-offensive-zh/{split}.csv", encoding="utf-8-sig")))
        tp = fp = fn = tn = anyhit_tp = anyhit_fp = 0
        cats: Counter = Counter()
        for row in rows:
            y = row["label"] == "1"
            rec = bl.process(make_record("text", "c", text=row["TEXT"]))
            pred = rec.is_rejected
            hits = rec.meta["signals"]["blacklist"]
            if pred:
                cats[rec.meta["reject"]["reason"]] += 1
            tp += pred and y
            fp += pred and not y
            fn += (not pred) and y
            tn += (not pred) and not y
            anyhit_tp += bool(hits) and y
            anyhit_fp += bool(hits) and not y
        pos = tp + fn
        out[split] = {
            "n": len(rows), "offensive": pos,
            "precision": round(tp / max(tp + fp, 1), 3), "recall": round(tp / max(pos, 1), 3),
            "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 3), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "any_hit_precision": round(anyhit_tp / max(anyhit_tp + anyhit_fp, 1), 3),
            "any_hit_recall": round(anyhit_tp / max(pos, 1), 3), "reasons": dict(cats.most_common()),
        }
    return out


def gne_reference() -> dict[str, str]:
    text = open(f"{SHARED}/gne-news-html/result.txt", encoding="utf-8").read()
    refs = {}
    for m in re.finditer(r">{5,}tests/([^/]+)/([^>]+?)>{5,}\s*(\{.*?\n\})", text, re.S):
        site, fname, body = m.groups()
        try:
            refs[f"{site}__{fname}"] = json.loads(body)["content"]
        except (json.JSONDecodeError, KeyError):
            pass
    return refs


_WS = re.compile(r"\s+")


def _read_page(path: str) -> str:
    raw = open(path, "rb").read()
    html = raw.decode("utf-8", errors="replace")
    return raw.decode("gb18030", errors="replace") if html.count("\ufffd") > 50 else html


def gne_report() -> tuple[list[dict], str]:
    """Every gne-news-html page through strip+trim (before) and extractor+strip+trim (after).

    Lines are compared with all whitespace removed (GNE keeps \\xa0, we normalise it).
    Only the 20 pages in result.txt have a reference; the others report lengths only.
    """
    import thresher.cleaning  # noqa: F401  (registers the stages)
    from thresher.pipeline import REGISTRY
    base = ["html_stripper", "invisible_char_remover", "fullwidth_normalizer", "whitespace_normalizer",
            "boilerplate_trimmer"]
    chains = {}
    for label, names in (("before", base), ("extractor", ["html_content_extractor"] + base),
                         ("extractor only", ["html_content_extractor", "html_stripper", "whitespace_normalizer"])):
        chains[label] = []
        for name in names:
            st = REGISTRY[name]()
            st.setup(None)
            chains[label].append(st)
    refs = gne_reference()
    pages = sorted(os.listdir(f"{SHARED}/gne-news-html/html"))
    rows = []
    tot = {k: [0, 0, 0, 0] for k in chains}
    for page in pages:
        html = _read_page(f"{SHARED}/gne-news-html/html/{page}")
        ref = refs.get(page)
        row = {"page": page, "html_chars": len(html), "has_ref": ref is not None}
        for label, chain in chains.items():
            rec = make_record("text", "g", text=html)
            for st in chain:
                st.process(rec)
            out = _WS.sub("", rec.text)
            row[f"{label}_chars"] = len(rec.text)
            if ref is not None:
                lines = [_WS.sub("", ln) for ln in ref.split("\n") if len(ln.strip()) >= 8]
                found = sum(1 for ln in lines if ln in out)
                row[f"{label}_found"] = f"{found}/{len(lines)}"
                row[f"{label}_over_ref"] = round(len(rec.text) / max(len(ref), 1), 2)
                t = tot[label]
                t[0] += found
                t[1] += len(lines)
                t[2] += len(rec.text)
                t[3] += len(ref)
        rows.append(row)
    md = ["# gne-news-html: main-content extraction vs GNE's extraction\n",
          "GNE's result.txt is a machine extraction (not ground truth) and covers 20 of the 44 pages.",
          "`found` = GNE content lines (>= 8 chars, whitespace ignored) present in our output; `ours/ref` = our",
          "length over GNE's (> 1: we kept navigation, comments, related links).  `before` = html_stripper +",
          "boilerplate_trimmer; `extractor` = html_content_extractor first (the pretrain-zh order); `extractor only`",
          "= without boilerplate_trimmer (which drops 原标题/来源/责任编辑 lines that GNE keeps).\n",
          "| chain | GNE lines found | recall | ours/ref length (sum) |", "|---|---|---|---|"]
    for label, (f, n, o, r) in tot.items():
        md.append(f"| {label} | {f}/{n} | {f / max(n, 1):.3f} | {o / max(r, 1):.2f} |")
    md += ["", "| page | before found | before ours/ref | extractor found | extractor ours/ref | extractor-only found |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if r["has_ref"]:
            md.append(f"| {r['page']} | {r['before_found']} | {r['before_over_ref']} | {r['extractor_found']} | "
                      f"{r['extractor_over_ref']} | {r['extractor only_found']} |")
    md += ["", "Pages without a GNE reference (characters kept):", "",
           "| page | html | before | extractor |", "|---|---|---|---|"]
    for r in rows:
        if not r["has_ref"]:
            md.append(f"| {r['page']} | {r['html_chars']} | {r['before_chars']} | {r['extractor_chars']} |")
    summary = {k: {"found": v[0], "lines": v[1], "recall": round(v[0] / max(v[1], 1), 3),
                   "ours_over_ref": round(v[2] / max(v[3], 1), 2)} for k, v in tot.items()}
    rows.append({"summary": summary})
    return rows, "\n".join(md) + "\n"


def real_sets_report() -> dict:
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        good = real_sets_run(os.path.join(td, "good"), known_good_only=True)
        full = real_sets_run(os.path.join(td, "full"))
    docs = sum(v["docs"] for v in good.values())
    kept = sum(v["kept"] for v in good.values())
    res = {"known_good": good, "known_good_kept_pct": round(100 * kept / max(docs, 1), 1), "all_real_sets": full}
    with open(os.path.join(RESULTS, "cleaning_real_sets.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False, indent=1)
    md = ["# pretrain-zh on the real sets (books read as chapters)\n",
          f"Known-good documents kept: **{res['known_good_kept_pct']}%** ({kept} of {docs}).\n",
          "| set | source | docs | kept % | rejected (reason: count) |", "|---|---|---|---|---|"]
    for name, block in (("known-good", good), ("all", full)):
        for src, v in block.items():
            md.append(f"| {name} | {src} | {v['docs']} | {v['kept_pct']} | "
                      + ", ".join(f"{k}: {n}" for k, n in v["rejected"].items()) + " |")
    md += ["", "Marked audits of the full run: benchmarks/results/audit-pretrain-<source>.tsv "
           "(`thresher audit --score benchmarks/results/audit-pretrain-*.tsv`)."]
    with open(os.path.join(RESULTS, "cleaning_real_sets.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return res


def main() -> None:
    if not os.path.isdir(SHARED):
        print("../shared/data not present; nothing to measure")
        return
    os.makedirs(RESULTS, exist_ok=True)
    if "--gne" in sys.argv:  # only the HTML extraction part
        rows, md = gne_report()
        with open(os.path.join(RESULTS, "cleaning_gne.md"), "w", encoding="utf-8") as f:
            f.write(md)
        print(md)
        return
    t0 = time.time()
    if "--real-sets" in sys.argv:  # only the recipe runs on the real sets (known-good + audit run)
        real_sets_report()
        return
    stages = stack("pretrain-zh")
    corpora = load_corpora()
    rules = {name: measure_corpus(stages, docs) for name, docs in corpora.items()}
    bl = {"pretrain-zh": blacklist_pr("pretrain-zh"), "sft-zh": blacklist_pr("sft-zh")}
    gne_rows, gne_md = gne_report()
    result = {"rules_pretrain_zh": rules, "blacklist_cold": bl, "gne": gne_rows, "seconds": round(time.time() - t0, 1)}
    with open(os.path.join(RESULTS, "cleaning_rules.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    with open(os.path.join(RESULTS, "cleaning_gne.md"), "w", encoding="utf-8") as f:
        f.write(gne_md)
    md = ["# pretrain-zh rule rejection rates on ../shared/data\n"]
    for name, r in rules.items():
        md.append(f"## {name} ({r['docs']} docs, kept {r['kept_pct']}%)\n")
        md.append("| rule:reason | first (cascade) % | would reject alone % |\n|---|---|---|")
        keys = sorted(set(r["rejected_first_pct"]) | {k for k in r["would_reject_alone_pct"] if not k.endswith(":*")},
                      key=lambda k: -r["would_reject_alone_pct"].get(k, 0))
        for k in keys:
            md.append(f"| {k} | {r['rejected_first_pct'].get(k, 0)} | {r['would_reject_alone_pct'].get(k, 0)} |")
        md.append("\nnormalisers touched (% docs): " + ", ".join(f"{k} {v}" for k, v in r["normaliser_touched_pct"].items()))
        md.append("")
    md.append("# blacklist_filter vs COLD offensive labels\n")
    md.append("| recipe | split | n | offensive | precision | recall | F1 | any-hit P | any-hit R |\n|---|---|---|---|---|---|---|---|---|")
    for rn, splits in bl.items():
        for sp, v in splits.items():
            md.append(f"| {rn} | {sp} | {v['n']} | {v['offensive']} | {v['precision']} | {v['recall']} | {v['f1']} | "
                      f"{v['any_hit_precision']} | {v['any_hit_recall']} |")
    with open(os.path.join(RESULTS, "cleaning_rules.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print(json.dumps(gne_rows, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
