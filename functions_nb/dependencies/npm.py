"""npm packages for TypeScript/JavaScript cells: declared, resolved, fetched, installed.

Declaration (:func:`declare`): every bare import of the cell (``import { z } from "zod"``,
``import chunk from "lodash-es/chunk"``, ``require("x")``) names a package; Node's built-in
modules (``fs``, ``node:fs``) are not packages and stay refused by the build. An optional
header comment pins versions or adds packages the cell does not import (type packages)::

    // @dependencies zod@3.23.8 lodash-es@^4.17.21 @types/lodash-es@4.17.12

A package without a version there is taken at its ``latest`` tag on the first deploy, and the
lock keeps it (the core reuses a lock while the declarations are unchanged). When the
declarations change, npm starts from the previous lock (:func:`previous_lockfile`), as it does
with a ``package-lock.json`` present: every locked package the new declarations still allow
keeps its version, and only what is new or no longer satisfied is resolved (a version the user
writes wins; an explicit tag, ``zod@next``, is looked up again).

Resolution (:class:`NpmResolver`, outside the build sandbox, with network): npm itself
computes the tree from the registry's metadata (``npm install --package-lock-only
--ignore-scripts``: exact npm semantics for ranges, peer and optional dependencies and
nesting, and nothing is installed, so no package code or install script runs). Each tarball
of the lock is then fetched here and checked against the lock's ``integrity`` (the
registry's SRI hash); a package that is a native addon is refused, named. The lock's
``extra`` is the install layout (``{"node_modules/a": "a@1.0.0", ...}``).

Installation (:func:`install`, :func:`tree`): the tarballs are extracted by this module
(regular files and folders only, paths checked) into a ``node_modules`` tree made once per
lock on this machine; a build links it into its directory and reads it read-only, so the
bundler in its sandbox sees exactly the locked packages and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from ..cache_folders import made_once
from ..config import cache_dir
from ..errors import DependencyError
from . import Fetched, Lock, Package, Resolved, sha256
from .http import get

#: Node's built-in modules (``require("module").builtinModules``, Node 20): a bare import of
#: one of them (or anything ``node:``) is not a package.
BUILTINS = frozenset("""assert async_hooks buffer child_process cluster console constants crypto
dgram diagnostics_channel dns domain events fs http http2 https inspector module net os path
perf_hooks process punycode querystring readline repl stream string_decoder sys timers tls
trace_events tty url util v8 vm wasi worker_threads zlib""".split())
#: A package name as npm accepts it (legacy names may have capitals), scoped or not.
_NAME = re.compile(r"(?:@[A-Za-z0-9][\w.~-]*/)?[A-Za-z0-9][\w.~-]*")
#: A version or range of the registry (``3.23.8``, ``^4.17``, ``>=1.2<2``, ``1.x``, a tag).
_SPEC = re.compile(r"[\w.^~<>=|*+-]+")
#: The header comment: ``// @dependencies name@range name ...``.
HEADER = re.compile(r"^[ \t]*//[ \t]*@dependencies\b(.*)$", re.M)
#: An install path of the layout: nested ``node_modules/<name>`` segments.
_LAYOUT_PATH = re.compile(r"(?:node_modules/(?:@[^/]+/)?[^/@][^/]*/)*node_modules/(?:@[^/]+/)?[^/@][^/]*")
#: How long npm has to resolve a tree.
NPM_TIMEOUT = 300.0
#: One retry, soon: npm's default (two, backing off up to a minute) kept a deploy waiting
#: about 70 s on a registry that refuses connections.
NPM_RETRIES = ("--fetch-retries=1", "--fetch-retry-mintimeout=2000",
               "--fetch-retry-maxtimeout=10000")
#: The most a function's packages may unpack to.
MAX_UNPACKED = 1 << 30
#: What makes a package a native addon: files, install-script tools, runtime loaders.
_NATIVE_TOOLS = re.compile(r"\b(node-gyp|prebuild-install|node-pre-gyp|cmake-js|node-gyp-build)\b")
_NATIVE_LOADERS = ("bindings", "node-gyp-build", "prebuild-install", "@mapbox/node-pre-gyp",
                   "node-pre-gyp", "nan", "node-addon-api")


# -- declarations ----------------------------------------------------------------------------

def package_of(specifier: str) -> str | None:
    """The package a module specifier names (``lodash/chunk`` -> ``lodash``,
    ``@scope/pkg/sub`` -> ``@scope/pkg``), or None for relative and absolute paths, URLs and
    Node's built-in modules."""
    if not specifier or specifier.startswith((".", "/", "\\", "node:")) or ":" in specifier:
        return None
    parts = specifier.split("/")
    name = "/".join(parts[:2]) if specifier.startswith("@") else parts[0]
    return None if name in BUILTINS else name


