"""Python functions in Pyodide: one shared, sandboxed node host per kernel, one Python
interpreter per function inside it.

The host (``hosts/pyodide_host.mjs``) is a node process started through the host layer
(``runtimes/host/``: spawner, framed channel, watchdog, sandbox profile) when a function is
first loaded (in the background) or called. Each function gets its own Pyodide instance,
restored from a memory snapshot (kept in the cache directory; the first host makes it) that
holds the interpreter, common stdlib modules and the guest program (``hosts/pyodide_guest.py``).
So functions share no Python state: one cannot read or change another's globals, code,
modules, builtins or files. An instance that crashes fails its own call only.

Calling convention: the artifact is the cell's source (JSON: entry name + source, and
``files``: its declared dependencies' files, see ``functions_nb/dependencies/pypi.py``). At its
first call the function's instance is created (``LOAD_INSTANCE``; not charged to the call; the
host writes the dependency files into that instance's own file system at :data:`SITE`, so
only this function can import them) and the cell's top level runs in it (``LOAD``; charged).
Arguments are checked here with :mod:`functions_nb.values` and sent as JSON (bytes as
base64); the result comes back as JSON, checked in the guest against the return annotation.
stdout -> console ``log``, stderr -> ``error``, ``logging`` -> its level.

Limits: time -- at the deadline or on abort the watchdog sends CANCEL and the host's main
thread interrupts Python (KeyboardInterrupt; ``time.sleep`` sleeps in slices); code that does
not stop within ``GRACE`` is stopped by killing the host (functions reload lazily). Memory --
an instance's heap may grow by ``memory_mb`` over a fresh interpreter, counting what it keeps
across calls; files written during a call count against the same limit and are removed when
the call ends. All instances together are capped at ``FUNCTIONS_NB_PYODIDE_HEAP_MB``; at most
``FUNCTIONS_NB_PYODIDE_INSTANCES`` live at once (the least recently used is dropped and
reloaded on its next call).

Isolation (:meth:`PyodideRuntime.isolation`): the host layer's sandbox profile (bubblewrap: no
network, own namespaces, only node, its libraries and the Pyodide files; seccomp; a clean
environment), node's permission model (reads of those files only, no writes, no child
processes) and, inside, no JavaScript: once an interpreter is set up the host refuses every
JavaScript operation its WASM module asks for (enforced in the host's JavaScript, so Python
cannot undo it; :data:`BLOCKED_MODULES` is only refused early, with a clear message), no
processes, and no JavaScript code generation from strings.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from .. import values
from ..config import CONSOLE_MAX_BYTES, cache_dir, node_modules
from ..errors import Aborted, FunctionTimeout, InvocationError, LimitExceeded, ToolchainMissing
from ..models import Signature
from ..process_wide import ProcessWide
from .base import CallContext, Isolation, ModuleCache
from .host import FIRST_OWN, HostDied, HostProcess, Op, Reply, SharedHostRuntime, Status, sandbox
from .host.protocol import U32

HOSTS = Path(__file__).resolve().parent.parent / "hosts"
HOST_SCRIPT = HOSTS / "pyodide_host.mjs"
GUEST = HOSTS / "pyodide_guest.py"
#: After a CANCEL, wait this long for the call to stop before killing the host.
GRACE = 0.5
#: Host start-up (spawn -> ready, the first instance included; making the snapshot ~5 s).
START_TIMEOUT = 120.0
HEAP_MB = int(os.environ.get("FUNCTIONS_NB_PYODIDE_HEAP_MB", "4096"))
INSTANCES = int(os.environ.get("FUNCTIONS_NB_PYODIDE_INSTANCES", "32"))
#: Where a function's dependency files (``"files"`` in its artifact: the contents of its
#: pure-Python wheels) are in its interpreter's file system; on its ``sys.path`` after the
#: standard library's folders.
SITE = "/function/site-packages"
#: Modules functions may not import: JavaScript/host access, raw memory, package loading
#: (a clear message; what holds is the host's refusal of JavaScript after set-up).
BLOCKED_MODULES = ("js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "micropip",
                   "ctypes", "_ctypes")


class PyOp(IntEnum):
    """Pyodide's own operations."""

    LOAD_INSTANCE = FIRST_OWN  # a fresh interpreter for a function: {"fid", "limit"}
    ANALYSE = FIRST_OWN + 1    # languages.python.analyse in Pyodide's own Python
    SNAPSHOT = FIRST_OWN + 2   # the memory snapshot the host made at start


