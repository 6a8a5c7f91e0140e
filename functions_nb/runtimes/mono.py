"""The "mono" runtime: C# functions in one shared Mono host process per kernel.

Host: ``hosts/MonoHost.cs``, compiled once with ``mcs`` into ``cache_dir()/mono/<hash>/`` (hash
of the source and the Mono version), run under the host layer (``runtimes/host/``: spawner,
channel, watchdog, restart, fork reset, sandbox profile). It hosts many functions, **one
AppDomain per function version** (own statics, types and ``Console``; ``close()`` unloads it).
Bodies of the protocol's operations (docs/host-protocol.md) are Mono's own: scalars packed
little-endian (one precompiled ``Struct`` when every parameter is a scalar), ``string``/``byte[]``
as length + bytes, ``double[]``/``float[]``/``int[]``/``long[]`` as length + raw items (numpy in,
numpy out), every other type as JSON converted by reflection in the host; a reply carries the
call's ``Console.Out`` / ``Console.Error`` lines. Exceptions come back as
"Type: message at cell line N" (the assembly carries its .mdb symbols; ``mono --debug``).

Limits: the host aborts a call (``Thread.Abort``) at its deadline (the timeout travels in the
CALL body) or on the parent's ``CANCEL``, and when the heap grew by more than ``memory_mb``
during the call; the host is killed ``GRACE`` s later if the call did not stop. Threads and pool
work a call starts are aborted when it returns; a function keeping many descriptors open
across calls fails (its AppDomain is recycled, which closes them); a write past the file-size
limit fails that call (the host ignores SIGXFSZ); a function calling ``Environment.Exit`` is
named in the error of every call the exit cut short. Sandbox (where each layer works, see
``isolation()``): bubblewrap with only the Mono install bound read-only, a private /tmp, no
network; seccomp (built by ``sandbox.seccomp_program``, installed by the host after its own
start: no execve, no new processes); rlimits; a clean environment. AppDomains keep ordinary
code apart; they are no boundary against P/Invoke, ``unsafe`` pointers or private reflection,
so functions sharing a host trust each other as much as the kernel's user trusts them.
"""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .. import values
from ..config import cache_dir
from ..errors import Aborted, BadArguments, FunctionTimeout, InvocationError, LimitExceeded, ToolchainMissing
from ..models import Signature
from ..process_wide import ProcessWide
from .base import ARRAY_DTYPES, CallContext, Isolation, ModuleCache
from .host import HostProcess, Op, Reply, SharedHostRuntime, Status, sandbox
from .host.protocol import HEADER

HOST_SOURCE = Path(__file__).resolve().parent.parent / "hosts" / "MonoHost.cs"
#: Seconds after a deadline (or an abort) before a host whose call did not stop is killed.
GRACE = 0.5
#: Host-wide managed heap cap (MB); raised when a function's memory_mb needs more.
HEAP_MB = int(os.environ.get("FUNCTIONS_NB_MONO_HEAP_MB", "1024"))
HEAP_HEADROOM_MB = 256
#: Total CPU seconds of one host process (last backstop for work nothing else stops).
CPU_SECONDS = int(os.environ.get("FUNCTIONS_NB_MONO_CPU_SECONDS", "3600"))
TMP_MB = 64
#: Largest file a function may write (below the private /tmp's size, so the limit is what hits).
FSIZE_MB = 32
NOFILE = 1024
START_TIMEOUT = 60.0
LOAD_TIMEOUT = 60.0
SANDBOX_ROOT = "/fnb"

KIND_CODES = {"unit": 0, "i32": 1, "u32": 2, "i64": 3, "u64": 4, "f32": 5, "f64": 6, "bool": 7,
              "str": 8, "bytes": 9, "json": 10, "f64[]": 11, "f32[]": 12, "i32[]": 13, "i64[]": 14}
