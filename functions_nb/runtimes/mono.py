"""The "mono" runtime: C# functions in one shared Mono host process per kernel.

Host: ``hosts/MonoHost.cs``, compiled once with ``mcs`` into ``cache_dir()/mono/<hash>/``
(hash of the source and the Mono version), started lazily on the first load and restarted
when it dies or had to be killed. It hosts many functions, **one AppDomain per function
version** (own statics, own ``Console``; ``close()`` unloads it, so a new version replaces
the old one and its memory is returned). Requests go over two private pipes as
length-prefixed binary frames (see the header of MonoHost.cs). A call never goes through .NET
remoting (45-75 us per cross-AppDomain call on Mono 6.8): the host's main thread hands the
frame to worker threads that live inside the function's AppDomain (a ticket on a pipe), and
they write the reply straight back; concurrent calls from several Python threads run
concurrently. The Python side reads replies leader/follower style: a lone caller reads its
own reply in one blocking read (no thread hop); one watchdog thread enforces deadlines and
aborts of waiting calls.

Calling convention: scalars are packed little-endian with ``struct`` (one precompiled
``Struct`` per function when every parameter is a scalar), ``string``/``byte[]`` as length +
bytes, ``double[]``/``float[]``/``int[]``/``long[]`` as length + raw items (numpy in, numpy
out), every other type as JSON converted by reflection in the host. ``Console.Out`` /
``Console.Error`` are captured per call (levels 1 / 4). Exceptions come back as
"Type: message at cell line N" (the assembly carries its .mdb symbols; the host runs with
``--debug``).

Isolation (honest): C# has no in-language sandbox, so isolation is at process level.
- bubblewrap, when it works here: no network (own network namespace: 127.0.0.1 is the
  sandbox's own loopback), own PID/IPC/UTS namespaces, own user namespace as ``nobody``,
  a filesystem of only the Mono install (read-only binds of the mono binary, its libraries,
  ``/usr/lib/mono``, ``/etc/mono`` and the host .exe), a private size-capped ``/tmp``, ``/proc``
  of the sandbox only, a clean environment (``--clearenv``), ``--die-with-parent``.
- seccomp (installed by the host itself at start-up, all threads): ``execve``/``execveat``,
  ``fork``/``vfork`` and ``clone`` without ``CLONE_THREAD`` fail with EPERM, so no process and
  no other program can be started (threads still can).
- rlimits via ``prlimit``: total CPU time of the host (a backstop for threads a function
  leaves running; reaching it kills the host, which restarts), address space, open files,
  file size, no core dumps. Heap: ``MONO_GC_PARAMS=max-heap-size`` caps the whole host.
- per call: a watchdog thread in the function's AppDomain ``Thread.Abort``s a call at its
  deadline (measured: a tight loop stops within ~1-10 ms) or when the live heap grew by more
  than ``memory_mb`` during the call (checked every 2 ms, confirmed after a full collection; the
  heap is the process's, so concurrent calls share the growth); an allocation beyond the host's
  heap cap raises OutOfMemoryException in the call -> LimitExceeded. If the host has not answered
  ``GRACE`` s after the deadline (or an abort), it is killed and restarted; other calls in
  flight then fail with InvocationError. After a memory failure the function gets a fresh
  AppDomain (its statics may hold the memory); after a timeout or abort it keeps its AppDomain
  (``Thread.Abort`` ran its ``finally`` blocks), so the next call is warm. Loading a function
  into the host (a cold call) does not count against its time limit.
Functions in one host share a process: AppDomains separate versions, they are no security
boundary between functions of the same kernel. Without bubblewrap, the host runs as a plain
child process (clean environment, seccomp, rlimits) and ``func doctor`` says so.
"""

from __future__ import annotations

import atexit
import collections
import errno
import fcntl
import functools
import hashlib
import io
import itertools
import json
import os
import platform
import queue
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import cache_dir
from ..errors import Aborted, BadArguments, FunctionTimeout, InvocationError, LimitExceeded, ToolchainMissing
from ..models import Signature
from ..process_wide import ProcessWide
from .base import (
    ARRAY_DTYPES,
    CallContext,
    ModuleCache,
    as_array,
    int_argument,
    json_default,
)

HOST_SOURCE = Path(__file__).resolve().parent.parent / "hosts" / "MonoHost.cs"
#: Seconds after a deadline (or an abort request) before the host process is killed.
GRACE = 0.075
#: How often a waiting caller checks its deadline and abort flag.
POLL = 0.01
#: Host-wide managed heap cap (MB); raised when a function's memory_mb needs more.
HEAP_MB = int(os.environ.get("FUNCTIONS_NB_MONO_HEAP_MB", "1024"))
HEAP_HEADROOM_MB = 256
#: Total CPU seconds of one host process (backstop for runaway background threads).
CPU_SECONDS = int(os.environ.get("FUNCTIONS_NB_MONO_CPU_SECONDS", "3600"))
TMP_MB = 64
NOFILE = 256
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
START_TIMEOUT = 60.0
LOAD_TIMEOUT = 60.0
SANDBOX_ROOT = "/fnb"

