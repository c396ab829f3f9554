"""Dedup stages through the real executor: multi-shard runs, worker-count independence,
keeper policy, cluster review, the incremental index and SFT-aware keys."""
import random

import orjson
import pytest

from thresher.config import validate
from thresher.dedup.synth import mutate
from thresher.executor.runner import run_recipe
from thresher.inspect import find_dup_cluster
from thresher.io.readers import iter_records


def _write(path, rows):
    with open(path, "wb") as f:
        for r in rows:
            f.write(orjson.dumps(r) + b"\n")


def _run(tmp_path, name, inp, stages, workers=1, shard_bytes="4KB", source="web", mapping=None):
    inputs = [{"path": str(inp), "name": source, **({"mapping": mapping} if mapping else {})}]
    recipe = {"inputs": inputs, "output": {"dir": str(tmp_path / name), "format": "jsonl"},
              "executor": {"workers": workers, "shard_bytes": shard_bytes}, "stages": stages}
    run_recipe(validate(recipe))
    out = tmp_path / name
    kept = {r.id: r for r in iter_records(str(out / "kept"))}
    rejected = list(iter_records(str(out / "rejected")))
    return out, kept, rejected


@pytest.fixture
def corpus(tmp_path, zh_docs):
    """60 distinct docs; doc 0 has an exact copy and a width/punct variant far away,
    docs 1..5 have lightly edited copies at the end of the file (other shards), and
    doc 6 -> 6a -> 6b is a chain of edits."""
    rng = random.Random(5)
    docs = zh_docs(60, 250, seed=11)
    rows = [{"text": d} for d in docs]
    rows.append({"text": docs[0]})
    rows.append({"text": docs[0].replace("，", ",").replace("。", ".") + "  "})
    for i in range(1, 6):
        rows.append({"text": mutate(docs[i], 0.01, rng)})
    a = mutate(docs[6], 0.02, rng)
    rows.append({"text": a})
    rows.append({"text": mutate(a, 0.02, rng)})
    p = tmp_path / "in.jsonl"
    _write(p, rows)
    return p, docs


STAGES = [{"exact_dedup": {}}, {"minhash_dedup": {"threshold": 0.7, "ngram": 5}}]


def _decisions(rejected):
    return sorted((r.id, r.meta["reject"]["reason"], r.meta["reject"]["dup_of"]) for r in rejected)


def test_exact_and_near_dups_across_shards_independent_of_workers(tmp_path, corpus):
    inp, docs = corpus
    out1, kept1, rej1 = _run(tmp_path, "w1", inp, STAGES, workers=1)
    out2, kept2, rej2 = _run(tmp_path, "w2", inp, STAGES, workers=2)
    assert sorted(kept1) == sorted(kept2)
    assert _decisions(rej1) == _decisions(rej2)
    reasons = sorted(r.meta["reject"]["reason"] for r in rej1)
    # copy + normalised variant of doc 0 are exact; 5 edited copies + the 2-step chain are near dups
    assert reasons == ["exact_dup"] * 2 + ["near_dup"] * 7
    assert len(kept1) == 60
    manifest = orjson.loads((out1 / "manifest.json").read_bytes())
    assert manifest["conserved"] and manifest["counts"]["in"] == 69
    assert len(list((out1 / "work").glob("global-01-minhash_dedup/artifacts/*.bands.npy"))) > 3  # many shards


def test_rejections_name_the_kept_record_and_cluster_is_reviewable(tmp_path, corpus):
    inp, docs = corpus
    out, kept, rej = _run(tmp_path, "r", inp, STAGES)
    for r in rej:
        info = r.meta["reject"]
        assert info["dup_of"] in kept
        assert 0 < info["similarity"] <= 1 and info["value"] == info["similarity"]
    near = [r for r in rej if r.meta["reject"]["reason"] == "near_dup"]
    cluster = find_dup_cluster(str(out), near[0].meta["reject"]["dup_of"])
    assert cluster[0][0] == "kept" and len(cluster) >= 2
    keeper = kept[near[0].meta["reject"]["dup_of"]]
    assert keeper.meta["signals"]["minhash_dedup"]["dups"] >= 1


