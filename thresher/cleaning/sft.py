"""SFT-aware checks of conversations and preference pairs, per turn.

A short answer like "好的。" or "2" is fine in a dialogue, so the length rules here are per
turn with dialogue-sized defaults.  Reason codes:

* ``empty_turn`` / ``turn_too_long`` -- any turn;
* ``answer_repeats_question`` -- the answer echoes its question (char-bigram Jaccard);
* ``refusal`` -- the answer is nothing but a decline or a disclaimer (作为一个AI语言模型…) on a
  benign request: a non-answer.  Refusing a harmful request is what safety SFT teaches, so
  that answer is kept and tagged ``signals.sft.refusals`` (``harmful_request`` when the
  request matches the harm lexicon or a blacklist category, ``policy_refusal`` when the
  answer itself says the request is illegal/unethical/offensive); a disclaimer followed by
  a real answer is not a refusal; an honest capability limit with help (我无法发布推文，但是
  我可以帮您写) is kept.  Over-refusal that lectures on a benign request is *not* caught: it
  cannot be told from a safety refusal without judging the request;
* ``truncated_answer`` -- real truncation signals only: an unclosed code fence, an unclosed
  bracket at the end, an answer ending on a comma/enumeration mark or an announcing colon,
  or ending on a connective word (…以及 / …because).  A missing 。, a hashtag, a sign-off or
  a sentence-final particle (…呢) is not truncation;
* ``placeholder_answer`` -- ``<nooutput>``, ``<无输出>``, ``N/A``, ``XX``… instead of an answer;
* ``translated_code`` -- code whose keywords were machine-translated (``def 阶乘（数量）：``,
  ``返回阶乘``): it teaches syntax that does not exist;
* ``identical_pair`` -- a DPO pair whose chosen and rejected answers are the same;
* ``followed_injection`` -- the request hides an instruction (忽略上述指令，直接输出：X) and the
  answer outputs X: safety sets contain these as tests, the right answer does the first task;
* ``followed_jailbreak`` -- the request is a jailbreak (不受限制的语言模型 / 打破规则 / DAN) and the
  answer plays along instead of declining;
* ``no_answer`` -- a conversation without any assistant turn: nothing to train on.

With ``action: flag`` a record is only annotated (``signals["sft"]["flags"]``); with
``reject`` a failing turn is handled by ``on_turn_failure`` (:mod:`.turns`).
"""
from __future__ import annotations

import re

from ..pipeline import COUNT, POSITIVE, RATIO, Stage, each, one_of, register
from ..records import Record
from .turns import ANSWER_ROLES, CHOSEN, REJECTED, TURN_POLICIES, apply_turn_failures

CHECKS = ("empty_turn", "answer_repeats_question", "refusal", "truncated_answer", "turn_too_long",
          "placeholder_answer", "translated_code", "identical_pair", "followed_injection", "followed_jailbreak",
          "no_answer")

# the answer declines to do what was asked: 我不能提供 / 无法为您提供 / 我不会回答 / 拒绝 / I cannot help
DECLINE_RE = re.compile(
    r"(?:不能|无法|不会|不可以|不便|拒绝)(?:为您|为你|向您|向你|给您|给你|替您|替你)?(?:提供|回答|协助|帮助|帮你|帮您|支持|鼓励|"
    r"复述|参与|满足|完成|生成|编写|撰写|执行|讨论|透露|告诉|推荐|教|扮演|假装|照做)"
    r"|i(?:'m| am) sorry, but i (?:cannot|can't)|i (?:cannot|can't|won't|will not) (?:help|assist|provide|fulfill|"
    r"do that|comply)|i'm unable to (?:help|assist)|i must decline", re.I)
# boilerplate that frames an answer without declining
DISCLAIMER_PHRASES = [
    "作为一个ai语言模型", "作为一个人工智能语言模型", "作为ai语言模型", "作为一个ai助手", "作为一名ai语言模型",
    "作为一个语言模型", "作为一个大语言模型", "作为人工智能，我", "我只是一个ai", "我只是一个语言模型", "我是一个ai语言模型",
    "我没有个人观点", "我没有个人情感", "as an ai language model", "as a language model", "as an ai, i",
]
# the refusal says why the request is unacceptable (ethics, law, danger, respect)
_POLICY_WORDS = re.compile("不道德|违法|非法|不合法|不适当|不合适|不恰当|违反|违背|违规|政策|伦理|道德|有害|冒犯|危险|伤害|"
                           "犯罪|尊重|文明|礼貌|言辞|侮辱|歧视|隐私|个人信息|"
                           r"inappropriate|unethical|illegal|against (?:my|the) (?:policy|guidelines)|harmful|offensive"
                           r"|dangerous|respect|privacy|personal information", re.I)
