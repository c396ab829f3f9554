"""Atomic shard writers and per-sink manifests.

A shard is written under a temporary name in the same folder and renamed when
complete, so a reader (or a resumed run) never sees half a file.  Compression is
single-threaded zstd at a fixed level, which makes the bytes a pure function of the
records: a resumed run produces byte-identical files.
"""
from __future__ import annotations

import hashlib
import os
from typing import Iterable

import orjson

from ..records import Record
# the atomic-write helpers live in .atomic; re-exported here for existing callers
from . import atomic
from .atomic import atomic_write_bytes, atomic_write_json, publish, remove_quietly, tmp_name  # noqa: F401

EXT = {"jsonl": ".jsonl", "jsonl.zst": ".jsonl.zst", "parquet": ".parquet"}


def estimate_tokens(text: str) -> int:
    """Rough LLM token count: ~0.7 token per CJK character (Qwen/Baichuan-style
    vocabularies) and ~1 token per 4 other characters (GPT-style BPE on English).

    CJK characters are the 3-byte UTF-8 characters; counting them by byte arithmetic
    instead of a regex keeps this off the writer's profile.
    """
    n_chars = len(text)
    wide = (len(text.encode("utf-8", "surrogatepass")) - n_chars) // 2
    return int(wide * 0.7 + (n_chars - wide) / 4) + 1


class ShardWriter:
    """Write JSON lines (records or quarantine entries) to one shard file atomically.

    Use as a context manager; on an exception the temporary file is removed and the
    final name is never created.  Lines are buffered and compressed on close.
    """

    def __init__(self, path: str, fmt: str = "jsonl.zst", skip_empty: bool = False):
        self.path = path
        self.fmt = fmt
        self.skip_empty = skip_empty  # write no file at all when nothing was written
        self.written = False
        self.tmp = tmp_name(path)
        self.lines: list[bytes] = []
        self.rows: list[dict] = []
        self.records = 0
        self.tokens = 0

    def __enter__(self) -> "ShardWriter":
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        return self

    def write_record(self, rec: Record) -> None:
        self.records += 1
        self.tokens += estimate_tokens(rec.full_text())
        if self.fmt == "parquet":
            self.rows.append({"id": rec.id, "kind": rec.kind, "source": rec.source, "text": rec.text,
                              "messages": rec.messages, "chosen": rec.chosen, "rejected": rec.rejected,
                              "meta": orjson.dumps(rec.meta, option=orjson.OPT_SERIALIZE_NUMPY).decode()})
        else:
            self.lines.append(rec.to_json())

    def write_line(self, line: bytes) -> None:
        assert self.fmt != "parquet", "raw lines go to JSONL sinks"
        self.records += 1
        self.lines.append(line)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            remove_quietly(self.tmp)
            return
        if self.skip_empty and not self.records:
            return
        try:
            self._flush()
            publish(self.tmp, self.path)
        except BaseException:  # a full disk while compressing/writing: no temp file left
            remove_quietly(self.tmp)
            raise
        self.written = True

    def _flush(self) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.Table.from_pylist(self.rows, schema=parquet_schema()), self.tmp, compression="zstd")
            return
        data = b"".join(line + b"\n" for line in self.lines)
        if self.fmt == "jsonl.zst":
            import zstandard
            data = zstandard.ZstdCompressor(level=3).compress(data)
        atomic.write_synced(self.tmp, data)


def parquet_schema():
    """One fixed schema for all record kinds (unused fields null); meta as JSON text
    because its keys differ from record to record."""
    import pyarrow as pa
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([("id", pa.string()), ("kind", pa.string()), ("source", pa.string()),
                      ("text", pa.string()), ("messages", pa.list_(message)), ("chosen", pa.string()),
                      ("rejected", pa.string()), ("meta", pa.string())])


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(sink_dir: str, entries: Iterable[dict], extra: dict | None = None) -> dict:
    """``manifest.json`` for a sink: files (relative path, records, bytes, tokens, sha256).

    ``entries`` carry ``path`` (absolute), ``records`` and ``tokens``; empty shards are
    listed too so counts add up shard by shard.  No timestamps: the manifest is
    deterministic, which lets resumed and uninterrupted runs be compared byte for byte.
    """
    files = []
    for e in sorted(entries, key=lambda e: e["path"]):
        files.append({"path": os.path.relpath(e["path"], sink_dir), "records": e["records"],
                      "tokens_est": e.get("tokens", 0), "bytes": os.path.getsize(e["path"]),
                      "sha256": sha256_file(e["path"])})
    manifest = {"files": files, "records": sum(f["records"] for f in files),
                "bytes": sum(f["bytes"] for f in files), "tokens_est": sum(f["tokens_est"] for f in files)}
    manifest.update(extra or {})
    atomic_write_json(os.path.join(sink_dir, "manifest.json"), manifest)
    return manifest
