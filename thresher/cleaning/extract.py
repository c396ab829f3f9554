"""Main-content extraction for raw HTML pages (``html_content_extractor``).

``html_stripper`` turns markup into text but keeps everything a page shows: navigation,
related-article lists, widgets, footers.  This stage, for texts that look like a whole
HTML page, finds the article body the way readability / GNE do, with the stdlib
``html.parser`` (no new dependency):

1. Parse into block elements (``div``, ``p``, ``td``, ``li``, ...); text inside inline
   tags (``span``, ``a``, ``strong``) belongs to the nearest block.  ``script``, ``style``,
   ``nav``, ``header``, ``footer``, forms and similar are skipped.
2. Every block with at least ``min_para_chars`` characters of its own text scores
   ``1 + sentence punctuation + min(chars / 100, 3)``, scaled by ``1 - link share`` (text
   inside ``<a>`` is navigation).  The score goes to the parent block in full and to the
   grandparent at half, as in readability: the article container collects the scores of
   its paragraphs, a link list collects nothing.
3. The highest-scoring container (scaled by its own link share) wins; its paragraphs
   whose link share is below ``max_link_share`` become the text, one per line.

If no container reaches ``min_score`` the text is returned unchanged and
``html_stripper`` still strips it.  Counters: ``touched``, ``chars_removed``,
``no_candidate``.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

from .normalize import Normalizer
from ..pipeline import COUNT, RATIO, register

_PAGE_PROBE = re.compile(r"<(?:!doctype\s+html|html|body|head)\b", re.I)
_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "head", "nav", "footer", "header",
                   "aside", "form", "select", "option", "button", "textarea", "object", "embed", "canvas", "map"})
_BLOCK = frozenset({"html", "body", "div", "p", "section", "article", "main", "td", "th", "tr", "table", "tbody",
                    "li", "ul", "ol", "dl", "dd", "dt", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6",
                    "center", "figure", "figcaption", "font"})
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed", "param", "source",
                   "track", "wbr"})
# readability's unlikely-candidate class/id words (comments, sidebars, related lists), unless
# the same attribute also says article/content/main
_UNLIKELY = re.compile(r"comment|reply|replies|remark|footer|sidebar|side-bar|related|recommend|banner|breadcrumb|"
                       r"menu|pagination|pager|popup|share|social|sponsor|advert|(?:^|[-_ ])ad(?:s)?(?:$|[-_ ])|"
                       r"hot-?news|rank", re.I)
_MAYBE = re.compile(r"article|body|content|main|text|post|detail", re.I)
_SENT_PUNCT = re.compile("[，。！？；：、,.!?;:]")
_WS = re.compile(r"\s+")


class _Block:
    __slots__ = ("tag", "parent", "parts", "link_chars", "score", "order")

    def __init__(self, tag: str, parent: "_Block | None", order: int):
        self.tag = tag
        self.parent = parent
        self.parts: list[str] = []
        self.link_chars = 0
        self.score = 0.0
        self.order = order


class _PageParser(HTMLParser):
    """Collects blocks in document order; a block's ``parts`` are its own (inline) texts.

    Markup on the web is broken; an end tag pops to its nearest matching open block and
    unmatched end tags are ignored, so a stray ``</div>`` cannot close the page.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = _Block("root", None, 0)
        self.blocks: list[_Block] = [self.root]
        self.stack: list[_Block] = [self.root]
        self.skip_depth = 0
        self.skip_tag: list[str] = []
        self.in_link = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if self.skip_depth:  # inside a skipped subtree: only track nesting
            if tag not in _VOID:
                self.skip_tag.append(tag)
                self.skip_depth += 1
            return
        if tag in _SKIP or (tag not in _VOID and _unlikely(attrs)):
            if tag not in _VOID:
                self.skip_tag.append(tag)
                self.skip_depth += 1
            return
        if tag in _VOID:
            if tag == "br" and not self.skip_depth:
                self.stack[-1].parts.append("\n")
            return
        if tag == "a":
            self.in_link += 1
        elif tag in _BLOCK:
            b = _Block(tag, self.stack[-1], len(self.blocks))
            self.blocks.append(b)
            self.stack.append(b)

    def handle_startendtag(self, tag, attrs):
        if tag == "br" and not self.skip_depth:
            self.stack[-1].parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if self.skip_depth:
            if tag in self.skip_tag:
                while self.skip_tag:
                    self.skip_depth -= 1
                    if self.skip_tag.pop() == tag:
                        break
            return
        if tag == "a":
            self.in_link = max(0, self.in_link - 1)
        elif tag in _BLOCK:
            for i in range(len(self.stack) - 1, 0, -1):
                if self.stack[i].tag == tag:
                    del self.stack[i:]
                    break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self.skip_depth or not data.strip():
            return
        b = self.stack[-1]
        b.parts.append(data)
        if self.in_link:
            b.link_chars += len(data.strip())


