"""Dataset mixing (Open-Assistant syntax) on top of thresher's readers.

``datasets`` in a training config is a list whose items are either a name or a
one-key mapping ``name: {val_split, max_val_set, max_train_set, fraction,
input_file_path, lang}`` (``lang``: a language code or list, matched against
the top-1 language of ``signals.lang.label``, or language_filter's prediction for an
unlabelled record).  A name resolves, in order, to ``input_file_path``, an
entry of the config's ``dataset_paths`` registry, or the name itself as a path
(relative to ``data_dir``).  A path may be a tier ``manifest.json``, a directory
holding one (or just shards), or a single file in any format the readers know.

Everything random is seeded from ``seed`` and the dataset name, so adding a
dataset to a mix does not reshuffle the others, and every rank of a distributed
run builds the same split without communicating.
"""
from __future__ import annotations

import logging
import os
import random
import zlib
from dataclasses import dataclass, field
from typing import Iterable

from thresher import meta as M
from thresher.records import Record

log = logging.getLogger("thresher.training.data")

SPEC_KEYS = {"val_split", "max_val_set", "max_train_set", "fraction", "input_file_path", "lang", "mapping"}


@dataclass
class DatasetSpec:
    name: str
    val_split: float = 0.05
    max_val_set: int | None = None
    max_train_set: int | None = None
    fraction: float = 1.0
    input_file_path: str | None = None
    lang: str | list | None = None
    mapping: dict | None = None


@dataclass
class DataSplits:
    train: list[Record] = field(default_factory=list)
    val: dict[str, list[Record]] = field(default_factory=dict)   # per dataset, for per-dataset val loss
    counts: dict[str, dict] = field(default_factory=dict)


def parse_dataset_specs(items: Iterable, defaults: dict | None = None) -> list[DatasetSpec]:
    defaults = defaults or {}
    specs = []
    for item in items or ():
        if isinstance(item, str):
            name, opts = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, opts = next(iter(item.items()))
            opts = opts or {}
        else:
            raise ValueError(f"dataset entry must be a name or {{name: {{options}}}}, got {item!r}")
        unknown = set(opts) - SPEC_KEYS
        if unknown:
            raise ValueError(f"dataset {name!r}: unknown option(s) {sorted(unknown)}; allowed {sorted(SPEC_KEYS)}")
        merged = {**{k: v for k, v in defaults.items() if k in SPEC_KEYS}, **opts}
        specs.append(DatasetSpec(name=name, **merged))
    return specs


def resolve_path(spec: DatasetSpec, registry: dict | None = None, data_dir: str | None = None) -> str:
    cand = spec.input_file_path or (registry or {}).get(spec.name) or spec.name
    cand = os.path.expanduser(str(cand))
    if not os.path.isabs(cand) and data_dir and not os.path.exists(cand):
        cand = os.path.join(data_dir, cand)
    if os.path.isdir(cand) and os.path.exists(os.path.join(cand, "manifest.json")):
        cand = os.path.join(cand, "manifest.json")
    if not os.path.exists(cand):
        raise FileNotFoundError(f"dataset {spec.name!r} resolves to {cand!r}, which does not exist "
                                "(give input_file_path, a dataset_paths entry, or a path)")
    return cand


def read_dataset(path: str, name: str, mapping: dict | None = None) -> list[Record]:
    from thresher.io.readers import iter_records
    return list(iter_records(path, source=name, mapping=mapping))


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(seed * 1_000_003 + zlib.crc32(name.encode()))


def get_meta_value(rec: Record, key: str, default=None):
    """Dotted lookup inside ``rec.meta``, e.g. ``scores.difficulty_heuristic`` (thresher.meta.get_path)."""
    return M.get_path(rec.meta, key, default)


class _LangDetector:
    """language_filter's own predictor, for records no language_filter labelled (raw files,
    or kinds the recipe did not run it on): ``lang:`` then means the same thing for both."""

    def __init__(self):
        self._f = None

    def __call__(self, rec: Record) -> str | None:
        if self._f is None:
            from thresher.cleaning.langid import LanguageFilter
            self._f = LanguageFilter(languages=["zh", "en"])
            self._f.setup(None)
        text = rec.full_text() if rec.kind == "text" else "\n".join(t for _, t in rec.segments())
        lang = self._f.predict(text)[0][0]
        return None if lang == "und" else lang


def record_language(rec: Record, detect: _LangDetector | None = None) -> tuple[str | None, bool]:
    """(top-1 language, whether it was detected here): the run's ``signals.lang.label`` when
    the record carries one, else language_filter's predictor."""
    if M.language(rec.meta) is not None:
        return M.primary_language(rec.meta), False
    return (detect or _LangDetector())(rec), True