KIND_CODES = {"unit": 0, "i32": 1, "u32": 2, "i64": 3, "u64": 4, "f32": 5, "f64": 6, "bool": 7,
              "str": 8, "bytes": 9, "json": 10, "f64[]": 11, "f32[]": 12, "i32[]": 13, "i64[]": 14}
_SCALAR_CODES = {"i32": "i", "u32": "I", "i64": "q", "u64": "Q", "f32": "f", "f64": "d", "bool": "?"}
_INT_RANGES = {"i32": (-(2**31), 2**31 - 1), "u32": (0, 2**32 - 1),
               "i64": (-(2**63), 2**63 - 1), "u64": (0, 2**64 - 1)}
_NULL = 0xFFFFFFFF
_U32 = struct.Struct("<I")
_CALL_HEAD = struct.Struct("<IBIII")  # length, op, request id, fid, timeout ms
_SHORT_HEAD = struct.Struct("<IBII")
ST_OK, ST_EXC, ST_TIMEOUT, ST_ABORTED, ST_MEMORY, ST_BADARG, ST_HOST = range(7)
#: (AUDIT_ARCH, seccomp, execve, execveat, clone, clone3, fork, vfork) syscall numbers per machine
#: (0xFFFFFFFF: no such call there).
_SECCOMP = {"x86_64": (0xC000003E, 317, 59, 322, 56, 435, 57, 58),
            "aarch64": (0xC00000B7, 277, 221, 281, 220, 435, 0xFFFFFFFF, 0xFFFFFFFF)}

_request_ids = itertools.count(1)
_function_ids = itertools.count(1)


class _HostDied(Exception):
    """The host process ended (crash, Environment.Exit, or killed by us)."""


# -- toolchain facts ------------------------------------------------------------------

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


def _libraries(*binaries: str) -> set[str]:
    """Shared libraries the binaries load (as ldd reports them)."""
    libs: set[str] = set()
    for binary in binaries:
        if not os.path.exists(binary):
            continue
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            m = re.search(r"(/\S+)\s+\(0x", line)
            if m:
                libs.add(m.group(1))
    return libs


@functools.cache
def _mono_files() -> tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(mono binary, read-only binds as (destination, source), top-level symlinks to recreate)."""
    mono = os.path.realpath(shutil.which("mono") or "/usr/bin/mono")
    prefix = Path(mono).parent.parent
    libdir = prefix / "lib"
    natives = [str(p) for p in (libdir / "libmono-native.so", libdir / "libMonoPosixHelper.so")
               if p.exists()]
    links = tuple((os.readlink(f"/{name}"), f"/{name}") for name in ("bin", "lib", "lib32", "lib64", "sbin")
                  if os.path.islink(f"/{name}"))
    paths = {mono, str(libdir / "mono"), *natives}
    for p in ("/etc/mono", "/etc/ld.so.cache"):
        if os.path.exists(p):
            paths.add(p)
    binds = {p: p for p in paths}
    for lib in _libraries(mono, *natives):
        real = os.path.realpath(lib)
        binds[real] = real
        for target, link in links:  # /lib64/ld-linux... -> /usr/lib64/ld-linux... (itself a symlink)
            if lib.startswith(f"{link}/"):
                lib = os.path.normpath(os.path.join("/", target, lib[len(link) + 1:]))
        binds[lib] = real
    for native in natives:  # libmono-native.so.0 etc. next to it
        for sibling in Path(native).parent.glob(Path(native).name + "*"):
            binds[str(sibling)] = str(sibling)
    return mono, tuple(sorted(binds.items())), links


def _bwrap_args(userns: bool, host_dir: str | None) -> list[str]:
    mono, paths, links = _mono_files()
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session",
            "--clearenv"]
    if userns:
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
    for target, link in links:
        args += ["--symlink", target, link]
    for dest, source in paths:
        args += ["--ro-bind", source, dest]
    if host_dir:
        args += ["--ro-bind", host_dir, SANDBOX_ROOT]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_MB << 20), "--tmpfs", "/tmp",
             "--chdir", "/tmp"]
    return args


@functools.cache
def sandbox_layers() -> dict[str, Any]:
    """Which isolation layers work on this machine (probed once per process)."""
    layers: dict[str, Any] = {"bwrap": False, "userns": False, "prlimit": bool(shutil.which("prlimit")),
                              "seccomp": platform.machine() in _SECCOMP, "bwrap_error": ""}
    if not shutil.which("bwrap") or not shutil.which("mono"):
        layers["bwrap_error"] = "bwrap not found" if shutil.which("mono") else "mono not found"
        return layers
    mono = _mono_files()[0]
    for userns in (True, False):
        try:
            proc = subprocess.run([*_bwrap_args(userns, None), "--", mono, "--version"],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            layers["bwrap_error"] = str(exc)
            continue
        if proc.returncode == 0 and "Mono" in proc.stdout:
            layers["bwrap"], layers["userns"] = True, userns
            return layers
        layers["bwrap_error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return layers


def isolation_summary() -> str:
    """What ``func doctor`` prints for C#."""
    layers = sandbox_layers()
    parts = []
    if layers["bwrap"]:
        ns = "net, pid, ipc, uts" + (", user (nobody)" if layers["userns"] else "")
        parts.append(f"bubblewrap sandbox ({ns} namespaces; read-only Mono install only; private "
                     f"/tmp; clean env)")
    else:
        parts.append(f"NO bubblewrap ({layers['bwrap_error'] or 'unavailable'}): the host can read "
                     "the filesystem and use the network")
    parts.append("seccomp blocks fork/exec" if layers["seccomp"] else
                 f"no seccomp filter for {platform.machine()}")
    parts.append(f"prlimit (cpu {CPU_SECONDS} s, address space, {NOFILE} files, no core)"
                 if layers["prlimit"] else "no prlimit (no rlimits)")
    parts.append("per call: Thread.Abort at the deadline, heap-growth memory limit; kill + "
                 "restart as backstop")
    return "isolation: " + "; ".join(parts)


