"""The contract between the parts (issue 13): what cleaning and scoring really write is
what tiers and the trainer read.  One small mixed zh/en run of the default recipe, then
the trainer's data loading on its output: rounds and curriculum order by the difficulty
the run wrote, ``lang: en`` keeps only English, and the blacklist signal the real filter
writes lowers quality_heuristic."""
import json
import statistics

import pytest

from thresher import meta as M
from thresher.config import build_stages, load_recipe
from thresher.executor.runner import run_recipe
from thresher.pipeline import GlobalStage, REGISTRY, load_builtin_stages
from thresher.records import make_record

ZH_Q = ["什么是光合作用？", "长城是什么时候修建的？", "如何学习一门新的编程语言？", "为什么要保护海洋环境？",
        "请解释一下通货膨胀。", "茶叶是怎样制作的？", "怎样才能睡得更好？", "地震是如何发生的？"]
ZH_S = ["植物利用阳光把二氧化碳和水转化为葡萄糖，同时释放出氧气。", "长城的修建从春秋战国一直延续到明朝，历时两千多年。",
        "先掌握基本语法，再通过小项目反复练习，遇到问题时查阅官方文档。", "海洋调节着全球气候，养育了数不清的鱼类和珊瑚。",
        "当货币供应增长快于商品生产时，物价普遍上涨，钱就不那么值钱了。", "鲜叶经过萎凋、揉捻、发酵和烘干等工序，才变成我们喝的茶。",
        "每天固定时间上床，睡前一小时远离手机屏幕，卧室保持安静凉爽。", "地壳板块相互挤压，积累的能量突然释放，大地就会剧烈震动。",
        "叶绿体是光合作用发生的场所，其中的叶绿素负责吸收光能。", "秦始皇统一六国后，把各国旧有的城墙连接起来并加以扩建。",
        "阅读别人写的优秀代码，也能帮助你理解这门语言的惯用写法。", "塑料垃圾进入海洋后，会被海龟和海鸟误食，造成大量死亡。",
        "适度的通胀可以刺激消费，但恶性通胀会让储蓄迅速缩水。", "绿茶不经过发酵，红茶则是完全发酵的，乌龙茶介于两者之间。",
        "白天适量运动，晚上避免喝咖啡和浓茶，也有助于入睡。", "地震波分为纵波和横波，纵波传播得更快，人们往往先感到上下颠簸。",
        "科学家认为，提高光合作用的效率有望大幅增加粮食产量。", "明长城东起鸭绿江，西至嘉峪关，全长六千多公里。",
        "不要害怕犯错，调试程序的过程本身就是最好的老师。", "减少一次性塑料制品的使用，是每个人都能做到的环保行动。"]
EN_Q = ["What is photosynthesis?", "When was the Great Wall built?", "How do I learn a new programming language?",
        "Why should we protect the oceans?", "Please explain inflation.", "How is tea made?",
        "How can I sleep better?", "How do earthquakes happen?"]
EN_S = ["Plants use sunlight to turn carbon dioxide and water into glucose, releasing oxygen as they go.",
        "Construction began in the Warring States period and continued until the Ming dynasty.",
        "Start with the basic syntax, then build small projects and read the official documentation.",
        "Oceans regulate the global climate and feed countless fish, whales and coral reefs.",
        "When money grows faster than the supply of goods, prices rise and savings buy less.",
        "Fresh leaves are withered, rolled, oxidised and dried before they become the tea we drink.",
        "Go to bed at a fixed hour, and keep your bedroom quiet, dark and cool.",
        "Tectonic plates grind against each other until stored energy is suddenly released.",
        "Chloroplasts host the process, and chlorophyll inside them absorbs the light.",
        "The first emperor of Qin linked older walls together after unifying the warring kingdoms.",
        "Reading well written code by other people teaches you the idioms of a language.",
        "Plastic bags drifting at sea are swallowed by turtles that mistake them for jellyfish.",
        "Moderate inflation encourages spending, while hyperinflation wipes out savings quickly.",
        "Green tea is not oxidised at all, black tea fully, and oolong sits somewhere between them.",
        "Daytime exercise helps, and so does avoiding coffee late in the evening.",
        "Seismic waves come in two kinds, and the faster primary waves usually arrive first.",
        "Researchers hope that more efficient photosynthesis could raise crop yields dramatically.",
        "The Ming wall runs from the Yalu River in the east to Jiayu Pass in the west.",
        "Do not fear mistakes, because debugging a broken program is the best teacher there is.",
        "Using fewer disposable plastic products is something everyone can do for the sea."]
