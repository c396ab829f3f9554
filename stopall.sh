#!/usr/bin/env bash
# Stop every run started with run_data_cleaning.sh: SIGTERM to its recorded process
# group, a grace period (STOP_GRACE seconds, default 20), then SIGKILL for that group
# only.  Nothing is killed by name.  Stopped runs resume when started again.
set -uo pipefail
STATE_HOME="${THRESHER_HOME:-$HOME/.thresher}"
LIST="$STATE_HOME/runs.list"
GRACE="${STOP_GRACE:-20}"
[ -f "$LIST" ] || { echo "no runs recorded in $LIST"; exit 0; }
# a group is alive while it has a process that is not a zombie (kill -0 counts zombies)
group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found=1} END {exit !found}'
}
stopped=0
while IFS= read -r run_dir; do
  pidfile="$run_dir/run.pid"
  [ -f "$pidfile" ] || continue
  pgid="$(cat "$pidfile")"
  case "$pgid" in ''|*[!0-9]*) echo "skip $run_dir: bad pid file"; continue ;; esac
  if ! group_alive "$pgid"; then
    rm -f "$pidfile"; continue
  fi
  # guard against pid reuse: the group leader must be a thresher run
  if ! tr '\0' ' ' < "/proc/$pgid/cmdline" 2>/dev/null | grep -q "thresher"; then
    echo "skip $run_dir: process group $pgid is not a thresher run"; continue
  fi
  echo "stopping $run_dir (process group $pgid)"
  kill -TERM -- "-$pgid" 2>/dev/null
  for _ in $(seq 1 $((GRACE * 5))); do
    group_alive "$pgid" || break
    sleep 0.2
  done
  if group_alive "$pgid"; then
    echo "  still alive after ${GRACE}s: SIGKILL to process group $pgid"
    kill -KILL -- "-$pgid" 2>/dev/null
  fi
  rm -f "$pidfile"
  stopped=$((stopped + 1))
done < "$LIST"
echo "stopped $stopped run(s)"
