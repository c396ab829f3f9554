from thresher.records import make_record
from thresher.scoring.heuristic import HeuristicDifficulty, HeuristicQuality, heuristic_difficulty, heuristic_quality

GOOD = ("人工智能正在改变软件开发的方式，越来越多的团队开始使用代码助手。新一代芯片在能效上提升明显，"
        "笔记本电脑的续航因此延长了不少。开源社区的协作模式让许多基础软件得以快速迭代。"
        "数据中心的散热问题一直是工程师关注的重点，液冷方案逐渐普及。")


def test_quality_orders_clean_text_above_noise():
    spam = "★★★点击领取★★★ 加微信 ☎☎☎ ◆◆◆ 免费 ♥♥♥ " * 8
    repeated = "今天天气很好。\n" * 40
    keywords = "手机 电脑 平板 耳机 充电器 数据线 手机壳 贴膜 " * 6
    good = heuristic_quality(GOOD)
    for bad in (spam, repeated, keywords):
        assert heuristic_quality(bad) < good - 0.15, bad[:20]
    assert 0.0 <= heuristic_quality("") <= heuristic_quality("短") <= 1.0


def test_quality_penalises_sft_flags_from_cleaning_signals():
    base = heuristic_quality(GOOD)
    flagged = heuristic_quality(GOOD, {"sft": {"flags": ["refusal"]}})
    assert abs(flagged - base / 2) < 1e-9


def test_difficulty_orders_reasoning_above_chitchat():
    easy = heuristic_difficulty("你好", "你好！")
    hard = heuristic_difficulty(
        "请解方程 x^2 - 5x + 6 = 0，要求：1. 写出步骤 2. 验证结果。为什么有两个根？",
        "首先，将方程因式分解：(x-2)(x-3)=0。\n1. 因此 x=2 或 x=3。\n2. 然后验证：2^2-5*2+6=0，3^2-5*3+6=0。\n"
        "所以两个根都成立。最后，二次方程最多有两个实根，因为判别式 25-24=1>0。")
    assert easy < hard - 0.1


def test_difficulty_terms_mean_the_same_in_zh_and_en():
    from thresher.scoring.heuristic import difficulty_components
    pairs = [("计算 3x + 5 = 20 中 x 的值。", "x = 5。", "Calculate x in 3x + 5 = 20.", "x = 5."),
             ("解释为什么天空是蓝色的。", "因为瑞利散射使短波长的蓝光散射得更多，所以天空看起来是蓝色的。",
              "Explain why the sky is blue.", "Because Rayleigh scattering scatters short blue wavelengths more.")]
    for zi, za, ei, ea in pairs:
        z, e = difficulty_components(zi, za), difficulty_components(ei, ea)
        for k in ("task_open", "task_solve", "math", "code", "needs_external"):
            assert z[k] == e[k], (k, zi)


def test_difficulty_ranks_solve_and_code_above_open_explanations():
    explain = heuristic_difficulty("请介绍一下长城的历史。", "长城始建于春秋战国时期，" * 20)
    code = heuristic_difficulty("编写一个 Python 函数，计算列表中所有偶数的和。",
                                "```python\ndef even_sum(xs):\n    return sum(x for x in xs if x % 2 == 0)\n```")
    external = heuristic_difficulty("Predict the current stock price of Apple.", "I cannot access live data.")
    assert explain < code and explain < external


def test_quality_penalises_markup_and_boilerplate():
    base = heuristic_quality(GOOD)
    html = "<div class=\"content\"><p>" + GOOD.replace("。", "。</p><p>") + "</p>&nbsp;</div>"
    boiler = "分享到：微信 微博\n" + GOOD + "\n版权所有 © 2024 保留所有权利。关注公众号，扫码领取资料。"
    assert heuristic_quality(html) < base - 0.1
    assert heuristic_quality(boiler) < base - 0.2


def test_stages_write_scores_and_versions():
    q, d = HeuristicQuality(), HeuristicDifficulty()
    d.setup(None)
    sft = make_record("sft", "s", messages=[{"role": "user", "content": "写一首关于秋天的诗"},
                                            {"role": "assistant", "content": "秋风起，落叶黄。"}])
    txt = make_record("text", "t", text=GOOD)
    out = d.process_batch(q.process_batch([sft, txt]))
    assert set(out[0].meta["scores"]) == {"quality_heuristic", "difficulty_heuristic"}
    assert out[0].meta["scorer_versions"]["difficulty_heuristic"] == "difficulty_heuristic/2"
    assert "difficulty_heuristic" not in out[1].meta["scores"]  # text records have no difficulty
