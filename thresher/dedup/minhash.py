"""MinHash + LSH core, vectorised with NumPy; usable outside the pipeline.

Shingling is Chinese-aware in one pass over a whole batch: every CJK character is a
token, every run of other word characters (Latin, digits, Cyrillic, ...) is a token,
everything else separates.  Shingles are token n-grams, so "去年夏天" gives character
n-grams and "the quick brown fox" word n-grams, and a mixed text gives both.  A text
with fewer than n tokens becomes one shingle of all its tokens (short SFT prompts).

Nothing loops over shingles in Python: the batch is encoded once to UTF-32, classified
with a lookup table, token hashes are polynomial hashes summed with ``np.add.reduceat``,
n-grams combine shifted token arrays, and the permutations are multiply-add hashes
on a (shingles x num_perm) uint32 matrix reduced with ``np.minimum.reduceat``.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .unionfind import components

U64 = np.uint64
_M1 = U64(0xBF58476D1CE4E5B9)
_M2 = U64(0x94D049BB133111EB)
_TOKEN_BASE = U64(0x100000001B3)  # FNV prime: polynomial base for chars within a word
_GRAM_BASE = U64(0x9E3779B97F4A7C15)  # golden ratio: combines tokens into n-grams
_MAX_WORD = 64  # characters past this in one word share the last power (still hashed)

CLASS_SEP, CLASS_WORD, CLASS_CJK = 0, 1, 2


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 -> well-mixed uint64), vectorised; wraps mod 2^64."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> U64(30))
        x = x * _M1
        x = x ^ (x >> U64(27))
        x = x * _M2
        return x ^ (x >> U64(31))


def _is_cjk(cp: int) -> bool:
    return (0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
            or 0x3040 <= cp <= 0x30FF or 0x20000 <= cp <= 0x3FFFF)


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """Class of every code point (separator / word char / CJK char); built once."""
    table = np.zeros(0x110000, np.uint8)
    for cp in range(0x30000):
        if _is_cjk(cp):
            table[cp] = CLASS_CJK
        elif 0xD800 <= cp <= 0xDFFF:
            continue
        else:
            ch = chr(cp)
            if ch.isalnum() or unicodedata.category(ch) == "Mn":
                table[cp] = CLASS_WORD
    table[0x30000:0x40000] = CLASS_CJK  # CJK extension G/H
    return table


@lru_cache(maxsize=2)
def fold_table(t2s: bool = False) -> np.ndarray:
    """Code point -> folded code point: NFKC (full/half width, compatibility forms) and
    lower case where they map one character to one character; optionally Traditional ->
    Simplified per character (opencc).  Applied to the UTF-32 array, so folding costs
    one gather instead of a Python pass per text."""
    table = np.arange(0x110000, dtype=np.uint32)
    for cp in range(0x30000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        f = unicodedata.normalize("NFKC", chr(cp)).lower()
        if len(f) == 1:
            table[cp] = ord(f)
    if t2s:
        from .normalize import _t2s
        conv = _t2s()
        for cp in np.flatnonzero(char_classes() == CLASS_CJK)[:0x10000].tolist():
            f = conv.convert(chr(cp))
            if len(f) == 1:
                table[cp] = ord(f)
    return table


@lru_cache(maxsize=1)
def _powers() -> np.ndarray:
    p = np.ones(_MAX_WORD, np.uint64)
    with np.errstate(over="ignore"):
        for i in range(1, _MAX_WORD):
            p[i] = p[i - 1] * _TOKEN_BASE
    return p


def tokenize_batch(texts: list[str], fold: bool = True, t2s: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes (uint64) and the document index of each token, for a batch."""
    n = len(texts)
    lens = np.fromiter((len(t) for t in texts), np.int64, n)
    cp = np.frombuffer(("\x00".join(texts) + "\x00").encode("utf-32-le", "surrogatepass"), np.uint32)
    if fold:
        cp = fold_table(t2s)[cp]
    cls = char_classes()[cp]
    word = cls == CLASS_WORD
    cjk = cls == CLASS_CJK
    start = cjk.copy()
    start[0] |= word[0]
    start[1:] |= word[1:] & ~word[:-1]
    member = np.flatnonzero(cjk | word)
    if len(member) == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    flags = start[member]
    starts = np.flatnonzero(flags)
    tok_of = np.cumsum(flags) - 1
    pos = np.arange(len(member)) - starts[tok_of]
    np.minimum(pos, _MAX_WORD - 1, out=pos)
    with np.errstate(over="ignore"):
        vals = cp[member].astype(np.uint64) * _powers()[pos]
    tok = mix64(np.add.reduceat(vals, starts))
    doc_of_char = np.repeat(np.arange(n, dtype=np.int64), lens + 1)
    return tok, doc_of_char[member[starts]]


