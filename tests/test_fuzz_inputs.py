"""Fuzz: >= 60 kinds of malformed input mixed with good records, one run.

The test keeps its own ledger of every unit it wrote (line, array element, Parquet
row, or a whole unreadable file) with its byte range, and checks the run's sinks
against that ledger, not against thresher's counters: every unit is in exactly one
sink (or inside an explicit "unreadable remainder" entry), every byte of every file
is covered, no record id repeats, and the exit status is the specified one.
"""
import base64
import gzip
import json
import os

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from foundation_util import PLUGIN, REPO, run_cli
from thresher.inspect import iter_sink

FAULT_PLUGIN = os.path.join(REPO, "tests", "plugins", "fault_stages.py")
GOOD = "这是一条正常的中文文本，内容足够长，编号{}。"


def _j(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _deep(n):
    return b"[" * n + b"]" * n


# one JSONL line per kind: (name, line bytes).  Sinks are not predicted here; the
# checks are that each unit lands in exactly one sink and nothing crashes.
LINE_KINDS = [
    ("bad_json_unterminated", b'{"text": "bad json,'),
    ("invalid_utf8", b'{"text": "\xff\xfe\xfa invalid"}'),
    ("empty_text", _j({"text": ""})),
    ("whitespace_text", _j({"text": "   \u3000 "})),
    ("missing_text_field", _j({"title": "no text"})),
    ("json_number", b"42"),
    ("json_array_line", b"[1, 2, 3]"),
    ("json_null", b"null"),
    ("json_bare_string", b'"just a string line"'),
    ("trailing_garbage_after_object", b'{"text": "x"} junk'),
    ("own_record_meta_not_json", _j({"id": "a/1", "kind": "text", "source": "a", "text": "t", "meta": "{not json"})),
    ("own_record_text_number", _j({"id": "a/2", "kind": "text", "source": "a", "text": 5, "meta": {}})),
    ("own_record_messages_string", _j({"id": "a/3", "kind": "sft", "source": "a", "messages": "x", "meta": {}})),
    ("own_record_meta_list", _j({"id": "a/4", "kind": "text", "source": "a", "text": "t", "meta": [1]})),
    ("own_record_dpo_chosen_number", _j({"id": "a/5", "kind": "dpo", "source": "a", "chosen": 1, "rejected": "r",
                                         "messages": [{"role": "user", "content": "q"}], "meta": {}})),
    ("own_record_meta_too_deep", b'{"id": "a/6", "kind": "text", "source": "a", "text": "t", "meta": {"d": '
     + _deep(300) + b"}}"),
    ("own_record_bad_role", _j({"id": "a/7", "kind": "sft", "source": "a",
                                "messages": [{"role": "alien", "content": "x"}], "meta": {}})),
    ("moss_superscript_turn_key", _j({"chat": {"turn_\u00b2": {"Human": "<|Human|>: 问<eoh>", "MOSS": "答<eom>"}}})),
    ("moss_turn_string", _j({"chat": {"turn_1": "not a dict"}})),
    ("moss_human_number", _j({"chat": {"turn_1": {"Human": 5}}})),
    ("sharegpt_empty_with_system", _j({"conversations": [], "system": "你是助手"})),
    ("sharegpt_missing_value", _j({"conversations": [{"from": "human"}]})),
    ("sharegpt_unknown_role", _j({"conversations": [{"from": "alien", "value": "x"}]})),
    ("sharegpt_turn_not_object", _j({"conversations": ["hi", "there"]})),
    ("alpaca_history_number", _j({"instruction": "问", "output": "答", "history": 5})),
    ("alpaca_history_bad_pair", _j({"instruction": "问", "output": "答", "history": [["only one"]]})),
    ("alpaca_output_number", _j({"instruction": "问", "output": 7})),
    ("alpaca_instruction_list", _j({"instruction": ["a"], "output": "答"})),
    ("oasst_replies_strings", _j({"prompt": {"text": "根", "role": "prompter", "replies": ["x"]}})),
    ("oasst_replies_not_list", _j({"prompt": {"text": "根", "role": "prompter", "replies": {"a": 1}}})),
    ("oasst_bad_role", _j({"prompt": {"text": "根", "role": "alien", "replies": []}})),
    ("dpo_chosen_equals_rejected", _j({"prompt": "问题", "chosen": "一样的回答", "rejected": "一样的回答"})),
    ("dpo_chosen_empty_list", _j({"prompt": "问题", "chosen": [], "rejected": "坏"})),
    ("dpo_no_prompt", _j({"chosen": "好", "rejected": "坏"})),
    ("dpo_chosen_number", _j({"prompt": "问", "chosen": 3, "rejected": "坏"})),
    ("messages_alien_role", _j({"messages": [{"role": "alien", "content": "x"}]})),
    ("messages_content_dict", _j({"messages": [{"role": "user", "content": {"a": 1}}]})),
    ("firefly_turn_not_object", _j({"conversation": [1, 2]})),
    ("data_list_of_numbers", _j({"id": 1, "data": [1, 2]})),
    ("json_nested_2000", b'{"text": "x", "d": ' + _deep(2000) + b"}"),
    ("lone_surrogate_escape", b'{"text": "\\ud800 lone"}'),
    ("raw_nul_byte", b'{"text": "a\x00b"}'),
    ("raw_control_char", b'{"text": "a\x07b\x1f"}'),
    ("huge_integer", b'{"text": "n", "n": 123456789012345678901234567890}'),
    ("nan_literal", b'{"text": "n", "v": NaN}'),
    ("text_is_list", _j({"text": ["a", "b"]})),
    ("id_is_object", _j({"text": GOOD.format("id"), "id": {"x": 1}})),
    ("duplicate_keys", b'{"text": "first", "text": "second duplicate key wins"}'),
    ("gb18030_line_in_utf8_file", json.dumps({"text": "简体中文的一行，用国标编码。"}, ensure_ascii=False).encode("gb18030")),
    ("big5_line_in_utf8_file", json.dumps({"text": "這是繁體中文的一行，用大五碼編碼。"}, ensure_ascii=False).encode("big5")),
    ("bom_in_mid_file", b"\xef\xbb\xbf" + _j({"text": "mid-file BOM"})),
    ("crlf_line", _j({"text": GOOD.format("crlf")}) + b"\r"),
    ("stage_raises_on_record", _j({"text": "这条记录会让阶段 EXPLODE 出错。"})),
    ("stage_raises_again", _j({"text": "第二条 EXPLODE 记录。"})),
    ("long_line_2mb", _j({"text": "长" * ((2 << 20) // 3)})),
    ("utf16_line", '{"text": "utf16"}'.encode("utf-16")),
]


class Ledger:
    """The test's own account: per file, its units (key -> byte range) and gaps."""

    def __init__(self):
        self.files: dict[str, dict] = {}

    def add(self, rel, size, units, gaps=(), whole=False, compressed=False):
        self.files[rel] = {"size": size, "units": dict(units), "gaps": list(gaps), "whole": whole,
                           "compressed": compressed}


def _lines_file(path, lines, ledger, rel, bom=False, opener=None, trailing_newline=True):
    """Write JSONL/text lines; blank entries (b"") become blank lines (gaps)."""
    data, units, gaps, keys = b"\xef\xbb\xbf" if bom else b"", {}, [], []
    pos = len(data)
    for i, line in enumerate(lines):
        end = b"\n" if (trailing_newline or i < len(lines) - 1) else b""
        if not line.strip():
            gaps.append((pos, len(line + end)))
            keys.append(None)
        else:
            start = 0 if (bom and pos == 3) else pos
            units[f"{rel}:{start}"] = (start, pos + len(line + end) - start)
            keys.append(f"{rel}:{start}")
        data += line + end
        pos += len(line + end)
    if opener is None:
        path.write_bytes(data)
        ledger.add(rel, len(data), units, gaps)
    else:
        path.write_bytes(opener(data))
        ledger.add(rel, len(data), units, gaps, compressed=True)
    return keys


def _array_file(path, elements, ledger, rel, bom=False, tail=b"\n", close=True, encoding="utf-8"):
    """A pretty JSON array from raw element bytes; elements keyed by index."""
    head = (b"\xef\xbb\xbf" if bom else b"") + b"[\n"
    data, units, gaps = head, {}, [(0, len(head))]
    for i, el in enumerate(elements):
        units[f"{rel}:[{i}]"] = (len(data) + 2, len(el))
        gaps.append((len(data), 2))
        data += b"  " + el
        sep = b",\n" if i < len(elements) - 1 else b"\n"
        gaps.append((len(data), len(sep)))
        data += sep
    if close:
        gaps.append((len(data), 1 + len(tail)))
        data += b"]" + tail
    path.write_bytes(data)
    ledger.add(rel, len(data), units, gaps)


def _build_inputs(d, ledger):
    d.mkdir()
    lines = []
    for i, (_, line) in enumerate(LINE_KINDS):
        lines += [_j({"text": GOOD.format(i)}), line, b"   " if i % 7 == 0 else _j({"text": GOOD.format(f"b{i}")})]
    keys = _lines_file(d / "mixed.jsonl", lines, ledger, "mixed.jsonl", bom=True)
    # kind -> the unit key (one line of mixed.jsonl) or the file that shows it
    kinds = {k: keys[3 * i + 1] for i, (k, _) in enumerate(LINE_KINDS)}

    good = [_j({"text": GOOD.format(f"z{i}") * 5}) for i in range(400)]
    def cut(b): return b[: len(b) // 2]  # noqa: E306
    gz = gzip.compress(b"".join(x + b"\n" for x in good))
    (d / "cut.jsonl.gz").write_bytes(cut(gz))
    ledger.add("cut.jsonl.gz", None, _stream_units("cut.jsonl.gz", good), compressed=True)
    zst = zstandard.ZstdCompressor().compress(b"".join(x + b"\n" for x in good))
    (d / "cut.jsonl.zst").write_bytes(cut(zst))
    ledger.add("cut.jsonl.zst", None, _stream_units("cut.jsonl.zst", good), compressed=True)
    (d / "garbage_tail.jsonl.zst").write_bytes(zst + b"this is not a zstd frame" * 10)
    ledger.add("garbage_tail.jsonl.zst", None, _stream_units("garbage_tail.jsonl.zst", good), compressed=True)
    (d / "plain_named.jsonl.zst").write_bytes(b"".join(x + b"\n" for x in good[:5]))
    ledger.add("plain_named.jsonl.zst", None, _stream_units("plain_named.jsonl.zst", good[:5]), compressed=True)
    (d / "plain_named.jsonl.gz").write_bytes(b"".join(x + b"\n" for x in good[:5]))
    ledger.add("plain_named.jsonl.gz", None, _stream_units("plain_named.jsonl.gz", good[:5]), compressed=True)
    kinds.update(truncated_gzip="cut.jsonl.gz", truncated_zstd="cut.jsonl.zst",
                 zstd_trailing_garbage="garbage_tail.jsonl.zst", plain_file_named_zst="plain_named.jsonl.zst",
                 plain_file_named_gz="plain_named.jsonl.gz")

    (d / "empty.jsonl").write_bytes(b"")
    ledger.add("empty.jsonl", 0, {})
    (d / "empty.parquet").write_bytes(b"")
    ledger.add("empty.parquet", 0, {"empty.parquet": None}, whole=True)
    (d / "corrupt.parquet").write_bytes(b"PAR1" + os.urandom(300) + b"PAR1")
    ledger.add("corrupt.parquet", 304 + 4, {"corrupt.parquet": None}, whole=True)
    rows = [{"text": GOOD.format(f"p{i}") if i != 3 else None} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), d / "groups.parquet", row_group_size=4)
    ledger.add("groups.parquet", None, {f"groups.parquet:rg{i // 4}:{i % 4}": None for i in range(10)})
    kinds.update(zero_byte_jsonl="empty.jsonl", zero_byte_parquet="empty.parquet", corrupt_parquet="corrupt.parquet",
                 parquet_row_groups_null_text="groups.parquet")

    els = [_j({"text": GOOD.format(f"a{i}")}) for i in range(6)]
    els[2] = b'{"text": "broken element",}'
    els[4] = b"17"
    _array_file(d / "array_bom.json", els, ledger, "array_bom.json", bom=True)
    _array_file(d / "array_open.json", els[:3] + [b'{"text": "never closed'], ledger, "array_open.json",
                close=False)
    _array_file(d / "array_tail.json", els[:2], ledger, "array_tail.json", tail=b"\ngarbage after the array\n")
    _array_file(d / "array_deep.json", [_j({"text": "ok"}), b'{"text": "d", "x": ' + _deep(300) + b"}"],
                ledger, "array_deep.json")
    gb_els = [json.dumps({"text": f"国标编码的数组元素{i}"}, ensure_ascii=False).encode("gb18030") for i in range(3)]
    _array_file(d / "array_gb.json", gb_els, ledger, "array_gb.json")
    kinds.update(json_array_bom_bad_elements="array_bom.json", json_array_never_closes="array_open.json",
                 json_array_trailing_garbage="array_tail.json", json_array_element_too_deep_to_serialise="array_deep.json",
                 json_array_gb18030="array_gb.json")

    _lines_file(d / "news_gb.txt", ["国内新闻一则，内容是编码检测。".encode("gb18030"), b"",
                                    "第二则新闻：体育赛事结果。".encode("gb18030")], ledger, "news_gb.txt")
    _lines_file(d / "news_big5.txt", ["國內新聞一則，內容是編碼偵測。".encode("big5"),
                                      "第二則新聞：體育賽事結果公布。".encode("big5")], ledger, "news_big5.txt")
    _lines_file(d / "mixed_enc.txt", ["第一行是UTF-8。".encode(), "第二行是国标编码。".encode("gb18030"),
                                      b"\xff\xff\xff not any codec", "第四行又是UTF-8。".encode()],
                ledger, "mixed_enc.txt", trailing_newline=False)
    kinds.update(gb18030_txt="news_gb.txt", big5_txt="news_big5.txt",
                 per_line_encodings_and_undecodable="mixed_enc.txt", no_trailing_newline="mixed_enc.txt")

    for sub in ("a", "b"):  # the same file name and content in two folders
        (d / sub).mkdir()
        _lines_file(d / sub / "same.jsonl", [_j({"text": GOOD.format("same")})], ledger, f"{sub}/same.jsonl")
    (d / "a" / "loop").symlink_to(d / "a")  # a recursive glob must not read a/ forever
    name = os.fsdecode(b"bad_name_\xff\xfe.jsonl")
    _lines_file(d / name, [_j({"text": GOOD.format("name")})], ledger,
                os.fsencode(name).decode("utf-8", "backslashreplace"))
    kinds.update(same_name_two_folders="b/same.jsonl", symlink_loop="a/same.jsonl",
                 non_utf8_file_name=os.fsencode(name).decode("utf-8", "backslashreplace"))
    return kinds


def _stream_units(rel, lines):
    units, pos = {}, 0
    for x in lines:
        units[f"{rel}:{pos}"] = (pos, len(x) + 1)
        pos += len(x) + 1
    return units


def _sinks(run_dir):
    found: dict[str, set] = {}  # unit key -> sinks it was found in
    ids = []
    for sink in ("kept", "rejected"):
        for r in iter_sink(str(run_dir), sink):
            ids.append(r["id"])
            key = r["meta"]["origin"].split("#")[0]  # oasst threads share their unit
            found.setdefault(key, []).append(sink)
    remainders = []
    for q in iter_sink(str(run_dir), "quarantine"):
        if q["kind"] == "remainder":
            remainders.append(q)
        else:
            found.setdefault(q["origin"], []).append("quarantine")
            if q["kind"] == "unit" and q.get("raw_b64") is not None:
                base64.b64decode(q["raw_b64"])
    return found, remainders, ids


def _check_ledger(ledger, found, remainders):
    rem_by_file: dict[str, list] = {}
    for q in remainders:
        rem_by_file.setdefault(q["file"], []).append(q)
    for rel, f in ledger.files.items():
        rems = rem_by_file.get(rel, [])
        for key, rng in f["units"].items():
            if f["whole"]:
                assert rems and key not in found, f"{rel}: unreadable file without a remainder entry"
                continue
            inside = any(_in_remainder(rng, q) for q in rems) if rng else False
            sinks = found.get(key, [])
            if inside:
                assert not sinks, f"{key}: both read and inside an unreadable remainder"
            else:
                assert len(set(sinks)) == 1, f"{key}: found in {sinks or 'no sink'}"
        if f["size"] is not None and not f["whole"] and not f["compressed"]:
            covered = bytearray(f["size"])
            for key, (off, n) in f["units"].items():
                if key in found:
                    covered[off:off + n] = b"\x01" * n
            for off, n in f["gaps"]:
                covered[off:off + n] = b"\x01" * n
            for q in rems:
                covered[q["offset"]:q["offset"] + q["length"]] = b"\x01" * q["length"]
            assert covered.count(0) == 0, f"{rel}: {covered.count(0)} bytes in no sink"
    stray = {k for k in found if k.rsplit(":", 1)[0].split(":rg")[0] not in ledger.files}
    assert not stray, f"records from units the test never wrote: {sorted(stray)[:5]}"


def _in_remainder(rng, q):
    off, _ = rng
    if q["length"] < 0:
        return off >= q["offset"]
    return q["offset"] <= off < q["offset"] + q["length"]


def _recipe(tmp_path, data, out, on_missing):
    import yaml
    recipe = {"name": "fuzz", "plugins": [PLUGIN, FAULT_PLUGIN],
              "inputs": [{"path": str(data / "**" / "*"), "on_missing_input": on_missing}],
              "output": {"dir": str(out)},
              "executor": {"workers": 2, "shard_bytes": "64KB", "progress_interval": 5, "batch_size": 64},
              "stages": [{"t_min_chars": {"min_chars": 2}}, "t_explode_on", "t_exact_dedup"]}
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    return str(path)


def test_fuzz_every_unit_and_byte_lands_in_exactly_one_sink(tmp_path):
    ledger = Ledger()
    kinds = _build_inputs(tmp_path / "in", ledger)
    assert len(kinds) >= 60, len(kinds)

    out = tmp_path / "strict"
    proc = run_cli("run", _recipe(tmp_path, tmp_path / "in", out, "fail"), check=False)
    assert proc.returncode == 4, proc.stderr[-3000:]  # truncated/corrupt inputs: every sink written, exit 4
    man = json.loads((out / "manifest.json").read_text())
    broken = {"cut.jsonl.gz", "cut.jsonl.zst", "garbage_tail.jsonl.zst", "plain_named.jsonl.zst",
              "plain_named.jsonl.gz", "empty.parquet", "corrupt.parquet", "array_open.json", "array_tail.json"}
    assert {m["file"] for m in man["incomplete_inputs"]} == broken
    assert man["conserved"] and man["bytes_conserved"]
    assert all(f["covered"] == f["expected"] for f in man["inputs"].values() if f["expected"] is not None)

    found, remainders, ids = _sinks(out)
    _check_ledger(ledger, found, remainders)
    assert len(ids) == len(set(ids)), "duplicate record ids"
    c = man["counts"]
    assert c["kept"] + c["rejected"] + c["quarantined"] == \
        len(ids) + len(remainders) + sum(v.count("quarantine") for v in found.values())

    # what the kinds turned into, spot-checked on the sinks themselves
    quarantine = list(iter_sink(str(out), "quarantine"))
    errors = " | ".join(q["error"] for q in quarantine)
    assert errors.count("stage t_explode_on raised ZeroDivisionError") == 2
    assert "meta is a string but not JSON" in errors and "replies must be a list" in errors
    kept = {r["meta"]["origin"]: r for r in iter_sink(str(out), "kept")}
    by_text = {r.get("text"): r for r in kept.values()}
    assert by_text["這是繁體中文的一行，用大五碼編碼。"]["meta"]["encoding"] == "big5"
    assert by_text["简体中文的一行，用国标编码。"]["meta"]["encoding"] == "gb18030"
    assert "國內新聞一則，內容是編碼偵測。" in by_text and "第四行又是UTF-8。" in by_text
    assert by_text[GOOD.format(0)]["meta"]["origin"] == "mixed.jsonl:0"  # the BOM did not eat record 0
    assert sum(o.startswith("a/same.jsonl") or o.startswith("b/same.jsonl") for o in
               [r["meta"]["origin"] for r in iter_sink(str(out), "rejected")] + list(kept)) == 2
    rejected = {r["meta"]["reject"]["reason"] for r in iter_sink(str(out), "rejected")}
    assert {"empty", "chosen_equals_rejected"} <= rejected

    # the same inputs with on_missing_input: quarantine: exit 0 and the same sinks
    lenient = tmp_path / "lenient"
    run_cli("run", _recipe(tmp_path, tmp_path / "in", lenient, "quarantine"))
    assert _sink_digest(lenient) == _sink_digest(out)


def _sink_digest(run_dir):
    return {s: sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in iter_sink(str(run_dir), s))
            for s in ("kept", "rejected", "quarantine")}