def check_name(name: str, what: str = "package") -> str:
    """``name`` if npm could serve it, else :class:`DependencyError` saying why."""
    if len(name) > 214 or not _NAME.fullmatch(name) or name.lower() in ("node_modules",
                                                                        "favicon.ico"):
        raise DependencyError(f"{what} {name!r} is not a valid npm package name")
    return name


def header_entries(source: str) -> dict[str, str]:
    """The ``// @dependencies`` entries of ``source``: name -> version range ("" for none)."""
    out: dict[str, str] = {}
    for m in HEADER.finditer(source):
        for item in re.split(r"[\s,]+", m.group(1).strip()):
            if not item:
                continue
            at = item.find("@", 1)
            name, spec = (item[:at], item[at + 1:]) if at > 0 else (item, "")
            check_name(name, "// @dependencies entry")
            if at > 0 and not _SPEC.fullmatch(spec):
                raise DependencyError(
                    f"// @dependencies entry {item!r}: {spec!r} is not a registry version or "
                    "range (git, file, URL and alias dependencies are not supported)")
            if out.get(name, spec) != spec:
                raise DependencyError(f"// @dependencies names {name} twice, as {name}@{out[name]} "
                                      f"and {item}")
            out[name] = spec
    return out


def declare(imports: Iterable[tuple[str, int]], header: Iterable[tuple[str, int]]
            ) -> tuple[str, ...]:
    """The cell's declarations, sorted: ``name@range`` for header entries with a version,
    ``name`` for the rest. ``imports``: (module specifier, cell line); ``header``: (a
    ``// @dependencies`` line, its cell line). An invalid one is a :class:`DependencyError`
    naming it and its line."""
    names: dict[str, str] = {}
    for text, line in header:
        try:
            entries = header_entries(text)
        except DependencyError as exc:
            raise DependencyError(f"cell:{line}: error: {exc}", line=line) from None
        for pkg, spec in entries.items():
            if names.get(pkg, spec) != spec:
                raise DependencyError(f"cell:{line}: error: // @dependencies names {pkg} twice "
                                      f"({pkg}@{names[pkg]} and {pkg}@{spec})", line=line)
            names[pkg] = spec
    for spec, line in imports:
        pkg = package_of(spec)
        if pkg is None:
            continue
        try:
            check_name(pkg, f"import {spec!r}: package")
        except DependencyError as exc:
            raise DependencyError(f"cell:{line}: error: {exc}", line=line) from None
        names.setdefault(pkg, "")
    return tuple(f"{n}@{s}" if s else n for n, s in sorted(names.items()))


def split(declared: str) -> tuple[str, str]:
    """``"zod@3.23.8"`` -> ``("zod", "3.23.8")``; ``"zod"`` -> ``("zod", "latest")``."""
    at = declared.find("@", 1)
    return (declared[:at], declared[at + 1:]) if at > 0 else (declared, "latest")


# -- resolution ------------------------------------------------------------------------------

def registry() -> str:
    """The registry npm uses here (``npm_config_registry``, else npm's own configuration)."""
    return os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or \
        "https://registry.npmjs.org/"