def shingle_batch(texts: list[str], ngram: int, fold: bool = True,
                  t2s: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes (uint32) and their document index, sorted by document.

    Documents with at least ``ngram`` tokens give their token n-grams; shorter ones one
    shingle of all their tokens; empty ones none.
    """
    tok, tdoc = tokenize_batch(texts, fold, t2s)
    n = len(texts)
    if len(tok) == 0:
        return np.empty(0, np.uint32), np.empty(0, np.int64)
    ntok = np.bincount(tdoc, minlength=n)
    first = np.concatenate([[0], np.cumsum(ntok)[:-1]])
    grams = [tok]  # grams[k-1][i] = hash of tokens i..i+k-1
    with np.errstate(over="ignore"):
        for k in range(2, ngram + 1):
            prev = grams[-1]
            if len(prev) <= 1:
                break
            grams.append(prev[:-1] * _GRAM_BASE + tok[k - 1:])
    parts_h, parts_d = [], []
    if len(grams) >= ngram:
        g = grams[ngram - 1]
        ok = tdoc[: len(g)] == tdoc[ngram - 1:]
        parts_h.append(g[ok])
        parts_d.append(tdoc[: len(g)][ok])
    short = np.flatnonzero((ntok > 0) & (ntok < ngram))
    if len(short):
        h = np.empty(len(short), np.uint64)
        for k in np.unique(ntok[short]):
            sel = ntok[short] == k
            h[sel] = grams[k - 1][first[short[sel]]]
        parts_h.append(h)
        parts_d.append(short)
    sh = np.concatenate(parts_h)
    sd = np.concatenate(parts_d)
    if len(short):
        order = np.argsort(sd, kind="stable")
        sh, sd = sh[order], sd[order]
    return (mix64(sh) >> U64(32)).astype(np.uint32), sd


@lru_cache(maxsize=64)
def optimal_param(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive + false-negative areas of the
    S-curve around ``threshold`` (the same criterion as datasketch's MinHashLSH)."""
    best, best_err = (1, 1), float("inf")
    lo = np.linspace(0.0, threshold, 201)
    hi = np.linspace(threshold, 1.0, 201)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(1 - (1 - lo ** r) ** b, lo)
            fn = np.trapezoid((1 - hi ** r) ** b, hi)
            err = fp * fp_weight + fn * fn_weight
            if err < best_err:
                best, best_err = (b, r), err
    return best


def s_curve(bands: int, rows: int, points=None) -> list[tuple[float, float]]:
    """Probability that a pair with Jaccard s becomes an LSH candidate."""
    pts = np.round(np.arange(0.1, 1.0001, 0.05), 2) if points is None else np.asarray(points)
    return [(float(s), float(1 - (1 - s ** rows) ** bands)) for s in pts]


@dataclass
class MinHasher:
    """Signatures and LSH band hashes with fixed parameters (picklable, cheap to build)."""
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    t2s: bool = False
    normalize: bool = True

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.a = (rng.integers(0, 1 << 32, self.num_perm, dtype=np.uint64) | U64(1)).astype(np.uint32)
        self.b = rng.integers(0, 1 << 32, self.num_perm, dtype=np.uint64).astype(np.uint32)

    def shingles(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return shingle_batch(texts, self.ngram, self.normalize, self.t2s)

    def signatures(self, texts: list[str], chunk: int = 1 << 13) -> np.ndarray:
        """(len(texts), num_perm) uint32; an empty text gets all 0xFFFFFFFF (never banded)."""
        sh, sd = self.shingles(texts)
        sig = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, np.uint32)
        # chunks of shingles keep the (chunk x num_perm) matrix in cache-sized pieces
        # (num_perm x chunk) layout: each permutation's row is contiguous, so the
        # per-document minimum is a fast reduceat along the last axis
        for lo in range(0, len(sh), chunk):
            x, d = sh[lo:lo + chunk], sd[lo:lo + chunk]
            seg = np.flatnonzero(np.concatenate([[True], d[1:] != d[:-1]]))
            h = np.multiply(self.a[:, None], x[None, :])
            h += self.b[:, None]
            part = np.minimum.reduceat(h, seg, axis=1)
            docs = d[seg]
            sig[docs] = np.minimum(sig[docs], part.T)
        return sig


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(N, bands) uint64: one hash per band of ``rows`` signature values."""
    n = len(sig)
    blocks = sig[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    coef = mix64(np.arange(1, rows + 1, dtype=np.uint64))
    with np.errstate(over="ignore"):
        h = (blocks * coef).sum(axis=2, dtype=np.uint64)
        h += np.arange(bands, dtype=np.uint64) * _GRAM_BASE
    return mix64(h)


def empty_mask(sig: np.ndarray) -> np.ndarray:
    return (sig == np.iinfo(np.uint32).max).all(axis=1)


def sig_similarity(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of row pairs: fraction of equal MinHash values."""
    return (sa == sb).mean(axis=-1)


def bucket_edges(keys: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Candidate edges of one band: records sharing a bucket hash, as
    ``(smallest key in bucket, other key)`` pairs."""
    if len(keys) < 2:
        return np.empty((0, 2), np.int64)
    order = np.lexsort((keys, hashes))
    h, k = hashes[order], keys[order]
    new = np.concatenate([[True], h[1:] != h[:-1]])
    grp = np.cumsum(new) - 1
    head = k[np.flatnonzero(new)][grp]
    m = ~new
    return np.stack([head[m], k[m]], axis=1)


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def shingle_sets(hasher: MinHasher, texts: list[str]) -> list[np.ndarray]:
    sh, sd = hasher.shingles(texts)
    bounds = np.searchsorted(sd, np.arange(len(texts) + 1))
    return [np.unique(sh[bounds[i]:bounds[i + 1]]) for i in range(len(texts))]


@dataclass
class LSHParams:
    threshold: float = 0.8
    num_perm: int = 128
    bands: int = 0
    rows: int = 0

    def resolve(self) -> tuple[int, int]:
        if self.bands and self.rows:
            return self.bands, self.rows
        return optimal_param(self.threshold, self.num_perm)


def verify_cutoff(threshold: float, num_perm: int, slack: float) -> float:
    """Signature-verification cutoff: ``slack`` standard errors below ``threshold``.

    The estimate of a pair with Jaccard t is binomial(num_perm, t)/num_perm, standard
    error sqrt(t(1-t)/num_perm) (0.04 at t=0.7, 128 perms).  Verification is meant to
    trim LSH's false-positive tail (candidates far below the threshold), not to turn
    the soft S-curve into a hard cut at t: a hard cut also drops the pairs just below
    t that plain LSH (datasketch) keeps, which cost 1-2 F1 points on edited-copy sets
    (see docs/dedup.md).  slack=0 is the hard cut."""
    return max(0.0, threshold - slack * float(np.sqrt(threshold * (1 - threshold) / num_perm)))


def dedup_clusters(texts: list[str], threshold: float = 0.8, num_perm: int = 128, ngram: int = 5,
                   bands: int = 0, rows: int = 0, verify: str = "none", seed: int = 1,
                   batch: int = 1024, verify_slack: float = 3.0) -> np.ndarray:
    """In-memory near-dup clustering: label[i] = smallest index in i's cluster.

    ``verify``: "none" (every LSH candidate pair is a duplicate), "signature" (estimated
    Jaccard >= ``verify_cutoff(threshold, num_perm, verify_slack)``) or "jaccard" (exact
    shingle Jaccard >= threshold).
    """
    hasher = MinHasher(num_perm=num_perm, ngram=ngram, seed=seed)
    b, r = LSHParams(threshold, num_perm, bands, rows).resolve()
    sig = np.concatenate([hasher.signatures(texts[i:i + batch]) for i in range(0, len(texts), batch)]) \
        if texts else np.empty((0, num_perm), np.uint32)
    bh = band_hashes(sig, b, r)
    keys = np.flatnonzero(~empty_mask(sig)).astype(np.int64)
    edges = [bucket_edges(keys, bh[keys, j]) for j in range(b)]
    e = np.unique(np.concatenate(edges), axis=0) if edges else np.empty((0, 2), np.int64)
    cut = verify_cutoff(threshold, num_perm, verify_slack) if verify == "signature" else threshold
    e = verify_edges(e, cut, verify, sig=sig, hasher=hasher, texts=texts)
    labels = np.arange(len(texts), dtype=np.int64)
    nodes, roots = components(e)
    labels[nodes] = roots
    return labels


def verify_edges(e: np.ndarray, threshold: float, verify: str, *, sig=None, hasher=None, texts=None) -> np.ndarray:
    if verify == "none" or len(e) == 0:
        return e
    if verify == "signature":
        return e[sig_similarity(sig[e[:, 0]], sig[e[:, 1]]) >= threshold]
    if verify == "jaccard":
        idx = np.unique(e)
        sets = dict(zip(idx.tolist(), shingle_sets(hasher, [texts[i] for i in idx])))
        ok = [exact_jaccard(sets[a], sets[b]) >= threshold for a, b in e.tolist()]
        return e[np.asarray(ok, bool)]
    raise ValueError(f"verify must be none|signature|jaccard, got {verify!r}")