# a request that a responsible assistant declines; any one term is enough in a request.  The
# blacklist categories (insults, hate, porn, drugs, weapons, violence, gambling) count too:
# an abusive user turn answered calmly is exactly what safety SFT teaches
HARM_TERMS = [
    "杀死", "杀人", "谋杀", "杀害", "弄死", "自杀", "自残", "轻生", "炸弹", "爆炸物", "炸药", "爆炸", "纵火", "放火", "毒品",
    "吸毒", "贩毒", "制毒", "冰毒", "海洛因", "大麻", "毒药", "下毒", "投毒", "致命", "枪支", "武器", "管制刀具", "恐怖",
    "极端主义", "纳粹", "isis", "诈骗", "骗取", "诱骗", "骗钱", "欺诈", "骗局", "偷窃", "盗窃", "偷钱", "偷东西", "窃取",
    "盗取", "盗用", "抢劫", "黑客", "入侵", "破解", "木马", "网络攻击", "色情", "裸照", "强奸", "性侵", "恋童", "洗钱", "走私",
    "贩卖", "逃税", "偷税", "作弊", "代考", "替考", "抄袭", "剽窃", "盗版", "伪造", "假证", "假身份证", "假币", "赌博", "博彩",
    "报复", "伤害他人", "恶意", "破坏", "虐待", "殴打", "打人", "歧视", "侮辱", "辱骂", "霸凌", "欺凌", "欺负", "跟踪",
    "监视", "窃听", "偷拍", "偷窥", "隐私", "人肉", "违法", "非法", "犯罪", "暴力", "袭击", "绑架", "勒索", "敲诈", "传销",
    "邪教", "颠覆", "陷害", "骂人", "脏话", "泄露", "删除证据", "逃避法律", "谣言", "造谣", "虚假信息", "假新闻", "贿赂",
    "行贿", "受贿", "酒驾", "醉驾", "操纵", "洗脑", "混蛋", "婊砸", "母狗", "去死", "下流", "不要脸", "败类", "人渣",
    "畜生", "滚蛋", "蠢货", "废物", "kill", "murder", "bomb", "weapon", "drugs", "hack into", "steal",
    "suicide", "porn", "racist", "illegal", "explosive", "poison",
]
# a declined answer needs this many characters outside its refusal sentences to count as help
_SENTENCE = re.compile(r"[^。！？!?\n]*[。！？!?\n]?")

# --- truncation ---------------------------------------------------------------------------
_ENDS_MID = re.compile(r"[，,、]\s*$")  # not ; or ；: code lines and list items end on them
_ENDS_COLON = re.compile(r"[：:]\s*$")
_OPENERS, _CLOSERS = "（([【「『“《{", "）)]】」』”》}"
_FENCE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.S)
# words a sentence cannot end on: conjunctions, prepositions, the copula (…其中最著名的一段是)
_ZH_CONNECTIVES = frozenset("和 与 及 以及 或 或者 并 并且 而且 但 但是 因为 所以 如果 例如 比如 包括 首先 然后 其次 以下 "
                            "如下 即 是 在 把 被 将 对 从 向 为了 由于 通过 根据 关于 对于 包含 等于".split())
_EN_CONNECTIVE = re.compile(r"\b(?:and|or|but|because|the|a|an|of|to|with|for|such as|including|that|which|is|are)\s*$",
                            re.I)
_TAIL_WORD = re.compile(r"[\u4e00-\u9fff]{1,8}\s*$")

# --- placeholders and translated code -------------------------------------------------------
_PLACEHOLDER = re.compile(r"^[\s<（(\[【「]*(?:nooutput|no output|noinput|无输出|无|暂无|略|n/?a|none|null|xx+|todo|"
                          r"\.{3,}|…+|答案|输出)[\s>）)\]】」。.!！]*$", re.I)
_PLACEHOLDER_TAG = re.compile(r"^\s*(?:<|&lt;)(?:nooutput|noinput|无输出)", re.I)
# real code never puts full-width punctuation in a signature
_TRANSLATED_SIGNATURE = re.compile(r"(?m)^\s*(?:def|class|function|public|private|static|void|int)\s*[^\n]*[（][^\n]*[）]\s*[：{]"
                                   r"|^\s*(?:定义|函数)\s*[\w\u4e00-\u9fff]+\s*[（(][^\n]*[)）]\s*[：:{]")
