"""DeepSpeed ZeRO-2/3 on 2 CPU ranks (gloo): train, checkpoint, resume, export, reload + generate.

The first launch goes through DeepSpeed's launcher (``python -m
deepspeed.launcher.runner --num_gpus 2``, which passes ``--local_rank`` before the
subcommand), the resume through ``torch.distributed.run`` (torchrun): both paths work.  The first run on a machine builds
DeepSpeed's CPU shared-memory comm op (about a minute); TORCH_EXTENSIONS_DIR caches it.
"""
import json
import os
import socket
import subprocess
import sys

import pytest

from training_util import write_tier, sft_records

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, ext_cache, timeout=420, launcher="torchrun"):
    env = dict(os.environ, DS_ACCELERATOR="cpu", TORCH_EXTENSIONS_DIR=ext_cache, HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if launcher == "deepspeed":
        cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port",
               str(free_port()), "--module", "thresher.training", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "thresher.training", *args]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    return p.stdout + p.stderr


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_two_ranks_train_resume_export(stage, tiny_dir, tmp_path, ext_cache):
    manifest = write_tier(tmp_path / "tier", sft_records(16, multi_turn=True))
    out = tmp_path / "out"
    common = ["--configs", "defaults", "tiny-llama", stage, "--model_name", tiny_dir, "--output_dir", str(out),
              "--set", f"datasets=[{{tiny: {{input_file_path: {manifest}, val_split: 0.25}}}}]",
              "--per_device_train_batch_size", "2", "--save_steps", "2", "--logging_steps", "1",
              "--save_total_limit", "2", "--learning_rate", "3e-3"]
    launch(["sft", *common, "--num_train_epochs", "2"], ext_cache, launcher="deepspeed")
    first = json.load(open(out / "summary.json"))
    assert first["global_step"] == 6                      # 12 train samples / (2 per rank * 2 ranks) * 2 epochs
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-6"
    logs = launch(["sft", *common, "--num_train_epochs", "3"], ext_cache)
    assert "resumed from step-6" in logs
    second = json.load(open(out / "summary.json"))
    assert second["global_step"] == 9
    steps = [json.loads(l) for l in open(out / "metrics.jsonl") if '"loss"' in l]
    assert steps[0]["loss"] > steps[-1]["loss"]
    assert len([p for p in (out / "checkpoints").iterdir() if p.name.startswith("step-")]) == 2

    # the exported (16-bit gathered under ZeRO-3) model reloads completely and generates
    from transformers import AutoModelForCausalLM
    model, info = AutoModelForCausalLM.from_pretrained(second["model_dir"], output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert all(p.numel() > 0 for p in model.parameters())
    from thresher.training.config import build_config
    from thresher.training.runs import generate
    cfg = build_config(["defaults", "tiny-llama"], [("output_dir", str(out))])
    cfg["eval"]["max_new_tokens"] = 8
    g = generate(second["model_dir"], ["中国的首都是哪里？"], cfg)
    assert g[0]["new_tokens"] > 0


def test_deepspeed_zero3_lora_dpo_exports_merged(tiny_dir, tmp_path, ext_cache):
    """LoRA under ZeRO-3 with DPO: reference log-probs precomputed on the sharded engine,
    adapter gathered on save and merged into a full model by rank 0."""
    from training_util import dpo_records, write_jsonl
    f = write_jsonl(tmp_path / "dpo.jsonl", dpo_records(16))
    out = tmp_path / "out"
    launch(["dpo", "--configs", "defaults", "tiny-llama", "zero3", "lora", "--model_name", tiny_dir,
            "--output_dir", str(out), "--set", f"datasets=[{{p: {{input_file_path: {f}, val_split: 0.25}}}}]",
            "--per_device_train_batch_size", "2", "--num_train_epochs", "2", "--learning_rate", "1e-2"], ext_cache)
    s = json.load(open(out / "summary.json"))
    assert s["global_step"] == 6 and "val/p/reward_accuracy" in s
    steps = [json.loads(l) for l in open(out / "metrics.jsonl") if '"loss"' in l]
    assert steps[0]["rewards/margin"] == pytest.approx(0, abs=1e-3) and steps[-1]["loss"] < steps[0]["loss"]
    from transformers import AutoModelForCausalLM
    model, info = AutoModelForCausalLM.from_pretrained(s["model_dir"], output_loading_info=True)
    assert not info["missing_keys"] and not any("lora" in n for n, _ in model.named_parameters())


def test_bare_deepspeed_flag_selects_the_model_blocks_zero_config(tiny_dir, tmp_path, ext_cache):
    """Open-Assistant's command line ends in a bare ``--deepspeed``: the merged blocks'
    deepspeed_config is used (here the tiny model's ZeRO-3 set on the command line)."""
    manifest = write_tier(tmp_path / "tier", sft_records(8))
    out = tmp_path / "bare"
    logs = launch(["sft", "--configs", "defaults", "tiny-llama", "--model_name", tiny_dir, "--output_dir", str(out),
                   "--set", f"datasets=[{{tiny: {{input_file_path: {manifest}, val_split: 0.0}}}}]",
                   "--set", "deepspeed_config=configs/deepspeed/zero3.json", "--per_device_train_batch_size", "2",
                   "--logging_steps", "1", "--num_train_epochs", "1", "--deepspeed"], ext_cache)
    assert "DeepSpeed config configs/deepspeed/zero3.json: ZeRO stage 3" in logs
    assert json.load(open(out / "summary.json"))["global_step"] == 2      # 8 samples / (2 per rank * 2 ranks)