#: Lines of a host crash report worth showing (the rest is stack dumps).
_NOTABLE = re.compile(r"called FailFast|FATAL UNHANDLED EXCEPTION|Stack overflow|Out of memory|"
                      r"Insufficient memory|\* Assertion")


def _tail(lines: collections.deque[str]) -> str:
    keep = [ln.strip() for ln in list(lines)[-3:] if ln.strip()]
    return " | ".join(keep)[-300:]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# -- the host process -------------------------------------------------------------------

class _Spawner:
    """Starts host processes from one long-lived thread: ``--die-with-parent`` (PDEATHSIG)
    fires when the *thread* that started bwrap ends, so no short-lived caller thread may."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], dict[str, Any], threading.Event]] = \
            queue.SimpleQueue()
        threading.Thread(target=self._run, name="functions-nb-mono-spawner", daemon=True).start()

    def _run(self) -> None:
        while True:
            fn, box, done = self._jobs.get()
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            done.set()

    def call(self, fn: Callable[[], Any]) -> Any:
        box: dict[str, Any] = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]


class _Watchdog:
    """One thread per process that checks the deadline and abort flag of every waiting call
    every POLL s, so that a waiting caller can block in read() (one syscall) instead of polling."""

    def __init__(self) -> None:
        self._waits: dict[int, tuple[_Host, _Wait]] = {}
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="functions-nb-mono-watchdog", daemon=True).start()

    def add(self, host: _Host, w: _Wait) -> None:
        self._waits[id(w)] = (host, w)
        if not self._wake.is_set():
            self._wake.set()

    def remove(self, w: _Wait) -> None:
        self._waits.pop(id(w), None)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(POLL)
            waits = list(self._waits.values())
            if not waits:
                self._wake.clear()
                if self._waits:  # added while clearing
                    self._wake.set()
            for host, w in waits:
                try:
                    host._watch(w)
                except Exception:  # noqa: BLE001 - the watchdog must keep running
                    pass


#: The process-wide watchdog thread (created with the first call that has a deadline).
watchdog: ProcessWide[_Watchdog] = ProcessWide(_Watchdog)


class _Wait:
    __slots__ = ("rid", "fid", "ctx", "deadline", "abort_sent")

    def __init__(self, rid: int, ctx: CallContext | None, deadline: float | None, fid: int = 0) -> None:
        self.rid = rid
        self.fid = fid
        self.ctx = ctx
        self.deadline = deadline
        self.abort_sent = 0.0


class _Host:
    """One running host process and its channel."""

    def __init__(self, spawner: _Spawner, heap_mb: int, generation: int) -> None:
        self.generation = generation
        self.heap_mb = heap_mb
        self.alive = True
        self.reason = ""
        self.inflight = 0
        self.info: dict[str, str] = {}
        self._kill_reason = ""
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._cond = threading.Condition()
        self._mail: dict[int, bytes] = {}
        self._followers = 0
        self._buf = bytearray()
        self._chunk = bytearray(1 << 16)  # reused for every read: no allocation per reply
        self._chunk_view = memoryview(self._chunk)
        self.log: collections.deque[str] = collections.deque(maxlen=50)
        self.notable: list[str] = []
        started = time.perf_counter()
        exe = host_exe()
        self.compile_ms = (time.perf_counter() - started) * 1000
        req_r, self.wfd = os.pipe()
        self.rfd, rep_w = os.pipe()
        for fd in (self.wfd, self.rfd):  # 1 MB pipes: 16x fewer context switches for big values
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
        # The pipes close when this object is garbage, never while a thread may still use them
        # (a closed number could be reused by the next host's pipe); shutdown() closes wfd.
        self._files = (io.FileIO(self.rfd, "rb"), io.FileIO(self.wfd, "wb"))
        self._dlock = threading.Lock()
        layers = sandbox_layers()
        cmd = self._command(exe, layers, req_r, rep_w)
        try:
            self.proc = spawner.call(lambda: subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(req_r, rep_w), env=None if layers["bwrap"] else self._env(),
                start_new_session=not layers["bwrap"]))
        finally:
            os.close(req_r)
            os.close(rep_w)
        threading.Thread(target=self._drain, name="functions-nb-mono-log", daemon=True).start()
        hello = self.wait(_Wait(0, None, time.monotonic() + START_TIMEOUT))
        text = hello[9:].decode("utf-8", "replace")
        self.info = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
        self.start_ms = (time.perf_counter() - started) * 1000

    def _env(self) -> dict[str, str]:
        # no-gdb-backtrace + MONO_CRASH_NOFILE: a crash (FailFast) ends in ms, not in 2 s of dumps
        return {"MONO_GC_PARAMS": f"max-heap-size={self.heap_mb}m", "MONO_DISABLE_SHARED_AREA": "1",
                "MONO_DEBUG": "no-gdb-backtrace", "MONO_CRASH_NOFILE": "1",
                "HOME": "/tmp", "TMPDIR": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    def _command(self, exe: Path, layers: dict[str, Any], req_r: int, rep_w: int) -> list[str]:
        mono = _mono_files()[0]
        machine = platform.machine()
        seccomp = ",".join(map(str, _SECCOMP[machine])) if machine in _SECCOMP else "-"
        if layers["bwrap"]:
            prefix = _bwrap_args(layers["userns"], str(exe.parent))
            for key, value in self._env().items():
                prefix += ["--setenv", key, value]
            prefix.append("--")
            exe_path = f"{SANDBOX_ROOT}/{exe.name}"
        else:
            prefix, exe_path = [], str(exe)
        if layers["prlimit"]:
            address_space = (self.heap_mb + 2048) << 20
            prefix = ["prlimit", f"--cpu={CPU_SECONDS}", f"--as={address_space}",
                      f"--nofile={NOFILE}", f"--fsize={TMP_MB << 20}", "--core=0", "--", *prefix]
        return [*prefix, mono, "--debug", exe_path, str(req_r), str(rep_w), seccomp]

    def _drain(self) -> None:
        """Keep the host's own stdout/stderr (crash reports) for the error message."""
        out = self.proc.stdout
        assert out is not None
        for raw in iter(out.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            if len(self.notable) < 2 and _NOTABLE.search(line):
                self.notable.append(line.strip())
        out.close()
        self._died()  # every process of the sandbox is gone: the next call starts a new host

    # sending ------------------------------------------------------------------------
    def send(self, *parts: Any) -> None:
        """Write one frame, given as one or more bytes-like parts (numpy arrays are not copied)."""
        try:
            with self._wlock:
                if len(parts) == 1:
                    view = memoryview(parts[0])
                    while view:
                        view = view[os.write(self.wfd, view):]
                    return
                views = [memoryview(p).cast("B") for p in parts]
                while views:
                    n = os.writev(self.wfd, views)
                    while views and n >= len(views[0]):
                        n -= len(views.pop(0))
                    if n:
                        views[0] = views[0][n:]
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EBADF):
                raise
            self._died()
            raise _HostDied(self.reason) from None

    # receiving ------------------------------------------------------------------------
    def wait(self, w: _Wait) -> bytes:
        """The reply to request ``w.rid`` (leader/follower: one waiter reads the pipe, in a
        blocking read; the watchdog thread enforces deadlines and aborts meanwhile)."""
        mail, cond = self._mail, self._cond
        watchdog().add(self, w)
        try:
            while True:
                got = mail.pop(w.rid, None)
                if got is not None:
                    return got
                if not self.alive:
                    raise _HostDied(self.reason)
                if self._rlock.acquire(False):
                    try:
                        frame = self._lead(w)
                    finally:
                        self._rlock.release()
                        if self._followers:
                            with cond:
                                cond.notify_all()
                    if frame is not None:
                        return frame
                else:
                    with cond:
                        if w.rid not in mail and self.alive:
                            self._followers += 1
                            cond.wait(POLL)
                            self._followers -= 1
        finally:
            watchdog().remove(w)

    def _lead(self, w: _Wait) -> bytes | None:
        buf, rfd, chunk, view = self._buf, self.rfd, self._chunk, self._chunk_view
        if w.rid in self._mail:
            return None
        while True:
            frame = self._frame(buf)
            while frame is None:
                n = os.readv(rfd, [chunk])  # blocks; EOF when the host dies or is killed
                if not n:
                    self._died()
                    return None
                buf += view[:n]
                try:
                    frame = self._frame(buf)
                except _HostDied:
                    self._died()
                    return None
            rid = int.from_bytes(frame[1:5], "little")
            if rid == w.rid:
                return frame
            with self._cond:
                self._mail[rid] = frame
                self._cond.notify_all()

    def _frame(self, buf: bytearray) -> bytes | bytearray | None:
        """The next whole frame from the read buffer; a large one is read straight into its
        own buffer (no re-copying of megabytes)."""
        if len(buf) < 4:
            return None
        n = int.from_bytes(buf[:4], "little")
        if len(buf) >= 4 + n:
            with memoryview(buf) as view:
                frame = bytes(view[4:4 + n])
            del buf[:4 + n]
            return frame
        if n < PIPE_SIZE:
            return None
        big = bytearray(n)
        have = len(buf) - 4
        big[:have] = buf[4:]
        del buf[:]
        with memoryview(big) as view:
            while have < n:  # the host writes a frame in one go: finish it with blocking reads
                got = os.readv(self.rfd, [view[have:]])
                if not got:
                    raise _HostDied("the C# host process ended in the middle of a reply")
                have += got
        return big

    def _watch(self, w: _Wait) -> None:
        """Deadline / abort checks of a waiting caller (run by the watchdog thread every POLL s);
        the kill is the backstop."""
        now = time.monotonic()
        ctx = w.ctx
        if ctx is None:
            if w.deadline is not None and now > w.deadline:
                self.kill("it did not answer in time")
            return
        if ctx.aborted and not w.abort_sent:
            w.abort_sent = now
            try:
                self.send(_SHORT_HEAD.pack(14, ord("A"), 0, w.rid) + _U32.pack(w.fid) + b"\x01")
            except _HostDied:
                return
        if now > ctx.deadline + GRACE:
            ctx.timed_out = True
            self.kill(f"a call did not stop at its {ctx.timeout:g} s time limit")
        elif w.abort_sent and now > w.abort_sent + GRACE:
            self.kill("an aborted call did not stop")

    # ending -----------------------------------------------------------------------------
    def kill(self, reason: str) -> None:
        """SIGKILL the host (bwrap's --die-with-parent takes the sandbox down with it); the
        reader sees EOF and marks it dead."""
        if not self._kill_reason:
            self._kill_reason = reason
        try:
            self.proc.kill()
        except OSError:
            pass

    def _died(self) -> None:
        """Mark the host dead (idempotent): reap it and say why it ended."""
        with self._dlock:
            if self.alive:
                self._mark_dead()

    def _mark_dead(self) -> None:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        time.sleep(0.02)  # let the log thread catch the last lines
        if self._kill_reason:
            why = f"was killed because {self._kill_reason}"
        elif code < 0 or code > 128:  # bwrap reports a signal as 128 + n
            why = f"was killed by {_signal_name(-code if code < 0 else code - 128)}"
        else:
            why = f"exited with code {code}"
        tail = "; ".join(self.notable) or _tail(self.log)
        self.reason = f"the C# host process {why}" + (f" ({tail[:500]})" if tail else "")
        with self._cond:
            self.alive = False
            self._cond.notify_all()

    def shutdown(self, timeout: float = 1.0) -> None:
        """Close the request pipe (the host exits on EOF); kill it if it lingers."""
        with self._wlock:
            self._files[1].close()
            self.wfd = -1  # later sends fail with EBADF
        with self._dlock:
            if not self.alive:
                return
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.reason = "the C# host process was shut down"
            with self._cond:
                self.alive = False
                self._cond.notify_all()