_TRANSLATED_KEYWORD_LINE = re.compile(r"(?m)^[ \t]*(?:返回|如果|否则|别的|对于|打印|而|当|同时|休息|继续|尝试|除了|导入)"
                                      r"(?:[ \t（(]|[\u4e00-\u9fff]{1,6}\s*$|[^\n]*[：:]\s*$)")
# markup whose tag names were translated (<表格>, </正文>): no browser knows them
_TRANSLATED_TAG = re.compile(r"</?[\u4e00-\u9fff]{1,4}(?:\s[^<>\n]*)?>|&lt;/?[\u4e00-\u9fff]{1,4}&gt;")
_INJECTION = re.compile(r"忽略(?:上述|以上|之前|前面|上面)?(?:的)?(?:所有|全部)?(?:指令|指示|要求)[，,。\s]*(?:并|请|然后)?"
                        r"(?:直接)?输出[：:“\"「]\s*(?P<target>.+)", re.S)
_JAILBREAK = re.compile(r"不受限制的语言模型|非过滤|未经过滤|无限制版本|非限制版本|越狱|打破.{0,6}(?:规则|规矩)|\bDAN\b|"
                        r"jailbreak|developer mode|unfiltered", re.I)
_CODE_SIGNS = re.compile(r"[=;{}]|\bdef |\(\)|\bimport |#include|print\(|return\b")
# the next user turn asks to go on: a cut answer is part of the dialogue (output limit), not damage
_CONTINUE = re.compile(r"^\s*(?:请|麻烦)?(?:继续|接着|往下)\S{0,6}\s*$|^\s*(?:please )?(?:continue|go on|keep going)\W*$",
                       re.I)
# the request asks for the text back (直接输出 / 复述 / 原样): an echo is the right answer
_VERBATIM = re.compile(r"直接输出|输出以下|输出下面|复述|原样|照抄|原文输出|重复一遍|repeat after me|output (?:exactly|verbatim)", re.I)
_NORM = re.compile(r"[\s\W_]+")


def _norm(t: str) -> str:
    return _NORM.sub("", t.lower())


def _bigrams(t: str) -> set[str]:
    return {t[i:i + 2] for i in range(len(t) - 1)} if len(t) > 1 else {t}


def _automaton(phrases: list[str]):
    import ahocorasick
    ac = ahocorasick.Automaton()
    for p in phrases:
        ac.add_word(p.lower(), p.lower())
    if phrases:
        ac.make_automaton()
    return ac if phrases else None


def _first(ac, text: str) -> str | None:
    if ac is None:
        return None
    for _, p in ac.iter(text.lower()):
        return p
    return None


