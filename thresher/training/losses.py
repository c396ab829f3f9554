"""Losses computed from logits ourselves (not ``model(labels=...)``).

Owning the loss lets one code path serve padded and packed batches (per-sample
losses via segment ids), DPO sequence log-probs, and token-weighted reductions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from thresher.training.encode import IGNORE

DPO_LOSSES = ("sigmoid", "ipo", "hinge")


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position NLL of the next token (B, L-1) and the trained-position mask."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    mask = target != IGNORE
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.clamp(min=0).reshape(-1),
                          reduction="none").view(target.shape)
    return nll * mask, mask


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL over trained tokens of the batch, and the number of trained tokens."""
    nll, mask = token_nll(logits, labels)
    n = mask.sum()
    return nll.sum() / n.clamp(min=1), n


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor,
                    segment_ids: torch.Tensor | None = None) -> list[float]:
    """Mean NLL of every sample: one per row, or one per packed segment (row-major order)."""
    nll, mask = token_nll(logits, labels)
    out = []
    if segment_ids is None:
        for b in range(nll.size(0)):
            out.append(float(nll[b].sum() / mask[b].sum().clamp(min=1)))
        return out
    seg = segment_ids[:, 1:]   # segment of the predicted token
    for b in range(nll.size(0)):
        for k in range(1, int(segment_ids[b].max()) + 1):
            m = (seg[b] == k) & mask[b]
            out.append(float(nll[b][m].sum() / m.sum().clamp(min=1)))
    return out


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log-probs of the trained (answer) tokens per row, and their count."""
    nll, mask = token_nll(logits, labels)
    return -nll.sum(-1), mask.sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, loss_type: str = "sigmoid",
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """DPO (Rafailov et al. 2023) and variants on sequence log-probs.

    * sigmoid: -log σ(β·h) (with conservative label smoothing ε);
    * ipo:     (h - 1/(2β))², where the log-probs passed in should be length-averaged
               (Azar et al. 2023 -- TRL does the same);
    * hinge:   relu(1 - β·h) (SLiC).
    h = (π_c - π_r) - (ref_c - ref_r).
    """
    h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h) * (1 - label_smoothing) - F.logsigmoid(-beta * h) * label_smoothing
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {DPO_LOSSES}")
    rc = beta * (policy_chosen - ref_chosen).detach()
    rr = beta * (policy_rejected - ref_rejected).detach()
    metrics = {"rewards/chosen": rc.mean().item(), "rewards/rejected": rr.mean().item(),
               "rewards/accuracy": (rc > rr).float().mean().item(), "rewards/margin": (rc - rr).mean().item()}
    return losses.mean(), metrics
