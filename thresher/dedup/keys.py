"""What text of a record dedup compares (SFT-aware keys) and how a cluster's keeper is chosen."""
from __future__ import annotations

import math

import numpy as np

from ..pipeline import ConfigError
from ..records import Record

KEY_FIELDS = ("auto", "instruction", "answer", "conversation")
KEEP_POLICIES = ("longest", "shortest", "first", "score", "source")


def key_text(rec: Record, field: str) -> str:
    """``auto``/``conversation``: everything; ``instruction``: user+system turns only
    (the same question with different answers is a duplicate); ``answer``: the
    assistant side.  Pretraining text always uses its text."""
    if rec.kind == "text" or field in ("auto", "conversation"):
        return rec.full_text()
    if field == "instruction":
        return rec.prompt_text()
    if field == "answer":
        return rec.answer_text()
    raise ConfigError(f"key_field must be one of {KEY_FIELDS}, got {field!r}")


def check_params(stage) -> None:
    if stage.key_field not in KEY_FIELDS:
        raise ConfigError(f"{stage.name}.key_field: {stage.key_field!r} not in {KEY_FIELDS}")
    if stage.keep not in KEEP_POLICIES:
        raise ConfigError(f"{stage.name}.keep: {stage.keep!r} not in {KEEP_POLICIES}")


def record_table(records: list[Record], score_name: str, source_priority: list) -> dict[str, np.ndarray]:
    """Per-record columns the reduce needs to pick keepers (not the text).  Length is
    the whole record's, so with an instruction key the fuller answer is kept."""
    rank = {s: i for i, s in enumerate(source_priority)}
    score = np.array([_score(r, score_name) for r in records], np.float32)
    return {
        "length": np.fromiter((len(r.full_text()) for r in records), np.int64, len(records)),
        "score": score,
        "src_rank": np.array([rank.get(r.source, len(rank)) for r in records], np.int32),
    }


def _score(r: Record, name: str) -> float:
    v = (r.meta.get("scores") or {}).get(name) if name else None
    return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else -np.inf


def keeper_order(policy: str, keys: np.ndarray, ids: np.ndarray, length: np.ndarray, score: np.ndarray,
                 src_rank: np.ndarray, is_index: np.ndarray) -> np.ndarray:
    """Sort priority (smaller = preferred) as lexsort columns, most significant last.

    Records already in an index always win (they are in the curated corpus); then the
    policy (``first`` = input order: shard, then position); ties go to the longer text,
    then the smallest record id, so the choice does not depend on worker count or the
    order shards were processed in."""
    primary = {
        "longest": -length, "shortest": length, "first": keys,
        "score": -score.astype(np.float64), "source": src_rank,
    }[policy]
    return np.lexsort((ids, -length, primary, ~is_index))
