"""SFT-aware checks of conversations and preference pairs, per turn.

A short answer like "好的。" is fine in a dialogue, so the length rules here are per
turn with dialogue-sized defaults.  Flags (reason codes): ``empty_turn``,
``answer_repeats_question``, ``refusal`` (boilerplate such as 作为一个AI语言模型…),
``truncated_answer`` (ends mid-sentence), ``turn_too_long``.  With ``action: flag`` a
record is only annotated (``signals["sft"]["flags"]``), with ``reject`` the first
flag rejects it.
"""
from __future__ import annotations

import re

from ..pipeline import Stage, register
from ..records import Record

DEFAULT_REFUSALS = [
    "作为一个ai语言模型", "作为一个人工智能语言模型", "作为ai语言模型", "作为一个ai助手", "作为一名ai语言模型",
    "作为一个语言模型", "作为人工智能，我", "我只是一个ai", "我只是一个语言模型", "我是一个ai语言模型",
    "我无法提供此类", "我不能提供此类", "抱歉，我无法回答", "很抱歉，我不能回答", "对不起，我无法", "我没有个人观点",
    "我没有个人情感", "as an ai language model", "as a language model", "i'm sorry, but i cannot",
    "i am sorry, but i cannot", "i cannot fulfill", "i'm unable to assist", "as an ai, i",
]
# an answer may end with these and be complete
_COMPLETE_END = re.compile(r"[。！？!?.…~～)）\]】」』”\"'’》>:：;；*`|\-—_=#%\d]\s*$|[\U0001F300-\U0001FAFF\u2600-\u27BF]\s*$")
_ENDS_WORDY = re.compile(r"[\u4e00-\u9fffA-Za-z，,、]\s*$")
_ENDS_COMMA = re.compile(r"[，,、]\s*$")
_LIST_ITEM = re.compile(r"^(?:[-*•·]|\d{1,3}[.、)）]|[（(]\d{1,3}[)）]|[A-Za-z][.、)）])\s*")
_INNER_PUNCT = re.compile("[，。；,;]")
_NORM = re.compile(r"[\s\W_]+")


def _norm(t: str) -> str:
    return _NORM.sub("", t.lower())


def _bigrams(t: str) -> set[str]:
    return {t[i:i + 2] for i in range(len(t) - 1)} if len(t) > 1 else {t}


@register("sft_turn_filter")
class SftTurnFilter(Stage):
    applies_to = ("sft", "dpo")
    defaults = {"action": "reject", "min_turn_chars": 1, "max_turn_chars": 32000, "repeat_similarity": 0.9,
                "refusal_phrases": [], "use_default_refusals": True, "truncation_min_chars": 20,
                "truncation_min_line_chars": 30,
                "check": ["empty_turn", "answer_repeats_question", "refusal", "truncated_answer", "turn_too_long"]}

    def setup(self, ctx) -> None:
        phrases = (DEFAULT_REFUSALS if self.use_default_refusals else []) + [p.lower() for p in self.refusal_phrases]
        import ahocorasick
        self._ac = ahocorasick.Automaton()
        for p in phrases:
            self._ac.add_word(p, p)
        self._has_refusals = bool(phrases)
        if phrases:
            self._ac.make_automaton()
        self._on = set(self.check)

    def answers(self, record: Record) -> list[tuple[str, str, str]]:
        """(question, answer, role) for every assistant/chosen/rejected turn."""
        out = []
        last_q = ""
        for m in record.messages or ():
            if m["role"] == "user":
                last_q = m["content"]
            elif m["role"] == "assistant":
                out.append((last_q, m["content"], "assistant"))
        if record.kind == "dpo":
            out.append((last_q, record.chosen or "", "chosen"))
            out.append((last_q, record.rejected or "", "rejected"))
        return out

    def refusal(self, answer: str) -> str | None:
        if not self._has_refusals:
            return None
        for _, p in self._ac.iter(answer.lower()):
            return p
        return None

    @staticmethod
    def truncated(answer: str, min_chars: int, min_line_chars: int = 30) -> bool:
        a = answer.rstrip()
        if len(a) < min_chars:  # short answers ("好的") are complete by convention
            return False
        if a.count("```") % 2:  # an unclosed code fence
            return True
        if _ENDS_COMMA.search(a):  # stopped right after a comma: cut mid-sentence
            return True
        if _COMPLETE_END.search(a) or not _ENDS_WORDY.search(a):
            return False
        # ends in a letter/ideograph.  A short last line is a label, list item or answer key
        # (4. 呆在房间里 / 输出：True / 正确选项是B); a long prose line with inner punctuation
        # but no end mark was cut off (…其中最著名的一段是)
        last = a.rsplit("\n", 1)[-1].strip()
        return len(last) >= min_line_chars and not _LIST_ITEM.match(last) and bool(_INNER_PUNCT.search(last))

    def similarity(self, q: str, a: str) -> float:
        nq, na = _norm(q), _norm(a)
        if not nq or not na:
            return 0.0
        if na == nq or (na in nq and len(na) >= 0.8 * len(nq)):
            return 1.0
        bq, ba = _bigrams(nq), _bigrams(na)
        return len(bq & ba) / len(bq | ba)

    def process(self, record: Record) -> Record:
        flags: list[tuple[str, object]] = []
        on = self._on
        lens = []
        for role, text in record.segments():
            n = len(text.strip())
            lens.append(n)
            if "empty_turn" in on and n < self.min_turn_chars:
                flags.append(("empty_turn", n))
            if "turn_too_long" in on and n > self.max_turn_chars:
                flags.append(("turn_too_long", n))
        sims = []
        for q, a, role in self.answers(record):
            if not a.strip():
                continue
            if "answer_repeats_question" in on and q:
                sim = self.similarity(q, a)
                sims.append(sim)
                if sim >= self.repeat_similarity:
                    flags.append(("answer_repeats_question", round(sim, 3)))
            # a dispreferred (rejected) DPO answer is allowed to be bad: that is its job
            if role == "rejected":
                continue
            if "refusal" in on:
                p = self.refusal(a)
                if p:
                    flags.append(("refusal", p))
            if "truncated_answer" in on and self.truncated(a, self.truncation_min_chars, self.truncation_min_line_chars):
                flags.append(("truncated_answer", a.rstrip()[-10:]))
        sig = {"turns": len(lens), "min_turn_chars": min(lens) if lens else 0, "max_turn_chars": max(lens) if lens else 0,
               "max_qa_similarity": round(max(sims), 3) if sims else 0.0, "flags": sorted({f for f, _ in flags})}
        record.signals()["sft"] = sig
        if flags:
            self.count("flagged")
            if self.action == "reject":
                reason, value = flags[0]
                thr = {"empty_turn": self.min_turn_chars, "turn_too_long": self.max_turn_chars,
                       "answer_repeats_question": self.repeat_similarity}.get(reason)
                return self.reject(record, reason, value, thr, flags=sig["flags"])
        return record