def _unlikely(attrs) -> bool:
    names = " ".join(v for k, v in attrs if k in ("class", "id") and v)
    return bool(names) and bool(_UNLIKELY.search(names)) and not _MAYBE.search(names)


def _own_lines(b: _Block) -> list[str]:
    text = "".join(b.parts)
    return [ln for ln in (_WS.sub(" ", x).strip() for x in text.split("\n")) if ln]


@register("html_content_extractor")
class HtmlContentExtractor(Normalizer):
    """Keep only the main content of full HTML pages (text-/link-density scoring)."""
    defaults = {"min_tags": 30, "min_para_chars": 10, "max_link_share": 0.5, "min_score": 10.0,
                "keep_title": False}
    rules = {"min_tags": COUNT, "min_para_chars": COUNT, "max_link_share": RATIO, "min_score": COUNT}

    def looks_like_page(self, text: str) -> bool:
        return bool(_PAGE_PROBE.search(text[:5000])) and text.count("<") >= self.min_tags

    def extract(self, text: str) -> str | None:
        p = _PageParser()
        try:
            p.feed(text)
            p.close()
        except Exception:  # html.parser is tolerant, but never let one odd page stop a run
            return None
        # score paragraphs into their parents (full) and grandparents (half)
        for b in p.blocks:
            own = sum(len(x.strip()) for x in b.parts)
            if own < self.min_para_chars:
                continue
            link_share = b.link_chars / own
            if link_share > self.max_link_share:
                continue
            text_b = "".join(b.parts)
            s = (1 + len(_SENT_PUNCT.findall(text_b)) + min(own / 100, 3)) * (1 - link_share)
            b.score += s  # a container may hold its text directly (<div>text<br>text</div>)
            if b.parent is not None:
                b.parent.score += s
                if b.parent.parent is not None:
                    b.parent.parent.score += s / 2
        best = max(p.blocks[1:], key=lambda b: b.score, default=None)
        if best is None or best.score < self.min_score:
            return None
        inside = _descendants(p.blocks, best)
        lines: list[str] = []
        for b in inside:
            own = sum(len(x.strip()) for x in b.parts)
            if not own or b.link_chars / own > self.max_link_share:
                continue
            lines.extend(_own_lines(b))
        if not lines:
            return None
        if self.keep_title and p.title.strip():
            lines.insert(0, _WS.sub(" ", p.title).strip())
        return "\n".join(lines)

    def fn(self, text: str) -> str:
        if "<" not in text or not self.looks_like_page(text):
            return text
        out = self.extract(text)
        if out is None:
            self.count("no_candidate")
            return text
        return out


def _descendants(blocks: list[_Block], root: _Block) -> list[_Block]:
    """``root`` and every block under it, in document order (blocks are in parse order)."""
    out = [root]
    inside = {id(root)}
    for b in blocks[root.order + 1:]:
        if b.parent is not None and id(b.parent) in inside:
            inside.add(id(b))
            out.append(b)
    return out
