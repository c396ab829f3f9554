"""Recipe validation: errors name the bad key."""
import pytest

from foundation_util import PLUGIN
from thresher.config import load_recipe, parse_size, validate
from thresher.pipeline import ConfigError


def base(**kw):
    r = {"plugins": [PLUGIN], "inputs": [{"path": "x.jsonl"}], "output": {"dir": "/tmp/o"},
         "stages": [{"t_min_chars": {"min_chars": 3}}]}
    r.update(kw)
    return r


@pytest.mark.parametrize("recipe,fragment", [
    (base(bogus=1), "recipe.bogus"),
    (base(inputs=[{"path": "x", "fromat": "jsonl"}]), "inputs[0].fromat"),
    (base(inputs=[{"path": "x", "format": "xml"}]), "inputs[0].format"),
    (base(output={"dir": "o", "format": "csv"}), "output.format"),
    (base(executor={"workers": 0}), "executor.workers"),
    (base(executor={"type": "spark"}), "executor.type"),
    (base(stages=[{"t_min_chars": {"min_char": 3}}]), "stages[0].t_min_chars: unknown parameter 'min_char' (did you mean 'min_chars'?)"),
    (base(stages=[{"t_min_chars": {"min_chars": "three"}}]), "stages[0].t_min_chars.min_chars: expected int"),
    (base(stages=["t_min_charz"]), "unknown stage 't_min_charz'; did you mean t_min_chars"),
    (base(output={}), "output.dir"),
    (base(inputs=[]), "inputs"),
])
def test_errors_name_the_bad_key(recipe, fragment):
    with pytest.raises(ConfigError) as e:
        validate(recipe)
    assert fragment in str(e.value)


def test_defaults_filled_and_sizes_parsed():
    r = validate(base(executor={"shard_bytes": "2MB"}))
    assert r["executor"]["shard_bytes"] == 2 << 20 and r["output"]["format"] == "jsonl.zst"
    assert parse_size("64KiB", "k") == 64 << 10


def test_invalid_yaml_is_a_config_error(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("inputs: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_recipe(str(p))


def test_kinds_and_label_are_universal_stage_keys():
    from thresher.config import build_stages
    stages = build_stages(validate(base(stages=[
        {"t_min_chars": {"min_chars": 50, "kinds": ["text"], "label": "len_text"}},
        {"t_min_chars": {"min_chars": 2, "kinds": ["sft", "dpo"], "label": "len_sft"}}])))
    assert [(s.label, s.applies_to) for s in stages] == [("len_text", ("text",)), ("len_sft", ("sft", "dpo"))]
    twice = build_stages(validate(base(stages=["t_min_chars", "t_min_chars"])))
    assert [s.label for s in twice] == ["t_min_chars", "t_min_chars#2"]
    with pytest.raises(ConfigError, match="kinds"):
        validate(base(stages=[{"t_min_chars": {"kinds": ["video"]}}]))