# -- the runtime --------------------------------------------------------------------------

class MonoRuntime:
    """The process-wide shared Mono host (lazy, restarted when it dies)."""

    kind = "mono"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._host: _Host | None = None
        self._generation = 0
        self._spawner: _Spawner | None = None
        self.heap_mb = HEAP_MB
        self.starts = 0

    def host(self) -> _Host:
        host = self._host
        if host is not None and host.alive:
            return host
        with self._lock:
            host = self._host
            if host is None or not host.alive:
                if self._spawner is None:
                    self._spawner = _Spawner()
                self._generation += 1
                try:
                    host = _Host(self._spawner, self.heap_mb, self._generation)
                except OSError as exc:  # bwrap, prlimit or mono could not be started at all
                    raise _HostDied(f"the C# host could not be started: {exc}") from None
                self._host = host
                self.starts += 1
            return host

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None) -> MonoFunction:
        if memory_mb + HEAP_HEADROOM_MB > self.heap_mb:
            self.heap_mb = memory_mb + HEAP_HEADROOM_MB
            host = self._host
            if host is not None and host.alive and host.inflight == 0:
                host.shutdown()  # restarted with the larger heap cap below
        fn = MonoFunction(self, code, signature, memory_mb, name)
        fn.ensure_loaded()  # fail at load, not at the first call
        fn._fresh = True
        return fn

    def shutdown(self) -> None:
        """Stop the host process (the next call starts a new one)."""
        with self._lock:
            host, self._host = self._host, None
        if host is not None:
            host.shutdown()


