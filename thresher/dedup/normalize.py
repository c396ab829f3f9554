"""Text normalisation for dedup *keys* (the stored text is never changed).

Folds what should not make two texts different: full/half width (NFKC), case,
whitespace runs, Chinese/Western punctuation variants, and optionally Traditional
to Simplified Chinese (opencc, imported lazily).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WS = re.compile(r"\s+")
# punctuation variants that NFKC leaves distinct: CJK quotes, brackets, dashes, dots
_PUNCT_FOLD = str.maketrans({
    "“": '"', "”": '"', "„": '"', "‟": '"', "「": '"', "」": '"', "『": '"', "』": '"',
    "‘": "'", "’": "'", "‚": "'", "‛": "'",
    "【": "[", "】": "]", "〔": "(", "〕": ")", "《": "<", "》": ">", "〈": "<", "〉": ">",
    "。": ".", "、": ",", "，": ",", "；": ";", "：": ":", "？": "?", "！": "!",
    "—": "-", "–": "-", "―": "-", "－": "-", "…": "...", "·": ".", "・": ".",
    "～": "~", "〜": "~",
})
# for keys that should ignore punctuation entirely (P* and S* categories)
_ALL_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


@lru_cache(maxsize=1)
def _t2s():
    import opencc  # opencc-python-reimplemented; only needed with t2s=True
    return opencc.OpenCC("t2s")


def normalize_key(text: str, *, t2s: bool = False, drop_punct: bool = False, lower: bool = True) -> str:
    """Canonical form of ``text`` for hashing: two texts that differ only in width,
    case, whitespace or punctuation variants get the same key."""
    t = unicodedata.normalize("NFKC", text)
    t = t.translate(_PUNCT_FOLD)
    if lower:
        t = t.lower()
    if t2s:
        t = _t2s().convert(t)
    if drop_punct:
        t = _ALL_PUNCT.sub("", t)
    return _WS.sub(" ", t).strip()
