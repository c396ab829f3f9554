"""Cheap, model-free scorers: heuristic quality (all kinds) and heuristic difficulty (SFT/DPO).

Both are pure functions of the text (plus the cleaning signals already in
``meta["signals"]``), cost well under a millisecond per record, and need no fit.

Heuristic quality, in [0, 1], is a weighted geometric mean of component scores, each
in [0, 1], times multiplicative penalties from the cleaning stages' measurements::

    length     = min(1, log(1 + chars) / log(1 + target_chars))     # target 2000: graded, not a 400-char cliff
    clean      = 1 - min(1, special_ratio / 0.2)             # emoji, symbols, box drawing
    script     = (cjk + latin letters + digits) / non-space chars, mapped through min(1, x / 0.7)
    punct      = 1 - exp(-terminal marks per 100 chars / 1.5)  # graded: 1/100 -> 0.49, 3/100 -> 0.86
    repetition = 1 - max(dup_line_char_frac, 2 x (1 - distinct 4-gram ratio)) over the first 4k chars
    ending     = 1 if the text ends a sentence (or is a short title), else 0.7 (cut mid-sentence)
    markup, boiler: tags/URLs/contact residue, web boilerplate phrases

    penalties  = 0.5 per SFT flag (refusal, truncated_answer, answer_repeats_question,
                 empty_turn);
                 blacklist: for the categories of ``signals["blacklist"]`` (the filter writes
                 ``{category: {"hits", "per_kchar"}}``), exp(-0.1 min(hits, 10) - per_kchar / 5)
                 summed over categories;
                 spam: 1 - ``signals["spam"]["score"]`` (``spam_filter``, measured before
                 boilerplate trimming, so the evidence survives the trim)

v2 bunched real documents between 0.93 and 0.98 (components saturated at 400 chars and one
terminal mark per 100 chars); v3's graded terms spread CLUECorpusSmall and Sogou over [0, 1]
(benchmarks/results/scoring_spam_quality.md has the histograms).

Heuristic difficulty, in [0, 1], for instruction data; a weighted sum of
instruction length, instruction structure (constraints, enumerations, multiple
questions), answer length, reasoning/step markers, code and math presence, and the
answer's lexical diversity (jieba type-token ratio).  It approximates "how much work
is the answer" without a model; IFD (``lm.py``) measures it with one.
"""
from __future__ import annotations

import math
import re

from .. import meta as M
from ..pipeline import POSITIVE, Stage, register, text
from ..records import Record
from ._common import jieba_mod, set_score

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SCRIPT_RE = re.compile(f"[{_CJK}A-Za-z0-9]")
_SPACE_RE = re.compile(r"\s")
_PUNCT = "，。、；：？！“”‘’（）《》【】「」…—～·!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_SPECIAL_RE = re.compile("[^" + _CJK + r"A-Za-z0-9\s" + re.escape(_PUNCT) + "]")
_TERMINAL_RE = re.compile(r"[。！？!?；;…]|\.(?:\s|$)")
# markup and contact residue that survives extraction: tags, entities, URLs, e-mails, phone numbers
_MARKUP_RE = re.compile(r"</?[A-Za-z][^<>\n]{0,200}>|&(?:[a-z]{2,8}|#\d{2,6});|https?://\S+|www\.\S+|"
                        r"[\w.+-]+@[\w-]+\.[\w.]+|(?<!\d)1[3-9]\d{9}(?!\d)")
# generic web boilerplate / promotion phrases (zh + en), not a blacklist: each hit halves nothing, see below
_BOILER_RE = re.compile(r"版权所有|保留所有权利|免责声明|责任编辑|上一篇|下一篇|返回首页|分享到|扫码|二维码|公众号|加微信|"
                        r"点击(?:下方|链接|这里|查看)|立即购买|限时优惠|领取|注册即送|转载请注明|"
                        r"\b(?:all rights reserved|click here|subscribe|sign up|terms of use|privacy policy|"
                        r"cookie policy|share this)\b", re.I)
_SFT_FLAGS = ("refusal", "truncated_answer", "answer_repeats_question", "empty_turn")


def _count(regex: re.Pattern, text: str) -> int:
    return len(text) - len(regex.sub("", text))


