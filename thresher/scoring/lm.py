"""Scores from a local causal LM: Instruction-Following Difficulty (IFD) and perplexity.

IFD (Li et al. 2023, "From Quantity to Quality"): ``loss(answer | instruction) /
loss(answer)``, both mean token NLL over the answer tokens.  Near 1: the instruction
does not help predict the answer (hard / loosely related pair); well below 1: the
answer follows easily from the instruction.  Above 1 usually means a mismatched pair.

Perplexity: ``exp(mean token NLL)`` of the text under the model (low = fluent/typical).

Both load the model from a local directory (never download), batch with right padding
and mask padding and prompt tokens out of the loss, so scores do not depend on the
batch size.  Cost is two forward passes per record for IFD, one for perplexity.
"""
from __future__ import annotations

import math
import os

from ..pipeline import COUNT, POSITIVE, ConfigError, Stage, existing, register
from ..records import Record
from ._common import set_score


class CausalLMScorer:
    def __init__(self, model_path: str, device: str = "cpu", max_length: int = 512, dtype: str = "float32",
                 threads: int = 0):
        if not model_path or not os.path.isdir(model_path):
            raise ConfigError(f"model_path {model_path!r} is not a local model directory (thresher never downloads)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, trust_remote_code=False,
                                                          dtype=getattr(torch, dtype)).to(device).eval()
        cap = getattr(self.model.config, "max_position_embeddings", None) or getattr(self.model.config,
                                                                                      "n_positions", None)
        self.device, self.max_length = device, min(max_length, cap) if cap else max_length
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else (self.tok.eos_token_id or 0)
        self.bos = [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def answer_losses(self, prefixes: list[str], answers: list[str]) -> list[float]:
        """Mean NLL of each answer's tokens given its prefix ('' = answer alone)."""
        torch = self.torch
        seqs, starts = [], []
        for p, a in zip(prefixes, answers):
            pi, ai = self.bos + (self._ids(p) if p else []), self._ids(a)
            # keep the answer, truncate the prefix from the left if too long
            ai = ai[: max(1, self.max_length - 1)]
            room = self.max_length - len(ai)
            pi = pi[-room:] if room > 0 else []
            if not pi:  # the first token has no prediction: need at least one context token
                pi = [self.pad_id] if not self.bos else self.bos
            seqs.append(pi + ai)
            starts.append(len(pi))
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll = -logp.gather(-1, ids[:, 1:].to(self.device).unsqueeze(-1)).squeeze(-1).cpu()
        out = []
        for i, s in enumerate(seqs):
            # token t is predicted at position t-1
            tok_nll = nll[i, starts[i] - 1: len(s) - 1]
            out.append(float(tok_nll.mean()) if len(tok_nll) else float("nan"))
        return out

    def ifd(self, instructions: list[str], answers: list[str]) -> list[float]:
        cond = self.answer_losses(instructions, answers)
        alone = self.answer_losses([""] * len(answers), answers)
        return [c / a if a > 0 else float("nan") for c, a in zip(cond, alone)]

    def perplexity(self, texts: list[str]) -> list[float]:
        return [math.exp(min(50.0, x)) for x in self.answer_losses([""] * len(texts), texts)]


class _LMStage(Stage):
    ray_actor = True  # holds a model: the Ray executor runs it on an actor pool
    defaults = {"model_path": "", "device": "cpu", "batch_size": 8, "max_length": 512, "threads": 0,
                "score_name": ""}
    requires = {"torch": "embed", "transformers": "embed"}
    rules = {"model_path": existing("dir", ": a local model directory (thresher never downloads)"),
             "batch_size": POSITIVE, "max_length": POSITIVE, "threads": COUNT}

    def setup(self, ctx) -> None:
        self._lm = CausalLMScorer(self.model_path, self.device, self.max_length, threads=self.threads)
        self._version = f"{self.name}/{self.version}/{os.path.basename(os.path.normpath(self.model_path))}"

    def process_batch(self, records: list[Record]) -> list[Record]:
        if not hasattr(self, "_lm"):
            self.setup(None)
        todo = [r for r in records if r.kind in self.applies_to]
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            for r, v in zip(chunk, self.score(chunk)):
                set_score(r, self.score_name or self.name, None if math.isnan(v) else v, self._version)
        self.count("scored", len(todo))
        return records


@register("ifd")
class IFDStage(_LMStage):
    """``meta["scores"]["ifd"]``: loss(answer | instruction) / loss(answer) for SFT/DPO records."""

    version = "1"
    applies_to = ("sft", "dpo")

    def score(self, recs: list[Record]) -> list[float]:
        return self._lm.ifd([r.prompt_text() + "\n" for r in recs], [r.answer_text() for r in recs])


@register("perplexity")
class PerplexityStage(_LMStage):
    """``meta["scores"]["perplexity"]``: exp(mean NLL) of the text (answer for SFT)."""

    version = "1"

    def score(self, recs: list[Record]) -> list[float]:
        return self._lm.perplexity([r.text if r.kind == "text" else r.answer_text() for r in recs])
