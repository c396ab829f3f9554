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
