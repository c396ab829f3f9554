"""run_data_cleaning.sh / stopall.sh / thresher stop|status: start, refuse a second start,
stop by verified process group, never signal a process that merely reuses a stale PID."""
import json
import os
import signal
import subprocess
import time

import pytest

from foundation_util import REPO, thresher_cmd, write_recipe

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def _group_members(pgid, zombies=False):
    """Live processes of the group (zombies are gone already; a container's PID 1 may
    simply not reap them)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
    return [int(p) for p, g, st in (line.split() for line in out.splitlines())
            if int(g) == pgid and (zombies or not st.startswith("Z"))]


def _slow_run(tmp_path, seconds_per_batch=0.4):
    rows = [{"text": f"文档{i % 900}：" + "正文内容" * (i % 9 + 2)} for i in range(3000)]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", [{"path": str(tmp_path / "in.jsonl")}], out,
                          [{"t_slow": {"seconds_per_batch": seconds_per_batch}}, "t_exact_dedup"],
                          shard_bytes="8KB", batch_size=100)
    env = {**os.environ, "THRESHER_HOME": str(tmp_path / "home"), "STOP_GRACE": "5"}
    return recipe, out, env


def _wait_pidfile(pidfile, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return json.loads(pidfile.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
    raise AssertionError(f"{pidfile} never appeared")


def _start(recipe, env, **kw):
    return subprocess.Popen(["bash", "run_data_cleaning.sh", recipe], cwd=REPO, env=env, **kw)


@pytest.mark.slow
def test_start_stop_resume_via_operator_scripts(tmp_path):
    recipe, out, env = _slow_run(tmp_path)
    starter = _start(recipe, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = out / "run.pid"
    info = _wait_pidfile(pidfile)
    pgid = info["pgid"]
    assert info["pid"] == pgid and info["start_time"] and len(info["token"]) == 16
    time.sleep(1.5)
    assert _group_members(pgid), "run should be alive"
    status = subprocess.run(thresher_cmd("status", str(out)), cwd=REPO, capture_output=True, text=True)
    assert f"running (pgid {pgid})" in status.stdout
    second = subprocess.run(["bash", "run_data_cleaning.sh", recipe], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert second.returncode == 3 and "already active" in second.stderr
    assert json.loads(pidfile.read_text()) == info, "a refused start must leave the live run's run.pid alone"

    stop = subprocess.run(["bash", "stopall.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert "stopping" in stop.stdout and "stopped 1 run(s)" in stop.stdout, stop.stdout + stop.stderr
    starter.wait(timeout=30)
    assert _group_members(pgid) == []
    assert not (out / "manifest.json").exists(), "stopped before finishing"

    resumed = subprocess.run(["bash", "run_data_cleaning.sh", recipe], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, (out / "run.log").read_text()[-2000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["conserved"] and man["counts"]["in"] == 3000 and man["counts"]["kept"] == 900
    log = (out / "run.log").read_text()
    assert "stopped by signal 15" in log
    assert not pidfile.exists()


def _spawn_with_pid(pid, attempts=200):
    """An unrelated process (its own session, so its pgid is its pid) that gets exactly
    ``pid``, by setting the kernel's last-assigned pid just below it."""
    got = []
    for _ in range(attempts):
        with open(NS_LAST_PID, "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
        if proc.pid == pid:
            return proc
        got.append(proc.pid)
        proc.kill()
        proc.wait()
    holder = open(f"/proc/{pid}/stat").read()[:80] if os.path.exists(f"/proc/{pid}") else "nobody"
    pytest.skip(f"could not get pid {pid} back (got {got[:5]}...; held by {holder}; unreaped zombies of its "
                "group keep it reserved)")


@pytest.mark.slow
def test_stale_pid_reused_by_an_unrelated_process_survives_stop_tools(tmp_path):
    if not os.access(NS_LAST_PID, os.W_OK):
        pytest.skip(f"{NS_LAST_PID} not writable: cannot force PID reuse")
    recipe, out, env = _slow_run(tmp_path)
    starter = _start(recipe, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = _wait_pidfile(out / "run.pid")
    os.killpg(info["pgid"], signal.SIGKILL)  # a crash: run.pid stays behind
    starter.wait(timeout=30)
    for _ in range(200):  # the kernel keeps a pid while zombies still use it as their pgid
        if not _group_members(info["pgid"], zombies=True):
            break
        time.sleep(0.05)
    stranger = _spawn_with_pid(info["pid"])
    try:
        assert os.getpgid(stranger.pid) == info["pgid"]  # killpg(pgid) would hit it
        status = subprocess.run(thresher_cmd("status", str(out)), cwd=REPO, capture_output=True, text=True)
        assert "stale run.pid" in status.stdout and "running" not in status.stdout, status.stdout
        stop = subprocess.run(thresher_cmd("stop", str(out), "--grace", "1"), cwd=REPO, capture_output=True,
                              text=True)
        assert stop.returncode == 1 and "not running" in stop.stdout and "another process" in stop.stdout
        allstop = subprocess.run(["bash", "stopall.sh"], cwd=REPO, env=env, capture_output=True, text=True)
        assert "stopped 0 run(s)" in allstop.stdout, allstop.stdout + allstop.stderr
        time.sleep(0.3)
        assert stranger.poll() is None, "the unrelated process was signalled"
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.slow
def test_two_simultaneous_starts_one_runs_one_is_refused(tmp_path):
    recipe, out, env = _slow_run(tmp_path)
    starters = [_start(recipe, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    info = _wait_pidfile(out / "run.pid")
    refused = []
    for _ in range(150):  # the loser exits as soon as it fails to take the lock
        refused = [p for p in starters if p.poll() is not None]
        if refused:
            break
        time.sleep(0.1)
    assert len(refused) == 1 and refused[0].returncode == 3, [p.poll() for p in starters]
    assert "already active" in refused[0].stderr.read()
    time.sleep(0.5)
    assert json.loads((out / "run.pid").read_text()) == info, "the refused start touched run.pid"
    stop = subprocess.run(["bash", "stopall.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert "stopped 1 run(s)" in stop.stdout, stop.stdout + stop.stderr
    for p in starters:
        p.wait(timeout=30)
    assert _group_members(info["pgid"]) == []

