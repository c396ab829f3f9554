"""Config overlays/overrides, dataset mixing syntax and resolution, CLI plumbing."""
import json

import pytest

from training_util import dpo_records, sft_records, write_jsonl, write_tier
from thresher.training.cli import main
from thresher.training.config import build_config, parse_overrides
from thresher.training.data import curriculum_order, load_splits, parse_dataset_specs, round_slice


def test_overlays_merge_in_order_and_overrides_win():
    cfg = build_config(["defaults", "tiny-llama", "lora"], parse_overrides(
        ["--set", "lora.r=4", "--learning_rate", "2e-5", "--packing", "--deepspeed=configs/deepspeed/zero2.json"]))
    assert cfg["model_name"] == ".cache/tiny-llama" and cfg["tuning"] == "lora"
    assert cfg["lora"]["r"] == 4 and cfg["lora"]["alpha"] == 32 and cfg["lora"]["dropout"] == 0.05
    assert cfg["learning_rate"] == 2e-5 and cfg["packing"] is True
    assert cfg["deepspeed"].endswith("zero2.json")
    with pytest.raises(KeyError):
        build_config(["defaults", "no-such-block"])


def test_seed_model_blocks_use_local_paths():
    for name in ("bloom-zh-3b", "redpajama-3b", "llama-7b", "baichuan-7b", "qwen-7b"):
        cfg = build_config(["defaults", name])
        assert cfg["model_name"].startswith("/models/"), name
        assert cfg["trust_remote_code"] is (name == "baichuan-7b")


def test_dataset_specs():
    specs = parse_dataset_specs(["a", {"b": {"val_split": 0.1, "max_train_set": 5, "fraction": 0.5}}],
                                {"val_split": 0.05, "max_val_set": 3})
    assert specs[0].name == "a" and specs[0].max_val_set == 3
    assert specs[1].val_split == 0.1 and specs[1].max_train_set == 5
    with pytest.raises(ValueError, match="unknown option"):
        parse_dataset_specs([{"c": {"bogus": 1}}])


def test_load_splits_from_manifest_dir_and_file(tmp_path):
    write_tier(tmp_path / "tier", sft_records(20, source="t1"))
    f = write_jsonl(tmp_path / "mixed.jsonl", sft_records(10, source="t2") + dpo_records(4))
    cfg = {"seed": 3, "dataset_paths": {"gold": str(tmp_path / "tier")},
           "datasets": ["gold", {"mixed": {"input_file_path": f, "val_split": 0.2, "fraction": 0.5}}]}
    s = load_splits(cfg, "sft")
    assert s.counts["gold"]["read"] == 20 and s.counts["gold"]["val"] == 1 and s.counts["gold"]["train"] == 19
    assert s.counts["mixed"] == {**s.counts["mixed"], "read": 14, "wrong_kind": 4, "val": 2, "train": 4}
    assert len(s.train) == 23 and set(s.val) == {"gold", "mixed"}
    again = load_splits(cfg, "sft")
    assert [r.id for r in again.train] == [r.id for r in s.train]   # seeded
    d = load_splits({**cfg, "datasets": [{"mixed": {"input_file_path": f, "val_split": 0}}]}, "dpo")
    assert len(d.train) == 4
    with pytest.raises(FileNotFoundError):
        load_splits({"datasets": ["missing-dataset"]}, "sft")


def test_curriculum_and_round_slices():
    recs = sft_records(8)[::-1]
    order = curriculum_order(recs, "scores.difficulty_heuristic", phases=2, seed=0)
    first = {r.meta["scores"]["difficulty_heuristic"] for r in order[:4]}
    assert first == {0.0, 1.0, 2.0, 3.0}
    s0, s1 = round_slice(recs, 2, 0, "scores.difficulty_heuristic"), round_slice(recs, 2, 1, "scores.difficulty_heuristic")
    assert max(r.meta["scores"]["difficulty_heuristic"] for r in s0) < min(r.meta["scores"]["difficulty_heuristic"] for r in s1)


def test_cli_show_config_and_usage(capsys):
    assert main(["show-config", "--configs", "defaults", "tiny-llama", "--set", "lora.r=3"]) == 0
    assert "r: 3" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["--help"]) == 0


def test_bare_deepspeed_flag_resolves_to_the_block_default():
    from thresher.training.config import build_config, parse_overrides
    cfg = build_config(["defaults", "tiny-llama"], parse_overrides(["--num_train_epochs", "2", "--deepspeed"]))
    assert cfg["deepspeed"] == "configs/deepspeed/zero2.json" and cfg["num_train_epochs"] == 2
    cfg = build_config(["defaults", "llama-7b"], parse_overrides(["--deepspeed"]))
    assert cfg["deepspeed"] == "configs/deepspeed/zero3.json"           # the model block's default
    cfg = build_config(["defaults", "tiny-llama"], parse_overrides(["--deepspeed", "configs/deepspeed/zero3.json"]))
    assert cfg["deepspeed"] == "configs/deepspeed/zero3.json"           # a path still works
    assert build_config(["defaults"], parse_overrides(["--deepspeed", "false"]))["deepspeed"] is None
