"""Turn-by-turn tokenisation with loss masks (SFT) and prompt/answer pairs (DPO).

Masking rule (``mask_mode``):
  * ``all_assistant`` (default): loss on every assistant turn *including* its turn-end
    token (so the model learns to stop), prompts/system/role markers masked;
  * ``last_turn``: only the final assistant turn is trained (history is context);
  * ``train_on_prompt``: every token is trained (continued-pretraining flavour).

Truncation never cuts the final answer first: older exchanges are dropped whole,
then the prompt before the final answer is cut in the middle (its head, which holds
the system/role header, and its tail, which holds the assistant marker, survive),
and only an answer that alone exceeds the budget is cut on the right.  A sample that
ends up with no trained token is dropped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from thresher.training.templates import ANSWER, ChatTemplate

IGNORE = -100
MASK_MODES = ("all_assistant", "last_turn", "train_on_prompt")


@dataclass
class EncodeStats:
    seen: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_no_trained_tokens: int = 0
    dropped_invalid: int = 0
    errors: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("seen", "kept", "truncated", "dropped_no_trained_tokens",
                                           "dropped_invalid")}
        d["truncated_share"] = round(self.truncated / self.kept, 4) if self.kept else 0.0
        if self.errors:
            d["errors"] = dict(list(self.errors.items())[:5])
        return d


def _middle_cut(ids: list, labels: list, budget: int) -> tuple[list, list]:
    if len(ids) <= budget:
        return ids, labels
    head = budget // 2
    tail = budget - head
    sl = (slice(0, head), slice(len(ids) - tail, len(ids)))
    return ids[sl[0]] + ids[sl[1]], labels[sl[0]] + labels[sl[1]]


class Encoder:
    def __init__(self, tokenizer, template: ChatTemplate, max_length: int, mask_mode: str = "all_assistant",
                 add_bos: bool = False, max_prompt_length: int | None = None):
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode {mask_mode!r} not in {MASK_MODES}")
        self.tok = tokenizer
        self.template = template
        self.max_length = int(max_length)
        self.mask_mode = mask_mode
        self.add_bos = add_bos and tokenizer.bos_token_id is not None
        self.max_prompt_length = max_prompt_length
        self.bos = tokenizer.bos_token or ""
        self.eos = tokenizer.eos_token
        self.stats = EncodeStats()

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _tokenised_segments(self, messages, gen=False):
        segs = self.template.segments(messages, self.bos, self.eos, add_generation_prompt=gen)
        out = [(self._ids(s.text), s.kind, s.turn) for s in segs]
        if self.add_bos:
            out.insert(0, ([self.tok.bos_token_id], "prompt", -1))
        return out

    # ------------------------------------------------------------------ SFT
    def encode_sft(self, messages: list[dict]) -> dict | None:
        """{'input_ids', 'labels', 'truncated'} or None (dropped; counted in stats)."""
        self.stats.seen += 1
        try:
            segs = self._tokenised_segments(messages)
        except (ValueError, KeyError, TypeError) as e:
            self.stats.dropped_invalid += 1
            self.stats.errors.setdefault(type(e).__name__ + ": " + str(e)[:80], 0)
            return None
        answer_idx = [i for i, s in enumerate(segs) if s[1] == ANSWER]
        if not answer_idx and self.mask_mode != "train_on_prompt":
            self.stats.dropped_no_trained_tokens += 1
            return None
        last_answer = answer_idx[-1] if answer_idx else len(segs) - 1

        def labels_for(i, ids, kind):
            if self.mask_mode == "train_on_prompt":
                return list(ids)
            if kind != ANSWER:
                return [IGNORE] * len(ids)
            if self.mask_mode == "last_turn" and i != last_answer:
                return [IGNORE] * len(ids)
            return list(ids)

        # items: (ids, labels, turn, is_final_answer)
        items = [(ids, labels_for(i, ids, kind), turn, i == last_answer) for i, (ids, kind, turn) in enumerate(segs)]
        total = sum(len(x[0]) for x in items)
        truncated = False
        L = self.max_length
        if total > L:
            truncated = True
            final_turn = segs[last_answer][2]
            # 1. drop whole older exchanges, oldest first (system turn -1 stays)
            turns = sorted({x[2] for x in items if 0 <= x[2] < final_turn})
            for t in turns:
                if total <= L:
                    break
                drop = [x for x in items if x[2] == t]
                total -= sum(len(x[0]) for x in drop)
                items = [x for x in items if x[2] != t]
            # 2. cut the prompt before the final answer, then (only if needed) the answer itself
            if total > L:
                cut_at = next(i for i, x in enumerate(items) if x[3])
                pre_ids = [t for x in items[:cut_at] for t in x[0]]
                pre_lab = [t for x in items[:cut_at] for t in x[1]]
                ans_ids = [t for x in items[cut_at:] for t in x[0]]
                ans_lab = [t for x in items[cut_at:] for t in x[1]]
                min_pre = min(len(pre_ids), max(1, L // 4))
                if len(ans_ids) > L - min_pre:
                    ans_ids, ans_lab = ans_ids[: L - min_pre], ans_lab[: L - min_pre]
                pre_ids, pre_lab = _middle_cut(pre_ids, pre_lab, L - len(ans_ids))
                items = [(pre_ids, pre_lab, -1, False), (ans_ids, ans_lab, final_turn, True)]
        input_ids = [t for x in items for t in x[0]]
        labels = [t for x in items for t in x[1]]
        # position 0 is never predicted (nothing precedes it): it cannot count as trained
        if not any(l != IGNORE for l in labels[1:]):
            self.stats.dropped_no_trained_tokens += 1
            return None
        self.stats.kept += 1
        self.stats.truncated += int(truncated)
        return {"input_ids": input_ids, "labels": labels, "truncated": truncated}

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """Prompt with the generation header, for generation/eval."""
        return [t for ids, _, _ in self._tokenised_segments(messages, gen=True) for t in ids]

    # ------------------------------------------------------------------ DPO
    def encode_pair(self, messages: list[dict], chosen: str, rejected: str) -> dict | None:
        """{'prompt_ids', 'chosen_ids', 'rejected_ids'}: the answers include the turn-end token."""
        self.stats.seen += 1
        try:
            pairs = []
            for ans in (chosen, rejected):
                segs = self._tokenised_segments(list(messages) + [{"role": "assistant", "content": ans}])
                last = max(i for i, s in enumerate(segs) if s[1] == ANSWER)
                pairs.append(([t for s in segs[:last] for t in s[0]], segs[last][0]))
        except (ValueError, KeyError, TypeError) as e:
            self.stats.dropped_invalid += 1
            self.stats.errors.setdefault(type(e).__name__ + ": " + str(e)[:80], 0)
            return None
        prompt = pairs[0][0]
        c, r = pairs[0][1], pairs[1][1]
        truncated = False
        mpl = self.max_prompt_length or self.max_length // 2
        longest = max(len(c), len(r))
        if len(prompt) + longest > self.max_length:
            truncated = True
            keep = max(min(len(prompt), mpl), self.max_length - longest)
            prompt, _ = _middle_cut(prompt, prompt, min(keep, len(prompt)))
            room = self.max_length - len(prompt)
            c, r = c[:room], r[:room]
        if not c or not r or not prompt:
            self.stats.dropped_no_trained_tokens += 1
            return None
        self.stats.kept += 1
        self.stats.truncated += int(truncated)
        return {"prompt_ids": prompt, "chosen_ids": c, "rejected_ids": r, "truncated": truncated}
