"""Spam filter: gambling / SEO spam vocabulary density, link farms, keyword stuffing.

Injected spam in otherwise normal pages (hacked news sites, SEO doorway pages) sits in
headers, footers and link blocks -- exactly what ``boilerplate_trimmer`` removes.  So
this stage runs *before* trimming: it measures the untrimmed text, keeps the measurement
on the record (``meta.signals["spam"]``) whatever it decides, and the trimmer may then
remove the block; ``quality_heuristic`` reads the measurement later.

Signals (``measure_spam``; pure, no decision):

* ``terms``: hits of the spam list (``thresher/blacklists/spam.txt``; ``lists`` can add
  ``gambling``), hits per 1000 characters and how many *distinct* terms hit
  (one brand name repeated is stuffing; several different ones is a spam page);
* ``links``: URLs and bare domains (``xx123.com``), per 1000 characters, distinct
  hosts, and the share of lines that carry one (link blocks);
* ``stuffing``: the most repeated 3..6-character CJK/alnum n-gram and the share of the
  text's non-space characters it covers (``澳门新葡京官网 澳门新葡京网址 ...``);
* ``score`` in [0, 1]: the three combined as independent evidences, 1 - prod(1 - s_i).

Decision rules (each a reason code ``spam:<rule>`` with value and threshold):
``terms``: hits, per-kchar and distinct terms all reached; ``link_farm``: URL count and
per-kchar both reached; ``keyword_stuffing``: the top n-gram's count, coverage and number
of distinct runs all reached.  ``action: flag`` measures and never rejects (tiers decide).
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter

from ..pipeline import COUNT, RATIO, ConfigError, Stage, each, existing, items, one_of, register
from ..records import Record
from ._text import nonspace_len
from .blacklist import BLACKLIST_DIR, Matcher, available_categories, read_list

# gambling.txt stays blacklist_filter's category (its hits are measured and decided there);
# spam.txt is the spam-site vocabulary this stage owns. lists: [spam, gambling] reads both.
SPAM_LISTS = ("spam",)
# scheme/www URLs, or bare hosts with a TLD spam pages use (digits-only labels included: 9399.com)
_LINK_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"'\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+|"
                      r"(?<![A-Za-z0-9.@-])[A-Za-z0-9][A-Za-z0-9-]{0,40}\.(?:com|net|org|cc|vip|top|xyz|cn|info|"
                      r"me|co|io|app|bet|tv|la|club|site|win|shop)(?![A-Za-z0-9])", re.I)
_HOST_RE = re.compile(r"^(?:https?://)?(?:www\.)?([^/?#:]+)", re.I)
_GRAM_OK = re.compile(r"[\u3400-\u9fffA-Za-z0-9]+")
STUFF_NS = (3, 4, 5, 6)
HEAD_CHARS = 20000  # stuffing is measured on the head: injected blocks are short, cost stays bounded


class SpamLexicon:
    """Per-term hit counts over the spam lists (one automaton; ASCII terms on word boundaries)."""

    def __init__(self, lists: tuple[str, ...] = SPAM_LISTS, extra: list[str] | None = None):
        terms: set[str] = set()
        for name in lists:
            path = os.path.join(BLACKLIST_DIR, f"{name}.txt")
            if not os.path.exists(path):
                raise ConfigError(f"spam_filter: no shipped list {name!r} in {BLACKLIST_DIR}")
            terms.update(read_list(path))
        for path in extra or []:
            terms.update(read_list(path))
        # one "category" per term, so the shared matcher counts each term separately
        self.matcher = Matcher({t: [t] for t in terms})
        self.size = len(terms)

    def term_counts(self, text: str) -> dict[str, int]:
        return self.matcher.counts(text)


def _link_stats(text: str) -> dict:
    links = _LINK_RE.findall(text)
    hosts = {(_HOST_RE.match(u).group(1) if _HOST_RE.match(u) else u).lower() for u in links}
    lines = [ln for ln in text.split("\n") if ln.strip()]
    link_lines = sum(1 for ln in lines if _LINK_RE.search(ln)) if links else 0
    kchars = max(len(text), 1) / 1000
    return {"urls": len(links), "hosts": len(hosts), "per_kchar": round(len(links) / kchars, 3),
            "link_line_frac": round(link_lines / len(lines), 3) if lines else 0.0}


def _stuffing(text: str) -> dict:
    """The repeated n-gram covering most of the head, counted without overlaps, and in how
    many distinct runs (text between punctuation/spaces) it occurs.  Stuffing is one keyword
    in many variants (减肥茶 / 减肥茶价格 / 减肥茶哪个好); one line repeated (contexts 1) and
    grams of at most two distinct characters (哈哈哈, 码字码字) are plain repetition, which the
    quality filter's repetition rules handle."""
    head = text[:HEAD_CHARS].lower()
    denom = max(1, nonspace_len(head))
    counts: dict[int, Counter] = {n: Counter() for n in STUFF_NS}
    runs = _GRAM_OK.findall(head)
    for run in runs:
        for n in STUFF_NS:
            if len(run) >= n:
                counts[n].update(run[i:i + n] for i in range(len(run) - n + 1))
    best = ("", 0, 0.0)
    for n, c in counts.items():
        for gram, _ in c.most_common(3):
            if len(set(gram)) <= 2:
                continue
            k = head.count(gram)
            if k * n / denom > best[2]:
                best = (gram, k, k * n / denom)
    contexts = len({r for r in runs if best[0] in r}) if best[0] else 0
    return {"term": best[0], "count": best[1], "coverage": round(min(1.0, best[2]), 4), "contexts": contexts}


