"""The run-directory object and the one atomic-write helper."""
import os

import pytest

from thresher.config import load_recipe
from thresher.executor.runner import run_recipe
from thresher.inspect import iter_sink
from thresher.io import atomic
from thresher.io.readers import expand_paths, iter_records
from thresher.rundir import RunDir, default_work_dir


def _recipe(data, out):
    return load_recipe("default", {"output.dir": str(out), "executor.workers": 1,
                                   "inputs": [{"path": str(data), "name": "web"}],
                                   "stages": ["whitespace_normalizer", "exact_dedup"]})


def _data(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(f'{{"text": "第{i % 7}条新闻：今天天气很好，我们去公园散步。"}}\n' for i in range(30)),
                 encoding="utf-8")
    return p


def test_temp_names_are_recognised():
    t = atomic.tmp_name("/x/shard-00001.jsonl.zst")
    assert atomic.is_temp(t) and os.path.dirname(t) == "/x" and str(os.getpid()) in t
    assert atomic.is_temp(atomic.tmp_name("/x/a.npy", suffix=".npy"))
    for old in ("a.json.tmp", "a.json.tmp1234", "a.json.tmp-99"):  # spellings of earlier versions
        assert atomic.is_temp(old)
    for real in ("shard-00001.jsonl.zst", "tmp.jsonl", "a.tmpl", "manifest.json"):
        assert not atomic.is_temp(real)


def test_atomic_write_leaves_only_the_target(tmp_path):
    atomic.atomic_write_json(str(tmp_path / "d" / "m.json"), {"a": 1})
    with atomic.atomic_open(str(tmp_path / "d" / "b.bin")) as f:
        f.write(b"xyz")
    with pytest.raises(RuntimeError):
        with atomic.atomic_target(str(tmp_path / "d" / "c.bin")) as tmp:
            open(tmp, "wb").write(b"half")
            raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path / "d")) == ["b.bin", "m.json"]


def test_leftover_of_a_killed_writer_is_ignored_and_removed_on_resume(tmp_path):
    data, out = _data(tmp_path), tmp_path / "run"
    first = run_recipe(_recipe(data, out))
    rd = RunDir(str(out))
    shard = rd.kept_shard(0, "jsonl.zst", "none")  # the default recipe splits kept by tier
    assert os.path.exists(shard) and os.path.exists(rd.map_marker(1, 0))
    # what writers killed mid-write leave, in every kind of place (and an older spelling)
    leftovers = [atomic.tmp_name(shard).replace(str(os.getpid()), "4242"),
                 rd.kept_shard(7, "jsonl.zst", "none") + ".tmp-otherhost-77",
                 rd.map_marker(1, 3) + ".tmp-otherhost-77",
                 os.path.join(rd.artifacts(1, "exact_dedup"), "x.jsonl.tmp4242"),
                 rd.manifest + ".tmp-otherhost-77"]
    for p in leftovers:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(b'{"text": "half a record"')
    # readers skip them
    assert all(not atomic.is_temp(f) for f in rd.sink_files("kept"))
    assert len(list(iter_sink(str(out), "kept"))) == first["counts"]["kept"]
    assert len(list(iter_records(str(out / "kept")))) == first["counts"]["kept"]
    assert not any(atomic.is_temp(f) for f in expand_paths(str(out / "kept")))
    assert rd.markers("seg-1") == ["shard-00000.json"]
    # the resumed run removes them and computes the same result
    again = run_recipe(_recipe(data, out))
    assert not any(os.path.exists(p) for p in leftovers)
    assert again["counts"] == first["counts"] and again["fingerprint"] == first["fingerprint"]


def test_rundir_paths(tmp_path):
    rd = RunDir(str(tmp_path))
    assert not rd.remote and rd.root == str(tmp_path)
    assert rd.plan_file == str(tmp_path / "state" / "plan.json")
    assert rd.map_marker(2, 5) == str(tmp_path / "state" / "seg-2" / "shard-00005.json")
    assert rd.reduce_marker(3) == str(tmp_path / "state" / "global-03.json")
    assert rd.kept_shard(1, "parquet", "top") == str(tmp_path / "kept" / "top" / "shard-00001.parquet")
    assert rd.rel(rd.kept_shard(1, "jsonl")) == os.path.join("kept", "shard-00001.jsonl")
    assert rd.quarantine_rel(0, 1) == os.path.join("quarantine", "shard-00001.jsonl.zst")
    assert rd.quarantine_rel(1, 1) == os.path.join("quarantine", "seg-1-shard-00001.jsonl.zst")
    assert rd.global_state(4, "minhash_dedup") == str(tmp_path / "work" / "global-04-minhash_dedup" / "state")


def test_remote_output_works_in_a_stable_local_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("THRESHER_WORK_DIR", str(tmp_path))
    rd = RunDir("s3://bucket/runs/a")
    assert rd.remote and rd.root.startswith(str(tmp_path)) and rd.root == default_work_dir("s3://bucket/runs/a")
    assert RunDir("s3://bucket/runs/b").root != rd.root
    assert RunDir("s3://bucket/runs/a", work_dir=str(tmp_path / "w")).root == str(tmp_path / "w")
