"""Readers (format detection, sharding, quarantine) and atomic writers."""
from .readers import Quarantined, ShardSpec, iter_records, plan_shards, read_shard  # noqa: F401
from .writers import ShardWriter, write_manifest  # noqa: F401