#: The process-wide runtime (created on first use; the host starts on the first load).
runtime: ProcessWide[MonoRuntime] = ProcessWide(MonoRuntime, on_exit="shutdown")


# -- argument encoding ----------------------------------------------------------------------

def _bad(sig: Signature, pname: str, ptype: str, value: Any, why: str = "") -> BadArguments:
    shown = f"{type(value).__name__} {value!r}"[:300]
    return BadArguments(f"{sig}: argument {pname!r} expects {ptype}, got {shown}{why}")


def _scalar(kind: str, bounds: tuple[int, int] | None, sig: Signature, pname: str,
            ptype: str) -> Callable[[Any], Any]:
    """Validate/convert one scalar argument (the slow path; the fast path packs directly)."""
    if kind in _INT_RANGES:
        lo, hi = bounds or _INT_RANGES[kind]

        def to_int(value: Any) -> int:
            return int_argument(value, lo, hi, sig, pname, ptype)
        return to_int
    if kind in ("f32", "f64"):
        def to_float(value: Any) -> float:
            if type(value) is float:
                return value
            if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
                raise _bad(sig, pname, ptype, value)
            return float(value)
        return to_float

    def to_bool(value: Any) -> bool:
        if value is True or value is False or type(value).__name__ == "bool_":
            return bool(value)
        raise _bad(sig, pname, ptype, value)
    return to_bool


