"""A tiny randomly initialised Llama + byte-level BPE tokenizer, built locally.

For CPU demos and tests of the trainer: `thresher train init-tiny --out DIR [--corpus PATH]`
trains the tokenizer on a curated tier (or any thresher-readable data), so the whole
"clean -> tier -> train" path runs offline in minutes.  Nothing is downloaded.
"""
from __future__ import annotations

import itertools

SPECIAL = ["<s>", "</s>", "<unk>", "<pad>", "<|system|>", "<|prompter|>", "<|assistant|>"]
FALLBACK_TEXT = ["今天天气很好，我们去公园散步吧。", "人工智能正在改变世界。", "请介绍一下中国的四大发明。",
                 "The weather is nice today.", "Artificial intelligence is changing the world."]


def _texts(corpus: str | None, limit: int = 20000) -> list[str]:
    if not corpus:
        return FALLBACK_TEXT * 50
    from thresher.io.readers import iter_records
    return [r.full_text() for r in itertools.islice(iter_records(corpus), limit)] or FALLBACK_TEXT * 50


def build_tiny(out_dir: str, corpus: str | None = None, vocab_size: int = 2000, hidden: int = 64,
               layers: int = 2, seed: int = 0, texts: list[str] | None = None,
               max_positions: int = 1024) -> dict:
    """Save a tokenizer trained on ``texts`` (or the records under ``corpus``) and a
    randomly initialised Llama sized by ``hidden``/``layers`` into ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts if texts is not None else _texts(corpus), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>")
    tok.save_pretrained(out_dir)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=max_positions, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out_dir)
    return {"out": out_dir, "vocab": len(tok), "hidden": hidden, "layers": layers}


def train_llama_sp(texts: list[str], vocab_size: int = 800, model_type: str = "bpe",
                   character_coverage: float = 1.0) -> bytes:
    """A SentencePiece model shaped like LLaMA's: byte fallback, split digits, identity
    normalisation, whitespace kept, dummy prefix; ids 0/1/2 = <unk>/<s>/</s>."""
    import io
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False, minloglevel=2)
    return buf.getvalue()


def save_llama_sp_tokenizer(out_dir: str, proto: bytes, legacy: bool = True) -> None:
    """``tokenizer.model`` + the HF config that loads it as a LLaMA tokenizer."""
    import json
    import os
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(proto)
    conf = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
            "legacy": legacy, "add_bos_token": True, "add_eos_token": False, "model_max_length": 4096}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=1)
