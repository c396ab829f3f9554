"""Spam signals, quality_heuristic spread and the in-run reference classifier on real Chinese text.

On ../shared/data (skips when absent):

* ``quality_heuristic`` histogram (10 bins over [0, 1]) and quantiles on CLUECorpusSmall
  (2500 docs) and Sogou news (200), with ``spam_filter`` signals;
* spam injection: each real doc >= 200 chars gets a gambling / SEO block (templates written
  for this benchmark, 4 kinds) as header + footer; ``spam_filter`` rejection rate on injected
  vs clean docs (false positives), ROC AUC of quality_heuristic clean > injected, and the
  share of injected docs scored below their own clean version;
* ``quality_reference`` recipe (CCNet/DCLM): reference = Sogou news + medicalgpt book text,
  negatives = CLUECorpusSmall + Weibo + reviews; a seeded split holds out 30% of both sides
  (never trained on), ROC AUC reference-vs-raw there.

    .venv/bin/python benchmarks/scoring_spam_quality.py
Writes benchmarks/results/scoring_spam_quality.{json,md}.
"""
from __future__ import annotations

import csv
import json
import os
import random
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OUT = os.path.join(REPO, "benchmarks", "results", "scoring_spam_quality")

BLOCKS = [  # our own text, in the shapes hacked pages carry
    "澳门新葡京官网 最新网址 备用网址 注册送彩金 真人百家乐 现金网 贵宾会 信誉平台 提现秒到",
    "太阳城集团 太阳城集团最新网址 太阳城集团永久网址 太阳城集团唯一官网 太阳城集团 太阳城集团",
    "友情链接：a8899.com b7766.cc c5544.vip d3322.top e1100.net f9988.xyz g6677.com h4455.cc i2233.vip",
    "六合彩资料 香港马会 一肖中特 特码 跑狗图 免费资料大全 开奖结果 天天彩 大发快三 北京赛车",
]


def clue() -> list[str]:
    return [ln.strip() for ln in open(os.path.join(DATA, "cluecorpussmall-sample", "CLUECorpusSmall_sampled.txt"),
                                      encoding="utf-8") if ln.strip()]


def sogou() -> list[str]:
    rows = [json.loads(ln) for ln in open(os.path.join(DATA, "sogou-news-smarty", "sogou_smarty_utf8.jsonl"),
                                          encoding="utf-8")]
    return [r["content"] for r in rows if r.get("content", "").strip()]


def scored(texts, lex):
    from thresher.cleaning.spam import measure_spam
    from thresher.scoring.heuristic import heuristic_quality
    sig = [measure_spam(t, lex) for t in texts]
    return sig, np.array([heuristic_quality(t, {"spam": s}) for t, s in zip(texts, sig)])


def spread(res, lex) -> None:
    out = {}
    for name, texts in (("cluecorpussmall", clue()), ("sogou", sogou())):
        _, q = scored(texts, lex)
        out[name] = {"n": len(texts), "histogram_0_1_10bins": np.histogram(q, bins=10, range=(0, 1))[0].tolist(),
                     "quantiles_5_25_50_75_95": np.percentile(q, [5, 25, 50, 75, 95]).round(3).tolist()}
        print(name, out[name], flush=True)
    res["quality_spread"] = out


def injection(res, lex) -> None:
    from thresher.cleaning.spam import SpamFilter
    from thresher.dedup.evaluate import roc_auc
    docs = [t for t in clue() + sogou() if len(t) >= 200]
    pages = [BLOCKS[i % len(BLOCKS)] + "\n" + d + "\n" + BLOCKS[i % len(BLOCKS)] for i, d in enumerate(docs)]
    st = SpamFilter()
    sig_c, q_c = scored(docs, lex)
    sig_s, q_s = scored(pages, lex)
    fire_c = [st.decide(s) for s in sig_c]
    fire_s = [st.decide(s) for s in sig_s]
    by_kind = {}
    for i, f in enumerate(fire_s):
        by_kind.setdefault(i % len(BLOCKS), []).append(f is not None)
    gold = np.r_[np.ones(len(docs), bool), np.zeros(len(pages), bool)]
    res["spam_injection"] = {
        "docs": len(docs), "clean_flagged": int(sum(f is not None for f in fire_c)),
        "clean_flagged_rules": sorted({f[0] for f in fire_c if f}),
        "injected_flagged": int(sum(f is not None for f in fire_s)),
        "injected_flagged_by_block": {str(k): round(float(np.mean(v)), 4) for k, v in by_kind.items()},
        "quality_auc_clean_over_injected": roc_auc(np.r_[q_c, q_s], gold),
        "injected_below_own_clean": round(float(np.mean(q_s < q_c)), 4),
        "median_quality_clean": round(float(np.median(q_c)), 3), "median_quality_injected": round(float(np.median(q_s)), 3)}
    print(res["spam_injection"], flush=True)


