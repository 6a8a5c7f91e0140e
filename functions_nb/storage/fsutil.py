"""Small fsspec helpers: atomic and exclusive writes that work on local folders and object stores."""

from __future__ import annotations

import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


def open_fs(url: str, storage_options: dict[str, Any] | None = None,
            ) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and root path for an fsspec URL (plain paths are local folders).

    Object stores get listing caches off by default: other processes write the same store."""
    options = dict(storage_options or {})
    if url.startswith(("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://")):
        options.setdefault("use_listings_cache", False)
    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/") or "/"
    if is_local(fs):
        root = os.path.abspath(root)
    fs.makedirs(root, exist_ok=True)
    return fs, root


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _local_temp(path: str, data: bytes) -> str:
    """Write ``data`` durably to a unique temporary file beside ``path``; return its name."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write so that readers see either nothing or the whole file.

    Local: write a temporary file, then ``os.replace``. Object stores: one PUT is atomic.
    """
    if is_local(fs):
        os.replace(_local_temp(path, data), path)
    else:
        fs.pipe_file(path, data)


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create ``path`` with ``data`` only if it does not exist; complete or absent, never partial.

    Returns False when the path already existed. Local folders use a hard link of a
    finished temporary file (atomic and exclusive); object stores use exclusive create
    (``mode="xb"``) where the backend supports it.
    """
    if is_local(fs):
        tmp = _local_temp(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    try:
        fs.pipe_file(path, data, mode="create")  # s3fs: a conditional PUT (If-None-Match: *)
        return True
    except FileExistsError:
        return False
    except (TypeError, ValueError, NotImplementedError):  # backend without exclusive create
        if fs.exists(path):
            return False
        fs.pipe_file(path, data)
        return True


def read_or_none(fs: fsspec.AbstractFileSystem, path: str) -> bytes | None:
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None
