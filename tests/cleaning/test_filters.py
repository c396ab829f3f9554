"""Filters measure into signals always and reject with a reason code."""
import pytest

from thresher.cleaning.quality import dup_ngram_chars, top_ngram_chars

from .conftest import build, sft_rec, text_rec

GOOD = ("记者今天从北京市交通委获悉，地铁十九号线将在年底前开通试运营。这条线路全长二十二公里，"
        "共设十座车站，连接新宫和牡丹园。开通后，从南四环到北三环的通勤时间将缩短一半左右。\n"
        "据介绍，新线路采用了八节编组的A型车，最高时速可以达到一百公里。市民普遍对此表示欢迎，"
        "他们认为这会大大方便日常出行。")


@pytest.fixture(scope="module")
def qf():
    return build("zh_quality_filter")


def check(st, text):
    r = st.process(text_rec(text))
    return r.meta.get("reject"), r.meta["signals"]


def test_good_chinese_document_kept(qf):
    rej, sig = check(qf, GOOD)
    assert rej is None, rej
    q = sig["quality"]
    assert q["cjk_ratio"] > 0.8 and q["words"] > 50 and q["stopwords"] >= 2
    assert q["dup_line_frac"] == 0 and q["line_punct_ratio"] == 1.0


def test_short_document_rejected_with_value(qf):
    rej, sig = check(qf, "好的。")
    assert rej["reason"] == "too_short" and rej["value"] == 3 and rej["threshold"] == 50
    assert "chars" in sig["quality"]


def test_english_document_low_cjk(qf):
    rej, _ = check(qf, "This is a perfectly fine English paragraph about the weather, and it has punctuation. " * 3)
    assert rej["reason"] == "low_cjk_ratio"


def test_duplicate_lines(qf):
    text = GOOD + "\n" + "\n".join(["点击查看更多精彩内容"] * 5 + ["欢迎关注我们的公众号"] * 5)
    rej, sig = check(qf, text)
    assert sig["quality"]["dup_line_frac"] > 0.287
    assert "dup_line_frac" in [rej["reason"]] + rej.get("failed", [])


def test_repeated_ngrams(qf):
    text = "这款产品质量非常好，价格也很便宜，大家快来购买吧！" * 8
    rej, sig = check(qf, text)
    assert {"dup_ngram", "top_ngram"} & set([rej["reason"]] + rej.get("failed", []))
    assert sig["quality"]["dup_ngram_frac"]["5"] > 0.5


def test_ngram_helpers():
    words = list("abcdeabcde")
    assert dup_ngram_chars(words, 5) == 5
    assert top_ngram_chars(["x", "y"] * 3, 2) == 3 * 3
    assert dup_ngram_chars(list("abcdefghij"), 5) == 0


def test_table_of_contents(qf):
    toc = "目录\n" + "\n".join(f"第{i}章 风起云涌的故事开端与发展 ………… {i * 10}" for i in range(1, 12))
    rej, sig = check(qf, toc)
    assert sig["quality"]["toc_ratio"] > 0.5
    assert "toc_page" in [rej["reason"]] + rej.get("failed", [])


def test_table_like_page(qf):
    table = "\n".join("\t".join(["张三", "男", "23", "北京", "是"]) for _ in range(6)) + "\n以上是名单。的确如此，在这里。"
    rej, sig = check(qf, table)
    assert sig["quality"]["short_field_ratio"] > 0.7
    assert "table_like" in [rej["reason"]] + rej.get("failed", [])


def test_mojibake_gbk_misdecode(qf):
    bad = GOOD.encode("utf-8").decode("gbk", errors="replace")
    rej, sig = check(qf, bad)
    assert sig["quality"]["common_char_ratio"] < 0.9
    assert "mojibake" in [rej["reason"]] + rej.get("failed", [])
    assert check(qf, GOOD)[1]["quality"]["common_char_ratio"] > 0.97


def test_latin1_mojibake(qf):
    bad = GOOD.encode("utf-8").decode("latin-1")
    _, sig = check(qf, bad)
    assert sig["quality"]["latin1_mojibake"] > 1