def test_keep_longest_vs_source_priority(tmp_path, zh_docs):
    doc = zh_docs(1, 300, seed=3)[0]
    p1, p2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write(p1, [{"text": doc[:280]}])  # shorter copy in the preferred source
    _write(p2, [{"text": doc}])
    for keep, want_source in (("longest", "wiki"), ("source", "curated")):
        recipe = {"inputs": [{"path": str(p1), "name": "curated"}, {"path": str(p2), "name": "wiki"}],
                  "output": {"dir": str(tmp_path / keep), "format": "jsonl"}, "executor": {"workers": 1},
                  "stages": [{"minhash_dedup": {"threshold": 0.7, "keep": keep, "source_priority": ["curated"]}}]}
        run_recipe(validate(recipe))
        kept = list(iter_records(str(tmp_path / keep / "kept")))
        assert [r.source for r in kept] == [want_source]


def test_keep_highest_score(tmp_path, zh_docs):
    doc = zh_docs(1, 300, seed=4)[0]
    rows = [{"text": doc, "scores": {"quality": 0.2}},
            {"text": doc + "补充", "scores": {"quality": 0.9}},
            {"text": doc + "。", "scores": {"quality": 0.5}}]
    p = tmp_path / "s.jsonl"
    _write(p, rows)
    _, kept, rej = _run(tmp_path, "score", p, [{"minhash_dedup": {"threshold": 0.7, "keep": "score"}}],
                        mapping={"keep_fields": ["scores"]})
    assert [r.meta["scores"]["quality"] for r in kept.values()] == [0.9]
    assert len(rej) == 2


def test_incremental_index(tmp_path, zh_docs):
    rng = random.Random(8)
    old = zh_docs(30, 250, seed=21)
    new_unique = zh_docs(10, 250, seed=22)
    p_old, p_new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    _write(p_old, [{"text": d} for d in old])
    _write(p_new, [{"text": mutate(d, 0.01, rng)} for d in old[:5]] + [{"text": d} for d in new_unique])
    idx = str(tmp_path / "index")
    stage = {"threshold": 0.7}
    _, kept_old, _ = _run(tmp_path, "old", p_old, [{"minhash_dedup": {**stage, "write_index": idx}}], source="corpus")
    assert len(kept_old) == 30
    _, kept_new, rej = _run(tmp_path, "new", p_new, [{"minhash_dedup": {**stage, "index_dir": idx, "write_index": idx}}],
                            workers=2, source="batch2")
    assert sorted(r.meta["reject"]["dup_of"] for r in rej) == sorted(kept_old[k].id for k in kept_old
                                                                       if kept_old[k].text in old[:5])
    assert len(kept_new) == 10
    # the batch was appended: a third run of the same batch finds everything
    _, kept_again, rej_again = _run(tmp_path, "again", p_new, [{"minhash_dedup": {**stage, "index_dir": idx}}],
                                    source="batch3")
    assert len(kept_again) == 0 and len(rej_again) == 15


def test_index_parameter_mismatch_is_an_error(tmp_path, zh_docs):
    p = tmp_path / "x.jsonl"
    _write(p, [{"text": d} for d in zh_docs(3)])
    idx = str(tmp_path / "index")
    _run(tmp_path, "a", p, [{"minhash_dedup": {"write_index": idx}}])
    with pytest.raises(Exception, match="different parameters"):
        _run(tmp_path, "b", p, [{"minhash_dedup": {"index_dir": idx, "num_perm": 64}}])


def test_sft_instruction_key(tmp_path):
    q = "请解释一下什么是机器学习，并举一个生活中的例子说明它是如何工作的。"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "机器学习是……回答一"}]},
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "完全不同的第二个回答，长一些。"}]},
            {"messages": [{"role": "user", "content": "今天天气怎么样？"}, {"role": "assistant", "content": "晴。"}]}]
    p = tmp_path / "sft.jsonl"
    _write(p, rows)
    _, kept, rej = _run(tmp_path, "conv", p, [{"exact_dedup": {"key_field": "conversation"}}])
    assert len(kept) == 3
    _, kept, rej = _run(tmp_path, "instr", p, [{"exact_dedup": {"key_field": "instruction"}}])
    assert len(kept) == 2 and rej[0].meta["reject"]["reason"] == "exact_dup"
    assert "完全不同" in next(r for r in kept.values() if q in r.messages[0]["content"]).messages[1]["content"]


