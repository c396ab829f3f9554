"""The shipped recipes load and run end to end on a small fixture."""
import json

import pytest

from thresher.config import load_recipe, validate
from thresher.executor.runner import run_recipe
from thresher.io.readers import iter_records

GOOD_DOC = ("记者今天从北京市交通委获悉，地铁十九号线将在年底前开通试运营。这条线路全长二十二公里，共设十座车站。"
            "开通后，从南四环到北三环的通勤时间将缩短一半左右。市民普遍对此表示欢迎，他们认为这会大大方便日常出行。")


def _web_fixture(d):
    docs = [
        {"text": GOOD_DOC + "联系电话13812345678。"},                          # kept, phone masked
        {"text": "<p>" + GOOD_DOC.replace("，", "，　") + "</p><script>x()</script>"},  # kept, HTML stripped
        {"text": "好的"},                                                        # too short
        {"text": "This English page is about cooking pasta at home with fresh tomatoes and basil. " * 3},
        {"text": "澳门葡京娱乐城百家乐，首存送彩金，注册送38元，老虎机六合彩时时彩，返水最高，欢迎下注！" * 2},
        {"text": "\n".join(["点击查看更多精彩内容，欢迎关注。"] * 12)},
    ]
    p = d / "web_zh.jsonl"
    p.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in docs) + "\n", encoding="utf-8")
    return p


def _sft_fixture(d):
    rows = [
        {"instruction": "帮我订一张明天去上海的机票", "input": "", "output": "好的。"},
        {"instruction": "介绍一下长城", "input": "", "output": "长城是中国古代的军事防御工程，始建于春秋战国时期，全长两万多公里。"},
        {"instruction": "写首诗", "input": "", "output": "作为一个AI语言模型，我无法真正体会诗歌，但我可以尝试写一首。"},
        {"instruction": "请解释什么是机器学习？", "input": "", "output": "请解释什么是机器学习"},
        {"instruction": "介绍一下黄河", "input": "", "output": "黄河是中国第二长河，发源于青海省巴颜喀拉山脉，流经九个省区，最终注入渤海。它的主要支流包括"},
    ]
    p = d / "sft_alpaca.jsonl"
    p.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in rows) + "\n", encoding="utf-8")
    return p


def _run(name, inputs, out):
    recipe = load_recipe(name)
    recipe["inputs"] = [{"path": str(p)} for p in inputs]
    recipe["output"]["dir"] = str(out)
    stats = run_recipe(validate(recipe))
    kept = list(iter_records(str(out / "kept")))
    rejected = list(iter_records(str(out / "rejected")))
    return stats, kept, rejected


@pytest.mark.parametrize("name", ["pretrain-zh", "sft-zh"])
def test_shipped_recipe_loads(name):
    r = load_recipe(name)
    assert r["name"] == name and len(r["stages"]) >= 10


def test_pretrain_recipe_end_to_end(tmp_path):
    stats, kept, rejected = _run("pretrain-zh", [_web_fixture(tmp_path)], tmp_path / "out")
    assert stats["conserved"] and stats["counts"]["in"] == 6
    texts = [r.text for r in kept]
    # the two good documents are one text (one HTML-wrapped): minhash keeps one of them
    assert len(kept) == 1, [r.meta.get("reject") for r in rejected]
    assert any("<PHONE>" in t for t in texts + [r.text for r in rejected])
    assert all("13812345678" not in (r.text or "") for r in kept + rejected)
    assert all("<p>" not in t and "x()" not in t and "　" not in t for t in texts)
    reasons = {r.meta["reject"]["reason"] for r in rejected}
    assert {"too_few_words", "wrong_language", "blacklist:gambling", "near_dup"} <= reasons
    assert reasons & {"dup_line_frac", "dup_ngram", "top_ngram"}
    per_stage = stats["stages"]
    assert any("pii_masker" in k for k in per_stage)


def test_sft_recipe_end_to_end(tmp_path):
    stats, kept, rejected = _run("sft-zh", [_sft_fixture(tmp_path)], tmp_path / "out")
    assert stats["conserved"] and stats["counts"]["in"] == 5
    answers = [r.answer_text() for r in kept]
    assert "好的。" in answers  # a short answer is fine in dialogue
    reasons = sorted(r.meta["reject"]["reason"] for r in rejected)
    assert reasons == ["answer_repeats_question", "refusal", "truncated_answer"]
