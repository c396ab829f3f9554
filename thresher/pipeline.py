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
import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

from .records import Record

REGISTRY: dict[str, type["Stage"]] = {}


class ConfigError(ValueError):
    """A recipe problem; the message names the offending key."""


def did_you_mean(word: Any, options: Iterable[Any]) -> str:
    """`` (did you mean 'r'?)`` when ``word`` is close to one of ``options``, else ''."""
    opts = [str(o) for o in options]
    close = difflib.get_close_matches(str(word), opts, n=1, cutoff=0.6)
    if not close:  # "rr" vs "r": a repeated or dropped letter is a typo at any length
        close = [o for o in opts if o and (str(word).startswith(o) or o.startswith(str(word)))][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        if name in UNAVAILABLE:  # a built-in stage whose package failed to import
            raise ConfigError(f"stages: stage {name!r} {dependency_hint(UNAVAILABLE[name])}") from None
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"stages: unknown stage {name!r}{hint}") from None


_BUILTIN_MODULES = ("thresher.cleaning", "thresher.dedup", "thresher.scoring")
# stage name -> the missing module that stopped its built-in package from importing
UNAVAILABLE: dict[str, str] = {}
_REGISTER_RE = re.compile(r"@register\(\s*[\"']([^\"']+)[\"']")


def load_builtin_stages() -> None:
    """Import the subpackages whose modules register stages (idempotent).  A package whose
    import fails on a missing dependency leaves its stage names (read from its sources) in
    ``UNAVAILABLE``, so a recipe naming one is told what to install, not "unknown stage"."""
    import importlib
    import importlib.util
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # an optional subpackage's dependency is missing
            if not e.name or e.name.split(".")[0] == "thresher":
                raise
            from .log import get_logger
            get_logger().debug("stages from %s unavailable: %s", mod, e)
            spec = importlib.util.find_spec(mod)
            folder = os.path.dirname(spec.origin) if spec and spec.origin else ""
            for fn in sorted(os.listdir(folder)) if folder else ():
                if fn.endswith(".py"):
                    with open(os.path.join(folder, fn), encoding="utf-8") as f:
                        for name in _REGISTER_RE.findall(f.read()):
                            if name not in REGISTRY:
                                UNAVAILABLE.setdefault(name, e.name.split(".")[0])


def dependency_hint(module: str, extra: str | None = None) -> str:
    """``needs the optional dependency 'x' (pip install 'thresher[extra]')``; the extra is
    the declared one, else looked up in thresher's own distribution metadata."""
    if extra is None:
        extra = _extra_of(module)
    if extra:
        return f"needs the optional dependency {module!r} (pip install 'thresher[{extra}]')"
    return f"needs the dependency {module!r}, which is not installed (pip install {module})"


def _extra_of(module: str) -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, requires
        reqs = requires("thresher") or []
    except (ImportError, PackageNotFoundError):
        return None
    norm = module.lower().replace("_", "-")
    for req in reqs:
        dist = re.split(r"[\s;<>=!\[~]", req, maxsplit=1)[0].lower().replace("_", "-")
        if dist == norm:
            m = re.search(r"extra\s*==\s*[\"']([^\"']+)", req)
            return m.group(1) if m else ""  # "" = a core dependency: reinstall thresher
    return None


