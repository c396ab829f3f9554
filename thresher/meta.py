"""The one declared schema of ``record.meta``: where each part of thresher writes and reads.

Cleaning, scoring, tiering, the report and the trainer all meet in ``record.meta``;
this module names every section once, so a writer and its readers cannot drift apart
(the trainer's ``lang:`` option once read ``meta["lang"]``, which nothing writes, and its
curriculum defaulted to ``scores.difficulty``, which no scorer writes).

Sections::

    meta["signals"][rule]        measurements of the cleaning rules (any JSON value)
    meta["signals"]["lang"]      {"label": "zh" | "en" | "zh+en" | "und" ..., "top": [[lang, p], ...]}
                                 (language_filter; "a+b" = the zh+en mixing rule kept it, a is top-1)
    meta["signals"]["blacklist"] {category: {"hits": int, "per_kchar": float}} (blacklist_filter)
    meta["scores"][key]          float | None, one key per scorer (SCORE_KEYS below)
    meta["scorer_versions"][key] "<stage>/<version>" of the scorer that wrote scores[key]
    meta["cluster"]              int (cluster stage); meta["cluster_label"] its keywords
    meta["tier"]                 str, the tier name (tier stage)
    meta["reject"]               {"stage", "reason", "value"?, "threshold"?, ...} on rejected records

Dotted paths (``scores.difficulty_heuristic``, ``signals.lang.label``) address values
in configs; :func:`get_path` reads them and :func:`check_score_path` validates the ones
that must name a score.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .pipeline import did_you_mean

SIGNALS = "signals"
SCORES = "scores"
SCORER_VERSIONS = "scorer_versions"
CLUSTER = "cluster"
CLUSTER_LABEL = "cluster_label"
TIER = "tier"
REJECT = "reject"
EMBEDDING = "embedding"

LANG_SIGNAL = "lang"            # signals.lang = {"label", "top"}
BLACKLIST_SIGNAL = "blacklist"  # signals.blacklist = {category: {"hits", "per_kchar"}}
SPAM_SIGNAL = "spam"            # signals.spam = {"score", ...}
SFT_SIGNAL = "sft"              # signals.sft = {"flags": [...], "refusals": {...}}

# scorer (stage) name -> the keys of meta["scores"] it writes with its default settings.
# A stage's `score_name` parameter may rename its key; such keys are not known here.
SCORE_KEYS: dict[str, tuple[str, ...]] = {
    "quality_heuristic": ("quality_heuristic",),
    "difficulty_heuristic": ("difficulty_heuristic",),
    "quality_fasttext": ("quality_fasttext",),
    "quality_reference": ("quality_reference",),
    "ifd": ("ifd",),
    "perplexity": ("perplexity",),
    "tier": ("tier_combined",),
}
TIER_COMBINED = SCORE_KEYS["tier"][0]
DIFFICULTY_DEFAULT = "difficulty_heuristic"   # what the curriculum orders by unless told otherwise
DIFFICULTY_PATH = f"{SCORES}.{DIFFICULTY_DEFAULT}"


class MetaKeyError(ValueError):
    """A dotted meta path that names nothing thresher writes; the message names it and the known keys."""


def score_key(scorer: str) -> str:
    """The (first) score key ``scorer`` writes by default."""
    try:
        return SCORE_KEYS[scorer][0]
    except KeyError:
        raise MetaKeyError(f"unknown scorer {scorer!r}; known: {sorted(SCORE_KEYS)}") from None


def known_score_keys(extra: Iterable[str] = ()) -> list[str]:
    return sorted({k for keys in SCORE_KEYS.values() for k in keys} | set(extra or ()))


def check_score_path(path: str, extra_keys: Iterable[str] = (), what: str = "key") -> str:
    """``path`` must be ``scores.<a key some scorer writes>`` (or one of ``extra_keys``);
    returns it, or raises :class:`MetaKeyError` naming the path and listing the keys that exist."""
    known = known_score_keys(extra_keys)
    head, _, name = str(path).partition(".")
    if head != SCORES or not name or "." in name:
        raise MetaKeyError(f"{what} {path!r} is not a score path; use scores.<key>, one of "
                           f"{[f'{SCORES}.{k}' for k in known]}")
    if name not in known:
        raise MetaKeyError(f"{what} {path!r} names no score thresher writes"
                           f"{did_you_mean(path, [f'{SCORES}.{k}' for k in known])}; "
                           f"known: {[f'{SCORES}.{k}' for k in known]} (a custom score_name goes in score_keys)")
    return path


def _meta(obj: Any) -> Mapping:
    """``obj`` may be a Record, a record dict ({"meta": ...}) or a meta dict itself."""
    m = getattr(obj, "meta", None)
    if isinstance(m, dict):
        return m
    if isinstance(obj, Mapping):
        inner = obj.get("meta")
        return inner if isinstance(inner, Mapping) and "id" in obj else obj
    return {}


_MISSING = object()


def get_path(meta: Any, path: str, default: Any = None) -> Any:
    """Dotted lookup: ``get_path(meta, "scores.difficulty_heuristic")``."""
    node: Any = _meta(meta)
    for p in str(path).split("."):
        if not isinstance(node, Mapping) or p not in node:
            return default
        node = node[p]
    return node


def has_path(meta: Any, path: str) -> bool:
    return get_path(meta, path, _MISSING) is not _MISSING


def signals(meta: Any) -> Mapping:
    s = _meta(meta).get(SIGNALS)
    return s if isinstance(s, Mapping) else {}


def signal(meta: Any, name: str, default: Any = None) -> Any:
    return signals(meta).get(name, default)


def scores(meta: Any) -> Mapping:
    s = _meta(meta).get(SCORES)
    return s if isinstance(s, Mapping) else {}


def score(meta: Any, key: str, default: Any = None) -> Any:
    """``meta["scores"][key]``; ``key`` may also be the full path ``scores.<key>``."""
    if key.startswith(SCORES + "."):
        key = key[len(SCORES) + 1:]
    v = scores(meta).get(key)
    return default if v is None else v


def set_score(meta: dict, key: str, value: float | None, version: str) -> None:
    meta.setdefault(SCORES, {})[key] = None if value is None else round(float(value), 5)
    meta.setdefault(SCORER_VERSIONS, {})[key] = version


def language(meta: Any) -> str | None:
    """The label language_filter wrote (``zh``, ``en``, ``zh+en``, ``und``...), or None if unlabelled."""
    lang = signal(meta, LANG_SIGNAL)
    if isinstance(lang, Mapping) and lang.get("label"):
        return str(lang["label"])
    return None


def primary_language(meta: Any) -> str | None:
    """The top-1 language: ``zh+en`` -> ``zh``; None if unlabelled or undetermined."""
    lab = language(meta)
    if not lab or lab == "und":
        return None
    return lab.split("+", 1)[0]


def lang_signal(label: str, top: Iterable) -> dict:
    """The value language_filter stores under ``signals.lang``."""
    return {"label": label, "top": [[k, v] for k, v in top]}


def blacklist(meta: Any) -> Mapping:
    b = signal(meta, BLACKLIST_SIGNAL)
    return b if isinstance(b, Mapping) else {}


def cluster(meta: Any) -> int | None:
    c = _meta(meta).get(CLUSTER)
    return None if c is None else int(c)


def tier(meta: Any) -> str | None:
    t = _meta(meta).get(TIER)
    return None if t is None else str(t)


def reject(meta: Any) -> Mapping | None:
    r = _meta(meta).get(REJECT)
    return r if isinstance(r, Mapping) else None


def reject_reason(meta: Any) -> str | None:
    r = reject(meta)
    return None if r is None else r.get("reason")
