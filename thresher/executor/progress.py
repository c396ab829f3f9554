"""Live progress: one redrawn line on a terminal, periodic log lines otherwise."""
from __future__ import annotations

import sys
import threading
import time

from ..log import get_logger


def _fmt_secs(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    def __init__(self, total_shards: int, interval: float = 10.0, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.5 if self.tty else interval
        self.total_shards = total_shards
        self.lock = threading.Lock()
        self.start_segment("", 0, None)
        self._last = 0.0

    def start_segment(self, label: str, done_shards: int, expected_records: int | None) -> None:
        self.label = label
        self.done_shards = done_shards
        self.expected = expected_records
        self.records = 0
        self.kept = self.rejected = self.quarantined = 0
        self.stage_rejects: dict[str, int] = {}
        self.t0 = time.time()

    def advance(self, n: int) -> None:
        with self.lock:
            self.records += n
        self.maybe_render()

    def shard_done(self, result: dict, resumed: bool = False) -> None:
        with self.lock:
            self.done_shards += 1
            self.kept += result["kept"]
            self.rejected += result["rejected"]
            self.quarantined += result["quarantined"]
            if resumed:  # live shards advance by records read, quarantine not included
                self.records += result["in"] - result["quarantined"]
            for label, s in result["stages"].items():
                self.stage_rejects[label] = self.stage_rejects.get(label, 0) + s["rejected"]
        self.maybe_render()

    def line(self) -> str:
        elapsed = max(time.time() - self.t0, 1e-6)
        rate = self.records / elapsed
        if self.expected:
            eta = (self.expected - self.records) / rate if rate > 0 else float("nan")
        else:
            frac = self.done_shards / max(self.total_shards, 1)
            eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        eta_s = _fmt_secs(eta) if eta == eta and eta >= 0 else "?"
        top = sorted(self.stage_rejects.items(), key=lambda kv: -kv[1])[:3]
        stages = " ".join(f"{k}:{v}" for k, v in top if v)
        return (f"[{self.label}] shards {self.done_shards}/{self.total_shards} | {self.records:,} rec "
                f"{rate:,.0f} rec/s | kept {self.kept:,} rej {self.rejected:,} quar {self.quarantined:,} "
                f"| ETA {eta_s}" + (f" | {stages}" if stages else ""))

    def maybe_render(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()
        else:
            get_logger().info(self.line())

    def finish_segment(self) -> None:
        self.maybe_render(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
