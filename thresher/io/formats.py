"""Detect the shape of one raw JSON object and convert it to a :class:`Record`.

No per-source code: every known layout (plain text, ``{"id","data":[q,a,...]}``,
alpaca, sharegpt ``conversations``, ``messages``, firefly ``conversation``, MOSS
``chat`` turns, oasst trees, prompt/chosen/rejected) is recognised from its keys.
A recipe ``mapping`` can force a format and rename fields.
"""
from __future__ import annotations

import re

import orjson
from typing import Any, Iterator

from ..records import Record, make_record


class FormatError(ValueError):
    """The object cannot be converted; the record is quarantined with this message."""


ROLE_ALIASES = {
    "user": "user", "human": "user", "prompter": "user", "question": "user", "instruction": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant",
    "chatgpt": "assistant", "moss": "assistant", "answer": "assistant",
    "system": "system",
}
TEXT_KEYS = ("text", "content", "raw_content", "document")
PROMPT_KEYS = ("instruction", "question", "query", "prompt", "input")
ANSWER_KEYS = ("output", "answer", "response", "target", "completion", "std_answer")
_MOSS_PREFIX = re.compile(r"^<\|(?:Human|MOSS)\|>:\s?")
_MOSS_SUFFIX = re.compile(r"<e[a-z]{2}>\s*$")


def _role(raw: Any) -> str:
    role = ROLE_ALIASES.get(str(raw).strip().lower())
    if role is None:
        raise FormatError(f"unknown speaker role {raw!r}")
    return role


def _msg(role: str, content: Any) -> dict:
    if not isinstance(content, str):
        raise FormatError(f"{role} turn content is {type(content).__name__}, not a string")
    return {"role": role, "content": content}


def _messages_from_list(turns: list) -> list[dict]:
    """sharegpt ``{from,value}``, openai ``{role,content}`` or firefly ``{human,assistant}``."""
    out: list[dict] = []
    for t in turns:
        if not isinstance(t, dict):
            raise FormatError("conversation turn is not an object")
        if "from" in t or "role" in t:
            out.append(_msg(_role(t.get("from", t.get("role"))), t.get("value", t.get("content"))))
        elif "human" in t or "assistant" in t:
            if "human" in t:
                out.append(_msg("user", t["human"]))
            if "assistant" in t:
                out.append(_msg("assistant", t["assistant"]))
        else:
            raise FormatError(f"conversation turn has none of from/role/human keys: {sorted(t)[:5]}")
    return out


def _alternating(items: list) -> list[dict]:
    if not all(isinstance(x, str) for x in items):
        raise FormatError("'data' must be a list of strings [q, a, q, a, ...]")
    return [_msg("user" if i % 2 == 0 else "assistant", x) for i, x in enumerate(items)]


def _moss(obj: dict) -> list[dict]:
    msgs: list[dict] = []
    if obj.get("meta_instruction"):
        msgs.append(_msg("system", obj["meta_instruction"]))
    chat = obj["chat"]
    for key in sorted(chat, key=_turn_number):
        turn = chat[key]
        if not isinstance(turn, dict):
            raise FormatError(f"moss: chat[{key!r}] is {type(turn).__name__}, not an object")
        for field, role in (("Human", "user"), ("MOSS", "assistant")):
            if field in turn:
                if not isinstance(turn[field], str):
                    raise FormatError(f"moss: chat[{key!r}][{field!r}] is not a string")
                text = _MOSS_SUFFIX.sub("", _MOSS_PREFIX.sub("", turn[field]))
                msgs.append(_msg(role, text.strip()))
    return msgs


def _turn_number(key: str) -> int:
    """``turn_12`` -> 12; keys without an ASCII number sort first (``"²".isdigit()`` is
    true but ``int("²")`` fails, so isdigit is not the test)."""
    tail = str(key).rsplit("_", 1)[-1]
    return int(tail) if tail.isascii() and tail.isdigit() else 0