_NULL_PARTS = [_U32.pack(_NULL)]


def _encoder(kind: str, bounds: tuple[int, int] | None, sig: Signature, pname: str,
             ptype: str) -> Callable[[Any], list[Any]]:
    """The wire form of one argument of any kind, as a list of bytes-like parts."""
    if kind in _SCALAR_CODES:
        conv = _scalar(kind, bounds, sig, pname, ptype)
        pack = struct.Struct("<" + _SCALAR_CODES[kind]).pack
        return lambda value: [pack(conv(value))]
    if kind == "str":
        def enc_str(value: Any) -> list[Any]:
            if value is None:
                return _NULL_PARTS
            if not isinstance(value, str):
                raise _bad(sig, pname, ptype, value)
            data = value.encode("utf-8", "surrogatepass")
            return [_U32.pack(len(data)), data]
        return enc_str
    if kind == "bytes":
        def enc_bytes(value: Any) -> list[Any]:
            if value is None:
                return _NULL_PARTS
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise _bad(sig, pname, ptype, value)
            data = bytes(value)
            return [_U32.pack(len(data)), data]
        return enc_bytes
    if kind in ARRAY_DTYPES:
        return _array_encoder(kind, sig, pname, ptype)

    def enc_json(value: Any) -> list[Any]:
        try:
            data = json.dumps(value, separators=(",", ":"), default=json_default).encode()
        except (TypeError, ValueError) as exc:
            raise _bad(sig, pname, ptype, value, f" (not JSON-serializable: {exc})") from None
        return [_U32.pack(len(data)), data]
    return enc_json


def _array_encoder(kind: str, sig: Signature, pname: str, ptype: str) -> Callable[[Any], list[Any]]:
    import numpy as np

    dtype = np.dtype(ARRAY_DTYPES[kind])

    def bad(value: Any, why: str) -> BadArguments:
        return _bad(sig, pname, ptype, value, why)

    def enc_array(value: Any) -> list[Any]:
        if value is None:
            return _NULL_PARTS
        arr = as_array(value, dtype, bad)
        return [_U32.pack(arr.shape[0]), arr]  # sent as is, not copied
    return enc_array


def _decoder(kind: str) -> Callable[[bytes, int], Any]:
    """Result decoder: (reply, offset) -> value."""
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
            if n == _NULL:
                return None
            arr = np.frombuffer(data, dtype, n, off + 4)
            return arr if isinstance(data, bytearray) else arr.copy()  # a big reply has its own buffer
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


