"""End-to-end integrity of a run: malformed input, conservation, SIGKILL + resume."""
import base64
import glob
import gzip
import json
import os
import random
import signal
import subprocess
import time

import orjson
import pytest
import zstandard

from foundation_util import REPO, run_cli, thresher_cmd, write_recipe
from thresher.inspect import iter_sink


def _sink(run_dir, sink):
    return list(iter_sink(str(run_dir), sink))


def _malformed_inputs(d):
    good = [{"text": f"这是一条正常的中文文本，编号{i}，内容足够长。"} for i in range(200)]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in good]
    lines.insert(10, b'{"text": "bad json,')                     # bad JSON line
    lines.insert(20, b'{"text": "\xff\xfe\xfa invalid utf-8"}')  # invalid UTF-8
    lines.insert(30, b'{"text": ""}')                            # empty text
    lines.insert(40, b'{"title": "missing text field"}')         # missing fields
    lines.insert(50, json.dumps({"text": "长" * (20 * 1024 * 1024 // 3)}, ensure_ascii=False).encode())  # 20 MB line
    (d / "web.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (d / "news.txt").write_bytes("国内新闻一则，内容是编码检测。\n国际新闻二则，内容依旧正常。\n".encode("gb18030"))
    with gzip.open(d / "cut.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(3000):
            f.write(json.dumps({"text": f"压缩文件中的第{i}行文本" * 10}, ensure_ascii=False) + "\n")
    data = (d / "cut.jsonl.gz").read_bytes()
    (d / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    return 200 + 5 + 2  # records + bad units + gb18030 lines, before the gz


def test_malformed_input_lands_in_a_sink_with_reason(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    _malformed_inputs(data)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", [{"path": str(data / "*")}], out,
                          [{"t_min_chars": {"min_chars": 5}}], shard_bytes="1MB")
    # a truncated archive is a missing input: every sink is written, but the run fails
    proc = run_cli("run", recipe, check=False)
    assert proc.returncode == 4 and "cut.jsonl.gz" in proc.stderr, proc.stderr[-2000:]
    man = json.loads((out / "manifest.json").read_text())
    c = man["counts"]
    assert man["conserved"] and c["in"] == c["kept"] + c["rejected"] + c["quarantined"]
    assert [m["file"] for m in man["incomplete_inputs"]] == ["cut.jsonl.gz"]
    # ... unless the recipe allows it
    run_cli("run", recipe, "--restart", "--set", "inputs=" + json.dumps(
        [{"path": str(data / "*"), "on_missing_input": "quarantine"}]))
    quarantine = _sink(out, "quarantine")
    errors = " | ".join(q["error"] for q in quarantine)
    assert "bad JSON line" in errors and "unrecognised record" in errors and "unreadable input" in errors
    bad_utf8 = [q for q in quarantine if b"\xff\xfe" in base64.b64decode(q["raw_b64"])]
    assert len(bad_utf8) == 1  # raw bytes kept exactly
    rejected = {r["meta"]["reject"]["reason"] for r in _sink(out, "rejected")}
    assert "empty" in rejected
    kept = _sink(out, "kept")
    texts = [r["text"] for r in kept]
    assert "国内新闻一则，内容是编码检测。" in texts  # GB18030 decoded
    assert any(len(t) > 6_000_000 for t in texts)  # the 20 MB line is a record, not a crash
    assert sum(t.startswith("压缩文件中的第") for t in texts) > 100  # the readable part of the .gz


def _slow_recipe(tmp_path, out, workers=2, shard_bytes="12KB"):
    data = tmp_path / "in.jsonl"
    if not data.exists():
        rows = [{"text": f"第{i % 700}号文档：" + "内容" * (i % 7 + 3)} for i in range(4000)]
        rows += [{"text": "短"}] * 50
        data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return write_recipe(tmp_path / f"r-{out.name}.yaml", [{"path": str(data), "name": "web"}], out,
                        [{"t_min_chars": {"min_chars": 4}}, {"t_slow": {"seconds_per_batch": 0.15}},
                         "t_exact_dedup", {"t_slow": {"seconds_per_batch": 0.1}}],
                        workers=workers, shard_bytes=shard_bytes, batch_size=200)


def _output_bytes(run_dir):
    """Every file a finished run leaves that must not depend on interruptions: sinks,
    manifests, summary.txt, rejected samples (stats.json and markers hold timings)."""
    files = {}
    for sink in ("kept", "rejected", "quarantine", "stats"):
        for p in sorted(glob.glob(os.path.join(run_dir, sink, "**", "*"), recursive=True)):
            if os.path.isfile(p):
                files[os.path.relpath(p, run_dir)] = open(p, "rb").read()
    for name in ("manifest.json", "summary.txt"):
        files[name] = open(os.path.join(run_dir, name), "rb").read()
    return files


def _temp_files(run_dir):
    return [p for p in glob.glob(os.path.join(run_dir, "**", "*"), recursive=True) if ".tmp-" in p]


def _start(recipe):
    return subprocess.Popen(thresher_cmd("run", recipe), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run: driver and pool workers
    except ProcessLookupError:
        pass
    proc.wait()


def _checkpoints(run_dir):
    return len(glob.glob(os.path.join(run_dir, "state", "*.json")) +
               glob.glob(os.path.join(run_dir, "state", "*", "*.json")))


def sigkill_resume_cycles(tmp_path, kills, seed=12):
    """Run once uninterrupted, then ``kills`` times: start, wait for 0-2 more
    checkpoints plus a random fraction of a shard, SIGKILL the whole group; then
    resume to the end.  Kill points follow progress, not wall time, so later cycles
    (with less left to do) still die mid-run.  Returns (expected files, resumed
    files, kills that hit a live run, temp files left)."""
    ref = tmp_path / "ref"
    run_cli("run", _slow_recipe(tmp_path, ref, shard_bytes="6KB"))
    expected = _output_bytes(ref)
    out = tmp_path / "killed"
    recipe = _slow_recipe(tmp_path, out, shard_bytes="6KB")
    rng = random.Random(seed)
    hits = 0
    for _ in range(kills):
        target = _checkpoints(out) + rng.choice([0, 1, 1, 2])
        proc = _start(recipe)
        while proc.poll() is None and _checkpoints(out) < target:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        hits += proc.poll() is None
        _kill_group(proc)
    run_cli("run", recipe)
    return expected, _output_bytes(out), hits, _temp_files(out)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_byte_identical(tmp_path):
    # kill points follow checkpoints, so 20 kills take ~25-45 s; THRESHER_KILLS=N to change it
    kills = int(os.environ.get("THRESHER_KILLS", "20"))
    expected, got, hits, temps = sigkill_resume_cycles(tmp_path, kills)
    assert json.loads(expected["manifest.json"])["counts"]["rejected"] > 0
    assert hits == kills, "a run finished before it could be killed; slow it down"
    assert sorted(got) == sorted(expected)
    assert [k for k in expected if got[k] != expected[k]] == []  # summary.txt included
    assert temps == []


def _interrupted(tmp_path, out, markers=1):
    """A run SIGKILLed once ``markers`` shards are checkpointed."""
    recipe = _slow_recipe(tmp_path, out)
    proc = _start(recipe)
    try:
        for _ in range(300):
            if len(glob.glob(str(out / "state" / "seg-0" / "*.json"))) >= markers:
                break
            time.sleep(0.05)
    finally:
        _kill_group(proc)
    assert not (out / "manifest.json").exists()
    return recipe


def _append(path, text):
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["edit_same_size", "append", "delete"])
def test_input_changed_between_kill_and_resume_is_refused(tmp_path, change):
    out = tmp_path / "o"
    recipe = _interrupted(tmp_path, out)
    data = tmp_path / "in.jsonl"
    if change == "edit_same_size":
        raw = bytearray(data.read_bytes())
        i = raw.index("号文档".encode(), len(raw) // 2)
        raw[i:i + 9] = "号文本".encode()
        data.write_bytes(bytes(raw))
        why = "content changed (same size)"
    elif change == "append":
        _append(data, "".join(json.dumps({"text": f"追加的第{i}行"}, ensure_ascii=False) + "\n" for i in range(100)))
        why = "size"
    else:
        data.unlink()
        why = "deleted"
    proc = run_cli("run", recipe, check=False)
    assert proc.returncode == 2 and "in.jsonl: " + why in proc.stderr and "--accept-changed" in proc.stderr, \
        proc.stderr[-1500:]
    assert not (out / "manifest.json").exists()
    if change != "delete":  # starting over reads the new file in full
        run_cli("run", recipe, "--restart")
        man = json.loads((out / "manifest.json").read_text())
        assert man["conserved"] and man["bytes_conserved"] and not man["incomplete_inputs"]
        assert man["counts"]["in"] == 4050 + (100 if change == "append" else 0)


@pytest.mark.slow
def test_code_change_between_kill_and_resume_is_refused_unless_accepted(tmp_path):
    out = tmp_path / "o"
    recipe = _interrupted(tmp_path, out)
    plan_path = out / "state" / "plan.json"
    plan = json.loads(plan_path.read_text())
    plan["code"]["thresher"] = "0.0.1-older"
    plan_path.write_text(json.dumps(plan))
    proc = run_cli("run", recipe, check=False)
    assert proc.returncode == 2 and "code:" in proc.stderr
    run_cli("run", recipe, "--accept-changed")
    assert json.loads((out / "manifest.json").read_text())["conserved"]


@pytest.mark.slow
def test_input_deleted_mid_run_fails_the_run_and_says_so(tmp_path):
    second = tmp_path / "second.jsonl"
    second.write_text("".join(json.dumps({"text": f"第二个文件的第{i}行内容"}, ensure_ascii=False) + "\n"
                              for i in range(400)))
    out = tmp_path / "o"
    recipe = write_recipe(tmp_path / "r.yaml", [{"path": str(tmp_path / "in.jsonl")}, {"path": str(second)}], out,
                          [{"t_slow": {"seconds_per_batch": 0.15}}], workers=1, shard_bytes="12KB",
                          batch_size=200)
    _slow_recipe(tmp_path, tmp_path / "unused")  # writes in.jsonl
    proc = subprocess.Popen(thresher_cmd("run", recipe), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for _ in range(300):
        if (out / "state" / "plan.json").exists():
            break
        time.sleep(0.05)
    second.unlink()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 4 and "second.jsonl" in err, err[-1500:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["conserved"] and any(m["file"] == "second.jsonl" for m in man["incomplete_inputs"])
    assert "INCOMPLETE INPUT: second.jsonl" in (out / "summary.txt").read_text()


@pytest.mark.slow
def test_moved_run_dir_resumes_to_identical_output(tmp_path):
    ref = tmp_path / "ref"
    run_cli("run", _slow_recipe(tmp_path, ref))
    out = tmp_path / "first"
    _interrupted(tmp_path, out, markers=3)
    moved = tmp_path / "moved" / "elsewhere"
    moved.parent.mkdir()
    os.rename(out, moved)
    run_cli("run", _slow_recipe(tmp_path, moved))
    assert _output_bytes(moved) == _output_bytes(ref)


def test_result_does_not_depend_on_worker_count(tmp_path):
    a, b = tmp_path / "w1", tmp_path / "w2"
    for out, w in ((a, 1), (b, 2)):
        recipe = _slow_recipe(tmp_path, out, workers=w)
        run_cli("run", recipe, "--set", "stages=" + json.dumps(
            [{"t_min_chars": {"min_chars": 4}}, "t_exact_dedup"]))
    assert _output_bytes(a) == _output_bytes(b)


def test_second_run_on_same_output_is_refused_while_first_holds_lock(tmp_path):
    out = tmp_path / "locked"
    recipe = _slow_recipe(tmp_path, out)
    proc = subprocess.Popen(thresher_cmd("run", recipe), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if (out / "state" / "plan.json").exists():
                break
            time.sleep(0.1)
        second = run_cli("run", recipe, check=False)
        assert second.returncode == 3 and "another thresher run" in second.stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_changed_recipe_refuses_to_resume_into_old_run(tmp_path):
    out = tmp_path / "o"
    recipe = _slow_recipe(tmp_path, out)
    run_cli("run", recipe, "--set", "stages=[t_exact_dedup]")
    proc = run_cli("run", recipe, check=False)
    assert proc.returncode == 2 and "different recipe" in proc.stderr
    run_cli("run", recipe, "--restart", "--set", "stages=[t_exact_dedup]")


def test_rerun_cleans_temp_files_and_restart_removes_everything_the_run_wrote(tmp_path):
    out = tmp_path / "o"
    recipe = _slow_recipe(tmp_path, out)
    fast = ["--set", "stages=" + json.dumps([{"t_min_chars": {"min_chars": 4}}, "t_exact_dedup",
                                             {"t_tag_length": {"cut": 12}}])]
    run_cli("run", recipe, *fast)
    summary = (out / "summary.txt").read_text()
    stage_rows = [line.split()[0] for line in summary.splitlines()[5:9]]
    assert stage_rows == ["read", "t_min_chars", "t_exact_dedup", "t_tag_length"]  # pipeline order
    left = out / "kept" / "shard-00000.jsonl.zst.tmp-otherhost-4242"
    left.write_bytes(b"half a shard")
    run_cli("run", recipe, *fast)  # everything checkpointed: a resume that only finalizes
    assert not left.exists() and (out / "summary.txt").read_text() == summary
    (out / "tiers.json").write_text("{}")  # what a tier stage of the earlier recipe wrote
    (out / "selections" / "sft_train").mkdir(parents=True)
    run_cli("run", recipe, "--restart", "--set", "stages=[t_exact_dedup]")
    assert not (out / "tiers.json").exists() and not (out / "selections").exists()


def test_disk_full_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    from thresher.io import atomic, writers
    from thresher.records import make_record

    def full_disk(path, data):
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic, "write_synced", full_disk)
    with pytest.raises(OSError):
        writers.atomic_write_json(str(tmp_path / "m.json"), {"a": 1})
    with pytest.raises(OSError):
        with writers.ShardWriter(str(tmp_path / "shard-00000.jsonl.zst")) as w:
            w.write_record(make_record("text", "s", text="正文"))
    assert os.listdir(tmp_path) == []
