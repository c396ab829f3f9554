"""Tiers: map scores to named quality tiers, with quotas and a token budget; select subsets.

Recipe (stage params, or the recipe's top-level ``tiers:`` section when the stage has none)::

    - tier:
        scorers: [quality_heuristic, quality_fasttext]   # scores to combine
        combine: max            # max | mean | min  (over the scorers)
        normalize: quantile     # quantile: each score -> its rank in the corpus (0..1); none: raw
        tiers:                  # best first; a record gets the first tier whose rules hold
          - {name: top, min: 0.8}                  # combined score >= 0.8
          - {name: mid, quantile: 0.4}             # combined score >= its 40 % quantile
          - {name: low}                            # no rule: catch-all
        quotas: {web: 0.5}      # a source may fill at most this share of the selected tokens
        token_budget: 0         # tokens across all tiers, best first (0 = unlimited)
        sft_select: {tier: top, tokens: 2000000, balance: cluster}
        dpo_select: {quality_quantile: 0.7, difficulty_quantile: 0.7, difficulty: difficulty_heuristic,
                     n: 1000, balance: cluster}

A tier rule may also be per scorer: ``min: {quality_heuristic: 0.5}`` (raw values) or
``quantile: {difficulty_heuristic: 0.7}``; all listed conditions must hold.  Records
matching no tier get ``unselected``; records beyond a quota or the budget get
``overflow``; nothing is dropped.

Determinism: records are ordered by (tier rank, -combined score, id); quotas and the
budget are walked once over that order in ``reduce`` and stored as cut-off keys, so
``process`` decides each record alone and the result is independent of sharding.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

import numpy as np
import orjson

from .. import meta as M
from ..pipeline import COUNT, RATIO, ConfigError, GlobalStage, each, mapping, one_of, register, text
from ..records import Record
from ..io.atomic import atomic_write_bytes
from ._common import meta_of

OVERFLOW, UNSELECTED = "overflow", "unselected"
_GRID = np.linspace(0, 1, 1001)


class TierRules:
    """Pure decision logic, shared by reduce, process and tests."""

    def __init__(self, spec: dict, grids: dict[str, list[float]] | None = None):
        self.scorers = list(spec.get("scorers") or [])
        if not self.scorers:
            raise ConfigError("tier: `scorers` must list at least one score name")
        self.combine = spec.get("combine", "max")
        if self.combine not in ("max", "mean", "min"):
            raise ConfigError(f"tier.combine: {self.combine!r} not in max|mean|min")
        self.normalize = spec.get("normalize", "quantile")
        self.tiers = list(spec.get("tiers") or [{"name": "all"}])
        names = [t.get("name") for t in self.tiers]
        if not all(names) or len(set(names)) != len(names) or {OVERFLOW, UNSELECTED} & set(names):
            raise ConfigError(f"tier.tiers: each tier needs a unique name (not overflow/unselected), got {names}")
        # per-scorer quantile grids: value at quantiles 0, .001, ..., 1
        self.grids = {k: np.asarray(v, dtype=np.float64) for k, v in (grids or {}).items()}
        self.combined_grid: np.ndarray | None = None

    # --- scores -> numbers -----------------------------------------------------
    def rank(self, name: str, value: float) -> float:
        """Empirical CDF of ``value`` in the corpus distribution of scorer ``name``."""
        g = self.grids.get(name)
        return float(value) if g is None or len(g) == 0 else _ecdf(g, value)

    def combined(self, scores: dict) -> float | None:
        vals = []
        for s in self.scorers:
            v = scores.get(s)
            if v is None:
                continue
            vals.append(self.rank(s, v) if self.normalize == "quantile" else float(v))
        if not vals:
            return None
        return round(max(vals) if self.combine == "max" else min(vals) if self.combine == "min" else
                     sum(vals) / len(vals), 6)

    def _holds(self, rule: dict, scores: dict, comb: float | None) -> bool:
        for key in ("min", "quantile"):
            cond = rule.get(key)
            if cond is None:
                continue
            if isinstance(cond, dict):
                for s, thr in cond.items():
                    v = scores.get(s)
                    if v is None:
                        return False
                    if key == "min" and v < thr:
                        return False
                    if key == "quantile" and self.rank(s, v) < thr:
                        return False
            else:
                if comb is None:
                    return False
                if key == "min" and comb < cond:
                    return False
                if key == "quantile" and self.combined_rank(comb) < cond:
                    return False
        return True

    def combined_rank(self, comb: float) -> float:
        if self.combined_grid is None:
            return comb
        return _ecdf(self.combined_grid, comb)

    def tier_of(self, scores: dict) -> tuple[int, float | None]:
        """(index of the first matching tier or -1, combined score)."""
        comb = self.combined(scores)
        for i, rule in enumerate(self.tiers):
            if self._holds(rule, scores, comb):
                return i, comb
        return -1, comb


def _ecdf(grid: np.ndarray, value: float) -> float:
    """Quantile of ``value`` given the corpus' quantile grid; ties take the middle of their run."""
    lo, hi = np.searchsorted(grid, value, "left"), np.searchsorted(grid, value, "right")
    if hi > lo:
        q = (lo + hi - 1) / 2 / (len(grid) - 1)
    else:
        q = float(np.interp(value, grid, _GRID))
    return float(min(1.0, max(0.0, q)))


