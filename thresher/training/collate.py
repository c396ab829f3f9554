"""Batches: length grouping, packing, padding and the packed-sample attention mask.

Two ways to spend fewer FLOPs on padding:

* **length grouping** (``group_by_length``): shuffle, cut into mega-batches of
  ``50 * batch`` samples, sort each by length and slice into batches, then shuffle
  the batches -- similar lengths share a batch but the order stays random;
* **packing** (``packing``): samples are first-fit into rows of ``max_length``.
  Each row carries ``position_ids`` that restart at 0 for every sample (what
  flash-attn varlen kernels and rotary embeddings need) and ``segment_ids``
  (1, 2, ... per sample, 0 = pad).  For the eager/SDPA path we turn the segment ids
  into a 4D block-diagonal causal mask, so packed samples never attend to each
  other; the first token of every sample gets label -100 so no sample is trained to
  predict its neighbour's first token.  Loss per sample is therefore identical to the
  unpacked run (tested).

Batches are planned identically on every rank from (seed, epoch) and then dealt
out round-robin with equal counts per rank, because ZeRO-3 deadlocks when ranks run
different numbers of forward passes.
"""
from __future__ import annotations

import random

import torch

from thresher.training.encode import IGNORE


# ------------------------------------------------------------------ planning
def plan_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool = True,
                 shuffle: bool = True, mega: int = 50) -> list[list[int]]:
    idx = list(range(len(lengths)))
    rng = random.Random(seed * 7919 + epoch)
    if shuffle:
        rng.shuffle(idx)
    if group_by_length:
        m = batch_size * mega
        grouped = []
        for s in range(0, len(idx), m):
            grouped.extend(sorted(idx[s:s + m], key=lambda i: -lengths[i]))
        idx = grouped
    batches = [idx[s:s + batch_size] for s in range(0, len(idx), batch_size)]
    if shuffle and group_by_length:
        rng.shuffle(batches)
    return batches


def shard_batches(batches: list, rank: int, world: int) -> list:
    """Round-robin deal with equal counts: the last incomplete round is dropped."""
    if world <= 1:
        return batches
    n = (len(batches) // world) * world
    return batches[rank:n:world]


def pack(lengths: list[int], max_length: int, order: list[int] | None = None, open_bins: int = 64) -> list[list[int]]:
    """First-fit packing of sample indices into rows of ``max_length`` tokens.

    Only the last ``open_bins`` rows stay open, which keeps this O(n) and keeps the
    given order roughly intact (curriculum order survives packing).
    """
    order = list(range(len(lengths))) if order is None else order
    bins: list[list[int]] = []
    room: list[int] = []
    first_open = 0
    for i in order:
        n = lengths[i]
        if n > max_length:
            raise ValueError(f"sample {i} has {n} tokens > max_length {max_length}; encode with truncation first")
        placed = False
        for b in range(first_open, len(bins)):
            if room[b] >= n:
                bins[b].append(i)
                room[b] -= n
                placed = True
                break
        if not placed:
            bins.append([i])
            room.append(max_length - n)
            first_open = max(first_open, len(bins) - open_bins)
    return bins


# ------------------------------------------------------------------ collation
def collate_sft(samples: list[dict], pad_id: int, pad_to_multiple_of: int | None = None) -> dict:
    """Right-padded batch of single samples."""
    L = max(len(s["input_ids"]) for s in samples)
    if pad_to_multiple_of:
        L = -(-L // pad_to_multiple_of) * pad_to_multiple_of
    B = len(samples)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    lab = torch.full((B, L), IGNORE, dtype=torch.long)
    att = torch.zeros((B, L), dtype=torch.long)
    for b, s in enumerate(samples):
        n = len(s["input_ids"])
        ids[b, :n] = torch.tensor(s["input_ids"])
        lab[b, :n] = torch.tensor(s["labels"])
        att[b, :n] = 1
    return {"input_ids": ids, "labels": lab, "attention_mask": att}


def collate_packed(rows: list[list[dict]], pad_id: int, max_length: int | None = None) -> dict:
    """Rows of several samples each -> ids, labels, position_ids, segment_ids."""
    L = max_length or max(sum(len(s["input_ids"]) for s in r) for r in rows)
    B = len(rows)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    lab = torch.full((B, L), IGNORE, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    seg = torch.zeros((B, L), dtype=torch.long)
    for b, row in enumerate(rows):
        o = 0
        for k, s in enumerate(row, start=1):
            n = len(s["input_ids"])
            ids[b, o:o + n] = torch.tensor(s["input_ids"])
            lab[b, o:o + n] = torch.tensor(s["labels"])
            lab[b, o] = IGNORE            # never predict a sample's first token from its neighbour
            pos[b, o:o + n] = torch.arange(n)
            seg[b, o:o + n] = k
            o += n
        # pad positions continue counting so flash-attn style detectors see no new sample
        if o < L:
            pos[b, o:] = torch.arange(L - o) + (pos[b, o - 1] + 1 if o else 0)
    return {"input_ids": ids, "labels": lab, "position_ids": pos, "segment_ids": seg,
            "attention_mask": (seg > 0).long()}


def packed_4d_mask(segment_ids: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """(B, 1, L, L) mask: causal within a sample, blocked across samples and pad.

    ``dtype=None`` gives a boolean mask (True = may attend; what SDPA takes in any
    autocast dtype), otherwise an additive float mask (0 / dtype min; what the eager
    path adds to the scores).  Pad query rows attend to themselves only, so no
    softmax row is empty (NaN-free).
    """
    B, L = segment_ids.shape
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(L, L, dtype=torch.bool, device=segment_ids.device).tril()
    real = (segment_ids > 0)[:, None, :]
    allowed = same & causal & real
    allowed |= torch.eye(L, dtype=torch.bool, device=segment_ids.device)
    if dtype is None:
        return allowed[:, None]
    mask = torch.zeros(B, 1, L, L, dtype=dtype, device=segment_ids.device)
    return mask.masked_fill(~allowed[:, None], torch.finfo(dtype).min)


def collate_dpo(pairs: list[dict], pad_id: int) -> dict:
    """2B rows: chosen answers first, then rejected, each prompt+answer; labels mask the prompt."""
    rows = []
    for key in ("chosen_ids", "rejected_ids"):
        for p in pairs:
            ids = p["prompt_ids"] + p[key]
            rows.append({"input_ids": ids, "labels": [IGNORE] * len(p["prompt_ids"]) + p[key]})
    batch = collate_sft(rows, pad_id)
    if all("ref_chosen" in p for p in pairs):
        batch["ref_chosen"] = torch.tensor([p["ref_chosen"] for p in pairs], dtype=torch.float32)
        batch["ref_rejected"] = torch.tensor([p["ref_rejected"] for p in pairs], dtype=torch.float32)
    return batch


def real_token_share(batch: dict) -> float:
    m = batch["attention_mask"]
    return float(m.sum()) / max(1, m.numel())