def _answer_text(value: Any) -> str:
    """chosen/rejected given as a string, a message dict, or a message list (last assistant turn)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _messages_from_list([value])[-1]["content"]
    if isinstance(value, list) and value:
        return _messages_from_list(value)[-1]["content"]
    raise FormatError("chosen/rejected is empty or not text/messages")


def _dpo_prompt(obj: dict) -> list[dict]:
    if isinstance(obj.get("conversations"), list):
        return _messages_from_list(obj["conversations"])
    if isinstance(obj.get("messages"), list):
        return _messages_from_list(obj["messages"])
    prompt = obj.get("prompt", obj.get("question", obj.get("instruction")))
    if isinstance(prompt, list):
        return _messages_from_list(prompt)
    chosen = obj.get("chosen")
    if prompt is None and isinstance(chosen, list):  # prompt only inside the message lists
        return _messages_from_list(chosen)[:-1]
    if not isinstance(prompt, str):
        raise FormatError("preference pair has no prompt")
    msgs = []
    if obj.get("system"):
        msgs.append(_msg("system", obj["system"]))
    msgs.append(_msg("user", prompt))
    return msgs


def oasst_threads(node: dict, prefix: list[dict] | None = None) -> Iterator[list[dict]]:
    """Flatten an oasst message tree into every root-to-leaf thread."""
    if not isinstance(node, dict):
        raise FormatError(f"oasst: message node is {type(node).__name__}, not an object")
    replies = node.get("replies") or []
    if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
        raise FormatError("oasst: replies must be a list of message objects")
    replies = [r for r in replies if not r.get("deleted")]
    prefix = (prefix or []) + [_msg(_role(node.get("role", "prompter")), node.get("text", ""))]
    if not replies:
        yield prefix
        return
    for reply in replies:
        yield from oasst_threads(reply, prefix)


def is_own_record(obj: dict) -> bool:
    return obj.keys() >= {"id", "kind", "source", "meta"} and obj.get("kind") in ("text", "sft", "dpo")


def detect_format(obj: dict) -> str:
    keys = obj.keys()
    if "chosen" in keys and "rejected" in keys:
        return "dpo"
    if isinstance(obj.get("chat"), dict):
        return "moss"
    if isinstance(obj.get("prompt"), dict) and "replies" in obj["prompt"]:
        return "oasst"
    if "replies" in keys and "text" in keys:
        return "oasst"
    if isinstance(obj.get("conversations"), list):
        return "sharegpt"
    if isinstance(obj.get("messages"), list):
        return "messages"
    if isinstance(obj.get("conversation"), list):
        return "firefly"
    if isinstance(obj.get("data"), list):
        return "data"
    if isinstance(obj.get("instances"), list) and "instruction" in keys:
        return "instances"  # self-instruct / BELLE seed tasks: one instruction, several (input, output)
    if any(k in keys for k in ANSWER_KEYS) and any(k in keys for k in PROMPT_KEYS):
        return "alpaca"
    if any(isinstance(obj.get(k), str) for k in TEXT_KEYS):
        return "text"
    raise FormatError(f"cannot detect the format from keys {sorted(keys)[:8]}")


def _alpaca(obj: dict) -> list[dict]:
    prompt_key = next((k for k in PROMPT_KEYS if k in obj and k != "input"), None)
    answer_key = next(k for k in ANSWER_KEYS if k in obj)
    prompt = obj.get(prompt_key) if prompt_key else None
    extra = obj.get("input") if prompt_key else None
    if prompt_key is None:  # {"input", "target"} style (pCLUE)
        prompt = obj.get("input")
    if not isinstance(prompt, str):
        raise FormatError("instruction/prompt is missing or not a string")
    if isinstance(extra, str) and extra.strip():
        prompt = f"{prompt}\n{extra}"
    msgs = []
    if obj.get("system"):
        msgs.append(_msg("system", obj["system"]))
    history = obj.get("history") or ()
    if not isinstance(history, (list, tuple)):
        raise FormatError(f"alpaca: history is {type(history).__name__}, not a list of [q, a] pairs")
    for pair in history:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            msgs += [_msg("user", pair[0]), _msg("assistant", pair[1])]
    msgs += [_msg("user", prompt), _msg("assistant", obj[answer_key])]
    return msgs


def _instances(obj: dict) -> list[dict]:
    insts = obj["instances"]
    if not insts or not all(isinstance(i, dict) and isinstance(i.get("output"), str) for i in insts):
        raise FormatError("instances: expected a non-empty list of {input, output} objects")
    return insts


def convert(obj: Any, source: str, mapping: dict | None = None, origin: str | None = None) -> list[Record]:
    """Convert one raw object into one record (several for an oasst tree).

    ``origin`` (``file:offset``) makes ids unique among exact copies; see make_record.
    """
    if isinstance(obj, str):
        return [make_record("text", source, text=obj, origin=origin)]
    if not isinstance(obj, dict):
        raise FormatError(f"expected a JSON object, got {type(obj).__name__}")
    if is_own_record(obj):
        # a thresher output read back (re-tiering, chained runs): keep id, scores, tags
        rec = Record.from_dict(obj)
        if isinstance(rec.meta, str):
            try:
                rec.meta = orjson.loads(rec.meta)
            except orjson.JSONDecodeError as e:
                raise FormatError(f"thresher record {rec.id!r}: meta is a string but not JSON: {e}") from None
        if (mapping or {}).get("reconsider") and rec.meta.pop("reject", None) is not None:
            rec.meta["reconsidered"] = True
        return [rec]
    mapping = mapping or {}
    renames = mapping.get("fields") or {}
    if renames:  # canonical_name: field_in_file
        obj = {**obj, **{canon: obj[raw] for canon, raw in renames.items() if raw in obj}}
    fmt = mapping.get("format") or detect_format(obj)
    keep = {k: obj[k] for k in mapping.get("keep_fields", ()) if k in obj}
    if "id" in obj and isinstance(obj["id"], (str, int)):
        keep["orig_id"] = obj["id"]
    try:
        if fmt == "text":
            text = next(obj[k] for k in TEXT_KEYS if isinstance(obj.get(k), str))
            return [make_record("text", source, text=text, meta=keep, origin=origin)]
        if fmt == "oasst":
            root = obj["prompt"] if "prompt" in obj else obj
            return [make_record("sft", source, messages=t, meta=dict(keep),
                                origin=None if origin is None else f"{origin}#{k}")
                    for k, t in enumerate(oasst_threads(root))]
        if fmt == "instances":
            return [make_record("sft", source, messages=_alpaca({"instruction": obj["instruction"], **inst}),
                                meta=dict(keep), origin=None if origin is None else f"{origin}#{k}")
                    for k, inst in enumerate(_instances(obj))]
        if fmt == "dpo":
            return [make_record("dpo", source, messages=_dpo_prompt(obj), chosen=_answer_text(obj["chosen"]),
                                rejected=_answer_text(obj["rejected"]), meta=keep, origin=origin)]
        builders = {"moss": _moss, "alpaca": _alpaca, "data": lambda o: _alternating(o["data"]),
                    "sharegpt": lambda o: _messages_from_list(o["conversations"]),
                    "messages": lambda o: _messages_from_list(o["messages"]),
                    "firefly": lambda o: _messages_from_list(o["conversation"])}
        if fmt not in builders:
            raise FormatError(f"unknown format {fmt!r} in mapping")
        msgs = builders[fmt](obj)
        if obj.get("system") and fmt in ("sharegpt", "messages", "firefly") and (not msgs or msgs[0]["role"] != "system"):
            msgs.insert(0, _msg("system", obj["system"]))
        return [make_record("sft", source, messages=msgs, meta=keep, origin=origin)]
    except KeyError as e:
        raise FormatError(f"{fmt}: missing field {e}") from None
