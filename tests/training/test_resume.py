"""Exact resume: a run killed after a checkpoint and resumed matches the uninterrupted run
bit for bit (LoRA with dropout needs the RNG states), and metrics.jsonl holds each step once."""
import json

import pytest
import torch

from training_util import base_cfg, sft_records
from thresher.training import trainer as T
from thresher.training.runs import run


class Killed(Exception):
    pass


def _lora_cfg(tiny_dir, out):
    return base_cfg(tiny_dir, out, tuning="lora", max_steps=8, per_device_train_batch_size=2, logging_steps=1,
                    save_steps=2, save_total_limit=10, lr_scheduler="constant", learning_rate=5e-3,
                    group_by_length=False, **{"lora.r": 4, "lora.alpha": 8, "lora.dropout": 0.3})


def _losses(out):
    recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def test_lora_dropout_kill_and_resume_is_bit_exact(tiny_dir, tmp_path, monkeypatch):
    recs = sft_records(8)
    full = tmp_path / "full"
    run(_lora_cfg(tiny_dir, full), "sft", recs)

    # the "kill": the process dies right after logging step 5 (last checkpoint: step 4)
    out = tmp_path / "killed"
    real_log = T.Trainer._log

    def dying_log(self, rec):
        real_log(self, rec)
        if rec.get("step") == 5 and "loss" in rec:
            raise Killed()
    monkeypatch.setattr(T.Trainer, "_log", dying_log)
    with pytest.raises(Killed):
        run(_lora_cfg(tiny_dir, out), "sft", recs)
    monkeypatch.setattr(T.Trainer, "_log", real_log)
    assert [s for s, _ in _losses(out)] == [1, 2, 3, 4, 5]
    assert (out / "checkpoints" / "step-4" / "rng_state_0.pt").exists()

    s = run(_lora_cfg(tiny_dir, out), "sft", recs)
    assert s["global_step"] == 8
    assert _losses(out) == _losses(full)          # each step once, identical floats
    # the exported tokenizer renders conversations exactly as training did
    from transformers import AutoTokenizer
    from thresher.training.templates import get_template
    tok = AutoTokenizer.from_pretrained(str(full / "final"))
    conv = recs[0].messages
    assert tok.apply_chat_template(conv, tokenize=False) == get_template("open-assistant").render(
        conv, tok.bos_token, tok.eos_token)
    a = torch.load(full / "checkpoints" / "step-8" / "state.pt", weights_only=False)["model"]
    b = torch.load(out / "checkpoints" / "step-8" / "state.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_without_rng_state_dropout_resume_differs(tiny_dir, tmp_path, monkeypatch):
    """The control: the same kill/resume with the RNG files removed does not match, so the
    test above measures the RNG restore and not luck."""
    recs = sft_records(8)
    full = tmp_path / "full"
    run(_lora_cfg(tiny_dir, full), "sft", recs)
    out = tmp_path / "k"
    cfg = _lora_cfg(tiny_dir, out)
    cfg["max_steps"] = 4
    run(cfg, "sft", recs)
    (out / "checkpoints" / "step-4" / "rng_state_0.pt").unlink()
    run(_lora_cfg(tiny_dir, out), "sft", recs)
    assert _losses(out)[:4] == _losses(full)[:4]
    assert _losses(out)[4:] != _losses(full)[4:]


def test_truncate_metrics(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("".join(json.dumps({"step": i, "loss": 1.0}) + "\n" for i in range(1, 8)))
    assert T.truncate_metrics(p, 4) == 3
    assert [json.loads(l)["step"] for l in p.read_text().splitlines()] == [1, 2, 3, 4]
