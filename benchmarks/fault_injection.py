"""Fault injection report (issue 12): what each kind of bad input or crash does, and
how many records it loses.

1. Every malformed-input kind of tests/test_fuzz_inputs.py (mixed with good records,
   one strict run): the sink each unit ended in and the error/reason recorded; units
   neither in a sink nor inside an explicit "unreadable remainder" entry are *lost*.
2. N random SIGKILLs of the whole process group (default 20) and a resume: files
   byte-identical to an uninterrupted run, temp files left.
3. The process/input faults, each by its test (stale PID really reused, two starts,
   input edited/appended/deleted between kill and resume, code change, input deleted
   mid-run, moved run dir, ENOSPC), pass/fail as run here.

    .venv/bin/python benchmarks/fault_injection.py [--kills 20] [--out benchmarks/results/fault_injection]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import test_fuzz_inputs as fuzz  # noqa: E402
import test_run_integrity as integrity  # noqa: E402
from thresher.inspect import iter_sink  # noqa: E402

PROCESS_FAULTS = [
    ("stale run.pid, PID really reused (ns_last_pid) by an unrelated process",
     "tests/test_operator_scripts.py::test_stale_pid_reused_by_an_unrelated_process_survives_stop_tools",
     "status says stale; `thresher stop` and stopall.sh signal nothing; the process lives"),
    ("two simultaneous starts on one run dir",
     "tests/test_operator_scripts.py::test_two_simultaneous_starts_one_runs_one_is_refused",
     "one runs, one exits 3; run.pid untouched; stopall stops the live run"),
    ("stop / resume through the operator scripts",
     "tests/test_operator_scripts.py::test_start_stop_resume_via_operator_scripts",
     "SIGTERM to the verified group; resume completes, conserved"),
    ("input edited (same size) between kill and resume",
     "tests/test_run_integrity.py::test_input_changed_between_kill_and_resume_is_refused[edit_same_size]",
     "resume refused (exit 2) naming the file; --restart reads the new file"),
    ("input appended between kill and resume",
     "tests/test_run_integrity.py::test_input_changed_between_kill_and_resume_is_refused[append]",
     "resume refused naming the file and sizes; --restart reads all lines"),
    ("input deleted between kill and resume",
     "tests/test_run_integrity.py::test_input_changed_between_kill_and_resume_is_refused[delete]",
     "resume refused: `in.jsonl: deleted`"),
    ("code version changed between kill and resume",
     "tests/test_run_integrity.py::test_code_change_between_kill_and_resume_is_refused_unless_accepted",
     "refused; --accept-changed resumes"),
    ("input deleted while the run is going",
     "tests/test_run_integrity.py::test_input_deleted_mid_run_fails_the_run_and_says_so",
     "sinks written, remainder entries, exit 4, INCOMPLETE INPUT in summary"),
    ("run dir moved between kill and resume",
     "tests/test_run_integrity.py::test_moved_run_dir_resumes_to_identical_output",
     "resume completes, output byte-identical"),
    ("disk full (ENOSPC) while writing a shard / a JSON file",
     "tests/test_run_integrity.py::test_disk_full_leaves_no_temp_file",
     "error raised, no *.tmp-* left"),
]


def fuzz_table(work: Path) -> tuple[list[dict], dict]:
    ledger = fuzz.Ledger()
    kinds = fuzz._build_inputs(work / "in", ledger)
    out = work / "strict"
    recipe = fuzz._recipe(work, work / "in", out, "fail")
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "run", recipe], cwd=REPO,
                          capture_output=True, text=True)
    found, remainders, _ = fuzz._sinks(out)
    by_origin = {}
    for sink in ("kept", "rejected", "quarantine"):
        for r in iter_sink(str(out), sink):
            origin = (r.get("meta", {}).get("origin") or r.get("origin") or "").split("#")[0]
            by_origin.setdefault(origin, []).append((sink, r))
    rows = []
    for kind, key in kinds.items():
        if key in ledger.files:  # a file-level kind
            rows.append(_file_row(kind, key, ledger.files[key], found, remainders))
        else:
            rows.append(_unit_row(kind, key, by_origin.get(key, [])))
    return rows, {"exit": proc.returncode, "kinds": len(kinds)}


def _unit_row(kind: str, key: str, hits: list) -> dict:
    if not hits:
        return {"kind": kind, "what": "in no sink", "lost": 1}
    sink, r = hits[0]
    if sink == "quarantine":
        what = f"quarantine: {r['error'][:90]}"
    elif sink == "rejected":
        what = f"rejected: {r['meta']['reject']['stage']}:{r['meta']['reject']['reason']}"
    else:
        what = "kept" + (f" (decoded as {r['meta']['encoding']})" if r["meta"].get("encoding") else "")
    return {"kind": kind, "what": what, "lost": 0}


def _file_row(kind: str, rel: str, f: dict, found: dict, remainders: list) -> dict:
    rems = [q for q in remainders if q["file"] == rel]
    read = sum(k in found for k in f["units"])
    inside = sum(1 for k, rng in f["units"].items() if k not in found and (f["whole"] or rng and any(
        fuzz._in_remainder(rng, q) for q in rems)))
    lost = len(f["units"]) - read - inside
    what = f"{read} units read" + (f"; remainder entry ({rems[0]['error'][:70]})" if rems else "")
    if inside:
        what += f"; {inside} units inside it (unreadable, reported, exit 4)"
    return {"kind": kind, "what": what, "lost": lost}


def kill_cycles(work: Path, kills: int) -> dict:
    t0 = time.time()
    expected, got, hits, temps = integrity.sigkill_resume_cycles(work, kills)
    same = sum(got.get(k) == v for k, v in expected.items())
    return {"kills": kills, "hit_live_run": hits, "files": len(expected), "identical": same,
            "summary_identical": got.get("summary.txt") == expected["summary.txt"], "temp_left": len(temps),
            "seconds": round(time.time() - t0, 1)}


def process_faults() -> list[dict]:
    rows = []
    for name, node, expect in PROCESS_FAULTS:
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", node], cwd=REPO, capture_output=True,
                           text=True)
        status = "pass" if p.returncode == 0 and "skipped" not in p.stdout.splitlines()[-1] else \
            ("skipped" if "skipped" in p.stdout.splitlines()[-1] else "FAIL")
        rows.append({"fault": name, "test": node, "expected": expect, "result": status,
                     "seconds": round(time.time() - t0, 1)})
    return rows


def render(fz: list[dict], fmeta: dict, kc: dict, pf: list[dict]) -> str:
    lines = ["# Fault injection (issue 12)", "",
             "Generated by `benchmarks/fault_injection.py`; every row is measured on this machine.", "",
             f"## Malformed input: {fmeta['kinds']} kinds, one strict run (exit {fmeta['exit']}; 4 = sinks complete, "
             "some input unreadable)", "",
             "| kind | what happened | records lost |", "|---|---|---|"]
    lines += [f"| {r['kind']} | {r['what'].replace('|', '/')} | {r['lost']} |" for r in fz]
    lines += ["", f"Total lost: **{sum(r['lost'] for r in fz)}**. \"Lost\" = a unit the test wrote that is in no "
              "sink and not inside an explicit unreadable-remainder entry (checked against the test's own ledger).",
              "", f"## {kc['kills']} random SIGKILLs (whole process group) + resume", "",
              f"- kills that hit a live run: {kc['hit_live_run']}/{kc['kills']}",
              f"- output files byte-identical to an uninterrupted run: {kc['identical']}/{kc['files']} "
              f"(summary.txt identical: {kc['summary_identical']})",
              f"- `*.tmp-*` files left: {kc['temp_left']}", f"- wall time: {kc['seconds']} s", "",
              "## Process and input faults", "", "| fault | expected behaviour | result | s |", "|---|---|---|---|"]
    lines += [f"| {r['fault']} | {r['expected']} | {r['result']} | {r['seconds']} |" for r in pf]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "fault_injection"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fuzz").mkdir()
        (Path(tmp) / "kill").mkdir()
        fz, fmeta = fuzz_table(Path(tmp) / "fuzz")
        kc = kill_cycles(Path(tmp) / "kill", args.kills)
    pf = process_faults()
    with open(args.out + ".json", "w") as f:
        json.dump({"fuzz": fz, "fuzz_run": fmeta, "sigkill": kc, "process_faults": pf}, f, indent=2, ensure_ascii=False)
    with open(args.out + ".md", "w", encoding="utf-8") as f:
        f.write(render(fz, fmeta, kc, pf))
    lost = sum(r["lost"] for r in fz)
    return 0 if lost == 0 and kc["identical"] == kc["files"] and all(r["result"] != "FAIL" for r in pf) else 1


if __name__ == "__main__":
    sys.exit(main())