class PyStatus(IntEnum):
    """Pyodide's own statuses."""

    BAD_RESULT = FIRST_OWN      # the value does not fit the return annotation
    CRASHED = FIRST_OWN + 1     # the function's interpreter trapped and was dropped


class GuestReply(NamedTuple):
    """A decoded reply of the guest (``hosts/pyodide_guest.py``) and the host around it."""

    status: int
    value: Any = None
    #: error text and its cell line
    text: str = ""
    line: int | None = None
    #: ``[[level code, text], ...]`` and the writes dropped over the cap
    console: list = []
    dropped: int = 0
    #: the instance's heap footprint after the request; the heap and the open files it held
    #: before it (over a fresh interpreter); whether a file write went over the memory limit
    memory: int = 0
    held: int = 0
    open_files: int = 0
    files_over: bool = False


def decode(reply: Reply) -> GuestReply:
    if reply.status == Status.DIED:
        return GuestReply(reply.status, text=reply.body.decode(errors="replace"))
    try:
        d = json.loads(reply.body) if reply.body else {}
    except ValueError:
        d = {"t": reply.body[:500].decode(errors="replace")}
    return GuestReply(reply.status, d.get("v"), d.get("t", ""), d.get("l"), d.get("c", []),
                      d.get("d", 0), d.get("m", 0), d.get("h", 0), d.get("o", 0), bool(d.get("f")))


# -- discovery -------------------------------------------------------------------------------

def node_binary() -> str | None:
    """The node executable (``$FUNCTIONS_NB_NODE``, ``node`` on PATH, or /usr/bin/node)."""
    env = os.environ.get("FUNCTIONS_NB_NODE")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists() else None)


def pyodide_dir() -> Path:
    return node_modules() / "pyodide"


@lru_cache(maxsize=4)
def _pyodide_info(path: str) -> tuple[str, str]:
    """(pyodide version, python version) of the npm package at ``path``."""
    version = json.loads((Path(path) / "package.json").read_text())["version"]
    try:
        python = json.loads((Path(path) / "pyodide-lock.json").read_text())["info"]["python"]
    except (OSError, ValueError, KeyError):
        python = ""
    return version, python


def pyodide_versions() -> tuple[str, str]:
    """(pyodide version, python version); raises ToolchainMissing when not installed."""
    path = pyodide_dir()
    if not (path / "pyodide.mjs").exists():
        raise ToolchainMissing(f"the pyodide npm package is not installed (looked in {path})")
    return _pyodide_info(str(path))