# -- loaded functions ------------------------------------------------------------------------

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
        self._host: _Host | None = None
        self._load_lock = threading.Lock()
        self._fresh = True
        self._n = len(signature.params)
        kinds = [p.kind for p in signature.params]
        self._result = _decoder(signature.result)
        self._encoders = [_encoder(p.kind, p.bounds, signature, p.name, p.type) for p in signature.params]
        if all(k in _SCALAR_CODES for k in kinds):
            self._fast: struct.Struct | None = struct.Struct(
                "<IBIII" + "".join(_SCALAR_CODES[k] for k in kinds))
            self._fast_types = tuple(int if k in _INT_RANGES else float if k in ("f32", "f64") else bool
                                     for k in kinds)
            self._bounded = [(i, p) for i, p in enumerate(signature.params) if p.bounds]
            self._converters = [_scalar(p.kind, p.bounds, signature, p.name, p.type)
                                for p in signature.params]
        else:
            self._fast = None
        unknown = [k for k in [*kinds, signature.result] if k not in KIND_CODES]
        if unknown:
            raise InvocationError(f"{name}: the mono runtime cannot pass values of kind {unknown[0]}")

    # loading ---------------------------------------------------------------------------
    def ensure_loaded(self) -> tuple[_Host, bool]:
        """Load into the current host (starting it if needed); (host, whether this loaded it)."""
        with self._load_lock:
            try:
                host = self.rt.host()
            except _HostDied as exc:
                raise InvocationError(f"{self.name}: the C# host did not start: {exc}") from None
            if self._host is host:
                return host, False
            self._load(host)
            return host, True

    def _load(self, host: _Host) -> None:
        fid = next(_function_ids)
        body = [_U32.pack(fid), _U32.pack(self.memory_mb), _U32.pack(0), _str(self.name),
                bytes([len(self.sig.params)])]
        for p in self.sig.params:
            body += [bytes([KIND_CODES[p.kind]]), _str(p.type)]
        body += [bytes([KIND_CODES[self.sig.result]]), _U32.pack(len(self.code)), self.code]
        payload = b"".join(body)
        rid = next(_request_ids)
        try:
            host.send(struct.pack("<IBI", 5 + len(payload), ord("L"), rid) + payload)
            reply = host.wait(_Wait(rid, None, time.monotonic() + LOAD_TIMEOUT))
        except _HostDied as exc:
            raise InvocationError(f"{self.name}: could not load into the C# host: {exc}") from None
        if reply[5] != ST_OK:
            (n,) = _U32.unpack_from(reply, 10)
            msg = reply[14:14 + n].decode("utf-8", "replace")
            raise InvocationError(f"{self.name}: the C# host could not load the function: {msg}")
        self.fid = fid
        self._host = host

    def close(self) -> None:
        host, self._host = self._host, None
        if host is not None and host.alive:
            try:
                host.send(_SHORT_HEAD.pack(9, ord("U"), 0, self.fid))
            except _HostDied:
                pass

    # the call path -------------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._n:
            self.sig.check_arity(args)
        host = self._host
        if host is None or not host.alive:
            host = self._reload(ctx)
        elif self._fresh:
            self._fresh = False
            ctx.cold = True
        rid = next(_request_ids)
        timeout_ms = max(1, int((ctx.deadline - time.monotonic()) * 1000))
        fast = self._fast
        if fast is not None:
            if tuple(map(type, args)) != self._fast_types or self._bounded:
                args = tuple(conv(a) for conv, a in zip(self._converters, args, strict=True))
            try:
                frame = fast.pack(fast.size - 4, 67, rid, self.fid, timeout_ms, *args)
            except struct.error:
                args = tuple(conv(a) for conv, a in zip(self._converters, args, strict=True))
                frame = fast.pack(fast.size - 4, 67, rid, self.fid, timeout_ms, *args)
            parts: list[Any] = [frame]
        else:
            parts = [b""]
            for enc, a in zip(self._encoders, args, strict=True):
                parts += enc(a)
            size = sum(memoryview(p).nbytes for p in parts)
            parts[0] = _CALL_HEAD.pack(13 + size, 67, rid, self.fid, timeout_ms)
        counted = host
        counted.inflight += 1
        try:
            try:
                host.send(*parts)
            except _HostDied:  # it died before this call: it never ran, so start again once
                host = self._reload(ctx)
                parts[0] = parts[0][:9] + _U32.pack(self.fid) + parts[0][13:]
                host.send(*parts)
            reply = host.wait(_Wait(rid, ctx, None, self.fid))
        except _HostDied as exc:
            self._host = None
            raise self._died(ctx, str(exc)) from None
        finally:
            counted.inflight -= 1
        status = reply[5]
        con = int.from_bytes(reply[6:10], "little")
        if con:
            self._console(reply, con, ctx)
        if status == ST_OK:
            return self._result(reply, 10 + con)
        raise self._failure(status, reply, 10 + con, ctx)

    def _reload(self, ctx: CallContext) -> _Host:
        """(Re)load into the host; the load's time does not count against the time limit."""
        host, loaded = self.ensure_loaded()
        if loaded:
            ctx.cold = True
            ctx.deadline = time.monotonic() + ctx.timeout
            self._fresh = False
        return host

    @staticmethod
    def _console(reply: bytes, n: int, ctx: CallContext) -> None:
        off, end = 10, 10 + n
        while off < end:
            level = reply[off]
            (size,) = _U32.unpack_from(reply, off + 1)
            ctx.log(level, reply[off + 5:off + 5 + size].decode("utf-8", "replace"))
            off += 5 + size

    def _failure(self, status: int, reply: bytes, off: int, ctx: CallContext) -> Exception:
        (n,) = _U32.unpack_from(reply, off)
        msg = reply[off + 4:off + 4 + n].decode("utf-8", "replace") if n != _NULL else ""
        if status == ST_MEMORY:
            self.close()  # statics may hold the memory: the next call gets a fresh AppDomain
        if status == ST_EXC:
            return InvocationError(f"{self.name} threw {msg}")
        if status == ST_TIMEOUT:
            ctx.timed_out = True
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit")
        if status == ST_ABORTED:
            if ctx.aborted:
                return Aborted(f"{self.name}: execution {ctx.id} aborted")
            return InvocationError(f"{self.name}: the call was interrupted: {msg}")
        if status == ST_MEMORY:
            if "memory limit of" in msg:
                return LimitExceeded(f"{self.name}: {msg}")
            return LimitExceeded(f"{self.name}: out of memory ({msg.rstrip('.')}; memory limit "
                                 f"{self.memory_mb} MB, the C# host's heap is capped at "
                                 f"{self.rt.heap_mb} MB)")
        if status == ST_BADARG:
            return BadArguments(f"{self.sig}: {msg}")
        return InvocationError(f"{self.name}: C# host error: {msg}")

    def _died(self, ctx: CallContext, reason: str) -> Exception:
        if ctx.aborted:
            return Aborted(f"{self.name}: execution {ctx.id} aborted ({reason})")
        if ctx.timed_out:
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit "
                                   "(the host process was killed and restarts on the next call)")
        return InvocationError(f"{self.name}: {reason}; it restarts on the next call")


