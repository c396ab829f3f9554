"""Iterated SFT -> DPO rounds with a phased data curriculum.

Round ``i`` trains SFT on the ``i``-th slice of the SFT data starting from the
previous round's output, then DPO on the ``i``-th slice of the preference data
starting from that SFT model.  With ``rounds.difficulty_key`` set, slices are cut
from data sorted by that meta score (easy first), which is the phased curriculum;
without it, slices are cut from the seeded shuffle.  Each stage exports a merged
HF model directory, so stages never share state except through files.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from thresher.training import distributed as D
from thresher.training.config import deep_merge, resolve_config
from thresher.training.data import load_splits, round_slice
from thresher.training.runs import run

log = logging.getLogger("thresher.training.rounds")


def run_rounds(cfg: dict) -> dict:
    resolve_config(cfg)   # rounds.difficulty_key must name a score; overlays are checked too
    rc = cfg.get("rounds") or {}
    n = int(rc.get("n", 1))
    key = rc.get("difficulty_key")
    D.setup(cfg)
    base_out = Path(cfg["output_dir"])
    sft_data = load_splits({**cfg, "datasets": rc.get("sft_datasets") or cfg.get("datasets")}, kind="sft")
    dpo_data = load_splits({**cfg, "datasets": rc.get("dpo_datasets")}, kind="dpo") if rc.get("dpo_datasets") else None
    current = cfg["model_name"]
    tokenizer = cfg.get("tokenizer_path")
    results = []
    for i in range(n):
        stage_res = {"round": i}
        sft_cfg = deep_merge(cfg, rc.get("sft") or {})
        sft_cfg.update(model_name=current, tokenizer_path=tokenizer, output_dir=str(base_out / f"round-{i}" / "sft"))
        sft_slice = round_slice(sft_data.train, n, i, key)
        log.info("round %d: SFT on %d records from %s", i, len(sft_slice), current)
        s = run(sft_cfg, "sft", sft_slice, sft_data.val)
        current = tokenizer = s["model_dir"]
        stage_res["sft"] = {k: v for k, v in s.items() if k not in ("history", "generations")}
        if dpo_data is not None:
            dpo_cfg = deep_merge(cfg, rc.get("dpo") or {})
            dpo_cfg.update(model_name=current, tokenizer_path=tokenizer,
                           output_dir=str(base_out / f"round-{i}" / "dpo"))
            dpo_slice = round_slice(dpo_data.train, n, i, key)
            log.info("round %d: DPO on %d pairs from %s", i, len(dpo_slice), current)
            d = run(dpo_cfg, "dpo", dpo_slice, dpo_data.val)
            current = tokenizer = d["model_dir"]
            stage_res["dpo"] = {k: v for k, v in d.items() if k not in ("history",)}
        results.append(stage_res)
    summary = {"rounds": results, "final_model": current}
    if D.is_main():
        with open(base_out / "rounds_summary.json", "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False, indent=1, default=str)
    return summary
