"""The fused document-quality filter for Chinese (and mixed zh/en) text.

One stage measures many heuristic signals in one pass over a document -- length,
CJK ratio, jieba word statistics, punctuation, special characters, duplicate
lines/paragraphs, Gopher-style n-gram repetition, table-of-contents and table-like
pages, mojibake, garbled zh/en switching, line length, stop words -- and stores them
all in ``record.signals()["quality"]``.  Each signal has its own threshold parameter
(``None`` disables the check and, for expensive ones, the measurement); the record
is rejected with the reason of the first failing check and every failing reason is
listed in the rejection's ``failed`` field, so a user can re-tier without re-running.

Fusing matters for speed: the jieba segmentation and the line split are shared by a
dozen rules instead of being recomputed by a dozen stages.

SFT/DPO records are measured per turn: length is taken over the whole conversation
and the repetition / special-character / mojibake signals over each judged turn
(``sft_roles``: the answers by default, not the user's request) with at least
``sft_min_turn_chars`` characters, aggregated as the worst turn; a failing turn is
handled by ``on_turn_failure`` (cleaning/turns.py).  Document-only rules (line
punctuation, stop words, newline ratio, word counts, ToC) do not apply to dialogue turns.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from ..pipeline import COUNT, POSITIVE, RATIO, Stage, each, items, one_of, register, text
from ..records import Record
from ._segment import Segmenter
from .structure import strip_protected
from .turns import ANSWER_ROLES, TURN_POLICIES, apply_turn_failures, judged_turns
from ._text import (CJK_RANGES, CLOSERS, LATIN_RE, PUNCT_CHARS, SPECIAL_RE, TERMINAL, cjk_count, count_chars,
                    nonspace_len, uncommon_cjk_re)

_LINE_SPLIT = re.compile(r"\n+")
_PARA_SPLIT = re.compile(r"\n\s*\n+")
_PUNCT_ANY = re.compile("[" + re.escape(PUNCT_CHARS) + "]")
_ENDS = tuple(TERMINAL)
_CLOSERS = CLOSERS + " \t"
_TOC_RE = re.compile(r"^\s*(?:第\s*[一二三四五六七八九十百千零〇两\d]+\s*[章节回卷篇部集讲课]|chapter\s+[\dIVXLC]+\b|"
                     r"\d+(?:\.\d+)+\s|目\s*录\s*$|contents\s*$)|(?:[.．。…·]{3,}|\s{2,})\s*\d+\s*$", re.I)
_FIELD_SPLIT = re.compile(r"[\t|｜]+|\s{2,}|\n")
_SCRIPT_RUNS = re.compile(f"[{CJK_RANGES}]+|[A-Za-z]+")
# UTF-8 bytes decoded as latin-1/cp1252: a lead byte char followed by a continuation-byte char
_LATIN1_MOJI = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
                          "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
_UNCOMMON = None
_OPTION_MARK = re.compile(r"(?m)^[ \t]*[A-Za-z][.．、)）:：]")

# FineWeb-2 cmn_Hani stop words (huggingface/fineweb-2 configs/cmn_Hani.yml)
FW2_CMN_STOPWORDS = ["的", "年", "在", "月", "是", "和", "日", "了", "於", "·", "為", "有", "被", "人", "中", "为",
                     "他", "與", "後", "也", "而", "由"]
# t2s_converter turns the list's 於 與 後 into 于 与 后: their Simplified forms count too [ours]
ZH_STOPWORDS = FW2_CMN_STOPWORDS + ["于", "与", "后"]


def _dup_stats(items: list[str]) -> tuple[int, int]:
    """(number of duplicate items, characters in duplicate items): Gopher's definition."""
    seen: set[str] = set()
    dups = dup_chars = 0
    for it in items:
        if it in seen:
            dups += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return dups, dup_chars


def top_ngram_chars(words: list[str], n: int, grams: list | None = None) -> int:
    """Characters covered by the most frequent word n-gram (count x length)."""
    if len(words) < n:
        return 0
    if grams is None:
        grams = list(zip(*[words[i:] for i in range(n)]))
    gram, cnt = Counter(grams).most_common(1)[0]
    if cnt < 2:
        return 0
    return cnt * (sum(len(w) for w in gram) + n - 1)


