"""Every stage parameter is checked when the recipe is loaded (issue 13): wrong values fail
with the full key path, optional dependencies are named, ``kinds:`` holds for global stages."""
import glob
import os
import subprocess
import sys

import orjson
import pytest

from thresher.config import load_recipe, validate
from thresher.executor.runner import run_recipe
from thresher.io.readers import iter_records
from thresher.pipeline import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _recipe(tmp_path, stages):
    return {"inputs": [str(tmp_path / "in.jsonl")], "output": {"dir": str(tmp_path / "out")}, "stages": stages}


# (stages, substrings the message must contain)
WRONG = [
    ([{"exact_dedup": {"bogus": 1}}], ["stages[0].exact_dedup", "bogus"]),
    ([{"minhash_dedup": {"treshold": 0.8}}], ["stages[0].minhash_dedup", "did you mean 'threshold'"]),
    (["exact_dedup", {"pii_masker": {"action": "drop"}}], ["stages[1].pii_masker.action", "'drop' not one of mask, delete"]),
    ([{"pii_masker": {"types": ["email", "fone"]}}], ["stages[0].pii_masker.types[1]", "did you mean 'phone'"]),
    ([{"sft_turn_filter": {"action": "flagg"}}], ["stages[0].sft_turn_filter.action", "did you mean 'flag'"]),
    ([{"sft_turn_filter": {"check": ["refusall"]}}], ["stages[0].sft_turn_filter.check[0]", "did you mean 'refusal'"]),
    ([{"sft_turn_filter": {"repeat_similarity": 1.5}}], ["sft_turn_filter.repeat_similarity", "not in [0, 1]"]),
    ([{"sft_turn_filter": {"on_turn_failure": "skip"}}], ["sft_turn_filter.on_turn_failure", "'skip'"]),
    ([{"blacklist_filter": {"categories": ["porn", "gambl"]}}], ["blacklist_filter.categories[1]", "gambling"]),
    ([{"blacklist_filter": {"thresholds": {"weapons": [2, 2.0]}, "categories": ["porn"]}}],
     ["blacklist_filter.thresholds.weapons", "not an enabled category"]),
    ([{"blacklist_filter": {"default_threshold": [2]}}], ["blacklist_filter.default_threshold", "list of 2"]),
    ([{"blacklist_filter": {"extra_lists": ["no/such/list.txt"]}}], ["blacklist_filter.extra_lists[0]", "not an existing file"]),
    ([{"spam_filter": {"lists": ["spamm"]}}], ["spam_filter.lists[0]", "did you mean 'spam'"]),
    ([{"spam_filter": {"keyword_stuffing": [8, 2.0, 4]}}], ["spam_filter.keyword_stuffing[1]", "not in [0, 1]"]),
    ([{"zh_quality_filter": {"min_cjk_ratio": 1.3}}], ["zh_quality_filter.min_cjk_ratio", "not in [0, 1]"]),
    ([{"zh_quality_filter": {"min_chars": -5}}], ["zh_quality_filter.min_chars", "-5"]),
    ([{"zh_quality_filter": {"top_ngrams": [[2, 0.2], [0, 0.1]]}}], ["zh_quality_filter.top_ngrams[1][0]"]),
    ([{"language_filter": {"min_score": 2}}], ["language_filter.min_score"]),
    ([{"html_stripper": {"dialogue_mode": "strip"}}], ["html_stripper.dialogue_mode", "residue, web, off"]),
    ([{"minhash_dedup": {"threshold": 0}}], ["minhash_dedup.threshold", "not in (0, 1]"]),
    ([{"minhash_dedup": {"verify": "exact"}}], ["minhash_dedup.verify", "none, signature"]),
    ([{"exact_dedup": {"keep": "longer"}}], ["exact_dedup.keep", "did you mean 'longest'"]),
    ([{"exact_dedup": {"partitions": -1}}], ["exact_dedup.partitions"]),
    ([{"semantic_dedup": {"embedder": {"backend": "hashed", "dimm": 64}}}],
     ["semantic_dedup.embedder.dimm", "did you mean 'dim'"]),
    ([{"semantic_dedup": {"embedder": {"backend": "e6"}}}], ["semantic_dedup.embedder.backend", "'e6' not one of hashed, e5"]),
    ([{"semantic_dedup": {"eps": 1.5, "embedder": {"backend": "hashed"}}}], ["semantic_dedup.eps"]),
    ([{"cluster": {"embedder": {"backend": "tfidf_svd", "max_chars": 0}}}], ["cluster.embedder.max_chars"]),
    ([{"cluster": {"k_min": 0}}], ["cluster.k_min"]),
    ([{"tier": {"scorers": []}}], ["stages[0].tier", "scorers"]),
    ([{"tier": {"scorers": ["quality_heuristic"], "combine": "sum"}}], ["tier.combine", "max, mean, min"]),
    ([{"tier": {"scorers": ["q"], "tiers": [{"name": "gold", "quantil": 0.8}]}}],
     ["tier.tiers[0].quantil", "did you mean 'quantile'"]),
    ([{"tier": {"scorers": ["q"], "quotas": {"web": 1.5}}}], ["tier.quotas.web"]),
    ([{"tier": {"scorers": ["q"], "sft_select": {"tokenz": 10}}}], ["tier.sft_select.tokenz", "tokens"]),
    ([{"line_dedup": {"min_docs": 0}}], ["line_dedup.min_docs"]),
    ([{"boilerplate_trimmer": {"max_fraction": 2.0}}], ["boilerplate_trimmer.max_fraction"]),
    ([{"exact_dedup": {"kinds": ["image"]}}], ["exact_dedup.kinds"]),
    ([{"quality_fasttext": {"model_path": "no/such/model.bin"}}], ["quality_fasttext.model_path", "train-quality"]),
    (["ifd"], ["stages[0].ifd.model_path", "never downloads"]),
    ([{"quality_reference": {"reference": ["no/such/books"]}}], ["quality_reference.reference[0]", "not an existing"]),
    ([{"quality_reference": {"reference": [os.path.join(ROOT, "configs")], "holdout": 1.5}}], ["quality_reference.holdout"]),
    ([{"quality_heuristic": {"target_chars": 0}}], ["quality_heuristic.target_chars"]),
]


