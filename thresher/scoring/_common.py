"""Helpers shared by the scorers: where scores live in a record, and jieba loading."""
from __future__ import annotations

from typing import Any

from ..records import Record


def set_score(record: Record, name: str, value: float, version: str) -> None:
    """``meta["scores"][name]`` plus ``meta["scorer_versions"][name]`` (re-tiering needs both)."""
    from .. import meta as M
    M.set_score(record.meta, name, value, version)


def get_score(record: Record | dict, name: str) -> float | None:
    meta = record.meta if isinstance(record, Record) else record.get("meta", {})
    from .. import meta as M
    return M.scores(meta).get(name)


def meta_of(record: Record | dict) -> dict:
    return record.meta if isinstance(record, Record) else (record.get("meta") or {})


def embed_text(record: Record) -> str:
    """What clustering/embedding looks at: the prompt for SFT/DPO (topic), the text otherwise."""
    if record.kind == "text":
        return record.text or ""
    return record.prompt_text() or record.full_text()


_JIEBA: Any = None


def jieba_mod():
    """jieba, initialised once per process, logging silenced."""
    global _JIEBA
    if _JIEBA is None:
        import logging

        import jieba
        jieba.setLogLevel(logging.ERROR)
        jieba.initialize()
        _JIEBA = jieba
    return _JIEBA


def blas_threads(n: int = 1):
    """Cap BLAS/OpenMP threads: executor workers are already one process per core, and
    oversubscribed OpenBLAS spin-waits (measured 9x slower SVD on a loaded 2-core box)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # sklearn brings threadpoolctl; without it, run unlimited
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=max(1, int(n)))
