"""Dependencies per function: declared in the cell, resolved once, pinned, stored, offline after.

A language that can have dependencies says which the cell declares, in its own convention
(:meth:`~functions_nb.languages.base.Language.declared_dependencies`: PEP 723 for Python, bare
imports for TypeScript, a ``[dependencies]`` front matter for Rust, imports for Go), and names
its registry (:attr:`~functions_nb.languages.base.Language.ecosystem`). A deploy then
(:func:`prepare`):

1. reuses the lock of the function's latest version when it declared the same dependencies
   (the packages stay pinned across redeploys, and no registry is asked);
2. otherwise asks the ecosystem's :class:`Resolver` (outside the build sandbox, with the
   registry's client or its HTTP API), which returns every file the build needs, each checked
   against the registry's own hash; the files become content-addressed blobs in the store and
   the :class:`Lock` lists them (name, version, file, sha256, the registry's hash);
3. materializes the lock's files in the local cache from the store's blobs (each verified by
   its sha256), so a build on another machine, or after the registry is gone, uses exactly
   the same files.

The compiler then sees only those files (:class:`Resolved`), inside its sandbox; the lock is
stored in the version's metadata (``FunctionInfo.dependencies``), part of its content hash,
and shown by ``fx.versions(name, detail=True)`` and the sidebar.

Resolvers live in one module per ecosystem (``pypi``, ``npm``, ``crates``, ``go``), imported
on first use. Registry addresses come from the usual variables (``PIP_INDEX_URL``,
``npm_config_registry``, ``GOPROXY``, cargo's own configuration), so a test can point them
at a registry that does not answer.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..config import cache_dir
from ..errors import DependencyError, StorageError

#: Ecosystem -> the module holding its resolver (``resolver()`` returns it).
ECOSYSTEMS = {
    "pypi": "functions_nb.dependencies.pypi",
    "npm": "functions_nb.dependencies.npm",
    "crates": "functions_nb.dependencies.crates",
    "go": "functions_nb.dependencies.gomod",
}


class Package(NamedTuple):
    """One pinned file of a lock: a package at an exact version, as its registry serves it."""

    name: str
    version: str
    #: The file's name as served (a wheel, an npm ``.tgz``, a ``.crate``, a Go module ``.zip``).
    file: str
    #: sha256 of the file: its blob in the store.
    sha256: str
    #: The registry's own check of the file (npm ``integrity``, Go ``h1:``, crates ``cksum``,
    #: PyPI's sha256), where it has one.
    registry_hash: str = ""


class Lock(NamedTuple):
    """What a function's dependencies resolved to: its ecosystem, the declarations as the cell
    made them, and every file the build uses (the direct and the transitive packages)."""

    ecosystem: str
    declared: tuple[str, ...]
    packages: tuple[Package, ...]
    #: Ecosystem-specific lock text the build needs verbatim (``Cargo.lock``, ``go.sum``).
    extra: str = ""

    def digest(self) -> str:
        """sha256 of the lock (part of the version's content hash)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"ecosystem": self.ecosystem, "declared": list(self.declared),
                "packages": [p._asdict() for p in self.packages], "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lock:
        return cls(data["ecosystem"], tuple(data["declared"]),
                   tuple(Package(**p) for p in data["packages"]), data.get("extra", ""))


class Fetched(NamedTuple):
    """A file a resolver fetched: its :class:`Package` (``sha256`` already computed) and bytes."""

    package: Package
    data: bytes


class Resolver(Protocol):
    """An ecosystem's registry client (one module per ecosystem, ``resolver()`` in it)."""

    ecosystem: str

    def resolve(self, declared: tuple[str, ...], *, language: str, name: str,
                previous: Lock | None = None) -> tuple[list[Fetched], str]:
        """Every file ``declared`` needs (transitive dependencies included), fetched and
        checked against the registry's hash, plus the ecosystem's lock text (or "").
        ``previous``: the function's lock before its declarations changed; a package it pins
        keeps that version where the new declarations allow it (as cargo, npm and go keep
        what their lock files hold). Raises :class:`DependencyError` naming the package that
        cannot be used."""
        ...


class Declaring(Protocol):
    """What :func:`prepare` needs of a language (:class:`~functions_nb.languages.base.Language`)."""

    name: str
    ecosystem: str

    def declared_dependencies(self, source: str, flags: dict[str, Any]) -> tuple[str, ...]: ...


class Resolved(NamedTuple):
    """A lock and where its files are on this machine (``files[i]`` is ``lock.packages[i]``)."""

    lock: Lock
    files: tuple[Path, ...]

    def by_name(self) -> dict[str, Path]:
        """Package name -> its file."""
        return {p.name: f for p, f in zip(self.lock.packages, self.files, strict=True)}


def resolver(ecosystem: str) -> Resolver:
    """The resolver of ``ecosystem`` (``pypi``, ``npm``, ``crates``, ``go``)."""
    try:
        module = importlib.import_module(ECOSYSTEMS[ecosystem])
    except KeyError:
        raise ValueError(f"unknown ecosystem {ecosystem!r}; known: {', '.join(ECOSYSTEMS)}"
                         ) from None
    return module.resolver()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare(lang: Declaring, source: str, flags: dict[str, Any], name: str, store: Any,
            previous: Callable[[], dict[str, Any] | None] | None = None, line_offset: int = 0
            ) -> Resolved | None:
    """The dependencies of one deploy of ``source`` as ``name`` (None when it declares none).

    ``previous()`` gives the lock of the function's latest version (``FunctionInfo.dependencies``),
    asked only when the cell declares dependencies: reused as it is when the cell declares the
    same ones. ``store`` holds the files
    (``put_blob``/``get_blob``). A refused declaration's line is shifted by ``line_offset``
    (the notebook cell's own numbering, as compiler errors are)."""
    try:
        declared = tuple(lang.declared_dependencies(source, flags))
    except DependencyError as exc:  # a declaration refused: say whose, and where in the cell
        exc.language, exc.name = exc.language or lang.name, exc.name or name
        if exc.line and line_offset:
            exc.line += line_offset
            exc.args = (re.sub(r"\bcell:(\d+)", lambda m: f"cell:{int(m[1]) + line_offset}",
                               str(exc), count=1),)
        raise
    if not declared:
        return None
    ecosystem = lang.ecosystem
    if not ecosystem:
        raise DependencyError(f"{lang.name} functions cannot have dependencies "
                              f"(declared: {', '.join(declared)})", language=lang.name, name=name)
    last = previous() if previous is not None else None
    old = Lock.from_dict(last) if last else None
    if old is not None and old.ecosystem == ecosystem and old.declared == declared:
        lock = old
    else:
        kept = old if old is not None and old.ecosystem == ecosystem else None
        fetched, extra = resolver(ecosystem).resolve(declared, language=lang.name, name=name,
                                                     previous=kept)
        for item in fetched:
            digest = store.put_blob(item.data)
            if digest != item.package.sha256:  # the resolver's hash and the store's disagree
                raise StorageError(f"{item.package.file}: stored as {digest[:12]}, expected "
                                   f"{item.package.sha256[:12]}")
        lock = Lock(ecosystem, declared, tuple(f.package for f in fetched), extra)
    return Resolved(lock, tuple(materialize(lock.packages, store)))


def materialize(packages: Iterable[Package], store: Any) -> list[Path]:
    """The local copies of ``packages``' files (``<cache>/deps/<sha256>/<file>``), fetched
    from the store's blobs when absent here (verified there by sha256); never a registry."""
    out = []
    for pkg in packages:
        path = cache_dir() / "deps" / pkg.sha256 / pkg.file
        if not path.is_file() or sha256(path.read_bytes()) != pkg.sha256:
            data = store.get_blob(pkg.sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.urandom(8).hex()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        out.append(path)
    return out


def pinned(lock: dict[str, Any] | None) -> list[dict[str, str]]:
    """A version's pinned packages as table rows (ecosystem, name, version, file, sha256):
    what ``fx.versions(name, detail=True)`` and the sidebar show."""
    if not lock:
        return []
    return [{"ecosystem": lock["ecosystem"], "name": p["name"], "version": p["version"],
             "file": p["file"], "sha256": p["sha256"]} for p in lock["packages"]]


def combine(code_hash: str, resolved: Resolved | None) -> str:
    """``code_hash`` with the lock folded in (a deploy whose lock changed is a new version)."""
    if resolved is None:
        return code_hash
    return hashlib.sha256(f"{code_hash}|{resolved.lock.digest()}".encode()).hexdigest()


__all__ = ["ECOSYSTEMS", "DependencyError", "Fetched", "Lock", "Package", "Resolved",
           "Resolver", "combine", "materialize", "pinned", "prepare", "resolver"]
