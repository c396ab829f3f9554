"""Boilerplate: head/tail trimming against a phrase list, and cross-document repeats.

* ``boilerplate_trimmer`` (a normaliser): from each end of a document, cut lines that
  carry a boilerplate phrase (``DEFAULT_BOILERPLATE``) or short navigation items.  A
  one-line document (CLUECorpusSmall, Sogou news) is trimmed by *sentence* instead,
  against the strong phrases only (``长按识别二维码关注``, ``免责声明：...``).  A title or
  heading that introduces the following text is never cut: in the head, short lines
  after the last phrase line are kept, and chapter headings (``第一章 总则``) never count
  as boilerplate (issue 11 audit: ``将进酒``, ``静夜思 / 李白`` were deleted).
* ``repeated_boilerplate`` (a global stage): a line -- or, in a long line, a sentence --
  seen in ``min_docs`` or more documents *of the same source* is boilerplate and removed
  (a disclaimer repeated in 27 of 200 Sogou items).  Counting is CCNet-style, on
  normalised-text hashes, with the partitioned reduce of :mod:`thresher.dedup.lines`.
"""
from __future__ import annotations

import re

from ..dedup.lines import LineDedup, _line_hash
from ..io.units import is_heading
from ..pipeline import COUNT, POSITIVE, RATIO, each, register, text
from ..records import Record
from .normalize import Normalizer

DEFAULT_BOILERPLATE = [
    "版权所有", "版权声明", "copyright", "all rights reserved", "免责声明", "责任编辑", "编辑：", "来源：",
    "原标题", "本文来源", "转载请注明", "未经授权", "禁止转载", "点击查看", "点击进入", "点击阅读", "阅读原文",
    "阅读全文", "查看更多", "展开全文", "相关阅读", "相关新闻", "相关推荐", "热门推荐", "推荐阅读", "延伸阅读",
    "猜你喜欢", "上一篇", "下一篇", "返回首页", "返回搜狐", "返回顶部", "分享到", "分享至", "扫一扫", "扫码",
    "二维码", "关注我们", "关注公众号", "微信公众号", "下载客户端", "打开app", "打开APP", "登录", "注册",
    "首页", "网站地图", "联系我们", "关于我们", "广告服务", "隐私政策", "用户协议", "ICP备", "icp证", "公网安备",
    "举报", "评论", "跟帖", "收藏", "点赞", "我要纠错", "字号", "打印", "网友评论", "发表评论", "热门评论",
    "新浪微博", "微博", "QQ空间", "意见反馈", "今日头条", "客户端", "订阅",
]
# phrases that mark a whole sentence as boilerplate even inside running text: the weak
# ones above (评论, 微博, 登录, 收藏...) are ordinary words in a news sentence
STRONG_BOILERPLATE = [
    "版权所有", "版权声明", "all rights reserved", "免责声明", "转载请注明", "未经授权", "禁止转载", "阅读原文",
    "展开全文", "扫一扫", "扫码", "二维码", "关注我们", "关注公众号", "微信公众号", "下载客户端", "点击查看更多",
    "仅代表作者", "不代表本网", "本文来源", "责任编辑",
]
_SENT = re.compile("[。！？!?；]")
_SENT_SPLIT = re.compile(r"(?<=[。！？!?；])")


