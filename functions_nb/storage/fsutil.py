"""Small fsspec helpers: atomic and exclusive writes, and reads of known keys, that work on
local folders and object stores.

On an object store every helper is a fixed number of requests and never lists: a read is one
GET (s3fs would otherwise ask the size first with a HEAD, and answer a missing key's HEAD with
a LIST looking for a "directory" of that name), an existence check is one ranged GET, a write
is one PUT. fsspec itself is imported when a store is opened, not with this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import fsspec

#: Object-store URL schemes: listing caches off (other processes write the same store), no
#: folders to create.
OBJECT_STORES = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://")


class LocalFolder:
    """A local store's filesystem: fsspec's ``LocalFileSystem``, made on first use.

    The helpers below read and write local files with :mod:`os` directly, so a process that
    only invokes (reads a few known files, flushes its history at exit) never imports fsspec
    (with its entry-point scan and asyncio, most of a short-lived process's start-up).
    Anything else (``ls``, ``glob``, ``rm``, …) is fsspec's, through attribute access.
    """

    protocol = ("file", "local")

    def __init__(self) -> None:
        self._fs: fsspec.AbstractFileSystem | None = None

    @property
    def fsspec(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem (imports fsspec the first time)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_fs":  # copy/pickle probes, unpickling
            raise AttributeError(name)
        return getattr(self.fsspec, name)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)


def open_fs(url: str, storage_options: dict[str, Any] | None = None,
            ) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and root path for an fsspec URL (plain paths are local folders).

    Local folders are created here; an object store is not touched (no request) until it is
    read or written."""
    if "://" not in url and not storage_options:
        root = os.path.abspath(os.path.expanduser(url)).rstrip("/") or "/"
        os.makedirs(root, exist_ok=True)
        return LocalFolder(), root  # type: ignore[return-value]
    import fsspec.core

    options = dict(storage_options or {})
    if url.startswith(OBJECT_STORES):
        options.setdefault("use_listings_cache", False)
    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/") or "/"
    if is_local(fs):
        root = os.path.abspath(root)
        fs.makedirs(root, exist_ok=True)
    elif not url.startswith(OBJECT_STORES):
        fs.makedirs(root, exist_ok=True)  # other backends (memory, sftp, …) may need folders
    elif callable(getattr(fs, "connect", None)) and hasattr(fs, "set_session"):
        # s3fs: make the client now (no request). Its session is closed by a finalizer that
        # runs at exit in reverse order of registration: made here, before the History of
        # this store exists, it stays open for the History's last flush at exit.
        fs.connect()
    return fs, root


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    if isinstance(fs, LocalFolder):
        return True
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _one_get(fs: fsspec.AbstractFileSystem) -> dict[str, Any]:
    """``cat_file`` options for a whole object in one request: s3fs reads objects larger than
    its block size as parallel ranges after a HEAD for the size (``max_concurrency``)."""
    return {"max_concurrency": 1} if isinstance(getattr(fs, "max_concurrency", None), int) else {}


def _local_temp(path: str, data: bytes) -> str:
    """Write ``data`` durably to a unique temporary file beside ``path``; return its name."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.urandom(16).hex()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes, **kwargs: Any) -> None:
    """One PUT; a missing bucket is created once and the PUT repeated (what opening the
    store used to do up front, at a request per open)."""
    try:
        fs.pipe_file(path, data, **kwargs)
    except FileNotFoundError:
        bucket = fs._strip_protocol(path).split("/", 1)[0]
        fs.makedirs(bucket, exist_ok=True)
        fs.pipe_file(path, data, **kwargs)


def write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write so that readers see either nothing or the whole file.

    Local: write a temporary file, then ``os.replace``. Object stores: one PUT is atomic.
    """
    if is_local(fs):
        os.replace(_local_temp(path, data), path)
    else:
        _put(fs, path, data)


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create ``path`` with ``data`` only if it does not exist; complete or absent, never partial.

    Returns False when the path already existed. Local folders use a hard link of a
    finished temporary file (atomic and exclusive); object stores use exclusive create
    (``mode="create"``: one conditional PUT, ``If-None-Match: *``) where the backend supports it.
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
        _put(fs, path, data, mode="create")
        return True
    except FileExistsError:
        return False
    except (TypeError, ValueError, NotImplementedError):  # backend without exclusive create
        if fs.exists(path):
            return False
        fs.pipe_file(path, data)
        return True


def read_or_none(fs: fsspec.AbstractFileSystem, path: str) -> bytes | None:
    """The whole file, or None if it does not exist: one GET on an object store."""
    if isinstance(fs, LocalFolder):
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
    try:
        return fs.cat_file(path, **_one_get(fs))
    except FileNotFoundError:
        return None


def file_exists(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Whether ``path`` is a non-empty file: one request (a one-byte ranged GET) on an
    object store, where ``fs.exists`` of a missing key costs a HEAD and a LIST."""
    if is_local(fs):
        return os.path.isfile(path)
    try:
        return bool(fs.cat_file(path, start=0, end=1))
    except FileNotFoundError:
        return False
