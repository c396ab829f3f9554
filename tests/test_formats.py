"""Format detection and conversion: every layout the issue lists, no per-source code."""
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from thresher.io.formats import FormatError, convert
from thresher.io.readers import Quarantined, iter_records, plan_shards, read_shard
from thresher.records import Record


def one(obj, **kw):
    recs = convert(obj, "src", kw.get("mapping"))
    assert len(recs) == 1
    return recs[0]


def test_text_and_content():
    assert one({"text": "你好世界"}).text == "你好世界"
    r = one({"content": "正文", "url": "x"})
    assert (r.kind, r.text) == ("text", "正文")


def test_id_data_alternating_turns():
    r = one({"id": "7", "data": ["问1", "答1", "问2", "答2"]})
    assert r.kind == "sft"
    assert [m["role"] for m in r.messages] == ["user", "assistant", "user", "assistant"]
    assert r.meta["orig_id"] == "7"


def test_alpaca_joins_input_with_newline():
    r = one({"instruction": "翻译成英文", "input": "你好", "output": "Hello"})
    assert r.messages == [{"role": "user", "content": "翻译成英文\n你好"}, {"role": "assistant", "content": "Hello"}]
    r = one({"instruction": "讲个笑话", "input": "", "output": "好的。"})
    assert r.messages[0]["content"] == "讲个笑话"


def test_sharegpt_messages_firefly_and_system():
    sg = one({"conversations": [{"from": "system", "value": "你是助手"}, {"from": "human", "value": "嗨"},
                                {"from": "gpt", "value": "你好"}]})
    assert [m["role"] for m in sg.messages] == ["system", "user", "assistant"]
    msgs = one({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "system": "sys"})
    assert msgs.messages[0] == {"role": "system", "content": "sys"}
    ff = one({"conversation": [{"human": "q1", "assistant": "a1"}, {"human": "q2", "assistant": "a2"}]})
    assert [m["content"] for m in ff.messages] == ["q1", "a1", "q2", "a2"]


def test_moss_turns_strip_markers():
    obj = {"meta_instruction": "You are MOSS", "chat": {
        "turn_2": {"Human": "<|Human|>: 第二问<eoh>\n", "MOSS": "<|MOSS|>: 第二答<eom>\n"},
        "turn_1": {"Human": "<|Human|>: 第一问<eoh>\n", "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
                   "MOSS": "<|MOSS|>: 第一答<eom>\n"}}}
    r = one(obj)
    assert [m["content"] for m in r.messages] == ["You are MOSS", "第一问", "第一答", "第二问", "第二答"]


def test_oasst_tree_flattens_to_threads():
    tree = {"prompt": {"text": "根问题", "role": "prompter", "replies": [
        {"text": "回答A", "role": "assistant", "replies": [{"text": "追问", "role": "prompter", "replies": []}]},
        {"text": "回答B", "role": "assistant", "replies": []}]}}
    recs = convert(tree, "oa", origin="f:0")
    assert [[m["content"] for m in r.messages] for r in recs] == [["根问题", "回答A", "追问"], ["根问题", "回答B"]]
    assert len({r.id for r in recs}) == 2


def test_dpo_variants():
    r = one({"prompt": "问", "chosen": "好答", "rejected": "坏答"})
    assert (r.kind, r.messages[-1]["content"], r.chosen, r.rejected) == ("dpo", "问", "好答", "坏答")
    lists = one({"chosen": [{"role": "user", "content": "问"}, {"role": "assistant", "content": "好"}],
                 "rejected": [{"role": "user", "content": "问"}, {"role": "assistant", "content": "坏"}]})
    assert lists.messages == [{"role": "user", "content": "问"}] and (lists.chosen, lists.rejected) == ("好", "坏")
    lf = one({"conversations": [{"from": "human", "value": "问"}], "chosen": {"from": "gpt", "value": "好"},
              "rejected": {"from": "gpt", "value": "坏"}})
    assert (lf.chosen, lf.rejected) == ("好", "坏")


def test_mapping_overrides_detection():
    r = one({"q": "问题", "a": "答案"}, mapping={"format": "alpaca", "fields": {"instruction": "q", "output": "a"}})
    assert [m["content"] for m in r.messages] == ["问题", "答案"]


def test_unrecognised_and_bad_roles_raise():
    with pytest.raises(FormatError):
        convert({"foo": 1}, "s")
    with pytest.raises(FormatError):
        convert({"conversations": [{"from": "alien", "value": "x"}]}, "s")