@register("boilerplate_trimmer")
class BoilerplateTrimmer(Normalizer):
    """Trim boilerplate lines (or, in a one-line document, sentences) from both ends.

    From each end, scan line by line; a line containing a phrase is a hit, a very short
    line without sentence punctuation (a navigation item, a sign-off) a weak one (see
    ``_scan``).  Stop after ``patience`` consecutive body lines and cut up to the last
    hit.  The body in the middle is never touched.
    """
    defaults = {"phrases": [], "use_default_phrases": True, "patience": 2, "short_line_chars": 6,
                "max_fraction": 0.8, "sentences": True, "max_sentence_chars": 120}
    rules = {"phrases": each(text), "patience": COUNT, "short_line_chars": COUNT, "max_fraction": RATIO,
             "max_sentence_chars": COUNT}

    def setup(self, ctx) -> None:
        phrases = (DEFAULT_BOILERPLATE if self.use_default_phrases else []) + list(self.phrases)
        self._phrases = tuple(p.lower() for p in phrases)
        self._strong = tuple(p.lower() for p in (STRONG_BOILERPLATE if self.use_default_phrases else [])
                             + list(self.phrases))

    def _hit(self, line: str) -> str:
        """'phrase', 'short' or '' (not boilerplate)."""
        s = line.strip()
        if not s or is_heading(s):
            return ""
        low = s.lower()
        if any(p in low for p in self._phrases):
            # a long sentence that merely mentions e.g. 微博 is body text, not boilerplate
            return "phrase" if len(s) < 30 or not _SENT.search(s) else ""
        return "short" if len(s) <= self.short_line_chars and not _SENT.search(s) else ""

    def _scan(self, lines: list[str], head: bool) -> int:
        """How many leading lines are boilerplate.  Phrase lines cut (across up to
        ``patience - 1`` body lines); a short line only cuts at the tail while it is
        contiguous with the end or a cut, and never at the head: short lines right above
        the body are its title / author line, not navigation."""
        cut = misses = 0
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            kind = self._hit(line)
            if kind == "phrase" or (kind == "short" and not head and misses == 0):
                cut = i + 1
                misses = 0
            elif not kind:
                misses += 1
                if misses >= self.patience:
                    break
        return cut

    def _sentence_hit(self, s: str) -> bool:
        s = s.strip()
        if not s or len(s) > self.max_sentence_chars:
            return False
        low = s.lower()
        return any(p in low for p in self._strong)

    def _trim_sentences(self, text: str) -> str:
        sents = _SENT_SPLIT.split(text)
        n = len(sents)
        head = 0
        while head < n - 1 and self._sentence_hit(sents[head]):
            head += 1
        tail = n
        while tail > head + 1 and (not sents[tail - 1].strip() or self._sentence_hit(sents[tail - 1])):
            tail -= 1
        if head == 0 and tail == n:
            return text
        return "".join(sents[head:tail]).strip()

    def fn(self, text: str) -> str:
        lines = text.split("\n")
        if len(lines) < 2:
            return self._trim_sentences(text) if self.sentences else text
        head = self._scan(lines, True)
        tail = self._scan(lines[::-1], False)
        if head + tail >= len(lines) or head + tail > self.max_fraction * len(lines):
            return text  # the whole thing looks like boilerplate: leave it to the filters
        if not head and not tail:
            return text
        return "\n".join(lines[head:len(lines) - tail]).strip("\n")


@register("repeated_boilerplate")
class RepeatedBoilerplate(LineDedup):
    """Remove lines, and sentences of multi-sentence lines, of ``min_line_chars`` or more
    that occur in ``min_docs`` or more documents of the same source (one-line documents
    carry their boilerplate as sentences).  Chapter headings are kept."""
    defaults = {"min_docs": 5, "min_line_chars": 10}
    rules = {"min_docs": POSITIVE, "min_line_chars": COUNT}

    def _pieces(self, line: str) -> list[str]:
        return _SENT_SPLIT.split(line) if _SENT.search(line[:-1]) else [line]

    def _key(self, rec: Record, piece: str) -> int | None:
        s = piece.strip()
        if len(s) < self.min_line_chars or is_heading(s):
            return None
        return _line_hash(f"{rec.source}\x00{s}")

    def _hashes(self, rec: Record) -> set[int]:
        out = set()
        for line in (rec.text or "").split("\n"):
            for piece in self._pieces(line):
                h = self._key(rec, piece)
                if h is not None:
                    out.add(h)
        return out

    def process(self, rec: Record) -> Record:
        removed = 0
        lines_out = []
        for line in (rec.text or "").split("\n"):
            pieces = self._pieces(line)
            keep = [p for p in pieces if (h := self._key(rec, p)) is None or h not in self.bad]
            removed += len(pieces) - len(keep)
            if keep or not pieces:
                lines_out.append("".join(keep))
        rec.signals()["repeated_boilerplate"] = removed
        if not removed:
            return rec
        new = "\n".join(lines_out).strip()
        self.count("pieces_removed", removed)
        self.count("chars_removed", len(rec.text or "") - len(new))
        if not new:
            return self.reject(rec, "boilerplate_only", removed, self.min_docs)
        rec.text = new
        return rec
