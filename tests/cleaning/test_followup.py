"""Issue-3 follow-ups: fast segmenter parity, t2s probe, honest empty reasons, blacklist
recall on short comments, main-content extraction, SFT truncation false positives."""
import json
import os
import re

import pytest

from thresher.cleaning.quality import dup_ngram_chars

from .conftest import build, sft_rec, text_rec

SAMPLES = [
    "记者今天从北京市交通委获悉，地铁十九号线将在年底前开通试运营。",
    "使用Python 3.11进行数据清洗，速度提升了2.5倍！Hello, world.\r\n第二行\t有制表符",
    "他说：“我们明天去长城吧？”  我同意了……  C++ 和 C# 都是 100% 的编程语言",
    "ＡＢＣ全角，①②③ 以及 emoji 😀 和 &amp; 符号 -- a-b_c.d%e",
    "结婚的和尚未结婚的确实在干扰分词啊。" * 3,
    "",
    "   \n\n  ",
]


def test_segmenter_matches_jieba_exactly():
    import jieba
    from thresher.cleaning._segment import Segmenter
    seg = Segmenter()
    for s in SAMPLES:
        assert seg.lcut(s) == [w for w in jieba.lcut(s, HMM=False) if not w.isspace()], s


def test_dup_ngram_early_exit_keeps_long_ngram_values(tmp_path):
    qf = build("zh_quality_filter")
    # a repeated 6-word run: 5- and 6-grams repeat, 10-grams do not
    words = list("abcdef") + list("uvwxyzpqrs") + list("abcdef") + list("klmnoijhgt")
    assert dup_ngram_chars(words, 5) > 0 and dup_ngram_chars(words, 10) == 0
    s = {}
    qf._word_signals(s, words, "".join(words), [])
    assert s["dup_ngram_frac"]["5"] > 0 and s["dup_ngram_frac"]["6"] > 0
    assert s["dup_ngram_frac"]["7"] == 0 and s["dup_ngram_frac"]["10"] == 0
    assert s["dup_ngram_frac"]["6"] == round(dup_ngram_chars(words, 6) / len(words), 4)


def test_t2s_probe_skips_simplified_and_converts_traditional():
    st = build("t2s_converter")
    assert st._probe.isdisjoint("什么事情都可以这么做")  # 么 alone never changes (only inside 么麼)
    assert st.fn("後來他們乾杯") == "后来他们干杯"
    assert st.fn("反覆思考") == "反复思考"  # a phrase-only change is still found


@pytest.mark.parametrize("text,reason", [("", "empty"), ("   \n ", "empty"), ("12345 ！！？ 678", "too_short")])
def test_language_filter_honest_reason_without_letters(text, reason):
    r = build("language_filter").process(text_rec(text))
    assert r.meta["reject"]["reason"] == reason


def test_language_filter_still_rejects_russian():
    r = build("language_filter").process(text_rec("Это обычный русский текст о погоде в Москве сегодня утром."))
    assert r.meta["reject"]["reason"] == "wrong_language"


@pytest.fixture(scope="module")
def bl_pretrain():
    from thresher.config import load_recipe
    params = [s["blacklist_filter"] for s in load_recipe("pretrain-zh")["stages"]
              if isinstance(s, dict) and "blacklist_filter" in s][0]
    return build("blacklist_filter", **params)


@pytest.mark.parametrize("comment", ["你这种人真恶心，活该被骂", "nmsl 你这个傻叉", "黑人就是懒，别来我们这"])
def test_short_comment_with_one_insult_rejected(bl_pretrain, comment):
    r = bl_pretrain.process(text_rec(comment))
    assert r.is_rejected and r.meta["reject"]["reason"] in ("blacklist:profanity", "blacklist:hate")


def test_long_news_with_one_mention_kept(bl_pretrain):
    news = ("本报讯 近日，市法院审理了一起网络侮辱案。被告人在社交平台上多次发布针对他人的不实信息，" * 6
            + "其中一条评论称对方“不要脸”。法院认为，网络不是法外之地，依法判处被告人拘役三个月。" + "记者了解到，" * 10)
    assert len(news) > 150
    r = bl_pretrain.process(text_rec(news))
    assert not r.is_rejected and r.meta["signals"]["blacklist"]["profanity"]["hits"] == 1


def test_ascii_abbreviations_need_word_boundaries(bl_pretrain):
    assert "profanity" not in bl_pretrain.measure("Install cnmtools and tmdb-client")  # inside longer words


