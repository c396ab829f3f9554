"""The built-in demo corpus: a few thousand mixed records with realistic noise.

All text is composed here from small hand-written sentence banks (no third-party
data), so a new user can run the whole pipeline in minutes with nothing downloaded.
The noise mirrors what real Chinese web and SFT dumps contain: HTML remnants, ads,
URLs, phone numbers and e-mails, repeated lines, exact and near duplicates, mixed
zh/en, mojibake, short junk, plus SFT conversations in several formats and DPO pairs.
"""
from __future__ import annotations

import json
import os
import random

TOPICS = {
    "科技": [
        "人工智能正在改变软件开发的方式，越来越多的团队开始使用代码助手。",
        "新一代芯片在能效上提升明显，笔记本电脑的续航因此延长了不少。",
        "开源社区的协作模式让许多基础软件得以快速迭代。",
        "数据中心的散热问题一直是工程师关注的重点，液冷方案逐渐普及。",
        "手机厂商纷纷在影像系统上投入研发，夜景拍摄效果大幅改善。",
        "云计算降低了创业公司的门槛，按需付费的模式非常灵活。",
        "网络安全事件频发，企业需要建立完善的应急响应机制。",
        "量子计算仍处在早期阶段，但已经在部分问题上展示出潜力。",
    ],
    "美食": [
        "这家小店的牛肉面汤头浓郁，面条筋道，每天中午都排起长队。",
        "做红烧肉的关键在于炒糖色，火候太大就会发苦。",
        "南方人喜欢在冬至吃汤圆，北方人则习惯包饺子。",
        "清蒸鱼讲究新鲜，蒸的时间通常不超过八分钟。",
        "夏天来一碗凉面，再配上黄瓜丝和芝麻酱，十分爽口。",
        "四川火锅的底料以牛油和花椒为主，麻辣鲜香。",
        "自己在家烤面包时，发酵温度最好控制在二十八度左右。",
        "早餐吃一碗热豆浆配油条，是很多人童年的记忆。",
    ],
    "旅游": [
        "秋天的九寨沟色彩斑斓，湖水清澈见底，吸引了大量游客。",
        "去西藏旅行前要做好防高原反应的准备，行程不宜太紧。",
        "江南古镇的石板路和小桥流水，让人感受到慢生活的节奏。",
        "自驾游之前应检查车辆状况，并规划好沿途的加油站。",
        "很多博物馆推出了夜间开放活动，参观体验更加从容。",
        "海边城市的日落非常美，傍晚时分沙滩上人很多。",
        "登山时要穿防滑的鞋子，并且随身携带足够的饮用水。",
        "旅游旺季酒店价格上涨，提前预订往往能省下不少钱。",
    ],
    "教育": [
        "培养孩子的阅读习惯，比单纯追求分数更重要。",
        "在线课程让偏远地区的学生也能接触到优质的教学资源。",
        "学习外语最好的方法是多听多说，在真实场景中使用。",
        "老师在课堂上鼓励学生提问，可以激发他们的好奇心。",
        "大学生在选择专业时，应该结合自己的兴趣和就业前景。",
        "做数学题时先理解题意，再列出已知条件，思路会更清晰。",
        "家长的陪伴对孩子的成长有着不可替代的作用。",
        "职业教育越来越受到重视，技能型人才的需求持续增长。",
    ],
    "健康": [
        "每天保持三十分钟的适量运动，有助于增强心肺功能。",
        "熬夜会打乱生物钟，长期下来对免疫力有不良影响。",
        "饮食上要注意荤素搭配，少吃高盐高油的食物。",
        "久坐办公的人群应定时起身活动，缓解颈椎和腰椎的压力。",
        "感冒期间多喝温水、注意休息，一般一周左右就能恢复。",
        "定期体检可以及早发现潜在的健康问题。",
        "心理健康同样重要，遇到压力时要学会倾诉和调节。",
        "儿童接种疫苗应按照计划进行，不要随意推迟。",
    ],
    "体育": [
        "昨晚的比赛中，主队在最后一分钟完成绝杀，全场沸腾。",
        "马拉松比赛前一周应减少训练量，保证充足的睡眠。",
        "乒乓球是一项老少皆宜的运动，对反应速度要求很高。",
        "这位年轻的游泳运动员在全国比赛中打破了纪录。",
        "足球训练中，传球的准确性往往决定了进攻的质量。",
        "冬季运动逐渐流行，越来越多的人开始学习滑雪。",
        "羽毛球双打需要两名队员之间的默契配合。",
        "运动后及时拉伸，可以减少肌肉酸痛和受伤的风险。",
    ],
}
EN_SENTENCES = [
    "The new library release improves startup time and reduces memory usage.",
    "Researchers found that regular sleep schedules help students concentrate.",
    "The city council approved a plan to add more bike lanes downtown.",
    "Fresh vegetables from the local market taste noticeably better in summer.",
    "The museum's new exhibition explores the history of early printing.",
    "Good documentation saves developers hours of guesswork every week.",
]
ADS = ["关注公众号“好物推荐”，回复1领取免费资料！", "加微信 hao_wu_888 了解详情，限时优惠！",
       "点击下方链接立即购买：http://shop.example.cn/promo?id=8848", "本站提供最新优惠券，扫码领取红包。",
       "网上赌场真人娱乐，注册即送彩金！"]
