"""Masking, truncation and tokenizer/embedding startup checks."""
import pytest
import torch

from training_util import QA, sft_records
from thresher.training.encode import IGNORE, Encoder
from thresher.training.model import check_embeddings, check_tokenizer, load_model, load_tokenizer
from thresher.training.templates import get_template

OA = get_template("open-assistant")


def trained_spans(labels):
    spans, cur = [], []
    for l in labels:
        if l != IGNORE:
            cur.append(l)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return spans


def test_multi_turn_masking_invariants(tiny_tok):
    enc = Encoder(tiny_tok, OA, max_length=512)
    for rec in sft_records(8, multi_turn=True):
        s = enc.encode_sft(rec.messages)
        assert len(s["input_ids"]) == len(s["labels"])
        answers = [m["content"] for m in rec.messages if m["role"] == "assistant"]
        spans = trained_spans(s["labels"])
        # exactly the assistant turns are trained, each including its eos
        assert [tiny_tok.decode(sp) for sp in spans] == [a + "</s>" for a in answers]
        assert all(sp[-1] == tiny_tok.eos_token_id for sp in spans)
        # trained labels are the input ids themselves (no shift in the data; the loss shifts)
        for i, l in enumerate(s["labels"]):
            assert l == IGNORE or l == s["input_ids"][i]
        # role markers and prompts are masked
        asst = tiny_tok.convert_tokens_to_ids("<|assistant|>")
        for i, t in enumerate(s["input_ids"]):
            if t == asst:
                assert s["labels"][i] == IGNORE
    assert enc.stats.kept == 8 and enc.stats.truncated == 0


def test_last_turn_and_train_on_prompt(tiny_tok):
    rec = sft_records(1, multi_turn=True)[0]
    s = Encoder(tiny_tok, OA, 512, mask_mode="last_turn").encode_sft(rec.messages)
    spans = trained_spans(s["labels"])
    assert len(spans) == 1 and tiny_tok.decode(spans[0]) == rec.messages[-1]["content"] + "</s>"
    s = Encoder(tiny_tok, OA, 512, mask_mode="train_on_prompt").encode_sft(rec.messages)
    assert s["labels"] == s["input_ids"]


def test_truncation_keeps_final_answer(tiny_tok):
    long_hist = []
    for i in range(6):
        q, a = QA[i]
        long_hist += [{"role": "user", "content": q * 3}, {"role": "assistant", "content": a * 3}]
    msgs = [{"role": "system", "content": "你是一个助手。"}] + long_hist + [
        {"role": "user", "content": "最后的问题？" * 10}, {"role": "assistant", "content": "最后的回答。"}]
    enc = Encoder(tiny_tok, OA, max_length=60)
    s = enc.encode_sft(msgs)
    assert s["truncated"] and len(s["input_ids"]) <= 60
    assert tiny_tok.decode(trained_spans(s["labels"])[-1]) == "最后的回答。</s>"
    assert enc.stats.as_dict()["truncated_share"] == 1.0
    # an answer longer than the budget is cut on the right but still trains
    msgs2 = [{"role": "user", "content": "问题"}, {"role": "assistant", "content": "很长的回答。" * 50}]
    s2 = enc.encode_sft(msgs2)
    assert len(s2["input_ids"]) <= 60 and sum(l != IGNORE for l in s2["labels"][1:]) > 0


def test_samples_without_trained_tokens_are_dropped(tiny_tok):
    enc = Encoder(tiny_tok, OA, max_length=64)
    assert enc.encode_sft([{"role": "user", "content": "只有问题"}]) is None
    assert enc.encode_sft([{"role": "assistant", "content": "x"}]) is None   # bad role order
    assert enc.stats.dropped_no_trained_tokens == 1 and enc.stats.dropped_invalid == 1


def test_dpo_pair_encoding(tiny_tok):
    enc = Encoder(tiny_tok, OA, max_length=64)
    p = enc.encode_pair([{"role": "user", "content": "中国的首都是哪里？"}], "北京。", "上海。")
    assert p["prompt_ids"][-1] == tiny_tok.convert_tokens_to_ids("<|assistant|>")
    assert p["chosen_ids"][-1] == tiny_tok.eos_token_id == p["rejected_ids"][-1]
    assert tiny_tok.decode(p["chosen_ids"]) == "北京。</s>"


def test_tokenizer_checks(tiny_dir, tiny_tok):
    check_tokenizer(tiny_tok, OA)
    with pytest.raises(ValueError, match="not a single known token"):
        check_tokenizer(tiny_tok, get_template("chatml"))
    bad = type(tiny_tok).from_pretrained(tiny_dir)
    bad.pad_token = bad.eos_token
    with pytest.raises(ValueError, match="pad"):
        check_tokenizer(bad, OA)


def test_template_tokens_added_and_embeddings_resized(tiny_dir):
    cfg = {"model_name": tiny_dir, "template": "chatml"}
    tok = load_tokenizer(cfg, get_template("chatml"))
    for t in ("<|im_start|>", "<|im_end|>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1
    model = load_model(cfg, tok)
    check_embeddings(model, tok)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    model.resize_token_embeddings(len(tok) - 1)
    with pytest.raises(ValueError, match="embedding rows"):
        check_embeddings(model, tok)


def test_qlora_needs_gpu(tiny_dir, tiny_tok):
    if torch.cuda.is_available():
        pytest.skip("has a GPU: QLoRA path is not a CPU error here")
    with pytest.raises(RuntimeError, match="GPU"):
        load_model({"model_name": tiny_dir, "tuning": "qlora"}, tiny_tok)
