#!/usr/bin/env bash
# Stop every run started with run_data_cleaning.sh: SIGTERM to its recorded process
# group, a grace period (STOP_GRACE seconds, default 20), then SIGKILL for that group
# only.  Nothing is killed by name, and nothing whose identity cannot be verified:
# `thresher stop` signals a group only when the pid, process start time, boot id and
# run token recorded in run.pid still match /proc (one implementation for the CLI and
# this script; a stale run.pid after a crash or reboot is reported and left alone).
# Stopped runs resume when started again.
set -uo pipefail
cd "$(dirname "$0")"
STATE_HOME="${THRESHER_HOME:-$HOME/.thresher}"
LIST="$STATE_HOME/runs.list"
GRACE="${STOP_GRACE:-20}"
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
[ -f "$LIST" ] || { echo "no runs recorded in $LIST"; exit 0; }
stopped=0
while IFS= read -r run_dir; do
  [ -n "$run_dir" ] && [ -f "$run_dir/run.pid" ] || continue
  if "$PY" -m thresher.cli stop "$run_dir" --grace "$GRACE"; then
    stopped=$((stopped + 1))
  fi
done < "$LIST"
echo "stopped $stopped run(s)"
