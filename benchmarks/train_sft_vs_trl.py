"""Benchmark: our SFT loop vs TRL's SFTTrainer, padded and packed, and padding waste.

Part 1 trains the same small Llama (fresh from the same init each run) on the same
pre-tokenised samples (same trained tokens: our labels, TRL's ``completion_mask``) with
the same batch size for ``--steps`` optimizer steps, in four configurations -- ours
padded, TRL padded, ours packed (4D block mask: samples never attend to each other), TRL
packed (its default ``bfd`` strategy, padding-free rows with position ids; on SDPA that
lets packed samples attend to each other, so it does less masking work than ours) --
interleaved round by round so machine noise hits all four alike, and reports real
(non-pad) tokens per second: median, min and max over ``--rounds``.  Part 2 reports the
real-token share of batches for random padded batches, length-grouped batches and
packed rows on Chinese SFT data from ../shared/data (skipped when absent).

    .venv/bin/python benchmarks/train_sft_vs_trl.py [--steps 100] [--rounds 3] [--out benchmarks/results/train_sft_vs_trl.json]

CPU only by default; everything is built locally (no hub access).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ALPACA = SHARED / "seed-xubuvd" / "alpaca-zh-data-part-00.json"
MOSS = SHARED / "moss-003-sft" / "conversations_without_plugins_part1.jsonl"


def load_messages(path: Path, n: int) -> list[list[dict]]:
    from thresher.io.readers import iter_records
    return [r.messages for r in itertools.islice((r for r in iter_records(str(path)) if r.kind == "sft"), n)]


def synthetic(n: int) -> list[list[dict]]:
    rng = random.Random(0)
    words = "数据 清洗 模型 训练 中文 语料 质量 评估 指令 回答 问题 世界 学习 知识 the data model train quality".split()
    return [[{"role": "user", "content": "".join(rng.choices(words, k=rng.randint(5, 40)))},
             {"role": "assistant", "content": "".join(rng.choices(words, k=rng.randint(10, 200)))}] for _ in range(n)]


def build_tokenizer(texts: list[str], path: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=4000, special_tokens=["<s>", "</s>", "<unk>", "<pad>", "<|system|>", "<|prompter|>",
                                         "<|assistant|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>")
    tok.save_pretrained(path)
    return tok


def build_model(path: str, vocab: int, hidden: int = 128, layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2 + hidden // 2,
                                 num_hidden_layers=layers,
                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                                 tie_word_embeddings=False)).save_pretrained(path)


def encode(tok, convs, max_length, mask_mode="all_assistant"):
    from thresher.training.encode import Encoder
    from thresher.training.templates import get_template
    enc = Encoder(tok, get_template("open-assistant"), max_length, mask_mode=mask_mode)
    out = [s for s in (enc.encode_sft(m) for m in convs) if s]
    return out, enc.stats.as_dict()


def ours(model_dir, tok, samples, bs, steps, max_length, packed, out):
    from transformers import AutoModelForCausalLM
    from thresher.training.trainer import Trainer
    cfg = {"output_dir": out, "per_device_train_batch_size": bs, "learning_rate": 1e-4, "max_steps": steps,
           "logging_steps": 10 ** 9, "save_final_checkpoint": False, "group_by_length": False, "resume": False,
           "lr_scheduler": "cosine", "max_length": max_length, "seed": 0, "packing": packed}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    s = Trainer(cfg, model, tok, "sft").train(samples)
    return {"tokens_per_s": s["tokens_per_s"], "seconds": s["train_seconds"], "steps": s["global_step"],
            "real_token_share": s["real_token_share"], "final_loss": s["history"][-1]["loss"]}


class _RealTokens:
    """Counts the non-pad tokens TRL's collator actually feeds (padded or packed)."""
    def __init__(self, collator, pad_id):
        self.collator, self.pad_id, self.real, self.cells = collator, pad_id, 0, 0

    def __call__(self, feats):
        b = self.collator(feats)
        n = int(b["attention_mask"].sum()) if "attention_mask" in b else int(b["input_ids"].numel())
        self.real += n
        self.cells += int(b["input_ids"].numel())
        return b


def our_padded_order(samples, bs, steps, seed=0):
    """The sample order our padded loop consumes over ``steps`` batches (epoch after epoch)."""
    from thresher.training.collate import plan_batches
    lengths = [len(s["input_ids"]) for s in samples]
    order, epoch = [], 0
    while len(order) < bs * steps:
        for b in plan_batches(lengths, bs, seed, epoch, group_by_length=False, shuffle=True):
            order += b
        epoch += 1
    return order[:bs * steps]