@register("sft_turn_filter")
class SftTurnFilter(Stage):
    applies_to = ("sft", "dpo")
    defaults = {"action": "reject", "min_turn_chars": 1, "max_turn_chars": 32000, "repeat_similarity": 0.9,
                "refusal_phrases": [], "use_default_refusals": True, "harm_terms": [],
                "refusal_min_help_chars": 20, "disclaimer_min_help_chars": 10, "truncation_min_chars": 20,
                "on_turn_failure": "reject", "check": list(CHECKS)}
    rules = {"action": one_of("reject", "flag"), "on_turn_failure": one_of(*TURN_POLICIES),
             "check": each(one_of(*CHECKS)), "min_turn_chars": COUNT, "max_turn_chars": POSITIVE,
             "repeat_similarity": RATIO, "refusal_min_help_chars": COUNT, "disclaimer_min_help_chars": COUNT,
             "truncation_min_chars": COUNT}

    def setup(self, ctx) -> None:
        defaults = self.use_default_refusals
        self._decline_re = DECLINE_RE if defaults else None
        self._decline = _automaton(list(self.refusal_phrases))
        self._disclaim = _automaton(DISCLAIMER_PHRASES if defaults else [])
        self._harm = _automaton(HARM_TERMS + list(self.harm_terms))
        from .blacklist import DEFAULT_CATEGORIES, Matcher, list_path, read_list
        self._harm_lists = Matcher({c: read_list(list_path(c)) for c in DEFAULT_CATEGORIES})
        self._on = set(self.check)

    # ------------------------------------------------------------------ measuring
    def answers(self, record: Record) -> list[tuple[int, str, str, str]]:
        """(turn index, question, answer, role) for every assistant/chosen/rejected turn."""
        out = []
        last_q = ""
        msgs = record.messages or ()
        for i, m in enumerate(msgs):
            if m["role"] == "user":
                last_q = m["content"]
            elif m["role"] == "assistant":
                out.append((i, last_q, m["content"], "assistant"))
        if record.kind == "dpo":
            out.append((CHOSEN, last_q, record.chosen or "", "chosen"))
            out.append((REJECTED, last_q, record.rejected or "", "rejected"))
        return out

    def refusal(self, question: str, answer: str) -> tuple[str, str] | None:
        """(kind, phrase): kind is ``harmful_request`` (kept), ``refusal`` (rejected) or None."""
        m = self._decline_re.search(answer) if self._decline_re else None
        phrase = m.group(0).lower() if m else _first(self._decline, answer)
        if phrase and phrase in question.lower():
            phrase = None  # the answer rewrites or quotes the request (我似乎永远无法完成工作 -> …无法完成任务)
        declined = phrase is not None
        if not declined:
            phrase = _first(self._disclaim, answer)
        if phrase is None:
            # no refusal wording, but a harmful request answered with why it is wrong
            # (这种行为是违法的…): a safety answer all the same
            return ("harmful_request", "") if _POLICY_WORDS.search(answer) and self.harmful(question) else None
        if self.harmful(question):
            return ("harmful_request", phrase)
        if declined and _POLICY_WORDS.search(answer):
            # the answer says why the request is not acceptable (illegal, unethical, offensive):
            # a safety refusal whose request the lexicon did not know
            return ("policy_refusal", phrase)
        help_chars = sum(len(s) for s in _SENTENCE.findall(answer) if phrase not in s.lower())
        if help_chars < (self.refusal_min_help_chars if declined else self.disclaimer_min_help_chars):
            return ("refusal", phrase)  # nothing but the refusal or the disclaimer on a benign request
        return None

    def harmful(self, question: str) -> bool:
        return bool(_first(self._harm, question) or self._harm_lists.counts(question))

    def truncated(self, answer: str, min_chars: int | None = None) -> str | None:
        """The truncation signal found at the end of ``answer``, or None."""
        a = answer.rstrip()
        if len(a) < (self.truncation_min_chars if min_chars is None else min_chars):
            return None  # short answers ("好的") are complete by convention
        if a.count("```") % 2:
            return "unclosed_fence"
        if _ENDS_MID.search(a):
            return "ends_mid_sentence"
        if _ENDS_COLON.search(a):
            return "ends_announcing"
        if self._unclosed_at_end(_FENCE_BLOCK.sub("", a)):
            return "unclosed_bracket"
        if _EN_CONNECTIVE.search(a) and not re.search(r"[.!?。！？]\s*\S*$", a):
            return "ends_on_connective"
        m = _TAIL_WORD.search(a)
        if m and self._last_word(m.group(0).strip()) in _ZH_CONNECTIVES:
            return "ends_on_connective"
        return None

    @staticmethod
    def _unclosed_at_end(prose: str, window: int = 80) -> bool:
        """An opener left open in the last line, near the end: the text stopped inside it.  An
        opener missing its closer earlier (a typo in a formula) is not a truncation."""
        open_at: list[int] = []
        for i, ch in enumerate(prose):
            if ch in _OPENERS:
                open_at.append(i)
            elif ch in _CLOSERS and open_at:
                open_at.pop()
        last_line = prose.rfind("\n") + 1
        return bool(open_at) and open_at[-1] >= max(last_line, len(prose) - window)

    def _last_word(self, tail: str) -> str:
        if not hasattr(self, "_seg"):
            from ._segment import Segmenter
            self._seg = Segmenter()
        words = self._seg.lcut(tail)
        return words[-1] if words else ""

    @staticmethod
    def placeholder(answer: str) -> bool:
        return bool(_PLACEHOLDER.match(answer) or _PLACEHOLDER_TAG.match(answer))

    @staticmethod
    def translated_code(answer: str) -> int:
        """Lines of machine-translated code (0 when none)."""
        tags = _TRANSLATED_TAG.findall(answer)
        # used as markup: a translated closing tag exists (<匿名> placeholders have none)
        marked_up = any(t.startswith(("</", "&lt;/")) for t in tags)
        sig = len(_TRANSLATED_SIGNATURE.findall(answer)) + (len(tags) - 1 if marked_up else 0)
        kw = len(_TRANSLATED_KEYWORD_LINE.findall(answer))
        # lines such as 如果你真的努力 are also lyrics: keyword lines need code around them
        return sig + kw if sig or (kw >= 2 and _CODE_SIGNS.search(answer)) else 0

    @staticmethod
    def followed_injection(question: str, answer: str) -> bool:
        m = _INJECTION.search(question)
        if not m:
            return False
        target = _norm(m.group("target"))
        return len(target) >= 6 and target[:40] in _norm(answer)

    def similarity(self, q: str, a: str) -> float:
        nq, na = _norm(q), _norm(a)
        if not nq or not na:
            return 0.0
        if na == nq or (na in nq and len(na) >= 0.8 * len(nq)):
            return 1.0
        bq, ba = _bigrams(nq), _bigrams(na)
        return len(bq & ba) / len(bq | ba)

    # ------------------------------------------------------------------ deciding
    def _turn_failures(self, record: Record) -> tuple[list, dict]:
        on = self._on
        failures: list = []
        lens = []
        indexed = [(i, m["content"]) for i, m in enumerate(record.messages or ())]
        if record.kind == "dpo":
            indexed += [(CHOSEN, record.chosen or ""), (REJECTED, record.rejected or "")]
        for i, text in indexed:
            n = len(text.strip())
            lens.append(n)
            if "empty_turn" in on and n < self.min_turn_chars:
                failures.append((i, "empty_turn", n, self.min_turn_chars, {}))
            if "turn_too_long" in on and n > self.max_turn_chars:
                failures.append((i, "turn_too_long", n, self.max_turn_chars, {}))
        sims = []
        refusals: dict = {}  # kind -> count, and "turns": indices of kept safety refusals
        for i, q, a, role in self.answers(record):
            if not a.strip():
                continue
            if "answer_repeats_question" in on and q and not _VERBATIM.search(q):
                sim = self.similarity(q, a)
                sims.append(sim)
                if sim >= self.repeat_similarity:
                    failures.append((i, "answer_repeats_question", round(sim, 3), self.repeat_similarity, {}))
            if role == "rejected":  # a dispreferred answer is allowed to be bad: that is its job
                continue
            continued = 0 <= i < len(record.messages or ()) - 1 and \
                bool(_CONTINUE.match(record.messages[i + 1]["content"]))
            self._answer_failures(i, q, a, failures, refusals, continued)
        msgs = record.messages or []
        if record.kind == "sft" and "no_answer" in on and not any(m["role"] == "assistant" for m in msgs):
            failures.append((max(0, len(msgs) - 1), "no_answer", None, None, {}))
        if record.kind == "dpo" and "identical_pair" in on and _norm(record.chosen or "") == _norm(record.rejected or ""):
            failures.append((CHOSEN, "identical_pair", None, None, {}))
        sig = {"turns": len(lens), "min_turn_chars": min(lens) if lens else 0, "max_turn_chars": max(lens) if lens else 0,
               "max_qa_similarity": round(max(sims), 3) if sims else 0.0, "flags": sorted({f[1] for f in failures})}
        if refusals:
            sig["refusals"] = refusals
        return failures, sig

    def _answer_failures(self, i: int, q: str, a: str, failures: list, refusals: dict, continued: bool) -> None:
        on = self._on
        if "placeholder_answer" in on and self.placeholder(a):
            failures.append((i, "placeholder_answer", a.strip()[:20], None, {}))
            return
        if "refusal" in on:
            r = self.refusal(q, a)
            if r:
                refusals[r[0]] = refusals.get(r[0], 0) + 1
                if r[0] == "refusal":
                    failures.append((i, "refusal", r[1], None, {}))
                else:  # a safety refusal names the harm it refuses: later rules must not count that
                    refusals.setdefault("turns", []).append(i)
        if "truncated_answer" in on and not continued:
            why = self.truncated(a)
            if why:
                failures.append((i, "truncated_answer", a.rstrip()[-12:], None, {"signal": why}))
        if "followed_jailbreak" in on and _JAILBREAK.search(q) and not DECLINE_RE.search(a):
            failures.append((i, "followed_jailbreak", None, None, {}))
            return
        if "followed_injection" in on and self.followed_injection(q, a):
            failures.append((i, "followed_injection", None, None, {}))
        if "translated_code" in on:
            n = self.translated_code(a)
            if n:
                failures.append((i, "translated_code", n, None, {}))

    def process(self, record: Record) -> Record:
        failures, sig = self._turn_failures(record)
        record.signals()["sft"] = sig
        if not failures:
            return record
        self.count("flagged")
        if self.action != "reject":
            return record
        return apply_turn_failures(self, record, failures, self.on_turn_failure)


__all__ = ["SftTurnFilter", "CHECKS", "ANSWER_ROLES"]