def reference(res) -> None:
    from thresher.dedup.evaluate import roc_auc
    from thresher.scoring.fasttext_quality import p_positive, prepare, train
    books = [p.strip() for fn in ("pretrain_tianlongbabu.txt", "pretrain_fever.txt")
             for p in open(os.path.join(DATA, "medicalgpt", fn), encoding="utf-8").read().split("\n") if len(p.strip()) >= 50]
    pos = sogou() + books
    neg = clue()
    for fn in ("weibo_smp2020_ewect_usual_dev.tsv", "chnsenticorp_dev.tsv"):
        with open(os.path.join(DATA, "cluecorpussmall-sample", fn), encoding="utf-8") as f:
            neg += [r[-1] for r in csv.reader(f, delimiter="\t")][1:]
    rng = random.Random(0)
    rng.shuffle(pos)
    rng.shuffle(neg)
    cp, cn = int(len(pos) * 0.7), int(len(neg) * 0.7)
    with tempfile.TemporaryDirectory() as tmp:
        import fasttext
        m = train(pos[:cp], neg[:cn], os.path.join(tmp, "m.bin"), holdout=0.0, threads=1)
        model = fasttext.load_model(os.path.join(tmp, "m.bin"))
        s = [p_positive(model, prepare(t)) for t in pos[cp:] + neg[cn:]]
    gold = np.r_[np.ones(len(pos) - cp, bool), np.zeros(len(neg) - cn, bool)]
    res["reference_classifier"] = {"train_pos": cp, "train_neg": cn, "heldout_pos": len(pos) - cp,
                                   "heldout_neg": len(neg) - cn, "heldout_roc_auc": roc_auc(np.array(s), gold),
                                   "reference": "sogou news + medicalgpt book paragraphs",
                                   "raw": "CLUECorpusSmall sample + weibo + chnsenticorp", **{"train": m}}
    print(res["reference_classifier"], flush=True)


def write_md(res) -> None:
    L = ["# Spam signals, quality_heuristic spread, reference classifier (benchmarks/scoring_spam_quality.py)", ""]
    L += ["## quality_heuristic v3 histogram (10 bins over [0, 1])", "", "| corpus | n | histogram | q5 / q25 / q50 / q75 / q95 |",
          "|---|---|---|---|"]
    for k, v in res["quality_spread"].items():
        L.append(f"| {k} | {v['n']} | {v['histogram_0_1_10bins']} | {' / '.join(map(str, v['quantiles_5_25_50_75_95']))} |")
    s = res["spam_injection"]
    L += ["", "## Spam injected into real docs (>= 200 chars; header + footer block, 4 kinds)", "",
          f"- docs: {s['docs']}; spam_filter fired on {s['injected_flagged']} injected, on {s['clean_flagged']} clean "
          f"({s['clean_flagged_rules']}); by block kind: {s['injected_flagged_by_block']}",
          f"- quality ROC AUC clean > injected: {s['quality_auc_clean_over_injected']}; injected scored below its own "
          f"clean version: {s['injected_below_own_clean']:.1%}; median quality clean {s['median_quality_clean']}, "
          f"injected {s['median_quality_injected']}"]
    r = res["reference_classifier"]
    L += ["", "## Reference-corpus fastText classifier (quality_reference recipe)", "",
          f"- reference: {r['reference']}; raw: {r['raw']}; trained on {r['train_pos']} / {r['train_neg']}, "
          f"held out {r['heldout_pos']} / {r['heldout_neg']}: ROC AUC {r['heldout_roc_auc']}"]
    with open(OUT + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


def main() -> int:
    if not os.path.isdir(DATA):
        print("../shared/data not present", file=sys.stderr)
        return 0
    from thresher.cleaning.spam import SpamLexicon
    lex = SpamLexicon()
    res: dict = {}
    for part in (lambda: spread(res, lex), lambda: injection(res, lex), lambda: reference(res)):
        part()
    open(OUT + ".json", "w", encoding="utf-8").write(json.dumps(res, ensure_ascii=False, indent=1))
    write_md(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