BOILER = ["版权所有 © 2024 示例网 保留所有权利", "责任编辑：小王", "上一篇：返回首页", "分享到：微信 微博 QQ空间",
          "免责声明：本文仅代表作者观点。"]
JUNK = ["哈哈哈", "。。。。。", "asdfghjkl", "顶", "1111111", "沙发", "？？？", "...."]
QUESTIONS = [
    ("请用一句话解释什么是{t}。", "{t}是一个与日常生活密切相关的领域，{s}"),
    ("关于{t}，你能给我一些建议吗？", "当然可以。{s}另外，{s2}希望对你有帮助。"),
    ("写一段介绍{t}的短文。", "{s}{s2}总之，{t}值得我们持续关注。"),
    ("{t}方面有哪些常见的误区？", "常见的误区有很多。首先，{s}其次，{s2}"),
]
REFUSALS = ["作为一个AI语言模型，我无法回答这个问题。", "抱歉，我不能提供这方面的信息。"]


OPENERS = ["", "", "据了解，", "近日，", "值得一提的是，", "业内人士指出，", "从长远来看，", "有调查显示，",
           "不少网友表示，", "记者注意到，", "事实上，", "总的来说，", "在{city}，", "{year}年以来，",
           "{city}的一位读者说，", "今年{month}月，"]
CITIES = ["北京", "上海", "成都", "杭州", "兰州", "广州", "西安", "武汉", "长沙", "青岛", "昆明", "沈阳"]


def _opener(rng: random.Random) -> str:
    """A random lead-in, so documents built from one topic's sentences differ."""
    return rng.choice(OPENERS).format(city=rng.choice(CITIES), year=rng.randint(2015, 2025),
                                      month=rng.randint(1, 12))


def _doc(rng: random.Random, topic: str) -> str:
    sents = [_opener(rng) + s for s in rng.sample(TOPICS[topic], k=rng.randint(3, 7))]
    paras, cur = [], []
    for s in sents:
        cur.append(s)
        if rng.random() < 0.4:
            paras.append("".join(cur))
            cur = []
    if cur:
        paras.append("".join(cur))
    return "\n".join(paras)


def _edit(rng: random.Random, text: str, rate: float = 0.03) -> str:
    chars = list(text)
    pool = "的了在是和有我们这个中大为上不"
    for _ in range(max(1, int(len(chars) * rate))):
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            chars[i] = rng.choice(pool)
        elif op < 0.7:
            chars.insert(i, rng.choice(pool))
        elif len(chars) > 10:
            del chars[i]
    return "".join(chars)


def _noisy(rng: random.Random, text: str) -> str:
    """Apply one or two kinds of real-world noise."""
    kinds = rng.sample(["html", "ad", "pii", "repeat", "boiler", "mixed", "fullwidth", "mojibake", "zw"],
                       k=rng.randint(1, 2))
    for kind in kinds:
        if kind == "html":
            text = "<div class=\"content\"><p>" + text.replace("\n", "</p>\n<p>") + "</p>&nbsp;</div>"
        elif kind == "ad":
            text += "\n" + rng.choice(ADS)
        elif kind == "pii":
            text += f"\n联系电话：138{rng.randint(10000000, 99999999)}，邮箱 user{rng.randint(1, 999)}@example.com"
        elif kind == "repeat":
            line = text.split("\n")[0]
            text = "\n".join([text] + [line] * rng.randint(3, 6))
        elif kind == "boiler":
            text = rng.choice(BOILER) + "\n" + text + "\n" + rng.choice(BOILER)
        elif kind == "mixed":
            text += "\n" + " ".join(rng.sample(EN_SENTENCES, k=2))
        elif kind == "fullwidth":
            text += "\n型号：ＡＢＣ－１２３，价格：９９元！！！！"
        elif kind == "mojibake" and rng.random() < 0.3:
            text = text.encode("utf-8").decode("latin-1")
        elif kind == "zw":
            text = text.replace("，", "\u200b，", 2)
    return text


