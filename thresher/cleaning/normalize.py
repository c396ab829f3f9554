"""Normalisers: stages that change text and never drop a record.

Each is a map stage whose ``process`` runs ``record.map_text(fn)``; ``fn`` is a pure
str -> str built once per worker in ``setup`` (translate tables and compiled regexes),
with a cheap "is there anything to do" test first so clean text costs one scan.
Counters: ``touched`` (records changed) and ``chars_removed`` (net length drop).

Do no harm: with ``protect_structure`` (the default) a normaliser never sees code (fenced
blocks, inline code, unfenced code lines), LaTeX or markup-only lines; they are hidden and
restored verbatim (:mod:`.structure`), and line-start Markdown (headings, list markers,
indentation) is kept by the rules themselves.
"""
from __future__ import annotations

import html
import re
from ..pipeline import COUNT, POSITIVE, Stage, one_of, register, text
from ..records import Record
from ._text import CJK_PUNCT, CJK_RANGES
from .structure import apply_outside


class Normalizer(Stage):
    """Base: subclasses implement ``fn(text) -> text``; bookkeeping lives here."""
    base_defaults = {"protect_structure": True}
    # protect only code (fences, inline code): for stages whose job includes markup lines
    code_only_protection = False

    def fn(self, text: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def text_fn(self, record: Record):
        """The str -> str function applied to every text field of ``record``."""
        if not getattr(self, "protect_structure", False):  # stages that declare no such parameter
            return self.fn
        fn, code_only = self.fn, self.code_only_protection
        return lambda t: apply_outside(t, fn, code_only)

    def process(self, record: Record) -> Record:
        before = after = 0
        changed = False
        fn = self.text_fn(record)

        def wrapped(t: str) -> str:
            nonlocal before, after, changed
            out = fn(t)
            if out != t:
                changed = True
                before += len(t)
                after += len(out)
            return out

        record.map_text(wrapped)
        if changed:
            self.count("touched")
            if before > after:
                self.count("chars_removed", before - after)
        return record


# ---------------------------------------------------------------------------
def _fullwidth_table(symbols: bool) -> dict[int, str]:
    table = {}
    for cp in range(0xFF10, 0xFF1A):  # ０-９
        table[cp] = chr(cp - 0xFEE0)
    for cp in list(range(0xFF21, 0xFF3B)) + list(range(0xFF41, 0xFF5B)):  # Ａ-Ｚ ａ-ｚ
        table[cp] = chr(cp - 0xFEE0)
    if symbols:
        # symbols that are not Chinese punctuation; ，。：；！？（） etc. stay full-width
        for ch in "％＋＝＠＃＄＆＊／＜＞＿｜＾｀＼":
            table[ord(ch)] = chr(ord(ch) - 0xFEE0)
    table[0x3000] = " "  # ideographic space; whitespace_normalizer decides what to keep
    return table


@register("fullwidth_normalizer")
class FullwidthNormalizer(Normalizer):
    """Full-width letters/digits (and a few symbols) -> ASCII; CJK punctuation kept."""
    defaults = {**Normalizer.base_defaults, "symbols": True}

    def setup(self, ctx) -> None:
        self._table = _fullwidth_table(self.symbols)
        self._probe = re.compile("[" + "".join(re.escape(chr(c)) for c in self._table) + "]")

    def fn(self, text: str) -> str:
        if not self._probe.search(text):
            return text
        return text.translate(self._table)


# ---------------------------------------------------------------------------
def _numeral_table() -> dict[int, str]:
    t: dict[int, str] = {}
    for i in range(20):
        t[0x2460 + i] = str(i + 1)  # ①..⑳ -> 1..20
        t[0x2474 + i] = f"({i + 1})"  # ⑴..⒇ -> (1)..(20)
        t[0x2488 + i] = f"{i + 1}."  # ⒈..⒛ -> 1...20.
    for i in range(10):
        t[0x2776 + i] = str(i + 1)  # ❶..❿
        t[0x2780 + i] = str(i + 1)  # ➀..➉
        t[0x278A + i] = str(i + 1)  # ➊..➓
    for i in range(11, 21):
        t[0x24EB + i - 11] = str(i)  # ⓫..⓴
    t[0x24EA] = "0"  # ⓪
    return t


@register("numeral_normalizer")
class NumeralNormalizer(Normalizer):
    """Circled / parenthesised / full-stop numerals to ASCII digits (①->1, ⑴->(1), ⒈->1.)."""
    defaults = dict(Normalizer.base_defaults)

    def setup(self, ctx) -> None:
        self._table = _numeral_table()
        self._probe = re.compile("[\u2460-\u24ff\u2776-\u2793]")

    def fn(self, text: str) -> str:
        if not self._probe.search(text):
            return text
        return text.translate(self._table)


# ---------------------------------------------------------------------------
# Cyrillic/Greek letters that render like Latin ones.  Only replaced inside a word
# that also has Latin letters, so real Russian or Greek text is left alone.
HOMOGLYPHS = {
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x",
    "і": "i", "ј": "j", "ѕ": "s", "Ѕ": "S", "І": "I", "Ј": "J",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o", "ν": "v", "α": "a",
}


@register("homoglyph_normalizer")
class HomoglyphNormalizer(Normalizer):
    """Look-alike Cyrillic/Greek letters inside Latin words -> Latin (spam evasion)."""
    defaults = dict(Normalizer.base_defaults)

    def setup(self, ctx) -> None:
        self._table = str.maketrans(HOMOGLYPHS)
        chars = "".join(HOMOGLYPHS)
        self._probe = re.compile(f"[{chars}]")
        # a "word" of Latin + look-alike letters that contains at least one of each
        self._word = re.compile(f"[A-Za-z{chars}]*(?:[A-Za-z][{chars}]|[{chars}][A-Za-z])[A-Za-z{chars}]*")

    def fn(self, text: str) -> str:
        if not self._probe.search(text):
            return text
        return self._word.sub(lambda m: m.group(0).translate(self._table), text)


# ---------------------------------------------------------------------------
INVISIBLE = ("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064"
             "\ufeff\u00ad\u180e\ufffc")
# control characters except \t and \n (\r is handled as a line break)
CONTROLS = "".join(chr(c) for c in list(range(0, 9)) + [11, 12] + list(range(14, 32)) + list(range(127, 160)))
# escape remnants of the same characters left by broken pipelines: <200b>, \u200b, &#8203;
_REMNANT_RE = re.compile(r"<(?:200[b-f]|202[a-e]|206[0-4]|feff|00ad)>|\\u(?:200[b-f]|feff)|&#(?:8203|8204|8205|65279);|&zwj;|&zwnj;",
                         re.I)


@register("invisible_char_remover")
class InvisibleCharRemover(Normalizer):
    """Remove zero-width, bidi, control characters and ``<200b>``-style remnants; CRLF -> LF."""
    defaults = dict(Normalizer.base_defaults)

    def setup(self, ctx) -> None:
        self._table = {ord(c): None for c in INVISIBLE + CONTROLS}
        self._table[ord("\r")] = "\n"
        self._table[0x2028] = "\n"
        self._table[0x2029] = "\n"
        self._probe = re.compile("[" + re.escape(INVISIBLE + CONTROLS) + "\r\u2028\u2029]|<[0-9a-fA-F]{4}>|\\\\u|&#|&z")

    def fn(self, text: str) -> str:
        if not self._probe.search(text):
            return text
        text = text.replace("\r\n", "\n")
        text = _REMNANT_RE.sub("", text)
        return text.translate(self._table)


# ---------------------------------------------------------------------------
_BLOCK_TAGS = ("p|div|br|li|ul|ol|h[1-6]|tr|table|section|article|header|footer|nav|aside|blockquote|pre|"
               "dd|dt|dl|title|hr|form|figure|figcaption|main|td|th")
# element names of HTML: only these are markup; <iostream>, <Props>, <T> are not
_HTML_NAMES = (
    "a|abbr|address|area|article|aside|audio|b|base|bdi|bdo|big|blockquote|body|br|button|canvas|caption|center|cite|"
    "code|col|colgroup|data|datalist|dd|del|details|dfn|dialog|div|dl|dt|em|embed|fieldset|figcaption|figure|font|"
    "footer|form|frame|frameset|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|kbd|label|legend|li|link|main|mark|"
    "marquee|meta|meter|nav|nobr|noscript|object|ol|optgroup|option|output|p|param|picture|pre|progress|q|rp|rt|ruby|"
    "s|samp|script|section|select|small|source|span|strike|strong|style|sub|summary|sup|svg|table|tbody|td|template|"
    "textarea|tfoot|th|thead|time|title|tr|track|tt|u|ul|var|video|wbr")
_DROP_RE = re.compile(r"<(script|style|noscript|template|svg|iframe|head)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<!\[CDATA\[.*?\]\]>",
                      re.S | re.I)
_BLOCK_RE = re.compile(rf"(?<![A-Za-z0-9_:])</?(?:{_BLOCK_TAGS})\b[^<>]*>", re.I)
# a tag right after an identifier is a generic type (List<String>, std::vector<int>), not markup
_TAG_RE = re.compile(rf"(?<![A-Za-z0-9_:])</?(?:{_HTML_NAMES})(?:\s[^<>]*)?/?>|<!DOCTYPE[^>]*>|<\?xml[^>]*\?>", re.I)
_HTML_PROBE = re.compile(r"</?[A-Za-z!][^<>\s]*(?:\s[^<>]*)?>|&(?:[A-Za-z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,5});")
_NL_RUN = re.compile(r"[ \t\u3000\xa0]*\n[ \t\u3000\xa0\n]*")
# residue mode (dialogue turns)
_TAG_PARTS = re.compile(rf"(?<![A-Za-z0-9_:<])<(/?)({_HTML_NAMES})(\s[^<>\n]*)?/?>", re.I)
_LINE_BREAK_TAGS = frozenset({"br", "hr"})
_VOID_RESIDUE = frozenset({"br", "hr", "img", "wbr"})
# "<table>标签" / "the <p> element" / "“<div>”": the text talks about the tag
_MENTION_AFTER = re.compile(r"\s*(?:标签|元素|节点|属性|tags?\b|elements?\b|[\"'”’」』])", re.I)
_ENTITY_RE = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|ensp|emsp|middot|hellip|mdash|ndash|ldquo|rdquo|lsquo|rsquo|"
                        r"#\d{2,6}|#x[0-9a-fA-F]{2,5});", re.I)