def order_key(tier_index: int, comb: float | None, rid: str) -> tuple:
    return (tier_index, -(comb if comb is not None else -1e9), rid)


def quantile_grid(values: list[float]) -> list[float]:
    return np.quantile(np.asarray(values, dtype=np.float64), _GRID).tolist() if values else []


def walk_limits(rows: list[tuple], quotas: dict[str, float], budget: int) -> tuple[dict, list | None]:
    """rows: (key, source, tokens) of records in a tier, sorted by key.

    Returns ({source: first blocked key}, first key blocked by the budget).  A record
    is admitted iff its key is below both cut-offs (see module doc).
    """
    total = sum(t for _, _, t in rows)
    base = budget if budget > 0 else total
    caps = {s: q * base for s, q in quotas.items()}
    used: Counter = Counter()
    spent = 0
    src_cut: dict[str, list] = {}
    for key, src, tok in rows:
        if src in src_cut:
            continue
        if src in caps and used[src] + tok > caps[src]:
            src_cut[src] = list(key)
            continue
        if budget > 0 and spent + tok > budget:
            return src_cut, list(key)
        used[src] += tok
        spent += tok
    return src_cut, None


@register("tier")
class TierStage(GlobalStage):
    version = "1"
    defaults = {"scorers": [], "combine": "max", "normalize": "quantile", "tiers": [], "quotas": {},
                "token_budget": 0, "sft_select": {}, "dpo_select": {}}
    rules = {"scorers": each(text), "combine": one_of("max", "mean", "min"), "normalize": one_of("quantile", "none"),
             "tiers": each(mapping({"name": text, "min": None, "quantile": None})), "quotas": mapping(values=RATIO),
             "token_budget": COUNT,
             # the keyword arguments of the selection functions
             "sft_select": mapping(lambda: _kwargs_of(select_sft)), "dpo_select": mapping(lambda: _kwargs_of(select_dpo_seeds))}

    def check_recipe(self, recipe: dict) -> None:
        from types import SimpleNamespace
        TierRules(self.spec(SimpleNamespace(recipe=recipe)))  # `scorers: []` fails at load, not in a worker

    def spec(self, ctx=None) -> dict:
        spec = {k: self.params[k] for k in self.defaults}
        if not self.scorers and ctx is not None and isinstance(ctx.recipe.get("tiers"), dict):
            spec.update(ctx.recipe["tiers"])
        return spec

    def setup(self, ctx) -> None:
        TierRules(self.spec(ctx))  # fail early on a bad spec

    # --- collect: per-shard score table ----------------------------------------
    def collect(self, records: list[Record], ctx) -> None:
        from ..io.writers import estimate_tokens
        spec = self.spec(ctx)
        want = set(spec["scorers"]) | _select_scorers(spec)
        lines = []
        for r in records:
            sc = {k: v for k, v in M.scores(r).items() if k in want}
            lines.append(orjson.dumps({"id": r.id, "src": r.source, "tok": estimate_tokens(r.full_text()),
                                       "s": sc, "c": M.cluster(r)}))
        atomic_write_bytes(ctx.artifact_path(".jsonl"), b"\n".join(lines) + (b"\n" if lines else b""))

    # --- reduce: quantile grids, cut-offs ----------------------------------------
    def reduce(self, ctx) -> dict:
        spec = self.spec(ctx)
        rows = _read_rows(ctx.artifact_dir)
        per: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            for k, v in r["s"].items():
                if v is not None:
                    per[k].append(v)
        grids = {k: quantile_grid(v) for k, v in sorted(per.items())}
        rules = TierRules(spec, grids)
        combs = [c for c in (rules.combined(r["s"]) for r in rows) if c is not None]
        rules.combined_grid = np.asarray(quantile_grid(combs)) if combs else None
        keyed = []
        counts: Counter = Counter()
        for r in rows:
            t, comb = rules.tier_of(r["s"])
            counts[rules.tiers[t]["name"] if t >= 0 else UNSELECTED] += 1
            if t >= 0:
                keyed.append((order_key(t, comb, r["id"]), r["src"], r["tok"]))
        keyed.sort()
        src_cut, budget_cut = walk_limits(keyed, spec.get("quotas") or {}, int(spec.get("token_budget") or 0))
        state = {"grids": grids, "combined_grid": rules.combined_grid.tolist() if rules.combined_grid is not None
                 else None, "src_cut": src_cut, "budget_cut": budget_cut, "spec": spec}
        atomic_write_bytes(os.path.join(ctx.state_dir, "tiers.json"), json.dumps(state).encode())
        return {"records": len(rows), "pre_budget": dict(sorted(counts.items())),
                "budget_hit": budget_cut is not None, "quota_hit": sorted(src_cut)}

    # --- apply -------------------------------------------------------------------
    def load(self, ctx) -> None:
        with open(os.path.join(ctx.state_dir, "tiers.json"), "rb") as f:
            st = json.loads(f.read())
        self._rules = TierRules(st["spec"], st["grids"])
        if st["combined_grid"] is not None:
            self._rules.combined_grid = np.asarray(st["combined_grid"])
        self._src_cut = {k: tuple(v) for k, v in st["src_cut"].items()}
        self._budget_cut = tuple(st["budget_cut"]) if st["budget_cut"] else None

    def process(self, record: Record) -> Record:
        t, comb = self._rules.tier_of(M.scores(record))
        if t < 0:
            tier = UNSELECTED
        else:
            key = order_key(t, comb, record.id)
            cut = self._src_cut.get(record.source)
            blocked = (cut is not None and key >= cut) or (self._budget_cut is not None and key >= self._budget_cut)
            tier = OVERFLOW if blocked else self._rules.tiers[t]["name"]
        record.meta[M.TIER] = tier
        if comb is not None:
            record.meta.setdefault(M.SCORES, {})[M.TIER_COMBINED] = comb
        self.count(f"tier:{tier}")
        return record

    # --- finalize: enrich tier manifests, selections ---------------------------------
    def finalize(self, ctx) -> None:
        from ..rundir import RunDir
        spec, rd = self.spec(ctx), RunDir(ctx.run_dir)
        kept = rd.kept
        summary = {}
        for tier, stats in tier_stats(kept, spec["scorers"]).items():
            summary[tier] = stats
            mpath = rd.sink_manifest("kept", tier)
            if os.path.exists(mpath):
                with open(mpath, "rb") as f:
                    m = json.loads(f.read())
                m.update(score_ranges=stats["score_ranges"], cluster_mix=stats["cluster_mix"])
                atomic_write_bytes(mpath, json.dumps(m, indent=1, ensure_ascii=False, sort_keys=True).encode())
        atomic_write_bytes(rd.tiers_json,
                           json.dumps({"spec": spec, "tiers": summary}, indent=1, ensure_ascii=False).encode())
        if spec.get("sft_select"):
            select_sft(kept, rd.selection("sft_train"), **spec["sft_select"])
        if spec.get("dpo_select"):
            select_dpo_seeds(kept, rd.selection("dpo_seeds"), **spec["dpo_select"])


