"""Input discovery, byte-range sharding and reading raw files into records.

Line-based files (JSONL, plain text) are split into byte-range shards so a single
huge file uses every worker: a line belongs to the shard in which it *starts*.
Compressed files, JSON arrays and whole-file text are one shard each; Parquet is
split by row group.  Everything unreadable becomes a quarantine entry with the raw
bytes and the error, never an exception that kills the run.

Every shard is *accounted*: a :class:`ShardAccount` counts the units read and the
input bytes (Parquet: rows) they cover, including blank lines, quarantined units and
an explicit "unreadable remainder" entry when a stream breaks, so the run can check
per file that every byte ended up somewhere (see ``runner.finalize``).
"""
from __future__ import annotations

import base64
import codecs
import glob
import gzip
import io
import mmap
import os
import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Iterator

import orjson

from ..records import Record, check_record
from . import fs
from .atomic import is_temp
from .formats import FormatError, convert

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
DATA_EXTS = (".jsonl", ".json", ".ndjson", ".parquet", ".txt", ".text", ".dat")
BOM = b"\xef\xbb\xbf"
# quarantined raw bytes above this size are kept by reference (file + offset + length)
RAW_INLINE_MAX = 16 << 20
LEGACY_CODECS = ("gb18030", "big5")


def display_path(path: str) -> str:
    """A path as valid UTF-8 text (undecodable file-name bytes as \\x escapes), so it
    can go into JSON: orjson refuses the surrogates Python uses for such names."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


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
    rel: str = ""  # path relative to the recipe's input root: the origin of every record
    rows: int = -1  # parquet: rows in this row group (-1: file unreadable at planning)
    size: int = -1  # file size in bytes when the run was planned
    on_missing: str = "fail"  # a truncated/vanished input: fail the run, or only quarantine

    def to_dict(self) -> dict:
        d = asdict(self)
        if display_path(self.path) != self.path:  # non-UTF-8 file name: keep its bytes
            d["path"] = display_path(self.path)
            d["path_hex"] = os.fsencode(self.path).hex()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ShardSpec":
        d = dict(d)
        if "path_hex" in d:
            d["path"] = os.fsdecode(bytes.fromhex(d.pop("path_hex")))
        return cls(**d)

    def mapping_dict(self) -> dict:
        return orjson.loads(self.mapping) if self.mapping else {}

    @property
    def name(self) -> str:
        return self.rel or display_path(self.path)


@dataclass
class Quarantined:
    """An input unit (or an unreadable stretch of input) that could not become a record.

    ``kind`` is ``unit`` for one bad line/element/row and ``remainder`` for a stretch
    that could not be read at all (truncated stream, corrupt container, vanished
    file); ``length`` is in bytes (Parquet: rows), ``-1`` when unknown.
    """
    source: str
    file: str
    offset: int
    error: str
    raw: bytes = b""
    length: int = -1
    kind: str = "unit"
    abs_path: str = ""  # to keep a large raw unit by reference
    origin: str = ""  # stage errors: the record's origin and id
    record_id: str = ""

    def to_json(self) -> bytes:
        d = {"source": self.source, "file": self.file, "offset": self.offset, "length": self.length,
             "kind": self.kind, "error": self.error}
        if self.origin:  # what the unit's record would have had as meta.origin
            d["origin"] = self.origin
        if self.record_id:
            d["id"] = self.record_id
        if len(self.raw) > RAW_INLINE_MAX:
            d["raw_ref"] = {"file": self.file, "offset": self.offset, "length": len(self.raw)}
            d["raw_b64"] = ""
        else:
            d["raw_b64"] = base64.b64encode(self.raw).decode("ascii")
        d["preview"] = self.raw[:200].decode("utf-8", "replace")
        return orjson.dumps(d)


@dataclass
class ShardAccount:
    """What one shard read: units, input bytes (or rows) covered, and what went missing."""
    file: str
    unit: str = "bytes"  # bytes | rows
    covered: int = 0
    units: int = 0
    incomplete: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"file": self.file, "unit": self.unit, "covered": self.covered, "units": self.units,
                "incomplete": list(self.incomplete)}


def split_compression(path: str) -> tuple[str, str | None]:
    root, ext = os.path.splitext(path)
    if ext.lower() in COMPRESSIONS:
        return root, COMPRESSIONS[ext.lower()]
    return path, None


def _glob_root(pattern: str) -> str:
    """The folder a pattern's relative paths start from: the part before any wildcard."""
    if fs.is_remote(pattern):
        head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        if head == pattern and fs.isdir(pattern):
            return pattern.rstrip("/")
        return head.rsplit("/", 1)[0] if "/" in head.split("://", 1)[1] else head
    if os.path.isdir(pattern):
        return pattern
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return os.path.dirname(head) if head else "."


