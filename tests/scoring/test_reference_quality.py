"""quality_reference: a fastText classifier trained in the run's reduce on a named reference
corpus (positives) against a sample of the run's own input (negatives)."""
import random

import orjson
import pytest

from thresher.config import validate
from thresher.executor.runner import run_recipe
from thresher.io.readers import iter_records
from thresher.pipeline import ConfigError

pytest.importorskip("fasttext")

TOPICS = ["城市交通", "工业生产", "暑期旅游", "高温健康", "农业丰收", "科技创新", "教育改革", "环境保护"]


def _news(rng, topic):
    parts = [f"本报讯 记者从有关部门获悉，{topic}工作今年取得新进展。",
             f"据介绍，相关单位围绕{topic}推出多项举措，群众反映良好。",
             "专家分析认为，随着政策持续发力，整体形势有望保持平稳向好。",
             f"下一步，各地将继续加大投入，推动{topic}工作迈上新台阶。"]
    rng.shuffle(parts)
    return "".join(parts)


def _junk(rng):
    words = ["包邮", "秒杀", "点击", "加微信", "哈哈哈", "顶", "沙发", "好评", "优惠券", "链接", "速来", "999"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(8, 20)))


def test_reference_classifier_trained_in_reduce_scores_every_record(tmp_path):
    rng = random.Random(0)
    ref = tmp_path / "ref.jsonl"
    refs = [_news(rng, rng.choice(TOPICS)) for _ in range(150)]
    ref.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in refs))
    raw = [_news(rng, rng.choice(TOPICS)) for _ in range(40)] + [_junk(rng) for _ in range(120)]
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in raw))
    recipe = {"inputs": [{"path": str(inp), "name": "web"}], "output": {"dir": str(tmp_path / "run"), "format": "jsonl",
                                                                          "keep_work": True},
              "executor": {"workers": 2, "shard_bytes": "4KB"},
              "stages": [{"quality_reference": {"reference": [str(ref)], "epoch": 20}}]}
    run_recipe(validate(recipe))
    kept = list(iter_records(str(tmp_path / "run" / "kept")))
    assert len(kept) == len(raw)
    s = {r.text: r.meta["scores"]["quality_reference"] for r in kept}
    news = [s[t] for t in raw[:40]]
    junk = [s[t] for t in raw[40:]]
    # input texts equal to a reference text are no negatives (templated news repeats here)
    assert min(news) > max(junk)  # the input's news reads like the reference, the junk does not
    state = tmp_path / "run" / "work" / "global-00-quality_reference" / "state"
    metrics = orjson.loads((state / "metrics.json").read_bytes())
    assert metrics["pos"] == 150 and metrics["neg"] == len([t for t in raw if t not in set(refs)]) and metrics["roc_auc"] > 0.5


def test_reference_is_required_and_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="reference"):
        validate({"inputs": [{"path": "x.jsonl"}], "output": {"dir": str(tmp_path)}, "stages": ["quality_reference"]})
