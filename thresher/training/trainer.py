"""Our training loop on a DeepSpeed engine, or on plain torch when no DS config is given.

One loop serves SFT and DPO: the objective is a small strategy (``sft_step`` /
``dpo_step``) that turns a batch into a loss.  Owning the loop (rather than HF's
Trainer) keeps the packed-sample mask, per-dataset validation, reference log-prob
precomputation and ZeRO-3's "every rank runs the same number of forwards" rule in
one place, and runs identically with and without the ``deepspeed`` launcher.

Step accounting: a *step* is one optimizer update = ``gradient_accumulation_steps``
micro-batches.  Checkpoints record (global_step, epoch, micro index in the epoch);
batch plans are a pure function of (seed, epoch), so resuming skips exactly the
micro-batches already consumed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch

from thresher.training import distributed as D
from thresher.training.collate import (collate_dpo, collate_packed, collate_sft, pack, packed_4d_mask,
                                       plan_batches, real_token_share, shard_batches)
from thresher.training.losses import dpo_loss, lm_loss, sequence_logps

log = logging.getLogger("thresher.training.trainer")


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        prog = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return max(0.0, 1 - prog)
        return 0.5 * (1 + math.cos(math.pi * prog))   # cosine
    return f


class Trainer:
    def __init__(self, cfg: dict, model, tokenizer, objective: str = "sft"):
        self.cfg = cfg
        self.tok = tokenizer
        self.objective = objective
        self.out = Path(cfg["output_dir"])
        self.ckpt_dir = self.out / "checkpoints"
        self.rank, self.world = D.rank(), D.world_size()
        self.model = model
        self.engine = None          # DeepSpeed engine, when used
        self.optimizer = self.scheduler = None
        self.ds_config: dict | None = None
        self.global_step = 0
        self.metrics_path = self.out / "metrics.jsonl"
        self.ref_model = None
        self.scaler = None   # GradScaler for plain-loop fp16 on CUDA
        self.zero3_ctx = None  # HfDeepSpeedConfig kept alive while training under ZeRO-3
        self.device = torch.device(f"cuda:{D.local_rank()}" if torch.cuda.is_available() else "cpu")
        self.packing = bool(cfg.get("packing")) and objective == "sft"
        self.packing_attention = cfg.get("packing_attention", "mask4d")  # or "position_ids" (flash-attn varlen)
        if self.packing and self.packing_attention == "position_ids" and \
                cfg.get("attn_implementation") != "flash_attention_2":
            # measured: with SDPA/eager and no mask, packed samples attend to each other
            raise ValueError("packing_attention=position_ids needs attn_implementation=flash_attention_2; "
                             "use packing_attention=mask4d with eager/sdpa")
        if self.packing_attention not in ("mask4d", "position_ids"):
            raise ValueError(f"packing_attention must be mask4d or position_ids, not {self.packing_attention!r}")

    # ------------------------------------------------------------------ setup
    @property
    def module(self):
        return self.engine.module if self.engine is not None else self.model

    def _is_zero3(self) -> bool:
        return bool(self.ds_config) and self.ds_config.get("zero_optimization", {}).get("stage") == 3

    def setup_optimization(self, total_steps: int) -> None:
        cfg = self.cfg
        warmup = int(cfg.get("warmup_steps") or round(float(cfg.get("warmup_ratio", 0.0)) * total_steps))
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.get("deepspeed"):
            import deepspeed
            hidden = getattr(getattr(self.module, "config", None), "hidden_size", None)
            self.ds_config = D.fill_ds_config(cfg["deepspeed"], cfg, self.world, hidden)
            log.info("DeepSpeed config %s: ZeRO stage %s", cfg["deepspeed"] if isinstance(cfg["deepspeed"], str)
                     else "<inline>", self.ds_config.get("zero_optimization", {}).get("stage", 0))
            opt = None
            if "optimizer" not in self.ds_config:
                opt = self._torch_optimizer(params)
            sched = (lambda o: torch.optim.lr_scheduler.LambdaLR(
                o, lr_lambda(cfg.get("lr_scheduler", "cosine"), warmup, total_steps)))
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=self.model, model_parameters=params, optimizer=opt, lr_scheduler=sched, config=self.ds_config)
            self.device = self.engine.device
        else:
            self.model.to(self.device)
            if self.world > 1:
                self.model = torch.nn.parallel.DistributedDataParallel(self.model)
            self.optimizer = self._torch_optimizer(params)
            if cfg.get("fp16") and self.device.type == "cuda":
                self.scaler = torch.amp.GradScaler("cuda")
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lr_lambda(cfg.get("lr_scheduler", "cosine"), warmup, total_steps))

    def _torch_optimizer(self, params):
        cfg = self.cfg
        wd = float(cfg.get("weight_decay", 0.0))
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=float(cfg.get("learning_rate", 1e-5)),
                                 betas=(float(cfg.get("adam_beta1", 0.9)), float(cfg.get("adam_beta2", 0.95))),
                                 eps=float(cfg.get("adam_epsilon", 1e-8)))

    # ------------------------------------------------------------------ batches
    def plan_epoch(self, samples: list[dict], batch_size: int, epoch: int, shuffle: bool = True) -> list:
        """This rank's micro-batches for one epoch as index lists (identical plan on every rank).

        Padded mode: a batch is a list of sample indices.  Packed mode: a batch is a
        list of rows, each a list of sample indices.  Planning is cheap; tensors are
        only built when a batch is consumed (``collate``), so memory stays flat.
        """
        seed = int(self.cfg.get("seed", 42))
        if self.objective == "dpo":
            lengths = [len(s["prompt_ids"]) + max(len(s["chosen_ids"]), len(s["rejected_ids"])) for s in samples]
        else:
            lengths = [len(s["input_ids"]) for s in samples]
        curriculum = bool((self.cfg.get("curriculum") or {}).get("enabled"))
        if self.packing:
            import random
            order = list(range(len(samples)))
            if shuffle and not curriculum:
                random.Random(seed * 7919 + epoch).shuffle(order)
            rows = pack(lengths, int(self.cfg["max_length"]), order)
            plan = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
            return shard_batches(plan, self.rank, self.world)
        if curriculum:
            shuffle = False   # data arrive in curriculum order; keep it
        group = bool(self.cfg.get("group_by_length", True)) and shuffle
        plan = plan_batches(lengths, batch_size, seed, epoch, group_by_length=group, shuffle=shuffle)
        return shard_batches(plan, self.rank, self.world)

    def collate(self, samples: list[dict], item: list) -> dict:
        pad = self.tok.pad_token_id
        if self.packing:
            return collate_packed([[samples[i] for i in row] for row in item], pad)
        coll = collate_dpo if self.objective == "dpo" else collate_sft
        return coll([samples[i] for i in item], pad)

    def make_batches(self, samples: list[dict], batch_size: int, epoch: int, shuffle: bool = True):
        """Collated micro-batches of this rank for one epoch (lazy)."""
        for item in self.plan_epoch(samples, batch_size, epoch, shuffle):
            yield self.collate(samples, item)

    # ------------------------------------------------------------------ forward
    def forward_logits(self, batch: dict, model=None) -> torch.Tensor:
        model = model or (self.engine if self.engine is not None else self.model)
        kw = {"input_ids": batch["input_ids"].to(self.device)}
        if "segment_ids" in batch:
            kw["position_ids"] = batch["position_ids"].to(self.device)
            if self.packing_attention == "mask4d":
                impl = getattr(getattr(self.module, "config", None), "_attn_implementation", "sdpa")
                dtype = None   # boolean for SDPA: valid whatever dtype autocast picks
                if impl == "eager":
                    dtype = next(self.module.parameters()).dtype
                    if self.cfg.get("bf16") or self.cfg.get("fp16"):
                        dtype = torch.bfloat16 if self.cfg.get("bf16") else torch.float16
                    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
                        dtype = torch.float32
                kw["attention_mask"] = packed_4d_mask(batch["segment_ids"].to(self.device), dtype)
        else:
            kw["attention_mask"] = batch["attention_mask"].to(self.device)
        with self.autocast():
            return model(**kw, use_cache=False).logits

    def autocast(self):
        """Mixed precision for the plain loop (DeepSpeed handles bf16/fp16 itself)."""
        import contextlib
        if self.engine is not None or not (self.cfg.get("bf16") or self.cfg.get("fp16")):
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.get("bf16") else torch.float16
        if dtype == torch.float16 and self.device.type != "cuda":
            raise RuntimeError("fp16 without DeepSpeed needs a CUDA GPU (loss scaling); use bf16 on CPU")
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def sft_loss(self, batch: dict, model=None):
        logits = self.forward_logits(batch, model)
        loss, n = lm_loss(logits, batch["labels"].to(self.device))
        return loss, {"trained_tokens": int(n)}

    def dpo_logps(self, batch: dict, model=None):
        logits = self.forward_logits(batch, model)
        logps, counts = sequence_logps(logits, batch["labels"].to(self.device))
        if self.cfg.get("dpo", {}).get("loss_type", "sigmoid") == "ipo":
            logps = logps / counts.clamp(min=1)   # IPO works on length-averaged log-probs
        B = logps.size(0) // 2
        return logps[:B], logps[B:]

    def dpo_loss(self, batch: dict):
        dc = self.cfg.get("dpo", {})
        pc, pr = self.dpo_logps(batch)
        if "ref_chosen" in batch:
            rc, rr = batch["ref_chosen"].to(pc), batch["ref_rejected"].to(pc)
        else:
            with torch.no_grad():
                rc, rr = self.dpo_logps(batch, self.ref_model)
        return dpo_loss(pc, pr, rc, rr, beta=float(dc.get("beta", 0.1)), loss_type=dc.get("loss_type", "sigmoid"),
                        label_smoothing=float(dc.get("label_smoothing", 0.0)))

    @torch.no_grad()
    def precompute_reference(self, pairs: list[dict]) -> None:
        """Reference log-probs from the *initial* policy, before any update.

        Saves a second model copy (and works under ZeRO-3, where a separate frozen
        reference would need its own sharded engine).  Each rank scores a share and the
        results are all-gathered; shares are padded to equal length for ZeRO-3.
        """
        bs = int(self.cfg.get("per_device_eval_batch_size", self.cfg.get("per_device_train_batch_size", 1)))
        idx_batches = [list(range(i, min(i + bs, len(pairs)))) for i in range(0, len(pairs), bs)]
        while len(idx_batches) % self.world:
            idx_batches.append(idx_batches[-1])       # padding rounds: recomputed, results identical
        mine = idx_batches[self.rank::self.world]
        model = self.engine if self.engine is not None else self.model
        was_training = model.training
        model.eval()
        local = {}
        for b in mine:
            batch = collate_dpo([{k: pairs[i][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for i in b],
                                self.tok.pad_token_id)
            c, r = self.dpo_logps(batch)
            for j, i in enumerate(b):
                local[i] = (float(c[j]), float(r[j]))
        for part in D.all_gather_objects(local):
            for i, (c, r) in part.items():
                pairs[i]["ref_chosen"], pairs[i]["ref_rejected"] = c, r
        model.train(was_training)

    # ------------------------------------------------------------------ optimisation step
    def _backward_step(self, loss: torch.Tensor, micro: int, ga: int) -> bool:
        """Returns True when an optimizer step happened."""
        if self.engine is not None:
            boundary = self.engine.is_gradient_accumulation_boundary()
            self.engine.backward(loss)
            self.engine.step()
            return boundary
        if self.scaler is not None:
            self.scaler.scale(loss / ga).backward()
        else:
            (loss / ga).backward()
        if (micro + 1) % ga:
            return False
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                       float(self.cfg.get("max_grad_norm", 1.0)))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, val_sets: dict[str, list[dict]]) -> dict:
        if not val_sets:
            return {}
        model = self.engine if self.engine is not None else self.model
        was = model.training
        model.eval()
        res = {}
        bs = int(self.cfg.get("per_device_eval_batch_size", self.cfg.get("per_device_train_batch_size", 1)))
        for name, samples in val_sets.items():
            if self.objective == "dpo":
                plan = [list(range(i, min(i + bs, len(samples)))) for i in range(0, len(samples), bs)]
                while len(plan) % self.world:
                    plan.append([])
                acc = torch.zeros(3, dtype=torch.float64)
                for b in plan[self.rank::self.world]:
                    sel = [samples[i] for i in b] or samples[:1]   # empty padding batch: compute, don't count
                    loss, m = self.dpo_loss(collate_dpo(sel, self.tok.pad_token_id))
                    if b:
                        acc += torch.tensor([float(loss) * len(b), m["rewards/accuracy"] * len(b), len(b)],
                                            dtype=torch.float64)
                acc = D.all_reduce_sum(acc.to(self.device)).cpu()
                res[f"val/{name}/dpo_loss"] = float(acc[0] / acc[2].clamp(min=1))
                res[f"val/{name}/reward_accuracy"] = float(acc[1] / acc[2].clamp(min=1))
                continue
            plan = [list(range(i, min(i + bs, len(samples)))) for i in range(0, len(samples), bs)]
            while len(plan) % self.world:
                plan.append([])
            acc = torch.zeros(2, dtype=torch.float64)
            for b in plan[self.rank::self.world]:
                sel = [samples[i] for i in b] or samples[:1]
                batch = collate_sft(sel, self.tok.pad_token_id)
                logits = self.forward_logits(batch)
                loss, n = lm_loss(logits, batch["labels"].to(self.device))
                if b:
                    acc += torch.tensor([float(loss) * float(n), float(n)], dtype=torch.float64)
            acc = D.all_reduce_sum(acc.to(self.device)).cpu()
            vl = float(acc[0] / acc[1].clamp(min=1))
            res[f"val/{name}/loss"] = vl
            res[f"val/{name}/ppl"] = math.exp(min(vl, 50))
        model.train(was)
        return res

    # ------------------------------------------------------------------ checkpoints
    def _latest_tag(self) -> str | None:
        f = self.ckpt_dir / "latest"
        return f.read_text().strip() if f.exists() else None

    def _rng_path(self, tag: str) -> Path:
        return self.ckpt_dir / tag / f"rng_state_{self.rank}.pt"

    def save_checkpoint(self, epoch: int, micro_in_epoch: int) -> None:
        tag = f"step-{self.global_step}"
        state = {"global_step": self.global_step, "epoch": epoch, "micro_in_epoch": micro_in_epoch}
        # every rank keeps its own RNG streams (dropout masks differ per rank)
        self._rng_path(tag).parent.mkdir(parents=True, exist_ok=True)
        torch.save(rng_state(), self._rng_path(tag))
        if self.engine is not None:
            self.engine.save_checkpoint(str(self.ckpt_dir), tag=tag, client_state=state)
        elif D.is_main():
            d = self.ckpt_dir / tag
            d.mkdir(parents=True, exist_ok=True)
            m = self.model.module if hasattr(self.model, "module") else self.model
            trainable = {k for k, p in m.named_parameters() if p.requires_grad}
            torch.save({"model": {k: v for k, v in m.state_dict().items() if k in trainable or not trainable},
                        "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                        "client_state": state}, d / "state.pt")
            (self.ckpt_dir / "latest").write_text(tag)
        D.barrier()
        if D.is_main():
            self._rotate()
        D.barrier()
        log.info("saved checkpoint %s", tag)

    def _rotate(self) -> None:
        limit = self.cfg.get("save_total_limit")
        if not limit:
            return
        tags = sorted((p for p in self.ckpt_dir.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
        for p in tags[:-int(limit)]:
            shutil.rmtree(p, ignore_errors=True)

    def try_resume(self) -> dict | None:
        r = self.cfg.get("resume", "auto")
        if r in (False, None, "false", "no"):
            return None
        tag = self._latest_tag() if r in ("auto", True, "true", "latest") else str(r)
        if not tag:
            return None
        if self.engine is not None:
            _, state = self.engine.load_checkpoint(str(self.ckpt_dir), tag=tag)
        else:
            blob = torch.load(self.ckpt_dir / tag / "state.pt", map_location="cpu", weights_only=False)
            m = self.model.module if hasattr(self.model, "module") else self.model
            m.load_state_dict(blob["model"], strict=False)
            self.optimizer.load_state_dict(blob["optimizer"])
            self.scheduler.load_state_dict(blob["scheduler"])
            state = blob["client_state"]
        self.global_step = int(state["global_step"])
        rng = self._rng_path(tag)
        if rng.exists():
            set_rng_state(torch.load(rng, map_location="cpu", weights_only=False))
        else:
            log.warning("checkpoint %s has no RNG state for rank %d: dropout after resume will differ", tag,
                        self.rank)
        if D.is_main():
            truncate_metrics(self.metrics_path, self.global_step)
        log.info("resumed from %s (step %d, epoch %d, micro %d)", tag, self.global_step, state["epoch"],
                 state["micro_in_epoch"])
        return state

    # ------------------------------------------------------------------ main loop
    def _log(self, rec: dict) -> None:
        if D.is_main():
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))

    def train(self, train_samples: list[dict], val_sets: dict[str, list[dict]] | None = None) -> dict:
        cfg = self.cfg
        bs = int(cfg.get("per_device_train_batch_size", 1))
        ga = int(cfg.get("gradient_accumulation_steps", 1))
        epochs = int(cfg.get("num_train_epochs", 1))
        n_micro = len(self.plan_epoch(train_samples, bs, 0))
        steps_per_epoch = max(1, n_micro // ga)
        total = int(cfg.get("max_steps") or steps_per_epoch * epochs)
        self.setup_optimization(total)
        if self.objective == "dpo" and cfg.get("dpo", {}).get("reference", "precompute") == "precompute" \
                and not all("ref_chosen" in s for s in train_samples):
            self.precompute_reference(train_samples)
            for v in (val_sets or {}).values():
                self.precompute_reference(v)
        state = self.try_resume() or {"epoch": 0, "micro_in_epoch": 0}
        log_every = int(cfg.get("logging_steps", 10))
        eval_every = int(cfg.get("eval_steps", 0) or 0)
        save_every = int(cfg.get("save_steps", 0) or 0)
        model = self.engine if self.engine is not None else self.model
        model.train()
        t0 = time.time()
        tokens = real = cells = 0
        window: list[float] = []
        history = []
        done = self.global_step >= total
        epoch = int(state["epoch"])
        skip = int(state["micro_in_epoch"])
        pos = (epoch, skip)            # where a resume would continue
        first_step = self.global_step + 1   # always log the first step of a (re)start
        win_real = win_cells = 0
        while not done:
            if not cfg.get("max_steps") and epoch >= epochs:
                break
            plan = self.plan_epoch(train_samples, bs, epoch)
            if not plan:
                raise ValueError(f"rank {self.rank}: no training batches ({len(train_samples)} samples, "
                                 f"batch {bs}, world {self.world})")
            for micro, item in enumerate(plan):
                if micro < skip:
                    continue
                batch = self.collate(train_samples, item)
                if self.objective == "dpo":
                    loss, info = self.dpo_loss(batch)
                else:
                    loss, info = self.sft_loss(batch)
                stepped = self._backward_step(loss, micro, ga)
                window.append(loss.item())
                n_real, n_cells = int(batch["attention_mask"].sum()), batch["attention_mask"].numel()
                real, cells, win_real, win_cells = real + n_real, cells + n_cells, win_real + n_real, win_cells + n_cells
                tokens += n_real
                if not stepped:
                    continue
                self.global_step += 1
                pos = (epoch, micro + 1)
                if self.global_step % log_every == 0 or self.global_step == first_step:
                    # real_token_share: non-pad share of the batches since the last log line (this rank);
                    # tokens_per_s: this rank's real tokens/s times world size (ranks see similar loads)
                    rec = {"step": self.global_step, "epoch": epoch, "loss": sum(window) / len(window),
                           "lr": self._lr(), "real_token_share": win_real / max(1, win_cells),
                           "tokens_per_s": tokens * self.world / max(1e-9, time.time() - t0)}
                    rec.update({k: v for k, v in info.items() if isinstance(v, float)})
                    self._log(rec)
                    history.append(rec)
                    window, win_real, win_cells = [], 0, 0
                if eval_every and self.global_step % eval_every == 0:
                    self._log({"step": self.global_step, **self.evaluate(val_sets or {})})
                if save_every and self.global_step % save_every == 0:
                    self.save_checkpoint(*pos)
                if self.global_step >= total:
                    done = True
                    break
            else:
                pos = (epoch + 1, 0)
            skip = 0
            epoch += 1
        if window:
            history.append({"step": self.global_step, "loss": sum(window) / len(window)})
        elapsed = time.time() - t0
        summary = {"global_step": self.global_step, "train_seconds": elapsed,
                   "tokens_per_s": tokens * self.world / max(1e-9, elapsed),
                   "real_token_share": real / max(1, cells), "history": history}
        final_eval = self.evaluate(val_sets or {})
        summary.update(final_eval)
        if final_eval:
            self._log({"step": self.global_step, **final_eval})
        if cfg.get("save_final_checkpoint", True) and self.global_step > 0 and self._latest_tag() != \
                f"step-{self.global_step}":
            self.save_checkpoint(*pos)
        return summary

    def _lr(self) -> float:
        opt = self.optimizer
        try:
            return float(opt.param_groups[0]["lr"])
        except (AttributeError, IndexError, KeyError):
            return float("nan")

    # ------------------------------------------------------------------ export
    def export(self, out_dir: str | os.PathLike, base_model_path: str) -> str:
        """Save an HF model directory (LoRA merged) + tokenizer; 16-bit gathered under ZeRO-3."""
        out_dir = Path(out_dir)
        module = self.module
        if hasattr(module, "module") and not hasattr(module, "peft_config"):
            module = module.module   # DDP
        if self._is_zero3():
            # every rank must take part in the gather; only rank 0 gets the tensors
            sd = self.engine._zero3_consolidated_16bit_state_dict()
        else:
            sd = None
        # rank 0 alone loads models below (LoRA merge); a live zero.Init config would make that
        # from_pretrained partition weights via collectives the other ranks never join -> hang
        self.zero3_ctx = None
        try:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config
            unset_hf_deepspeed_config()
        except ImportError:
            pass
        if D.is_main():
            out_dir.mkdir(parents=True, exist_ok=True)
            if sd is None:
                sd = {k: v.detach().cpu() for k, v in module.state_dict().items()}
            if hasattr(module, "peft_config"):
                adapter = out_dir / "adapter"
                module.save_pretrained(str(adapter), state_dict=sd)
                merge_lora(base_model_path, str(adapter), str(out_dir), self.tok, self.cfg)
            else:
                module.save_pretrained(str(out_dir), state_dict=sd)
            from thresher.training.templates import get_template
            # the Jinja twin of the template training used: apply_chat_template == training render
            self.tok.chat_template = get_template(self.cfg.get("template", "open-assistant")).chat_template
            self.tok.save_pretrained(str(out_dir))
            with open(out_dir / "thresher_train_config.json", "w", encoding="utf-8") as f:
                json.dump({k: v for k, v in self.cfg.items() if not k.startswith("__")}, f, ensure_ascii=False,
                          indent=1, default=str)
        D.barrier()
        return str(out_dir)


def rng_state() -> dict:
    """Python, numpy, torch and (when present) CUDA generator states: with them a resumed
    run draws the same dropout masks and shuffles as the uninterrupted one."""
    import random
    import numpy as np
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    import random
    import numpy as np
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def truncate_metrics(path: Path, step: int) -> int:
    """Drop metric lines logged after ``step`` (the run died after its last checkpoint and
    will log those steps again); returns how many were dropped."""
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [l for l in lines if not l.strip() or json.loads(l).get("step", 0) <= step]
    if len(keep) != len(lines):
        from ..io.atomic import atomic_write_text
        atomic_write_text(str(path), "".join(keep))
        log.info("metrics.jsonl: dropped %d lines after step %d", len(lines) - len(keep), step)
    return len(lines) - len(keep)


def merge_lora(base_path: str, adapter_dir: str, out_dir: str, tok, cfg: dict) -> None:
    """Base + adapter -> merged full model (what the next round or inference loads)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from thresher.training.model import torch_dtype
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype(cfg),
                                                trust_remote_code=bool(cfg.get("trust_remote_code", False)))
    if base.get_input_embeddings().weight.shape[0] < len(tok):
        base.resize_token_embeddings(len(tok), pad_to_multiple_of=cfg.get("pad_vocab_to_multiple_of"))
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.config.pad_token_id = tok.pad_token_id
    merged.save_pretrained(out_dir)
