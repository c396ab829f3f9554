"""Topic clusters: embed, MiniBatchKMeans, label each cluster with jieba c-TF-IDF keywords.

As a GlobalStage (``cluster``):

* ``collect``: each shard writes a deterministic sample of its texts (the records
  whose id hash is smallest), so the sample depends on the data, not on the shard
  order or worker count;
* ``reduce``: fits the embedder on the global sample (tfidf_svd) and saves it, picks k
  (recipe value, or the best silhouette over a range on a sub-sample), fits
  MiniBatchKMeans, labels clusters with their top keywords and saves everything to
  ``state_dir``;
* ``process_batch``: embeds each shard's records (cached by record id) and writes
  ``meta["cluster"]`` (int) and ``meta["cluster_label"]`` (top keywords joined by "/").

The functions below are also usable on their own (benchmarks, the report).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter

import numpy as np
import orjson

from ..dedup.semantic import embedder_requires, embedder_rule  # the embedder rule semantic_dedup uses too
from ..pipeline import COUNT, POSITIVE, GlobalStage, register
from ..records import Record
from ..io.atomic import atomic_write_bytes
from ._common import blas_threads, embed_text, jieba_mod

_WORD_RE = re.compile(r"[\u3400-\u9fffA-Za-z][\u3400-\u9fffA-Za-z0-9+#.-]*")
# function words that survive the length filter but say nothing about a topic
_STOP = set("""的 了 在 是 和 与 及 或 就 都 而 及其 以及 一个 一种 我们 你们 他们 这个 那个 这些 那些 什么 怎么 如何 为什么
可以 没有 不是 还是 已经 因为 所以 但是 如果 进行 通过 对于 关于 以上 以下 之后 之前 其中 自己 这样 那样 这种 那种 现在
the a an of to and or in on for with is are be was were this that it as by at from your you how what which
please write give can will do does not""".split())


def sample_key(record_id: str) -> int:
    """A stable pseudo-random rank for deterministic sampling (independent of sharding)."""
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "big")


def tokenize(text: str) -> list[str]:
    jb = jieba_mod()
    return [w.lower() for w in jb.lcut(text[:2000]) if len(w) > 1 and _WORD_RE.fullmatch(w) and w.lower() not in _STOP]


def cluster_keywords(texts: list[str], labels: np.ndarray, k: int, top: int = 5, per_cluster: int = 100,
                     max_chars: int = 200) -> list[list[str]]:
    """Class-based TF-IDF over jieba words: terms frequent in one cluster and rare in the others.

    Only the first ``per_cluster`` texts of each cluster (first ``max_chars`` chars each) are
    segmented: top keywords are stable long before that, and jieba was most of the reduce's
    time (``per_cluster=0`` segments everything). Texts come in sample order, so the choice
    is deterministic.
    """
    tf = [Counter() for _ in range(k)]
    seen = [0] * k
    for t, c in zip(texts, labels):
        c = int(c)
        if per_cluster and seen[c] >= per_cluster:
            continue
        seen[c] += 1
        tf[c].update(tokenize(t[:max_chars] if per_cluster else t))
    df = Counter()
    for c in tf:
        df.update(c.keys())
    out = []
    for c in tf:
        total = sum(c.values()) or 1
        scored = sorted(((cnt / total) * math.log(1 + k / df[w]), w) for w, cnt in c.items() if cnt >= 2)
        out.append([w for _, w in sorted(scored, key=lambda x: (-x[0], x[1]))[:top]])
    return out


def _silhouette(sub: np.ndarray, k: int, seed: int) -> float:
    from sklearn.metrics import silhouette_score
    lab = fit_kmeans(sub, k, seed, n_init=1).predict(sub)
    return float(silhouette_score(sub, lab, metric="cosine")) if len(set(lab)) > 1 else -1.0


def choose_k(x: np.ndarray, k_min: int, k_max: int, seed: int = 0, max_points: int = 2000,
             coarse: int = 5) -> tuple[int, dict]:
    """Best silhouette (cosine) over k in [k_min, k_max] on a sub-sample of ``max_points``.

    Coarse to fine: ``coarse`` geometrically spaced k, then the midpoints between the best
    and its neighbours (silhouette is smooth enough in k for that). Each candidate costs a
    k-means fit plus an O(n^2) silhouette, so both the sample and the count are capped.
    """
    rng = np.random.default_rng(seed)
    sub = x if len(x) <= max_points else x[np.sort(rng.choice(len(x), max_points, replace=False))]
    lo, hi = max(2, k_min), max(2, min(k_max, len(sub) - 1))
    if hi <= lo:
        return lo, {lo: _silhouette(sub, lo, seed)} if len(sub) > lo else {}
    grid = sorted({int(round(v)) for v in np.geomspace(lo, hi, num=min(coarse, hi - lo + 1))})
    scores = {k: _silhouette(sub, k, seed) for k in grid}
    best = max(scores, key=lambda k: (scores[k], -k))
    i = grid.index(best)
    for nb in (grid[i - 1] if i > 0 else None, grid[i + 1] if i + 1 < len(grid) else None):
        if nb is not None:
            mid = (best + nb) // 2
            if mid not in scores:
                scores[mid] = _silhouette(sub, mid, seed)
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, dict(sorted(scores.items()))


def fit_kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 3):
    from sklearn.cluster import MiniBatchKMeans
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=n_init, batch_size=2048, max_iter=200)
    return km.fit(x)


def assign(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    # argmin ||x - c||^2 = argmax (x.c - |c|^2 / 2)
    return np.argmax(x @ centers.T - 0.5 * (centers ** 2).sum(1)[None, :], axis=1)


def purity_nmi(true: list, pred: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import normalized_mutual_info_score
    pairs = Counter(zip(pred.tolist(), true))
    best = Counter()
    for (c, _), n in pairs.items():
        best[c] = max(best[c], n)
    return sum(best.values()) / len(true), float(normalized_mutual_info_score(true, pred))


@register("cluster")
class ClusterStage(GlobalStage):
    """Embedding + k-means topic clusters with readable labels, for diversity and tiers."""

    version = "2"  # 2: capped silhouette/keyword samples, coarse-to-fine k search
    defaults = {
        # thresher.scoring.embed parameters; default e5 (reads Chinese: thucnews-titles purity/NMI
        # 0.62/0.55 vs tfidf_svd 0.46/0.32, benchmarks/results/scoring_semantic_zh.md) on the
        # first 256 chars (the topic is in the head). {backend: tfidf_svd} is the fast option.
        "embedder": {"backend": "e5", "max_chars": 256},
        "k": 0,                     # 0: choose by silhouette in [k_min, k_max]
        "k_min": 4,
        "k_max": 40,
        "sample_per_shard": 2000,   # texts each shard contributes to the fit sample
        "fit_sample": 20000,        # texts used to fit the embedder and k-means
        "keywords": 3,              # keywords in cluster_label
        "store_embedding": False,   # also write meta["embedding"] (float list; large)
        "cache_embeddings": True,   # cache vectors by record id under the stage's work dir
        "silhouette_sample": 2000,  # points the k search clusters and scores (O(n^2) silhouette)
        "keyword_sample": 100,      # texts per cluster jieba segments for labels (0: all)
        "seed": 0,
        "threads": 1,               # BLAS threads in reduce
    }
    requires = {"sklearn": "score"}  # k-means, silhouette
    rules = {"embedder": embedder_rule(hashed=False), "k": COUNT, "k_min": POSITIVE, "k_max": POSITIVE,
             "sample_per_shard": POSITIVE, "fit_sample": POSITIVE, "keywords": COUNT, "silhouette_sample": POSITIVE,
             "keyword_sample": COUNT, "seed": COUNT, "threads": POSITIVE}

    def required_modules(self) -> dict[str, str]:
        return {**self.requires, **embedder_requires(self.params["embedder"], hashed=False)}

    # ------------------------------------------------------------------ collect
    def collect(self, records: list[Record], ctx) -> None:
        rows = sorted(((sample_key(r.id), r.id, embed_text(r)[:2000]) for r in records))[: self.sample_per_shard]
        data = b"".join(orjson.dumps({"h": h, "id": rid, "t": t}) + b"\n" for h, rid, t in rows)
        atomic_write_bytes(ctx.artifact_path(".jsonl"), data)

    # ------------------------------------------------------------------ reduce
    def _embedder_params(self, ctx) -> dict:
        p = dict(self.embedder)
        if self.cache_embeddings and not p.get("cache_dir"):
            p["cache_dir"] = os.path.join(os.path.dirname(ctx.state_dir), "embed-cache")
        return p

    def reduce(self, ctx) -> dict:
        from .embed import build_embedder
        rows = []
        for fn in sorted(os.listdir(ctx.artifact_dir)):
            with open(os.path.join(ctx.artifact_dir, fn), "rb") as f:
                rows.extend(orjson.loads(line) for line in f)
        rows.sort(key=lambda r: (r["h"], r["id"]))
        rows = rows[: self.fit_sample]
        if not rows:
            return {"k": 0, "sample": 0}
        texts, ids = [r["t"] for r in rows], [r["id"] for r in rows]
        emb = build_embedder(self._embedder_params(ctx))
        x = emb.fit_encode(texts, ids=ids)
        emb.save(os.path.join(ctx.state_dir, "embedder"))
        scores = {}
        k = self.k or 0
        with blas_threads(self.threads):
            if k <= 0:
                k, scores = choose_k(x, self.k_min, self.k_max, self.seed, max_points=self.silhouette_sample)
            k = max(1, min(k, len(x)))
            km = fit_kmeans(x, k, self.seed)
        centers = km.cluster_centers_.astype(np.float32)
        labels = assign(x, centers)
        kws = cluster_keywords(texts, labels, k, max(self.keywords, 8), per_cluster=self.keyword_sample)
        sizes = np.bincount(labels, minlength=k).tolist()
        clusters = [{"id": i, "label": "/".join(kws[i][: self.keywords]) or f"cluster-{i}", "keywords": kws[i],
                     "sample_size": sizes[i]} for i in range(k)]
        np.save(os.path.join(ctx.state_dir, "centers.npy"), centers)
        info = {"k": k, "silhouette": scores, "sample": len(rows), "clusters": clusters,
                "embedder": emb.backend, "dim": int(x.shape[1])}
        atomic_write_bytes(os.path.join(ctx.state_dir, "clusters.json"),
                           json.dumps(info, ensure_ascii=False, indent=1).encode())
        return {"k": k, "sample": len(rows), "silhouette_best": round(scores.get(k, float("nan")), 4) if scores else None}

    # ------------------------------------------------------------------ apply
    def load(self, ctx) -> None:
        from .embed import load_embedder
        with open(os.path.join(ctx.state_dir, "clusters.json"), "rb") as f:
            info = json.loads(f.read())
        self._labels = [c["label"] for c in info["clusters"]]
        self._centers = np.load(os.path.join(ctx.state_dir, "centers.npy")) if info["k"] else None
        if self._centers is not None:
            extra = {"cache_dir": self._embedder_params(ctx).get("cache_dir")}
            self._emb = load_embedder(os.path.join(ctx.state_dir, "embedder"), **extra)

    def process_batch(self, records: list[Record]) -> list[Record]:
        if self._centers is None or not records:
            return records
        x = self._emb.encode([embed_text(r) for r in records], ids=[r.id for r in records])
        lab = assign(x, self._centers)
        for r, c, v in zip(records, lab, x):
            r.meta["cluster"] = int(c)
            r.meta["cluster_label"] = self._labels[int(c)]
            if self.store_embedding:
                r.meta["embedding"] = [round(float(a), 4) for a in v]
        self.count("clustered", len(records))
        return records


def cluster_state_dir(run_dir: str) -> str | None:
    """The state folder of a run's ``cluster`` stage, if it ran."""
    from ..rundir import RunDir
    work = RunDir(run_dir).work
    if not os.path.isdir(work):
        return None
    for d in sorted(os.listdir(work)):
        if re.fullmatch(r"global-\d+-cluster", d) and os.path.exists(os.path.join(work, d, "state", "clusters.json")):
            return os.path.join(work, d, "state")
    return None
