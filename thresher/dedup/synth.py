"""Synthetic near-duplicates for tests, eval-dedup and benchmarks: random character
insertions / deletions / substitutions at an edit rate, sentence shuffles, and
unrelated negatives (optionally sharing a common phrase)."""
from __future__ import annotations

import random
import re

_SENT = re.compile(r"(?<=[。！？!?；;])")


def mutate(text: str, rate: float, rng: random.Random, alphabet: str | None = None) -> str:
    """``round(rate * len)`` edits, each an insertion, deletion or substitution."""
    chars = list(text)
    alphabet = alphabet or text or "的"
    for _ in range(round(rate * len(chars))):
        op = rng.randrange(3)
        i = rng.randrange(len(chars) + (op == 0)) if chars else 0
        if op == 0 or not chars:
            chars.insert(i, rng.choice(alphabet))
        elif op == 1:
            del chars[i]
        else:
            chars[i] = rng.choice(alphabet)
    return "".join(chars)


def shuffle_sentences(text: str, rng: random.Random) -> str:
    parts = [p for p in _SENT.split(text) if p]
    rng.shuffle(parts)
    return "".join(parts)


def near_duplicate(text: str, rate: float, rng: random.Random, alphabet: str, shuffle: bool = False) -> str:
    out = mutate(text, rate, rng, alphabet)
    return shuffle_sentences(out, rng) if shuffle else out


def labelled_pairs(docs: list[str], rates: list[float], n_per_rate: int, seed: int = 0,
                   shuffle_fraction: float = 0.25) -> list[tuple[str, str, int, str]]:
    """Per edit rate: ``n_per_rate`` positives (doc, edited copy; a fraction also
    sentence-shuffled) and as many negatives (two unrelated docs, one edited alike)."""
    rng = random.Random(seed)
    alphabet = "".join(sorted(set("".join(docs[:200]))))
    rows = []
    for rate in rates:
        for _ in range(n_per_rate):
            a = rng.choice(docs)
            rows.append((a, near_duplicate(a, rate, rng, alphabet, rng.random() < shuffle_fraction), 1, f"{rate:g}"))
            b, c = rng.sample(docs, 2)
            rows.append((b, near_duplicate(c, rate, rng, alphabet), 0, f"{rate:g}"))
    return rows


def dup_corpus(docs: list[str], copies: int, rate: float, seed: int = 0) -> tuple[list[str], list[int]]:
    """Every doc plus ``copies`` edited copies, shuffled; returns texts and true cluster ids."""
    rng = random.Random(seed)
    alphabet = "".join(sorted(set("".join(docs[:200]))))
    items = []
    for i, d in enumerate(docs):
        items.append((d, i))
        items += [(near_duplicate(d, rate, rng, alphabet), i) for _ in range(copies)]
    rng.shuffle(items)
    return [t for t, _ in items], [c for _, c in items]
