"""Chat templates as *segments*, not strings.

A template renders a conversation into an ordered list of :class:`Segment` s, each
tagged with the role it came from and whether it is an assistant *answer* (the answer
text plus the template's turn-end token).  Tokenisation works segment by segment, so
the loss mask is exact by construction: we never have to find an answer again inside
a rendered string (which breaks when BPE merges across a boundary or an answer occurs
twice).  ``render()`` joins the segments and is what the golden-string tests pin.

Special tokens are written as strings (``{bos}``/``{eos}`` are substituted with the
tokenizer's own strings) and the tokenizer splits them out as single ids; the startup
check in :mod:`thresher.training.model` verifies every one of them is a single token.

Why our own registry and not ``tokenizer.apply_chat_template``: the seed models
(BLOOM-zh, RedPajama, Baichuan, MOSS) ship no Jinja template or a different one,
and we need the per-turn answer spans for masking, which Jinja output does not give.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

PROMPT = "prompt"   # masked unless train_on_prompt
ANSWER = "answer"   # assistant content + turn end: trained


@dataclass(frozen=True)
class Segment:
    text: str
    kind: str        # PROMPT or ANSWER
    turn: int        # index of the user/assistant exchange this belongs to (system = -1)


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    # fn(messages, bos, eos, add_generation_prompt) -> list[Segment]
    render_fn: Callable[..., list[Segment]]
    # token strings that must exist as single tokens; "{eos}"/"{bos}" mean the tokenizer's own
    special_tokens: tuple[str, ...] = ()
    # tokens that end an assistant turn: generation stops on any of them
    stop_tokens: tuple[str, ...] = ("{eos}",)
    # tokens a tokenizer may lack and that we may add (chat markers, not eos/bos)
    addable_tokens: tuple[str, ...] = field(default=())

    def segments(self, messages: list[dict], bos: str = "<s>", eos: str = "</s>",
                 add_generation_prompt: bool = False) -> list[Segment]:
        _check_roles(messages, add_generation_prompt)
        segs = self.render_fn(messages, bos, eos, add_generation_prompt)
        return [s for s in segs if s.text]

    def render(self, messages: list[dict], bos: str = "<s>", eos: str = "</s>",
               add_generation_prompt: bool = False) -> str:
        return "".join(s.text for s in self.segments(messages, bos, eos, add_generation_prompt))

    def resolved_stop_tokens(self, bos: str, eos: str) -> list[str]:
        return [t.replace("{eos}", eos).replace("{bos}", bos) for t in self.stop_tokens]

    def resolved_special_tokens(self, bos: str, eos: str) -> list[str]:
        return [t.replace("{eos}", eos).replace("{bos}", bos) for t in self.special_tokens]


def _check_roles(messages: list[dict], add_generation_prompt: bool) -> None:
    if not messages:
        raise ValueError("empty conversation")
    body = messages[1:] if messages[0]["role"] == "system" else messages
    for i, m in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise ValueError(f"turn {i} has role {m['role']!r}, expected {want!r} "
                             "(conversations alternate user/assistant after an optional system turn)")
    if add_generation_prompt and body and body[-1]["role"] != "user":
        raise ValueError("a generation prompt needs the conversation to end with a user turn")


def _split_system(messages):
    if messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return None, messages


def _pairs(body):
    """Yield (turn, user_msg, assistant_msg_or_None)."""
    for t in range(0, len(body), 2):
        yield t // 2, body[t], (body[t + 1] if t + 1 < len(body) else None)


def _tagged_turns(body, gen, user, assistant: str, answer, after: str = "") -> list:
    """The common turn shape: ``user(turn, msg)`` then the ``assistant`` tag (prompt),
    ``answer(msg)`` (trained), then ``after`` (prompt).  A trailing user turn gets the
    assistant tag only when a generation prompt is wanted."""
    out = []
    for turn, u, a in _pairs(body):
        p = user(turn, u)
        if a is None:
            out.append(Segment(p + (assistant if gen else ""), PROMPT, turn))
            continue
        out.append(Segment(p + assistant, PROMPT, turn))
        out.append(Segment(answer(a), ANSWER, turn))
        if after:
            out.append(Segment(after, PROMPT, turn))
    return out


# --------------------------------------------------------------------------- #
# Open-Assistant: <|system|>..eos <|prompter|>..eos <|assistant|>..eos
# --------------------------------------------------------------------------- #
def _oa(messages, bos, eos, gen):
    system, body = _split_system(messages)
    out = [Segment(f"<|system|>{system}{eos}", PROMPT, -1)] if system is not None else []
    return out + _tagged_turns(body, gen, lambda t, u: f"<|prompter|>{u['content']}{eos}", "<|assistant|>",
                               lambda a: f"{a['content']}{eos}")


# --------------------------------------------------------------------------- #
# Alpaca (Stanford) and its Chinese translation (Chinese-LLaMA-Alpaca / BELLE wording).
# The user message may carry an optional "input" field; thresher's readers fold the
# input into the instruction, so the no-input header is the common case.
# --------------------------------------------------------------------------- #
ALPACA_TEXT = {
    "en": {
        "header": "Below is an instruction that describes a task. Write a response that appropriately "
                  "completes the request.\n\n",
        "header_input": "Below is an instruction that describes a task, paired with an input that provides "
                        "further context. Write a response that appropriately completes the request.\n\n",
        "instruction": "### Instruction:\n", "input": "### Input:\n", "response": "### Response:\n",
    },
    "zh": {
        "header": "以下是描述任务的指令。请编写一个适当完成请求的回复。\n\n",
        "header_input": "以下是描述任务的指令，以及提供进一步上下文的输入。请编写一个适当完成请求的回复。\n\n",
        "instruction": "### 指令:\n", "input": "### 输入:\n", "response": "### 回复:\n",
    },
}


def _alpaca(lang):
    txt = ALPACA_TEXT[lang]

    def render(messages, bos, eos, gen):
        system, body = _split_system(messages)
        first_input = body[0].get("input")
        header = system if system is not None else (txt["header_input"] if first_input else txt["header"])
        out = []
        for turn, u, a in _pairs(body):
            s = (header if turn == 0 else "\n\n") + txt["instruction"] + u["content"] + "\n\n"
            if u.get("input"):
                s += txt["input"] + u["input"] + "\n\n"
            s += txt["response"]
            if a is None:
                out.append(Segment(s if gen else s[: -len(txt["response"])].rstrip("\n"), PROMPT, turn))
                continue
            out.append(Segment(s, PROMPT, turn))
            out.append(Segment(f"{a['content']}{eos}", ANSWER, turn))
        return out
    return render


# --------------------------------------------------------------------------- #
# ChatML (Qwen, Yi, ...): turn end is <|im_end|>; the newline after it is prompt.
# --------------------------------------------------------------------------- #
def _chatml(messages, bos, eos, gen):
    system, body = _split_system(messages)
    out = [Segment(f"<|im_start|>system\n{system}<|im_end|>\n", PROMPT, -1)] if system is not None else []
    return out + _tagged_turns(body, gen, lambda t, u: f"<|im_start|>user\n{u['content']}<|im_end|>\n",
                               "<|im_start|>assistant\n", lambda a: f"{a['content']}<|im_end|>", after="\n")


# --------------------------------------------------------------------------- #
# Llama-2 chat: <s>[INST] <<SYS>>\n..\n<</SYS>>\n\n{u} [/INST] {a} </s>
# --------------------------------------------------------------------------- #
def _llama2(messages, bos, eos, gen):
    system, body = _split_system(messages)
    out = []
    for turn, u, a in _pairs(body):
        content = u["content"]
        if turn == 0 and system is not None:
            content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
        out.append(Segment(f"{bos}[INST] {content} [/INST]", PROMPT, turn))
        if a is not None:
            out.append(Segment(f" {a['content']} {eos}", ANSWER, turn))
    return out


# --------------------------------------------------------------------------- #
# Llama-3 instruct: header blocks, turn end <|eot_id|>.
# --------------------------------------------------------------------------- #
def _llama3(messages, bos, eos, gen):
    system, body = _split_system(messages)

    def hdr(role):
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n"
    pre = "<|begin_of_text|>"
    if system is not None:
        pre += hdr("system") + system + "<|eot_id|>"
    return _tagged_turns(body, gen, lambda t, u: (pre if t == 0 else "") + hdr("user") + u["content"] + "<|eot_id|>",
                         hdr("assistant"), lambda a: f"{a['content']}<|eot_id|>")


# --------------------------------------------------------------------------- #
# Baichuan-2 chat: user_token <reserved_106>, assistant_token <reserved_107>, answer ends with eos.
# --------------------------------------------------------------------------- #
def _baichuan(messages, bos, eos, gen):
    system, body = _split_system(messages)
    out = [Segment(system, PROMPT, -1)] if system is not None else []
    return out + _tagged_turns(body, gen, lambda t, u: f"<reserved_106>{u['content']}", "<reserved_107>",
                               lambda a: f"{a['content']}{eos}")


# --------------------------------------------------------------------------- #
# MOSS (fnlp/moss-moon-003-sft): meta instruction, <|Human|>: ..<eoh>\n<|MOSS|>: ..<eom>\n
# --------------------------------------------------------------------------- #
MOSS_META = ("You are an AI assistant whose name is MOSS.\n- MOSS is a conversational language model that is "
             "developed by Fudan University. It is designed to be helpful, honest, and harmless.\n")


def _moss(messages, bos, eos, gen):
    system, body = _split_system(messages)
    out = [Segment(system if system is not None else MOSS_META, PROMPT, -1)]
    return out + _tagged_turns(body, gen, lambda t, u: f"<|Human|>: {u['content']}<eoh>\n", "<|MOSS|>:",
                               lambda a: f" {a['content']}<eom>", after="\n")


TEMPLATES: dict[str, ChatTemplate] = {
    "open-assistant": ChatTemplate(
        "open-assistant", _oa, special_tokens=("<|system|>", "<|prompter|>", "<|assistant|>", "{eos}"),
        addable_tokens=("<|system|>", "<|prompter|>", "<|assistant|>")),
    "alpaca": ChatTemplate("alpaca", _alpaca("en"), special_tokens=("{eos}",)),
    "alpaca-zh": ChatTemplate("alpaca-zh", _alpaca("zh"), special_tokens=("{eos}",)),
    "chatml": ChatTemplate(
        "chatml", _chatml, special_tokens=("<|im_start|>", "<|im_end|>"), stop_tokens=("<|im_end|>", "{eos}"),
        addable_tokens=("<|im_start|>", "<|im_end|>")),
    "llama-2": ChatTemplate("llama-2", _llama2, special_tokens=("{bos}", "{eos}")),
    "llama-3": ChatTemplate(
        "llama-3", _llama3,
        special_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        stop_tokens=("<|eot_id|>", "{eos}"),
        addable_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    "baichuan": ChatTemplate(
        "baichuan", _baichuan, special_tokens=("<reserved_106>", "<reserved_107>", "{eos}"),
        addable_tokens=("<reserved_106>", "<reserved_107>")),
    "moss": ChatTemplate(
        "moss", _moss, special_tokens=("<eoh>", "<eom>"), stop_tokens=("<eom>", "{eos}"),
        addable_tokens=("<|Human|>", "<|MOSS|>", "<eoh>", "<eom>")),
}
# aliases used by configs of the seed models
TEMPLATES["oasst"] = TEMPLATES["open-assistant"]
TEMPLATES["qwen"] = TEMPLATES["chatml"]


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown chat template {name!r}; known: {sorted(TEMPLATES)}") from None