def test_ids_stable_and_unique_per_origin():
    a = convert({"text": "同样的内容"}, "s", origin="f:0")[0]
    b = convert({"text": "同样的内容"}, "s", origin="f:10")[0]
    again = convert({"text": "同样的内容"}, "s", origin="f:0")[0]
    assert a.id == again.id and a.id != b.id
    assert a.id.rsplit(".", 1)[0] == b.id.rsplit(".", 1)[0]  # same content-hash prefix
    assert Record.from_json(a.to_json()) == a


def _write(path, rows, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "jsonl.zst", "json", "parquet"])
def test_containers(tmp_path, suffix):
    rows = [{"instruction": f"问题{i}", "output": f"答案{i}"} for i in range(50)]
    path = tmp_path / f"data.{suffix}"
    if suffix == "jsonl":
        _write(path, rows)
    elif suffix == "jsonl.gz":
        _write(path, rows, gzip.open)
    elif suffix == "jsonl.zst":
        path.write_bytes(zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    elif suffix == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=20)
    recs = list(iter_records(str(path)))
    assert [r.messages[0]["content"] for r in recs] == [f"问题{i}" for i in range(50)]
    assert all(r.source == "data" for r in recs)


def test_gb18030_text_is_detected(tmp_path):
    lines = ["中文新闻第一条，内容较长一些。", "第二条新闻：体育赛事结果公布。"]
    path = tmp_path / "news.txt"
    path.write_bytes("\n".join(lines).encode("gb18030") + b"\n")
    assert [r.text for r in iter_records(str(path))] == lines