PAGE = """<!DOCTYPE html><html><head><title>标题 - 新闻网</title><script>var a = "<p>不是正文</p>";</script></head>
<body><div class="nav"><a href="/">首页</a> | <a href="/g">国内</a> | <a href="/w">国际</a></div>
<div id="wrap"><div class="article-content">
<h1>地铁十九号线年底开通</h1>
<p>记者今天从北京市交通委获悉，地铁十九号线将在年底前开通试运营，全长二十二公里。</p>
<p>这条线路共设十座车站，连接新宫和牡丹园；开通后，通勤时间将缩短一半左右。</p>
<p>据介绍，新线路采用了八节编组的A型车，最高时速可以达到一百公里，市民普遍表示欢迎。</p>
</div>
<div class="related"><ul><li><a href="/1">相关新闻：某地又开通一条线路，市民点赞</a></li>
<li><a href="/2">相关新闻：另一条地铁的新闻标题比较长一些</a></li></ul></div>
<div class="comment-list"><p>网友甲：太好了，终于等到了，以后上班方便多了。</p><p>网友乙：票价多少？有没有人知道？</p></div>
</div><div class="footer">版权所有 © 新闻网 京ICP备12345678号</div>""" + "<span></span>" * 20 + "</body></html>"


def test_content_extractor_keeps_article_drops_chrome():
    st = build("html_content_extractor")
    out = st.process(text_rec(PAGE)).text
    assert "地铁十九号线将在年底前开通试运营" in out and "最高时速可以达到一百公里" in out
    for junk in ("首页", "相关新闻", "网友甲", "版权所有", "不是正文", "<p>"):
        assert junk not in out, junk
    assert len(out.split("\n")) >= 3  # one line per paragraph


def test_content_extractor_leaves_fragments_alone():
    st = build("html_content_extractor")
    frag = "<p>这只是一段带标签的文字，不是完整网页。</p>"
    assert st.process(text_rec(frag)).text == frag


def test_content_extractor_on_gne_pages(shared_data):
    from benchmarks.cleaning_rules import gne_reference
    refs = gne_reference()
    st = build("html_content_extractor")
    found = total = ours = ref_len = 0
    for page, ref in sorted(refs.items())[:8]:
        raw = open(os.path.join(shared_data, "gne-news-html", "html", page), "rb").read()
        html = raw.decode("utf-8", errors="replace")
        if html.count("\ufffd") > 50:
            html = raw.decode("gb18030", errors="replace")
        out = re.sub(r"\s+", "", st.process(text_rec(html)).text)
        lines = [re.sub(r"\s+", "", ln) for ln in ref.split("\n") if len(ln.strip()) >= 8]
        found += sum(ln in out for ln in lines)
        total += len(lines)
        ours += len(out)
        ref_len += len(re.sub(r"\s+", "", ref))
    assert found / total >= 0.9 and ours / ref_len < 1.5, (found, total, ours, ref_len)


@pytest.mark.parametrize("answer", ["解析：第一空，主语是月光蝉鸣与稻香，平凡不符合语境。\n所以，正确选项是B",
                                    "你想做什么？\n1. 下楼\n2. 检查电脑\n3. 看电视\n4. 呆在房间里",
                                    "时间：下周二上午10点\n地点：市中心的办公室\n事件：面试"])
def test_sft_complete_answers_without_end_mark_kept(answer):
    r = build("sft_turn_filter").process(sft_rec("问题是什么呢？请回答", answer))
    assert not r.is_rejected, r.meta.get("reject")


def test_sft_answer_cut_after_comma_is_truncated():
    r = build("sft_turn_filter").process(sft_rec("介绍一下长城", "长城是中国古代的军事防御工程，始建于春秋战国时期，"))
    assert r.meta["reject"]["reason"] == "truncated_answer"


def test_sft_multiple_choice_with_blanks_kept():
    from thresher.config import load_recipe
    params = [s["zh_quality_filter"] for s in load_recipe("sft-zh")["stages"]
              if isinstance(s, dict) and "zh_quality_filter" in s][0]
    qf = build("zh_quality_filter", **params)
    q = ("与物质财富相比，人的精神财富的最大特点是__________，它是一种看不见的存在，别人只能凭__________知道。"
         "依次填入划横线处最恰当的一项是：\nA.无量\nB.无限\nC.无比\nD.无形")
    a = "D\n解析：\n第一空，精神财富是看不见的存在，无形符合语境。第二空，别人只能凭感觉知道。\n所以，正确选项是D"
    r = qf.process(sft_rec(q, a))
    assert not r.is_rejected, r.meta.get("reject")
    # the same filler in a real repeated answer is still caught
    bad = qf.process(sft_rec("说点什么", "好的好的好的好的好的好的好的好的好的好的好的好的好的好的好的好的"))
    assert bad.is_rejected
