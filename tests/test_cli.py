"""CLI commands over a finished run: inspect, status, stats; parquet output; split_by."""
import json

import pyarrow.parquet as pq

from foundation_util import run_cli, write_recipe
from thresher.io.readers import iter_records


def _run(tmp_path, **output):
    rows = [{"text": "重复的文本内容，用来测试。"}] * 3 + [{"text": "短"}] + \
           [{"instruction": f"问题{i}", "output": "回答" * (i + 1)} for i in range(30)]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", [{"path": str(tmp_path / "in.jsonl"), "name": "mix"}], out,
                          [{"t_min_chars": {"min_chars": 3}}, "t_exact_dedup", {"t_tag_length": {"cut": 12}}])
    if output:
        import yaml
        r = yaml.safe_load(open(recipe))
        r["output"].update(output)
        yaml.safe_dump(r, open(recipe, "w"), allow_unicode=True)
    run_cli("run", recipe)
    return out


def test_inspect_status_stats(tmp_path):
    out = _run(tmp_path)
    dup = run_cli("inspect", str(out), "--reason", "exact_dup").stdout
    assert dup.count("== rejected") == 2 and "dup_of" in dup
    dropped_id = json.loads(dup.split("== rejected\n")[1])["id"]
    cluster = run_cli("inspect", str(out), "--dup-cluster", dropped_id).stdout
    assert cluster.count("== kept") == 1 and cluster.count("== rejected") == 2
    by_id = run_cli("inspect", str(out), "--id", dropped_id).stdout
    assert dropped_id in by_id
    assert run_cli("inspect", str(out), "--reason", "no_such_reason", check=False).returncode == 1
    status = run_cli("status", str(out)).stdout
    assert "finished" in status and "seg-0: 1/1 shards done" in status and "conserved" in status
    stats = run_cli("stats", str(out / "kept")).stdout
    assert "31 records" in stats and "sft=30" in stats


def test_parquet_output_with_split_by(tmp_path):
    out = _run(tmp_path, format="parquet", split_by="tier")
    long_ids = {r.id for r in iter_records(str(out / "kept" / "long" / "manifest.json"))}
    short_ids = {r.id for r in iter_records(str(out / "kept" / "short" / "manifest.json"))}
    assert long_ids and short_ids and not long_ids & short_ids
    table = pq.read_table(next((out / "kept" / "long").glob("*.parquet")))
    assert {"id", "kind", "messages", "meta"} <= set(table.column_names)
    top = json.loads((out / "kept" / "manifest.json").read_text())
    assert top["records"] == len(long_ids) + len(short_ids) == 31


def test_outputs_read_back_keep_ids_and_meta_and_can_be_reconsidered(tmp_path):
    """Chained runs (re-tiering without recomputing): a run's kept/rejected folders are
    valid inputs; records keep id and meta; `reconsider` re-decides rejected ones."""
    first = _run(tmp_path)
    kept = {r.id: r for r in iter_records(str(first / "kept"))}
    out2 = tmp_path / "second"
    recipe = write_recipe(tmp_path / "r2.yaml",
                          [{"path": str(first / "kept")},
                           {"path": str(first / "rejected"), "mapping": {"reconsider": True}}],
                          out2, [{"t_min_chars": {"min_chars": 1}}, {"t_tag_length": {"cut": 30}}])
    run_cli("run", recipe)
    man = json.loads((out2 / "manifest.json").read_text())
    assert man["counts"]["quarantined"] == 0 and man["counts"]["in"] == 34
    again = {r.id: r for r in iter_records(str(out2 / "kept"))}
    assert set(kept) < set(again)  # the formerly rejected came back, nothing was re-hashed
    rid = next(iter(kept))
    assert again[rid].meta["signals"]["chars"] == kept[rid].meta["signals"]["chars"]
    assert sum(r.meta.get("reconsidered", False) for r in again.values()) == 3
