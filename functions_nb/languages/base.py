"""What every language provides: toolchain discovery, signature parsing, compile, error mapping."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..config import cache_dir
from ..errors import BadArguments, CompileError, DependencyError, ToolchainMissing
from ..models import Artifact, Signature
from ..runtimes.base import Console, Guest, HostImport, WasmGlue  # noqa: F401 - the glue contract

if TYPE_CHECKING:  # the build machinery loads with the first build, not with the registry
    import subprocess

    from ..dependencies import Resolved
    from ..runtimes.host import sandbox

#: Bump when generated glue or the build sandbox changes, so cached artifacts are rebuilt
#: (3: builds run sandboxed; an artifact built before could hold what a build may not read;
#: 4: Rust overflow checks and added serde derives, Zig hash maps as JSON objects).
GLUE_VERSION = "4"


class Toolchain(NamedTuple):
    """Result of a toolchain check (what ``func doctor`` prints)."""

    language: str
    usable: bool
    version: str = ""
    path: str = ""
    install: str = ""
    detail: str = ""


class Language(ABC):
    """A language: compiles a cell into an :class:`Artifact` for one runtime kind."""

    name: str
    runtime: str
    #: Extension of the cell's file in a build (``cell.ts``).
    extension: str
    #: File extensions that mean this language (``func deploy add.go``), default
    #: ``(extension,)``; the longest match wins (``.as.ts`` AssemblyScript, ``.ts`` TypeScript).
    extensions: tuple[str, ...] = ()
    install_hint: str = ""
    #: Deploy flags this language understands, each with the values it accepts
    #: (``{"toolchain": ("zig-0.17", "zig-0.16")}``); a deploy with any other flag or value
    #: is refused naming them (:meth:`check_flags`). ``None``: the language declares nothing
    #: and its flags are not checked here, except ``toolchain``, which it refuses.
    accepted_flags: dict[str, tuple[Any, ...]] | None = None
    #: The registry a function's declared dependencies come from (``pypi``, ``npm``,
    #: ``crates``, ``go``; see :mod:`functions_nb.dependencies`), "" when it has none.
    ecosystem: str = ""

    def __init__(self) -> None:
        self._toolchain: Toolchain | None = None

    # toolchain -------------------------------------------------------------
    def toolchain(self, refresh: bool = False) -> Toolchain:
        """Check the toolchain once per process (cached)."""
        if self._toolchain is None or refresh:
            try:
                self._toolchain = self._discover()
            except Exception as exc:  # noqa: BLE001 - a broken toolchain is "not usable"
                self._toolchain = Toolchain(self.name, False, install=self.install_hint,
                                            detail=str(exc))
        return self._toolchain

    def toolchain_for(self, flags: Mapping[str, Any]) -> Toolchain:
        """The toolchain a build with ``flags`` uses (its version goes into the code hash and
        the artifact's metadata); default: the discovered one."""
        return self.toolchain()

    def toolchain_choices(self) -> list[dict[str, Any]]:
        """Toolchains a deploy flag can choose besides the default, for ``func doctor``:
        ``flag``, ``value``, ``version``, ``installed``, ``path``, ``detail`` (none by default)."""
        return []

    def check_flags(self, flags: Mapping[str, Any]) -> None:
        """Refuse a flag (or a flag's value) that :attr:`accepted_flags` does not list, with
        :class:`BadArguments` naming what is accepted."""
        accepted = self.accepted_flags
        if accepted is None:
            if "toolchain" in flags:  # only a language that declares choices has any
                raise BadArguments(f"{self.name} has one toolchain: it does not accept the deploy "
                                   f"flag 'toolchain' (got {_shown(flags['toolchain'])})")
            return
        for flag, value in flags.items():
            if flag not in accepted:
                known = "; ".join(f"{f} ({', '.join(map(_shown, v))})" for f, v in accepted.items())
                raise BadArguments(f"{self.name} does not accept the deploy flag {flag!r}; "
                                   + (f"it accepts: {known}" if known else "it accepts none"))
            if not any(type(value) is type(v) and value == v for v in accepted[flag]):
                raise BadArguments(f"{self.name} flag {flag}={_shown(value)} is not accepted; "
                                   f"{flag} is one of: {', '.join(map(_shown, accepted[flag]))}")

    def require_toolchain(self, flags: Mapping[str, Any] | None = None) -> Toolchain:
        tc = self.toolchain_for(flags) if flags else self.toolchain()
        if not tc.usable:
            raise ToolchainMissing(
                f"the {self.name} toolchain is not usable ({tc.detail or 'not found'}); "
                f"install it with: {tc.install or self.install_hint}")
        return tc

    @abstractmethod
    def _discover(self) -> Toolchain: ...

    # compile ---------------------------------------------------------------
    @abstractmethod
    def parse_signature(self, source: str, name: str) -> Signature:
        """Find the entry function ``name`` in the cell and describe its signature."""

    @abstractmethod
    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        """Compile in ``workdir``; return (code, warnings) or raise CompileError."""

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """Hash of everything that determines the compiled code (source, flags, toolchain).
        Flags are checked by :meth:`compile` (an override may hash extra keys with them)."""
        tc = self.toolchain_for(flags)
        blob = json.dumps([self.name, name, source, flags, line_offset, tc.version, GLUE_VERSION],
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def declared_dependencies(self, source: str, flags: dict[str, Any]) -> tuple[str, ...]:
        """The dependencies the cell declares in the language's own convention, each as text
        (``"python-dateutil>=2.8"``, ``"zod"``, ``"regex = \"1\""``); none by default."""
        return ()

    def compile(self, source: str, name: str, flags: dict[str, Any] | None = None,
                line_offset: int = 0, force: bool = False, deps: Resolved | None = None
                ) -> Artifact:
        """Compile a cell. Compiled code is cached locally by :meth:`code_hash` and the lock
        of ``deps`` (``force`` recompiles). ``deps``: the declared dependencies, resolved
        (:func:`functions_nb.dependencies.prepare`); the build sees only their files."""
        from ..dependencies import combine

        flags = dict(flags or {})
        self.check_flags(flags)
        tc = self.require_toolchain(flags)
        signature = self.parse_signature(source, name)
        key = combine(self.code_hash(source, name, flags, line_offset), deps)
        cached = None if force else _artifact_cache_get(key)
        started = time.perf_counter()
        if cached is not None:
            code, warnings = cached
        else:
            import shutil
            import subprocess

            workdir = cache_dir() / "build" / self.name / f"{key[:16]}-{os.urandom(4).hex()}"
            workdir.mkdir(parents=True)
            try:
                # Blank lines first, so compiler line numbers are the notebook cell's own.
                cell = "\n" * line_offset + source
                code, warnings = (self._build_with_deps(cell, signature, workdir, flags, deps)
                                  if deps is not None else
                                  self._build(cell, signature, workdir, flags))
            except subprocess.TimeoutExpired as exc:
                raise self.error(f"the {self.name} compiler did not finish within "
                                 f"{exc.timeout:g} s", name) from None
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            _artifact_cache_put(key, code, warnings, replace=force)
        return Artifact(
            language=self.name, runtime=self.runtime, source=source, code=code,
            signature=signature, toolchain={self.name: tc.version}, flags=flags,
            compile_ms=(time.perf_counter() - started) * 1000, warnings=warnings,
            dependencies=deps.lock.to_dict() if deps is not None else None)

    def _build_with_deps(self, source: str, signature: Signature, workdir: Path,
                         flags: dict[str, Any], deps: Resolved) -> tuple[bytes, str]:
        """:meth:`_build` with the files of resolved dependencies (a language with an
        :attr:`ecosystem` overrides it)."""
        raise DependencyError(f"{self.name} functions cannot have dependencies",
                              language=self.name, name=signature.name)

    def wasm_glue(self) -> WasmGlue:
        """Host imports and trap explanation this language's WASM modules need (none)."""
        return WasmGlue()

    def build_sandbox(self) -> BuildSandbox:
        """What this language's compiler may see besides the cell's build directory."""
        return BuildSandbox()

    # helpers for subclasses ----------------------------------------------------
    def error(self, message: str, name: str, line: int | None = None,
              column: int | None = None) -> CompileError:
        return CompileError(message, language=self.name, name=name, line=line, column=column)

    def outside_read_error(self, path: str, name: str, line: int | None = None,
                           column: int | None = None) -> CompileError:
        """The build tried to read ``path``, outside its directory."""
        where = f"cell:{line}: " if line else ""
        return self.error(f"{where}error: the build cannot read {path}: {OUTSIDE}", name, line,
                          column)

    def refuse_packages(self, imports: list[tuple[str, int]], name: str, offer: str) -> None:
        """Refuse the first of ``imports`` (package, cell line) when the language has no
        registry here: :class:`DependencyError` saying what its functions can use (``offer``)."""
        if imports:
            package, line = imports[0]
            raise DependencyError(
                f"cell:{line}: error: {package!r} is not available: {offer}",
                language=self.name, name=name, line=line)

    def env_read_error(self, var: str, name: str, line: int | None = None,
                       column: int | None = None) -> CompileError:
        """The build tried to read the environment variable ``var``."""
        where = f"cell:{line}: " if line else ""
        return self.error(f"{where}error: the build cannot read the environment variable {var}: "
                          f"{CLEAN_ENV}", name, line, column)


def _shown(value: Any) -> str:
    """A flag value as a deploy would write it (text bare, other values as Python)."""
    return value if isinstance(value, str) else repr(value)


# -- the sandboxed build runner -------------------------------------------------------------

#: The most output a build may print per stream (the rest is dropped, and the text says so).
MAX_OUTPUT = 1 << 20
#: A build's wall-clock limit unless the language gives its own.
BUILD_TIMEOUT = 300.0
OUTSIDE = "builds only see the cell's directory and the toolchain"
CLEAN_ENV = "builds run with a clean environment"


class BuildSandbox(NamedTuple):
    """What a language's compiler may use besides the cell's build directory (each language
    declares its own in :meth:`Language.build_sandbox`; :func:`run_tool` adds the build
    directory, a clean environment, no network and the limits).

    ``tools``: executables, bound with the shared libraries they load; ``read``: install
    directories, sysroots, registries (read-only, resolved); ``write``: caches the compiler
    may write (Go's build cache, Zig's cache); ``env``: the compiler's own variables;
    ``proc``: as :class:`SandboxProfile` (a path: only ``/proc/self/exe`` -> it);
    ``processes``: False adds a seccomp filter refusing new processes (a compiler that
    needs none); ``memory``: the rlimit that caps ``memory_mb`` (``"data"`` for node, whose
    WebAssembly reserves far more address space than it uses).
    """

    tools: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    env: Mapping[str, str] = MappingProxyType({})
    proc: bool | str = False
    memory_mb: int = 4096
    cpu_s: int = 600
    fsize_mb: int = 512
    nproc: int = 256
    processes: bool = True
    memory: str = "as"

    def profile(self, name: str, cwd: str | None, env: Mapping[str, str] | None = None
                ) -> sandbox.SandboxProfile:
        """The sandbox profile of one build in ``cwd`` (writable; also HOME and TMPDIR)."""
        from ..runtimes.host import sandbox

        binds, links = sandbox.library_binds(*self.tools)
        writable = [(os.path.realpath(p), p) for p in (*([cwd] if cwd else []), *self.write)
                    if os.path.isdir(p)]
        tmp = "/tmp"
        if cwd:  # not the directory itself: Go ignores a go.mod in the temporary root
            tmp = os.path.join(cwd, ".tmp")
            os.makedirs(tmp, exist_ok=True)
        clean = {"PATH": "/usr/bin:/bin", "HOME": cwd or "/nonexistent", "TMPDIR": tmp,
                 "LC_ALL": "C.UTF-8", **self.env, **(env or {})}
        return sandbox.SandboxProfile(
            f"build-{name}", binds=[*binds, *sandbox.readable(*self.read)], writable=writable,
            symlinks=list(links), tmpfs={} if cwd else {"/tmp": 64}, env=clean,
            rlimits=sandbox.rlimits(cpu_s=self.cpu_s, memory_mb=self.memory_mb,
                                    fsize_mb=self.fsize_mb, nproc=self.nproc,
                                    memory=self.memory),
            no_processes=not self.processes, chdir=cwd or "/", proc=self.proc,
            devices=("null",))


def build_layers() -> dict[str, Any]:
    """Which sandbox layers builds get on this machine (probed once per process)."""
    from ..runtimes.host import sandbox

    probe = sandbox.SandboxProfile("build", root_ro=True, no_processes=False, proc=False,
                                   devices=("null",))
    return sandbox.probe(probe, ["/bin/sh", "-c", "exit 0"])


def build_isolation() -> str:
    """One line for ``func doctor``: what confines compilers here."""
    layers = build_layers()
    if layers.get("bwrap"):
        return ("bubblewrap (no network; only the toolchain, its caches and the cell's directory"
                + ("; runs as nobody" if layers.get("userns") else "") + "); rlimits (cpu, "
                "memory, file size, processes); clean environment; time limit; output cap")
    return (f"NO build sandbox ({layers.get('detail') or 'bubblewrap unavailable'}): compilers "
            "can read the file system and use the network; rlimits, a clean environment, a "
            "time limit and an output cap only")


def run_tool(cmd: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
             timeout: float = BUILD_TIMEOUT, sandbox_: BuildSandbox | None = None, *,
             name: str = "tool", max_output: int = MAX_OUTPUT) -> subprocess.CompletedProcess[str]:
    """Run a toolchain command sandboxed (every build and toolchain check goes through here):
    only ``sandbox_``'s files and ``cwd`` visible, a clean environment plus ``env``, no
    network, rlimits, ``timeout`` (then :class:`subprocess.TimeoutExpired`), at most
    ``max_output`` bytes of each stream kept. Without bubblewrap here, the limits and the
    clean environment still apply (``func doctor`` says so)."""
    import subprocess

    from ..runtimes.host import sandbox

    box = sandbox_ or BuildSandbox(tools=(cmd[0],))
    profile = box.profile(name, str(cwd) if cwd else None, env)
    run = sandbox.launch(profile, cmd, layers=build_layers())
    try:
        proc = subprocess.Popen(run.argv, cwd=cwd, env=run.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=run.fds,
                                start_new_session=True)
    finally:
        run.close()
    streams = [_Capped(proc.stdout, max_output), _Capped(proc.stderr, max_output)]
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise subprocess.TimeoutExpired(cmd, timeout) from None
    finally:
        for stream in streams:
            stream.join()
    out, err = (s.text() for s in streams)
    stopped = _limit_signal(proc.returncode, box)
    if stopped:
        err += f"\n[the build was stopped by its {stopped}]"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _limit_signal(returncode: int, box: BuildSandbox) -> str | None:
    """Which limit a build's exit status means (killed by a signal, directly or as
    bubblewrap reports it: 128 + signal), or None."""
    import signal

    sig = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    limits = {int(signal.SIGXCPU): f"CPU time limit ({box.cpu_s} s)",
              int(signal.SIGKILL): f"CPU time limit ({box.cpu_s} s) or was killed",
              int(signal.SIGXFSZ): f"file size limit ({box.fsize_mb} MB)"}
    return limits.get(sig)


class _Capped:
    """Reads a pipe to its end on a thread, keeping the first ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.data, self.dropped, self.limit = bytearray(), 0, limit
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True,
                                       name="build-output")
        self.thread.start()

    def _read(self, stream: Any) -> None:
        with stream:
            for chunk in iter(lambda: stream.read1(65536), b""):
                room = self.limit - len(self.data)
                self.data += chunk[:max(room, 0)]
                self.dropped += max(len(chunk) - max(room, 0), 0)

    def join(self) -> None:
        self.thread.join(10)

    def text(self) -> str:
        text = self.data.decode(errors="replace")
        if self.dropped:
            text += f"\n[output cut: {self.dropped} more bytes past {self.limit >> 10} KiB]"
        return text


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import subprocess

    from ..runtimes.host.process import kill_group

    kill_group(proc)  # never signals a reaped pid (it may be another process's by now)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def first_version_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _artifact_path(key: str) -> Path:
    return cache_dir() / "artifacts" / key[:2] / key


def _artifact_cache_get(key: str) -> tuple[bytes, str] | None:
    path = _artifact_path(key)
    try:
        code = (path / "code").read_bytes()
        warnings = (path / "warnings.txt").read_text()
    except OSError:
        return None
    return code, warnings


def _artifact_cache_put(key: str, code: bytes, warnings: str, replace: bool = False) -> None:
    import shutil

    path = _artifact_path(key)
    if replace:
        shutil.rmtree(path, ignore_errors=True)
    tmp = path.with_name(f"{key}.tmp-{os.urandom(16).hex()}")
    tmp.mkdir(parents=True)
    (tmp / "code").write_bytes(code)
    (tmp / "warnings.txt").write_text(warnings)
    try:
        os.rename(tmp, path)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)


# -- signature parsing shared by C-like languages -------------------------------

def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside (), [], {}, <> (the ``>`` of an arrow, ``->`` or ``=>``, closes
    nothing)."""
    parts, depth, cur = [], 0, []
    for k, ch in enumerate(text):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}" or (ch == ">" and not (k and text[k - 1] in "-=")):
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def find_function(source: str, pattern: str) -> tuple[re.Match[str], str, str] | None:
    """Find ``pattern`` (a regex ending just before the parameter list's ``(``).

    Returns (match, params_text, rest_after_params) where rest runs to the body's ``{``.
    """
    for m in re.finditer(pattern, source):
        i = m.end()
        if i >= len(source) or source[i] != "(":
            continue
        depth = 0
        for j in range(i, len(source)):
            if source[j] == "(":
                depth += 1
            elif source[j] == ")":
                depth -= 1
                if depth == 0:
                    params = source[i + 1:j]
                    brace = source.find("{", j)
                    rest = source[j + 1: brace if brace != -1 else len(source)]
                    return m, params, rest
    return None


def line_of(source: str, index: int) -> int:
    return source.count("\n", 0, index) + 1


def literal_line(source: str, text: str) -> int | None:
    """The line of the first string literal holding ``text`` (``"…text…"``), or None."""
    m = re.search(r"[\"'`][^\"'`\n]*" + re.escape(text), source)
    return line_of(source, m.start()) if m else None


def outside(path: str, workdir: Path) -> bool:
    """Whether ``path`` (relative ones from ``workdir``) is outside ``workdir``."""
    full = os.path.normpath(os.path.join(workdir, path))
    root = os.path.normpath(workdir)
    return full != root and not full.startswith(root + os.sep)
