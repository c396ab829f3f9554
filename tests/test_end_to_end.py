"""The whole product in one run: demo corpus -> default recipe (clean, dedup, score,
tier, select) -> a tiny model trained by the bundled trainer on the SFT selection."""
import json
import os

import pytest

from thresher.config import load_recipe
from thresher.demo import write_demo_corpus
from thresher.executor.runner import run_recipe
from thresher.io.readers import iter_records


@pytest.mark.slow
def test_default_recipe_then_sft_on_the_selected_tier(tmp_path):
    pytest.importorskip("transformers")
    data = tmp_path / "demo"
    write_demo_corpus(str(data), n_docs=600)
    overrides = {"output.dir": str(tmp_path / "run"), "executor.shard_bytes": "64KB",
                 "inputs": [{"path": str(data / "web_zh.jsonl"), "name": "web"},
                            {"path": str(data / "news_gb18030.txt"), "name": "news"},
                            {"path": str(data / "sft_*.jsonl"), "name": "sft"},
                            {"path": str(data / "dpo.jsonl"), "name": "dpo"}]}
    stats = run_recipe(load_recipe("default", overrides))
    c = stats["counts"]
    assert stats["conserved"] and c["quarantined"] == 3 and c["rejected"] > 0
    reasons = {r for s in stats["stages"].values() for r in s["reasons"]}
    assert {"exact_dup", "near_dup", "wrong_language"} <= reasons
    tiers = sorted(os.listdir(tmp_path / "run" / "kept"))
    assert {"top", "mid", "low"} <= set(tiers)
    selection = tmp_path / "run" / "selections" / "sft_train" / "manifest.json"
    picked = list(iter_records(str(selection)))
    assert picked and all(r.kind == "sft" and r.meta["tier"] == "top" for r in picked)

    from thresher.training.config import build_config, set_dotted
    from thresher.training.runs import run
    from thresher.training.tiny import build_tiny
    model_dir = tmp_path / "tiny"
    build_tiny(str(model_dir), corpus=str(tmp_path / "run" / "kept"), vocab_size=800)
    cfg = build_config(["defaults", "tiny-llama"], [("model_name", str(model_dir)),
                                                    ("output_dir", str(tmp_path / "sft"))])
    set_dotted(cfg, "datasets", [{"top": {"input_file_path": str(selection), "val_split": 0.0}}])
    set_dotted(cfg, "num_train_epochs", 10)
    result = run(cfg, "sft")
    losses = [h["loss"] for h in result["history"] if "loss" in h]
    assert losses[-1] < losses[0] * 0.75, losses  # it learns the curated answers
    assert os.path.exists(os.path.join(result["model_dir"], "config.json"))
    assert json.loads(selection.read_text())["records"] == len(picked)