def _str(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U32.pack(len(data)) + data


# -- the bare baseline for benchmarks ----------------------------------------------------------

#: Separate runtimes (own host processes) that raw_baseline started; stopped at exit.
_raw_runtimes: list[MonoRuntime] = []


def raw_baseline(code: bytes, signature: Signature, name: str, args: tuple) -> Callable[[], Any]:
    """The bare host round trip for benchmarks: the call frame for ``name(*args)``, encoded
    once, written straight to the pipe of a host process of its own (the shared host is not
    touched) and its reply read back in one blocking read and decoded (no argument checks, no
    executor, no watchdog, no console handling). The host stops at interpreter exit."""
    rt = MonoRuntime()  # not the process-wide one: its own host process
    _raw_runtimes.append(rt)
    if len(_raw_runtimes) == 1:
        atexit.register(_stop_raw_runtimes)
    fn = rt.load(code, signature, memory_mb=64, name=name)  # starts the host and loads the function
    host = fn._host
    assert host is not None
    rid, timeout_ms = next(_request_ids), 60_000
    if fn._fast is not None:
        frame = fn._fast.pack(fn._fast.size - 4, ord("C"), rid, fn.fid, timeout_ms, *args)
    else:
        parts = [bytes(memoryview(p).cast("B")) for enc, a in zip(fn._encoders, args, strict=True)
                 for p in enc(a)]
        body = b"".join(parts)
        frame = _CALL_HEAD.pack(13 + len(body), ord("C"), rid, fn.fid, timeout_ms) + body
    decode, lock, wfd, rfd = fn._result, threading.Lock(), host.wfd, host.rfd

    def raw() -> Any:
        with lock:
            os.write(wfd, frame)
            reply = os.read(rfd, 1 << 16)
            while len(reply) < 4 or len(reply) < 4 + int.from_bytes(reply[:4], "little"):
                more = os.read(rfd, 1 << 16)
                if not more:
                    raise InvocationError(f"{name}: the baseline's C# host process ended")
                reply += more
        con = int.from_bytes(reply[10:14], "little")
        if reply[9] != ST_OK:
            raise fn._failure(reply[9], reply[4:], 10 + con, CallContext("raw-baseline", 60.0))
        return decode(reply, 14 + con)

    return raw


def _stop_raw_runtimes() -> None:
    for rt in _raw_runtimes:
        rt.shutdown()
