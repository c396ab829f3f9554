"""Shared builders for the training tests: a tiny Llama + byte-level BPE tokenizer
built locally (never from a hub), records and tier folders.  A module of its own (not
conftest) so test files import it unambiguously."""
from __future__ import annotations

import json
import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

ZH = ["今天天气很好，我们去公园散步吧。", "人工智能正在改变世界。", "请介绍一下中国的四大发明。",
      "北京是中国的首都，有很多名胜古迹。", "学习编程需要耐心和练习。", "三原色是红、黄、蓝。",
      "保持健康的秘诀是均衡饮食和规律运动。", "长城是世界上最长的建筑之一。", "你好，很高兴认识你。",
      "机器学习是人工智能的一个分支。", "我喜欢读书和写作。", "上海是一个国际化的大都市。"]
EN = ["The weather is nice today.", "Artificial intelligence is changing the world.",
      "Paris is the capital of France.", "Learning to program takes patience.", "Hello, nice to meet you.",
      "The Great Wall is very long.", "Machine learning is a branch of AI.", "I like reading books."]



def corpus(n=400, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pool = ZH if rng.random() < 0.6 else EN
        out.append(" ".join(rng.sample(pool, 2)))
    return out + ZH + EN


def build_tiny_model(path):
    """The tests' tiny Llama + byte-level BPE tokenizer (the product's own builder)."""
    from thresher.training.tiny import build_tiny
    build_tiny(path, texts=corpus(), vocab_size=1200, hidden=64, layers=2, max_positions=512)


QA = [("中国的首都是哪里？", "北京是中国的首都。"), ("What is the capital of France?", "Paris is the capital of France."),
      ("三原色是什么？", "三原色是红、黄、蓝。"), ("Say hello.", "Hello, nice to meet you."),
      ("什么是机器学习？", "机器学习是人工智能的一个分支。"), ("Tell me about AI.", "Artificial intelligence is changing the world."),
      ("长城有多长？", "长城是世界上最长的建筑之一。"), ("你喜欢做什么？", "我喜欢读书和写作。")]


def sft_records(n=8, source="tiny-sft", multi_turn=False):
    from thresher.records import make_record
    recs = []
    for i in range(n):
        q, a = QA[i % len(QA)]
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if multi_turn:
            q2, a2 = QA[(i + 1) % len(QA)]
            msgs = [{"role": "system", "content": "你是一个助手。"}] + msgs + [
                {"role": "user", "content": q2}, {"role": "assistant", "content": a2}]
        recs.append(make_record("sft", source, messages=msgs, meta={"scores": {"difficulty_heuristic": float(i)}}))
    return recs


def dpo_records(n=8, source="tiny-dpo"):
    from thresher.records import make_record
    recs = []
    for i in range(n):
        q, a = QA[i % len(QA)]
        _, bad = QA[(i + 3) % len(QA)]
        recs.append(make_record("dpo", source, messages=[{"role": "user", "content": q}], chosen=a, rejected=bad,
                                meta={"scores": {"difficulty_heuristic": float(i)}}))
    return recs


def write_jsonl(path, recs):
    with open(path, "wb") as f:
        for r in recs:
            f.write(r.to_json() + b"\n")
    return str(path)


def write_tier(dirpath, recs, shards=2):
    """A thresher-style tier directory: shard files + manifest.json."""
    os.makedirs(dirpath, exist_ok=True)
    files = []
    per = -(-len(recs) // shards)
    for s in range(shards):
        part = recs[s * per:(s + 1) * per]
        name = f"shard-{s:05d}.jsonl"
        write_jsonl(os.path.join(dirpath, name), part)
        files.append({"path": name, "records": len(part)})
    with open(os.path.join(dirpath, "manifest.json"), "w") as f:
        json.dump({"files": files, "records": len(recs)}, f)
    return os.path.join(dirpath, "manifest.json")


def base_cfg(tiny_dir, out, **over):
    from thresher.training.config import build_config
    cfg = build_config(["defaults", "tiny-llama"], [("model_name", tiny_dir), ("output_dir", str(out))])
    for k, v in over.items():
        from thresher.training.config import set_dotted
        set_dotted(cfg, k, v)
    return cfg