@pytest.mark.parametrize("stages,expect", WRONG, ids=[str(i) for i in range(len(WRONG))])
def test_wrong_recipe_fails_at_load_naming_the_key(tmp_path, stages, expect):
    with pytest.raises(ConfigError) as e:
        validate(_recipe(tmp_path, stages))
    for part in expect:
        assert part in str(e.value), str(e.value)


def test_tier_scorers_from_the_recipe_tiers_section_are_accepted(tmp_path):
    r = _recipe(tmp_path, ["tier"])
    r["tiers"] = {"scorers": ["quality_heuristic"]}
    validate(r)
    with pytest.raises(ConfigError, match="scorers"):
        validate(_recipe(tmp_path, ["tier"]))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_shipped_recipes_load(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert load_recipe(path)["stages"]


def test_kinds_on_a_global_stage_leaves_other_kinds_untouched(tmp_path):
    rows = [{"id": "t1", "text": "同一段重复的文本内容。"}, {"id": "t2", "text": "同一段重复的文本内容。"},
            {"id": "s1", "messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]},
            {"id": "s2", "messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]}]
    with open(tmp_path / "in.jsonl", "wb") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    def run(name, params):
        recipe = {"inputs": [str(tmp_path / "in.jsonl")], "output": {"dir": str(tmp_path / name), "format": "jsonl"},
                  "executor": {"workers": 1}, "stages": [{"exact_dedup": params}]}
        run_recipe(validate(recipe))
        return sorted(r.kind for r in iter_records(str(tmp_path / name / "kept")))

    assert run("all", {}) == ["sft", "text"]  # one of each pair removed
    assert run("sft_only", {"kinds": ["sft"]}) == ["sft", "text", "text"]  # text duplicates pass through
    assert run("text_only", {"kinds": ["text"]}) == ["sft", "sft", "text"]


def _in_subprocess(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_missing_optional_dependency_is_named_with_its_extra():
    # sklearn hidden: the cluster stage (k-means) says what to install
    p = _in_subprocess(
        "import sys; sys.modules['sklearn'] = None\n"
        "from thresher.config import validate\n"
        "try:\n"
        "    validate({'inputs': ['x.jsonl'], 'output': {'dir': 'o'}, 'stages': ['exact_dedup', 'cluster']})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n")
    assert "ConfigError stages[1].cluster: stage 'cluster' needs the optional dependency 'sklearn' " \
           "(pip install 'thresher[score]')" in p.stdout, p.stdout + p.stderr


def test_stage_of_a_package_that_failed_to_import_is_not_unknown():
    # a dependency missing at import time: the stage name is still known, with what is missing
    p = _in_subprocess(
        "import sys; sys.modules['xxhash'] = None\n"
        "from thresher.config import validate\n"
        "try:\n"
        "    validate({'inputs': ['x.jsonl'], 'output': {'dir': 'o'}, 'stages': ['minhash_dedup']})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n")
    assert "ConfigError stages: stage 'minhash_dedup' needs the dependency 'xxhash'" in p.stdout, p.stdout + p.stderr
    assert "unknown stage" not in p.stdout
