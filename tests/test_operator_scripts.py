"""run_data_cleaning.sh / stopall.sh: start, refuse a second start, stop by process group, resume."""
import json
import os
import subprocess
import time

import pytest

from foundation_util import REPO, write_recipe


def _group_members(pgid):
    """Live processes of the group (zombies are gone already; a container's PID 1 may
    simply not reap them)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
    return [int(p) for p, g, st in (line.split() for line in out.splitlines())
            if int(g) == pgid and not st.startswith("Z")]


@pytest.mark.slow
def test_start_stop_resume_via_operator_scripts(tmp_path):
    rows = [{"text": f"文档{i % 900}：" + "正文内容" * (i % 9 + 2)} for i in range(3000)]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", [{"path": str(tmp_path / "in.jsonl")}], out,
                          [{"t_slow": {"seconds_per_batch": 0.4}}, "t_exact_dedup"],
                          shard_bytes="8KB", batch_size=100)
    env = {**os.environ, "THRESHER_HOME": str(tmp_path / "home"), "STOP_GRACE": "5"}
    starter = subprocess.Popen(["bash", "run_data_cleaning.sh", recipe], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = out / "run.pid"
    for _ in range(150):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    pgid = int(pidfile.read_text())
    time.sleep(1.5)
    assert _group_members(pgid), "run should be alive"
    second = subprocess.run(["bash", "run_data_cleaning.sh", recipe], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert second.returncode == 3 and "already active" in second.stderr

    stop = subprocess.run(["bash", "stopall.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert "stopping" in stop.stdout, stop.stdout + stop.stderr
    starter.wait(timeout=30)
    assert _group_members(pgid) == []
    assert not (out / "manifest.json").exists(), "stopped before finishing"
    done_before = len(list((out / "state" / "seg-0").glob("*.json")))

    resumed = subprocess.run(["bash", "run_data_cleaning.sh", recipe], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, (out / "run.log").read_text()[-2000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["conserved"] and man["counts"]["in"] == 3000 and man["counts"]["kept"] == 900
    log = (out / "run.log").read_text()
    assert "stopped by signal 15" in log
    assert done_before >= 0 and not pidfile.exists()
