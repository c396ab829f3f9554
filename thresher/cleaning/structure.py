"""Structure a normaliser must never change: code, LaTeX, and the lines that look like code.

SFT answers carry fenced code (```` ``` ```` / ``~~~``), inline code spans, unfenced code
lines (indented, ``#include``/``def``/``return``..., lines ending in ``;`` or ``{``), and LaTeX
(``$$…$$``, ``\\[…\\]``, ``\\(…\\)``, ``\\begin{…}…\\end{…}``, ``$…$``).  A normaliser that
squeezes spaces or strips "tags" there corrupts the very thing the answer teaches.

:func:`apply_outside` hides every protected span behind a private-use placeholder, runs
the normaliser on the rest, and puts the spans back byte for byte.  If the normaliser
lost or moved a placeholder (it matched across one), the text is returned unchanged:
doing nothing is always safe, corrupting code is not.
"""
from __future__ import annotations

import re
from typing import Callable

_FENCE = r"(?P<fence>`{3,}).*?(?:(?P=fence)`*|\Z)|^[ \t]*(?P<tilde>~{3,})[^\n]*\n.*?(?:^[ \t]*(?P=tilde)~*[ \t]*$|\Z)"
_LATEX = (r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\\begin\{(?P<env>[A-Za-z*]+)\}.*?\\end\{(?P=env)\}"
          r"|(?<![\\$\w])\$(?=\S)[^$\n]{1,200}?(?<=\S)\$(?!\w)")
_INLINE_CODE = r"(?P<tick>`{1,2})(?=[^`\n])[^\n]*?[^`\n](?P=tick)(?!`)"
_KEYWORD_LINE = (r"(?:#include|#define|#!|import |from [\w.]+ import|def |class \w|public |private |protected |static |"
                 r"function\b|const |let |var |package |using |namespace |return\b|if ?\(|for ?\(|while ?\(|"
                 r"else\b|elif |try:|except\b|catch ?\(|switch ?\(|case .*:|SELECT |INSERT |UPDATE |CREATE |"
                 r"print\(|printf\(|console\.|System\.|std::|@\w+|\$ |>>> |[}\])]+[;,]?\s*$|\{\s*$|"
                 r"(?:for|while|if|elif|with|async|else|try|finally) [^\n]*:\s*$)")
# a line that is code: indented and starting with an ASCII symbol/letter, a code keyword, or an
# ASCII line ending in ; or {
_CODE_LINE = (rf"^(?:(?:\t| {{2,}})[\x21-\x7e][^\n]*|{_KEYWORD_LINE}[^\n]*|[\x20-\x7e]*[;{{]\s*)$\n?")
# a line that is only markup (<div class="x">, </ul>) is an HTML example, not residue in prose
_TAG_LINE = r"^[ \t]*(?:</?[A-Za-z][\w:-]*(?:\s[^<>\n]*)?/?>\s*)+$\n?"

_FULL = re.compile("|".join([_FENCE, _LATEX, _INLINE_CODE, _CODE_LINE, _TAG_LINE]), re.M | re.S)
_CODE_ONLY = re.compile("|".join([_FENCE, _INLINE_CODE]), re.M | re.S)
# cheap test: nothing a protected span can start with
_PROBE = re.compile(r"[`$~\\]|^(?:\t| {2})|[;{]\s*$|^[ \t]*<|^(?:#|import |from |def |class |return|public |"
                    r"private |function|const |let |var |print|console|SELECT|if ?\(|for ?\(|while)", re.M)
_PUA = re.compile("[\ue000-\uf8ff]")
_PUA_BASE = 0xE000
_PUA_MAX = 0xF8FF - _PUA_BASE


def protected_spans(text: str, code_only: bool = False) -> list[tuple[int, int]]:
    """(start, end) of every span to leave alone, in order and non-overlapping."""
    if not code_only and not _PROBE.search(text):
        return []
    if code_only and "`" not in text and "~~~" not in text:
        return []
    pat = _CODE_ONLY if code_only else _FULL
    return [(m.start(), m.end()) for m in pat.finditer(text) if m.end() > m.start()]


def apply_outside(text: str, fn: Callable[[str], str], code_only: bool = False) -> str:
    """``fn`` applied to ``text`` with every protected span hidden and restored verbatim."""
    spans = protected_spans(text, code_only)
    if not spans:
        return fn(text)
    if len(spans) > _PUA_MAX or _PUA.search(text):
        return _apply_per_piece(text, spans, fn)
    parts, pieces, pos = [], [], 0
    for i, (s, e) in enumerate(spans):
        parts.append(text[pos:s])
        parts.append(chr(_PUA_BASE + i))
        pieces.append(text[s:e])
        pos = e
    parts.append(text[pos:])
    masked = "".join(parts)
    out = fn(masked)
    if out == masked:
        return text
    return _restore(out, pieces) or text


def _restore(out: str, pieces: list[str]) -> str | None:
    found = _PUA.findall(out)
    if len(found) != len(pieces) or any(ord(c) - _PUA_BASE != i for i, c in enumerate(found)):
        return None  # the normaliser ate or reordered a span: keep the input
    return _PUA.sub(lambda m: pieces[ord(m.group(0)) - _PUA_BASE], out)


def _apply_per_piece(text: str, spans: list[tuple[int, int]], fn: Callable[[str], str]) -> str:
    """Fallback when placeholders cannot be used (text already holds private-use characters)."""
    out, pos = [], 0
    for s, e in spans:
        out.append(fn(text[pos:s]) if s > pos else "")
        out.append(text[s:e])
        pos = e
    out.append(fn(text[pos:]) if pos < len(text) else "")
    return "".join(out)


def strip_protected(text: str) -> str:
    """``text`` with every protected span replaced by a line break: the prose a repetition or
    special-character rule should judge (code and markup repeat by syntax, not by degeneration)."""
    spans = protected_spans(text)
    if not spans:
        return text
    out, pos = [], 0
    for s, e in spans:
        out.append(text[pos:s])
        out.append("\n")
        pos = e
    out.append(text[pos:])
    return "".join(out)


# --- structure fingerprint, for tests and the structure benchmark ----------------------------
_FENCED_BLOCK = re.compile(_FENCE, re.M | re.S)
_HEADING = re.compile(r"^#{1,6} ", re.M)


def fenced_blocks(text: str) -> list[str]:
    return [m.group(0) for m in _FENCED_BLOCK.finditer(text)]


def structure(text: str) -> dict:
    """What a normaliser must keep: fenced blocks verbatim, heading markers, code indentation."""
    blocks = fenced_blocks(text)
    indents = [len(ln) - len(ln.lstrip(" \t")) for b in blocks for ln in b.split("\n")]
    return {"fences": blocks, "headings": len(_HEADING.findall(text)), "code_indents": indents}