@pytest.mark.parametrize("shard_bytes", [37, 200, 1000, 10**9])
def test_byte_range_shards_cover_each_line_once(tmp_path, shard_bytes):
    rows = [{"text": "段落" * (i % 13 + 1) + str(i)} for i in range(300)]
    path = tmp_path / "big.jsonl"
    _write(path, rows)
    shards = plan_shards({"path": str(path)}, shard_bytes)
    assert len(shards) == max(1, -(-path.stat().st_size // shard_bytes))
    texts = [item.text for s in shards for item in read_shard(s)]
    assert texts == [r["text"] for r in rows]


def test_truncated_gzip_keeps_what_was_read_and_quarantines_rest(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    _write(path, [{"text": f"完整的一行文本{i}" * 20} for i in range(2000)], gzip.open)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    items = list(read_shard(plan_shards({"path": str(path)}, 1 << 30)[0]))
    assert isinstance(items[-1], Quarantined) and "unreadable" in items[-1].error
    assert 0 < sum(isinstance(i, Record) for i in items) < 2000


# --- issue 12: nothing lost, per-unit isolation, unique origins, per-line encodings ---

def _read(path, shard_bytes=1 << 30):
    from thresher.io.readers import ShardAccount
    out, accounts = [], []
    for spec in plan_shards({"path": str(path)}, shard_bytes):
        acc = ShardAccount(spec.name)
        out += list(read_shard(spec, acc))
        accounts.append(acc)
    return out, accounts


def test_a_converter_error_quarantines_one_line_and_the_shard_goes_on(tmp_path):
    bad = [{"id": "a/1", "kind": "text", "source": "a", "text": "t", "meta": "{not json"},
           {"chat": {"turn_\u00b2": "not a turn"}}, {"instruction": "q", "output": "a", "history": 5},
           {"prompt": {"text": "r", "role": "prompter", "replies": ["x"]}}, {"conversations": [], "system": "s"}]
    rows = [{"text": f"好的记录{i}"} for i in range(60)]
    for k, b in enumerate(bad):
        rows.insert(10 * k + 5, b)
    path = tmp_path / "d.jsonl"
    _write(path, rows)
    items, (acc,) = _read(path)
    recs = [i for i in items if isinstance(i, Record)]
    quarantined = [i for i in items if isinstance(i, Quarantined)]
    assert sum(r.text is not None and r.text.startswith("好的记录") for r in recs) == 60
    assert len(quarantined) == 4 and all("Error" in q.error for q in quarantined)
    assert acc.units == 65 and acc.covered == path.stat().st_size


def test_truncated_zstd_and_trailing_garbage_are_reported(tmp_path):
    data = "".join(json.dumps({"text": f"第{i}行"}, ensure_ascii=False) + "\n" for i in range(3000)).encode()
    frame = zstandard.ZstdCompressor().compress(data)
    for name, body, n_max in (("cut.jsonl.zst", frame[: len(frame) // 2], 2999),
                              ("tail.jsonl.zst", frame + b"garbage", 3000)):
        (tmp_path / name).write_bytes(body)
        items, (acc,) = _read(tmp_path / name)
        assert isinstance(items[-1], Quarantined) and items[-1].kind == "remainder", name
        assert acc.incomplete and sum(isinstance(i, Record) for i in items) <= n_max


def test_json_array_is_read_element_by_element_with_bom(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'\xef\xbb\xbf[\n {"text": "one"},\n {"text": "two",},\n 5,\n {"text": "four"}\n]\n')
    items, (acc,) = _read(path)
    assert [type(i).__name__ for i in items] == ["Record", "Quarantined", "Quarantined", "Record"]
    assert [i.meta["origin"] for i in items if isinstance(i, Record)] == ["a.json:[0]", "a.json:[3]"]
    assert items[1].raw == b'{"text": "two",}' and acc.covered == path.stat().st_size


def test_bom_before_jsonl_does_not_quarantine_the_first_record(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "second"}\n')
    items, _ = _read(path)
    assert [i.text for i in items] == ["first", "second"]


def test_encoding_is_decided_per_line_big5_by_a_detector(tmp_path):
    lines = ["第一行是UTF-8的文本。".encode(), "這是繁體中文的一行，用大五碼編碼。".encode("big5"),
             "这是简体中文的一行，用国标编码。".encode("gb18030"), "最后一行又是UTF-8。".encode()]
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items, _ = _read(path)
    assert [i.text for i in items] == ["第一行是UTF-8的文本。", "這是繁體中文的一行，用大五碼編碼。",
                                       "这是简体中文的一行，用国标编码。", "最后一行又是UTF-8。"]
    assert [i.meta.get("encoding", "utf-8") for i in items] == ["utf-8", "big5", "gb18030", "utf-8"]


def test_parquet_row_groups_give_unique_origins(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "同样的内容"}] * 10), path, row_group_size=3)
    recs = list(iter_records(str(path)))
    assert len(recs) == 10 and len({r.id for r in recs}) == 10
    assert recs[4].meta["origin"] == "p.parquet:rg1:1"


def test_corrupt_and_empty_parquet_are_a_remainder_not_a_crash(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "empty.parquet").write_bytes(b"")
    for name in ("bad.parquet", "empty.parquet"):
        items, (acc,) = _read(tmp_path / name)
        assert len(items) == 1 and items[0].kind == "remainder" and acc.incomplete


def test_same_file_name_in_two_folders_and_a_symlink_loop_give_unique_ids(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        _write(tmp_path / sub / "same.jsonl", [{"text": "完全相同的内容"}])
    (tmp_path / "x" / "loop").symlink_to(tmp_path / "x")
    recs = list(iter_records(str(tmp_path / "**" / "*.jsonl")))
    assert sorted(r.meta["origin"] for r in recs) == ["x/same.jsonl:0", "y/same.jsonl:0"]
    assert len({r.id for r in recs}) == 2


def test_identical_dpo_answers_are_rejected_at_read(tmp_path):
    path = tmp_path / "p.jsonl"
    _write(path, [{"prompt": "问", "chosen": "一样", "rejected": "一样 "}, {"prompt": "问", "chosen": "好", "rejected": "坏"}])
    recs = list(iter_records(str(path)))
    assert [r.meta.get("reject", {}).get("reason") for r in recs] == ["chosen_equals_rejected", None]


def test_shrunk_file_leaves_an_explicit_gap(tmp_path):
    path = tmp_path / "s.jsonl"
    _write(path, [{"text": f"第{i}行内容"} for i in range(200)])
    specs = plan_shards({"path": str(path)}, 500)
    path.write_bytes(path.read_bytes()[:1200])  # truncated after planning
    from thresher.io.readers import ShardAccount
    accs = [ShardAccount(s.name) for s in specs]
    items = [i for s, a in zip(specs, accs) for i in read_shard(s, a)]
    gaps = [i for i in items if isinstance(i, Quarantined) and i.kind == "remainder"]
    assert gaps and sum(a.covered for a in accs) == specs[0].size