def _expand_remote(pattern: str) -> list[str]:
    """Files of an fsspec URL: a folder (recursively, data extensions only), a glob, or one file."""
    if fs.isdir(pattern):
        files = [f for f in fs.walk_files(pattern) if split_compression(f)[0].lower().endswith(DATA_EXTS)]
    elif any(c in pattern.split("://", 1)[1] for c in "*?["):
        files = fs.glob(pattern)
    else:
        files = [pattern] if fs.isfile(pattern) else []
    files = sorted(set(f for f in files if os.path.basename(f) != "manifest.json" and not is_temp(f)))
    if not files:
        raise FileNotFoundError(f"input {pattern!r} matches no file")
    return files


def expand_paths(pattern: str) -> list[str]:
    if fs.is_remote(pattern):
        return _expand_remote(pattern)
    pattern = fs.local(pattern)
    if os.path.isdir(pattern):
        # os.walk does not follow symlinked folders, so a symlink loop is read once
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(pattern) for f in fs]
        files = [f for f in files if split_compression(f)[0].lower().endswith(DATA_EXTS)]
    else:
        files = glob.glob(pattern, recursive=True) if any(c in pattern for c in "*?[") else [pattern]
    # a thresher output folder read back: skip its manifests and in-flight temp files
    files = sorted(f for f in files if os.path.isfile(f) and os.path.basename(f) != "manifest.json"
                   and not is_temp(f))
    files = _unique_files(files)
    if not files:
        raise FileNotFoundError(f"input {pattern!r} matches no file")
    return files


def _unique_files(files: list[str]) -> list[str]:
    """One path per real file: ``**`` follows symlinked folders, and a symlink loop would
    otherwise list the same file dozens of times (each copy a duplicate record id)."""
    seen, out = set(), []
    for f in sorted(files, key=lambda f: (f.count(os.sep), f)):  # the shortest path to a file wins
        st = os.stat(f)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(f)
    return sorted(out)


def detect_format(path: str, compression: str | None) -> str:
    base = split_compression(path)[0].lower()
    if base.endswith(".parquet"):
        return "parquet"
    if base.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if base.endswith(".json"):
        # .json may be an array or JSON lines: look at the first non-space byte after a BOM
        try:
            with _open_stream(path, compression) as f:
                head = f.read(4096)
        except (EOFError, OSError, zlib.error, ValueError):
            return "jsonl"  # unreadable either way; the reader reports it
        head = head[len(BOM):] if head.startswith(BOM) else head
        return "json" if head.lstrip()[:1] == b"[" else "jsonl"
    return "text"


def plan_shards(inp: dict, shard_bytes: int, root: str | None = None) -> list[ShardSpec]:
    """Shards for one recipe input entry; ``root`` is the folder record origins are
    relative to (default: the entry's own folder)."""
    mapping = orjson.dumps(inp["mapping"], option=orjson.OPT_SORT_KEYS).decode() if inp.get("mapping") else ""
    root = root if root is not None else _glob_root(inp["path"])
    specs: list[ShardSpec] = []
    for path in expand_paths(inp["path"]):
        specs += _file_shards(path, inp, mapping, root, shard_bytes)
    return specs


