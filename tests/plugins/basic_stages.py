"""Small stages used by the foundation tests (loaded through a recipe's `plugins:`)."""
import os
import time

import orjson

from thresher.io.writers import atomic_write_bytes
from thresher.pipeline import GlobalStage, Stage, register


@register("t_min_chars")
class MinChars(Stage):
    defaults = {"min_chars": 5}

    def process(self, r):
        n = len(r.full_text())
        r.signals()["chars"] = n
        return self.reject(r, "too_short", n, self.min_chars) if n < self.min_chars else r


@register("t_slow")
class Slow(Stage):
    """Sleeps per batch so that a run lasts long enough to be killed mid-way."""
    defaults = {"seconds_per_batch": 0.05}

    def process_batch(self, records):
        time.sleep(self.seconds_per_batch)
        return records


@register("t_exact_dedup")
class ExactDedup(GlobalStage):
    """Keeps the first copy of each content hash in (shard, position) order, decided in
    reduce, so the result does not depend on workers or scheduling."""

    def collect(self, records, ctx):
        atomic_write_bytes(ctx.artifact_path(".json"), orjson.dumps([r.id for r in records]))

    def reduce(self, ctx):
        first, drop = {}, {}
        for name in sorted(os.listdir(ctx.artifact_dir)):
            with open(os.path.join(ctx.artifact_dir, name), "rb") as f:
                for rid in orjson.loads(f.read()):
                    content = rid.rsplit(".", 1)[0]
                    if content in first:
                        drop[rid] = first[content]
                    else:
                        first[content] = rid
        atomic_write_bytes(os.path.join(ctx.state_dir, "drop.json"), orjson.dumps(drop))
        return {"dropped": len(drop)}

    def load(self, ctx):
        with open(os.path.join(ctx.state_dir, "drop.json"), "rb") as f:
            self.drop = orjson.loads(f.read())

    def process(self, r):
        if r.id in self.drop:
            return self.reject(r, "exact_dup", 1.0, dup_of=self.drop[r.id])
        return r


@register("t_tag_length")
class TagLength(Stage):
    """Writes meta['tier'] from the text length, to exercise output.split_by."""
    defaults = {"cut": 20}

    def process(self, r):
        r.meta["tier"] = "long" if len(r.full_text()) >= self.cut else "short"
        return r