def test_exact_t2s_folds_key_only(tmp_path):
    rows = [{"text": "這是一個關於資料處理的測試句子，用來檢查繁體轉換。"}, {"text": "这是一个关于资料处理的测试句子，用来检查繁体转换。"}]
    p = tmp_path / "t.jsonl"
    _write(p, rows)
    _, kept, rej = _run(tmp_path, "not2s", p, [{"exact_dedup": {}}])
    assert len(kept) == 2
    _, kept, rej = _run(tmp_path, "t2s", p, [{"exact_dedup": {"t2s": True}}])
    assert len(kept) == 1 and len(rej) == 1
    assert {next(iter(kept.values())).text, rej[0].text} == {rows[0]["text"], rows[1]["text"]}  # text untouched


def test_line_dedup_strips_boilerplate(tmp_path, zh_docs):
    docs = zh_docs(8, 120, seed=30)
    footer = "版权所有 © 2023 某某网站 保留所有权利"
    rows = [{"text": d + "\n" + footer} for d in docs] + [{"text": footer}]
    p = tmp_path / "l.jsonl"
    _write(p, rows)
    out, kept, rej = _run(tmp_path, "lines", p, [{"line_dedup": {"min_docs": 3}}], shard_bytes="1KB")
    assert len(kept) == 8 and all(footer not in r.text for r in kept.values())
    assert rej[0].meta["reject"]["reason"] == "boilerplate_only"
    assert sorted(r.text for r in kept.values()) == sorted(docs)


def test_decisions_keyed_on_ids_independent_of_shard_layout(tmp_path, corpus):
    """Exact copies have distinct ids (origin hash); the decision names records by id,
    keeper ties go to the smallest id, so the shard layout does not change the outcome."""
    inp, docs = corpus
    _, kept_small, rej_small = _run(tmp_path, "small", inp, STAGES, shard_bytes="2KB")
    _, kept_big, rej_big = _run(tmp_path, "big", inp, STAGES, shard_bytes="1MB")
    assert sorted(kept_small) == sorted(kept_big) and _decisions(rej_small) == _decisions(rej_big)
    copies = [r for r in list(kept_small.values()) + rej_small if r.text == docs[0]]
    assert len(copies) == 2 and copies[0].id != copies[1].id
    assert copies[0].id.split(".")[0] == copies[1].id.split(".")[0]  # same content hash prefix
    assert all("_dedup_key" not in r.meta for r in list(kept_small.values()) + rej_small)


@pytest.mark.parametrize("stage", ["exact_dedup", "minhash_dedup"])
def test_keeper_tie_goes_to_smallest_id(tmp_path, zh_docs, stage):
    docs = zh_docs(4, 200, seed=40)
    rows = [{"text": docs[0]}, {"text": docs[1]}, {"text": docs[0]}, {"text": docs[2]}, {"text": docs[0]}]
    p = tmp_path / "tie.jsonl"
    _write(p, rows)
    _, kept, rej = _run(tmp_path, stage, p, [{stage: {}}], shard_bytes="500B")
    copies = sorted([r.id for r in kept.values() if r.text == docs[0]] + [r.id for r in rej])
    assert len(copies) == 3 and len(rej) == 2
    assert [r.id for r in kept.values() if r.text == docs[0]] == [copies[0]]
    assert {r.meta["reject"]["dup_of"] for r in rej} == {copies[0]}


def test_duplicate_ids_are_refused():
    import numpy as np
    from thresher.dedup.base import check_unique_ids, id_array
    check_unique_ids(id_array(["web/a.1", "web/a.2"]), "x")
    with pytest.raises(ValueError, match="occurs 2 times"):
        check_unique_ids(id_array(["web/a.1", "web/b.1", "web/a.1"]), "x")
    assert id_array([]).dtype.kind == "S" and len(np.sort(id_array(["b", "a"]))) == 2
