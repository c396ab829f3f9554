"""A fastText supervised quality classifier: train from positive/negative files, apply as a stage.

Text is jieba-tokenised (so fastText's word n-grams are Chinese words) and fastText
adds character n-grams of each token (``minn``/``maxn``), which catches typos and
variant characters that word features miss.  The score is P(positive) in [0, 1].

The model is saved as ``<path>`` (fastText .bin) plus ``<path>.json`` with the
training parameters and held-out metrics; the stage's scorer version includes the
model file's hash so scores from different models are never mixed silently.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile

from ..pipeline import POSITIVE, ConfigError, Stage, existing, register
from ..records import Record
from ._common import jieba_mod, set_score

_WS = re.compile(r"\s+")
POS, NEG = "__label__pos", "__label__neg"


def prepare(text: str, max_chars: int = 2000) -> str:
    """One line of space-separated jieba tokens (fastText's input format)."""
    toks = jieba_mod().lcut(_WS.sub(" ", text[:max_chars]))
    return " ".join(t for t in toks if t.strip())


def train(pos: list[str], neg: list[str], out_path: str, epoch: int = 10, lr: float = 0.5, dim: int = 64,
          word_ngrams: int = 2, minn: int = 1, maxn: int = 3, holdout: float = 0.1, seed: int = 0,
          threads: int = 2) -> dict:
    """Train, evaluate on a held-out split (ROC AUC), save; returns the metrics."""
    import fasttext
    rows = [(POS, t) for t in pos if t.strip()] + [(NEG, t) for t in neg if t.strip()]
    if not pos or not neg:
        raise ValueError("train-quality needs both positive and negative examples")
    random.Random(seed).shuffle(rows)
    n_test = int(len(rows) * holdout)
    test, tr = rows[:n_test], rows[n_test:]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for lab, t in tr:
            f.write(f"{lab} {prepare(t)}\n")
        train_file = f.name
    try:
        model = fasttext.train_supervised(train_file, epoch=epoch, lr=lr, dim=dim, wordNgrams=word_ngrams,
                                          minn=minn, maxn=maxn, seed=seed, thread=threads, verbose=0)
    finally:
        os.remove(train_file)
    metrics = {"train": len(tr), "test": len(test), "pos": len(pos), "neg": len(neg)}
    if test:
        scores = [p_positive(model, prepare(t)) for _, t in test]
        metrics["roc_auc"] = roc_auc([lab == POS for lab, _ in test], scores)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    from ..io.atomic import atomic_target
    with atomic_target(out_path) as tmp:
        model.save_model(tmp)
    meta = {"params": {"epoch": epoch, "lr": lr, "dim": dim, "word_ngrams": word_ngrams, "minn": minn, "maxn": maxn,
                       "seed": seed}, "metrics": metrics, "sha1": file_sha1(out_path)}
    with open(out_path + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return metrics


def p_positive(model, line: str) -> float:
    labels, probs = model.predict(line, k=2)
    d = dict(zip(labels, probs))
    return float(min(1.0, max(0.0, d.get(POS, 1.0 - d.get(NEG, 0.5)))))


def roc_auc(y: list[bool], s: list[float]) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else float("nan")


def file_sha1(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:10]


@register("quality_fasttext")
class FastTextQuality(Stage):
    """Writes ``meta["scores"][score_name]`` = P(positive) from a model trained by ``thresher train-quality``."""

    version = "1"
    defaults = {"model_path": "", "score_name": "quality_fasttext", "max_chars": 2000}
    requires = {"fasttext": "score"}
    rules = {"model_path": existing("file", " (train one with `thresher train-quality`)"), "max_chars": POSITIVE}

    def setup(self, ctx) -> None:
        if not self.model_path or not os.path.exists(self.model_path):
            raise ConfigError(f"stages.quality_fasttext.model_path: {self.model_path!r} does not exist "
                              "(train one with `thresher train-quality`)")
        import fasttext
        self._model = fasttext.load_model(self.model_path)
        self._version = f"{self.name}/{self.version}/{file_sha1(self.model_path)}"

    def process(self, record: Record) -> Record:
        if not hasattr(self, "_model"):
            self.setup(None)
        text = record.full_text() if record.kind == "text" else record.answer_text() or record.full_text()
        set_score(record, self.score_name, p_positive(self._model, prepare(text, self.max_chars)), self._version)
        self.count("scored")
        return record
