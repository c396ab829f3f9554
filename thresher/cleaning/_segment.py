"""jieba's precise mode without HMM (``jieba.lcut(text, HMM=False)``), minus the overhead.

The word-level quality signals need every token of every document, and jieba's own
``get_DAG`` + ``calc`` build a dict of lists and run a generator per character.  This
module fuses both into one backward loop over the same prefix dictionary (``jieba.dt.FREQ``)
with the same scores and the same tie-breaking (max over ``(score, end)``), and then
applies jieba's block splitting and single-letter gluing unchanged, so the output is
identical to jieba's (tested against ``jieba.lcut`` in tests/cleaning).  Whitespace
tokens are dropped, as the quality rules never use them.

Log-probabilities are cached per word on first use: the vocabulary a corpus touches is
a small part of jieba's 350k entries, so this costs little memory.
"""
from __future__ import annotations

import re
from math import log

# the regexes of jieba 0.42 (jieba/__init__.py): Han/alnum blocks, whitespace, one ASCII alnum
_RE_HAN = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)", re.U)
_RE_SKIP = re.compile("(\r\n|\\s)", re.U)
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class Segmenter:
    """``lcut(text)`` == ``[w for w in jieba.lcut(text, HMM=False) if not w.isspace()]``."""

    def __init__(self):
        import jieba
        jieba.setLogLevel(60)
        jieba.initialize()
        self._freq = jieba.dt.FREQ
        self._logtotal = log(jieba.dt.total)
        self._lp: dict[str, float] = {}

    def _logp(self, word: str, f: int) -> float:
        # jieba: log(FREQ.get(word) or 1) - logtotal
        v = self._lp[word] = log(f or 1) - self._logtotal
        return v

    def _block(self, s: str, out: list[str]) -> None:
        """Max-probability path over the dictionary DAG of one Han/alnum block."""
        n = len(s)
        freq = self._freq
        lp = self._lp
        logtotal = self._logtotal
        score = [0.0] * (n + 1)
        end = [0] * (n + 1)
        for k in range(n - 1, -1, -1):
            best = None
            best_x = k
            i = k
            frag = s[k]
            found = False
            while i < n:
                f = freq.get(frag)
                if f is None:
                    break
                if f:
                    found = True
                    v = lp.get(frag)
                    if v is None:
                        v = self._logp(frag, f)
                    cand = v + score[i + 1]
                    # jieba's max((score, x)): higher score wins, ties go to the longer word
                    if best is None or cand > best or (cand == best and i > best_x):
                        best, best_x = cand, i
                i += 1
                frag = s[k:i + 1]
            if not found:  # no dictionary word starts here: the single character, freq 1
                best, best_x = (0.0 - logtotal) + score[k + 1], k
            score[k] = best
            end[k] = best_x
        x = 0
        buf = ""
        while x < n:
            y = end[x] + 1
            w = s[x:y]
            if y - x == 1 and w in _ASCII_ALNUM:
                buf += w
            else:
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(w)
            x = y
        if buf:
            out.append(buf)

    def lcut(self, text: str) -> list[str]:
        out: list[str] = []
        for blk in _RE_HAN.split(text):
            if not blk:
                continue
            if _RE_HAN.match(blk):
                self._block(blk, out)
            else:
                # non-Han runs: jieba yields whitespace pieces and every other character alone
                out.extend(c for c in blk if not c.isspace())
        return out
