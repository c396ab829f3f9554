"""Blacklist filter: category word lists matched in one Aho-Corasick pass.

Lists live in ``thresher/blacklists/<category>.txt`` (one term per line, ``#`` header
lines); users add their own with ``extra_lists`` (the file stem becomes the category).
All terms of all enabled categories go into one automaton, so a document is scanned
once however many lists are on.  Per category we count occurrences and occurrences
per 1000 characters; a category fires only when *both* its ``min_hits`` and its
``max_per_kchar`` are reached, so one mention of 赌博 in a long news article about a
crackdown is kept while a gambling ad that repeats 百家乐 is not.

ASCII terms match on word boundaries only (``ass`` must not fire inside ``class``); CJK
terms only where the jieba segmentation of the text has a word boundary at both ends of the
match, so ``废物`` fires in 他真是个废物 but not in 固体废物, and ``大麻`` not in 放大麻烦.  The
text is segmented only when the automaton found a CJK candidate, so clean text costs one scan.

Dialogue: by default only the assistant side is judged (``roles``: assistant turns and a
DPO ``chosen`` answer).  Safety SFT sets are *made of* insulting or harmful user requests
with calm answers; judging the user turn would throw away exactly those.  A category can be
scoped differently with ``category_roles`` (e.g. ``{porn: [user, assistant]}``).  Each
judged turn is measured on its own (a short insulting answer is short even in a long
conversation); a failing turn is handled by ``on_turn_failure`` (:mod:`.turns`).

Short texts (comments, posts, single turns) carry no "density" evidence: one insult in a
40-character comment *is* the comment.  ``short_min_hits`` lowers ``min_hits`` per
category for texts shorter than ``short_text_chars`` (the per-1000-chars bar still
applies, and one hit in a short text always clears it), so a long news article that
quotes one insult is kept while the comment that is the insult is not.
"""
from __future__ import annotations

import os

from ..pipeline import COUNT, ConfigError, Stage, each, existing, items, mapping, one_of, register, text
from ..records import Record
from .turns import ANSWER_ROLES, TURN_POLICIES, apply_turn_failures, judged_turns

BLACKLIST_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "blacklists")
# safety categories are separate files so each can be turned on or off
DEFAULT_CATEGORIES = ["ads", "gambling", "porn", "violence", "weapons", "drugs", "profanity", "hate"]
# (min_hits, max_per_kchar): strong-signal categories fire on fewer hits
DEFAULT_THRESHOLDS = {
    "ads": [3, 3.0], "gambling": [2, 2.0], "porn": [2, 2.0], "violence": [3, 3.0], "weapons": [3, 3.0],
    "drugs": [3, 3.0], "profanity": [1, 5.0], "hate": [1, 5.0],
}


def read_list(path: str) -> list[str]:
    terms = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            t = line.strip()
            if t and not t.startswith("#"):
                terms.append(t.lower())
    return terms


def list_path(category: str) -> str:
    return os.path.join(BLACKLIST_DIR, f"{category}.txt")


def available_categories() -> list[str]:
    return sorted(f[:-4] for f in os.listdir(BLACKLIST_DIR) if f.endswith(".txt"))


class Matcher:
    """One automaton over every category's terms; ``counts(text)`` -> {category: hits}."""

    def __init__(self, lists: dict[str, list[str]], segment_cjk: bool = True):
        self._segmenter = None
        self.segment_cjk = segment_cjk
        import ahocorasick
        self.automaton = ahocorasick.Automaton()
        merged: dict[str, set[str]] = {}
        for cat, terms in lists.items():
            for t in terms:
                merged.setdefault(t, set()).add(cat)
        for term, cats in merged.items():
            ascii_word = term.isascii() and term[:1].isalnum()
            self.automaton.add_word(term, (len(term), tuple(sorted(cats)), ascii_word))
        self.empty = not merged
        if not self.empty:
            self.automaton.make_automaton()

    def counts(self, text: str) -> dict[str, int]:
        if self.empty or not text:
            return {}
        low = text.lower()
        out: dict[str, int] = {}
        n = len(low)
        bounds = None
        for end, (length, cats, ascii_word) in self.automaton.iter(low):
            start = end - length + 1
            if ascii_word:
                if (start > 0 and low[start - 1].isascii() and low[start - 1].isalnum()) or (
                        end + 1 < n and low[end + 1].isascii() and low[end + 1].isalnum()):
                    continue
            elif self.segment_cjk:
                if bounds is None:
                    bounds = self.word_boundaries(low)
                if start not in bounds or end + 1 not in bounds:
                    continue
            for c in cats:
                out[c] = out.get(c, 0) + 1
        return out

    def word_boundaries(self, text: str) -> set[int]:
        """Character offsets where a jieba word starts or ends."""
        if self._segmenter is None:
            from ._segment import Segmenter
            self._segmenter = Segmenter()
        bounds = {0, len(text)}
        pos = 0
        for w in self._segmenter.lcut(text):
            i = text.find(w, pos)
            if i < 0:
                continue
            bounds.add(i)
            pos = i + len(w)
            bounds.add(pos)
        return bounds