LENGTHS = [1, 1, 2, 2, 3, 3, 4, 4]   # sentences per answer: difficulty varies with the answer

ARTICLE = ("今天上午，市图书馆举办了一场关于传统文化的公益讲座，吸引了两百多位市民前来参加。"
           "主讲人是一位研究地方历史多年的老教授，他从本地的古建筑讲起，介绍了祠堂、牌坊和石桥背后的故事。"
           "教授说，这些建筑不仅是我们的文化遗产，也记录了普通人的生活方式和价值观念。"
           "讲座结束后，不少听众围着教授提问，有人想知道老街的改造计划，有人关心古树的保护。"
           "图书馆的工作人员表示，今年下半年还将举办十场类似的讲座，内容涉及民俗、方言和传统手工艺。"
           "一位带着孩子来听讲座的家长说，这样的活动让孩子在周末有了好去处，也让大人重新认识了自己的城市。")
SPAM = "想赚钱的朋友可以试试老虎机，轻松上手。"   # one hit: ~1.1 per 1000 chars, under the 2.0 cut-off


def _answers(sents, q):
    out, pos = [], 0
    for n in LENGTHS:
        out.append(("".join if sents is ZH_S else " ".join)(sents[pos:pos + n]))
        pos += n
    return list(zip(q, out))


def _corpus(d):
    recs = []
    for q, a in _answers(ZH_S, ZH_Q) + _answers(EN_S, EN_Q):
        recs.append(make_record("sft", "sft", messages=[{"role": "user", "content": q},
                                                         {"role": "assistant", "content": a}]))
    texts = [ARTICLE, ARTICLE.replace("图书馆", "博物馆").replace("传统文化", "古代青铜器")[::-1],
             "".join(ZH_S[:10]), "".join(ZH_S[10:]), " ".join(EN_S)]
    for t in texts:
        recs.append(make_record("text", "web", text=t))
    path = d / "mixed.jsonl"
    with open(path, "wb") as f:
        for r in recs:
            f.write(r.to_json() + b"\n")
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("contract")
    src = _corpus(d)
    stats = run_recipe(load_recipe("default", {"output.dir": str(d / "run"), "executor.workers": 1,
                                               "inputs": [{"path": src, "name": "mixed"}]}))
    assert stats["conserved"]
    return d / "run"


def _kept_sft(run_dir):
    from thresher.io.readers import iter_records
    return [r for r in iter_records(str(run_dir / "kept" / "manifest.json")) if r.kind == "sft"]


def test_every_scorer_writes_the_keys_the_registry_declares():
    load_builtin_stages()
    for scorer, keys in M.SCORE_KEYS.items():
        cls = REGISTRY[scorer]
        if "score_name" in getattr(cls, "defaults", {}):
            assert cls.defaults["score_name"] in (keys[0], ""), scorer   # lm stages: "" = the stage name
            assert (cls.defaults["score_name"] or scorer) == keys[0]