@register("html_stripper")
class HtmlStripper(Normalizer):
    """Strip HTML tags and entities that are page residue, keeping paragraph breaks.

    Pretraining text (``web`` mode): every HTML element tag goes, block tags become line
    breaks, ``<script>``/``<style>`` bodies are dropped; code spans stay.  Dialogue turns
    (``residue`` mode): an answer that *shows* markup teaches it, so only residue goes --
    ``<br>``/``<img>``, tags with attributes, and tags whose closing tag is also present --
    never a tag the text talks about (``<table>标签``), a generic (``vector<int>``), a line
    that is only markup (an HTML example) or anything inside code.  Regex-based on purpose:
    fast and tolerant of broken markup; for main-content extraction use html_content_extractor.
    """
    defaults = {**Normalizer.base_defaults, "drop_elements": True, "dialogue_mode": "residue"}
    rules = {"dialogue_mode": one_of("residue", "web", "off")}

    def text_fn(self, record: Record):
        mode = "web" if record.kind == "text" else self.dialogue_mode
        if mode == "off":
            return lambda t: t
        fn = self.fn if mode == "web" else self.residue_fn
        if not self.protect_structure:
            return fn
        return lambda t: apply_outside(t, fn, code_only=(mode == "web"))

    def fn(self, text: str) -> str:
        if not _HTML_PROBE.search(text):
            return text
        if "<" in text:
            if self.drop_elements:
                text = _DROP_RE.sub("\n", text)
            text = _BLOCK_RE.sub("\n", text)
            text = _TAG_RE.sub("", text)
        if "&" in text:
            text = html.unescape(text)
        # markup indentation leaves whitespace-only lines: fold them into one paragraph break
        text = _NL_RUN.sub(lambda m: "\n\n" if m.group(0).count("\n") > 1 else "\n", text)
        return text.strip()

    @staticmethod
    def residue_fn(text: str) -> str:
        if not _HTML_PROBE.search(text):
            return text
        if "<" in text:
            tags = list(_TAG_PARTS.finditer(text))
            closed = {m.group(2).lower() for m in tags if m.group(1)}
            opened = {m.group(2).lower() for m in tags if not m.group(1)}
            paired = closed & opened

            def strip(m: re.Match) -> str:
                name = m.group(2).lower()
                if _MENTION_AFTER.match(text, m.end()) or (m.start() and text[m.start() - 1] in "\"'“‘「『"):
                    return m.group(0)
                if name in _VOID_RESIDUE or name in paired or m.group(3):
                    return "\n" if name in _LINE_BREAK_TAGS else ""
                return m.group(0)
            text = _TAG_PARTS.sub(strip, text)
        if "&" in text:
            text = _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text)
        return text


