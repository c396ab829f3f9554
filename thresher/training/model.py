"""Tokenizer/model loading, startup checks and tuning modes (full / LoRA / QLoRA).

Startup checks fail fast, before any compute is spent:
  * pad token exists and differs from eos (a pad==eos setup masks every eos label
    in collators that mask pad, and the model never learns to stop);
  * every special token of the chat template is a single, known token;
  * the largest token id fits the embedding matrix (after resizing).
"""
from __future__ import annotations

import logging
import os

import torch

from thresher.training.templates import ChatTemplate

log = logging.getLogger("thresher.training.model")

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def _local(path: str) -> str:
    # models load from local paths only: a hub id here would try the network
    if not os.path.exists(path):
        raise FileNotFoundError(f"model/tokenizer path {path!r} does not exist; thresher train loads local paths only")
    return path


def load_tokenizer(cfg: dict, template: ChatTemplate):
    from transformers import AutoTokenizer
    path = _local(cfg.get("tokenizer_path") or cfg["model_name"])
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(cfg.get("trust_remote_code", False)))
    if tok.eos_token is None:
        raise ValueError(f"tokenizer at {path} has no eos token; set one in its config")
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        if tok.unk_token is not None and tok.unk_token_id != tok.eos_token_id:
            tok.pad_token = tok.unk_token   # pad positions are never trained, reusing unk costs no embedding row
        else:
            tok.add_special_tokens({"pad_token": cfg.get("pad_token") or "<|pad|>"})
        log.info("pad token set to %r (distinct from eos %r)", tok.pad_token, tok.eos_token)
    if cfg.get("add_template_tokens", True):
        vocab = tok.get_vocab()
        missing = [t for t in template.addable_tokens if t not in vocab]
        if missing:
            tok.add_tokens(missing, special_tokens=True)   # special: never split or normalised
            log.info("added template tokens %s", missing)
    check_tokenizer(tok, template)
    return tok


def check_tokenizer(tok, template: ChatTemplate) -> None:
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        raise ValueError("pad token must exist and differ from eos")
    bos = tok.bos_token or ""
    for t in template.resolved_special_tokens(bos, tok.eos_token) + template.resolved_stop_tokens(bos, tok.eos_token):
        if not t:
            raise ValueError(f"template {template.name} needs a bos token; tokenizer has none")
        ids = tok(t, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or (tok.unk_token_id is not None and ids[0] == tok.unk_token_id):
            raise ValueError(f"template {template.name}: special token {t!r} is not a single known token "
                             f"(got ids {ids}); add it to the tokenizer or enable add_template_tokens")


def stop_token_ids(tok, template: ChatTemplate) -> list[int]:
    ids = []
    for t in template.resolved_stop_tokens(tok.bos_token or "", tok.eos_token):
        i = tok.convert_tokens_to_ids(t)
        if i is not None and i not in ids and i != tok.unk_token_id:
            ids.append(i)
    return ids


def embedding_rows(model) -> int:
    w = model.get_input_embeddings().weight
    return int(w.ds_shape[0]) if hasattr(w, "ds_shape") else int(w.shape[0])   # ZeRO-3 partitioned: shape is empty


def check_embeddings(model, tok) -> None:
    rows = embedding_rows(model)
    max_id = len(tok) - 1
    if max_id >= rows:
        raise ValueError(f"largest token id {max_id} >= embedding rows {rows}: resize the embeddings")


def torch_dtype(cfg: dict) -> torch.dtype:
    if cfg.get("bf16"):
        return torch.bfloat16
    if cfg.get("fp16"):
        return torch.float16
    return DTYPES.get(str(cfg.get("dtype", "fp32")), torch.float32)


def load_model(cfg: dict, tok, path: str | None = None):
    from transformers import AutoModelForCausalLM
    path = _local(path or cfg["model_name"])
    mode = cfg.get("tuning", "full")
    kwargs = {"trust_remote_code": bool(cfg.get("trust_remote_code", False))}
    if cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = cfg["attn_implementation"]
    dtype = torch_dtype(cfg)
    if not cfg.get("deepspeed") and mode != "qlora" and (cfg.get("bf16") or cfg.get("fp16")):
        # plain torch loop: fp32 master weights + autocast (see Trainer.autocast); DeepSpeed keeps
        # its own fp32 master copy, so there the weights themselves are 16-bit
        dtype = torch.float32
    if mode == "qlora":
        if not torch.cuda.is_available():
            raise RuntimeError("tuning=qlora needs a CUDA GPU and bitsandbytes (4-bit kernels are GPU-only); "
                               "use tuning=lora on CPU")
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    resized = False
    rows = embedding_rows(model)
    if len(tok) > rows:
        model.resize_token_embeddings(len(tok), pad_to_multiple_of=cfg.get("pad_vocab_to_multiple_of"))
        log.info("resized embeddings %d -> %d rows", rows, embedding_rows(model))
        resized = True
        from thresher.training.vocab import init_new_rows
        # extend-vocab's map: each new row starts at the mean of the base rows of the text it replaces
        init_new_rows(model, cfg.get("tokenizer_path") or cfg["model_name"])
    check_embeddings(model, tok)
    model.config.pad_token_id = tok.pad_token_id
    model.config.use_cache = False
    if cfg.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if mode in ("lora", "qlora"):
        model = apply_lora(model, cfg, train_embeddings=resized or bool(cfg.get("lora", {}).get("train_embeddings")))
    elif mode != "full":
        raise ValueError(f"unknown tuning mode {mode!r}; expected full, lora or qlora")
    return model


def _embedding_module_names(model) -> list[str]:
    targets = {id(model.get_input_embeddings()): None, id(model.get_output_embeddings()): None}
    return sorted({name.split(".")[-1] for name, mod in model.named_modules() if id(mod) in targets and name})


def apply_lora(model, cfg: dict, train_embeddings: bool = False):
    from peft import LoraConfig, get_peft_model
    lc = cfg.get("lora") or {}
    if cfg.get("tuning") == "qlora":
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(cfg.get("gradient_checkpointing")))
    modules_to_save = list(lc.get("modules_to_save") or [])
    if train_embeddings:
        # new vocabulary rows start untrained: LoRA alone cannot move them, so embed/lm_head train fully
        modules_to_save += [n for n in _embedding_module_names(model) if n not in modules_to_save]
    conf = LoraConfig(r=int(lc.get("r", 8)), lora_alpha=int(lc.get("alpha", 16)),
                      lora_dropout=float(lc.get("dropout", 0.05)),
                      target_modules=lc.get("target_modules", "all-linear"),
                      modules_to_save=modules_to_save or None, task_type="CAUSAL_LM")
    model = get_peft_model(model, conf)
    if cfg.get("gradient_checkpointing"):
        model.enable_input_require_grads()
    numel = lambda p: getattr(p, "ds_numel", p.numel())   # ZeRO-3 partitioned params report 0 locally
    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(numel(p) for p in model.parameters())
    log.info("LoRA: %d / %d parameters trainable (%.2f%%), modules_to_save=%s", trainable, total,
             100 * trainable / max(1, total), modules_to_save)
    return model
