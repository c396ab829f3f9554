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
    assert easy < 0.2 < hard


def test_stages_write_scores_and_versions():
    q, d = HeuristicQuality(), HeuristicDifficulty()
    d.setup(None)
    sft = make_record("sft", "s", messages=[{"role": "user", "content": "写一首关于秋天的诗"},
                                            {"role": "assistant", "content": "秋风起，落叶黄。"}])
    txt = make_record("text", "t", text=GOOD)
    out = d.process_batch(q.process_batch([sft, txt]))
    assert set(out[0].meta["scores"]) == {"quality_heuristic", "difficulty_heuristic"}
    assert out[0].meta["scorer_versions"]["difficulty_heuristic"] == "difficulty_heuristic/1"
    assert "difficulty_heuristic" not in out[1].meta["scores"]  # text records have no difficulty