# ---------------------------------------------------------------------------
@register("punctuation_collapser")
class PunctuationCollapser(Normalizer):
    """Collapse runs of the same punctuation mark (！！！ -> ！, ??? -> ?, ..... -> ...).

    Chinese marks collapse from ``min_run`` repeats; ASCII marks from ``ascii_min_run``
    (default 3) because two of them are syntax more often than emphasis: ``a ?? b``,
    ``for (;;)``, ``~~strike~~``.  Markdown markers (``-``, ``#``, ``*``, ``=``, backticks)
    and the Chinese dash —— are never touched; ellipses keep their conventional length
    (... and ……).
    """
    defaults = {**Normalizer.base_defaults, "marks": "，。！？、；：～!?", "min_run": 2, "ascii_min_run": 3}
    rules = {"min_run": POSITIVE, "ascii_min_run": POSITIVE}

    def setup(self, ctx) -> None:
        wide = re.escape("".join(c for c in self.marks if not c.isascii()))
        narrow = re.escape("".join(c for c in self.marks if c.isascii()))
        runs = []
        if wide:
            runs.append(f"([{wide}])\\1{{{max(2, self.min_run) - 1},}}")
        if narrow:
            runs.append(f"([{narrow}])\\{len(runs) + 1}{{{max(2, self.ascii_min_run) - 1},}}")
        self._run = re.compile("|".join(runs)) if runs else None
        self._dots = re.compile(r"\.{4,}")
        self._ell = re.compile("…{3,}")

    def fn(self, text: str) -> str:
        out = self._run.sub(lambda m: m.group(0)[0], text) if self._run else text
        if "...." in out:
            out = self._dots.sub("...", out)
        if "………" in out:
            out = self._ell.sub("……", out)
        return out


