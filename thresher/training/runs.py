"""End-to-end runs: data -> encode -> model -> loop -> export -> evaluation hooks.

``run(cfg, "sft"|"dpo")`` is what ``thresher train sft|dpo`` calls and what each
stage of a round calls.  Records may be passed in (rounds hand out data slices);
otherwise they are read from the config's ``datasets``.
"""
from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import torch

from thresher.training import distributed as D
from thresher import meta as M
from thresher.training.config import normalize_deepspeed, resolve_config
from thresher.training.data import curriculum_order, load_splits
from thresher.training.encode import Encoder
from thresher.training.model import load_model, load_tokenizer, stop_token_ids
from thresher.training.templates import get_template
from thresher.training.trainer import Trainer

log = logging.getLogger("thresher.training")


def setup_logging(level: str = "INFO") -> None:
    fmt = f"%(asctime)s [rank{D.rank()}] %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO), format=fmt)


def seed_everything(seed: int) -> None:
    import numpy as np
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def make_encoder(cfg: dict, tok, template) -> Encoder:
    return Encoder(tok, template, int(cfg["max_length"]), mask_mode=cfg.get("mask_mode", "all_assistant"),
                   add_bos=bool(cfg.get("add_bos", False)), max_prompt_length=cfg.get("max_prompt_length"))


def encode_records(records, enc: Encoder, objective: str) -> list[dict]:
    out = []
    for r in records:
        s = enc.encode_sft(r.messages) if objective == "sft" else enc.encode_pair(r.messages, r.chosen, r.rejected)
        if s is not None:
            s["source"] = r.source
            out.append(s)
    return out


def run(cfg: dict, objective: str, train_records=None, val_records: dict | None = None) -> dict:
    """Train one SFT or DPO stage; returns a summary (also written to output_dir/summary.json)."""
    if objective not in ("sft", "dpo"):
        raise ValueError(objective)
    resolve_config(cfg)   # a config built in code is checked and gets the dataclass defaults too
    normalize_deepspeed(cfg)
    D.setup(cfg)
    setup_logging(cfg.get("log_level", "INFO"))
    seed_everything(int(cfg.get("seed", 42)))
    out = Path(cfg["output_dir"])
    if D.is_main():
        out.mkdir(parents=True, exist_ok=True)
    template = get_template(cfg.get("template", "open-assistant"))
    tok = load_tokenizer(cfg, template)

    if train_records is None:
        splits = load_splits(cfg, kind=objective, datasets_key=cfg.get("datasets_key", "datasets"))
        train_records, val_records, counts = splits.train, splits.val, splits.counts
    else:
        counts = {"<given>": {"train": len(train_records)}}
    cur = cfg.get("curriculum") or {}
    if cur.get("enabled"):
        train_records = curriculum_order(train_records, cur.get("key") or M.DIFFICULTY_PATH,
                                         int(cur.get("phases", 3)), int(cfg.get("seed", 42)),
                                         descending=bool(cur.get("descending", False)))

    enc = make_encoder(cfg, tok, template)
    train = encode_records(train_records, enc, objective)
    train_stats = enc.stats.as_dict()
    val = {}
    for name, recs in (val_records or {}).items():
        venc = make_encoder(cfg, tok, template)
        val[name] = encode_records(recs, venc, objective)
    log.info("encoded %s: %s", objective, train_stats)
    if not train:
        raise ValueError(f"no trainable {objective} samples after encoding: {train_stats}")

    trainer_ref = None
    if objective == "dpo" and cfg.get("dpo", {}).get("reference") == "model":
        # loaded before any zero.Init context: the frozen reference stays a plain, whole module
        trainer_ref = load_model({**cfg, "tuning": "full", "gradient_checkpointing": False}, tok,
                                 path=cfg["dpo"].get("ref_model") or cfg["model_name"])
        trainer_ref.eval().requires_grad_(False)
    trainer = Trainer(cfg, None, tok, objective=objective)
    trainer.zero3_ctx = zero3_init_context(cfg)   # HF holds it by weak reference: keep it alive while training
    trainer.model = model = load_model(cfg, tok)
    if trainer_ref is not None:
        trainer.ref_model = trainer_ref.to(trainer.device)
    summary = trainer.train(train, val)
    summary["encode"] = train_stats
    summary["datasets"] = counts
    model_dir = trainer.export(out / "final", cfg["model_name"])
    summary["model_dir"] = model_dir
    gens = cfg.get("eval", {}).get("generation_prompts") or []
    if gens and D.is_main():
        summary["generations"] = generate(model_dir, gens, cfg)
        stopped = sum(g["stopped_at_eos"] for g in summary["generations"])
        summary["generation_stop_rate"] = stopped / len(gens)
        if stopped < len(gens):
            log.warning("%d of %d generation prompts ran to max_new_tokens without a stop token",
                        len(gens) - stopped, len(gens))
    D.barrier()
    if D.is_main():
        with open(out / "summary.json", "w", encoding="utf-8") as f:
            json.dump({k: v for k, v in summary.items() if k != "history"}, f, ensure_ascii=False, indent=1)
    del trainer, model
    return summary


def zero3_init_context(cfg: dict):
    """Under ZeRO-3, let ``from_pretrained`` partition weights while loading (zero.Init).

    Without this every rank first materialises the whole model in host RAM (a 7B
    model in bf16 is 14 GB per rank).  Returns the HfDeepSpeedConfig that must stay
    referenced until training ends, or None.
    """
    if not cfg.get("deepspeed") or not cfg.get("zero3_init", True):
        return None
    from transformers import AutoConfig
    from thresher.training.distributed import fill_ds_config
    mc = AutoConfig.from_pretrained(cfg["model_name"], trust_remote_code=bool(cfg.get("trust_remote_code", False)))
    ds = fill_ds_config(cfg["deepspeed"], cfg, D.world_size(), getattr(mc, "hidden_size", None))
    if ds.get("zero_optimization", {}).get("stage") != 3:
        return None
    from transformers.integrations import HfDeepSpeedConfig
    return HfDeepSpeedConfig(ds)


@torch.no_grad()
def generate(model_dir: str, prompts: list, cfg: dict) -> list[dict]:
    """Greedy generation for a fixed prompt set; records whether each output stopped at a stop token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    template = get_template(cfg.get("template", "open-assistant"))
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    enc = make_encoder({**cfg, "max_length": 10 ** 9}, tok, template)
    stops = stop_token_ids(tok, template)
    max_new = int(cfg["eval"]["max_new_tokens"])   # resolve_config filled the default
    res = []
    for p in prompts:
        msgs = [{"role": "user", "content": p}] if isinstance(p, str) else p
        ids = torch.tensor([enc.prompt_ids(msgs)])
        outp = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                              eos_token_id=stops, pad_token_id=tok.pad_token_id)
        new = outp[0, ids.shape[1]:].tolist()
        stopped = bool(new) and new[-1] in stops
        text = tok.decode(new[:-1] if stopped else new, skip_special_tokens=False)
        res.append({"prompt": p, "output": text, "stopped_at_eos": stopped, "new_tokens": len(new)})
        log.info("generation %r -> %r (stopped at eos: %s)", p, text[:200], stopped)
    out = Path(cfg["output_dir"]) / "generations.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for r in res:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return res
