"""Small stages that exercise every executor path: a map stage, a global stage whose
reduce fans out with ctx.pmap (hash-partitioned exact dedup, the shape of the real
MinHash/SemDeDup reduces), a model-backed stage (actor pool), and a tiering global
stage with split_by.  Loaded by recipes as a plugin file, so Ray workers import it
by path exactly as they would a user's plugin."""
from __future__ import annotations

import hashlib
import os
import time

import orjson

from thresher.pipeline import GlobalStage, Stage, register

PARTITIONS = 4


def hold_once(stage) -> None:
    """Test hook (``hold_dir``): the first batch a worker process runs records its pid and
    waits until the test has killed one of the holders (it then writes ``killed``)."""
    if not stage.hold_dir or getattr(stage, "_held", False):
        return
    stage._held = True
    with open(os.path.join(stage.hold_dir, f"{os.getpid()}.pid"), "w") as f:
        f.write(str(os.getpid()))
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(stage.hold_dir, "killed")) and time.time() < deadline:
        time.sleep(0.05)


def _digest(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()


@register("rt_len")
class RtLen(Stage):
    """Rejects short records; ``sleep_ms`` per record makes a run slow enough to kill."""
    defaults = {"min_chars": 30, "sleep_ms": 0, "hold_dir": ""}

    def process_batch(self, records):
        hold_once(self)
        if self.sleep_ms:
            time.sleep(self.sleep_ms / 1000 * len(records))
        return super().process_batch(records)

    def process(self, r):
        n = len(r.full_text())
        r.signals()["chars"] = n
        if n < self.min_chars:
            return self.reject(r, "too_short", n, self.min_chars)
        return r


def _reduce_partition(job: tuple[str, str, int]) -> dict:
    """One pmap item: every shard's partition-k file -> dup id -> kept id (the smallest id)."""
    artifact_dir, state_dir, k = job
    groups: dict[str, list[str]] = {}
    for name in sorted(os.listdir(artifact_dir)):
        if name.endswith(f".p{k}.tsv"):
            with open(os.path.join(artifact_dir, name), encoding="utf-8") as f:
                for line in f:
                    h, rid = line.rstrip("\n").split("\t")
                    groups.setdefault(h, []).append(rid)
    dups = {}
    for ids in groups.values():
        keep = min(ids)
        dups.update({rid: keep for rid in ids if rid != keep})
    tmp = os.path.join(state_dir, f"p{k}.json.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(dups, option=orjson.OPT_SORT_KEYS))
    os.replace(tmp, os.path.join(state_dir, f"p{k}.json"))
    return {"partition": k, "dups": len(dups), "pid": os.getpid()}


@register("rt_exact")
class RtExact(GlobalStage):
    defaults = {"partitions": PARTITIONS}

    def collect(self, records, ctx):
        parts: list[list[str]] = [[] for _ in range(self.partitions)]
        for r in records:
            h = _digest(r.full_text())
            parts[int(h[:8], 16) % self.partitions].append(f"{h}\t{r.id}\n")
        for k, lines in enumerate(parts):
            path = ctx.artifact_path(f".p{k}.tsv")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.writelines(lines)
            os.replace(path + ".tmp", path)

    def reduce(self, ctx):
        out = ctx.pmap(_reduce_partition, [(ctx.artifact_dir, ctx.state_dir, k) for k in range(self.partitions)])
        return {"dups": sum(o["dups"] for o in out), "pmap_pids": sorted({o["pid"] for o in out})}

    def load(self, ctx):
        self.dup_of = {}
        for k in range(self.partitions):
            with open(os.path.join(ctx.state_dir, f"p{k}.json"), "rb") as f:
                self.dup_of.update(orjson.loads(f.read()))

    def process(self, r):
        keep = self.dup_of.get(r.id)
        return self.reject(r, "exact_dup", dup_of=keep) if keep else r


@register("rt_model")
class RtModel(Stage):
    """Stands in for an embedding / IFD scorer: a per-process "model" built in setup,
    run on an actor pool because the class says it is model-backed."""
    ray_actor = True
    defaults = {"num_cpus": 1, "num_gpus": 0, "hold_dir": ""}

    def process_batch(self, records):
        hold_once(self)
        return super().process_batch(records)

    def setup(self, ctx):
        self.salt = hashlib.sha1(b"model-weights").digest()  # the "weights", loaded once per actor

    def process(self, r):
        h = hashlib.sha1(self.salt + r.full_text().encode()).digest()
        r.meta.setdefault("scores", {})["rt_model"] = int.from_bytes(h[:4], "big") / 2**32
        return r


@register("rt_tier")
class RtTier(GlobalStage):
    """Tiers by score quantiles computed over the whole corpus."""
    defaults = {"top": 0.3, "bottom": 0.3}

    def collect(self, records, ctx):
        with open(ctx.artifact_path(".json"), "wb") as f:
            f.write(orjson.dumps([r.meta["scores"]["rt_model"] for r in records]))

    def reduce(self, ctx):
        scores = []
        for name in sorted(os.listdir(ctx.artifact_dir)):
            with open(os.path.join(ctx.artifact_dir, name), "rb") as f:
                scores += orjson.loads(f.read())
        scores.sort()
        cuts = {"hi": scores[int(len(scores) * (1 - self.top))], "lo": scores[int(len(scores) * self.bottom)]}
        with open(os.path.join(ctx.state_dir, "cuts.json"), "wb") as f:
            f.write(orjson.dumps(cuts))
        return {"n": len(scores), **cuts}

    def load(self, ctx):
        with open(os.path.join(ctx.state_dir, "cuts.json"), "rb") as f:
            self.cuts = orjson.loads(f.read())

    def process(self, r):
        s = r.meta["scores"]["rt_model"]
        r.meta["tier"] = "A" if s >= self.cuts["hi"] else "C" if s < self.cuts["lo"] else "B"
        return r