def test_garbled_mixed_vs_normal_mixed(qf):
    normal = "我们使用Python和PyTorch训练模型，然后用API部署到Kubernetes集群上。这是一个常见的流程，在业界被广泛采用。" * 2
    garbled = "这a是b一c个d被e破f坏g的h文i本j，k每l个m字n之o间p都q有r字s母t。" * 3
    assert check(qf, normal)[1]["quality"]["garbled_islands"] < 8
    rej, sig = check(qf, garbled)
    assert sig["quality"]["garbled_islands"] > 8
    assert "garbled_mixed" in [rej["reason"]] + rej.get("failed", [])


def test_no_punctuation_and_line_endings(qf):
    text = "\n".join(["这是一个没有标点符号的行在这里有很多字"] * 1 + [f"第{i}行内容在这里没有结束的标点符号呢" for i in range(8)])
    rej, sig = check(qf, text)
    assert sig["quality"]["punct"] == 0 and sig["quality"]["line_punct_ratio"] == 0
    assert {"no_punctuation", "line_punct_ratio"} & set([rej["reason"]] + rej.get("failed", []))


def test_special_characters(qf):
    text = GOOD[:60] + "★☆♥♦♣♠●○◎◇◆□■△▲※→←↑↓" * 5
    rej, sig = check(qf, text)
    assert sig["quality"]["special_ratio"] > 0.25
    assert "special_char_ratio" in [rej["reason"]] + rej.get("failed", [])


def test_thresholds_can_be_disabled():
    st = build("zh_quality_filter", min_chars=1, min_cjk_ratio=None, min_punct=None, min_line_punct_ratio=None,
               min_avg_line_len=None, min_stopwords=None, min_alpha_word_ratio=None, max_avg_word_len=None,
               min_avg_word_len=None)
    rej, sig = check(st, "hello")
    assert rej is None and sig["quality"]["cjk_ratio"] == 0.0


def test_sft_short_answer_fine_in_dialogue():
    st = build("zh_quality_filter", min_chars=2)
    r = st.process(sft_rec("你能帮我订一张明天去上海的机票吗？", "好的。"))
    assert not r.is_rejected, r.meta
    assert r.meta["signals"]["quality"]["chars"] > 5


def test_sft_repetitive_turn_rejected():
    st = build("zh_quality_filter", min_chars=2)
    r = st.process(sft_rec("介绍一下你自己", "我是一个助手，我可以帮你。" * 10))
    assert r.is_rejected and r.meta["reject"]["reason"] in ("dup_ngram", "top_ngram")


# --------------------------------------------------------------------- language id
@pytest.fixture(scope="module")
def lid():
    return build("language_filter")


@pytest.mark.parametrize("text,keep", [
    ("好的，谢谢。", True),  # short: decided by script
    ("今天北京天气晴朗，最高气温二十五度，适合户外活动。", True),
    ("我们用Python做数据分析，pandas and numpy are the standard libraries for data analysis in Python", True),
    ("This is an English sentence about machine learning and data.", False),
    ("これは日本語の文章です。今日はいい天気ですね。", False),
])
def test_language(lid, text, keep):
    r = lid.process(text_rec(text))
    assert (not r.is_rejected) == keep, r.meta
    assert r.meta["signals"]["lang"]["top"]


def test_language_mixed_pair_rule(lid):
    ok, label = lid.decide([("en", 0.55), ("zh", 0.4), ("ja", 0.02)])
    assert ok and label == "en+zh"
    assert not lid.decide([("en", 0.9), ("zh", 0.05)])[0]
    assert not lid.decide([("ja", 0.6), ("zh", 0.3)])[0]


# --------------------------------------------------------------------- blacklist
@pytest.fixture(scope="module")
def bl():
    return build("blacklist_filter")