@register("blacklist_filter")
class BlacklistFilter(Stage):
    defaults = {"categories": list(DEFAULT_CATEGORIES), "extra_lists": [], "thresholds": {},
                "default_threshold": [2, 2.0], "short_text_chars": 0, "short_min_hits": {},
                "word_boundaries": True, "roles": list(ANSWER_ROLES), "category_roles": {},
                "on_turn_failure": "reject"}
    _threshold = items(COUNT, COUNT)  # [min hits, min hits per 1000 chars]
    rules = {"categories": each(one_of(available_categories)), "extra_lists": each(existing()),
             "thresholds": mapping(values=_threshold), "default_threshold": _threshold, "short_text_chars": COUNT,
             "short_min_hits": mapping(values=COUNT), "roles": each(text), "category_roles": mapping(values=each(text)),
             "on_turn_failure": one_of(*TURN_POLICIES)}

    def __init__(self, label=None, **params):
        super().__init__(label, **params)
        enabled = self.enabled_categories()
        for key in ("thresholds", "short_min_hits", "category_roles"):
            unknown = sorted(set(self.params[key]) - set(enabled))
            if unknown:
                raise ConfigError(f"{self.name}.{key}.{unknown[0]}: not an enabled category "
                                  f"({', '.join(enabled)})")

    def enabled_categories(self) -> list[str]:
        """Shipped categories plus one per ``extra_lists`` file (named by its file stem)."""
        extra = [os.path.splitext(os.path.basename(p))[0] for p in self.extra_lists]
        return list(dict.fromkeys([*self.categories, *extra]))

    def setup(self, ctx) -> None:
        lists: dict[str, list[str]] = {cat: read_list(list_path(cat)) for cat in self.categories}
        for path in self.extra_lists:
            cat = os.path.splitext(os.path.basename(path))[0]
            lists.setdefault(cat, []).extend(read_list(path))
        self._thr = {cat: tuple(self.thresholds.get(cat, DEFAULT_THRESHOLDS.get(cat, self.default_threshold)))
                     for cat in lists}
        self.matcher = Matcher(lists, self.word_boundaries)
        self._role_cats: dict[str, set[str]] = {}
        for cat in lists:
            for role in self.category_roles.get(cat, self.roles):
                self._role_cats.setdefault(role, set()).add(cat)

    def _min_hits(self, cat: str, short: bool) -> int:
        if short and cat in self.short_min_hits:
            return min(self._thr[cat][0], int(self.short_min_hits[cat]))
        return self._thr[cat][0]

    def measure(self, text: str) -> dict[str, dict]:
        kchars = max(len(text), 1) / 1000
        return {c: {"hits": n, "per_kchar": round(n / kchars, 3)} for c, n in self.matcher.counts(text).items()}

    def fired(self, text: str, cats: set[str] | None = None) -> tuple[dict, list[tuple[str, dict]]]:
        """(measurement, categories over their thresholds, worst first) of one text."""
        m = self.measure(text)
        if cats is not None:
            m = {c: v for c, v in m.items() if c in cats}
        short = len(text) < self.short_text_chars
        hot = [(c, v) for c, v in sorted(m.items())
               if v["hits"] >= self._min_hits(c, short) and v["per_kchar"] >= self._thr[c][1]]
        return m, sorted(hot, key=lambda cv: -cv[1]["per_kchar"])

    def process(self, record: Record) -> Record:
        if record.kind == "text":
            m, hot = self.fired(record.text or "")
            record.signals()["blacklist"] = m
            if hot:
                cat, v = hot[0]
                return self.reject(record, f"blacklist:{cat}", v["per_kchar"], self._thr[cat][1], hits=v["hits"],
                                   categories=[c for c, _ in hot])
            return record
        return self._process_dialogue(record)

    def _process_dialogue(self, record: Record) -> Record:
        # an answer that refuses a harmful request (sft_turn_filter's measurement) names the harm
        # it refuses -- "吸毒是违法的" -- and is exactly what safety SFT wants
        # (a jailbreak answer that opens with a policy lecture and then swears is not a refusal:
        # sft_turn_filter rejects it as followed_jailbreak)
        refused = set(((record.signals().get("sft") or {}).get("refusals") or {}).get("turns", ()))
        judged = judged_turns(record, tuple(self._role_cats))
        # the record-level measurement keeps its documented shape, over the judged text only
        record.signals()["blacklist"] = self.measure("\n".join(t for _, _, t in judged))
        failures = []
        for i, role, text in judged:
            if i in refused:
                continue
            _, hot = self.fired(text, self._role_cats.get(role))
            if hot:
                cat, v = hot[0]
                failures.append((i, f"blacklist:{cat}", v["per_kchar"], self._thr[cat][1],
                                 {"hits": v["hits"], "categories": [c for c, _ in hot], "role": role}))
        return apply_turn_failures(self, record, failures, self.on_turn_failure)
