"""Input discovery, byte-range sharding and reading raw files into records.

Line-based files (JSONL, plain text) are split into byte-range shards so a single
huge file uses every worker: a line belongs to the shard in which it *starts*.
Compressed files, JSON arrays and whole-file text are one shard each; Parquet is
split by row group.  Everything unreadable becomes a quarantine entry with the raw
bytes and the error, never an exception that kills the run.
"""
from __future__ import annotations

import base64
import glob
import gzip
import io
import os
import zlib
from dataclasses import asdict, dataclass
from typing import Iterator

import orjson

from ..records import Record
from .formats import FormatError, convert
from .units import iter_units

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
DATA_EXTS = (".jsonl", ".json", ".ndjson", ".parquet", ".txt", ".text", ".dat")


@dataclass(frozen=True)
class ShardSpec:
    path: str
    source: str
    fmt: str  # jsonl | json | parquet | text
    compression: str | None
    start: int = 0
    end: int = -1  # byte offset (exclusive) or row-group index for parquet; -1 = whole file
    text_unit: str = "line"
    encoding: str = "auto"
    mapping: str = ""  # the recipe's mapping as canonical JSON (keeps the spec hashable)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ShardSpec":
        return cls(**d)

    def mapping_dict(self) -> dict:
        return orjson.loads(self.mapping) if self.mapping else {}


@dataclass
class Quarantined:
    """An input unit that could not become a record."""
    source: str
    file: str
    offset: int
    error: str
    raw: bytes = b""

    def to_json(self) -> bytes:
        return orjson.dumps({
            "source": self.source, "file": self.file, "offset": self.offset, "error": self.error,
            "raw_b64": base64.b64encode(self.raw).decode("ascii"),
            "preview": self.raw[:200].decode("utf-8", "replace"),
        })


def split_compression(path: str) -> tuple[str, str | None]:
    root, ext = os.path.splitext(path)
    if ext.lower() in COMPRESSIONS:
        return root, COMPRESSIONS[ext.lower()]
    return path, None


def expand_paths(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(pattern) for f in fs]
        files = [f for f in files if split_compression(f)[0].lower().endswith(DATA_EXTS)]
    else:
        files = glob.glob(pattern, recursive=True) if any(c in pattern for c in "*?[") else [pattern]
    # a thresher output folder read back: skip its manifests and in-flight temp files
    files = sorted(f for f in files if os.path.isfile(f) and os.path.basename(f) != "manifest.json"
                   and ".tmp-" not in os.path.basename(f))
    if not files:
        raise FileNotFoundError(f"input {pattern!r} matches no file")
    return files


def detect_format(path: str, compression: str | None) -> str:
    base = split_compression(path)[0].lower()
    if base.endswith(".parquet"):
        return "parquet"
    if base.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if base.endswith(".json"):
        # .json may be an array or JSON lines: look at the first non-space byte
        with _open_stream(path, compression) as f:
            head = f.read(4096).lstrip()
        return "json" if head[:1] == b"[" else "jsonl"
    return "text"


def plan_shards(inp: dict, shard_bytes: int) -> list[ShardSpec]:
    """Shards for one recipe input entry."""
    mapping = orjson.dumps(inp["mapping"], option=orjson.OPT_SORT_KEYS).decode() if inp.get("mapping") else ""
    specs: list[ShardSpec] = []
    for path in expand_paths(inp["path"]):
        _, comp = split_compression(path)
        fmt = inp.get("format", "auto")
        if fmt == "auto":
            fmt = detect_format(path, comp)
        source = inp.get("name") or source_name(path)
        common = dict(path=path, source=source, fmt=fmt, compression=comp,
                      text_unit=inp.get("text_unit", "line"), encoding=inp.get("encoding", "auto"),
                      mapping=mapping)
        size = os.path.getsize(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq
            n = pq.ParquetFile(path).num_row_groups
            specs += [ShardSpec(start=i, end=i + 1, **common) for i in range(max(n, 1))]
        elif comp is None and fmt in ("jsonl", "text") and inp.get("text_unit", "line") == "line" and size > shard_bytes:
            specs += [ShardSpec(start=s, end=min(s + shard_bytes, size), **common)
                      for s in range(0, size, shard_bytes)]
        else:
            specs.append(ShardSpec(start=0, end=-1, **common))
    return specs


def source_name(path: str) -> str:
    base = os.path.basename(split_compression(path)[0])
    return os.path.splitext(base)[0]


def _open_stream(path: str, compression: str | None):
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "zstd":
        import zstandard
        fh = open(path, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh, closefd=True))
    return open(path, "rb")


def sniff_encoding(path: str, compression: str | None, declared: str = "auto") -> str:
    """utf-8 unless the head of the file only decodes as GB18030."""
    if declared != "auto":
        return declared
    with _open_stream(path, compression) as f:
        try:
            head = f.read(1 << 18)
        except (EOFError, OSError, zlib.error):
            return "utf-8"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 4:  # cut mid-character at the sample's end
            return "utf-8"
    try:
        head.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError:
        return "utf-8"


def _iter_lines(spec: ShardSpec) -> Iterator[tuple[int, bytes]]:
    """(offset, line bytes) of the lines starting inside the shard's byte range."""
    if spec.end < 0:
        with _open_stream(spec.path, spec.compression) as f:
            pos = 0
            for line in f:
                yield pos, line
                pos += len(line)
        return
    with open(spec.path, "rb") as f:
        if spec.start > 0:
            f.seek(spec.start - 1)
            f.readline()  # finish the line that started in the previous shard
        pos = f.tell()
        while pos < spec.end:
            line = f.readline()
            if not line:
                break
            yield pos, line
            pos += len(line)