class NpmResolver:
    """npm packages: the tree from npm's lock-only resolution, tarballs fetched and checked
    here, native addons refused."""

    ecosystem = "npm"

    def resolve(self, declared: tuple[str, ...], *, language: str, name: str,
                previous: Lock | None = None) -> tuple[list[Fetched], str]:
        wanted = dict(split(d) for d in declared)
        for pkg, spec in wanted.items():
            check_name(pkg)
            if not _SPEC.fullmatch(spec):
                raise DependencyError(f"{pkg}@{spec}: not a registry version or range",
                                      language=language, name=name)
        entries = _npm_lock(wanted, language, name, previous_lockfile(previous, declared))
        fetched: dict[str, Fetched] = {}
        layout: dict[str, str] = {}
        for path, entry in sorted(entries.items()):
            if not path or entry.get("link") or entry.get("inBundle"):
                continue  # the root; workspaces; shipped inside their parent's tarball
            if entry.get("optional") and (entry.get("os") or entry.get("cpu")):
                continue  # a platform's prebuilt binary: of no use in V8
            pkg = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
            version = str(entry.get("version", ""))
            key = f"{pkg}@{version}"
            if key not in fetched:
                try:
                    item = _fetch(pkg, version, entry, language, name)
                except DependencyError as exc:
                    needed = _needed_by(pkg, entries, wanted)
                    if not needed:
                        raise
                    raise DependencyError(f"{exc} (needed by {needed})", language=language,
                                          name=name) from None
                if item is None:  # an optional native addon: left out, as npm leaves out
                    continue      # an optional package that fails to build
                fetched[key] = item
            layout[path] = key
        return list(fetched.values()), json.dumps(layout, indent=0, sort_keys=True)


def _needed_by(pkg: str, entries: dict[str, dict[str, Any]], wanted: dict[str, str]) -> str:
    """Which declared or locked packages depend on ``pkg`` ("" when the cell declared it)."""
    if pkg in wanted:
        return ""
    users = sorted({(e.get("name") or path.rsplit("node_modules/", 1)[-1])
                    for path, e in entries.items() if path and any(
                        pkg in (e.get(kind) or {}) for kind in
                        ("dependencies", "optionalDependencies", "peerDependencies"))})
    return ", ".join(users[:5])


def previous_lockfile(previous: Lock | None, declared: tuple[str, ...]) -> dict[str, Any] | None:
    """The ``package-lock.json`` npm starts from when a function's declarations change: the
    previous lock's layout, each package at its locked version, address and integrity. It is
    npm's first format (``lockfileVersion`` 1), whose entries carry no dependencies, so npm
    reads each locked version's manifest from the registry ("old lockfile") and then keeps
    every package the declarations allow, as ``npm install`` keeps a lock file's versions.
    A package declared with an explicit tag is left out (npm takes any locked version for a
    tag, but the user asked for the tag's version). None when there is nothing to start from."""
    if previous is None or previous.ecosystem != "npm":
        return None
    try:
        layout = json.loads(previous.extra or "{}")
    except ValueError:
        return None
    if not isinstance(layout, dict):
        return None
    hashes = {f"{p.name}@{p.version}": p.registry_hash for p in previous.packages}
    tagged = {pkg for pkg, spec in (split(d) for d in declared if d.find("@", 1) > 0)
              if _is_tag(spec)}
    root: dict[str, Any] = {}
    for path, key in sorted(layout.items()):  # parents before what nests inside them
        if not isinstance(key, str) or key not in hashes or not isinstance(path, str) or \
                not _LAYOUT_PATH.fullmatch(path):
            continue
        folders = re.findall(r"node_modules/((?:@[^/]+/)?[^/]+)", path)
        if folders[0] in tagged:
            continue
        pkg, version = split(key)
        entry: dict[str, Any] = {
            "version": version if pkg == folders[-1] else f"npm:{pkg}@{version}",
            "resolved": tarball_url(pkg, version)}
        if hashes[key]:
            entry["integrity"] = hashes[key]
        level: dict[str, Any] | None = root
        for folder in folders[:-1]:  # the entries it nests in (absent if one was skipped)
            parent = level.get(folder) if level is not None else None
            level = parent.setdefault("dependencies", {}) if parent else None
        if level is not None:
            level[folders[-1]] = entry
    return {"lockfileVersion": 1, "requires": True, "dependencies": root} if root else None