def dup_ngram_chars(words: list[str], n: int, grams: list | None = None) -> int:
    """Characters in repeated word n-grams, scanning left to right and jumping over a
    repeat (Gopher / datatrove ``find_all_duplicate`` semantics)."""
    nw = len(words)
    if nw < 2 * n:
        return 0
    if grams is None:
        grams = list(zip(*[words[i:] for i in range(n)]))
    if len(set(grams)) == len(grams):  # no n-gram occurs twice: skip the Python scan
        return 0
    seen: set = set()
    rep = 0
    i = 0
    last = nw - n + 1
    while i < last:
        g = grams[i]
        if g in seen:
            rep += sum(len(w) for w in g)
            i += n
        else:
            seen.add(g)
            i += 1
    return rep


# word -> (no letter/digit, has a letter/ideograph, symbol junk): jieba output repeats a small
# vocabulary, so classifying each distinct word once per process beats a Python call per token
_WORD_FLAGS: dict[str, tuple[bool, bool, bool]] = {}
_WORD_FLAGS_MAX = 500_000


def _word_flags(w: str) -> tuple[bool, bool, bool]:
    f = _WORD_FLAGS.get(w)
    if f is None:
        if len(_WORD_FLAGS) >= _WORD_FLAGS_MAX:
            _WORD_FLAGS.clear()
        p = _is_punct(w)
        f = _WORD_FLAGS[w] = (p, _has_alpha(w), p and _is_symbol_junk(w))
    return f


