"""``run.pid``: which process group is running a run dir, checkable against ``/proc``.

A PID file outlives its process (SIGKILL, OOM kill, reboot) and the kernel reuses
PIDs, so a bare number may name a stranger.  The file records the leader's pid and
pgid, its start time (field 22 of ``/proc/<pid>/stat``), the boot id and a run token
that the leader also carries in its environment (``THRESHER_RUN_TOKEN``).  A group is
signalled only when all of these still match; otherwise the file is *stale*.

``thresher stop``, ``thresher status`` and ``stopall.sh`` (which calls ``thresher
stop``) all go through :func:`check` — one implementation.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import orjson

from ..io.writers import atomic_write_json

TOKEN_ENV = "THRESHER_RUN_TOKEN"


@dataclass
class PidInfo:
    pid: int
    pgid: int
    start_time: str
    boot_id: str
    token: str


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def proc_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot; None if there is no such process."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()  # the command name may contain spaces
    return fields[19].decode()  # field 22 overall; fields[0] is field 3 (state)


def proc_state(pid: int) -> str | None:
    stat = _read(f"/proc/{pid}/stat")
    return None if stat is None else stat[stat.rindex(b")") + 2:].split()[0].decode()


def boot_id() -> str:
    raw = _read("/proc/sys/kernel/random/boot_id")
    return raw.decode().strip() if raw else ""


def proc_token(pid: int) -> str | None:
    env = _read(f"/proc/{pid}/environ")
    if env is None:
        return None
    prefix = f"{TOKEN_ENV}=".encode()
    for item in env.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode("ascii", "replace")
    return None


def write_pidfile(path: str, token: str) -> PidInfo:
    """Record this process (the lock holder) as the run's group leader."""
    pid = os.getpid()
    info = PidInfo(pid, os.getpgid(0), proc_start_time(pid) or "", boot_id(), token)
    atomic_write_json(path, info.__dict__)
    return info


def read_pidfile(path: str) -> PidInfo | str | None:
    """The recorded run, None if there is no file, or a string saying why it is unusable."""
    raw = _read(path)
    if raw is None:
        return None
    try:
        d = orjson.loads(raw)
        return PidInfo(int(d["pid"]), int(d["pgid"]), str(d["start_time"]), str(d["boot_id"]), str(d["token"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return f"unreadable pid file ({raw[:40]!r})"


def check(info: PidInfo) -> str | None:
    """None if the recorded leader is still that very process; else why the file is stale."""
    if info.boot_id and info.boot_id != boot_id():
        return "recorded before the last reboot"
    started = proc_start_time(info.pid)
    if started is None or proc_state(info.pid) in ("Z", "X"):
        return f"process {info.pid} is gone"
    if started != info.start_time:
        return f"pid {info.pid} now belongs to another process (started at tick {started}, recorded {info.start_time})"
    if proc_token(info.pid) != info.token:
        return f"pid {info.pid} does not carry this run's token"
    try:
        if os.getpgid(info.pid) != info.pgid:
            return f"pid {info.pid} left process group {info.pgid}"
    except ProcessLookupError:
        return f"process {info.pid} is gone"
    return None


def group_alive(pgid: int) -> bool:
    """Any member of the group that is not a zombie (a container's PID 1 may not reap them)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        if stat is None:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def remove_if_same(path: str, info: PidInfo) -> None:
    """Remove the file only if it still records ``info`` (a new run may have replaced it)."""
    current = read_pidfile(path)
    if isinstance(current, PidInfo) and current == info:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def stop(info: PidInfo, grace: float) -> str:
    """SIGTERM to the verified group, SIGKILL after ``grace`` seconds; returns what happened."""
    try:
        os.killpg(info.pgid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(info.pgid):
        time.sleep(0.2)
    if not group_alive(info.pgid):
        return "terminated"
    try:
        os.killpg(info.pgid, signal.SIGKILL)
    except ProcessLookupError:
        return "terminated"
    return "killed"
