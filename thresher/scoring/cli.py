"""``thresher train-quality``: train the fastText quality classifier from example files."""
from __future__ import annotations

import argparse
import json


def read_texts(paths: list[str], limit: int = 0) -> list[str]:
    """Texts from any input thresher reads (jsonl/json/parquet/plain text, SFT formats)."""
    from ..io.readers import iter_records
    out: list[str] = []
    for p in paths:
        for r in iter_records(p):
            out.append(r.full_text())
            if limit and len(out) >= limit:
                return out
    return out


def train_quality_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="thresher train-quality",
                                 description="train a fastText quality classifier (jieba tokens + char n-grams)")
    ap.add_argument("--pos", nargs="+", required=True, help="files of good examples")
    ap.add_argument("--neg", nargs="+", required=True, help="files of bad examples")
    ap.add_argument("--out", required=True, help="model path (.bin); metadata goes to <out>.json")
    ap.add_argument("--epoch", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--word-ngrams", type=int, default=2)
    ap.add_argument("--holdout", type=float, default=0.1, help="fraction held out for ROC AUC")
    ap.add_argument("--limit", type=int, default=0, help="max examples per side (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from .fasttext_quality import train
    pos, neg = read_texts(a.pos, a.limit), read_texts(a.neg, a.limit)
    if not pos or not neg:
        print(f"error: need examples on both sides (got {len(pos)} positive, {len(neg)} negative)")
        return 2
    m = train(pos, neg, a.out, epoch=a.epoch, lr=a.lr, dim=a.dim, word_ngrams=a.word_ngrams, holdout=a.holdout,
              seed=a.seed)
    print(json.dumps({"model": a.out, **m}))
    return 0