def test_rounds_and_curriculum_order_by_the_difficulty_the_run_wrote(run_dir):
    from thresher.training.config import TrainConfigError, build_config, parse_overrides
    from thresher.training.data import curriculum_order, load_splits, round_slice
    kept = _kept_sft(run_dir)
    assert len(kept) >= 8
    assert all(M.score(r.meta, "difficulty_heuristic") is not None for r in kept)   # what the run wrote
    ds = json.dumps([{"run": {"input_file_path": str(run_dir / "kept"), "val_split": 0}}])
    cfg = build_config(["defaults"], parse_overrides(["--set", f"datasets={ds}", "--set", "rounds.n=3",
                                                      "--set", "rounds.difficulty_key=scores.difficulty_heuristic"]))
    train = load_splits(cfg, "sft").train
    assert len(train) == len(kept)
    key = cfg["rounds"]["difficulty_key"]
    means = [statistics.mean(M.get_path(r.meta, key) for r in round_slice(train, 3, i, key)) for i in range(3)]
    assert means[0] < means[1] < means[2], means
    # the curriculum's default key is the same score
    order = curriculum_order(train, cfg["curriculum"]["key"], 2, seed=0)
    half = len(order) // 2
    phase = [[M.score(r.meta, "difficulty_heuristic") for r in part] for part in (order[:half], order[half:])]
    assert max(phase[0]) <= min(phase[1]) and statistics.mean(phase[0]) < statistics.mean(phase[1])
    # the key the trainer used to default to names no score: an error at load, and at data time
    with pytest.raises(TrainConfigError, match="scores.difficulty_heuristic"):
        build_config(["defaults"], parse_overrides(["--set", "rounds.difficulty_key=scores.difficulty"]))
    with pytest.raises(ValueError, match="none of the .* records carries it"):
        round_slice(train, 3, 0, "scores.ifd")


def test_lang_en_keeps_only_english(run_dir):
    from thresher.training.config import build_config, parse_overrides
    from thresher.training.data import load_splits

    def load(lang, kind):
        ds = json.dumps([{"run": {"input_file_path": str(run_dir / "kept"), "val_split": 0, "lang": lang}}])
        return load_splits(build_config(["defaults"], parse_overrides(["--set", f"datasets={ds}"])), kind)

    en, zh = load("en", "sft"), load("zh", "sft")
    en_q, zh_q = {r.messages[0]["content"] for r in en.train}, {r.messages[0]["content"] for r in zh.train}
    kept_q = {r.messages[0]["content"] for r in _kept_sft(run_dir)}
    assert en_q == kept_q & set(EN_Q) and en_q          # only English, and all of the English kept
    assert zh_q == kept_q & set(ZH_Q) and zh_q
    # text records carry the run's language_filter label: it is read, not re-detected
    t = load("zh", "text")
    assert t.train and t.counts["run"]["lang_detected"] == 0
    assert all(M.primary_language(r.meta) == "zh" for r in t.train)
    assert load("en", "text").counts["run"]["train"] == 0


def test_a_label_wins_over_the_text():
    from thresher.training.data import record_language
    r = make_record("sft", "s", messages=[{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}])
    r.signals()[M.LANG_SIGNAL] = M.lang_signal("en+zh", [("en", 0.6), ("zh", 0.4)])
    assert record_language(r) == ("en", False)


def test_blacklist_penalty_lowers_quality_of_the_spam_page(run_dir):
    """The default recipe's per-record stages (normalisers, filters, scorers), as configured,
    on a page and the same page with gambling spam below the rejection threshold."""
    stages = [s for s in build_stages(load_recipe("default")) if not isinstance(s, GlobalStage)]
    for s in stages:
        s.setup(None)

    def through(text):
        r = make_record("text", "web", text=text)
        for s in stages:
            if r.is_rejected:
                break
            if r.kind in s.applies_to:
                r = s.process(r)
        return r

    page = ARTICLE + "".join(ZH_S)
    clean, spam = through(page), through(page[:120] + SPAM + page[120:])
    assert not clean.is_rejected and not spam.is_rejected, (M.reject(clean.meta), M.reject(spam.meta))
    assert M.blacklist(spam.meta)["gambling"]["hits"] == 1 and not any(
        v["hits"] for v in M.blacklist(clean.meta).values())
    q_clean, q_spam = M.score(clean.meta, "quality_heuristic"), M.score(spam.meta, "quality_heuristic")
    assert q_spam < q_clean * 0.9, (q_spam, q_clean)
    # and the penalty is what moved it: without the signal the two pages score alike
    from thresher.scoring.heuristic import blacklist_penalty, heuristic_quality
    assert blacklist_penalty(M.blacklist(spam.meta)) < 0.85 and blacklist_penalty(M.blacklist(clean.meta)) == 1.0
    unsignalled = {k: v for k, v in M.signals(spam.meta).items() if k != M.BLACKLIST_SIGNAL}
    assert heuristic_quality(spam.text, unsignalled) == pytest.approx(q_clean, rel=0.05)
