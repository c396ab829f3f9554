#!/usr/bin/env bash
# Operators' entry point.   nohup bash run_data_cleaning.sh [recipe] [thresher run options] &
#
# With no recipe, runs configs/default.yaml on the built-in demo corpus (generated on
# first use into data/demo).  The run's log (run.log), process-group id (run.pid) and
# state live in the recipe's output.dir; the run dir is also recorded in
# $THRESHER_HOME/runs.list so that `bash stopall.sh` can find it.  A second start on
# the same output dir is refused while the first is alive; a stopped or killed run
# resumes from its checkpoints when started again.
set -euo pipefail
cd "$(dirname "$0")"
RECIPE="${1:-configs/default.yaml}"
[ $# -gt 0 ] && shift
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
if [ ! -x .venv/bin/python ] && ! "$PY" -c "import thresher" 2>/dev/null; then
  echo "thresher is not installed; run: bash scripts/setup.sh" >&2
  exit 2
fi
if [ "$RECIPE" = "configs/default.yaml" ] && [ ! -f data/demo/web_zh.jsonl ]; then
  "$PY" -m thresher.cli demo --out data/demo
fi
RUN_DIR="$("$PY" -m thresher.cli run-dir "$RECIPE")"
mkdir -p "$RUN_DIR"
STATE_HOME="${THRESHER_HOME:-$HOME/.thresher}"
mkdir -p "$STATE_HOME"
RUN_DIR_ABS="$(cd "$RUN_DIR" && pwd)"
grep -qxF "$RUN_DIR_ABS" "$STATE_HOME/runs.list" 2>/dev/null || echo "$RUN_DIR_ABS" >> "$STATE_HOME/runs.list"
echo "thresher: run dir $RUN_DIR_ABS (log: $RUN_DIR_ABS/run.log)"
# The python process makes itself a process-group leader; once it holds the run's lock
# it records pid, pgid, start time and this token in run.pid (stop tools verify all of
# them against /proc).  A second start on the same run dir is refused by the lock and
# leaves the live run's run.pid alone.
export THRESHER_RUN_TOKEN="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
rc=0
"$PY" -m thresher.cli run "$RECIPE" --pidfile "$RUN_DIR_ABS/run.pid" "$@" >> "$RUN_DIR_ABS/run.log" 2>&1 || rc=$?
if [ "$rc" = 3 ]; then
  echo "refused: a run is already active on $RUN_DIR_ABS; stop it with: bash stopall.sh" >&2
elif [ "$rc" = 0 ]; then
  cat "$RUN_DIR_ABS/summary.txt"
  echo "kept records: $RUN_DIR_ABS/kept   report: .venv/bin/python -m thresher.cli report $RUN_DIR_ABS"
else
  echo "run ended with status $rc; see $RUN_DIR_ABS/run.log (start again to resume)" >&2
fi
exit "$rc"