def quality_components(text: str, target_chars: int = 2000) -> dict[str, float]:
    n = len(text)
    if n == 0:
        return {k: 0.0 for k in _Q_WEIGHTS}
    nonspace = max(1, n - _count(_SPACE_RE, text))
    length = min(1.0, math.log1p(n) / math.log1p(target_chars))
    clean = 1.0 - min(1.0, (_count(_SPECIAL_RE, text) / nonspace) / 0.2)
    script = min(1.0, (_count(_SCRIPT_RE, text) / nonspace) / 0.7)
    terminals = len(_TERMINAL_RE.findall(text))
    # short texts (titles, one-liners) legitimately end without a mark: judge per 100 chars only past 50
    punct = 1.0 - math.exp(-(terminals * 100 / n) / 1.5) if n > 50 else (1.0 if terminals else 0.6)
    head = text[:4000]
    grams = [head[i:i + 4] for i in range(max(0, len(head) - 3))]
    ngram_rep = 1 - len(set(grams)) / len(grams) if len(grams) >= 20 else 0.0
    lines = [x.strip() for x in head.split("\n") if x.strip()]
    seen, dup_chars = set(), 0
    for ln in lines:
        if ln in seen:
            dup_chars += len(ln)
        seen.add(ln)
    line_rep = dup_chars / max(1, sum(len(x) for x in lines))
    repetition = 1.0 - min(1.0, max(line_rep, 2 * ngram_rep))
    ending = 1.0 if n <= 50 or _END_RE.search(text[-20:]) else 0.7
    markup_chars = sum(len(m) for m in _MARKUP_RE.findall(text))
    markup = 1.0 - min(1.0, (markup_chars / nonspace) / 0.1)
    boiler = 0.6 ** min(3, len(_BOILER_RE.findall(text)))
    return {"length": length, "clean": clean, "script": script, "punct": punct, "repetition": repetition,
            "ending": ending, "markup": markup, "boiler": boiler}


_END_RE = re.compile(r"[。！？!?…」』”\"）)】.》~～]\s*$")
# v2 added markup and boiler (v1's five terms gave ROC AUC 0.64 on the demo's clean-vs-noisy docs);
# v3 grades length/punct/repetition and adds ending (see the module docstring)
_Q_WEIGHTS = {"length": 0.5, "clean": 0.2, "script": 0.2, "punct": 0.5, "repetition": 0.5, "ending": 0.5,
              "markup": 0.5, "boiler": 1.0}


def blacklist_penalty(blacklist: dict | None) -> float:
    """From ``signals["blacklist"] = {category: {"hits", "per_kchar"}}`` (what blacklist_filter
    writes): one hit in a long article costs ~10%, a dense cluster of hits most of the score."""
    if not isinstance(blacklist, dict):
        return 1.0
    z = 0.0
    for v in blacklist.values():
        if isinstance(v, dict):
            z += 0.1 * min(int(v.get("hits") or 0), 10) + float(v.get("per_kchar") or 0) / 5
    return math.exp(-z)


def quality_penalty(signals: dict) -> float:
    pen = 1.0
    flags = (signals.get(M.SFT_SIGNAL) or {}).get("flags") or []
    pen *= 0.5 ** sum(1 for f in flags if f in _SFT_FLAGS)
    pen *= blacklist_penalty(signals.get(M.BLACKLIST_SIGNAL))
    spam = signals.get(M.SPAM_SIGNAL)
    if isinstance(spam, dict) and spam.get("score") is not None:
        pen *= 1.0 - min(1.0, max(0.0, float(spam["score"])))
    return pen


def heuristic_quality(text: str, signals: dict | None = None, target_chars: int = 2000) -> float:
    comp = quality_components(text, target_chars)
    score = 1.0
    for k, w in _Q_WEIGHTS.items():
        score *= max(comp[k], 1e-3) ** w
    return score * quality_penalty(signals or {})


