"""extend-vocab: SentencePiece on a Chinese corpus -> merged tokenizer -> resized training (LoRA)."""
import json
import os

import pytest

from training_util import base_cfg, sft_records

# Chinese text the tiny base tokenizer never saw, so it falls back to byte pieces --
# the situation of an English-centric base model that vocabulary extension is for.
NEW_ZH = ["春天来了，花儿都开了，小鸟在树上唱歌。", "我们应该节约用水，保护环境。", "这本小说的故事情节非常精彩。",
          "医生建议病人多喝水，多休息。", "科学家发现了一种新的细菌。", "孩子们在操场上踢足球。",
          "这座城市的交通越来越拥挤了。", "老师耐心地回答学生的问题。", "经济发展需要创新和人才。",
          "秋天的树叶变成了金黄色。", "他每天早上六点起床跑步。", "图书馆里有很多珍贵的古籍。"]

pytest.importorskip("sentencepiece")


@pytest.fixture(scope="module")
def extended(tiny_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("vocab")
    txt = d / "zh.txt"
    import random
    rng = random.Random(0)
    txt.write_text("\n".join("".join(rng.sample(NEW_ZH, 3)) for _ in range(400)), encoding="utf-8")
    from thresher.training.cli import main
    out = d / "tok"
    assert main(["extend-vocab", "--base", tiny_dir, "--out", str(out), "--corpus", str(txt),
                 "--vocab-size", "400"]) == 0
    return str(out)


def test_extend_vocab_adds_chinese_pieces(tiny_dir, extended):
    from transformers import AutoTokenizer
    rep = json.load(open(os.path.join(extended, "extend_vocab_report.json")))
    base, tok = AutoTokenizer.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(extended)
    assert rep["added"] > 20 and len(tok) == len(base) + rep["added"]
    assert rep["tokens_per_char_after"] < rep["tokens_per_char_before"]
    # old ids keep their meaning; specials untouched
    assert tok.convert_tokens_to_ids("<|prompter|>") == base.convert_tokens_to_ids("<|prompter|>")
    assert tok.decode(tok(NEW_ZH[0])["input_ids"]) == NEW_ZH[0]
    assert len(tok(NEW_ZH[0])["input_ids"]) < len(base(NEW_ZH[0])["input_ids"])


def test_lora_with_extended_vocab_trains_embeddings(tiny_dir, extended, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from thresher.training.model import load_model, load_tokenizer
    from thresher.training.runs import run
    from thresher.training.templates import get_template
    cfg = base_cfg(tiny_dir, tmp_path / "lv", tokenizer_path=extended, tuning="lora", num_train_epochs=2,
                   per_device_train_batch_size=4, resume=False)
    tok = load_tokenizer(cfg, get_template("open-assistant"))
    model = load_model(cfg, tok)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("embed_tokens" in n and "modules_to_save" in n for n in trainable)
    assert any("lm_head" in n and "modules_to_save" in n for n in trainable)
    s = run(cfg, "sft", sft_records(8))
    m = AutoModelForCausalLM.from_pretrained(s["model_dir"])
    assert m.get_input_embeddings().weight.shape[0] >= len(AutoTokenizer.from_pretrained(extended))