# ---------------------------------------------------------------------------
_CJK_OR_PUNCT = CJK_RANGES + re.escape(CJK_PUNCT)
_ODD_SPACE = "\\t\\u3000\\xa0\\u2000-\\u200a\\u202f\\u205f"


@register("whitespace_normalizer")
class WhitespaceNormalizer(Normalizer):
    """Remove spaces next to CJK characters, squeeze other space runs, keep line structure.

    A line's indentation is kept (nested Markdown lists, continuation lines) unless the line
    starts with Chinese text (the full-width paragraph indent 　　 of web pages); the space
    after a heading or list marker (``# 标题``, ``- 项``, ``1. 项``) is never removed because
    only spaces between CJK and a letter, digit or CJK character go.  Paragraph structure
    matters downstream (dup-line rules, chunking), so line breaks are kept; only runs of
    more than ``max_blank_lines`` blank lines are squeezed.
    """
    defaults = {**Normalizer.base_defaults, "cjk_latin_space": False, "max_blank_lines": 1}
    rules = {"max_blank_lines": COUNT}

    def setup(self, ctx) -> None:
        sp = f"[ {_ODD_SPACE}]"
        cjk = f"[{_CJK_OR_PUNCT}]"
        # inside a line: runs of spaces and odd spaces become one space (indentation untouched)
        # (not after '#': "#\t注释" / "#\u3000测试" must not turn into a Markdown heading)
        self._sp_run = re.compile(f"(?<=[^\\s#]){sp}{{2,}}|(?<=[^\\s#])[{_ODD_SPACE}]")
        self._cjk_indent = re.compile(f"^{sp}+(?={cjk})", re.M)
        self._trailing = re.compile(f"{sp}+$", re.M)
        if self.cjk_latin_space:  # keep "使用 Python 进行" spacing; only remove between two CJK
            self._cjk_sp = re.compile(f"(?<={cjk}) +(?={cjk})")
        else:
            self._cjk_sp = re.compile(f"(?<={cjk}) +(?=[{_CJK_OR_PUNCT}A-Za-z0-9])|(?<=[A-Za-z0-9]) +(?={cjk})")
        self._blank = re.compile("\\n{%d,}" % (self.max_blank_lines + 2))
        self._nl = "\n" * (self.max_blank_lines + 1)
        self._lead_blank = re.compile(f"\\A(?:{sp}*\\n)+")

    def fn(self, text: str) -> str:
        out = self._sp_run.sub(" ", text)
        if " " in out or "\u3000" in out or "\xa0" in out:
            out = self._cjk_indent.sub("", out)
            out = self._trailing.sub("", out)
            out = self._cjk_sp.sub("", out)
        if "\n\n\n" in out:
            out = self._blank.sub(self._nl, out)
        return self._lead_blank.sub("", out).rstrip()


