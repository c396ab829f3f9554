"""spam_filter on news pages with injected gambling / SEO spam (texts written for this test),
measured before boilerplate trimming, and quality_heuristic reading what it measured."""
import pytest

from thresher.cleaning.spam import SpamFilter, SpamLexicon, measure_spam
from thresher.config import validate
from thresher.executor.runner import run_recipe
from thresher.io.readers import iter_records
from thresher.records import make_record
from thresher.scoring.heuristic import heuristic_quality

NEWS = [
    "本报讯 昨日，市交通运输局召开新闻发布会，通报今年地铁新线建设进展。据介绍，地铁五号线二期工程已完成全部土建施工，"
    "预计年底前开通试运营。新线开通后，城东片区居民前往火车站的时间将缩短约二十分钟。发布会上，相关负责人还表示，"
    "明年将继续加密公交线网，新增十条社区巴士线路，方便老年人就近出行。\n记者了解到，今年以来全市公共交通日均客运量"
    "稳步回升，早晚高峰的拥挤程度有所缓解。",
    "新华社电 国家统计局今天发布数据，上月全国规模以上工业增加值同比增长百分之五点六，比前一个月加快零点三个百分点。"
    "分行业看，电子设备制造和汽车制造增长较快，新能源汽车产量继续保持两位数增长。专家分析认为，随着稳增长政策持续发力，"
    "工业生产有望延续平稳回升的态势。\n同日公布的数据还显示，社会消费品零售总额同比增长百分之四点二，服务消费增长较快。",
    "本地消息 为迎接暑期旅游高峰，市文化和旅游局日前推出二十条精品旅游线路，涵盖古镇游、乡村游和研学游等多种类型。"
    "其中，沿江绿道骑行线路全长四十公里，沿途设有六个驿站，游客可免费借用自行车。文旅部门提醒，暑期出游人数较多，"
    "请游客提前预约热门景区门票，注意防暑降温，文明出行。\n据统计，去年暑期全市共接待游客一千二百万人次。",
    "健康提示 入夏以来，气温持续升高，医院门诊中因中暑和肠胃不适就诊的患者明显增多。医生提醒，高温天气应尽量避免在"
    "中午前后长时间户外活动，外出时做好防晒，及时补充水分。饮食上要注意卫生，生冷食物不宜多吃，隔夜饭菜要彻底加热。"
    "老人和儿童体温调节能力较弱，家人要多加留意。\n如出现头晕、乏力、恶心等症状，应立即到阴凉处休息，必要时及时就医。",
]

# what hacked news pages carry: a header/footer block of casino site names, mirror-URL stuffing, link farms
SPAM_BLOCKS = [
    "澳门新葡京官网 最新网址 备用网址 注册送彩金 真人百家乐 现金网 贵宾会 信誉平台 提现秒到 www.xpj8888.com",
    "太阳城集团 太阳城娱乐 太阳城集团最新网址 太阳城集团永久网址 太阳城集团唯一官网 太阳城集团 太阳城集团 太阳城集团",
    "友情链接：a8899.com b7766.cc c5544.vip d3322.top e1100.net f9988.xyz g6677.com h4455.cc i2233.vip j0011.top",
    "减肥茶 减肥茶排行榜 减肥茶哪个好 减肥茶价格 减肥茶官网 减肥茶效果 减肥茶推荐 减肥茶 减肥茶 减肥茶 减肥茶品牌 减肥茶",
    "六合彩资料 香港马会 一肖中特 特码 跑狗图 免费资料大全 开奖结果 开奖直播 天天彩 大发快三 北京赛车 网投平台",
]


def _inject(news: str, block: str) -> str:
    # header and footer, as injected pages carry them
    return block + "\n" + news + "\n" + block


@pytest.fixture(scope="module")
def lexicon():
    return SpamLexicon()


def test_spam_pages_fire_and_clean_news_does_not(lexicon):
    stage = SpamFilter()
    for news in NEWS:
        assert stage.decide(measure_spam(news, lexicon)) is None, news[:20]
    rules = set()
    for news in NEWS:
        for block in SPAM_BLOCKS:
            fired = stage.decide(measure_spam(_inject(news, block), lexicon))
            assert fired is not None, block[:20]
            rules.add(fired[0])
    assert rules == {"terms", "link_farm", "keyword_stuffing"}  # each signal carries its own pages


def test_one_spam_word_in_news_is_not_spam(lexicon):
    news = NEWS[0] + "警方提醒，所谓现金网陷阱多，切勿参与。"
    m = measure_spam(news, lexicon)
    assert m["terms"]["hits"] == 1 and SpamFilter().decide(m) is None and m["score"] < 0.3


def test_quality_ranks_spam_pages_below_their_clean_versions(lexicon):
    for news in NEWS:
        clean_sig = {"spam": measure_spam(news, lexicon)}
        clean_q = heuristic_quality(news, clean_sig)
        for block in SPAM_BLOCKS:
            page = _inject(news, block)
            q = heuristic_quality(page, {"spam": measure_spam(page, lexicon)})
            assert q < clean_q - 0.2, (block[:20], q, clean_q)
            # the evidence counts even after the block is trimmed away (measured first, trimmed after)
            assert heuristic_quality(news, {"spam": measure_spam(page, lexicon)}) < clean_q - 0.2


def test_blacklist_signal_in_the_shape_the_filter_writes_lowers_quality():
    base = heuristic_quality(NEWS[1])
    one = heuristic_quality(NEWS[1], {"blacklist": {"gambling": {"hits": 1, "per_kchar": 3.9}}})
    many = heuristic_quality(NEWS[1], {"blacklist": {"gambling": {"hits": 8, "per_kchar": 31.0}}})
    assert many < one < base and many < base * 0.1


def test_pipeline_measures_before_trimming_and_keeps_the_measure(tmp_path):
    import orjson
    pages = [_inject(n, b) for n in NEWS for b in SPAM_BLOCKS[:2]] + NEWS
    p = tmp_path / "in.jsonl"
    p.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in pages))
    recipe = {"inputs": [{"path": str(p), "name": "web"}], "output": {"dir": str(tmp_path / "run"), "format": "jsonl"},
              "executor": {"workers": 1},
              "stages": [{"spam_filter": {"action": "flag"}}, {"boilerplate_trimmer": {"patience": 2}},
                         "quality_heuristic"]}
    run_recipe(validate(recipe))
    kept = list(iter_records(str(tmp_path / "run" / "kept")))
    assert len(kept) == len(pages)
    clean = {r.text: r for r in kept if r.meta["signals"]["spam"]["score"] < 0.3}
    spam = [r for r in kept if r.meta["signals"]["spam"]["score"] >= 0.5]
    assert len(clean) == len(NEWS) and len(spam) == len(pages) - len(NEWS)
    worst_clean = min(r.meta["scores"]["quality_heuristic"] for r in clean.values())
    assert all(r.meta["scores"]["quality_heuristic"] < worst_clean for r in spam)


def test_reject_mode_names_the_rule_and_bad_action_is_an_error():
    st = SpamFilter()
    st.setup(None)
    r = st.process(make_record("text", "web", text=_inject(NEWS[2], SPAM_BLOCKS[0])))
    assert r.meta["reject"]["reason"] == "spam:terms" and r.meta["signals"]["spam"]["terms"]["distinct"] >= 5
    with pytest.raises(ValueError, match="action"):
        SpamFilter(action="drop")