@lru_cache(maxsize=4)
def _node_version(node: str) -> tuple[int, int, int]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                         check=False, env={}).stdout.strip()
    m = re.match(r"v(\d+)\.(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)


def _permission_flag(node: str) -> str | None:
    version = _node_version(node)
    if version >= (22, 13, 0):
        return "--permission"
    if version >= (20, 0, 0):
        return "--experimental-permission"
    return None


def _node() -> str:
    node = node_binary()
    if node is None:
        raise ToolchainMissing("node is needed to run Python functions (Pyodide): "
                               "apt-get install -y nodejs")
    return node


# -- the sandbox: the host layer's profile, and node's permission model ------------------------

def sandbox_profile(readable: list[str]) -> sandbox.SandboxProfile:
    """Only node, its libraries and ``readable`` (read-only), no network, nobody, no new
    processes, a clean environment, no core dumps."""
    binds, links = sandbox.library_binds(_node())
    return sandbox.SandboxProfile("pyodide", binds=[*binds, *sandbox.readable(*readable)],
                                  symlinks=links, rlimits={"core": 0})


def launch_node(node_args: list[str], readable: list[str]) -> sandbox.Launch:
    """``node <node_args>`` inside every layer that holds here: the sandbox profile (where
    bubblewrap works) and node's permission model allowing reads of ``readable`` only."""
    node = _node()
    flags = ["--no-warnings"]
    permission = _permission_flag(node)
    if permission:
        flags += [permission, *(f"--allow-fs-read={p}" for p in readable), "--allow-worker"]
    profile = sandbox_profile(readable)
    use = sandbox.probe(profile, [node, "--version"])["bwrap"]
    return sandbox.launch(profile, [node, *flags, *node_args], sandbox=use)


def describe_layers() -> str:
    """One line for the toolchain check and ``func doctor``."""
    return "sandbox: " + runtime().isolation().summary()


# -- the snapshot --------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _guest_digest() -> str:
    return hashlib.sha256(GUEST.read_bytes()).hexdigest()[:16]


def snapshot_path() -> Path:
    """Where this Pyodide, node, host and guest keep their memory snapshot."""
    version, _ = pyodide_versions()
    key = hashlib.sha256(f"{version}|{_node_version(_node())}|{_guest_digest()}|"
                         f"{HOST_SCRIPT.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "pyodide" / f"snapshot-{version}-{key}.bin"


def _save_snapshot(data: bytes) -> None:
    path = snapshot_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)  # readable by the sandbox's user
    os.replace(tmp, path)
    for old in path.parent.glob("snapshot-*.bin"):  # made for another version or guest
        if old != path:
            old.unlink(missing_ok=True)


# -- the runtime ---------------------------------------------------------------------------------

class PyodideRuntime(SharedHostRuntime):
    """Process-wide: the shared host (started lazily, restarted when it died), one request
    at a time (the host serves one; waiting for it honours the caller's limits)."""

    kind = "pyodide"
    label = "the Python host"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def start_host(self, generation: int) -> HostProcess:
        pyodide_versions()  # ToolchainMissing when the npm package is not installed
        snap = snapshot_path()
        try:
            return self._start(generation, snap if snap.exists() else None)
        except HostDied:
            if not snap.exists():
                raise
            snap.unlink(missing_ok=True)  # unusable: make a new one
            return self._start(generation, None)

    def _start(self, generation: int, snap: Path | None) -> HostProcess:
        pyo = str(pyodide_dir().resolve())
        readable = [pyo, str(HOST_SCRIPT), str(GUEST), *([str(snap)] if snap else [])]
        config = json.dumps({"console_bytes": CONSOLE_MAX_BYTES + 1024,
                             "blocked_modules": BLOCKED_MODULES})
        args = [str(HOST_SCRIPT), "--pyodide", pyo, "--guest", str(GUEST), "--config", config,
                "--heap-mb", str(HEAP_MB), "--instances", str(INSTANCES),
                *(["--snapshot", str(snap)] if snap else [])]
        launch = launch_node(args, readable)
        try:
            host = HostProcess(
                lambda p: [*launch.argv, "--request", str(p.request), "--reply", str(p.reply),
                           "--control", str(p.control)],
                label=self.label, env=launch.env, generation=generation, control_pipe=True,
                grace=GRACE, start_timeout=START_TIMEOUT, extra_fds=launch.fds)
        finally:
            launch.close()
        if host.info.get("snapshot_made"):
            reply = host.request(PyOp.SNAPSHOT, b"", what="the snapshot")
            if reply.status == Status.OK:
                _save_snapshot(reply.body)
        return host

    def isolation(self) -> Isolation:
        node = _node()
        profile = sandbox_profile([str(pyodide_dir().resolve()), str(HOST_SCRIPT), str(GUEST)])
        layers = sandbox.probe(profile, [node, "--version"])
        permission = _permission_flag(node) is not None
        own = ["one Pyodide interpreter per function (own globals, modules, builtins, heap "
               "and files) in a shared node host"]
        if permission:
            own.append("node permission model: reads only node's Pyodide files, no writes, "
                       "no child processes")
        own.append("no JavaScript reachable from Python (the host refuses every JavaScript "
                   "operation after set-up; no code from strings)")
        iso = sandbox.isolation("pyodide", layers, tuple(own),
                                ("time", "memory (heap kept across calls, and files)"))
        if not permission:
            iso = iso._replace(missing=(*iso.missing,
                                                    "node permission model (needs node >= 20)"))
        return iso

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    # requests ------------------------------------------------------------------------------
    def acquire(self, ctx: CallContext, name: str) -> None:
        """Take the request lock, honouring the call's deadline and abort flag."""
        ctx.take(self._lock, name, "the shared Python host")

    def release(self) -> None:
        self._lock.release()

    def unload(self, fid: int, generation: int) -> None:
        """Drop a function's interpreter from the host (no reply)."""
        host = self.current()
        if host is not None and host.generation == generation:
            host.unload(fid)

    def analyse(self, code: str, source: str, name: str) -> dict[str, Any]:
        """Run ``analyse(source, name)`` (defined by ``code``) with Pyodide's own Python."""
        host = self.host()
        with self._lock:
            reply = decode(host.request(PyOp.ANALYSE, json.dumps([code, source, name]).encode(),
                                        what="analysing a cell"))
        if reply.status != Status.OK:
            raise InvocationError(f"analysing the cell in Pyodide failed: {reply.text}")
        return reply.value

    def ping(self) -> dict[str, Any]:
        """Round trip to the host (starting it if needed): how many functions it holds."""
        host = self.host()
        with self._lock:
            return json.loads(host.request(Op.PING, b"", what="ping").body)

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> PyodideFunction:
        fn = PyodideFunction(self, code, signature, memory_mb, name, next(self._ids))
        self.start_background()
        return fn


#: The process-wide runtime (created on first use; the host starts on first load).
runtime: ProcessWide[PyodideRuntime] = ProcessWide(PyodideRuntime)


# -- one function --------------------------------------------------------------------------------

_BYTES = values.converter("bytes")


def _b64(value: Any) -> str:
    return base64.b64encode(_BYTES(value)).decode("ascii")


class PyodideFunction:
    """One function version: its own interpreter in the host, created at the first call."""

    def __init__(self, rt: PyodideRuntime, code: bytes, signature: Signature, memory_mb: int,
                 name: str, fid: int) -> None:
        try:
            art = json.loads(code)
            source, entry = art["source"], art["entry"]
            files = art.get("files") or {}
            if not isinstance(files, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
                raise TypeError("'files' is not a map of paths to base64 text")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvocationError(f"{name}: not a Python function artifact ({exc})") from None
        self.rt = rt
        self.sig = signature
        self.name = name
        self.memory_limit = int(memory_mb) << 20
        self.fid = fid
        self._nparams = len(signature.params)
        self._convs = [_checked(signature, p) for p in signature.params]
        self._bytes_result = signature.result == "bytes"
        b64 = [i for i, p in enumerate(signature.params) if p.kind == "bytes"]
        result = signature.result if signature.result in ("i64", "f64", "bool", "str", "bytes",
                                                          "unit") else "json"
        self._prefix = U32.pack(fid)
        site = SITE if files else None  # its dependencies, in its own interpreter only
        self._new_body = json.dumps({"fid": fid, "limit": self.memory_limit, "site": site,
                                     "files": files or None}).encode()
        self._load_body = self._prefix + json.dumps([entry, source, b64, result, site]).encode()
        self._generation = 0  # host generation this function is loaded into (0: none)

    # the call path ---------------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._nparams:
            self.sig.check_arity(args)  # fewer: the trailing ones have defaults in the cell
        body = ("[" + ",".join(conv(v) for conv, v in zip(self._convs, args, strict=False))
                + "]").encode()
        rt = self.rt
        rt.host(ctx, self.name)  # a start is not the call's time
        rt.acquire(ctx, self.name)
        try:
            host = rt.host(ctx, self.name)  # restarted while we waited for the lock?
            if self._generation != host.generation:
                self._load(host, ctx)
            reply = decode(host.request(Op.CALL, self._prefix, body, ctx=ctx, what=self.name))
            if reply.status == Status.GONE:  # dropped (least recently used, or unloaded)
                self._load(host, ctx)
                reply = decode(host.request(Op.CALL, self._prefix, body, ctx=ctx, what=self.name))
        finally:
            rt.release()
        value = self._outcome(reply, ctx)
        if self._bytes_result and value is not None:
            return base64.b64decode(value)
        return value

    def _load(self, host: HostProcess, ctx: CallContext) -> None:
        """A fresh interpreter for the function (not charged to the call), then the cell's
        top level in it (charged)."""
        ctx.cold = True
        self._generation = 0
        waited = time.monotonic()
        reply = decode(host.request(PyOp.LOAD_INSTANCE, self._new_body, what=self.name,
                                    setup_timeout=START_TIMEOUT))
        ctx.deadline += time.monotonic() - waited
        if reply.status != Status.OK:
            self._outcome(reply, ctx)
        self._outcome(decode(host.request(Op.LOAD, self._load_body, ctx=ctx, what=self.name)),
                      ctx, loading=True)
        self._generation = host.generation

    def _outcome(self, reply: GuestReply, ctx: CallContext, loading: bool = False) -> Any:
        """Console and memory into ``ctx``; the value, or the error the reply stands for."""
        for code, text in reply.console:
            if code:
                ctx.log(-code, text)
            else:
                ctx.log(0, text[:-1] if text.endswith("\n") else text)
        if reply.dropped:
            ctx.dropped += reply.dropped
        if reply.memory:
            ctx.memory_bytes = reply.memory
        status, name = reply.status, self.name
        if status == Status.OK:
            return reply.value
        where = f" at cell line {reply.line}" if reply.line else ""
        if status == Status.INTERRUPTED:
            raise _stopped(ctx, name)
        if status == Status.MEMORY or (status == Status.ERROR and reply.files_over):
            what = "by the files it wrote " if reply.files_over else ""
            raise LimitExceeded(f"{name}: memory limit of {self.memory_limit >> 20} MB exceeded "
                                f"{what}({reply.text}{where}){self._holds(reply)}")
        if status == Status.DIED:
            self._generation = 0
            if ctx.timed_out or ctx.aborted:
                ctx.log(3, "the function did not stop when interrupted; the Python host was "
                           "restarted")
                raise _stopped(ctx, name)
            raise InvocationError(f"{name}: {reply.text}; it restarts at the next call")
        if status == PyStatus.CRASHED:
            self._generation = 0
            raise InvocationError(f"{name}: its Python interpreter crashed ({reply.text}); a "
                                  "fresh one is made at the next call")
        if status == Status.HOST_ERROR:
            raise InvocationError(f"{name}: internal error in the Python host: {reply.text}")
        if loading:
            raise InvocationError(f"{name}: the cell failed when loaded: {reply.text}{where}")
        if status == PyStatus.BAD_RESULT:
            raise InvocationError(f"{name} {reply.text}")
        raise InvocationError(f"{name} raised {reply.text}{where}")

    def _holds(self, reply: GuestReply) -> str:
        """What the function keeps across calls, when that is what filled its memory."""
        held = []
        if reply.held >= max(1 << 20, self.memory_limit // 4):
            held.append(f"{reply.held / (1 << 20):.0f} MB")
        if reply.open_files >= 16:
            held.append(f"{reply.open_files} open files")
        return f"; it holds {' and '.join(held)} across calls" if held else ""

    def close(self) -> None:
        """Drop the function's interpreter from the host (a later call loads it again)."""
        generation, self._generation = self._generation, 0
        if generation:
            self.rt.unload(self.fid, generation)


def _checked(sig: Signature, param: Any) -> Callable[[Any], str]:
    """One argument checked with :mod:`functions_nb.values`, as JSON text (text through the
    node host is UTF-16: no surrogate code points)."""
    check, kind = values.argument(sig, param), param.kind
    if kind == "bytes":
        return lambda v: '"' + _b64(check(v)) + '"'
    if kind == "json":  # values' JSON check returns the text
        return check
    if kind == "str":
        return lambda v: json.dumps(values.unicode_argument(check(v), sig, param))
    return lambda v: json.dumps(check(v))


def _stopped(ctx: CallContext, name: str) -> Exception:
    if ctx.aborted:
        return Aborted(f"{name}: execution {ctx.id} aborted")
    ctx.timed_out = True
    return FunctionTimeout(f"{name}: stopped at its {ctx.timeout:g} s time limit")


def raw_baseline(code: bytes, signature: Signature, name: str, args: tuple) -> Callable[[], Any]:
    """The bare host round trip for benchmarks: the CALL frame for ``name(*args)`` and its
    reply over the channel (no argument checks, no executor, no reply decoding)."""
    rt = runtime()
    fn = rt.load(code, signature, memory_mb=64, name=name)
    fn.call(args, CallContext("raw-baseline", 60.0))  # loads it into the host
    host = rt.host()
    body = json.dumps(list(args)).encode()
    prefix, lock = fn._prefix, rt._lock

    def raw() -> bytes:
        with lock:
            return host.channel.request(Op.CALL, prefix, body).body

    return raw