_SCALAR_CODES = {"i32": "i", "u32": "I", "i64": "q", "u64": "Q", "f32": "f", "f64": "d", "bool": "?"}
_NULL = 0xFFFFFFFF
_U32 = struct.Struct("<I")
_CALL_HEAD = struct.Struct("<II")  # fid, timeout ms
_NULL_PARTS = [_U32.pack(_NULL)]
#: Lines of a host's log that say why it ended (the rest is stack dumps).
_NOTABLE = re.compile(r"functions-nb: |called FailFast|FATAL UNHANDLED EXCEPTION|Stack overflow|"
                      r"Out of memory|Insufficient memory|\* Assertion")
_EXIT = re.compile(r"functions-nb: function (\w+) called Environment\.Exit\((-?\d+)\)")

_function_ids = itertools.count(1)


# -- toolchain and sandbox ----------------------------------------------------------------

@functools.cache
def mono_version() -> str:
    mono = shutil.which("mono")
    if not mono:
        return ""
    out = subprocess.run([mono, "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"version (\S+)", out)
    return f"Mono {m.group(1)}" if m else "Mono"


def host_exe() -> Path:
    """MonoHost.exe, compiled on first use (keyed by the source and the Mono version)."""
    source = HOST_SOURCE.read_bytes()
    key = hashlib.sha256(source + mono_version().encode()).hexdigest()[:16]
    folder = cache_dir() / "mono" / key
    exe = folder / "MonoHost.exe"
    if exe.exists():
        return exe
    mcs = shutil.which("mcs")
    if not mcs or not shutil.which("mono"):
        raise ToolchainMissing("C# needs Mono: apt-get install -y mono-mcs mono-runtime bubblewrap")
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        if not exe.exists():
            tmp = folder / f"tmp-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:  # the file name is the assembly name the AppDomains load it by
                proc = subprocess.run([mcs, "-optimize", "-unsafe", "-nologo", "-out:MonoHost.exe",
                                       str(HOST_SOURCE)], cwd=tmp, capture_output=True, text=True,
                                      timeout=300)
                if proc.returncode != 0:
                    raise InvocationError("compiling the C# host failed:\n" + proc.stdout + proc.stderr)
                os.replace(tmp / "MonoHost.exe", exe)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return exe


@functools.cache
def _mono_binds() -> tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(mono binary, read-only binds of the Mono install, top-level symlinks to recreate)."""
    mono = os.path.realpath(shutil.which("mono") or "/usr/bin/mono")
    libdir = Path(mono).parent.parent / "lib"
    natives = [p for p in (libdir / "libmono-native.so", libdir / "libMonoPosixHelper.so") if p.exists()]
    binds, links = sandbox.library_binds(mono, *map(str, natives))
    siblings = [s for n in natives for s in n.parent.glob(n.name + "*")]  # libmono-native.so.0 ...
    extra = sandbox.readable(libdir / "mono", "/etc/mono", "/etc/ld.so.cache", *siblings)
    return mono, tuple(dict.fromkeys([*binds, *extra])), tuple(links)


def sandbox_profile(heap_mb: int = HEAP_MB, exe: Path | None = None) -> sandbox.SandboxProfile:
    """Only the Mono install (and the host's folder at /fnb), a private /tmp, the limits."""
    _, binds, links = _mono_binds()
    env = {"MONO_GC_PARAMS": f"max-heap-size={heap_mb}m", "MONO_DISABLE_SHARED_AREA": "1",
           # a crash (FailFast) ends in ms, not in 2 s of debugger dumps
           "MONO_DEBUG": "no-gdb-backtrace", "MONO_CRASH_NOFILE": "1",
           "HOME": "/tmp", "TMPDIR": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    rlimits = {"cpu": CPU_SECONDS, "as": (heap_mb + 2048) << 20, "nofile": NOFILE,
               "fsize": FSIZE_MB << 20, "core": 0}
    mounts: list[str | tuple[str, str]] = list(binds)
    if exe is not None:
        mounts.append((str(exe.parent), SANDBOX_ROOT))
    return sandbox.SandboxProfile("mono", binds=mounts, symlinks=list(links), tmpfs={"/tmp": TMP_MB},
                                  env=env, rlimits=rlimits, chdir="/tmp")


def sandbox_layers() -> dict[str, Any]:
    """Which layers of the profile work on this machine (probed once per process)."""
    mono = _mono_binds()[0]
    return sandbox.probe(sandbox_profile(), [mono, "--version"])


def _seccomp_args() -> list[str]:
    """The seccomp syscall number and BPF program (base64) the host installs on itself."""
    program = sandbox.seccomp_program(deny_exec=True)
    nr = sandbox.SECCOMP_SYSCALL.get(platform.machine())
    if program is None or nr is None:
        return ["-", "-"]
    return [str(nr), base64.b64encode(program).decode()]


def _notable(lines: list[str]) -> list[str]:
    return [ln for ln in lines if _NOTABLE.search(ln)][-2:]


# -- the runtime ----------------------------------------------------------------------------

class MonoHost(HostProcess):
    """A Mono host process and the heap cap it was started with."""

    def __init__(self, *args: Any, heap_mb: int, **kwargs: Any) -> None:
        self.heap_mb = heap_mb
        super().__init__(*args, **kwargs)


class MonoRuntime(SharedHostRuntime):
    """The process-wide shared Mono host (lazy, restarted when it died)."""

    kind = "mono"
    label = "the C# host"

    def __init__(self) -> None:
        super().__init__()
        self.heap_mb = HEAP_MB
        #: host generation -> {request id: function name} of the calls in flight there.
        self.inflight: dict[int, dict[int, str]] = {}

    def start_host(self, generation: int) -> HostProcess:
        exe = host_exe()
        heap = self.heap_mb
        profile = sandbox_profile(heap, exe)
        mono = _mono_binds()[0]
        inside = sandbox_layers()["bwrap"]
        launch = sandbox.launch(profile, [])
        path = f"{SANDBOX_ROOT}/{exe.name}" if inside else str(exe)
        try:
            return MonoHost(
                lambda p: [*launch.argv, mono, "--debug", path, str(p.request), str(p.reply),
                           *_seccomp_args()],
                label=self.label, env=launch.env, generation=generation, grace=GRACE,
                start_timeout=START_TIMEOUT, extra_fds=launch.fds, notable=_notable, heap_mb=heap)
        finally:
            launch.close()

    def isolation(self) -> Isolation:
        layers = sandbox_layers()
        own = ("one AppDomain per function version in a shared Mono host (own statics, types, "
               "Console; not a boundary against P/Invoke or unsafe code)",)
        host = self.current()
        state = host.info.get("seccomp", "?") if host is not None else "on"
        if _seccomp_args()[0] != "-" and state == "on":
            own += ("seccomp installed by the host: no execve, no new processes",)
        return sandbox.isolation("mono", layers, own, (
            "time (Thread.Abort, then kill)", "heap growth", "background threads stopped at return",
            "descriptors kept across calls", f"file size {FSIZE_MB} MB"))

    def after_fork(self) -> None:
        self.inflight = {}

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> MonoFunction:
        if memory_mb + HEAP_HEADROOM_MB > self.heap_mb:
            self.heap_mb = memory_mb + HEAP_HEADROOM_MB
            host = self.current()
            if host is not None and not any(self.inflight.get(host.generation, {}).values()):
                self.restart()  # the next start has the larger heap cap
        fn = MonoFunction(self, code, signature, memory_mb, name)
        fn.ensure_loaded()  # fail at load, not at the first call
        fn._fresh = True
        return fn


#: The process-wide runtime (created on first use; the host starts on the first load).
runtime: ProcessWide[MonoRuntime] = ProcessWide(MonoRuntime)


# -- arguments and results --------------------------------------------------------------------

def _checked(check: Callable[[Any], Any], sig: Signature, param: Any) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return check(value)
        except values.Refused as exc:
            raise values.bad_argument(sig, param.name, param.type, value, exc.why) from None
    return convert


def _encoder(sig: Signature, param: Any) -> Callable[[Any], list[Any]]:
    """The wire form of one argument, as a list of bytes-like parts (arrays are not copied)."""
    kind = param.kind
    if kind in _SCALAR_CODES:
        conv = values.argument(sig, param)
        pack = struct.Struct("<" + _SCALAR_CODES[kind]).pack
        return lambda value: [pack(conv(value))]
    text = kind == "json"
    utf8 = _checked(values.to_utf8, sig, param) if kind == "str" else None
    check = utf8 or values.argument(sig, param)
    nullable = kind != "json"

    def encode(value: Any) -> list[Any]:
        if value is None and nullable:
            return _NULL_PARTS
        data = check(value)
        if text:
            data = data.encode()
        if kind in ARRAY_DTYPES:
            return [_U32.pack(data.shape[0]), data]
        return [_U32.pack(len(data)), data]
    return encode


def _decoder(kind: str) -> Callable[[bytes, int], Any]:
    """Result decoder: (reply body, offset) -> value."""
    if kind == "unit":
        return lambda data, off: None
    if kind in _SCALAR_CODES:
        unpack = struct.Struct("<" + _SCALAR_CODES[kind]).unpack_from
        return lambda data, off: unpack(data, off)[0]
    if kind in ARRAY_DTYPES:
        import numpy as np

        dtype = np.dtype(ARRAY_DTYPES[kind])

        def dec_array(data: bytes, off: int) -> Any:
            (n,) = _U32.unpack_from(data, off)
            return None if n == _NULL else np.frombuffer(data, dtype, n, off + 4).copy()
        return dec_array

    def dec_blob(data: bytes, off: int) -> Any:
        (n,) = _U32.unpack_from(data, off)
        if n == _NULL:
            return None
        blob = data[off + 4:off + 4 + n]
        if kind == "bytes":
            return bytes(blob)
        text = blob.decode("utf-8", "replace")
        return text if kind == "str" else json.loads(text)
    return dec_blob


class CallReply(NamedTuple):
    """A decoded reply: its status, the console lines, where the value (or message) starts."""

    status: int
    console: list[tuple[int, str]]
    body: bytes
    at: int

    @classmethod
    def decode(cls, reply: Reply) -> CallReply:
        body = reply.body
        lines: list[tuple[int, str]] = []
        if len(body) < 4:
            return cls(reply.status, lines, body, len(body))
        (size,) = _U32.unpack_from(body, 0)
        off, end = 4, 4 + size
        while off < end:
            (n,) = _U32.unpack_from(body, off + 1)
            lines.append((body[off], body[off + 5:off + 5 + n].decode("utf-8", "replace")))
            off += 5 + n
        return cls(reply.status, lines, body, end)

    @property
    def message(self) -> str:
        if len(self.body) < self.at + 4:
            return ""
        (n,) = _U32.unpack_from(self.body, self.at)
        return "" if n == _NULL else self.body[self.at + 4:self.at + 4 + n].decode("utf-8", "replace")


def _str(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U32.pack(len(data)) + data


# -- loaded functions ---------------------------------------------------------------------------

class MonoFunction:
    """One function version in the host: its AppDomain id, encoders and the call path."""

    def __init__(self, rt: MonoRuntime, code: bytes, signature: Signature, memory_mb: int,
                 name: str) -> None:
        self.rt = rt
        self.code = code
        self.sig = signature
        self.memory_mb = int(memory_mb)
        self.name = name
        self.fid = 0
        self._host: HostProcess | None = None
        self._load_lock = threading.Lock()
        self._fresh = True
        self._n = len(signature.params)
        kinds = [p.kind for p in signature.params]
        unknown = [k for k in [*kinds, signature.result] if k not in KIND_CODES]
        if unknown:
            raise InvocationError(f"{name}: the mono runtime cannot pass values of kind {unknown[0]}")
        self._result = _decoder(signature.result)
        self._encoders = [_encoder(signature, p) for p in signature.params]
        self._fast: struct.Struct | None = None
        if all(k in _SCALAR_CODES for k in kinds):
            self._fast = struct.Struct("<II" + "".join(_SCALAR_CODES[k] for k in kinds))
            self._fast_types = tuple(int if k in values.INT_RANGES else float if k in ("f32", "f64")
                                     else bool for k in kinds)
            self._bounded = any(p.bounds for p in signature.params)
            self._converters = [values.argument(signature, p) for p in signature.params]

    # loading ---------------------------------------------------------------------------------
    def ensure_loaded(self, ctx: CallContext | None = None) -> tuple[HostProcess, bool]:
        """Load into the current host (starting it if needed); (host, whether this loaded it)."""
        with self._load_lock:
            host = self.rt.host(ctx, self.name)
            if self._host is host:
                return host, False
            fid = next(_function_ids)
            body = [_U32.pack(fid), _U32.pack(self.memory_mb), _U32.pack(0), _str(self.name),
                    bytes([self._n])]
            for p in self.sig.params:
                body += [bytes([KIND_CODES[p.kind]]), _str(p.type)]
            body += [bytes([KIND_CODES[self.sig.result]]), _U32.pack(len(self.code)), self.code]
            reply = host.request(Op.LOAD, b"".join(body), what=f"loading {self.name}",
                                 setup_timeout=LOAD_TIMEOUT)
            if reply.status == Status.DIED:
                raise InvocationError(f"{self.name}: could not load into the C# host: "
                                      f"{reply.body.decode(errors='replace')}")
            if reply.status != Status.OK:
                raise InvocationError(f"{self.name}: the C# host could not load the function: "
                                      f"{CallReply.decode(reply).message}")
            self.fid, self._host = fid, host
            return host, True

    def close(self) -> None:
        host, self._host = self._host, None
        if host is not None and host.alive:
            host.unload(self.fid)

    # the call path ---------------------------------------------------------------------------
    def _body(self, args: tuple, timeout_ms: int) -> list[Any]:
        fast = self._fast
        if fast is not None and len(args) == self._n:
            if tuple(map(type, args)) != self._fast_types or self._bounded:
                args = tuple(conv(a) for conv, a in zip(self._converters, args, strict=True))
            try:
                return [fast.pack(self.fid, timeout_ms, *args)]
            except (struct.error, OverflowError):  # out of range (f32 overflow): refused by name
                args = tuple(conv(a) for conv, a in zip(self._converters, args, strict=True))
                return [fast.pack(self.fid, timeout_ms, *args)]
        parts: list[Any] = [_CALL_HEAD.pack(self.fid, timeout_ms)]
        # fewer arguments than parameters: the host applies the cell's defaults to the rest
        for enc, a in zip(self._encoders, args, strict=len(args) == self._n):
            parts += enc(a)
        return parts

    def call(self, args: tuple, ctx: CallContext, _retry: bool = True) -> Any:
        if len(args) != self._n:
            self.sig.check_arity(args)  # fewer: the trailing ones have defaults in the cell
        host = self._host
        if host is None or host.ended():
            host = self._reload(ctx)
        elif self._fresh:
            self._fresh = False
            ctx.cold = True
        parts = self._body(args, max(1, int((ctx.deadline - time.monotonic()) * 1000)))
        rid = host.channel.new_id()
        inflight = self.rt.inflight.setdefault(host.generation, {})
        inflight[rid] = self.name
        try:
            reply = host.channel.request(Op.CALL, *parts, request_id=rid,
                                         watch=host.watch_for(ctx, f"a call of {self.name}"))
            if reply.status == Status.DIED:
                self._host = None
                raise self._died(ctx, reply.body.decode(errors="replace"),
                                 sorted(set(inflight.values()) - {self.name}))
        finally:
            inflight.pop(rid, None)
        if reply.status == Status.GONE and _retry:  # unloaded meanwhile: it never ran
            self._host = None
            return self.call(args, ctx, _retry=False)
        decoded = CallReply.decode(reply)
        for level, text in decoded.console:
            ctx.log(level, text)
        if decoded.status == Status.OK:
            return self._result(decoded.body, decoded.at)
        raise self._failure(decoded, ctx)

    def _reload(self, ctx: CallContext) -> HostProcess:
        """(Re)load into the host; the load's time does not count against the time limit."""
        host, loaded = self.ensure_loaded(ctx)
        if loaded:
            ctx.cold = True
            ctx.deadline = time.monotonic() + ctx.timeout
            self._fresh = False
        return host

    def _failure(self, reply: CallReply, ctx: CallContext) -> Exception:
        status, msg = reply.status, reply.message
        if status == Status.ERROR:
            return InvocationError(f"{self.name} threw {msg}")
        if status == Status.INTERRUPTED:
            if ctx.aborted:
                return Aborted(f"{self.name}: execution {ctx.id} aborted")
            ctx.timed_out = True
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit")
        if status == Status.BAD_ARGS:
            return BadArguments(f"{self.sig}: {msg}")
        if status in (Status.MEMORY, Status.LIMIT):
            self.close()  # its AppDomain may hold what exceeded the limit: a fresh one next call
            if status == Status.LIMIT:
                return LimitExceeded(f"{self.name}: " + msg.replace(
                    "the file-size limit", f"the file-size limit of {FSIZE_MB} MB", 1))
            if "memory limit of" in msg:
                return LimitExceeded(f"{self.name}: {msg}")
            return LimitExceeded(f"{self.name}: out of memory ({msg.rstrip('.')}; memory limit "
                                 f"{self.memory_mb} MB, the C# host's heap is capped at "
                                 f"{self.rt.heap_mb} MB)")
        return InvocationError(f"{self.name}: C# host error: {msg}")

    def _died(self, ctx: CallContext, reason: str, others: list[str]) -> Exception:
        exited = _EXIT.search(reason)
        if exited is not None:
            who, code = exited.groups()
            if who == self.name:
                return InvocationError(f"{self.name} called Environment.Exit({code}), which ends the "
                                       "shared C# host (it restarts on the next call)")
            return InvocationError(f"{self.name}: the call was cut short: the C# host was ended by "
                                   f"{who} calling Environment.Exit({code}); it restarts on the next call")
        if ctx.aborted:
            return Aborted(f"{self.name}: execution {ctx.id} aborted ({reason})")
        if ctx.timed_out:
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit "
                                   "(the host process was killed and restarts on the next call)")
        also = f" (calls of {', '.join(others)} were running too)" if others else ""
        return InvocationError(f"{self.name}: {reason}{also}; it restarts on the next call")


# -- the bare baseline for benchmarks ----------------------------------------------------------

#: Separate runtimes (own host processes) that raw_baseline started; stopped at exit.
_raw_runtimes: list[MonoRuntime] = []


def raw_baseline(code: bytes, signature: Signature, name: str, args: tuple) -> Callable[[], Any]:
    """The bare host round trip for benchmarks: the call frame for ``name(*args)``, encoded
    once, written straight to the pipe of a host process of its own (the shared host is not
    touched) and its reply read back in blocking reads and decoded (no argument checks, no
    executor, no watchdog, no console handling). The host stops at interpreter exit."""
    rt = MonoRuntime()  # not the process-wide one: its own host process
    _raw_runtimes.append(rt)
    if len(_raw_runtimes) == 1:
        atexit.register(lambda: [r.shutdown() for r in _raw_runtimes])
    fn = rt.load(code, signature, memory_mb=64, name=name)  # starts the host and loads the function
    host = fn._host
    assert host is not None
    body = b"".join(bytes(memoryview(p).cast("B")) for p in fn._body(args, 60_000))
    frame = HEADER.pack(len(body), 1, Op.CALL) + body
    decode, lock, wfd, rfd = fn._result, threading.Lock(), host.channel.wfd, host.channel.rfd

    def raw() -> Any:
        with lock:
            os.write(wfd, frame)
            reply = os.read(rfd, 1 << 16)
            while len(reply) < HEADER.size or len(reply) < HEADER.size + HEADER.unpack_from(reply)[0]:
                more = os.read(rfd, 1 << 16)
                if not more:
                    raise InvocationError(f"{name}: the baseline's C# host process ended")
                reply += more
        decoded = CallReply.decode(Reply(reply[8], reply[HEADER.size:]))
        if decoded.status != Status.OK:
            raise fn._failure(decoded, CallContext("raw-baseline", 60.0))
        return decode(decoded.body, decoded.at)

    return raw