def _is_tag(spec: str) -> bool:
    """Whether a declared version is a dist-tag (``latest``, ``next``) rather than a version
    or range (``3.23.8``, ``^4``, ``x``, ``v1.2``, ``*``)."""
    return bool(re.fullmatch(r"[A-Za-z][\w.-]*", spec)) and \
        not re.match(r"[vV]?\d|[xX](?:$|\.)", spec)


def _npm_lock(wanted: dict[str, str], language: str, name: str,
              lockfile: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """npm's resolution of ``wanted`` (lock-only: nothing installed, no script run), starting
    from ``lockfile`` when given: the ``packages`` of its ``package-lock.json``.

    With a ``lockfile``, npm runs twice: the first run reads the locked versions' manifests
    into a current lock, the second checks that lock's tree, resolving what is missing (npm
    checks an old lock's tree before it has read the manifests, so a dependency absent from
    it would stay absent). A locked version whose manifest npm cannot read (it only warns)
    is dropped before the second run and so resolved again."""
    npm = shutil.which("npm")
    if npm is None:
        raise DependencyError("resolving npm dependencies needs npm (it comes with Node.js)",
                              language=language, name=name)
    with tempfile.TemporaryDirectory(prefix="fnb-npm-") as tmp:
        # no name: npm takes the folder's (random), so no declared package can clash with it
        manifest = {"private": True, "dependencies": wanted}
        Path(tmp, "package.json").write_text(json.dumps(manifest))
        written = Path(tmp, "package-lock.json")
        if lockfile:
            written.write_text(json.dumps(lockfile))
            unread = set(re.findall(r"Could not fetch metadata for (\S+)",
                                    _run_npm(npm, tmp, wanted, language, name, "warn")))
            current = json.loads(written.read_text())
            packages = current.get("packages", {})
            for path in [p for p, e in packages.items() if p and (
                    f"{p.rsplit('node_modules/', 1)[-1]}@{e.get('version')}" in unread or
                    f"{e.get('name')}@{e.get('version')}" in unread)]:
                del packages[path]
            written.write_text(json.dumps(current))
        _run_npm(npm, tmp, wanted, language, name, "error")
        lock = json.loads(written.read_text())
    return lock.get("packages", {})


def _run_npm(npm: str, cwd: str, wanted: dict[str, str], language: str, name: str,
             loglevel: str) -> str:
    """One ``npm install --package-lock-only`` in ``cwd``; its standard error."""
    cmd = [npm, "install", "--package-lock-only", "--ignore-scripts", "--no-audit",
           "--no-fund", "--no-update-notifier", "--lockfile-version=3", f"--loglevel={loglevel}",
           "--omit-lockfile-registry-resolved=false", *NPM_RETRIES]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,  # noqa: S603
                              timeout=NPM_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DependencyError(f"npm did not resolve {', '.join(wanted)} within "
                              f"{NPM_TIMEOUT:g} s (registry {registry()})",
                              language=language, name=name) from None
    if proc.returncode != 0:
        raise DependencyError(_npm_error(proc.stderr + proc.stdout, wanted),
                              language=language, name=name)
    return proc.stderr


def _npm_error(output: str, wanted: dict[str, str]) -> str:
    """npm's failure as one message that names the package."""
    lines = [re.sub(r"^npm (?:error|ERR!)\s?", "", line) for line in output.splitlines()
             if line.startswith(("npm error", "npm ERR!"))]
    lines = [line for line in lines if line.strip() and not line.startswith(
        ("A complete log", "Log files were not written"))]
    text = "\n".join(lines[:12]) or output.strip()[-2000:]
    m = re.search(r"FetchError: request to (\S+) failed, reason: (.*)", text)
    if m:
        return f"{', '.join(wanted)}: the npm registry did not answer ({m.group(1)}: " \
               f"{m.group(2).strip()})"
    m = re.search(r"'((?:@[^/'\s]+/)?[^@'\s]+)@([^'\s]*)' (?:is not in this registry|could "
                  r"not be found)", text)
    if m:
        return f"{m.group(1)}: no such package in the npm registry ({registry()})"
    m = re.search(r"No matching version found for ((?:@[^/\s]+/)?[^@\s]+)@(\S+?)\.?$", text, re.M)
    if m:
        return f"{m.group(1)}: no version matches {m.group(2)} in the npm registry " \
               f"({registry()})"
    return f"npm could not resolve {', '.join(f'{n}@{s}' for n, s in wanted.items())} " \
           f"(registry {registry()}):\n{text}"


def _fetch(pkg: str, version: str, entry: dict[str, Any], language: str, name: str
           ) -> Fetched | None:
    """The tarball of one lock entry, checked against its ``integrity``; refused when it
    does not come from a registry or is a native addon (None for an optional one)."""
    integrity = entry.get("integrity", "")
    url = entry.get("resolved") or tarball_url(pkg, version)
    if urlparse(url).scheme not in ("https", "http") or not integrity:
        raise DependencyError(f"{pkg}@{version}: not a registry package (resolved to "
                              f"{url or 'nothing'}); only registry packages can be pinned",
                              language=language, name=name)
    data = get(url, f"{pkg}@{version}")
    checked = check_integrity(data, integrity)
    if checked is None:
        raise DependencyError(f"{pkg}@{version}: the tarball from {url} does not match the "
                              f"registry's integrity {integrity[:40]}...", language=language,
                              name=name)
    reason = native_addon(data)
    if reason and entry.get("optional"):
        return None
    if reason:
        raise DependencyError(
            f"{pkg}@{version} is a native addon ({reason}): it needs its install script to "
            "compile machine code, and functions run in V8 without Node, which cannot load it; "
            "use a pure JavaScript package", language=language, name=name)
    file = PurePosixPath(urlparse(url).path).name
    if not re.fullmatch(r"[\w.+-]+\.tgz", file):
        file = f"{pkg.replace('@', '').replace('/', '-')}-{version}.tgz"
    return Fetched(Package(pkg, version, file, sha256(data), checked), data)


def tarball_url(pkg: str, version: str) -> str:
    """Where the registry serves ``pkg@version``'s tarball (npm's own convention, used when a
    lock leaves the address out)."""
    base = PurePosixPath(pkg).name
    return f"{registry().rstrip('/')}/{pkg}/-/{base}-{version}.tgz"


def check_integrity(data: bytes, integrity: str) -> str | None:
    """The strongest SRI hash of ``integrity`` (``sha512-<base64>`` ...) if ``data`` has it,
    else None (also when ``integrity`` names no hash known here)."""
    order = {"sha1": 0, "sha256": 1, "sha384": 2, "sha512": 3}
    best = None
    for token in integrity.split():
        alg, _, digest = token.partition("-")
        if alg in order and (best is None or order[alg] > order[best[0]]):
            best = (alg, digest.split("?")[0], token)
    if best is None:
        return None
    actual = base64.b64encode(hashlib.new(best[0], data).digest()).decode()
    return best[2] if actual == best[1] else None


def _members(data: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DependencyError(f"not a readable npm tarball: {exc}") from None


def _strip(member: str) -> str:
    """A tarball member's path inside its package (npm drops the first folder, ``package/``)."""
    parts = PurePosixPath(member).parts
    return "/".join(parts[1:])


def native_addon(data: bytes) -> str:
    """Why the tarball ``data`` is a native addon ("" when it is not)."""
    with _members(data) as tar:
        manifest: dict[str, Any] = {}
        for member in tar:
            inner = _strip(member.name)
            if inner == "binding.gyp":
                return "it has a binding.gyp"
            if inner == "package.json" and member.isfile() and not manifest:
                handle = tar.extractfile(member)
                try:
                    manifest = json.loads(handle.read(1 << 22)) if handle else {}
                except ValueError:
                    manifest = {}
    if not isinstance(manifest, dict):
        return ""
    if manifest.get("gypfile"):
        return '"gypfile": true in its package.json'
    scripts = manifest.get("scripts") or {}
    for hook in ("preinstall", "install", "postinstall"):
        text = scripts.get(hook) if isinstance(scripts, dict) else None
        if isinstance(text, str) and _NATIVE_TOOLS.search(text):
            return f"its {hook} script runs {_NATIVE_TOOLS.search(text).group(1)}"
    deps = manifest.get("dependencies") or {}
    loaders = [d for d in _NATIVE_LOADERS if isinstance(deps, dict) and d in deps]
    return f"it loads compiled code through {loaders[0]}" if loaders else ""


# -- installation ----------------------------------------------------------------------------

def install(resolved: Resolved, workdir: Path) -> list[str]:
    """Extract the locked packages into ``workdir/node_modules`` as npm lays them out; returns
    the install paths. Only regular files and folders are written (as npm does), every path
    checked to stay inside its package's folder."""
    try:
        layout = json.loads(resolved.lock.extra or "{}")
    except ValueError:
        raise DependencyError("the npm lock's layout is not JSON") from None
    files = {f"{p.name}@{p.version}": f for p, f in zip(resolved.lock.packages, resolved.files,
                                                        strict=True)}
    budget = [MAX_UNPACKED]
    for path in sorted(layout):  # parents before what nests inside them
        key = layout[path]
        if not isinstance(path, str) or not _LAYOUT_PATH.fullmatch(path) or \
                any(part in ("", ".", "..") for part in path.split("/")):
            raise DependencyError(f"the npm lock's layout has an invalid path {path!r}")
        if key not in files:
            raise DependencyError(f"the npm lock's layout names {key}, which it does not pin")
        _extract(files[key].read_bytes(), workdir / path, key, budget)
    return sorted(layout)


def tree(resolved: Resolved) -> Path:
    """The folder holding ``node_modules`` with the lock's packages unpacked (:func:`install`),
    made once per lock on this machine (``<cache>/npm/<lock digest>``) and reused by every
    build with that lock; a build sees it read-only."""
    digest = resolved.lock.digest()

    def fill(folder: Path) -> None:
        install(resolved, folder)
        (folder / ".complete").write_text(digest)  # names the lock it was made for

    return made_once(cache_dir() / "npm" / digest[:32], fill)


def _extract(data: bytes, target: Path, key: str, budget: list[int]) -> None:
    root = os.path.realpath(target)
    made: set[str] = set()
    with _members(data) as tar:
        for member in tar:
            inner = _strip(member.name)
            if not inner or not (member.isfile() or member.isdir()):
                continue  # links and devices are skipped, as npm skips them
            parts = inner.split("/")
            if inner.startswith("/") or any(p in ("..", ".") for p in parts):
                raise DependencyError(f"{key}: its tarball has an unsafe path {member.name!r}")
            dest = os.path.join(root, *parts)
            if member.isdir():
                os.makedirs(dest, exist_ok=True)
                continue
            budget[0] -= member.size
            if budget[0] < 0:
                raise DependencyError(f"{key}: the packages unpack to more than "
                                      f"{MAX_UNPACKED >> 20} MiB")
            folder = os.path.dirname(dest)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            handle = tar.extractfile(member)
            if handle is None:
                continue
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                         0o755 if member.mode & 0o111 else 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(handle.read())


def resolver() -> NpmResolver:
    return NpmResolver()


__all__ = ["BUILTINS", "HEADER", "NpmResolver", "check_integrity", "declare", "header_entries",
           "install", "native_addon", "package_of", "previous_lockfile", "registry", "resolver",
           "split", "tree"]