def _sft_pair(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(list(TOPICS))
    q, a = rng.choice(QUESTIONS)
    s, s2 = rng.sample(TOPICS[topic], 2)
    return q.format(t=topic), a.format(t=topic, s=s, s2=s2)


def write_demo_corpus(out_dir: str, seed: int = 7, n_docs: int = 3000) -> list[str]:
    """Write pretrain, SFT (three formats) and DPO files plus a GB18030 file; return paths."""
    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = []

    docs: list[str] = []
    for _ in range(n_docs):
        r = rng.random()
        if r < 0.06:
            docs.append(rng.choice(JUNK))
        elif r < 0.12:
            docs.append(" ".join(rng.sample(EN_SENTENCES, k=rng.randint(2, 5))))
        elif r < 0.2 and docs:
            docs.append(rng.choice(docs))  # exact duplicate
        elif r < 0.3 and docs:
            docs.append(_edit(rng, rng.choice(docs)))  # near duplicate
        else:
            text = _doc(rng, rng.choice(list(TOPICS)))
            docs.append(_noisy(rng, text) if rng.random() < 0.5 else text)
    paths.append(_write_jsonl(os.path.join(out_dir, "web_zh.jsonl"), [{"text": d} for d in docs],
                              bad_lines=[b'{"text": "unterminated\n', b'{"text": "\xff\xfe not utf-8"}\n',
                                         b'{"title": "no text field"}\n']))

    alpaca, sharegpt, data_fmt = [], [], []
    for i in range(max(n_docs // 4, 10)):
        q, a = _sft_pair(rng)
        r = rng.random()
        if r < 0.05:
            a = rng.choice(REFUSALS)
        elif r < 0.08:
            a = a[: len(a) // 2]  # truncated answer
        elif r < 0.1:
            a = q  # answer repeats the question
        if i % 3 == 0:
            alpaca.append({"instruction": q, "input": "", "output": a})
        elif i % 3 == 1:
            q2, a2 = _sft_pair(rng)
            sharegpt.append({"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a},
                                               {"from": "human", "value": q2}, {"from": "gpt", "value": a2}]})
        else:
            data_fmt.append({"id": str(i), "data": [q, a]})
    alpaca += alpaca[:10]  # exact SFT duplicates
    paths.append(_write_jsonl(os.path.join(out_dir, "sft_alpaca.jsonl"), alpaca))
    paths.append(_write_jsonl(os.path.join(out_dir, "sft_sharegpt.jsonl"), sharegpt))
    paths.append(_write_jsonl(os.path.join(out_dir, "sft_data.jsonl"), data_fmt))

    dpo = []
    for _ in range(max(n_docs // 10, 10)):
        q, a = _sft_pair(rng)
        bad = rng.choice([rng.choice(REFUSALS), a[: len(a) // 3], rng.choice(JUNK)])
        dpo.append({"prompt": q, "chosen": a, "rejected": bad})
    paths.append(_write_jsonl(os.path.join(out_dir, "dpo.jsonl"), dpo))

    gb_path = os.path.join(out_dir, "news_gb18030.txt")
    with open(gb_path, "wb") as f:
        for _ in range(max(n_docs // 20, 10)):
            f.write(_doc(rng, rng.choice(list(TOPICS))).replace("\n", "").encode("gb18030") + b"\n")
    paths.append(gb_path)
    return paths


def _write_jsonl(path: str, rows: list[dict], bad_lines: list[bytes] = ()) -> str:
    """Rows as JSON lines; ``bad_lines`` (malformed input) spread evenly between them."""
    at = {(k + 1) * len(rows) // (len(bad_lines) + 1): line for k, line in enumerate(bad_lines)}
    from .io.atomic import atomic_open
    with atomic_open(path) as f:
        for i, row in enumerate(rows):
            if i in at:
                f.write(at[i])
            f.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return path