def read_shard(spec: ShardSpec) -> Iterator[Record | Quarantined]:
    """Yield records and quarantine entries of one shard; never raises on bad data."""
    try:
        encoding = sniff_encoding(spec.path, spec.compression, spec.encoding)
        if spec.fmt == "parquet":
            yield from _read_parquet(spec)
        elif spec.fmt == "json":
            yield from _read_json_array(spec)
        elif spec.fmt == "text" and spec.text_unit != "line":
            with _open_stream(spec.path, spec.compression) as f:
                raw = f.read()
            if spec.text_unit == "file":
                yield from _text_unit(spec, 0, raw, encoding)
            else:  # paragraph / blank_line / chapter: thresher.io.units
                yield from _text_pieces(spec, raw, encoding)
        else:
            yield from _read_lines(spec, encoding)
    except (EOFError, OSError, zlib.error, ValueError) as e:
        # truncated/corrupt container: what was read so far stands, the rest is reported
        yield Quarantined(spec.source, spec.path, -1, f"unreadable input: {type(e).__name__}: {e}")


def _read_lines(spec: ShardSpec, encoding: str) -> Iterator[Record | Quarantined]:
    mapping = spec.mapping_dict()
    offset = spec.start
    try:
        for offset, line in _iter_lines(spec):
            if not line.strip():
                continue  # blank separator lines are not records
            if spec.fmt == "text":
                yield from _text_unit(spec, offset, line.rstrip(b"\r\n"), encoding)
                continue
            try:
                obj = orjson.loads(line) if encoding == "utf-8" else orjson.loads(line.decode(encoding))
            except (orjson.JSONDecodeError, UnicodeDecodeError) as e:
                yield Quarantined(spec.source, spec.path, offset, f"bad JSON line: {e}", line)
                continue
            yield from _convert(obj, spec, offset, line, mapping)
    except (EOFError, OSError, zlib.error) as e:
        yield Quarantined(spec.source, spec.path, offset, f"unreadable input after offset {offset}: "
                          f"{type(e).__name__}: {e}")


def _text_unit(spec: ShardSpec, offset: int, raw: bytes, encoding: str) -> Iterator[Record | Quarantined]:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        yield Quarantined(spec.source, spec.path, offset, f"invalid {encoding}: {e}", raw)
        return
    yield from _convert(text, spec, offset, raw, {})


def _text_pieces(spec: ShardSpec, raw: bytes, encoding: str) -> Iterator[Record | Quarantined]:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        yield Quarantined(spec.source, spec.path, 0, f"invalid {encoding}: {e}", raw)
        return
    for off, piece in iter_units(text, spec.text_unit, encoding):
        yield from _convert(piece, spec, off, piece.encode(encoding), {})


def _convert(obj, spec: ShardSpec, offset: int, raw: bytes, mapping: dict) -> Iterator[Record | Quarantined]:
    try:
        records = convert(obj, spec.source, mapping, origin=f"{os.path.basename(spec.path)}:{offset}")
    except FormatError as e:
        yield Quarantined(spec.source, spec.path, offset, f"unrecognised record: {e}", raw)
        return
    for rec in records:
        if not rec.is_rejected and not any(t.strip() for _, t in rec.segments()):
            rec.reject("read", "empty")
        yield rec


def _read_json_array(spec: ShardSpec) -> Iterator[Record | Quarantined]:
    with _open_stream(spec.path, spec.compression) as f:
        raw = f.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            data = orjson.loads(raw.decode("gb18030"))
        except (UnicodeDecodeError, orjson.JSONDecodeError) as e:
            yield Quarantined(spec.source, spec.path, 0, f"bad JSON document: {e}", raw[:1 << 20])
            return
    if not isinstance(data, list):
        data = [data]
    mapping = spec.mapping_dict()
    for i, obj in enumerate(data):
        yield from _convert(obj, spec, i, b"" if isinstance(obj, str) else orjson.dumps(obj), mapping)


def _read_parquet(spec: ShardSpec) -> Iterator[Record | Quarantined]:
    import pyarrow.parquet as pq
    table = pq.ParquetFile(spec.path).read_row_group(spec.start)
    mapping = spec.mapping_dict()
    for i, row in enumerate(table.to_pylist()):
        yield from _convert(row, spec, i, orjson.dumps(row, default=str), mapping)


def _own_record(row: dict) -> Record:
    row = dict(row)
    if isinstance(row.get("meta"), str):
        row["meta"] = orjson.loads(row["meta"])
    return Record.from_dict(row)


def iter_records(path: str, source: str | None = None, mapping: dict | None = None,
                 shard_bytes: int = 1 << 62) -> Iterator[Record]:
    """Convenience reader: every record of a file, directory or thresher manifest.

    Quarantined units are skipped (use :func:`read_shard` to see them).  Files written
    by thresher itself come back as the records that were written.
    """
    if os.path.basename(path) == "manifest.json":
        with open(path, "rb") as f:
            man = orjson.loads(f.read())
        base = os.path.dirname(path)
        for entry in man.get("files", []):
            yield from iter_records(os.path.join(base, entry["path"]), source, mapping)
        return
    inp = {"path": path, "name": source, "mapping": mapping or None}
    for spec in plan_shards(inp, shard_bytes):
        for item in read_shard(spec):
            if isinstance(item, Record):
                yield item


def read_own_shard(path: str) -> Iterator[Record]:
    """Records of a shard written by :mod:`thresher.io.writers` (intermediate or final)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        for row in pq.read_table(path).to_pylist():
            yield _own_record(row)
        return
    _, comp = split_compression(path)
    with _open_stream(path, comp) as f:
        for line in f:
            if line.strip():
                yield Record.from_json(line)