def missing_modules(requires: dict[str, str]) -> list[tuple[str, str]]:
    """(module, extra) of the declared optional dependencies that cannot be imported."""
    import importlib.util
    out = []
    for mod, extra in requires.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append((mod, extra))
    return out


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

    Subclasses declare ``defaults`` (parameter name -> default value): recipes may only
    set those keys, and values must have the default's type (int accepted for float).
    ``rules`` (parameter -> a rule from :func:`one_of`, :func:`between`, :func:`each`,
    :func:`mapping`, ...) add what the type cannot say; ``requires`` (module -> extra)
    names optional dependencies.  All of it is checked when the recipe is loaded, with the
    full key path in the message, never first inside a worker.
    """
    name: ClassVar[str] = "?"
    kind: ClassVar[str] = "map"
    version: ClassVar[str] = "1"
    defaults: ClassVar[dict[str, Any]] = {}
    rules: ClassVar[dict[str, "Rule"]] = {}
    requires: ClassVar[dict[str, str]] = {}
    # which record kinds the stage applies to; others pass through untouched
    applies_to: ClassVar[tuple[str, ...]] = ("text", "sft", "dpo")

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        # `kinds:` holds for every stage, also for those with their own process_batch/collect:
        # records of other kinds pass through untouched and are never collected
        for attr, wrap in (("process_batch", _applicable_batch), ("collect", _applicable_collect)):
            fn = cls.__dict__.get(attr)
            if fn is not None and not getattr(fn, "_kinds_filtered", False):
                setattr(cls, attr, wrap(fn))

    def __init__(self, label: str | None = None, kinds: list[str] | None = None, **params: Any):
        # `label` and `kinds` are accepted by every stage: a recipe may use one stage twice
        # with different thresholds for pretraining text and for dialogue
        self.label = label or self.name
        if kinds is not None:
            if not isinstance(kinds, (list, tuple)) or not kinds:
                raise ConfigError(f"{self.name}.kinds: expected a non-empty list, got {kinds!r}")
            bad = [k for k in kinds if k not in self.applies_to]
            if bad:
                raise ConfigError(f"{self.name}.kinds: {bad} not among the kinds it handles {list(self.applies_to)}")
            self.applies_to = tuple(kinds)
        self.params = self.validate_params(params)
        for k, v in self.params.items():
            setattr(self, k, v)
        missing = missing_modules(self.required_modules())
        if missing:
            raise ConfigError(f"{self.name}: stage {self.name!r} {dependency_hint(*missing[0])}")
        self.stats: Counter = Counter()

    def required_modules(self) -> dict[str, str]:
        """Optional modules (-> extra) this instance imports; may depend on the parameters."""
        return dict(self.requires)

    def check_recipe(self, recipe: dict) -> None:
        """Checks that need the whole recipe (e.g. tier settings under ``tiers:``)."""

    @classmethod
    def validate_params(cls, params: dict) -> dict:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            raise ConfigError(f"{cls.name}: unknown parameter {unknown[0]!r}{did_you_mean(unknown[0], cls.defaults)}; "
                              f"allowed: {allowed}")
        merged = dict(cls.defaults)
        for k, v in params.items():
            default = cls.defaults[k]
            if default is not None and v is not None and not _same_type(default, v):
                raise ConfigError(f"{cls.name}.{k}: expected {type(default).__name__}, got {v!r}")
            merged[k] = v
        for k, rule in cls.rules.items():
            if merged.get(k) is not None:
                rule(merged[k], f"{cls.name}.{k}")
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


def _applicable_batch(fn):
    @functools.wraps(fn)
    def process_batch(self, records):
        kinds = self.applies_to
        if all(r.kind in kinds for r in records):
            return fn(self, records)
        todo = [r for r in records if r.kind in kinds]
        done = fn(self, todo) if todo else []
        if len(done) != len(todo):  # a stage that drops records from the list: keep the others after
            return list(done) + [r for r in records if r.kind not in kinds]
        it = iter(done)
        return [next(it) if r.kind in kinds else r for r in records]
    process_batch._kinds_filtered = True
    return process_batch


def _applicable_collect(fn):
    @functools.wraps(fn)
    def collect(self, records, ctx):
        kinds = self.applies_to
        if not all(r.kind in kinds for r in records):
            records = [r for r in records if r.kind in kinds]
        return fn(self, records, ctx)
    collect._kinds_filtered = True
    return collect


# parameter rules -------------------------------------------------------------------
# A rule is a callable (value, key path) that raises ConfigError naming the path.
Rule = Callable[[Any, str], None]


def _choices(choices) -> list:
    return list(choices() if callable(choices) else choices)


def one_of(*choices) -> Rule:
    """The value is one of ``choices`` (or of what a zero-argument callable returns: lists
    read from package data or a module's own constants)."""
    def rule(v, path):
        allowed = _choices(choices[0]) if len(choices) == 1 and callable(choices[0]) else list(choices)
        if v not in allowed:
            raise ConfigError(f"{path}: {v!r} not one of {', '.join(map(str, allowed))}{did_you_mean(v, allowed)}")
    return rule


def between(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Rule:
    """A number in [lo, hi] (``lo_open``: (lo, hi])."""
    def rule(v, path):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ConfigError(f"{path}: expected a number, got {v!r}")
        if (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi):
            left = "(" if lo_open else "["
            rng = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"{path}: {v!r} not in {rng}")
    return rule


RATIO = between(0, 1)
COUNT = between(0)  # >= 0
POSITIVE = between(1)  # >= 1


def each(rule: Rule, nonempty: bool = False) -> Rule:
    """Every item of a list follows ``rule`` (``nonempty``: and there is at least one)."""
    def check(v, path):
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {v!r}")
        if nonempty and not v:
            raise ConfigError(f"{path}: must name at least one item")
        for i, x in enumerate(v):
            rule(x, f"{path}[{i}]")
    return check


def items(*rules: Rule) -> Rule:
    """A fixed-length list whose i-th item follows ``rules[i]`` (e.g. [min hits, per 1000 chars])."""
    def check(v, path):
        if not isinstance(v, (list, tuple)) or len(v) != len(rules):
            raise ConfigError(f"{path}: expected a list of {len(rules)} values, got {v!r}")
        for i, (x, r) in enumerate(zip(v, rules)):
            r(x, f"{path}[{i}]")
    return check


def text(v, path) -> None:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{path}: expected a non-empty string, got {v!r}")


def existing(kind: str = "file", hint: str = "") -> Rule:
    """The value names an existing file (``kind``: "dir" a directory, "path" either), checked at load."""
    test = {"file": os.path.isfile, "dir": os.path.isdir, "path": os.path.exists}[kind]
    what = {"file": "file", "dir": "directory", "path": "file or directory"}[kind]

    def check(v, path):
        p = os.path.expanduser(str(v)) if isinstance(v, str) else ""
        if not p or not test(p):
            raise ConfigError(f"{path}: {v!r} is not an existing {what}{hint}")
    return check


def mapping(spec: dict[str, Rule | None] | Callable[[], dict] | None = None, keys: Rule | None = None,
            values: Rule | None = None) -> Rule:
    """A nested mapping: its keys among ``spec`` (did-you-mean) each checked by its rule, or
    any key passing ``keys``, each value passing ``values``."""
    def check(v, path):
        if not isinstance(v, dict):
            raise ConfigError(f"{path}: expected a mapping, got {v!r}")
        sp = spec() if callable(spec) else spec
        for k, x in v.items():
            if sp is not None:
                if k not in sp:
                    raise ConfigError(f"{path}.{k}: unknown key{did_you_mean(k, sp)}; allowed: {', '.join(sorted(sp))}")
                if sp[k] is not None and x is not None:
                    sp[k](x, f"{path}.{k}")
            if keys is not None:
                keys(k, f"{path}.{k}")
            if values is not None and x is not None:
                values(x, f"{path}.{k}")
    return check


def all_of(*rules: Rule) -> Rule:
    def check(v, path):
        for r in rules:
            r(v, path)
    return check


def any_type(*rules_by_type: tuple[type, Rule]) -> Rule:
    """Values that may be of several types (a number or a per-score mapping)."""
    def check(v, path):
        for t, r in rules_by_type:
            if isinstance(v, t) and not isinstance(v, bool):
                return r(v, path)
        raise ConfigError(f"{path}: unexpected value {v!r}")
    return check


class GlobalStage(Stage):
    kind: ClassVar[str] = "global"

    def collect(self, records: list[Record], ctx: StageContext) -> None:
        """Write this shard's artifacts (called on the records that survived so far)."""

    def reduce(self, ctx: StageContext) -> dict:
        """Combine all shards' artifacts into state; return stats to log."""
        return {}

    def load(self, ctx: StageContext) -> None:
        """Load the reduced state before ``process`` runs on a shard (once per worker)."""

    def load_shard(self, ctx: StageContext) -> None:
        """Load the part of the reduced state that one shard needs (``ctx.shard_index``),
        before that shard's map task applies the stage; e.g. its partition of a dedup
        decision table, so no worker holds the whole table."""

    def finalize(self, ctx: StageContext) -> None:
        """After the run's manifests are written (e.g. enrich tier manifests); driver side,
        with ``ctx.pmap`` fanning work out over the executor's workers."""


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))
