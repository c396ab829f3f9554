"""The typed training config: wrong configs fail at load naming the key; the YAML
defaults block is the dataclass defaults."""
import dataclasses
import os

import pytest
import yaml

from thresher.training.cli import main
from thresher.training.config import (TrainConfig, TrainConfigError, build_config, default_config,
                                      default_config_dir, parse_overrides, resolve_config)

WRONG = [
    # (overrides, text the error must contain)
    (["--lerning_rate", "1e-4"], ["'lerning_rate'", "did you mean 'learning_rate'"]),
    (["--set", "lora.rr=4"], ["'lora.rr'", "did you mean 'r'"]),
    (["--set", "dpo.loss_typ=ipo"], ["'dpo.loss_typ'", "did you mean 'loss_type'"]),
    (["--template", "chatmlx"], ["template", "'chatmlx'", "did you mean 'chatml'"]),
    (["--tuning", "qlor"], ["tuning", "'qlor'"]),
    (["--set", "dpo.loss_type=kto"], ["dpo.loss_type", "'kto'"]),
    (["--set", "deepspeed={zero_optimization: {stage: 4}}"], ["deepspeed.zero_optimization.stage", "4"]),
    (["--learning_rate", "0"], ["learning_rate", "out of range"]),
    (["--learning_rate", "5"], ["learning_rate", "out of range"]),
    (["--warmup_ratio", "1.5"], ["warmup_ratio", "out of range"]),
    (["--per_device_train_batch_size", "-2"], ["per_device_train_batch_size", "out of range"]),
    (["--per_device_train_batch_size", "two"], ["per_device_train_batch_size", "expected int"]),
    (["--set", "datasets=[{a: {val_splt: 0.1}}]"], ["'val_splt'", "did you mean 'val_split'"]),
    (["--set", "datasets=[{a: {fraction: 2}}]"], ["datasets.a.fraction", "out of range"]),
    (["--set", "curriculum.key=scores.difficulty"], ["curriculum.key", "'scores.difficulty'",
                                                     "scores.difficulty_heuristic"]),
    (["--set", "rounds.difficulty_key=difficulty_heuristic"], ["rounds.difficulty_key", "not a score path"]),
    (["--set", "rounds.sft={lerning_rate: 1.0e-4}"], ["rounds.sft", "'lerning_rate'"]),
    (["--set", "eval.max_new_token=8"], ["'eval.max_new_token'", "did you mean 'max_new_tokens'"]),
]


@pytest.mark.parametrize("overrides,needles", WRONG, ids=[w[0][-1][:30] for w in WRONG])
def test_wrong_config_fails_at_load_naming_the_key(overrides, needles):
    with pytest.raises(TrainConfigError) as e:
        build_config(["defaults", "tiny-llama"], parse_overrides(overrides))
    msg = str(e.value)
    for n in needles:
        assert n in msg, (n, msg)


def test_a_wrong_block_in_a_config_dir_is_named(tmp_path):
    (tmp_path / "c.yaml").write_text("defaults: {seed: 1}\nmy-model:\n  lora: {r: 4, alpah: 8}\n")
    with pytest.raises(TrainConfigError, match=r"config block 'my-model'.*'lora.alpah'.*did you mean 'alpha'"):
        build_config(["defaults", "my-model"], config_dir=str(tmp_path))


def test_custom_score_key_is_declared_with_score_keys(tmp_path):
    ov = parse_overrides(["--set", "score_keys=[quality_custom]", "--set", "curriculum.key=scores.quality_custom"])
    assert build_config(["defaults"], ov)["curriculum"]["key"] == "scores.quality_custom"


def test_config_built_in_code_is_checked_and_filled():
    with pytest.raises(TrainConfigError, match="'lora.rr'"):
        resolve_config({"lora": {"rr": 4}})
    cfg = resolve_config({"model_name": "m", "eval": {"generation_prompts": []}})
    assert cfg["per_device_train_batch_size"] == 4 and cfg["warmup_ratio"] == 0.03
    assert cfg["eval"] == {"max_new_tokens": 128, "generation_prompts": []}


def test_yaml_defaults_block_equals_the_dataclass_defaults():
    block = yaml.safe_load(open(os.path.join(default_config_dir(), "config.yaml"), encoding="utf-8"))["defaults"]
    code = default_config()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(block) <= fields, sorted(set(block) - fields)

    def same(path, a, b):
        if isinstance(a, dict) and isinstance(b, dict) and path.split(".")[-1] in {
                "lora", "curriculum", "dpo", "rounds", "eval"}:
            assert set(a) <= set(b), (path, sorted(set(a) - set(b)))
            for k in a:
                same(f"{path}.{k}", a[k], b[k])
        else:
            assert a == b, f"{path}: YAML {a!r} != dataclass {b!r}"

    for k, v in block.items():
        same(k, v, code[k])
    # the three the issue found drifting
    assert code["per_device_train_batch_size"] == 4 and code["warmup_ratio"] == 0.03
    assert code["eval"]["max_new_tokens"] == 128


def test_every_shipped_block_loads():
    for name in ("tiny-llama", "bloom-zh-3b", "redpajama-3b", "llama-7b", "baichuan-7b", "qwen-7b", "lora",
                 "qlora", "packed", "zero2", "zero3", "zero3-offload", "datasets-demo", "datasets-tiers",
                 "rounds-demo", "datasets-default-run", "datasets-builtin"):
        build_config(["defaults", name])


def test_cli_typo_exits_2_naming_the_key(capsys):
    assert main(["show-config", "--configs", "defaults", "tiny-llama", "--lerning_rate", "1e-4"]) == 2
    err = capsys.readouterr().err
    assert "'lerning_rate'" in err and "did you mean 'learning_rate'" in err
