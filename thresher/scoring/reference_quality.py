"""A quality classifier trained inside the run on a reference corpus (the CCNet / DCLM recipe).

No pretrained model needed: positives are a reference set the user names (books, news,
encyclopedic text -- anything thresher reads), negatives a deterministic sample of the
run's own input, and a fastText classifier (``fasttext_quality.train``: jieba tokens plus
character n-grams) learns "looks like the reference".  As a GlobalStage
(``quality_reference``):

* ``collect``: each shard writes the texts of its records with the smallest id hashes
  (``cluster.sample_key``), so the negative sample depends on the data, not on sharding;
* ``reduce``: reads the reference, takes the global negative sample (minus any text that is
  also in the reference), trains with a held-out split, saves the model and its metrics
  (held-out ROC AUC) to the state dir;
* ``process_batch``: ``meta["scores"][score_name]`` = P(reference-like) for every record.

Scorers never reject; tiers decide.
"""
from __future__ import annotations

import json
import os

import orjson

from ..pipeline import COUNT, POSITIVE, RATIO, ConfigError, GlobalStage, between, each, existing, register, text
from ..records import Record
from ..io.atomic import atomic_write_bytes
from ._common import set_score
from .cluster import sample_key


@register("quality_reference")
class ReferenceQuality(GlobalStage):
    version = "1"
    defaults = {
        "reference": [],             # files of good text (any format thresher reads); required
        "max_reference": 20000,      # positives read from the reference
        "sample_per_shard": 2000,    # negatives each shard offers
        "max_negatives": 20000,      # negatives trained on (smallest id hashes over all shards)
        "holdout": 0.1,              # share of both sides held out for the ROC AUC
        "epoch": 10, "lr": 0.5, "dim": 64, "word_ngrams": 2,
        "threads": 1,                # fastText training threads in the reduce
        "max_chars": 2000,
        "seed": 0,
        "score_name": "quality_reference",
    }
    requires = {"fasttext": "score"}
    rules = {"reference": each(existing("path")), "max_reference": POSITIVE, "sample_per_shard": POSITIVE,
             "max_negatives": POSITIVE, "holdout": RATIO, "epoch": POSITIVE, "lr": between(0, lo_open=True),
             "dim": POSITIVE, "word_ngrams": POSITIVE, "threads": POSITIVE, "max_chars": POSITIVE, "seed": COUNT,
             "score_name": text}

    def __init__(self, label=None, **params):
        super().__init__(label, **params)
        if not self.reference:
            raise ConfigError(f"{self.name}.reference: name at least one file of reference text "
                              "(books, news, encyclopedic text)")

    def collect(self, records: list[Record], ctx) -> None:
        rows = sorted((sample_key(r.id), r.id, r.full_text()[: self.max_chars]) for r in records)
        rows = rows[: self.sample_per_shard]
        atomic_write_bytes(ctx.artifact_path(".jsonl"),
                           b"".join(orjson.dumps({"h": h, "id": i, "t": t}) + b"\n" for h, i, t in rows))

    def _negatives(self, ctx, reference: set[str]) -> list[str]:
        rows = []
        for fn in sorted(os.listdir(ctx.artifact_dir)):
            with open(os.path.join(ctx.artifact_dir, fn), "rb") as f:
                rows.extend(orjson.loads(line) for line in f)
        rows.sort(key=lambda r: (r["h"], r["id"]))
        return [r["t"] for r in rows if r["t"].strip() and r["t"] not in reference][: self.max_negatives]

    def reduce(self, ctx) -> dict:
        from .cli import read_texts
        from .fasttext_quality import train
        missing = [p for p in self.reference if not os.path.exists(p)]
        if missing:
            raise ConfigError(f"{self.name}.reference: {missing[0]!r} does not exist")
        pos = [t[: self.max_chars] for t in read_texts(list(self.reference), self.max_reference) if t.strip()]
        neg = self._negatives(ctx, set(pos))
        if not pos or not neg:
            raise ConfigError(f"{self.name}: need reference texts and input texts (got {len(pos)} / {len(neg)})")
        model = os.path.join(ctx.state_dir, "model.bin")
        metrics = train(pos, neg, model, epoch=self.epoch, lr=self.lr, dim=self.dim, word_ngrams=self.word_ngrams,
                        holdout=self.holdout, seed=self.seed, threads=self.threads)
        atomic_write_bytes(os.path.join(ctx.state_dir, "metrics.json"), json.dumps(metrics).encode())
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}

    def load(self, ctx) -> None:
        import fasttext

        from .fasttext_quality import file_sha1
        path = os.path.join(ctx.state_dir, "model.bin")
        self._model = fasttext.load_model(path)
        self._version = f"{self.name}/{self.version}/{file_sha1(path)}"

    def process_batch(self, records: list[Record]) -> list[Record]:
        from .fasttext_quality import p_positive, prepare
        for r in records:
            set_score(r, self.score_name, p_positive(self._model, prepare(r.full_text(), self.max_chars)),
                      self._version)
        self.count("scored", len(records))
        return records