def test_lone_common_word_kept(bl):
    lone = "警方近日破获一起网络赌博案件，" + GOOD
    r = bl.process(text_rec(lone))
    assert not r.is_rejected
    assert r.meta["signals"]["blacklist"]["gambling"]["hits"] == 1
    # two mentions in a long article stay under the per-1000-character rate
    long_news = "警方近日破获一起网络赌博案件，" + GOOD * 4 + "该赌场已被查封。" + GOOD * 4
    r = bl.process(text_rec(long_news))
    assert not r.is_rejected and r.meta["signals"]["blacklist"]["gambling"]["hits"] == 2


def test_gambling_spam_rejected(bl):
    spam = "澳门葡京娱乐城，百家乐、老虎机、六合彩，首存送彩金，注册送38元，返水最高，欢迎下注！"
    r = bl.process(text_rec(spam))
    assert r.meta["reject"]["reason"] == "blacklist:gambling"
    assert r.meta["reject"]["hits"] >= 5


def test_profanity_single_strong_term(bl):
    r = bl.process(text_rec("你就是个傻逼"))
    assert r.meta["reject"]["reason"] == "blacklist:profanity"


def test_ascii_terms_need_word_boundary(bl):
    r = bl.process(text_rec("This class is about assembly and Scunthorpe shitake."))
    assert not r.is_rejected and "profanity" not in r.meta["signals"]["blacklist"]


def test_categories_switchable_and_user_lists(tmp_path):
    st = build("blacklist_filter", categories=["ads"])
    assert not st.process(text_rec("你就是个傻逼")).is_rejected
    lst = tmp_path / "brands.txt"
    lst.write_text("# competitor brands\n竞品甲\n", encoding="utf-8")
    st = build("blacklist_filter", categories=[], extra_lists=[str(lst)], thresholds={"brands": [1, 0.0]})
    r = st.process(text_rec("我们比竞品甲更好。"))
    assert r.meta["reject"]["reason"] == "blacklist:brands"


def test_unknown_category_is_an_error():
    with pytest.raises(ValueError, match=r"categories\[0\]: 'nope' not one of ads, drugs"):
        build("blacklist_filter", categories=["nope"])


# --------------------------------------------------------------------- SFT
@pytest.fixture(scope="module")
def sf():
    return build("sft_turn_filter")


def sft_check(st, *turns):
    r = st.process(sft_rec(*turns))
    return r.meta.get("reject"), r.meta["signals"]["sft"]


def test_sft_good_short_answer(sf):
    rej, sig = sft_check(sf, "帮我订明天的票好吗？", "好的。")
    assert rej is None and sig["turns"] == 2


def test_sft_empty_turn(sf):
    assert sft_check(sf, "你好", "   ")[0]["reason"] == "empty_turn"


def test_sft_answer_repeats_question(sf):
    rej, sig = sft_check(sf, "请解释什么是机器学习？", "请解释什么是机器学习")
    assert rej["reason"] == "answer_repeats_question" and sig["max_qa_similarity"] == 1.0


def test_sft_refusal(sf):
    rej, _ = sft_check(sf, "帮我写首诗", "作为一个AI语言模型，我没有办法真正体会诗歌的情感，但我可以尝试。")
    assert rej["reason"] == "refusal"


def test_sft_truncated(sf):
    rej, _ = sft_check(sf, "介绍一下长城", "长城是中国古代的军事防御工程，始建于春秋战国时期，全长两万多公里，其中最著名的一段是")
    assert rej["reason"] == "truncated_answer"
    assert sft_check(sf, "介绍一下长城", "长城是中国古代的军事防御工程，始建于春秋战国时期。")[0] is None
    assert sft_check(sf, "写个函数", "```python\ndef f():\n    return 1\n```")[0] is None


def test_sft_flag_only_mode():
    st = build("sft_turn_filter", action="flag")
    r = st.process(sft_rec("你好", ""))
    assert not r.is_rejected and r.meta["signals"]["sft"]["flags"] == ["empty_turn"]


def test_dpo_rejected_answer_may_be_bad():
    from thresher.records import make_record
    st = build("sft_turn_filter")
    r = make_record("dpo", "d", messages=[{"role": "user", "content": "写一句问候"}], chosen="你好，祝你今天愉快！",
                    rejected="作为一个AI语言模型，我不能问候。")
    assert not st.process(r).is_rejected
