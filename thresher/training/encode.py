"""Tokenisation with loss masks (SFT) and prompt/answer pairs (DPO).

The conversation is rendered once and the whole string is tokenised once, so the
training ids are exactly ``tok(render(conv))``: a SentencePiece tokenizer (LLaMA,
Baichuan, Chinese-LLaMA) would otherwise prepend ``▁`` to every segment tokenised on
its own, and the model would learn ids a server never sees.  Each token is then
assigned to the template segment its characters come from (:func:`token_owners`):
by the tokenizer's character offsets, or -- for tokenizers without offsets -- by
tokenising each segment-end prefix and taking the common id prefix.  A token that
straddles a boundary into an answer belongs to the answer (it is trained).

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

import bisect
from dataclasses import dataclass, field

from thresher.training.templates import ANSWER, PROMPT, ChatTemplate, Segment

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


def _owners_from_offsets(offsets, bounds: list[int], kinds: list[str]) -> list[int]:
    """Segment index of each token from its (start, end) character span."""
    starts = [0] + bounds[:-1]
    n, owners, prev = len(bounds), [], 0
    for s, e in offsets:
        o = min(bisect.bisect_right(bounds, s), n - 1)
        for j in range(o + 1, n):      # reaches into a later answer: merged across the boundary, trained
            if starts[j] >= e:
                break
            if kinds[j] == ANSWER:
                o = j
                break
        prev = max(prev, o)
        owners.append(prev)
    return owners


def _common_prefix(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _owners_from_prefixes(encode, text: str, ids: list[int], bounds: list[int], kinds: list[str]) -> list[int]:
    """Segment index of each token for tokenizers without offsets: the ids of ``text[:b]``
    for each segment end ``b`` share a prefix with the ids of the whole text; where they
    part (a token spans the boundary) the token goes to the later segment, unless the
    earlier one is an answer -- the same rule as :func:`_owners_from_offsets`."""
    owners, done = [], 0
    for k, b in enumerate(bounds[:-1]):
        p = encode(text[:b])
        c = _common_prefix(ids, p)
        if c < len(p) and kinds[k] == ANSWER and c < len(ids):
            c += 1
        c = max(c, done)
        owners += [k] * (c - done)
        done = c
    return owners + [len(bounds) - 1] * (len(ids) - done)


def token_owners(tok, text: str, bounds: list[int], kinds: list[str], use_offsets: bool | None = None):
    """(ids of ``text``, segment index of each id); ``bounds`` are the segments' end offsets."""
    if use_offsets is None:
        use_offsets = bool(getattr(tok, "is_fast", False))
    if use_offsets:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], _owners_from_offsets(enc["offset_mapping"], bounds, kinds)
    encode = lambda t: tok(t, add_special_tokens=False)["input_ids"]   # noqa: E731
    ids = encode(text)
    return ids, _owners_from_prefixes(encode, text, ids, bounds, kinds)


def tokenise_segments(tok, segs: list[Segment], use_offsets: bool | None = None) -> list[list[int]]:
    """The ids of ``"".join(segs)`` split into one list per segment (some may be empty)."""
    text = "".join(s.text for s in segs)
    bounds, pos = [], 0
    for s in segs:
        pos += len(s.text)
        bounds.append(pos)
    ids, owners = token_owners(tok, text, bounds, [s.kind for s in segs], use_offsets)
    out: list[list[int]] = [[] for _ in segs]
    for i, o in zip(ids, owners):
        out[o].append(i)
    return out


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
        self.use_offsets = None   # None: offsets when the tokenizer gives them (fast), else prefixes

    def _tokenised_segments(self, messages, gen=False):
        segs = self.template.segments(messages, self.bos, self.eos, add_generation_prompt=gen)
        out = [(ids, s.kind, s.turn) for ids, s in zip(tokenise_segments(self.tok, segs, self.use_offsets), segs)]
        if self.add_bos:
            out.insert(0, ([self.tok.bos_token_id], PROMPT, -1))
        return out

    def render(self, messages, gen=False) -> str:
        return self.template.render(messages, self.bos, self.eos, add_generation_prompt=gen)

    def reference_ids(self, messages, gen=False) -> list[int]:
        """``tok(render(conv))``: what a server tokenising the rendered text sees."""
        ids = self.tok(self.render(messages, gen), add_special_tokens=False)["input_ids"]
        return ([self.tok.bos_token_id] if self.add_bos else []) + ids

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
        # a token spanning the prompt/answer boundary can make the two prompts' ids part: the
        # shared prefix is the prompt and each answer keeps its own tail, so both stay tok(render)
        n = _common_prefix(pairs[0][0], pairs[1][0])
        prompt = pairs[0][0][:n]
        c, r = pairs[0][0][n:] + pairs[0][1], pairs[1][0][n:] + pairs[1][1]
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