@register("quality_heuristic")
class HeuristicQuality(Stage):
    """Writes ``meta["scores"]["quality_heuristic"]``; rejects nothing (tiers decide)."""

    version = "3"  # 3: graded terms (v2 bunched at 0.93-0.98), blacklist/spam signals read as written
    defaults = {"target_chars": 2000, "score_name": M.score_key("quality_heuristic")}
    rules = {"target_chars": POSITIVE, "score_name": text}

    def process(self, record: Record) -> Record:
        text = record.full_text() if record.kind == "text" else record.answer_text() or record.full_text()
        set_score(record, self.score_name, heuristic_quality(text, M.signals(record), self.target_chars),
                  f"{self.name}/{self.version}")
        self.count("scored")
        return record


# --- difficulty ---------------------------------------------------------------------
# Each pattern has a Chinese and an English half: the features must mean the same in both.
_STEP_RE = re.compile(r"首先|其次|然后|接着|最后|因此|所以|由于|综上|第[一二三四五六七八九十\d]+步|步骤|"
                      r"\b(?:first|second|then|next|finally|therefore|thus|because|hence|step)\b", re.I)
_ENUM_RE = re.compile(r"(?m)^\s*(?:\d+[.)、]|[-*•]|[一二三四五六七八九十]+、|\(\d+\))\s*")
_CONSTRAINT_RE = re.compile(r"要求|必须|不要|不能|至少|至多|不超过|以内|格式|分别|并且|同时|限制|"
                            r"\d+\s*(?:个|字|句|行|条|点|段|种)|"
                            r"\b(?:must|should|at least|at most|no more than|less than|format|each|without|include|"
                            r"exactly|\d+\s*(?:words?|sentences?|lines?|items?|examples?|points?))\b", re.I)
_QUESTION_RE = re.compile(r"[？?]")
_CODE_RE = re.compile(r"```|\bdef |\bclass |\breturn\b|#include|\bimport |;\s*$|\{\s*$|=>|\bSELECT\b", re.M | re.I)
_MATH_RE = re.compile(r"\$[^$]+\$|\\frac|\\sum|\\int|\d+\s*[-+*/×÷^=]\s*\d+|方程|求解|证明|概率|\b(?:solve|equation|prove|"
                      r"calculate|integral|probability)\b", re.I)
# task type, from the instruction's wording (how the PhasedSFT GPT-4 labels differ, see docs/scoring.md)
_OPEN_RE = re.compile(r"解释|说明|描述|介绍|比较|对比|总结|概括|为什么|为何|如何|怎么|怎样|什么是|谈谈|"
                      r"\b(?:explain|describe|compare|contrast|summari[sz]e|why|how|what is|what are|outline|discuss)\b",
                      re.I)
_CREATE_RE = re.compile(r"创作|设计|构建|构造|编写|编一|写一[首篇段个]|作一首|谱写|"
                        r"\b(?:compose|design|construct|invent|program|algorithm|poem|song|lyrics|slogan|logo)\b", re.I)
_SOLVE_RE = re.compile(r"计算|求出|求解|解方程|解下列|解答|判断|预测|分类|找出|推断|推理|识别|确定|归类|改写|"
                       r"\b(?:find|calculate|compute|solve|determine|predict|classify|identify|infer|deduce|"
                       r"rearrange|convert|edit|rewrite|evaluate|estimate)\b", re.I)
# needs what a text-only model lacks: links, live data, images, sound
_EXTERNAL_RE = re.compile(r"https?://|www\.|网址|链接|网站|实时|最新|当前|今天|股价|股票|图片|图像|照片|视频|音频|画一|绘制|"
                          r"\b(?:url|link|website|current|latest|today|stock|image|photo|picture|video|audio|draw|"
                          r"logo|chart|graph)\b", re.I)
_TOKEN_RE = re.compile(r"\w+", re.U)
_UNIT_RE = re.compile(f"[{_CJK}]|[A-Za-z0-9]+")


def _units(text: str) -> int:
    """Length that means the same in zh and en: CJK characters + latin/digit words."""
    return len(_UNIT_RE.findall(text))