@register("zh_quality_filter")
class ZhQualityFilter(Stage):
    version = "1"
    defaults = {
        # length (characters / jieba words)
        "min_chars": 50, "max_chars": 500000, "min_words": None, "max_words": 100000,
        # script
        "min_cjk_ratio": 0.3,
        # Gopher word statistics
        "min_avg_word_len": 1.0, "max_avg_word_len": 5.0, "min_alpha_word_ratio": 0.735,
        # punctuation
        "min_punct": 1, "min_line_punct_ratio": 0.106, "max_special_ratio": 0.25, "max_newline_ratio": 0.178,
        # repetition
        "max_dup_line_frac": 0.287, "max_dup_para_frac": 0.3, "max_dup_line_char_frac": 0.1,
        "top_ngrams": [[2, 0.256], [3, 0.201], [4, 0.171]],
        "dup_ngrams": [[5, 0.198], [6, 0.182], [7, 0.167], [8, 0.154], [9, 0.14], [10, 0.127]],
        # page types
        "max_toc_ratio": 0.5, "max_short_field_ratio": 0.7, "min_fields_for_table": 12,
        # encoding damage / garbage
        "min_common_char_ratio": 0.9, "max_latin1_mojibake": 0.5, "max_garbled_islands": 8.0,
        "min_avg_line_len": 10.0, "min_lines_for_line_rules": 3, "min_stopwords": 2, "stopwords": list(ZH_STOPWORDS),
        "min_repetition_words": None, "min_stopword_words": None,
        # SFT/DPO: judged turns, minimum turn length for any signal / for repetition ratios,
        # and what a failing turn does (reject | truncate | drop_pair, see cleaning/turns.py)
        "sft_min_turn_chars": 30, "sft_min_repetition_chars": 200, "sft_roles": list(ANSWER_ROLES),
        "on_turn_failure": "reject",
    }
    # shares and fractions in [0, 1], every other min_/max_ number >= 0
    rules = {**{k: RATIO if k.endswith(("_ratio", "_frac", "_share")) else COUNT for k in defaults
                if k.startswith(("min_", "max_", "sft_min_"))},
             "top_ngrams": each(items(POSITIVE, RATIO)), "dup_ngrams": each(items(POSITIVE, RATIO)),
             "stopwords": each(text), "sft_roles": each(text), "on_turn_failure": one_of(*TURN_POLICIES)}

    def setup(self, ctx) -> None:
        global _UNCOMMON
        if _UNCOMMON is None:
            _UNCOMMON = uncommon_cjk_re()
        self._uncommon = _UNCOMMON
        self._stop = frozenset(self.stopwords)
        self._stop_chars = (re.compile("[" + re.escape("".join(self.stopwords)) + "]")
                            if all(len(w) == 1 for w in self.stopwords) and self.stopwords else None)
        self._need_words = any(self.params.get(k) is not None for k in (
            "min_words", "max_words", "min_avg_word_len", "max_avg_word_len", "min_alpha_word_ratio",
            "max_newline_ratio")) or bool(self.top_ngrams) or bool(self.dup_ngrams)
        self._seg = Segmenter() if self._need_words else None
        self._checks = self._build_checks()

    # ------------------------------------------------------------------ measuring
    def words(self, text: str) -> list[str]:
        return self._seg.lcut(text)

    def measure(self, text: str, doc: bool = True) -> dict:
        """All signals of one text; ``doc=False`` skips document-only signals (SFT turns)."""
        n = len(text)
        s: dict = {"chars": n}
        ns = nonspace_len(text) or 1
        cjk = cjk_count(text)
        s["cjk_ratio"] = round(cjk / ns, 4)
        s["special_ratio"] = round(count_chars(SPECIAL_RE, text) / ns, 4)
        lines = [ln for ln in _LINE_SPLIT.split(text.strip()) if ln.strip()] if text else []
        nl = len(lines) or 1
        dups, dup_chars = _dup_stats(lines)
        s["lines"] = len(lines)
        s["dup_line_frac"] = round(dups / nl, 4)
        s["dup_line_char_frac"] = round(dup_chars / max(1, sum(map(len, lines))), 4)
        if "\n\n" in text:
            paras = [x for x in _PARA_SPLIT.split(text.strip()) if x.strip()]
            s["dup_para_frac"] = round(_dup_stats(paras)[0] / (len(paras) or 1), 4)
        else:
            s["dup_para_frac"] = 0.0
        # mojibake: share of ideographs from the common GB2312 set; latin-1 byte pairs
        if cjk:
            unc = count_chars(self._uncommon, text)
            s["common_char_ratio"] = round(1 - unc / cjk, 4)
        else:
            s["common_char_ratio"] = 1.0
        s["latin1_mojibake"] = round(100 * len(_LATIN1_MOJI.findall(text)) / max(n, 1), 3)
        s["garbled_islands"] = self._garbled(text, cjk)
        if self._need_words:
            words = self.words(text)
            if not doc:
                # a dialogue turn's fill-in blanks (________) or separators (------) are one mark, not a
                # run of repeated "words" that n-gram repetition would count
                words = _collapse_symbol_runs(words)
            self._word_signals(s, words, text, lines, doc)
        if doc:
            s["punct"] = len(_PUNCT_ANY.findall(text)) if n < 2000 else (1 if _PUNCT_ANY.search(text) else 0)
            prose = _prose_lines(lines) if "```" in text or "#" in text or "|" in text else lines
            s["line_punct_ratio"] = (round(sum(1 for ln in prose if ln.rstrip(_CLOSERS).endswith(_ENDS)) / len(prose), 4)
                                     if prose else 1.0)
            s["avg_line_len"] = round(sum(map(len, lines)) / nl, 2)
            s["toc_ratio"] = round(sum(1 for ln in lines if _TOC_RE.search(ln)) / nl, 4) if len(lines) >= 5 else 0.0
            fields = [f for f in _FIELD_SPLIT.split(text) if f.strip()]
            s["fields"] = len(fields)
            s["short_field_ratio"] = round(sum(1 for f in fields if len(f.strip()) <= 3) / (len(fields) or 1), 4)
            # distinct stop characters, not jieba tokens: jieba glues 是/有/人 into 不是/没有/别人,
            # so a 100-character fiction paragraph showed 1 distinct stop token (issue 11 audit)
            if self._stop_chars:
                s["stopwords"] = len(set(self._stop_chars.findall(text)))
            elif "stopwords" not in s:
                s["stopwords"] = 0
        return s

    def _word_signals(self, s: dict, words: list[str], text: str, lines: list[str], doc: bool = False) -> None:
        """Word statistics.  ``words`` counts tokens with a letter or digit (datatrove's
        "non-symbol words"); ``alpha_word_ratio`` is their share among the tokens that are not
        prose punctuation, so numbers, quotes and dialogue marks (：“”) are not junk, symbols
        (★ ■ → emoji) are; ``stopwords`` counts DISTINCT stop words as FineWeb-2 does.  For a
        document (``doc``) the n-gram repetition runs on the words without punctuation, as
        Gopher's whitespace words carry their punctuation and so never repeat it alone."""
        nw = len(words)
        s["tokens"] = nw
        # one pass over the distinct words (Counter counts in C) instead of three over all tokens
        content_n = content_len = junk = 0
        stop: set[str] = set()
        punct: set[str] = set()
        stopset = self._stop
        for w, c in Counter(words).items():
            is_p, _, is_j = _word_flags(w)
            if not is_p:
                content_n += c
                content_len += c * len(w)
            else:
                punct.add(w)
                junk += c if is_j else 0
            if w in stopset:
                stop.add(w)
        s["words"] = content_n
        s["avg_word_len"] = round(content_len / content_n, 3) if content_n else 0.0
        s["alpha_word_ratio"] = round(content_n / (content_n + junk), 4) if content_n + junk else 0.0
        s["newline_ratio"] = round(text.count("\n") / nw, 4) if nw else 0.0
        s["stopwords"] = len(stop)
        if doc and punct:
            words = [w for w in words if w not in punct]
        total = len(text) or 1
        # no repeated bigram means no repeated n-gram of any length: every repetition signal is 0
        bigrams = list(zip(words, words[1:]))
        none_repeat = len(set(bigrams)) == len(bigrams)
        if self.top_ngrams:
            s["top_ngram_frac"] = {
                str(k): 0.0 if none_repeat else round(min(1.0, top_ngram_chars(
                    words, k, bigrams if k == 2 else None) / total), 4) for k, _ in self.top_ngrams}
        if self.dup_ngrams:
            fr = {}
            zero = none_repeat
            for k, _ in sorted(self.dup_ngrams):
                # a repeated (n+1)-gram contains a repeated n-gram, so once a length has none, longer ones have none
                v = 0 if zero else dup_ngram_chars(words, k)
                zero = zero or v == 0
                fr[str(k)] = round(min(1.0, v / total), 4)
            s["dup_ngram_frac"] = {str(k): fr[str(k)] for k, _ in self.dup_ngrams}

    @staticmethod
    def _garbled(text: str, cjk: int) -> float:
        """Short Latin islands (1-2 letters) between CJK runs, per 100 CJK characters.

        Normal mixed text switches script at whole words (使用Python进行); garbled
        extraction/OCR output flips every few characters (这a是B测cD试).
        """
        if cjk < 20 or not LATIN_RE.search(text):
            return 0.0
        # multiple-choice option letters (A.晕轮效应 / B、…) at a line start are not garbling
        runs = _SCRIPT_RUNS.findall(_OPTION_MARK.sub("", text) if "\n" in text else text)
        islands = 0
        for i in range(1, len(runs) - 1):
            r = runs[i]
            if len(r) <= 2 and r.isascii() and not runs[i - 1].isascii() and not runs[i + 1].isascii():
                islands += 1
        return round(100 * islands / cjk, 3)

    # ------------------------------------------------------------------ deciding
    def _build_checks(self) -> list[tuple]:
        p = self.params
        spec = [
            ("chars", "<", "min_chars", "too_short"), ("chars", ">", "max_chars", "too_long"),
            ("words", "<", "min_words", "too_few_words"), ("words", ">", "max_words", "too_many_words"),
            ("cjk_ratio", "<", "min_cjk_ratio", "low_cjk_ratio"),
            ("avg_word_len", "<", "min_avg_word_len", "short_words"),
            ("avg_word_len", ">", "max_avg_word_len", "long_words"),
            ("alpha_word_ratio", "<", "min_alpha_word_ratio", "low_alpha_words"),
            ("punct", "<", "min_punct", "no_punctuation"),
            ("line_punct_ratio", "<", "min_line_punct_ratio", "line_punct_ratio"),
            ("special_ratio", ">", "max_special_ratio", "special_char_ratio"),
            ("newline_ratio", ">", "max_newline_ratio", "newline_ratio"),
            ("dup_line_frac", ">", "max_dup_line_frac", "dup_line_frac"),
            ("dup_para_frac", ">", "max_dup_para_frac", "dup_para_frac"),
            ("dup_line_char_frac", ">", "max_dup_line_char_frac", "dup_line_char_frac"),
            ("toc_ratio", ">", "max_toc_ratio", "toc_page"),
            ("short_field_ratio", ">", "max_short_field_ratio", "table_like"),
            ("common_char_ratio", "<", "min_common_char_ratio", "mojibake"),
            ("latin1_mojibake", ">", "max_latin1_mojibake", "mojibake"),
            ("garbled_islands", ">", "max_garbled_islands", "garbled_mixed"),
            ("avg_line_len", "<", "min_avg_line_len", "short_lines"),
            ("stopwords", "<", "min_stopwords", "few_stopwords"),
        ]
        return [(sig, op, p[param], reason) for sig, op, param, reason in spec if p.get(param) is not None]

    def failures(self, s: dict) -> list[tuple[str, float, float]]:
        """Every (reason, value, threshold) that the signals fail, in check order."""
        out = []
        for sig, op, thr, reason in self._checks:
            v = s.get(sig)
            if v is None:
                continue
            if reason == "table_like" and s.get("fields", 0) < self.min_fields_for_table:
                continue
            # a one- or two-line document (a sampled paragraph, a post) has no "line structure" to judge
            if reason in _LINE_RULES and s.get("lines", 0) < self.min_lines_for_line_rules:
                continue
            # FW2 judges stop words only on documents that passed min_doc_words (50)
            if reason == "few_stopwords" and self.min_stopword_words and s.get("words", 1 << 30) < self.min_stopword_words:
                continue
            if reason == "mojibake" and sig == "common_char_ratio" and s.get("chars", 0) * s.get("cjk_ratio", 0) < 20:
                continue  # too few ideographs to judge
            if (op == "<" and v < thr) or (op == ">" and v > thr):
                out.append((reason, v, thr))
        for key, reason, pairs in (("top_ngram_frac", "top_ngram", self.top_ngrams),
                                   ("dup_ngram_frac", "dup_ngram", self.dup_ngrams)):
            fr = s.get(key)
            if not fr or not self._long_enough_for_repetition(s):
                continue
            for k, thr in pairs:
                v = fr.get(str(k), 0.0)
                if v > thr:
                    out.append((f"{reason}", v, thr, k))
                    break
        return out

    def _long_enough_for_repetition(self, s: dict) -> bool:
        # two repeats of a 3-word phrase are 20% of a 60-character paragraph: on a short
        # document the Gopher ratios measure phrasing, not spam (issue 11 audit: top_ngram 1/20)
        need = self.min_repetition_words
        return need is None or "words" not in s or s["words"] >= need

    def process(self, record: Record) -> Record:
        if record.kind != "text":
            return self._process_dialogue(record)
        s = self.measure(record.text or "")
        record.signals()["quality"] = s
        fails = self.failures(s)
        if fails:
            reason, value, thr, *n = fails[0]
            extra = {"n": n[0]} if n else {}
            if len(fails) > 1:
                extra["failed"] = sorted({f[0] for f in fails})
            return self.reject(record, reason, value, thr, **extra)
        return record

    def _process_dialogue(self, record: Record) -> Record:
        s, failures = self._measure_dialogue(record)
        record.signals()["quality"] = s
        conv = [f for f in self.failures({"chars": s["chars"]}) if f[0] in _CONVERSATION_RULES]
        if conv:  # the conversation as a whole is too short / too long: no turn to cut
            reason, value, thr, *_ = conv[0]
            return self.reject(record, reason, value, thr)
        return apply_turn_failures(self, record, failures, self.on_turn_failure)

    def _measure_dialogue(self, record: Record) -> tuple[dict, list]:
        """Conversation length, and per judged turn (the answers by default) the repetition /
        encoding signals and their failures; the record keeps the worst turn's values.

        Top-n-gram and duplicate-line ratios only mean something on a turn long enough to
        repeat itself (``sft_min_repetition_chars``): in a 60-character answer two repeats
        of a formula exceed any such ratio."""
        full = record.full_text()
        agg: dict = {"chars": len(full), "turns": 0}
        failures = []
        worst_hi = ("special_ratio", "dup_line_frac", "dup_line_char_frac", "dup_para_frac", "latin1_mojibake",
                    "garbled_islands")
        for i, role, text in judged_turns(record, tuple(self.sft_roles)):
            text = strip_protected(text)  # code and markup repeat by syntax; judge the prose
            if len(text) < self.sft_min_turn_chars:
                continue
            agg["turns"] += 1
            t = self.measure(text, doc=False)
            short = len(text) < self.sft_min_repetition_chars
            for f in self.failures(t):
                if f[0] not in _TURN_RULES or (short and f[0] in _SHORT_TURN_EXEMPT):
                    continue
                failures.append((i, f[0], f[1], f[2], {"n": f[3], "role": role} if len(f) > 3 else {"role": role}))
            for k in worst_hi:
                agg[k] = max(agg.get(k, 0.0), t[k])
            agg["common_char_ratio"] = min(agg.get("common_char_ratio", 1.0), t["common_char_ratio"])
            for key in ("top_ngram_frac", "dup_ngram_frac"):
                if key in t:
                    cur = agg.setdefault(key, {})
                    for k, v in t[key].items():
                        cur[k] = max(cur.get(k, 0.0), v)
        return agg, failures


