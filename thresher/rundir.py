"""Every path of a run, in one place.

A run directory holds::

    .lock  run.pid                      the run's flock and its process record
    state/plan.json                     the stored plan (shards, fingerprints)
    state/seg-<k>/shard-<n>.json        checkpoint marker of one map task
    state/global-<ii>.json              checkpoint marker of one reduce
    work/seg-<k>/shard-<n>.jsonl.zst    kept records between segments
    work/global-<ii>-<name>/{artifacts,state}   a global stage's files
    kept/ [<group>/] shard-<n><ext>     final kept records (+ manifest.json per sink/group)
    rejected/seg-<k>-shard-<n><ext>     rejected records of every segment
    quarantine/[seg-<k>-]shard-<n>.jsonl.zst    unreadable input / stage errors
    stats/samples/… stats/rejected_samples.jsonl
    selections/<name>/  report/  manifest.json  summary.txt  stats.json  tiers.json

Everything else in thresher asks a :class:`RunDir` for these paths instead of
joining string literals.

**Remote output** (``output.dir: s3://bucket/run``, any fsspec URL): the run executes
in a local *work dir* (the executor's shards, markers, artifacts and lock need a
POSIX filesystem: flock, rename, byte-range resume) and, once finished, the
published part of the run (sinks, manifests, stats, summary, tiers, selections,
report — :data:`PUBLISHED`) is uploaded to the URL.  The work dir is
``output.work_dir`` when the recipe sets it, else ``$THRESHER_WORK_DIR/<slug>``,
else ``~/.cache/thresher/runs/<slug>``, where the slug is derived from the URL, so a
rerun of the same recipe finds it and resumes.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil

from .io import fs
from .io.atomic import clean_temp_files, is_temp
from .io.writers import EXT

# what a run (and its global stages) writes into its run dir; --restart removes it
OUTPUTS = ("state", "work", "kept", "rejected", "quarantine", "stats", "selections", "report")
FILES = ("summary.txt", "stats.json", "tiers.json", "manifest.json")
SINKS = ("kept", "rejected", "quarantine")
# what a remote output receives: the results, not the executor's scratch (manifest.json
# last: a reader that sees it sees a complete run)
PUBLISHED = ("kept", "rejected", "quarantine", "stats", "selections", "report") + FILES


def default_work_dir(url: str) -> str:
    """The local work dir of a run whose output is the remote ``url``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[-1]).strip("_")[-80:]
    slug = f"{slug}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"
    base = os.environ.get("THRESHER_WORK_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "thresher", "runs")
    return os.path.join(base, slug)


class RunDir:
    """The paths of one run.  ``root`` is the local directory the run executes in;
    ``output`` is where its results end up (``root`` itself, or a remote URL)."""

    def __init__(self, output: str, work_dir: str | None = None):
        self.output = output
        self.remote = fs.is_remote(output)
        if self.remote:
            self.root = os.path.abspath(os.path.expanduser(work_dir)) if work_dir else default_work_dir(output)
        else:
            self.root = output

    @classmethod
    def of(cls, recipe: dict) -> "RunDir":
        out = recipe["output"]
        return cls(out["dir"], out.get("work_dir"))

    def __repr__(self) -> str:
        return f"RunDir({self.output!r}" + (f", work={self.root!r})" if self.remote else ")")

    # generic ------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def rel(self, path: str) -> str:
        """``path`` relative to the run dir (what markers store, so a run dir can move)."""
        return os.path.relpath(path, self.root)

    # bookkeeping --------------------------------------------------------------
    @property
    def lock(self) -> str:
        return self.path(".lock")

    @property
    def pidfile(self) -> str:
        return self.path("run.pid")

    @property
    def state(self) -> str:
        return self.path("state")

    @property
    def plan_file(self) -> str:
        return self.path("state", "plan.json")

    def marker(self, step: str, shard: int | None = None) -> str:
        name = f"{step}.json" if shard is None else os.path.join(step, f"shard-{shard:05d}.json")
        return self.path("state", name)

    def map_marker(self, seg: int, shard: int) -> str:
        return self.marker(f"seg-{seg}", shard)

    def reduce_marker(self, stage_index: int) -> str:
        return self.marker(f"global-{stage_index:02d}")

    def markers(self, step: str) -> list[str]:
        """The finished markers of one step (``seg-0``), temp files not counted."""
        d = self.path("state", step)
        return sorted(f for f in os.listdir(d) if not is_temp(f)) if os.path.isdir(d) else []

    # work ---------------------------------------------------------------------
    @property
    def work(self) -> str:
        return self.path("work")

    def segment_work(self, seg: int) -> str:
        return self.path("work", f"seg-{seg}")

    def work_shard(self, seg: int, shard: int) -> str:
        return os.path.join(self.segment_work(seg), f"shard-{shard:05d}.jsonl.zst")

    def global_dir(self, stage_index: int | str, name: str) -> str:
        """A global stage's folder; ``stage_index`` may be a glob (``"*"``) to find one."""
        index = stage_index if isinstance(stage_index, str) else f"{stage_index:02d}"
        return self.path("work", f"global-{index}-{name}")

    def artifacts(self, stage_index: int | str, name: str) -> str:
        return os.path.join(self.global_dir(stage_index, name), "artifacts")

    def global_state(self, stage_index: int | str, name: str) -> str:
        return os.path.join(self.global_dir(stage_index, name), "state")

    # sinks --------------------------------------------------------------------
    def sink(self, name: str, *parts: str) -> str:
        return self.path(name, *parts)

    @property
    def kept(self) -> str:
        return self.path("kept")

    def kept_shard(self, shard: int, fmt: str, group: str | None = None) -> str:
        return self.path("kept", *((group,) if group else ()), f"shard-{shard:05d}{EXT[fmt]}")

    def tier_dir(self, tier: str) -> str:
        return self.path("kept", tier)

    def rejected_rel(self, seg: int, shard: int, fmt: str) -> str:
        return os.path.join("rejected", f"seg-{seg}-shard-{shard:05d}{EXT[fmt]}")

    def quarantine_rel(self, seg: int, shard: int) -> str:
        # raw input (segment 0) has one quarantine shard per input shard; later
        # segments only when a stage raised on a record
        return os.path.join("quarantine", f"shard-{shard:05d}.jsonl.zst" if seg == 0
                            else f"seg-{seg}-shard-{shard:05d}.jsonl.zst")

    def sink_files(self, sink: str) -> list[str]:
        """Every data shard of a sink (groups/tiers included), temp files left out."""
        import glob
        files = glob.glob(os.path.join(self.path(sink), "**", "shard-*"), recursive=True)
        files += glob.glob(os.path.join(self.path(sink), "seg-*"))
        return sorted(f for f in set(files) if not is_temp(f))

    # results ------------------------------------------------------------------
    @property
    def manifest(self) -> str:
        return self.path("manifest.json")

    @property
    def summary(self) -> str:
        return self.path("summary.txt")

    @property
    def stats_json(self) -> str:
        return self.path("stats.json")

    @property
    def tiers_json(self) -> str:
        return self.path("tiers.json")

    def sink_manifest(self, sink: str, *group: str) -> str:
        return self.path(sink, *group, "manifest.json")

    def samples_file(self, seg: int, shard: int) -> str:
        return self.path("stats", "samples", f"seg-{seg}-shard-{shard:05d}.jsonl")

    @property
    def rejected_samples(self) -> str:
        return self.path("stats", "rejected_samples.jsonl")

    def selection(self, name: str) -> str:
        return self.path("selections", name)

    @property
    def report(self) -> str:
        return self.path("report")

    # life cycle ---------------------------------------------------------------
    def discard(self) -> None:
        """Remove what a run wrote (only thresher's own entries of the run dir)."""
        for sub in OUTPUTS:
            shutil.rmtree(self.path(sub), ignore_errors=True)
        for f in FILES:
            if os.path.exists(self.path(f)):
                os.remove(self.path(f))
        if self.remote:
            for name in PUBLISHED:
                fs.remove(fs.join(self.output, name))

    def clean_temp_files(self) -> int:
        """Remove the temp files killed writers left (call it holding the run's lock)."""
        n = clean_temp_files(self.root, recursive=False)
        for sub in OUTPUTS:
            n += clean_temp_files(self.path(sub))
        return n

    def publish(self) -> list[str]:
        """Upload the results of a finished run to a remote output; returns the names sent."""
        if not self.remote:
            return []
        sent = []
        for name in PUBLISHED:
            src = self.path(name)
            if os.path.exists(src):
                fs.upload(src, fs.join(self.output, name))
                sent.append(name)
        return sent
