"""Side-by-side throughput: thresher's pretrain-zh rule stack vs datatrove's closest filters.

Same Chinese documents (CLUECorpusSmall sample + Sogou news from ../shared/data), same
2 worker processes, input already in memory on both sides (no reader/writer I/O), model
and tokenizer loading excluded by a warm-up task per worker.  Reported as docs/s per
core and the ratio.

* thresher: every map stage of configs/pretrain-zh.yaml (normalisers, boilerplate trimming,
  script-first language id, blacklists, the fused zh quality filter with jieba, PII
  masking); its global stages (repeated lines, exact/MinHash dedup) are not timed.
* datatrove: LanguageFilter(zh, lid.176) -> GopherRepetitionFilter -> FineWebQualityFilter
  -> GopherQualityFilter, configured for cmn_Hani with the FineWeb-2 thresholds exactly
  as fineweb-2-pipeline.py does (spaCy + jieba word tokenizer).  A document stops at its
  first failing filter, as in a datatrove pipeline.

datatrove runs in its own venv so it never enters ours:

    python3 -m venv .cache/bench-venv
    .cache/bench-venv/bin/pip install datatrove jieba spacy fasteners fasttext-numpy2-wheel

(the script creates it when missing).  Run: ``.venv/bin/python benchmarks/cleaning_throughput.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
VENV = os.path.join(ROOT, ".cache", "bench-venv")
WORKERS = 2
REPEAT = 2
ROUNDS = 3  # interleaved ours/theirs rounds; the median of each is reported

DATATROVE_SCRIPT = r'''
import json, sys, time
from multiprocessing import Pool

LID = sys.argv[2]
_F = None

def init():
    global _F
    from fasttext.FastText import _FastText
    from datatrove.pipeline.filters import (FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter,
                                            LanguageFilter)
    cfg = {  # huggingface/fineweb-2 configs/cmn_Hani.yml
        "dup_line_frac": 0.287, "top_n_grams": [(2, 0.256), (3, 0.201), (4, 0.171)],
        "dup_n_grams": [(5, 0.198), (6, 0.182), (7, 0.167), (8, 0.154), (9, 0.14), (10, 0.127)],
        "line_punct_thr": 0.106, "new_line_ratio": 0.178, "max_avg_word_length": 5, "min_avg_word_length": 1,
        "max_non_alpha_words_ratio": 0.735,
        "stopwords": ["的", "年", "在", "月", "是", "和", "日", "了", "於", "·", "為", "有", "被", "人", "中", "为",
                      "他", "與", "後", "也", "而", "由"]}
    lang = LanguageFilter(languages=["zh"], language_threshold=0.65)
    lang.model._model = _FastText(LID)  # the same local lid.176.ftz, no download
    _F = [
        lang,
        GopherRepetitionFilter(language="cmn_Hani", dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0,
                               dup_line_frac=cfg["dup_line_frac"], top_n_grams=cfg["top_n_grams"],
                               dup_n_grams=cfg["dup_n_grams"]),
        FineWebQualityFilter(language="cmn_Hani", short_line_thr=999, char_duplicates_ratio=0.1,
                             line_punct_thr=cfg["line_punct_thr"], new_line_ratio=cfg["new_line_ratio"]),
        GopherQualityFilter(language="cmn_Hani", max_avg_word_length=cfg["max_avg_word_length"],
                            min_avg_word_length=cfg["min_avg_word_length"], stop_words=cfg["stopwords"],
                            max_non_alpha_words_ratio=cfg["max_non_alpha_words_ratio"], min_stop_words=2),
    ]

def run(texts):
    from datatrove.data import Document
    kept = 0
    reasons = {}
    for i, t in enumerate(texts):
        doc = Document(text=t, id=str(i))
        ok = True
        for f in _F:
            r = f.filter(doc)
            passed, why = (r, type(f).__name__) if isinstance(r, bool) else (r[0], r[1])
            if not passed:
                reasons[why] = reasons.get(why, 0) + 1
                ok = False
                break
        kept += ok
    return kept, reasons

if __name__ == "__main__":
    docs = [json.loads(x) for x in open(sys.argv[1], encoding="utf-8")]
    init()  # fail here, loudly, if a dependency is missing (a Pool initializer that raises respawns forever)
    chunks = [docs[i::NW] for i in range(NW)]
    with Pool(NW, initializer=init) as pool:
        pool.map(run, [docs[:20]] * NW)  # warm-up: models and tokenizers loaded
        t0 = time.perf_counter()
        res = pool.map(run, chunks)
        dt = time.perf_counter() - t0
    reasons = {}
    for _, r in res:
        for k, v in r.items():
            reasons[k] = reasons.get(k, 0) + v
    print(json.dumps({"seconds": dt, "docs": len(docs), "kept": sum(k for k, _ in res), "reasons": reasons}))
'''.replace("NW", str(WORKERS))

_STAGES = None


def _init_thresher():
    global _STAGES
    from thresher.config import build_stages, load_recipe
    # map stages only: the recipe's global stages (repeated-line removal, exact/MinHash dedup)
    # need the whole corpus, and the datatrove side has no dedup either
    stages = [st for st in build_stages(load_recipe("pretrain-zh")) if st.kind != "global"]
    for st in stages:
        st.setup(None)
    _STAGES = stages


def _run_thresher(texts):
    from thresher.records import make_record
    kept = 0
    reasons: dict[str, int] = {}
    for t in texts:
        rec = make_record("text", "bench", text=t)
        for st in _STAGES:
            rec = st.process(rec)
            if rec.is_rejected:
                r = rec.meta["reject"]["reason"]
                reasons[r] = reasons.get(r, 0) + 1
                break
        else:
            kept += 1
    return kept, reasons


def thresher_run(docs: list[str]) -> dict:
    from multiprocessing import get_context
    chunks = [docs[i::WORKERS] for i in range(WORKERS)]
    with get_context("fork").Pool(WORKERS, initializer=_init_thresher) as pool:
        pool.map(_run_thresher, [docs[:20]] * WORKERS)
        t0 = time.perf_counter()
        res = pool.map(_run_thresher, chunks)
        dt = time.perf_counter() - t0
    reasons: dict[str, int] = {}
    for _, r in res:
        for k, v in r.items():
            reasons[k] = reasons.get(k, 0) + v
    return {"seconds": dt, "docs": len(docs), "kept": sum(k for k, _ in res), "reasons": reasons}


def ensure_venv() -> str:
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "datatrove", "jieba", "spacy",
                        "fasteners", "fasttext-numpy2-wheel"], check=True)
    return py


def load_docs() -> list[str]:
    clue = [x for x in open(f"{SHARED}/cluecorpussmall-sample/CLUECorpusSmall_sampled.txt", encoding="utf-8")
            .read().split("\n") if x.strip()]
    sogou = [json.loads(x)["content"] for x in open(f"{SHARED}/sogou-news-smarty/sogou_smarty_utf8.jsonl",
                                                    encoding="utf-8") if x.strip()]
    return (clue + [s for s in sogou if s.strip()]) * REPEAT


def main() -> None:
    if not os.path.isdir(SHARED):
        print("../shared/data not present; nothing to measure")
        return
    from thresher.cleaning.langid import default_model_path
    docs = load_docs()
    py = ensure_venv()
    with tempfile.TemporaryDirectory() as td:
        path = os.path.join(td, "docs.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        script = os.path.join(td, "dt_bench.py")
        with open(script, "w") as f:
            f.write(DATATROVE_SCRIPT)
        runs = []
        for _ in range(ROUNDS):  # interleave to spread the noise of a shared machine over both
            ours = thresher_run(docs)
            out = subprocess.run([py, script, path, default_model_path()], capture_output=True, text=True, check=True)
            theirs = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append((ours, theirs))
    ours = sorted((r[0] for r in runs), key=lambda x: x["seconds"])[len(runs) // 2]
    theirs = sorted((r[1] for r in runs), key=lambda x: x["seconds"])[len(runs) // 2]
    n = len(docs)
    chars = sum(map(len, docs))
    res = {
        "docs": n, "chars": chars, "workers": WORKERS,
        "thresher_docs_per_s_per_core": round(n / ours["seconds"] / WORKERS, 1),
        "datatrove_docs_per_s_per_core": round(n / theirs["seconds"] / WORKERS, 1),
        "ratio": round(theirs["seconds"] / ours["seconds"], 2),
        "thresher": ours, "datatrove": theirs,
        "all_runs_seconds": [[round(a["seconds"], 2), round(b["seconds"], 2)] for a, b in runs],
        "rules": {"thresher": "pretrain-zh map stages: 10 normalisers incl. boilerplate trimming, script-first lid, "
                              "blacklist, zh_quality_filter ~25 checks, PII (global dedup stages not timed)",
                  "datatrove": "LanguageFilter + GopherRepetition + FineWebQuality + GopherQuality (FW2 cmn_Hani)"},
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "cleaning_throughput.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False, indent=1)
    print(json.dumps(res, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