def _kwargs_of(fn) -> dict:
    import inspect
    return {k: None for k in list(inspect.signature(fn).parameters)[2:]}  # after kept_dir, out_dir


def _select_scorers(spec: dict) -> set[str]:
    d = spec.get("dpo_select") or {}
    return {d[k] for k in ("quality", "difficulty") if d.get(k)}


def _read_rows(artifact_dir: str) -> list[dict]:
    rows = []
    for fn in sorted(os.listdir(artifact_dir)) if os.path.isdir(artifact_dir) else ():
        with open(os.path.join(artifact_dir, fn), "rb") as f:
            rows.extend(orjson.loads(line) for line in f if line.strip())
    rows.sort(key=lambda r: r["id"])
    return rows


def _iter_kept(kept_dir: str):
    from ..io.readers import iter_records
    man = os.path.join(kept_dir, "manifest.json")
    if os.path.exists(man):  # lists every kept shard, tier sub-folders included
        yield from iter_records(man)


def tier_stats(kept_dir: str, scorers: list[str]) -> dict[str, dict]:
    """Per tier: records, tokens, score ranges (min/p50/max per scorer), cluster mix."""
    from ..io.writers import estimate_tokens
    acc: dict[str, dict] = {}
    for r in _iter_kept(kept_dir):
        m = meta_of(r)
        t = acc.setdefault(str(m.get(M.TIER, "none")), {"records": 0, "tokens": 0, "scores": defaultdict(list),
                                                        "clusters": Counter()})
        t["records"] += 1
        t["tokens"] += estimate_tokens(r.full_text())
        for k, v in M.scores(m).items():
            if v is not None and (k in scorers or k == M.TIER_COMBINED):
                t["scores"][k].append(v)
        if M.CLUSTER in m:
            t["clusters"][m.get(M.CLUSTER_LABEL) or str(m[M.CLUSTER])] += 1
    out = {}
    for name, t in sorted(acc.items()):
        ranges = {k: {"min": round(min(v), 5), "p50": round(float(np.median(v)), 5), "max": round(max(v), 5)}
                  for k, v in sorted(t["scores"].items())}
        out[name] = {"records": t["records"], "tokens_est": t["tokens"], "score_ranges": ranges,
                     "cluster_mix": dict(t["clusters"].most_common())}
    return out


