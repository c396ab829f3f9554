"""Normalisers change text and never drop it."""
import pytest

from .conftest import build, sft_rec, text_rec


def apply(name, text, **params):
    st = build(name, **params)
    r = st.process(text_rec(text))
    assert not r.is_rejected
    return r.text, st.stats


def test_fullwidth_letters_digits_but_not_chinese_punctuation():
    out, stats = apply("fullwidth_normalizer", "公安机关２０１２年销毁１０余万ＡＫ４７，（记者）说：“好！”")
    assert out == "公安机关2012年销毁10余万AK47，（记者）说：“好！”"
    assert stats["touched"] == 1


def test_fullwidth_untouched_text_not_counted():
    out, stats = apply("fullwidth_normalizer", "plain text 中文。")
    assert out == "plain text 中文。" and stats["touched"] == 0


def test_numerals():
    assert apply("numeral_normalizer", "步骤①打开②关闭；⑴甲⑵乙；⒈一")[0] == "步骤1打开2关闭；(1)甲(2)乙；1.一"


def test_homoglyphs_only_inside_latin_words():
    # Cyrillic Е and о inside Latin words are spam evasion; real Russian stays Russian
    out, _ = apply("homoglyph_normalizer", "Frее mоney! Привет мир")
    assert out == "Free money! Привет мир"


def test_invisible_and_escape_remnants_removed():
    out, stats = apply("invisible_char_remover", "北\u200b京<200b>欢\ufeff迎\\u200b你\x07\r\n第二行")
    assert out == "北京欢迎你\n第二行"
    assert stats["chars_removed"] > 0


def test_html_stripped_keeping_paragraphs():
    html = ("<html><head><title>t</title><style>p{}</style></head><body><nav>首页</nav>"
            "<p>第一段&amp;内容&nbsp;很好。</p><script>var x=1;</script><!-- c --><div>第二段<br>换行</div></body></html>")
    out, _ = apply("html_stripper", html)
    assert "var x" not in out and "<" not in out and "p{}" not in out
    assert "第一段&内容\xa0很好。" in out
    assert "\n" in out.split("第二段")[0]  # paragraphs become line breaks
    assert "第二段\n换行" in out


def test_html_stripper_leaves_plain_text_with_angle_brackets():
    t = "如果 a < b 且 b > c，那么成立。"
    assert apply("html_stripper", t)[0] == t


def test_punctuation_runs_collapsed_except_markdown():
    t = "太好了！！！真的吗？？？What??? ok...... 嗯……………\n---\n### 标题\n***"
    out, _ = apply("punctuation_collapser", t)
    assert out == "太好了！真的吗？What? ok... 嗯……\n---\n### 标题\n***"


def test_question_mark_inside_english_kept():
    t = "Is it ok? Yes. Why?! 真的？"
    assert apply("punctuation_collapser", t)[0] == t


def test_whitespace_next_to_cjk_removed_newlines_kept():
    out, _ = apply("whitespace_normalizer", "我 爱 北京 ， 天安门 。\n\n\n\n  第二段  has  two  spaces\n第三行")
    assert out == "我爱北京，天安门。\n\n第二段has two spaces\n第三行"


def test_whitespace_optionally_keeps_cjk_latin_spacing():
    out, _ = apply("whitespace_normalizer", "使用 Python 进行 分析", cjk_latin_space=True)
    assert out == "使用 Python 进行分析"


def test_t2s():
    out, _ = apply("t2s_converter", "這個軟體的開發者們")
    assert out == "这个软件的开发者们" or out == "这个软体的开发者们"


def test_t2s_skips_simplified_text():
    st = build("t2s_converter")
    r = st.process(text_rec("这是简体中文，没有需要转换的字。"))
    assert st.stats["touched"] == 0 and r.text == "这是简体中文，没有需要转换的字。"


def test_boilerplate_head_tail_trimmed_body_kept():
    t = ("首页\n新闻中心\n分享到：微博 微信\n"
         "记者今天从市政府获悉，地铁三号线将于明年通车。\n"
         "据介绍，该线路全长三十公里，设站二十座。\n"
         "市民可以通过微博关注最新进展，这条线路将连接城东与城西，方便上百万市民出行。\n"
         "责任编辑：王五\n版权所有 © 2019 某某网\n京ICP备12345号")
    out, stats = apply("boilerplate_trimmer", t)
    assert out.startswith("记者今天从市政府获悉")
    assert out.endswith("方便上百万市民出行。")  # a long body sentence mentioning 微博 is kept
    assert stats["chars_removed"] > 0


def test_boilerplate_stops_after_patience():
    t = "正文第一句很长很长，没有任何模板内容。\n正文第二句同样如此。\n正文第三句。\n版权所有"
    out, _ = apply("boilerplate_trimmer", t)
    assert out == "正文第一句很长很长，没有任何模板内容。\n正文第二句同样如此。\n正文第三句。"
    head_far = "正文一，很长的句子。\n正文二，很长的句子。\n正文三，很长的句子。\n首页\n" + t
    assert apply("boilerplate_trimmer", head_far)[0].startswith("正文一")


def test_normalizer_applies_to_every_sft_turn():
    st = build("fullwidth_normalizer")
    r = st.process(sft_rec("ＡＢＣ是什么？", "ＡＢＣ是字母。"))
    assert [m["content"] for m in r.messages] == ["ABC是什么？", "ABC是字母。"]
