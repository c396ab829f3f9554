"""``thresher train preview``: rendered text, ids, trained tokens and the tok(render) check."""
import json
import os

import pytest

from training_util import corpus, sft_records, write_tier
from thresher.training.cli import main
from thresher.training.tiny import save_llama_sp_tokenizer, train_llama_sp

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


@pytest.fixture(scope="module")
def sp_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sp-tok"))
    save_llama_sp_tokenizer(d, train_llama_sp(corpus(600), vocab_size=800), legacy=True)
    return d


def _preview(capsys, tok_dir, data, template, n, *extra):
    assert main(["preview", "--configs", "defaults", "tiny-llama", "--model_name", tok_dir, "--template", template,
                 "--set", f"datasets=[{{d: {{input_file_path: {data}}}}}]", "--n", str(n), *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("template", ["alpaca", "moss", "baichuan"])
def test_preview_json_sentencepiece(sp_dir, tmp_path, capsys, template):
    manifest = write_tier(tmp_path / "t", sft_records(6, multi_turn=True))
    rep = json.loads(_preview(capsys, sp_dir, manifest, template, 4, "--json"))
    assert rep["n"] == 4 and rep["all_ids_equal_tok_render"] is True and rep["fast"] is True
    s = rep["samples"][0]
    assert len(s["input_ids"]) == len(s["tokens"]) == len(s["trained"]) == s["n_tokens"]
    assert 0 < s["n_trained"] < s["n_tokens"]
    assert s["text"].count("你是一个助手。") == 1 and "你是一个助手。" not in "".join(s["trained_text"])


def test_preview_text_marks_trained_runs(tiny_dir, tmp_path, capsys):
    manifest = write_tier(tmp_path / "t", sft_records(3))
    out = _preview(capsys, tiny_dir, manifest, "open-assistant", 2)
    assert "ids == tok(render): True" in out and "⟦北京是中国的首都。</s>⟧" in out


@pytest.fixture(scope="module")
def sp_nonlegacy_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sp-tok-nonlegacy"))
    save_llama_sp_tokenizer(d, train_llama_sp(corpus(600), vocab_size=800), legacy=False)
    return d


def _write_convs(path, convs):
    with open(path, "w", encoding="utf-8") as f:
        for c in convs:
            f.write(json.dumps({"messages": c}, ensure_ascii=False) + "\n")
    return str(path)


@pytest.mark.parametrize("source", ["shipped", pytest.param("real", marks=pytest.mark.shared)])
def test_preview_json_every_template_both_families(source, sp_dir, sp_nonlegacy_dir, tiny_dir, tmp_path, capsys):
    """``train preview --json`` reports ids == tok(render) for every template, byte-level BPE and
    SentencePiece (legacy and not), on 100+ conversations: composed from our shipped samples,
    or real ones from ../shared/data."""
    from test_fidelity import NAMES, real_conversations, shipped_many
    if source == "real":
        if not os.path.isdir(SHARED):
            pytest.skip("../shared/data not present")
        convs = real_conversations()
    else:
        convs = shipped_many()
    assert len(convs) >= 100
    data = _write_convs(tmp_path / "convs.jsonl", convs)
    for tok_dir in (tiny_dir, sp_dir, sp_nonlegacy_dir):
        for name in NAMES:
            rep = json.loads(_preview(capsys, tok_dir, data, name, len(convs), "--json", "--max_length", "1000000"))
            assert rep["n"] == len(convs) and rep["n_dropped"] == 0, (tok_dir, name)
            assert rep["n_ids_equal_tok_render"] == len(convs) and rep["all_ids_equal_tok_render"] is True, \
                (tok_dir, name, rep["n_ids_equal_tok_render"])


@pytest.mark.shared
def test_preview_real_data_both_families(sp_dir, tiny_dir, capsys):
    if not os.path.isdir(SHARED):
        pytest.skip("../shared/data not present")
    data = os.path.join(SHARED, "llamafactory-demo", "alpaca_zh_demo.json")
    for tok_dir in (sp_dir, tiny_dir):
        rep = json.loads(_preview(capsys, tok_dir, data, "alpaca-zh", 100, "--json"))
        assert rep["n"] == 100 and rep["all_ids_equal_tok_render"] is True