def check_key_present(recs: list[Record], key: str, what: str) -> int:
    """How many of ``recs`` carry ``key``; none at all is an error (ordering by nothing would
    silently train every round/phase on the same difficulty), some missing a warning."""
    have = sum(get_meta_value(r, key) is not None for r in recs)
    if recs and not have:
        present = sorted({k for r in recs for k in M.scores(r.meta)})
        raise ValueError(f"{what} {key!r}: none of the {len(recs)} records carries it; the records' scores are "
                         f"{[f'{M.SCORES}.{k}' for k in present]} (score the data with the scorer that writes "
                         f"{key!r}, or set {what} to one of these)")
    if have < len(recs):
        log.warning("%s %r: %d of %d records lack it and sort as the easiest", what, key, len(recs) - have, len(recs))
    return have


def load_splits(cfg: dict, kind: str, datasets_key: str = "datasets") -> DataSplits:
    """Read, filter, split and mix the configured datasets for records of ``kind``."""
    seed = int(cfg.get("seed", 42))
    specs = parse_dataset_specs(cfg.get(datasets_key) or [], cfg.get("dataset_defaults"))
    if not specs:
        raise ValueError(f"no datasets configured under {datasets_key!r}")
    out = DataSplits()
    for spec in specs:
        path = resolve_path(spec, cfg.get("dataset_paths"), cfg.get("data_dir"))
        recs = read_dataset(path, spec.name, spec.mapping)
        n_read = len(recs)
        wrong_kind = sum(r.kind != kind for r in recs)
        recs = [r for r in recs if r.kind == kind and not r.is_rejected]
        n_lang = n_detected = 0
        if spec.lang:
            want = {spec.lang} if isinstance(spec.lang, str) else set(spec.lang)
            detect, keep = _LangDetector(), []
            for r in recs:
                lang, detected = record_language(r, detect)
                n_detected += detected
                if lang in want:
                    keep.append(r)
            n_lang = len(recs) - len(keep)
            recs = keep
        rng = _rng(seed, spec.name)
        rng.shuffle(recs)
        n_val = int(round(len(recs) * float(spec.val_split or 0)))
        if spec.max_val_set is not None:
            n_val = min(n_val, int(spec.max_val_set))
        val, train = recs[:n_val], recs[n_val:]
        if spec.fraction is not None and spec.fraction < 1:
            train = train[: int(len(train) * float(spec.fraction))]
        if spec.max_train_set is not None:
            train = train[: int(spec.max_train_set)]
        out.train.extend(train)
        if val:
            out.val[spec.name] = val
        out.counts[spec.name] = {"path": path, "read": n_read, "wrong_kind": wrong_kind, "lang_filtered": n_lang,
                                 "lang_detected": n_detected, "train": len(train), "val": len(val)}
        log.info("dataset %s (%s): read %d, wrong kind %d, lang-filtered %d -> train %d, val %d",
                 spec.name, path, n_read, wrong_kind, n_lang, len(train), len(val))
    _rng(seed, "__mix__").shuffle(out.train)
    log.info("mixed training set: %d %s records from %d datasets", len(out.train), kind, len(specs))
    return out


def curriculum_order(recs: list[Record], key: str, phases: int, seed: int, descending: bool = False,
                     missing: float = 0.0) -> list[Record]:
    """Phased curriculum: sort by difficulty, cut into ``phases`` chunks, shuffle inside each.

    Shuffling inside a phase keeps batches diverse while the phases still go from
    easy to hard; records without the score get ``missing``.
    """
    check_key_present(recs, key, "curriculum.key")
    scored = sorted(recs, key=lambda r: float(get_meta_value(r, key, missing) or missing), reverse=descending)
    phases = max(1, int(phases))
    size = -(-len(scored) // phases) if scored else 0
    out: list[Record] = []
    for p in range(phases):
        chunk = scored[p * size:(p + 1) * size]
        random.Random(seed + p).shuffle(chunk)
        out.extend(chunk)
    return out


def round_slice(recs: list[Record], n_rounds: int, i: int, key: str | None = None,
                descending: bool = False) -> list[Record]:
    """The ``i``-th of ``n_rounds`` slices; with a difficulty key, slices go easy -> hard."""
    if key:
        check_key_present(recs, key, "rounds.difficulty_key")
        recs = sorted(recs, key=lambda r: float(get_meta_value(r, key, 0.0) or 0.0), reverse=descending)
    size = -(-len(recs) // n_rounds) if recs else 0
    return recs[i * size:(i + 1) * size]