# ---------------------------------------------------------------------------
@register("t2s_converter")
class T2SConverter(Normalizer):
    """Traditional -> Simplified Chinese with OpenCC (``t2s`` config).

    OpenCC's pure-Python port is slow, so a text is only converted when it contains a
    character that the t2s dictionary maps (one regex scan otherwise).
    """
    defaults = {**Normalizer.base_defaults, "config": "t2s"}
    rules = {"config": text}

    def setup(self, ctx) -> None:
        import opencc  # opencc-python-reimplemented
        self._cc = opencc.OpenCC(self.config)
        self._probe = _trad_probe(self.config)

    def fn(self, text: str) -> str:
        if self._probe and self._probe.isdisjoint(text):
            return text
        return self._cc.convert(text)


def _trad_probe(config: str) -> frozenset[str]:
    """Characters whose presence means t2s may change the text.

    A character counts when its first mapping differs from itself (覆 -> 覆 is not one);
    a phrase (乾隆, 反覆) adds its changed characters only when none of its characters is
    already a probe character, so 么 (changed only inside 么麼) does not send every
    什么 through OpenCC.  Checked with ``frozenset.isdisjoint(text)``: a C loop, far
    cheaper than a 4000-character regex class.
    """
    import os
    import opencc
    d = os.path.join(os.path.dirname(opencc.__file__), "dictionary")
    chars: set[str] = set()
    phrases: list[tuple[str, str]] = []
    for name in ("TSCharacters.txt", "TSPhrases.txt"):
        path = os.path.join(d, name)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                src, _, dst = line.rstrip("\n").partition("\t")
                first = dst.split(" ")[0]
                if name == "TSCharacters.txt":
                    if len(src) == 1 and first != src:
                        chars.add(src)
                elif first != src:
                    phrases.append((src, first))
    for src, dst in phrases:
        if chars.isdisjoint(src):
            chars.update(a for a, b in zip(src, dst) if a != b)
    if not chars:  # unknown layout: always convert
        return frozenset()
    return frozenset(chars)

