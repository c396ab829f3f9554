"""The one way thresher writes a file so no reader ever sees half of it.

Data goes to a temp name beside the target, ``<path>.tmp-<host>-<pid>``, is flushed
and fsynced, and is renamed over the target (``os.replace`` is atomic on POSIX).  The
host and pid make the temp name unique across the nodes of a shared filesystem, so
two writers of one path (a Ray retry racing the task it replaces) never share a temp
file.  A writer killed mid-write (SIGKILL, OOM) leaves its temp file behind:

* readers and globs of run dirs skip any name :func:`is_temp` recognises;
* a resumed run removes them with :func:`clean_temp_files` while it holds the run's
  lock (so no live writer owns one).

``atomic_write_bytes`` / ``atomic_write_json`` write a whole buffer;
``atomic_target`` hands a temp path to code that insists on writing a file itself
(``np.save``, fastText, joblib, a ShardWriter) and publishes it on a clean exit.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
from typing import Iterator

import orjson

TMP_MARK = ".tmp-"
# <target>.tmp-<host>-<pid>[<suffix>]; also the older spellings this module replaced
# (<target>.tmp, <target>.tmp<pid>, <target>.tmp-<pid>), so leftovers of earlier
# versions are ignored and cleaned too
_TEMP_RE = re.compile(r"\.tmp(?:-[^/]*|\d*)$")


def tmp_name(path: str, suffix: str = "") -> str:
    """A temp name beside ``path`` that no other process, on any node of a shared
    filesystem, uses at the same time.  ``suffix`` keeps an extension for writers
    that look at it (``np.save`` appends ``.npy`` to a name without it)."""
    return f"{path}{TMP_MARK}{socket.gethostname()}-{os.getpid()}{suffix}"


def is_temp(name: str) -> bool:
    """Is this file name (or path) an in-flight or abandoned atomic-write temp file?"""
    return bool(_TEMP_RE.search(os.path.basename(name)))


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    try:  # the rename itself survives a crash only once the folder is synced
        _fsync_path(os.path.dirname(os.path.abspath(path)))
    except OSError:
        pass  # some filesystems refuse to open/fsync a directory


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def publish(tmp: str, path: str) -> None:
    """fsync ``tmp`` (written by someone else) and rename it over ``path``."""
    _fsync_path(tmp)
    os.replace(tmp, path)
    _fsync_dir(path)


def write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = tmp_name(path)
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:  # ENOSPC, a signal: leave no temp file behind
        remove_quietly(tmp)
        raise
    _fsync_dir(path)


def atomic_write_text(path: str, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str, obj) -> None:
    """Indented, key-sorted JSON (numpy values allowed) and a final newline."""
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
                                          | orjson.OPT_SERIALIZE_NUMPY) + b"\n")


@contextlib.contextmanager
def atomic_target(path: str, suffix: str = "") -> Iterator[str]:
    """``with atomic_target(p) as tmp: save(tmp)``: ``p`` appears complete or not at all."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = tmp_name(path, suffix)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb", **kwargs):
    """A file object whose contents replace ``path`` when the block exits cleanly."""
    with atomic_target(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def clean_temp_files(root: str, recursive: bool = True) -> int:
    """Remove the temp files killed writers left under ``root``; returns how many.
    Call it only while holding the run's lock (no live writer may own them)."""
    if not os.path.isdir(root):
        return 0
    n = 0
    walker = os.walk(root) if recursive else [(root, [], os.listdir(root))]
    for dp, _, files in walker:
        for f in files:
            if is_temp(f):
                try:
                    os.remove(os.path.join(dp, f))
                    n += 1
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    continue
    return n