# Fitted on a random half of PhasedSFT en-alpaca52k-stage3 (benchmarks/scoring_difficulty.py) by
# ridge regression on these [0, 1] terms, rescaled so |weights| sum to 1, then two priors:
# instr_len 0 (its fitted -0.22 comes from alpaca's pasted inputs; it would rank long zh maths
# problems easy) and code/math raised to 0.1 (fitted ~0.05/0.01; they matter little *inside*
# stage3, which is all hard, but separate task types elsewhere). Negative weights are real:
# in that GPT-4-labelled set long, open-ended explanations are the easier tasks. ``trivial`` is a
# prior too (-0.3): short instructions with no task verb (greetings) do not occur in that set.
_D_WEIGHTS = {"instr_len": 0.0, "instr_constraints": 0.049, "task_open": -0.047, "task_create": 0.066,
              "task_solve": 0.014, "needs_external": 0.23, "code": 0.109, "math": 0.109,
              "answer_len": -0.139, "answer_structure": 0.075, "reasoning": -0.056, "lexical_diversity": -0.106,
              "trivial": -0.3}
_D_BIAS = 0.05


def _squash(x: float, half: float) -> float:
    """x / (x + half): 0 at 0, 0.5 at ``half``, saturating towards 1."""
    return x / (x + half) if x > 0 else 0.0


def difficulty_components(instruction: str, answer: str, tokens: list[str] | None = None) -> dict[str, float]:
    if tokens is None:
        tokens = _TOKEN_RE.findall(answer)
    words = [t for t in tokens if t.strip() and _SCRIPT_RE.search(t)][:400]
    # type-token ratio falls with length by construction; compare on a fixed window
    window = words[:200]
    ttr = len(set(window)) / len(window) if len(window) >= 10 else 0.0
    head = instruction[:300]  # the task is stated first; a pasted input after it is not the task
    constraints = (len(_ENUM_RE.findall(instruction)) + len(_CONSTRAINT_RE.findall(instruction))
                   + max(0, len(_QUESTION_RE.findall(instruction)) - 1))
    both = instruction + "\n" + answer
    return {
        "instr_len": _squash(_units(instruction), 30),
        "instr_constraints": _squash(constraints, 2),
        "task_open": float(bool(_OPEN_RE.search(head))),
        "task_create": float(bool(_CREATE_RE.search(head))),
        "task_solve": float(bool(_SOLVE_RE.search(head))),
        "needs_external": float(bool(_EXTERNAL_RE.search(instruction))),
        "code": min(1.0, 0.5 * bool(_CODE_RE.search(both)) + 0.1 * len(_CODE_RE.findall(answer))),
        "math": float(bool(_MATH_RE.search(both))),
        "answer_len": _squash(_units(answer), 150),
        "answer_structure": _squash(len(_ENUM_RE.findall(answer)) + answer.count("\n\n"), 3),
        "reasoning": _squash(len(_STEP_RE.findall(answer)), 3),
        "lexical_diversity": ttr,
        # greetings/chit-chat: absent from PhasedSFT (all tasks there), so the fit cannot learn them
        "trivial": float(_units(instruction) < 8 and not (_SOLVE_RE.search(head) or _CREATE_RE.search(head)
                                                          or _MATH_RE.search(head) or _CODE_RE.search(head))),
    }


def heuristic_difficulty(instruction: str, answer: str, tokens: list[str] | None = None) -> float:
    """Logistic of the weighted terms, so the score stays in (0, 1); only its order matters to tiers."""
    comp = difficulty_components(instruction, answer, tokens)
    z = _D_BIAS + sum(_D_WEIGHTS[k] * comp[k] for k in _D_WEIGHTS)
    return 1.0 / (1.0 + math.exp(-4.0 * z))


@register("difficulty_heuristic")
class HeuristicDifficulty(Stage):
    """Writes ``meta["scores"]["difficulty_heuristic"]`` for SFT/DPO records."""

    version = "2"  # 2: PhasedSFT-fitted terms (v1 anti-correlated with the GPT-4 difficulty)
    applies_to = ("sft", "dpo")
    defaults = {"score_name": M.score_key("difficulty_heuristic"), "use_jieba": True}
    rules = {"score_name": text}

    def setup(self, ctx) -> None:
        self._cut = jieba_mod().lcut if self.use_jieba else None

    def process(self, record: Record) -> Record:
        instr, ans = record.prompt_text(), record.answer_text()
        toks = self._cut(ans[:1500]) if self._cut else None
        set_score(record, self.score_name, heuristic_difficulty(instr, ans, toks), f"{self.name}/{self.version}")
        self.count("scored")
        return record
