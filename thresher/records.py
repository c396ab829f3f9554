"""One record schema for the three kinds of data thresher handles.

* ``text``: pretraining documents (``text``).
* ``sft``: conversations (``messages``: list of ``{"role", "content"}``; roles are
  ``system`` / ``user`` / ``assistant``).
* ``dpo``: preference pairs: the prompt conversation in ``messages`` (ending with a
  user turn) plus the ``chosen`` and ``rejected`` assistant answers.

Every record carries a stable id (source name + content hash + origin hash, see
:func:`make_record`),
its ``source`` and a ``meta`` dict that later stages add measurements, scores and
tags to.  Rejections are stored in ``meta["reject"]`` so the record keeps flowing as
data (to the rejected sink) instead of disappearing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import orjson

KINDS = ("text", "sft", "dpo")
ROLES = ("system", "user", "assistant")


@dataclass(slots=True)
class Record:
    id: str
    kind: str
    source: str
    text: str | None = None
    messages: list[dict] | None = None
    chosen: str | None = None
    rejected: str | None = None
    meta: dict = field(default_factory=dict)

    # --- content access -------------------------------------------------
    def segments(self) -> Iterator[tuple[str, str]]:
        """(role, text) pairs of everything a cleaner may look at, in order."""
        if self.kind == "text":
            yield "text", self.text or ""
            return
        for m in self.messages or ():
            yield m["role"], m["content"]
        if self.kind == "dpo":
            yield "chosen", self.chosen or ""
            yield "rejected", self.rejected or ""

    def full_text(self, sep: str = "\n") -> str:
        """All textual content joined; what document-level rules and dedup see."""
        if self.kind == "text":
            return self.text or ""
        return sep.join(t for _, t in self.segments())

    def prompt_text(self) -> str:
        """Instruction side (user/system turns) for SFT-aware keys."""
        return "\n".join(m["content"] for m in self.messages or () if m["role"] != "assistant")

    def answer_text(self) -> str:
        if self.kind == "dpo":
            return self.chosen or ""
        return "\n".join(m["content"] for m in self.messages or () if m["role"] == "assistant")

    def map_text(self, fn) -> None:
        """Apply a str->str function to every text field in place (normalisers)."""
        if self.kind == "text":
            self.text = fn(self.text or "")
            return
        for m in self.messages or ():
            m["content"] = fn(m["content"])
        if self.kind == "dpo":
            self.chosen = fn(self.chosen or "")
            self.rejected = fn(self.rejected or "")

    # --- decisions --------------------------------------------------------
    @property
    def is_rejected(self) -> bool:
        return "reject" in self.meta

    def reject(self, stage: str, reason: str, value: Any = None, threshold: Any = None, **extra) -> "Record":
        info = {"stage": stage, "reason": reason}
        if value is not None:
            info["value"] = value
        if threshold is not None:
            info["threshold"] = threshold
        info.update(extra)
        self.meta["reject"] = info
        return self

    def signals(self) -> dict:
        """Measured values of rules (ratios, counts, scores), keyed by rule name."""
        return self.meta.setdefault("signals", {})

    # --- serialisation ----------------------------------------------------
    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "kind": self.kind, "source": self.source}
        if self.kind == "text":
            d["text"] = self.text
        else:
            d["messages"] = self.messages
            if self.kind == "dpo":
                d["chosen"] = self.chosen
                d["rejected"] = self.rejected
        d["meta"] = self.meta
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        return cls(
            id=d["id"], kind=d["kind"], source=d["source"], text=d.get("text"),
            messages=d.get("messages"), chosen=d.get("chosen"), rejected=d.get("rejected"),
            meta=d.get("meta") or {},
        )

    @classmethod
    def from_json(cls, line: bytes | str) -> "Record":
        return cls.from_dict(orjson.loads(line))


def check_record(rec: Record) -> Record:
    """Raise ValueError unless every field has the type the stages rely on.

    Records read back from a thresher-shaped input bypass the converters, so a wrong
    type there (``meta`` a string, ``text`` a number) would otherwise crash a stage or
    the writer far from its cause.
    """
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"record {str(rec.id)[:60]!r}: {what}")
    need(isinstance(rec.id, str) and isinstance(rec.source, str), "id and source must be strings")
    need(rec.kind in KINDS, f"kind {rec.kind!r} not in {KINDS}")
    need(isinstance(rec.meta, dict), f"meta is {type(rec.meta).__name__}, not an object")
    if rec.kind == "text":
        need(isinstance(rec.text, str), f"text is {type(rec.text).__name__}, not a string")
    else:
        need(isinstance(rec.messages, list) and all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
            for m in rec.messages), "messages must be a list of {role, content} with string content")
    if rec.kind == "dpo":
        need(isinstance(rec.chosen, str) and isinstance(rec.rejected, str), "chosen/rejected must be strings")
    try:  # nesting deeper than the serialiser allows would fail only when the shard is written
        orjson.dumps(rec.meta, option=orjson.OPT_SERIALIZE_NUMPY)
    except (TypeError, orjson.JSONEncodeError) as e:
        raise ValueError(f"meta cannot be serialised: {e}") from None
    return rec


def content_hash(kind: str, text: str | None, messages: list[dict] | None,
                 chosen: str | None, rejected: str | None) -> str:
    h = hashlib.blake2b(digest_size=10)
    h.update(kind.encode())
    if kind == "text":
        h.update((text or "").encode("utf-8", "surrogatepass"))
    else:
        for m in messages or ():
            h.update(b"\x1e" + m["role"].encode() + b"\x1f" + m["content"].encode("utf-8", "surrogatepass"))
        if kind == "dpo":
            h.update(b"\x1dC" + (chosen or "").encode("utf-8", "surrogatepass"))
            h.update(b"\x1dR" + (rejected or "").encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def make_record(kind: str, source: str, *, text: str | None = None, messages: list[dict] | None = None,
                chosen: str | None = None, rejected: str | None = None, meta: dict | None = None,
                origin: str | None = None) -> Record:
    """Build a record with its id ``<source>/<content hash>[.<origin hash>]``.

    The content hash makes exact copies recognisable by id prefix; the short hash of
    the origin (``file:offset``, kept in ``meta["origin"]``) makes the id unique when
    the same text occurs twice.  Both depend only on the data, never on the shard
    layout or the run, so ids are stable across runs.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {KINDS}")
    rid = f"{source}/{content_hash(kind, text, messages, chosen, rejected)}"
    meta = meta or {}
    if origin is not None:
        rid += "." + hashlib.blake2b(origin.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
        meta["origin"] = origin
    return Record(id=rid, kind=kind, source=source, text=text, messages=messages,
                  chosen=chosen, rejected=rejected, meta=meta)