def _file_shards(path: str, inp: dict, mapping: str, root: str, shard_bytes: int) -> list[ShardSpec]:
    _, comp = split_compression(path)
    fmt = inp.get("format", "auto")
    if fmt == "auto":
        fmt = detect_format(path, comp)
    source = inp.get("name") or display_path(source_name(path))
    common = dict(path=path, source=source, fmt=fmt, compression=comp,
                  text_unit=inp.get("text_unit", "line"), encoding=inp.get("encoding", "auto"),
                  mapping=mapping, rel=display_path(fs.relpath(path, root) if root else path),
                  size=fs.size(path), on_missing=inp.get("on_missing_input", "fail"))
    size = common["size"]
    if fmt == "parquet":
        try:
            meta = _parquet_file(path).metadata
            groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        except Exception:  # corrupt or empty: one shard that reports the file as unreadable
            return [ShardSpec(start=0, end=-1, rows=-1, **common)]
        return [ShardSpec(start=i, end=i + 1, rows=n, **common) for i, n in enumerate(groups)] or \
            [ShardSpec(start=0, end=0, rows=0, **common)]
    if comp is None and fmt in ("jsonl", "text") and inp.get("text_unit", "line") == "line" and size > shard_bytes:
        return [ShardSpec(start=s, end=min(s + shard_bytes, size), **common) for s in range(0, size, shard_bytes)]
    return [ShardSpec(start=0, end=-1, **common)]


def source_name(path: str) -> str:
    base = os.path.basename(split_compression(path)[0])
    return os.path.splitext(base)[0]


def _open_stream(path: str, compression: str | None):
    fh = fs.open_file(path, "rb")  # local paths get the builtin open, URLs an fsspec file
    if compression == "gzip":
        g = gzip.GzipFile(fileobj=fh, mode="rb")
        g.myfileobj = fh  # closed with the gzip stream
        return g
    if compression == "zstd":
        return io.BufferedReader(_ZstdStream(fh), 1 << 16)
    return fh


def _parquet_file(path: str):
    import pyarrow.parquet as pq
    return pq.ParquetFile(fs.open_file(path, "rb") if fs.is_remote(path) else path)


