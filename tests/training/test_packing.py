"""Packing: per-sample losses equal the unpacked run; batches plan identically on every rank."""
import pytest
import torch

from training_util import sft_records
from thresher.training.collate import (collate_packed, collate_sft, pack, packed_4d_mask, plan_batches,
                                       real_token_share, shard_batches)
from thresher.training.encode import Encoder
from thresher.training.losses import per_sample_loss
from thresher.training.templates import get_template


def encoded(tok, n=8):
    enc = Encoder(tok, get_template("open-assistant"), 256)
    return [enc.encode_sft(r.messages) for r in sft_records(n, multi_turn=True)] + \
           [enc.encode_sft(r.messages) for r in sft_records(n)]


def test_pack_is_a_partition_within_max_length():
    lengths = [5, 17, 3, 30, 12, 8, 8, 25, 1, 19]
    bins = pack(lengths, 32)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 32 for b in bins)
    with pytest.raises(ValueError):
        pack([40], 32)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_loss_equals_unpacked(tiny_dir, tiny_tok, attn):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, attn_implementation=attn, dtype=torch.float32).eval()
    samples = encoded(tiny_tok)
    with torch.no_grad():
        b = collate_sft(samples, tiny_tok.pad_token_id)
        ref = per_sample_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                              b["labels"])
        bins = pack([len(s["input_ids"]) for s in samples], 256)
        assert len(bins) < len(samples)   # something actually got packed together
        rows = [[samples[i] for i in bin_] for bin_ in bins]
        p = collate_packed(rows, tiny_tok.pad_token_id, 256)
        mask = packed_4d_mask(p["segment_ids"], torch.float32 if attn == "eager" else None)
        logits = model(input_ids=p["input_ids"], position_ids=p["position_ids"], attention_mask=mask).logits
        got = per_sample_loss(logits, p["labels"], p["segment_ids"])
    order = [i for bin_ in bins for i in bin_]
    for k, i in enumerate(order):
        assert got[k] == pytest.approx(ref[i], rel=1e-4, abs=1e-4), (k, i)
    assert real_token_share(p) > real_token_share(b) or real_token_share(b) > 0.95


def test_packed_mask_blocks_other_samples():
    seg = torch.tensor([[1, 1, 2, 2, 2, 0]])
    m = packed_4d_mask(seg, torch.float32)[0, 0] == 0
    assert m[1, 0] and not m[2, 1] and m[4, 2] and not m[2, 3] and not m[4, 5]
    assert m[5, 5]   # pad rows see themselves only: no empty softmax
    assert torch.equal(packed_4d_mask(seg, None)[0, 0], m)


def test_batch_plan_deterministic_and_sharded_equally():
    lengths = [(i * 37) % 50 + 1 for i in range(103)]
    a = plan_batches(lengths, 4, seed=1, epoch=0)
    assert a == plan_batches(lengths, 4, seed=1, epoch=0) and a != plan_batches(lengths, 4, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(103))
    r0, r1 = shard_batches(a, 0, 2), shard_batches(a, 1, 2)
    assert len(r0) == len(r1) and not set(map(tuple, r0)) & set(map(tuple, r1))
    # grouping by length makes batches more uniform than random batches
    spread = lambda plan: sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plan)
    assert spread(a) < spread(plan_batches(lengths, 4, seed=1, epoch=0, group_by_length=False))


def test_position_ids_only_packing_needs_flash_attention(tiny_dir, tiny_tok, tmp_path):
    """Without a mask, SDPA lets packed samples see each other (measured: losses differ), so the
    position_ids-only mode is refused unless the model runs flash_attention_2 (varlen kernels)."""
    from training_util import base_cfg
    from thresher.training.runs import run
    cfg = base_cfg(tiny_dir, tmp_path / "x", packing=True, packing_attention="position_ids", resume=False)
    with pytest.raises(ValueError, match="flash_attention_2"):
        run(cfg, "sft", sft_records(4))
