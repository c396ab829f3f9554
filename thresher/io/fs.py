"""Local paths and fsspec URLs behind one small interface.

A path with a scheme (``s3://``, ``gs://``, ``hdfs://``, ``memory://`` ...) goes
through fsspec and the backend installed for it (``s3fs``, ``gcsfs``, ``pyarrow``'s
HDFS ...); a missing backend is an error that names the package.  Plain paths (and
``file://``) keep the builtin calls, so local runs keep their fast paths (mmap,
byte-range seeks, os.walk, inode de-duplication).

Backend options come from fsspec's own configuration: ``FSSPEC_S3_<KWARG>``
environment variables / ``~/.config/fsspec/*.json``, plus each backend's usual
credentials (``AWS_*``, ``AWS_ENDPOINT_URL`` for an S3-compatible server).
"""
from __future__ import annotations

import os
import posixpath

_REMOTE_HINT = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "hdfs": "pyarrow",
                "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs"}


def is_remote(path) -> bool:
    path = str(path)
    return "://" in path and not path.startswith("file://")


def local(path: str) -> str:
    """A ``file://`` URL as a plain path (other paths unchanged)."""
    return path[len("file://"):] if str(path).startswith("file://") else path


def protocol(url: str) -> str:
    return url.split("://", 1)[0]


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a URL."""
    import fsspec
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        pkg = _REMOTE_HINT.get(protocol(url))
        hint = f" (pip install {pkg})" if pkg else ""
        raise ImportError(f"no filesystem for {url!r}{hint}: {e}") from e


def _url(fsys, path: str, like: str) -> str:
    """The full URL of a path a filesystem listed (listings drop the scheme)."""
    proto = protocol(like)
    return path if "://" in path else f"{proto}://{path.lstrip('/')}" if proto != "memory" else f"memory://{path}"


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def open_file(path: str, mode: str = "rb"):
    if not is_remote(path):
        return open(local(path), mode)
    fsys, p = filesystem(path)
    return fsys.open(p, mode)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(local(path))
    fsys, p = filesystem(path)
    return fsys.exists(p)


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(local(path))
    fsys, p = filesystem(path)
    return fsys.isdir(p)


def isfile(path: str) -> bool:
    if not is_remote(path):
        return os.path.isfile(local(path))
    fsys, p = filesystem(path)
    return fsys.isfile(p)


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(local(path))
    fsys, p = filesystem(path)
    return int(fsys.size(p))


def stat(path: str) -> tuple[int, int]:
    """(size, mtime in ns) of a file; raises OSError if it does not exist."""
    if not is_remote(path):
        st = os.stat(local(path))
        return st.st_size, st.st_mtime_ns
    fsys, p = filesystem(path)
    try:
        info = fsys.info(p)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - backends raise their own types
        raise OSError(f"{path}: {e}") from e
    if info.get("type") == "directory":
        raise IsADirectoryError(path)
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or info.get("created")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    etag = str(info.get("ETag") or info.get("etag") or "")
    # no mtime (some object stores): the entity tag stands in, so a rewrite still shows
    ns = int(float(mtime) * 1e9) if isinstance(mtime, (int, float)) else int(etag.strip('"')[:15] or "0", 16)
    return int(info.get("size") or 0), ns


def walk_files(url: str) -> list[str]:
    """Every file under a remote folder, as URLs."""
    fsys, p = filesystem(url)
    return [_url(fsys, f, url) for f in fsys.find(p)]


def glob(url: str) -> list[str]:
    fsys, p = filesystem(url)
    return [_url(fsys, f, url) for f in fsys.glob(p) if fsys.isfile(f)]


def relpath(path: str, root: str) -> str:
    if not is_remote(path):
        return os.path.relpath(path, root)
    a, b = path.split("://", 1)[1], root.split("://", 1)[1].rstrip("/")
    return posixpath.relpath(a, b) if b else a


def commonroot(paths: list[str]) -> str:
    """The common folder of input roots: local paths by os.path, URLs of one scheme by
    their path part; a mix has no common root (origins then keep full URLs)."""
    if not paths:
        return "."
    remote = [p for p in paths if is_remote(p)]
    if not remote:
        return os.path.commonpath([os.path.abspath(p) for p in paths])
    if len(remote) != len(paths) or len({protocol(p) for p in remote}) != 1:
        return ""
    proto = protocol(remote[0])
    common = posixpath.commonpath(["/" + p.split("://", 1)[1].strip("/") for p in remote])
    return f"{proto}://{common.lstrip('/')}"


def upload(src: str, dst: str) -> None:
    """Copy a local file or folder (recursively) to ``dst``, file by file, so the
    destination layout is exact whatever the backend's folder semantics."""
    fsys, p = filesystem(dst)
    if os.path.isdir(src):
        from .atomic import is_temp
        for dp, _, files in os.walk(src):
            for f in sorted(files):
                if is_temp(f):
                    continue
                rel = os.path.relpath(os.path.join(dp, f), src).replace(os.sep, "/")
                fsys.put_file(os.path.join(dp, f), posixpath.join(p, rel))
        return
    fsys.put_file(src, p)


def remove(url: str) -> None:
    """Remove a remote file or folder; nothing if it does not exist."""
    fsys, p = filesystem(url)
    try:
        if fsys.exists(p):
            fsys.rm(p, recursive=True)
    except FileNotFoundError:
        pass
