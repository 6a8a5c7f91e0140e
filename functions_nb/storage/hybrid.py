"""Two stores as one: a primary and a fallback (the seed's R2 + KV), with migration.

Reads try the preferred store first and fall back to the other; with ``auto_migrate`` a
version found only in the other store is copied to the write store when it is read.
Writes (new versions, ``latest``, module cache, history) go to the write store. Version
numbers never collide across the two: a new version takes the next number of both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..dependencies import pinned
from ..errors import FunctionNotFound, StorageError
from ..models import Artifact, FunctionInfo
from .store import FunctionStore


class HybridStore:
    """Primary + fallback :class:`FunctionStore` with the same interface as one store."""

    def __init__(self, primary: FunctionStore, fallback: FunctionStore, *,
                 prefer_primary: bool = True, write_primary: bool = True,
                 auto_migrate: bool = False) -> None:
        self.primary = primary
        self.fallback = fallback
        self.prefer_primary = prefer_primary
        self.write_primary = write_primary
        self.auto_migrate = auto_migrate
        self.writes = primary if write_primary else fallback
        self.other = fallback if write_primary else primary
        self.order = (primary, fallback) if prefer_primary else (fallback, primary)
        self.url = primary.url
        self.fs, self.root = self.writes.fs, self.writes.root

    def path(self, *parts: str) -> str:
        return self.writes.path(*parts)

    # reads ---------------------------------------------------------------------------
    def _first(self, call: Callable[[FunctionStore], Any]) -> Any:
        """First answer in preference order; 'not found' moves on, the last error is raised."""
        error: Exception | None = None
        for store in self.order:
            try:
                return call(store)
            except (FunctionNotFound, StorageError) as exc:
                error = exc
        assert error is not None
        raise error

    def versions(self, name: str) -> list[int]:
        return sorted(set(self.primary.versions(name)) | set(self.fallback.versions(name)))

    def names(self) -> list[str]:
        return sorted(set(self.primary.names()) | set(self.fallback.names()))

    def latest_version(self, name: str) -> int:
        return self._first(lambda s: s.latest_version(name))

    def get_info(self, name: str, version: int | None = None, cached: bool = False) -> FunctionInfo:
        if version is None:
            version = self.latest_version(name)
        info = self._first(lambda s: s.get_info(name, version, cached))
        if self.auto_migrate and not self.writes.has_version(name, version):
            self.migrate(name, version)
        return info

    def find_by_hash(self, name: str, content_hash: str) -> FunctionInfo | None:
        for store in self.order:
            found = store.find_by_hash(name, content_hash)
            if found is not None:
                return found
        return None

    def get_code(self, info: FunctionInfo) -> bytes:
        return self._first(lambda s: s.get_blob(info.code_sha256))

    def get_blob(self, digest: str) -> bytes:
        return self._first(lambda s: s.get_blob(digest))

    def get_cached(self, key: str) -> bytes | None:
        for store in self.order:
            data = store.get_cached(key)
            if data is not None:
                return data
        return None

    def has_cached(self, key: str) -> bool:
        return any(store.has_cached(key) for store in self.order)

    #: Latest version of every function in either store (same logic as one store).
    list = FunctionStore.list

    def version_table(self, name: str) -> list[dict[str, Any]]:
        rows = {r["version"]: r for r in self.other.version_table(name)}
        rows.update({r["version"]: r for r in self.writes.version_table(name)})
        latest = self.latest_version(name) if rows else None
        return [{**rows[v], "latest": v == latest} for v in sorted(rows)]

    # writes --------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        return self.writes.put_blob(data)

    def put_cached(self, key: str, data: bytes) -> None:
        self.writes.put_cached(key, data)

    def put_version(self, name: str, artifact: Artifact, **kwargs: Any) -> FunctionInfo:
        taken = self.other.versions(name)
        return self.writes.put_version(name, artifact, min_version=(taken[-1] + 1) if taken else 1,
                                       **kwargs)

    def set_latest(self, name: str, version: int) -> None:
        if not self.writes.has_version(name, version):
            self.migrate(name, version)
        self.writes.set_latest(name, version)

    def delete(self, name: str, version: int | None = None) -> list[int]:
        gone: set[int] = set()
        for store in (self.primary, self.fallback):
            held = store.versions(name)
            if held and (version is None or version in held):
                gone.update(store.delete(name, version))
        if not gone:
            raise FunctionNotFound(f"no function named {name!r}" if version is None
                                   else f"{name!r} has no version {version}")
        return sorted(gone)

    # migration -------------------------------------------------------------------------
    def migrate(self, name: str | None = None, version: int | None = None,
                progress: bool = False) -> dict[str, Any]:
        """Copy versions from the other store into the write store, verified by content hash."""
        return migrate(self.other, self.writes, name, version, progress=progress)

    def cleanup_fallback(self, name: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Delete from the fallback only versions verified identical in the primary."""
        return cleanup(self.fallback, self.primary, name, dry_run=dry_run)

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "primary": self.primary.url, "fallback": self.fallback.url,
                "prefer_primary": self.prefer_primary, "write_primary": self.write_primary,
                "auto_migrate": self.auto_migrate}


def _work(source: FunctionStore, name: str | None, version: int | None) -> list[tuple[str, int]]:
    names = [name] if name is not None else source.names()
    items = []
    for n in names:
        versions = source.versions(n)
        if version is not None:
            if version not in versions:
                raise FunctionNotFound(f"{n!r} has no version {version} in {source.url}")
            versions = [version]
        items += [(n, v) for v in versions]
    return items


def _progress(items: list, desc: str, enabled: bool) -> Any:
    if not enabled:
        return items
    from ..widgets.progress import progress  # HTML updated in place in a notebook, not a widget

    return progress(items, desc=desc, unit="version")


def migrate(source: FunctionStore, target: FunctionStore, name: str | None = None,
            version: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Copy versions (all, one function's, or one) from ``source`` to ``target``.

    Each copy is verified by re-reading it from the target and comparing content hashes.
    A function new to the target gets the source's ``latest``; an existing one keeps its own."""
    report: dict[str, Any] = {"copied": [], "already": [], "failed": []}
    items = _work(source, name, version)
    names = sorted({n for n, _ in items})
    new_here = {n for n in names if not target.versions(n)}
    for n, v in _progress(items, f"migrate → {target.url}", progress):
        try:
            info = source.get_info(n, v)
            for package in pinned(info.dependencies):  # a redeploy there needs the files too
                target.put_blob(source.get_blob(package["sha256"]))
            copied = target.copy_version(info, source.get_blob(info.code_sha256))
            if not target.verify(info):
                raise StorageError(f"{info.target}: verification failed in {target.url}")
            report["copied" if copied else "already"].append(info.target)
        except StorageError as exc:
            report["failed"].append({"target": f"{n}@{v}", "error": str(exc)})
    for n in names:  # a function new to the target gets the source's latest (rollbacks included)
        try:
            want = source.latest_version(n)
            if n in new_here and want in target.versions(n):
                target.set_latest(n, want)
        except (FunctionNotFound, StorageError):
            continue
    return report


def cleanup(fallback: FunctionStore, primary: FunctionStore, name: str | None = None,
            dry_run: bool = False) -> dict[str, Any]:
    """Delete from ``fallback`` the versions that ``primary`` holds verified-identical."""
    report: dict[str, Any] = {"deleted": [], "kept": []}
    for n, v in _work(fallback, name, None):
        info = fallback.get_info(n, v)
        if primary.verify(info):
            if not dry_run:
                fallback.delete(n, v)
            report["deleted"].append(info.target)
        else:
            report["kept"].append(info.target)
    return report