_PUNCT_SET = frozenset(PUNCT_CHARS)
_LINE_RULES = frozenset({"line_punct_ratio", "short_lines"})
# judged on a whole conversation, never on one turn
_CONVERSATION_RULES = frozenset({"too_short", "too_long", "too_few_words", "too_many_words"})
# judged on one dialogue turn (document-only rules such as stop words or line punctuation are not)
_TURN_RULES = frozenset({"special_char_ratio", "dup_line_frac", "dup_para_frac", "dup_line_char_frac", "mojibake",
                         "garbled_mixed", "top_ngram", "dup_ngram"})
# ratios that a short answer exceeds by stating one formula twice; dup_ngram (a 10-word n-gram
# repeated over most of the turn) still applies: "好的好的好的…" is junk at any length
_SHORT_TURN_EXEMPT = frozenset({"top_ngram", "dup_line_frac", "dup_line_char_frac", "dup_para_frac"})


def _collapse_symbol_runs(words: list[str]) -> list[str]:
    out: list[str] = []
    prev = None
    for w in words:
        if w == prev and _word_flags(w)[0]:
            continue
        out.append(w)
        prev = w
    return out


def _is_punct(w: str) -> bool:
    return all(c in _PUNCT_SET or not c.isalnum() for c in w)


def _has_alpha(w: str) -> bool:
    return any(c.isalpha() for c in w)


_MD_STRUCT = re.compile(r"^\s*(?:#{1,6}\s|\|)")


def _prose_lines(lines: list[str]) -> list[str]:
    """Lines that should end like sentences: not Markdown headings, table rows, code fences
    or the code inside them (a Chinese tutorial's code lines are not unpunctuated prose)."""
    out, code = [], False
    for ln in lines:
        if ln.lstrip().startswith("```"):
            code = not code
            continue
        if not code and not _MD_STRUCT.match(ln):
            out.append(ln)
    return out


def _is_symbol_junk(w: str) -> bool:
    """A token of symbols (★ ■ → ㎡ emoji), not of prose punctuation (Unicode P*, ，。“” …)."""
    return any(c not in _PUNCT_SET and not unicodedata.category(c).startswith("P") for c in w)
