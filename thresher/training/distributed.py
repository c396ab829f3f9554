"""Process-group setup that works under ``deepspeed``/``torchrun`` launchers and without one.

Without a launcher we fake a one-process world (RANK=0, WORLD_SIZE=1, a free port),
so the same code path -- including ``deepspeed.initialize`` -- runs in a notebook or
a unit test.  On CPU the backend is gloo (DeepSpeed's CPU accelerator also builds
its shared-memory comm op the first time; cache it with ``TORCH_EXTENSIONS_DIR``).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def setup(cfg: dict) -> None:
    """Initialise the process group once (DeepSpeed's init when a DS config is used)."""
    if dist.is_initialized():
        return
    launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    if not launched:
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                           "MASTER_ADDR": os.environ.get("MASTER_ADDR", "127.0.0.1")})
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        if not cfg.get("deepspeed"):
            return   # single process, plain torch: no process group needed
    backend = cfg.get("dist_backend") or default_backend()
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    if cfg.get("deepspeed"):
        import deepspeed
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
    else:
        dist.init_process_group(backend=backend)


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_gather_objects(obj):
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


# ------------------------------------------------------------------ DeepSpeed config
def resolve_ds_path(path: str) -> Path:
    p = Path(path)
    if p.exists():
        return p
    from thresher.resources import shipped
    base = path[len("configs/"):] if path.startswith("configs/") else path
    for cand in (shipped(base), shipped("deepspeed", base), shipped("deepspeed", f"{base}.json")):
        if cand is not None and cand.is_file():
            return cand
    raise FileNotFoundError(f"DeepSpeed config {path!r} not found")


def fill_ds_config(ds: dict | str, cfg: dict, world: int, hidden_size: int | None) -> dict:
    """Replace the ``"auto"`` values of a DeepSpeed JSON with the training config's values."""
    if not isinstance(ds, (str, Path, dict)):
        raise ValueError(f"deepspeed must be a config path or mapping, not {ds!r} (a bare --deepspeed flag is "
                         "resolved to deepspeed_config by thresher.training.config.normalize_deepspeed)")
    if isinstance(ds, (str, Path)):
        ds = json.loads(resolve_ds_path(str(ds)).read_text())
    ds = json.loads(json.dumps(ds))  # deep copy
    micro = int(cfg.get("per_device_train_batch_size", 1))
    ga = int(cfg.get("gradient_accumulation_steps", 1))
    auto = {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": ga,
        "train_batch_size": micro * ga * world,
        "gradient_clipping": float(cfg.get("max_grad_norm", 1.0)),
    }
    for k, v in auto.items():
        if ds.get(k, "auto") == "auto":
            ds[k] = v
    for key, flag in (("bf16", "bf16"), ("fp16", "fp16")):
        block = ds.setdefault(key, {})
        if block.get("enabled", "auto") == "auto":
            block["enabled"] = bool(cfg.get(flag, False))
    zo = ds.setdefault("zero_optimization", {})
    h = hidden_size or 1024
    for k, v in (("reduce_bucket_size", h * h), ("stage3_prefetch_bucket_size", int(0.9 * h * h)),
                 ("stage3_param_persistence_threshold", 10 * h)):
        if zo.get(k) == "auto":
            zo[k] = v
    if cfg.get("deepspeed_offload"):
        zo["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
        if zo.get("stage") == 3:
            zo["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    offload = (zo.get("offload_optimizer") or {}).get("device", "none") not in ("none", None)
    if offload and "optimizer" not in ds:
        ds["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                      "weight_decay": "auto"}}
    if "optimizer" in ds:
        p = ds["optimizer"].setdefault("params", {})
        vals = {"lr": float(cfg.get("learning_rate", 1e-5)),
                "betas": [float(cfg.get("adam_beta1", 0.9)), float(cfg.get("adam_beta2", 0.95))],
                "eps": float(cfg.get("adam_epsilon", 1e-8)), "weight_decay": float(cfg.get("weight_decay", 0.0))}
        for k, v in vals.items():
            if p.get(k, "auto") == "auto":
                p[k] = v
    ds.setdefault("steps_per_print", 10 ** 9)   # our loop logs; DS's own prints are noise
    ds.setdefault("wall_clock_breakdown", False)
    return ds
