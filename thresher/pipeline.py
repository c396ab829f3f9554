"""Stage base classes and the registry that recipes compose by name.

A *map* stage is a function of one record (or a batch): it measures, stores what it
measured in ``record.meta["signals"]`` and may reject the record with a reason.  A
*global* stage needs the whole corpus (dedup, clustering, tiers) and runs in three
steps that are each a function of (shard in -> shard out + stats), so the local and
Ray executors run identical code:

1. ``collect(records, ctx)`` on every shard, writing small artifacts (signatures,
   band buckets, score samples) under ``ctx.artifact_dir``;
2. ``reduce(ctx)`` once, reading all artifacts and writing its state under
   ``ctx.state_dir``;
3. ``load(ctx)`` then ``process`` on every shard, applying the decision.
"""
from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from .records import Record

REGISTRY: dict[str, type["Stage"]] = {}


class ConfigError(ValueError):
    """A recipe problem; the message names the offending key."""


def register(name: str):
    """Class decorator: make a stage available to recipes under ``name``."""
    def deco(cls: type[Stage]) -> type[Stage]:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"stage name {name!r} registered twice ({REGISTRY[name].__name__}, {cls.__name__})")
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return deco


def get_stage_class(name: str) -> type["Stage"]:
    if name not in REGISTRY:  # built-in packages are imported only when a name needs them
        load_builtin_stages()
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"stages: unknown stage {name!r}{hint}") from None


_BUILTIN_MODULES = ("thresher.cleaning", "thresher.dedup", "thresher.scoring")


def load_builtin_stages() -> None:
    """Import the subpackages whose modules register stages (idempotent)."""
    import importlib
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # an optional subpackage's dependency is missing
            if e.name and e.name.split(".")[0] == "thresher":
                raise
            from .log import get_logger
            get_logger().debug("stages from %s unavailable: %s", mod, e)


@dataclass
class StageContext:
    """Where a stage may read/write files for one task, and which task it is."""
    run_dir: str
    artifact_dir: str  # per-shard outputs of collect (global stages)
    state_dir: str  # reduce output, read by load()
    shard_index: int = -1
    num_shards: int = 0
    workers: int = 1
    recipe: dict = field(default_factory=dict)
    # set by the executor for reduce(): parallel_map(fn, items) -> list, run on the
    # executor's workers (process pool locally, Ray tasks on a cluster); fn and items
    # must be picklable.  Falls back to a serial map.
    parallel_map: Callable[[Callable, list], list] | None = None

    def pmap(self, fn: Callable, items: list) -> list:
        return self.parallel_map(fn, items) if self.parallel_map else [fn(x) for x in items]

    def artifact_path(self, suffix: str) -> str:
        os.makedirs(self.artifact_dir, exist_ok=True)
        return os.path.join(self.artifact_dir, f"shard-{self.shard_index:05d}{suffix}")


class Stage:
    """A named, parameterised unit of a recipe.

    Subclasses declare ``defaults`` (parameter name -> default value); recipes may only
    set those keys, and values must have the default's type (int accepted for float).
    """
    name: ClassVar[str] = "?"
    kind: ClassVar[str] = "map"
    version: ClassVar[str] = "1"
    defaults: ClassVar[dict[str, Any]] = {}
    # which record kinds the stage applies to; others pass through untouched
    applies_to: ClassVar[tuple[str, ...]] = ("text", "sft", "dpo")

    def __init__(self, label: str | None = None, kinds: list[str] | None = None, **params: Any):
        # `label` and `kinds` are accepted by every stage: a recipe may use one stage twice
        # with different thresholds for pretraining text and for dialogue
        self.label = label or self.name
        if kinds is not None:
            bad = [k for k in kinds if k not in self.applies_to]
            if bad:
                raise ConfigError(f"{self.name}.kinds: {bad} not among the kinds it handles {list(self.applies_to)}")
            self.applies_to = tuple(kinds)
        self.params = self.validate_params(params)
        for k, v in self.params.items():
            setattr(self, k, v)
        self.stats: Counter = Counter()

    @classmethod
    def validate_params(cls, params: dict) -> dict:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            close = difflib.get_close_matches(unknown[0], cls.defaults, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            raise ConfigError(f"{cls.name}: unknown parameter {unknown[0]!r}{hint}; allowed: {allowed}")
        merged = dict(cls.defaults)
        for k, v in params.items():
            default = cls.defaults[k]
            if default is not None and v is not None and not _same_type(default, v):
                raise ConfigError(f"{cls.name}.{k}: expected {type(default).__name__}, got {v!r}")
            merged[k] = v
        return merged

    # lifecycle ------------------------------------------------------------
    def setup(self, ctx: StageContext) -> None:
        """Called once per worker process before the first shard (load models, compile)."""

    def process(self, record: Record) -> Record:
        return record

    def process_batch(self, records: list[Record]) -> list[Record]:
        out = []
        for r in records:
            if r.kind in self.applies_to:
                r = self.process(r)
            out.append(r)
        return out

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] += n

    def reject(self, record: Record, reason: str, value: Any = None, threshold: Any = None, **extra) -> Record:
        return record.reject(self.label, reason, value, threshold, **extra)


class GlobalStage(Stage):
    kind: ClassVar[str] = "global"

    def collect(self, records: list[Record], ctx: StageContext) -> None:
        """Write this shard's artifacts (called on the records that survived so far)."""

    def reduce(self, ctx: StageContext) -> dict:
        """Combine all shards' artifacts into state; return stats to log."""
        return {}

    def load(self, ctx: StageContext) -> None:
        """Load the reduced state before ``process`` runs on a shard."""

    def finalize(self, ctx: StageContext) -> None:
        """After the run's manifests are written (e.g. enrich tier manifests); driver side."""


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))
