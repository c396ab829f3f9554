"""Which turns of a dialogue a rule judges, and what a failing turn does to the record.

Rules judge the *answer* side by default (assistant turns, a DPO pair's ``chosen``): a
user turn is the task, not the training target, and safety SFT sets are built from
insulting or harmful requests whose calm answers are the point.  A DPO ``rejected`` answer
is allowed to be bad; that is its job.

When one turn of a multi-turn conversation fails, ``on_turn_failure`` decides:

* ``reject`` -- the whole record goes to the rejected sink (the only choice for DPO pairs);
* ``truncate`` -- keep the turns before the first failing exchange (always coherent: no
  later turn can refer to something that was removed);
* ``drop_pair`` -- remove each failing exchange (its user turn(s) + the answer) and keep
  the rest.

The record is rejected when no exchange would remain.  What was removed is listed in
``meta["dropped_turns"]`` (stage, reason, value, turn index) so nothing disappears silently.
"""
from __future__ import annotations

from typing import Any

from ..records import Record

ANSWER_ROLES = ("assistant", "chosen")
TURN_POLICIES = ("reject", "truncate", "drop_pair")
CHOSEN, REJECTED = -1, -2  # turn "indices" of a DPO pair's answers

# (turn index, reason, value, threshold, extra fields of the rejection)
Failure = tuple[int, str, Any, Any, dict]


def judged_turns(record: Record, roles: tuple[str, ...] = ANSWER_ROLES) -> list[tuple[int, str, str]]:
    """(index, role, text) of the turns a rule looks at."""
    out = [(i, m["role"], m["content"]) for i, m in enumerate(record.messages or ()) if m["role"] in roles]
    if record.kind == "dpo":
        if "chosen" in roles:
            out.append((CHOSEN, "chosen", record.chosen or ""))
        if "rejected" in roles:
            out.append((REJECTED, "rejected", record.rejected or ""))
    return out


def exchanges(messages: list[dict]) -> list[tuple[int, int]]:
    """[start, end) message ranges, each ending with an assistant turn; leading system turns
    belong to no exchange (they are never removed)."""
    out = []
    start = 0
    while start < len(messages) and messages[start]["role"] == "system":
        start += 1
    for i in range(start, len(messages)):
        if messages[i]["role"] == "assistant":
            out.append((start, i + 1))
            start = i + 1
    return out


def apply_turn_failures(stage, record: Record, failures: list[Failure], policy: str) -> Record:
    """Reject ``record`` or cut its failing exchanges, as ``policy`` says."""
    if not failures:
        return record
    failures = sorted(failures, key=lambda f: (f[0] < 0, f[0]))
    if policy == "reject" or record.kind != "sft" or any(f[0] < 0 for f in failures):
        return _reject(stage, record, failures)
    spans = exchanges(record.messages or [])
    failing = sorted({k for f in failures for k, (s, e) in enumerate(spans) if s <= f[0] < e})
    if not failing:  # a failing turn outside every exchange (a trailing user turn): nothing to cut
        return _reject(stage, record, failures)
    keep = range(failing[0]) if policy == "truncate" else [k for k in range(len(spans)) if k not in failing]
    if not keep:
        return _reject(stage, record, failures)
    msgs = record.messages or []
    head = msgs[:spans[0][0]]
    kept_msgs = [m for k in keep for m in msgs[spans[k][0]:spans[k][1]]]
    if policy == "drop_pair" and spans[-1][1] < len(msgs):
        kept_msgs += msgs[spans[-1][1]:]  # a trailing unanswered turn stays where it was
    removed = len(msgs) - len(head) - len(kept_msgs)
    record.messages = head + kept_msgs
    log = record.meta.setdefault("dropped_turns", [])
    log += [{"stage": stage.label, "reason": r, "value": v, "turn": i} for i, r, v, _, _ in failures]
    stage.count("records_trimmed")
    stage.count("turns_dropped", removed)
    return record


def _reject(stage, record: Record, failures: list[Failure]) -> Record:
    i, reason, value, thr, extra = failures[0]
    extra = {**extra, "turn": i}
    reasons = sorted({f[1] for f in failures})
    if len(reasons) > 1:
        extra["failed"] = reasons
    return stage.reject(record, reason, value, thr, **extra)
