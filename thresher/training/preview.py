"""``thresher train preview``: what training will see for the first N samples.

For each sample: the rendered text, the token ids, which tokens are trained, and
whether the ids equal ``tok(render(conv))`` -- the first thing to look at when a
fine-tune behaves oddly (a leading space learned per answer, an unmasked prompt, a
missing stop token).  Reads the configured datasets in order; nothing is trained.
"""
from __future__ import annotations

import itertools

from thresher.training.encode import IGNORE


def first_records(cfg: dict, n: int, kind: str) -> list:
    """The first ``n`` records of ``kind`` across the configured datasets, in config order."""
    from thresher.io.readers import iter_records
    from thresher.training.data import parse_dataset_specs, resolve_path
    specs = parse_dataset_specs(cfg.get(cfg.get("datasets_key", "datasets")) or [], cfg.get("dataset_defaults"))
    if not specs:
        raise ValueError("no datasets configured (set datasets in a config block or with --set)")
    out: list = []
    for spec in specs:
        path = resolve_path(spec, cfg.get("dataset_paths"), cfg.get("data_dir"))
        recs = (r for r in iter_records(path, source=spec.name, mapping=spec.mapping) if r.kind == kind)
        out += itertools.islice(recs, n - len(out))
        if len(out) >= n:
            break
    return out


def _runs(tok, ids: list[int], trained: list[bool]) -> list[tuple[bool, str]]:
    """Consecutive trained / untrained token runs, decoded."""
    out = []
    for flag, grp in itertools.groupby(zip(ids, trained), key=lambda x: x[1]):
        out.append((flag, tok.decode([i for i, _ in grp], skip_special_tokens=False)))
    return out


def preview_sample(enc, full_enc, rec, objective: str) -> dict:
    """One sample's view; ``full_enc`` is the same encoder without truncation (for the equality check)."""
    msgs = list(rec.messages)
    if objective == "dpo":
        msgs = msgs + [{"role": "assistant", "content": rec.chosen}]
    s = enc.encode_sft(msgs)
    full = full_enc.encode_sft(msgs)
    item = {"id": rec.id, "source": rec.source, "text": enc.render(msgs)}
    if s is None:
        return {**item, "dropped": True, "reason": list(enc.stats.errors)[-1:] or "no trained tokens"}
    ref = enc.reference_ids(msgs)
    trained = [l != IGNORE for l in s["labels"]]
    tok = enc.tok
    return {**item, "input_ids": s["input_ids"], "tokens": tok.convert_ids_to_tokens(s["input_ids"]),
            "trained": trained, "n_tokens": len(s["input_ids"]), "n_trained": sum(trained),
            "truncated": s["truncated"], "ids_equal_tok_render": full is not None and full["input_ids"] == ref,
            "trained_text": [t for f, t in _runs(tok, s["input_ids"], trained) if f]}


def preview(cfg: dict, n: int = 5, objective: str = "sft") -> dict:
    from thresher.training.model import load_tokenizer
    from thresher.training.runs import make_encoder
    from thresher.training.templates import get_template
    template = get_template(cfg.get("template", "open-assistant"))
    tok = load_tokenizer(cfg, template)
    enc = make_encoder(cfg, tok, template)
    full_enc = make_encoder({**cfg, "max_length": 10 ** 9}, tok, template)
    samples = [preview_sample(enc, full_enc, r, objective) for r in first_records(cfg, n, objective)]
    kept = [s for s in samples if not s.get("dropped")]
    return {"template": template.name, "tokenizer": type(tok).__name__, "fast": bool(getattr(tok, "is_fast", False)),
            "n": len(samples), "n_dropped": len(samples) - len(kept),
            "n_ids_equal_tok_render": sum(bool(s["ids_equal_tok_render"]) for s in kept),
            "all_ids_equal_tok_render": all(s["ids_equal_tok_render"] for s in kept),
            "samples": samples}


def format_text(rep: dict, tok=None) -> str:
    """Human-readable view: trained runs between ⟦ ⟧."""
    lines = [f"template={rep['template']} tokenizer={rep['tokenizer']} fast={rep['fast']} samples={rep['n']} "
             f"all ids == tok(render): {rep['all_ids_equal_tok_render']}"]
    for i, s in enumerate(rep["samples"]):
        if s.get("dropped"):
            lines.append(f"\n#{i} {s['source']} {s['id']}: DROPPED ({s['reason']})")
            continue
        lines.append(f"\n#{i} {s['source']} {s['id']}: {s['n_tokens']} tokens, {s['n_trained']} trained, "
                     f"truncated={s['truncated']}, ids == tok(render): {s['ids_equal_tok_render']}")
        lines.append("--- rendered text ---")
        lines.append(s["text"])
        lines.append("--- trained (⟦ ⟧) ---")
        lines.append("".join(f"⟦{t}⟧" for t in s["trained_text"]))
        lines.append("--- tokens ---")
        lines.append(" ".join(("*" if tr else "") + repr(t)[1:-1] for t, tr in zip(s["tokens"], s["trained"])))
    return "\n".join(lines)
