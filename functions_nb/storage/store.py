"""The function store: versions, ``latest``, content-hash index and blobs in one fsspec location.

Layout under the store root::

    functions/<name>/versions/<n>.json   version metadata; its creation is the commit point
    functions/<name>/latest.json         {"version": n}; moved by deploy and rollback
    functions/<name>/hashes/<hash>.json  {"version": n}; re-deploying identical input finds it
    blobs/<sha256>                       compiled code, content-addressed, verified on read
    modcache/<key>                       precompiled modules shared between processes
    history/...                          execution history (owned by ``history.py``)

A version becomes visible only when its metadata file exists, and that file is created
(exclusively, never partially) after the blob it points to is complete.

Deploy and invoke read and write known keys only, never listing a prefix (a LIST is the
slowest request of an object store): a cold invoke of ``name`` reads ``latest.json``, the
version's metadata, the blob and the precompiled module (4 GETs on S3); a deploy of new
code reads the hash index, the blob and ``latest.json`` (3 GETs that miss) and writes the
blob, the metadata (a conditional PUT), the hash index and ``latest`` (4 PUTs). The next
version number is ``latest`` + 1, taking the next free one when another writer (or a
rollback's later versions) already holds it. Listing is left to listings: ``versions``,
``names``, ``list``, deletes, and error messages.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from ..dependencies import pinned
from ..errors import FunctionNotFound, FunctionsError, StorageError
from ..models import VERSION_RE, Artifact, FunctionInfo, check_name
from .fsutil import create_exclusive, file_exists, open_fs, read_or_none, write_atomic

F = TypeVar("F", bound=Callable[..., Any])
#: Version numbers a deploy tries after ``latest`` + 1 before it lists the versions to jump
#: past them (after a rollback to an old version, say).
NUMBER_GUESSES = 3


def guarded(method: F) -> F:
    """Turn backend failures (network, permissions, a server that went away) into StorageError;
    'not found' and our own errors pass through."""

    @functools.wraps(method)
    def wrapper(self: FunctionStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (FunctionsError, FileNotFoundError, FileExistsError):
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure is a storage error
            raise StorageError(f"store {self.url} failed in {method.__name__}: "
                               f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


class FunctionStore:
    """Registry of names -> versions over one fsspec URL."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        try:
            self.fs, self.root = open_fs(url, storage_options)
        except Exception as exc:  # noqa: BLE001 - any backend failure is a storage error
            raise StorageError(f"cannot open store {url!r}: {exc}") from exc
        self._info_cache: dict[tuple[str, int], FunctionInfo] = {}

    # paths -----------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _fn(self, name: str, *parts: str) -> str:
        return self.path("functions", name, *parts)

    # blobs -----------------------------------------------------------------
    @guarded
    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path("blobs", digest)
        existing = read_or_none(self.fs, path)
        if existing is None or hashlib.sha256(existing).hexdigest() != digest:
            write_atomic(self.fs, path, data)
        return digest

    @guarded
    def get_blob(self, digest: str) -> bytes:
        data = read_or_none(self.fs, self.path("blobs", digest))
        if data is None:
            raise StorageError(f"blob {digest[:12]} is missing from {self.url}")
        if hashlib.sha256(data).hexdigest() != digest:
            raise StorageError(f"blob {digest[:12]} in {self.url} is corrupt (hash mismatch)")
        return data

    # shared caches (precompiled modules) -------------------------------------
    @guarded
    def get_cached(self, key: str) -> bytes | None:
        return read_or_none(self.fs, self.path("modcache", key))

    @guarded
    def has_cached(self, key: str) -> bool:
        return file_exists(self.fs, self.path("modcache", key))

    @guarded
    def put_cached(self, key: str, data: bytes) -> None:
        write_atomic(self.fs, self.path("modcache", key), data)

    # versions --------------------------------------------------------------
    @guarded
    def versions(self, name: str) -> list[int]:
        try:
            entries = self.fs.ls(self._fn(name, "versions"), detail=False)
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            base = entry.rsplit("/", 1)[-1]
            if base.endswith(".json") and VERSION_RE.fullmatch(base[:-5]):
                out.append(int(base[:-5]))
        return sorted(out)

    @guarded
    def find_by_hash(self, name: str, content_hash: str) -> FunctionInfo | None:
        raw = read_or_none(self.fs, self._fn(name, "hashes", f"{content_hash}.json"))
        if raw is None:
            return None
        try:
            return self.get_info(name, json.loads(raw)["version"], cached=True)
        except FunctionNotFound:
            return None

    @guarded
    def put_version(self, name: str, artifact: Artifact, *, content_hash: str,
                    timeout: float, memory_mb: int, min_version: int = 1,
                    options: dict[str, Any] | None = None) -> FunctionInfo:
        """Store a new version; returns its info. The version is visible only when complete.

        The number is the next free one, at least ``min_version`` (a hybrid store passes the
        numbers its other store already uses)."""
        check_name(name)
        digest = self.put_blob(artifact.code)
        version = max(self._latest_or_zero(name) + 1, min_version)
        misses = 0
        while True:
            info = FunctionInfo(
                name=name, version=version, language=artifact.language,
                runtime=artifact.runtime, signature=artifact.signature,
                content_hash=content_hash, code_sha256=digest, code_size=len(artifact.code),
                created_at=_now_iso(),
                timeout=float(timeout), memory_mb=int(memory_mb), toolchain=artifact.toolchain,
                flags=artifact.flags, compile_ms=round(artifact.compile_ms, 3),
                source=artifact.source, warnings=artifact.warnings, line_map=artifact.line_map,
                options=dict(options or {}), dependencies=artifact.dependencies)
            meta = json.dumps(info.to_dict(), indent=1).encode()
            if create_exclusive(self.fs, self._fn(name, "versions", f"{version}.json"), meta):
                break
            misses += 1  # another writer took this number, or latest was rolled back
            known = self.versions(name) if misses == NUMBER_GUESSES else []
            version = max(version + 1, (known or [0])[-1] + 1)
        write_atomic(self.fs, self._fn(name, "hashes", f"{content_hash}.json"),
                     json.dumps({"version": version}).encode())
        self._write_latest(name, version)
        self._info_cache[(name, version)] = info
        return info

    def _latest_or_zero(self, name: str) -> int:
        raw = read_or_none(self.fs, self._fn(name, "latest.json"))
        return int(json.loads(raw)["version"]) if raw is not None else 0

    def _write_latest(self, name: str, version: int) -> None:
        write_atomic(self.fs, self._fn(name, "latest.json"), json.dumps({"version": version}).encode())

    @guarded
    def has_version(self, name: str, version: int) -> bool:
        """Whether this store holds ``name@version`` (one read of its metadata, kept)."""
        if (name, version) in self._info_cache:
            return True
        raw = read_or_none(self.fs, self._fn(name, "versions", f"{version}.json"))
        if raw is None:
            return False
        self._info_cache[(name, version)] = FunctionInfo.from_dict(json.loads(raw))
        return True

    @guarded
    def get_info(self, name: str, version: int | None = None, cached: bool = False) -> FunctionInfo:
        """Metadata of ``name@version`` (latest when version is None)."""
        if version is None:
            version = self.latest_version(name)
        info = self._info_cache.get((name, version))
        if info is None:
            raw = read_or_none(self.fs, self._fn(name, "versions", f"{version}.json"))
            if raw is None:
                raise FunctionNotFound(self._missing(name, version))
            info = FunctionInfo.from_dict(json.loads(raw))
            self._info_cache[(name, version)] = info
        if cached:
            return FunctionInfo.from_dict(info.to_dict(), cached=True)
        return info

    def _missing(self, name: str, version: int | None) -> str:
        known = self.versions(name)
        if not known:
            names = self.names()
            hint = f"; deployed functions: {', '.join(names)}" if names else "; nothing is deployed yet"
            return f"no function named {name!r} in {self.url}{hint}"
        return f"{name!r} has no version {version}; versions: {', '.join(map(str, known))}"

    @guarded
    def latest_version(self, name: str) -> int:
        raw = read_or_none(self.fs, self._fn(name, "latest.json"))
        if raw is not None:
            return int(json.loads(raw)["version"])
        known = self.versions(name)
        if not known:
            raise FunctionNotFound(self._missing(name, None))
        return known[-1]

    @guarded
    def set_latest(self, name: str, version: int) -> None:
        """Point ``latest`` at an existing version (deploy and rollback)."""
        if read_or_none(self.fs, self._fn(name, "versions", f"{version}.json")) is None:
            raise FunctionNotFound(self._missing(name, version))
        self._write_latest(name, version)

    def get_code(self, info: FunctionInfo) -> bytes:
        return self.get_blob(info.code_sha256)

    @guarded
    def names(self) -> list[str]:
        try:
            entries = self.fs.ls(self.path("functions"), detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def list(self) -> list[FunctionInfo]:
        """Latest version of every deployed function."""
        out = []
        for name in self.names():
            try:
                out.append(self.get_info(name))
            except FunctionNotFound:
                continue  # a name whose first version is still being written
        return out

    @guarded
    def version_table(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name`` with hash, size, language, created time, and which is latest."""
        versions = self.versions(name)
        latest = self.latest_version(name) if versions else None
        return [{"name": name, "version": v, "latest": v == latest,
                 "language": i.language, "content_hash": i.content_hash,
                 "code_sha256": i.code_sha256, "size": i.code_size, "created_at": i.created_at,
                 "dependencies": pinned(i.dependencies), "store": self.url}
                for v in versions for i in [self.get_info(name, v)]]

    @guarded
    def copy_version(self, info: FunctionInfo, code: bytes) -> bool:
        """Write a version that exists elsewhere under the same number (migration).

        Returns False if this store already has that number with the same content; raises
        StorageError if it has different content under it."""
        if hashlib.sha256(code).hexdigest() != info.code_sha256:
            raise StorageError(f"{info.target}: code does not match its recorded hash")
        self.put_blob(code)
        meta = json.dumps(info.to_dict(), indent=1).encode()
        if not create_exclusive(self.fs, self._fn(info.name, "versions", f"{info.version}.json"), meta):
            mine = self.get_info(info.name, info.version)
            if (mine.content_hash, mine.code_sha256) != (info.content_hash, info.code_sha256):
                raise StorageError(f"{info.target} exists in {self.url} with different content")
            return False
        write_atomic(self.fs, self._fn(info.name, "hashes", f"{info.content_hash}.json"),
                     json.dumps({"version": info.version}).encode())
        return True

    @guarded
    def verify(self, info: FunctionInfo) -> bool:
        """True if this store holds ``info``'s version with the same content, blob intact."""
        try:
            mine = self.get_info(info.name, info.version)
            self.get_blob(mine.code_sha256)
        except (FunctionNotFound, StorageError):
            return False
        return (mine.content_hash, mine.code_sha256) == (info.content_hash, info.code_sha256)

    @guarded
    def delete(self, name: str, version: int | None = None) -> list[int]:
        """Delete one version (or every version) of ``name``; returns the versions deleted.

        The metadata (the commit point) goes first, so a half-finished delete never leaves a
        visible version without its code. Blobs stay: they are shared by content."""
        versions = self.versions(name)
        doomed = versions if version is None else [version]
        if version is not None and version not in versions:
            raise FunctionNotFound(self._missing(name, version))
        for v in doomed:
            info = self.get_info(name, v)
            self.fs.rm_file(self._fn(name, "versions", f"{v}.json"))
            self._info_cache.pop((name, v), None)
            hash_path = self._fn(name, "hashes", f"{info.content_hash}.json")
            raw = read_or_none(self.fs, hash_path)
            if raw is not None and json.loads(raw)["version"] == v:
                self.fs.rm_file(hash_path)
        left = [v for v in versions if v not in doomed]
        if left:
            if self.latest_version(name) in doomed:
                self.set_latest(name, left[-1])
        else:
            self.fs.rm(self._fn(name), recursive=True)
        return doomed

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "protocol": self.fs.protocol, "root": self.root}


def _now_iso() -> str:
    """The current UTC time in ISO 8601 with milliseconds (a version's ``created_at``)."""
    import datetime as _dt  # deploys only: not on the invoke path

    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")

