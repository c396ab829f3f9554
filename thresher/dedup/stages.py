"""Exact and MinHash-LSH dedup as global stages (see base.py for the artifact layout)."""
from __future__ import annotations

import os

import numpy as np
import xxhash

from ..pipeline import COUNT, POSITIVE, ConfigError, StageContext, between, one_of, register
from ..records import Record
from .keys import KEEP_POLICIES, KEY_FIELDS
from .base import DedupStage, Sources, load_json, save_json, write_shard
from .index import append_run, index_parts
from .reduce import partitioned_decision
from .minhash import MinHasher, band_hashes, empty_mask, optimal_param, s_curve, verify_cutoff
from .normalize import normalize_key


class _BucketDedup(DedupStage):
    """reduce/finalize shared by exact and MinHash dedup."""
    # partitions: bucket-hash / node partitions of the reduce (0 = one per 4M banded records)
    bucket_defaults = {**DedupStage.common_defaults, "partitions": 0}
    bucket_rules = {"key_field": one_of(*KEY_FIELDS), "keep": one_of(*KEEP_POLICIES), "min_key_chars": COUNT,
                    "partitions": COUNT}
    rules = bucket_rules
    signature_similarity = False  # dup similarity from signatures (MinHash) or 1.0 (exact)

    def index_meta(self) -> dict:
        raise NotImplementedError

    def n_bands(self) -> int:
        raise NotImplementedError

    def verify_threshold(self) -> float:
        return 0.0

    def reduce(self, ctx: StageContext) -> dict:
        sources = Sources.of_run(ctx.artifact_dir, index_parts(self.index_dir, self.index_meta()))
        stats = partitioned_decision(ctx, sources, self.n_bands(), self.verify_threshold(), self.keep,
                                     self.signature_similarity, self.partitions)
        stats["index_parts"] = len(sources.index)
        save_json(os.path.join(ctx.state_dir, "stats.json"), stats)
        return stats

    def finalize(self, ctx: StageContext) -> None:
        if not self.write_index:
            return
        with np.load(os.path.join(ctx.state_dir, "decision.npz")) as z:
            dropped = z["dropped"]
        n = append_run(self.write_index, self.index_meta(), ctx.artifact_dir, dropped)
        save_json(os.path.join(ctx.state_dir, "index_written.json"), {"index": self.write_index, "added": n})


@register("exact_dedup")
class ExactDedup(_BucketDedup):
    """Drop records whose normalised key text (width, case, whitespace and punctuation
    variants folded; optionally Traditional->Simplified) equals an earlier-kept one's."""
    reason = "exact_dup"
    defaults = {**_BucketDedup.bucket_defaults, "t2s": False, "drop_punct": False}

    def index_meta(self) -> dict:
        return {"method": "exact", "key_field": self.key_field, "t2s": self.t2s, "drop_punct": self.drop_punct}

    def n_bands(self) -> int:
        return 1

    def collect(self, records: list[Record], ctx: StageContext) -> None:
        keys, texts, table = self.keys_and_table(records, ctx)
        norm = [normalize_key(t, t2s=self.t2s, drop_punct=self.drop_punct) for t in texts]
        h = np.fromiter((xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in norm),
                        np.uint64, len(norm))
        valid = np.fromiter((bool(t) for t in norm), bool, len(norm))
        write_shard(self.prefix(ctx), keys, h[:, None], valid, table, [r.id for r in records])


@register("minhash_dedup")
class MinHashDedup(_BucketDedup):
    """Near-duplicate removal: MinHash of CJK-character / Latin-word n-grams, LSH with
    bands x rows chosen for ``threshold``, candidate pairs verified on signatures."""
    reason = "near_dup"
    signature_similarity = True
    defaults = {**_BucketDedup.bucket_defaults, "threshold": 0.8, "num_perm": 128, "ngram": 5, "bands": 0,
                "rows": 0, "seed": 1, "t2s": False, "verify": "signature", "verify_slack": 3.0, "batch": 1024}
    rules = {**_BucketDedup.bucket_rules, "threshold": between(0, 1, lo_open=True), "num_perm": POSITIVE,
             "ngram": POSITIVE, "bands": COUNT, "rows": COUNT, "verify": one_of("none", "signature"),
             "verify_slack": COUNT, "batch": POSITIVE}

    def __init__(self, label=None, **params):
        super().__init__(label, **params)
        self.b, self.r = (self.bands, self.rows) if self.bands and self.rows else \
            optimal_param(self.threshold, self.num_perm)
        if self.b * self.r > self.num_perm:
            raise ConfigError(f"minhash_dedup: bands*rows={self.b * self.r} exceeds num_perm={self.num_perm}")
        self.hasher = MinHasher(num_perm=self.num_perm, ngram=self.ngram, seed=self.seed, t2s=self.t2s)

    def threshold_value(self):
        return self.threshold

    def index_meta(self) -> dict:
        return {"method": "minhash", "key_field": self.key_field, "num_perm": self.num_perm, "ngram": self.ngram,
                "bands": self.b, "rows": self.r, "seed": self.seed, "t2s": self.t2s}

    def n_bands(self) -> int:
        return self.b

    def verify_threshold(self) -> float:
        return verify_cutoff(self.threshold, self.num_perm, self.verify_slack) if self.verify == "signature" else 0.0

    def collect(self, records: list[Record], ctx: StageContext) -> None:
        keys, texts, table = self.keys_and_table(records, ctx)
        sig = np.empty((len(texts), self.num_perm), np.uint32)
        for lo in range(0, len(texts), self.batch):
            sig[lo:lo + self.batch] = self.hasher.signatures(texts[lo:lo + self.batch])
        write_shard(self.prefix(ctx), keys, band_hashes(sig, self.b, self.r), ~empty_mask(sig), table,
                    [r.id for r in records], sig=sig)

    def reduce(self, ctx: StageContext) -> dict:
        stats = super().reduce(ctx)
        save_json(os.path.join(ctx.state_dir, "lsh.json"),
                  {"bands": self.b, "rows": self.r, "threshold": self.threshold,
                   "verify_cutoff": self.verify_threshold(), "s_curve": s_curve(self.b, self.r)})
        return {**stats, "bands": self.b, "rows": self.r}


def read_stats(state_dir: str) -> dict:
    return load_json(os.path.join(state_dir, "stats.json"))