# --- selection helpers ------------------------------------------------------------------
def balanced_take(items: list[tuple], limit_tokens: int = 0, limit_n: int = 0) -> list[str]:
    """items: (group, priority, id, tokens). Round-robin over groups, best priority first.

    Diversity by construction: every cluster gives its best record before any gives
    its second.  Stops at ``limit_tokens`` (skipping a record that would overshoot) or
    ``limit_n`` records.  Deterministic (ties broken by id).
    """
    groups: dict = defaultdict(list)
    for g, p, rid, tok in items:
        groups[g].append((-p, rid, tok))
    queues = [sorted(v) for _, v in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    chosen, spent, pos = [], 0, 0
    while any(pos < len(q) for q in queues):
        for q in queues:
            if pos >= len(q):
                continue
            _, rid, tok = q[pos]
            if limit_tokens and spent + tok > limit_tokens:
                continue
            chosen.append(rid)
            spent += tok
            if limit_n and len(chosen) >= limit_n:
                return chosen
        pos += 1
    return chosen


def _write_selection(kept_dir: str, out_dir: str, ids: list[str], info: dict) -> dict:
    from ..io.writers import ShardWriter, write_manifest
    wanted = set(ids)
    path = os.path.join(out_dir, "shard-00000.jsonl.zst")
    os.makedirs(out_dir, exist_ok=True)
    by_id = {}
    for r in _iter_kept(kept_dir):
        if r.id in wanted:
            by_id[r.id] = r
    with ShardWriter(path, "jsonl.zst") as w:
        for rid in ids:  # in selection order
            w.write_record(by_id[rid])
    return write_manifest(out_dir, [{"path": path, "records": w.records, "tokens": w.tokens}],
                          {"selection": info})


def select_sft(kept_dir: str, out_dir: str, tier: str = "top", tokens: int = 0, n: int = 0,
               balance: str = "cluster", score: str = M.TIER_COMBINED, kinds: list | None = None) -> dict:
    """"Top tier, cluster-balanced, N tokens": the SFT training set (conversations only,
    unless ``kinds`` says otherwise: a mixed run's top tier also holds pretraining text)."""
    from ..io.writers import estimate_tokens
    kinds = tuple(kinds or ("sft",))
    items = []
    for r in _iter_kept(kept_dir):
        m = r.meta
        if M.tier(m) != tier or r.kind not in kinds:
            continue
        g = m.get(balance) if balance else 0
        items.append((g, M.score(m, score, 0.0), r.id, estimate_tokens(r.full_text())))
    ids = balanced_take(items, int(tokens), int(n))
    return _write_selection(kept_dir, out_dir, ids, {"kind": "sft_train", "tier": tier, "tokens": tokens,
                                                     "balance": balance, "kinds": list(kinds),
                                                     "candidates": len(items)})


def select_dpo_seeds(kept_dir: str, out_dir: str, quality: str = M.score_key("quality_heuristic"),
                     difficulty: str = M.score_key("difficulty_heuristic"), quality_quantile: float = 0.7,
                     difficulty_quantile: float = 0.7, n: int = 1000, balance: str = "cluster") -> dict:
    """"High quality, high difficulty, diverse": prompts to generate preference pairs for."""
    rows = [(r.id, r.meta) for r in _iter_kept(kept_dir) if r.kind in ("sft", "dpo")]
    q = [M.scores(m).get(quality) for _, m in rows]
    d = [M.scores(m).get(difficulty) for _, m in rows]
    qv = [x for x in q if x is not None]
    dv = [x for x in d if x is not None]
    if not qv or not dv:
        return _write_selection(kept_dir, out_dir, [], {"kind": "dpo_seeds", "candidates": 0})
    qt, dt = float(np.quantile(qv, quality_quantile)), float(np.quantile(dv, difficulty_quantile))
    items = [((m.get(balance) if balance else 0), qi + di, rid, 1) for (rid, m), qi, di in zip(rows, q, d)
             if qi is not None and di is not None and qi >= qt and di >= dt]
    ids = balanced_take(items, 0, int(n))
    return _write_selection(kept_dir, out_dir, ids, {"kind": "dpo_seeds", "quality": [quality, qt],
                                                     "difficulty": [difficulty, dt], "candidates": len(items)})
