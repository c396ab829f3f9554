"""Text units: how a plain ``.txt`` input is cut into documents.

A recipe input entry picks one with ``unit:`` (``text_unit:`` is the older spelling)::

    - path: books/*.txt
      unit: chapter        # line | paragraph | blank_line | chapter | file

* ``line``: one document per line (web dumps, CLUECorpusSmall: the reader streams these).
* ``paragraph``: a new document at a blank line or an indented line (``　　`` / spaces /
  tab); other lines continue the paragraph (hard-wrapped e-text).
* ``blank_line``: documents separated by one or more blank lines.
* ``chapter``: a new document at each heading line (第X章/回/卷/节, Chapter N, 序言...); text
  before the first heading is its own document.  Book text is then judged as documents,
  not as 50-character lines cut out of the middle of a chapter (issue 11: web-page rules
  removed 32-50% of a novel's paragraphs when read per line).
* ``file``: the whole file is one document.

:func:`split_units` returns ``(char_offset, text)`` pieces; blank pieces are dropped
(every input character still belongs to exactly one piece or to a blank gap).
"""
from __future__ import annotations

import re

UNITS = ("line", "paragraph", "blank_line", "chapter", "file")

_BLANK = re.compile(r"\n[ \t\u3000\r]*\n")
_INDENT = re.compile(r"^[ \t\u3000]+\S")
_NUM = r"[一二三四五六七八九十百千零〇两\d]+"
# a heading line: short, and opens with a chapter marker or is a known front-matter title
CHAPTER_RE = re.compile(
    rf"^[ \t\u3000]*(?:第\s*{_NUM}\s*[章回卷节篇部集]|chapter\s+[\dIVXLC]+\b|"
    r"(?:序言|序章|楔子|引子|前言|后记|尾声|番外|目录)\s*$|正文\s)", re.I)
_HEADING_MAX = 40


def is_heading(line: str) -> bool:
    return len(line.strip()) <= _HEADING_MAX and bool(CHAPTER_RE.match(line))


def split_units(text: str, unit: str) -> list[tuple[int, str]]:
    if unit not in UNITS:
        raise ValueError(f"unknown text unit {unit!r}; known: {', '.join(UNITS)}")
    if unit == "file":
        return [(0, text)] if text.strip() else []
    if unit == "blank_line":
        return _pieces(text, [m.end() for m in _BLANK.finditer(text)])
    starts = []
    pos = 0
    prev_blank = True
    for line in text.splitlines(keepends=True):
        blank = not line.strip()
        if not blank and (unit == "line" or prev_blank or (unit == "paragraph" and _INDENT.match(line))
                          or (unit == "chapter" and is_heading(line))):
            starts.append(pos)
        if unit == "chapter":
            prev_blank = False  # chapters run over blank lines; only headings start one
        else:
            prev_blank = blank
        pos += len(line)
    if unit == "chapter" and (not starts or starts[0] != 0):
        starts.insert(0, 0)
    pieces = _pieces(text, starts)
    return _merge_titles(pieces) if unit == "chapter" else pieces


def _merge_titles(pieces: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """A piece of heading lines only (a book title, 第二章 right before 第一节) introduces
    the next piece: it joins it instead of becoming a document of its own."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for off, piece in pieces:
        if pending is not None:
            off, piece = pending[0], pending[1] + "\n" + piece
            pending = None
        lines = piece.splitlines()
        if all(is_heading(ln) for ln in lines) or (len(lines) == 1 and len(piece) <= _HEADING_MAX):
            pending = (off, piece)
            continue
        out.append((off, piece))
    if pending is not None:
        out.append(pending)
    return out


def _pieces(text: str, cuts: list[int]) -> list[tuple[int, str]]:
    bounds = sorted({0, *cuts, len(text)})
    out = []
    for a, b in zip(bounds, bounds[1:]):
        piece = text[a:b].strip()
        if piece:
            out.append((a, piece))
    return out


def iter_units(text: str, unit: str, codec: str = "utf-8"):
    """``(byte_offset, piece)`` for each unit: offsets in the file's own encoding, so a
    record's origin points at the bytes it came from (incremental: linear in the text)."""
    last = nbytes = 0
    for off, piece in split_units(text, unit):
        nbytes += len(text[last:off].encode(codec, "surrogatepass"))
        last = off
        yield nbytes, piece