def trl_run(model_dir, tok, samples, bs, steps, max_length, packed, out):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer
    if not packed:
        # padded: feed TRL our exact batches (same samples per step, same order); a sequential
        # sampler keeps them, so both sides pad the same batches to the same longest row
        samples = [samples[i] for i in our_padded_order(samples, bs, steps)]
    ds = Dataset.from_list([{"input_ids": s["input_ids"], "completion_mask": [int(l != -100) for l in s["labels"]]}
                            for s in samples])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    args = SFTConfig(output_dir=out, per_device_train_batch_size=bs, max_steps=steps, learning_rate=1e-4,
                     lr_scheduler_type="cosine", logging_steps=10 ** 6, save_strategy="no", report_to="none",
                     use_cpu=True, max_length=max_length, packing=packed, seed=0, dataloader_num_workers=0,
                     bf16=False, fp16=False, disable_tqdm=True, completion_only_loss=True,
                     # TRL's SFTConfig defaults to gradient checkpointing (recomputes the forward);
                     # our loop does not checkpoint unless asked, so compare like with like
                     gradient_checkpointing=False)
    cls = SFTTrainer
    if not packed:
        class _Sequential(SFTTrainer):
            def _get_train_sampler(self, train_dataset=None):
                return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)
        cls = _Sequential
    tr = cls(model=model, args=args, train_dataset=ds, processing_class=tok)
    counter = _RealTokens(tr.data_collator, tok.pad_token_id)
    tr.data_collator = counter
    res = tr.train()
    secs = res.metrics["train_runtime"]
    return {"tokens_per_s": counter.real / secs, "seconds": secs, "steps": res.global_step,
            "real_token_share": counter.real / max(1, counter.cells), "final_loss": res.training_loss}


def summarise(v: list[dict]) -> dict:
    import statistics
    tps = [x["tokens_per_s"] for x in v]
    return {"median_tokens_per_s": round(statistics.median(tps), 1), "min": round(min(tps), 1),
            "max": round(max(tps), 1), "real_token_share": round(statistics.median(x["real_token_share"] for x in v), 4),
            "steps": v[0]["steps"], "runs": v}


def share_report(tok, name, convs, max_length, bs):
    from thresher.training.trainer import Trainer
    samples, stats = encode(tok, convs, max_length)
    res = {"samples": len(samples), "encode": stats}
    for label, extra in (("padded_random", {"group_by_length": False}), ("length_grouped", {"group_by_length": True}),
                         ("packed", {"packing": True})):
        cfg = {"output_dir": "/tmp/x", "seed": 0, "max_length": max_length, **extra}
        batches = list(Trainer(cfg, None, tok, "sft").make_batches(samples, bs, 0))
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        cells = sum(b["attention_mask"].numel() for b in batches)
        res[label] = {"batches": len(batches), "real_token_share": round(real / cells, 4)}
    print(f"[share] {name}: " + json.dumps(res, ensure_ascii=False), flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--share-samples", type=int, default=3000)
    ap.add_argument("--share-max-length", type=int, default=2048)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    have_data = ALPACA.exists()
    convs = load_messages(ALPACA, a.samples) if have_data else synthetic(a.samples)
    result = {"data": "alpaca-zh-data-part-00" if have_data else "synthetic", "torch_threads": torch.get_num_threads(),
              "batch": a.batch, "max_length": a.max_length, "steps": a.steps, "rounds": a.rounds,
              "model": {"hidden": a.hidden, "layers": a.layers}, "share_max_length": a.share_max_length}
    with tempfile.TemporaryDirectory() as tmp:
        texts = [m["content"] for c in convs for m in c]
        if MOSS.exists():
            texts += [m["content"] for c in load_messages(MOSS, 500) for m in c]
        tok = build_tokenizer(texts, tmp + "/m")
        build_model(tmp + "/m", len(tok), a.hidden, a.layers)
        samples, stats = encode(tok, convs, a.max_length)
        result["encode"] = stats
        runners = {"ours_padded": lambda d: ours(tmp + "/m", tok, samples, a.batch, a.steps, a.max_length, False, d),
                   "trl_padded": lambda d: trl_run(tmp + "/m", tok, samples, a.batch, a.steps, a.max_length, False, d),
                   "ours_packed": lambda d: ours(tmp + "/m", tok, samples, a.batch, a.steps, a.max_length, True, d),
                   "trl_packed": lambda d: trl_run(tmp + "/m", tok, samples, a.batch, a.steps, a.max_length, True, d)}
        runs: dict[str, list] = {k: [] for k in runners}
        for r in range(a.rounds):
            # interleaved, and the order rotates each round so no configuration always runs first
            names = list(runners)
            names = names[r % len(names):] + names[:r % len(names)]
            for k in names:
                runs[k].append(runners[k](f"{tmp}/{k}{r}"))
            print(f"[speed] round {r}: " + json.dumps({k: round(v[-1]["tokens_per_s"], 1) for k, v in runs.items()}),
                  flush=True)
        result["speed"] = {k: summarise(v) for k, v in runs.items()}
        sp = result["speed"]
        result["ratio_ours_over_trl"] = {
            m: round(sp[f"ours_{m}"]["median_tokens_per_s"] / sp[f"trl_{m}"]["median_tokens_per_s"], 3)
            for m in ("padded", "packed")}
        if have_data or MOSS.exists():
            result["real_token_share"] = {}
            if have_data:
                result["real_token_share"]["alpaca-zh"] = share_report(
                    tok, "alpaca-zh", load_messages(ALPACA, a.share_samples), a.share_max_length, a.batch)
            if MOSS.exists():
                result["real_token_share"]["moss-003-sft"] = share_report(
                    tok, "moss-003-sft", load_messages(MOSS, a.share_samples), a.share_max_length, a.batch)
        else:
            print("[share] ../shared/data not present: real-token-share part skipped")
    print(json.dumps({k: v for k, v in result.items() if k != "speed"}, ensure_ascii=False, indent=1))
    print(json.dumps({k: {x: y for x, y in v.items() if x != "runs"} for k, v in result["speed"].items()}, indent=1))
    print("ours/trl (median tokens/s):", result["ratio_ours_over_trl"])
    if a.out:
        Path(a.out).write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
