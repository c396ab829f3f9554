"""Character classes and small text helpers shared by the cleaning rules.

Everything here is compiled once at import time: rules call these per record, so
they must not build regexes or tables on the hot path.
"""
from __future__ import annotations

import re
from functools import lru_cache

# CJK unified ideographs (+ ext. A and compatibility ideographs); the ranges Chinese
# text actually uses.  Extension B+ is astral and rare enough to leave out.
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{CJK_RANGES}]")
NOT_CJK_RE = re.compile(f"[^{CJK_RANGES}]+")
# CJK punctuation and full-width forms that sit inside Chinese text
CJK_PUNCT = "，。、；：？！“”‘’（）《》〈〉【】「」『』〔〕…—～·￥"
LATIN_RE = re.compile(r"[A-Za-z]")
WS_RE = re.compile(r"\s+")
# Punctuation in general (ASCII + CJK); used for "does this text have punctuation"
PUNCT_CHARS = CJK_PUNCT + r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""
PUNCT_RE = re.compile("[" + re.escape(PUNCT_CHARS) + "]")
# Sentence-ending marks (closing quotes/brackets after them are allowed)
TERMINAL = "。！？!?.…；;"
CLOSERS = "”’\"'」』）)】》"
LINE_END_RE = re.compile(f"[{re.escape(TERMINAL)}][{re.escape(CLOSERS)}]*\\s*$")
# "normal" characters for the special-character ratio: CJK, letters, digits,
# whitespace, common punctuation.  Anything else (emoji, box drawing, symbols,
# private use, stray combining marks) is special.
# letters and digits of every script are text (a Greek or Russian answer is not "special
# characters"); what is left is symbols, emoji, box drawing, stray combining marks
SPECIAL_RE = re.compile("[^" + CJK_RANGES + r"\w\s" + re.escape(PUNCT_CHARS) + "]")
# sentence split for head/tail scanning: after terminal marks, or at newlines
SENT_SPLIT_RE = re.compile(r"(?<=[。！？!?；;])|\n")


def count_chars(regex: re.Pattern, text: str) -> int:
    """How many characters a single-character class matches (done in C via sub)."""
    return len(text) - len(regex.sub("", text))


_WS_ONE = re.compile(r"\s")


def cjk_count(text: str) -> int:
    return len(text) - len(CJK_RE.sub("", text))


def nonspace_len(text: str) -> int:
    return len(_WS_ONE.sub("", text))


@lru_cache(maxsize=1)
def common_hanzi() -> frozenset[str]:
    """GB2312 hanzi (6763 chars, levels 1+2) plus Big5's frequently used level 1 (5401 chars):
    what ordinary Simplified *and* Traditional text is made of.

    Decoded from the code tables themselves, so no data file ships.  Mojibake (UTF-8 read
    as GBK, or the reverse) is dominated by characters outside both sets; Traditional text
    (MOSS and ShareGPT-zh answers in 繁體) is not mojibake.
    """
    chars = []
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    for hi in range(0xA4, 0xC7):  # Big5 level 1: A440-C67E
        for lo in list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF)):
            if (hi, lo) > (0xC6, 0x7E):
                break
            try:
                chars.append(bytes((hi, lo)).decode("big5"))
            except UnicodeDecodeError:
                pass
    return frozenset(chars)


@lru_cache(maxsize=1)
def uncommon_cjk_re() -> re.Pattern:
    """CJK ideographs in neither GB2312 nor Big5 level 1 (rare characters)."""
    common = common_hanzi()
    # build ranges of uncommon code points inside the CJK block
    ranges = []
    start = None
    for cp in list(range(0x4E00, 0xA000)) + [0xA000]:
        unc = cp < 0xA000 and chr(cp) not in common
        if unc and start is None:
            start = cp
        elif not unc and start is not None:
            ranges.append((start, cp - 1))
            start = None
    body = "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)
    return re.compile(f"[{body}\u3400-\u4dbf\uf900-\ufaff]")