class _ZstdStream(io.RawIOBase):
    """Decompressed bytes of a zstd file, frame after frame, that *fails* where the
    file does: zstandard's stream_reader ends quietly inside a truncated frame (records
    lost, nothing reported) and stops at the first frame, ignoring what follows."""

    def __init__(self, fh):
        import zstandard
        self._fh, self._z = fh, zstandard
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False  # bytes went into the current frame
        self._buf, self._pos = b"", 0
        self._error: Exception | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, out) -> int:
        while not self._buf:
            if self._error is not None:  # raised only once the good frames are consumed
                raise self._error
            chunk = self._fh.read(1 << 16)
            if not chunk:
                if self._fed and not self._obj.eof:
                    raise EOFError("zstd stream ends inside a frame (file truncated)")
                return 0
            self._feed(chunk)
        n = min(len(out), len(self._buf) - self._pos)
        out[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        if self._pos == len(self._buf):
            self._buf, self._pos = b"", 0
        return n

    def _feed(self, chunk: bytes) -> None:
        while chunk:
            if self._obj.eof:  # the next frame (or trailing garbage, which raises)
                self._obj = self._z.ZstdDecompressor().decompressobj()
            self._fed = True
            try:
                self._buf += self._obj.decompress(chunk)
            except self._z.ZstdError as e:
                self._error = e
                return
            chunk = self._obj.unused_data if self._obj.eof else b""

    def close(self) -> None:
        self._fh.close()
        super().close()


# ---------------------------------------------------------------------------
# decoding: UTF-8 first, then per unit a legacy Chinese codec picked by a detector

def decode_unit(raw: bytes, declared: str = "auto") -> tuple[str, str]:
    """(text, codec) of one line/element; raises UnicodeDecodeError if nothing fits."""
    if declared != "auto":
        return raw.decode(declared), declared
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as first:
        codec = _detect_legacy(raw)
        if codec is None:
            raise first
        return raw.decode(codec), codec


def _detect_legacy(raw: bytes) -> str | None:
    """GB18030 or Big5, whichever a real detector prefers (both decode many byte
    strings, so "first that decodes" turns Big5 into GB18030 mojibake)."""
    fits = []
    for codec in LEGACY_CODECS:
        try:
            raw.decode(codec)
            fits.append(codec)
        except UnicodeDecodeError:
            continue
    if len(fits) < 2:  # at most one codec fits: nothing to decide
        return fits[0] if fits else None
    import charset_normalizer
    best = charset_normalizer.from_bytes(raw, cp_isolation=list(LEGACY_CODECS)).best()
    return best.encoding if best is not None and best.encoding in LEGACY_CODECS else fits[0]


def sniff_encoding(path: str, compression: str | None, declared: str = "auto") -> str:
    """The codec of a file's head (kept for callers that want one answer per file)."""
    if declared != "auto":
        return declared
    try:
        with _open_stream(path, compression) as f:
            head = f.read(1 << 18)
        head.decode("utf-8")
        return "utf-8"
    except (EOFError, OSError, zlib.error, ValueError) as e:
        if not isinstance(e, UnicodeDecodeError):
            return "utf-8"
        if e.start >= len(head) - 4:  # cut mid-character at the sample's end
            return "utf-8"
    return _detect_legacy(head) or "utf-8"


# ---------------------------------------------------------------------------
# reading

def read_shard(spec: ShardSpec, account: ShardAccount | None = None) -> Iterator[Record | Quarantined]:
    """Yield records and quarantine entries of one shard; never raises on bad data.

    ``account`` (filled as the shard is read) gets the units and input bytes covered.
    """
    account = account if account is not None else ShardAccount(spec.name)
    if spec.fmt == "parquet":
        account.unit = "rows"
        yield from _read_parquet(spec, account)
    elif spec.fmt == "json":
        yield from _read_json_array(spec, account)
    elif spec.fmt == "text" and spec.text_unit != "line":
        yield from _read_whole_text(spec, account)
    else:
        yield from _read_lines(spec, account)


def _remainder(spec: ShardSpec, account: ShardAccount, offset: int, length: int, why: str) -> Quarantined:
    """The unreadable rest of a shard, as one explicit quarantine entry (its bytes are
    added to the account by the caller, which knows the shard's extent)."""
    account.units += 1
    account.incomplete.append(f"{spec.name}: {why}")
    return Quarantined(spec.source, spec.name, offset, f"unreadable input: {why}", b"", length, "remainder",
                       display_path(spec.path))


def _planned_end(spec: ShardSpec) -> int:
    """Where the shard ends in file bytes (a whole-file shard: the planned file size)."""
    if spec.end >= 0:
        return spec.end
    if spec.size >= 0:
        return spec.size
    try:
        return fs.size(spec.path)
    except OSError:
        return 0


# a broken container raises anything from EOFError to zstandard.ZstdError; whatever
# it is, the rest of the stream becomes one explicit remainder entry
_STREAM_ERRORS = (Exception,)


def _iter_lines(spec: ShardSpec) -> Iterator[tuple[int, bytes]]:
    """(offset, line bytes) of the lines starting inside the shard's byte range
    (offsets in the decompressed stream for compressed files)."""
    if spec.end < 0:
        with _open_stream(spec.path, spec.compression) as f:
            pos = 0
            for line in f:
                yield pos, line
                pos += len(line)
        return
    with fs.open_file(spec.path, "rb") as f:
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


def _read_lines(spec: ShardSpec, account: ShardAccount) -> Iterator[Record | Quarantined]:
    mapping = spec.mapping_dict()
    compressed = spec.compression is not None
    pos = spec.start  # end of the last line read (stream offsets)
    try:
        for offset, line in _iter_lines(spec):
            pos = offset + len(line)
            if not compressed:
                account.covered += len(line)
            body = line[len(BOM):] if offset == 0 and line.startswith(BOM) else line
            if not body.strip():
                continue  # blank separator lines are not records (their bytes are covered)
            account.units += 1
            yield from _line_unit(spec, offset, line, body, mapping)
    except _STREAM_ERRORS as e:
        why = f"{type(e).__name__}: {e}"
        if compressed:
            account.covered = _planned_end(spec)  # compressed bytes are accounted per file
            yield _remainder(spec, account, pos, -1, f"stream broken after {pos} decompressed bytes: {why}")
            return
        cut = max(pos, spec.start)
        account.covered += max(_planned_end(spec) - cut, 0)
        yield _remainder(spec, account, cut, max(_planned_end(spec) - cut, 0), why)
        return
    if compressed:
        account.covered = _planned_end(spec)  # a clean end of stream covers the whole file
        return
    yield from _check_extent(spec, account, pos)


def _check_extent(spec: ShardSpec, account: ShardAccount, pos: int) -> Iterator[Quarantined]:
    """The file must still be as planned: a shorter file leaves a gap (reported as a
    remainder), a longer one bytes nobody reads (reported as incomplete)."""
    try:
        size_now = fs.size(spec.path)
    except OSError:
        size_now = 0
    planned = _planned_end(spec)
    if spec.end >= 0 and size_now < planned:
        cut = max(size_now, spec.start, pos if pos <= planned else planned)
        cut = min(cut, planned)
        if planned > cut:
            account.covered += planned - cut
            yield _remainder(spec, account, cut, planned - cut,
                             f"file is {size_now} bytes, {planned} when the run was planned")
    elif spec.size >= 0 and (spec.end < 0 or spec.end == spec.size) and size_now != spec.size:
        account.incomplete.append(f"{spec.name}: {size_now} bytes now, {spec.size} when the run was planned")


def _line_unit(spec: ShardSpec, offset: int, line: bytes, body: bytes, mapping: dict):
    raw = line.rstrip(b"\r\n")
    text_mode = spec.fmt == "text"
    try:
        if text_mode or spec.encoding != "auto":
            text, codec = decode_unit(body.rstrip(b"\r\n"), spec.encoding)
            obj = text if text_mode else orjson.loads(text)
        else:
            codec = "utf-8"
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                text, codec = decode_unit(body)  # raises on bytes no codec accepts
                if codec == "utf-8":
                    raise
                obj = orjson.loads(text)
    except UnicodeDecodeError as e:
        yield Quarantined(spec.source, spec.name, offset, f"undecodable bytes (not UTF-8, GB18030 or Big5): {e}",
                          raw, len(line), origin=f"{spec.name}:{offset}")
        return
    except orjson.JSONDecodeError as e:
        yield Quarantined(spec.source, spec.name, offset, f"bad JSON line: {e}", raw, len(line),
                          origin=f"{spec.name}:{offset}")
        return
    yield from _convert(obj, spec, f"{spec.name}:{offset}", offset, raw, len(line), mapping, codec)


def _read_all(spec: ShardSpec, account: ShardAccount):
    """The whole (decompressed) file; None, after yielding a remainder entry, if unreadable."""
    try:
        with _open_stream(spec.path, spec.compression) as f:
            return f.read()
    except _STREAM_ERRORS as e:
        account.covered += _planned_end(spec)
        yield _remainder(spec, account, 0, _planned_end(spec), f"{type(e).__name__}: {e}")
        return None


def _read_whole_text(spec: ShardSpec, account: ShardAccount) -> Iterator[Record | Quarantined]:
    raw = yield from _read_all(spec, account)
    if raw is None:
        return
    account.covered += _planned_end(spec) if spec.compression else len(raw)
    account.units += 1
    body = raw[len(BOM):] if raw.startswith(BOM) else raw
    try:
        text, codec = decode_unit(body, spec.encoding)
    except UnicodeDecodeError as e:
        yield Quarantined(spec.source, spec.name, 0, f"undecodable bytes: {e}", raw, len(raw), origin=f"{spec.name}:0")
        return
    if spec.text_unit == "file":
        yield from _convert(text, spec, f"{spec.name}:0", 0, raw, len(raw), {}, codec)
        return
    from .units import iter_units  # paragraph / blank_line / chapter documents
    for off, piece in iter_units(text, spec.text_unit, codec):
        off += len(raw) - len(body)  # file offsets: count a BOM
        yield from _convert(piece, spec, f"{spec.name}:{off}", off, b"", len(piece), {}, codec)


def _convert(obj, spec: ShardSpec, origin: str, offset: int, raw: bytes, length: int, mapping: dict,
             codec: str = "utf-8") -> Iterator[Record | Quarantined]:
    """Convert one unit; any failure (converter bug included) quarantines just this unit."""
    try:
        records = convert(obj, spec.source, mapping, origin=origin)
        for rec in records:
            check_record(rec)
    except Exception as e:  # noqa: BLE001 - one bad unit must never end the shard
        what = "unrecognised record" if isinstance(e, FormatError) else "conversion failed"
        yield Quarantined(spec.source, spec.name, offset, f"{what}: {type(e).__name__}: {e}",
                          raw if raw else _raw_of(obj), length, origin=origin)
        return
    for rec in records:
        if codec != "utf-8":
            rec.meta["encoding"] = codec
        if not rec.is_rejected:
            _read_rejection(rec)
        yield rec


def _read_rejection(rec: Record) -> None:
    """Records no stage can use: empty content, a preference pair with nothing to prefer."""
    if not any(t.strip() for _, t in rec.segments()):
        rec.reject("read", "empty")
    elif rec.kind == "dpo" and (rec.chosen or "").strip() == (rec.rejected or "").strip():
        rec.reject("read", "chosen_equals_rejected")


def _raw_of(obj) -> bytes:
    try:
        return obj.encode("utf-8", "surrogatepass") if isinstance(obj, str) else orjson.dumps(obj, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return repr(obj)[:RAW_INLINE_MAX].encode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------
# JSON arrays: split into elements at depth 1, each element parsed on its own

_STRUCT = re.compile(rb'[\[\]{}",]')
_STR_END = re.compile(rb'["\\]')
_STR_END_DBCS = re.compile(rb'["\\\x81-\xfe]')  # a GB18030/Big5 lead byte hides its trail byte
_WS = b" \t\r\n"


def _skip_string(buf, i: int, dbcs: bool) -> int:
    """Index just past the string whose body starts at ``i``; -1 if it never ends."""
    pat = _STR_END_DBCS if dbcs else _STR_END
    while True:
        m = pat.search(buf, i)
        if m is None:
            return -1
        c = buf[m.start()]
        if c == 0x22:
            return m.start() + 1
        i = m.start() + 2  # backslash escape, or lead byte + trail byte


def split_json_array(buf, pos: int, dbcs: bool = False) -> Iterator[tuple[str, int, int]]:
    """Yield ("elem", start, end) for each top-level element of the array whose ``[``
    is at ``pos``, then ("end", i, i) at its ``]``, or ("broken", start, len) if the
    structure never closes.  Elements are not validated here; each is parsed alone."""
    depth, i, seg = 0, pos + 1, pos + 1
    n = len(buf)
    while True:
        m = _STRUCT.search(buf, i)
        if m is None:
            yield "broken", seg, n
            return
        j, c = m.start(), buf[m.start()]
        if c == 0x22:  # "
            i = _skip_string(buf, j + 1, dbcs)
            if i < 0:
                yield "broken", seg, n
                return
            continue
        i = j + 1
        if c in (0x5B, 0x7B):  # [ {
            depth += 1
        elif c in (0x5D, 0x7D):  # ] }
            if depth == 0:
                if bytes(buf[seg:j]).strip(_WS):
                    yield "elem", seg, j
                yield ("end" if c == 0x5D else "broken"), j, n if c == 0x7D else j
                return
            depth -= 1
        elif depth == 0:  # , between elements
            yield "elem", seg, j
            seg = j + 1


_NON_WS = re.compile(rb"[^ \t\r\n]")


def _array_buffer(spec: ShardSpec, account: ShardAccount):
    """An uncompressed array is memory-mapped (elements are parsed one at a time, so a
    multi-GB array never sits in memory twice); a compressed one is read whole."""
    if spec.compression is None and not fs.is_remote(spec.path):
        try:
            with open(spec.path, "rb") as f:
                if os.fstat(f.fileno()).st_size:
                    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError:
            pass  # _read_all reports it
    return (yield from _read_all(spec, account))


def _read_json_array(spec: ShardSpec, account: ShardAccount) -> Iterator[Record | Quarantined]:
    buf = yield from _array_buffer(spec, account)
    if buf is None:
        return
    m = _NON_WS.search(buf, len(BOM) if buf[:len(BOM)] == BOM else 0)
    lead = m.start() if m else len(buf)
    if buf[lead:lead + 1] != b"[":  # planned as an array but no longer one: read it as JSON lines
        yield from _read_lines(spec, account)
        return
    # the whole buffer is covered: by elements, delimiters, or an explicit remainder entry
    account.covered += _planned_end(spec) if spec.compression else len(buf)
    dbcs = _array_is_dbcs(buf, spec.encoding)
    mapping = spec.mapping_dict()
    index = 0
    for kind, s, e in split_json_array(buf, lead, dbcs):
        if kind == "elem":
            account.units += 1
            yield from _array_element(spec, buf, s, e, index, mapping)
            index += 1
        elif kind == "end":
            tail = bytes(buf[s + 1:])
            if tail.strip(_WS):
                yield _remainder(spec, account, s + 1, len(tail),
                                 f"{len(tail)} bytes of trailing data after the JSON array")
        else:
            yield _remainder(spec, account, s, e - s, "JSON array never closes (truncated or unbalanced)")


def _array_is_dbcs(buf: bytes, declared: str) -> bool:
    if declared != "auto":
        return declared.lower().replace("-", "") in ("gb18030", "gbk", "gb2312", "big5", "cp950", "cp936")
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 24  # in slices: buf may be a multi-GB mmap
    try:
        for start in range(0, len(buf), step):
            decoder.decode(buf[start:start + step], final=start + step >= len(buf))
    except UnicodeDecodeError:
        return True
    return False


def _array_element(spec: ShardSpec, buf, s: int, e: int, index: int, mapping: dict):
    raw = bytes(buf[s:e])
    body = raw.strip(_WS)
    off = s + (len(raw) - len(raw.lstrip(_WS)))
    try:
        try:
            obj, codec = orjson.loads(body), "utf-8"
        except orjson.JSONDecodeError:
            text, codec = decode_unit(body, spec.encoding)
            if codec == "utf-8":
                raise
            obj = orjson.loads(text)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as err:
        yield Quarantined(spec.source, spec.name, off, f"bad JSON array element [{index}]: {err}", body, len(body),
                          origin=f"{spec.name}:[{index}]")
        return
    yield from _convert(obj, spec, f"{spec.name}:[{index}]", off, body, len(body), mapping, codec)


def _read_parquet(spec: ShardSpec, account: ShardAccount) -> Iterator[Record | Quarantined]:
    try:
        if spec.rows < 0:
            _parquet_file(spec.path)  # raises what made planning fail
            raise ValueError("Parquet metadata unreadable at planning time")
        rows = _parquet_file(spec.path).read_row_group(spec.start).to_pylist() if spec.rows else []
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        yield _remainder(spec, account, spec.start, max(spec.rows, 0) or -1,
                         f"Parquet row group {spec.start} unreadable: {type(e).__name__}: {e}")
        if spec.rows < 0:
            account.unit = "file"
        return
    mapping = spec.mapping_dict()
    for i, row in enumerate(rows):
        account.covered += 1
        account.units += 1
        yield from _convert(row, spec, f"{spec.name}:rg{spec.start}:{i}", i, b"", 1, mapping)


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
        with fs.open_file(path, "rb") as f:
            man = orjson.loads(f.read())
        base = path.rsplit("/", 1)[0] if fs.is_remote(path) else os.path.dirname(path)
        for entry in man.get("files", []):
            yield from iter_records(fs.join(base, entry["path"]), source, mapping)
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