def measure_spam(text: str, lexicon: SpamLexicon) -> dict:
    """All spam signals of one text (see the module docstring); no decision."""
    kchars = max(len(text), 1) / 1000
    tc = lexicon.term_counts(text)
    hits = sum(tc.values())
    terms = {"hits": hits, "per_kchar": round(hits / kchars, 3), "distinct": len(tc),
             "top": sorted(tc, key=lambda t: (-tc[t], t))[:5]}
    links = _link_stats(text)
    stuff = _stuffing(text)
    return {"terms": terms, "links": links, "stuffing": stuff, "score": round(spam_score(terms, links, stuff), 4)}


def spam_score(terms: dict, links: dict, stuffing: dict) -> float:
    """Evidence in [0, 1].  Each part needs both density and a count (one URL in a
    150-character post is dense but no link farm); each is well above 0.3 where its default
    reject rule fires."""
    # one mention is no evidence (news reports crackdowns); several distinct terms are
    s_terms = (1 - math.exp(-terms["per_kchar"] / 2.0)) * max(0.0, min(1.0, (terms["hits"] - 1) / 3,
                                                                       (terms["distinct"] - 1) / 2))
    s_links = (1 - math.exp(-max(0.0, links["per_kchar"] - 1.0) / 5.0)) * min(1.0, links["urls"] / 8)
    s_stuff = (min(1.0, max(0.0, stuffing["coverage"] - 0.05) / 0.25) * min(1.0, stuffing["count"] / 8)
               * min(1.0, max(0, stuffing["contexts"] - 1) / 3))
    return 1 - (1 - s_terms) * (1 - s_links) * (1 - s_stuff)


@register("spam_filter")
class SpamFilter(Stage):
    """Measure spam signals into ``meta.signals["spam"]``; reject by the density rules."""

    version = "1"
    defaults = {
        "action": "reject",          # reject | flag (measure only)
        "lists": list(SPAM_LISTS),   # shipped lists read (thresher/blacklists/<name>.txt)
        "extra_lists": [],           # your own term files
        "terms": [3, 2.0, 2],        # [min hits, min hits per 1000 chars, min distinct terms]
        "link_farm": [8, 8.0],       # [min URLs/domains, min per 1000 chars]
        # [min count of the top n-gram, min share of non-space chars, min distinct runs it occurs in]
        "keyword_stuffing": [8, 0.2, 4],
    }
    rules = {"action": one_of("reject", "flag"), "lists": each(one_of(available_categories)),
             "extra_lists": each(existing()), "terms": items(COUNT, COUNT, COUNT), "link_farm": items(COUNT, COUNT),
             "keyword_stuffing": items(COUNT, RATIO, COUNT)}

    def setup(self, ctx) -> None:
        self._lex = SpamLexicon(tuple(self.lists), self.extra_lists)

    def process(self, record: Record) -> Record:
        if not hasattr(self, "_lex"):
            self.setup(None)
        m = measure_spam(record.full_text(), self._lex)
        record.signals()["spam"] = m
        fired = self.decide(m)
        if fired and self.action == "reject":
            rule, value, thr = fired
            return self.reject(record, f"spam:{rule}", value, thr, spam_score=m["score"])
        if fired:
            self.count(f"flagged:{fired[0]}")
        return record

    def decide(self, m: dict) -> tuple[str, float, float] | None:
        """The first rule the measurement reaches: (rule, value, threshold)."""
        t, ln, st = m["terms"], m["links"], m["stuffing"]
        hits, per_k, distinct = self.terms
        if t["hits"] >= hits and t["per_kchar"] >= per_k and t["distinct"] >= distinct:
            return "terms", t["per_kchar"], float(per_k)
        urls, url_k = self.link_farm
        if ln["urls"] >= urls and ln["per_kchar"] >= url_k:
            return "link_farm", ln["per_kchar"], float(url_k)
        count, cov, contexts = self.keyword_stuffing
        if st["count"] >= count and st["coverage"] >= cov and st["contexts"] >= contexts:
            return "keyword_stuffing", st["coverage"], float(cov)
        return None
