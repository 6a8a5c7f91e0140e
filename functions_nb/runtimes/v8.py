"""V8 runtime: JavaScript bundles (TypeScript/JavaScript cells) in V8 isolates.

Isolation model. All isolates live in one *V8 host process* per kernel (PyPI ``mini-racer``
driven through its C API), one isolate per loaded function version, each with its own heap
limit (``memory_mb``, mini-racer's hard memory limit). The host is a separate process because
V8 aborts its whole process on some out-of-memory paths (a single builtin such as
``new Array(1.3e8).fill(0.5)`` runs past the heap limit before the limit check): that kills
only the host, the call raises ``LimitExceeded`` and the next call starts a new host. The host
keeps its data-segment limit (``RLIMIT_DATA``) at what its isolates may use, each ~32 MB of V8
reservations plus twice its ``memory_mb``, capped at ``FUNCTIONS_NB_V8_HOST_MB`` (default 3/4
of the RAM); it runs with ``oom_score_adj`` 1000 and, when bubblewrap works, in its own
network/PID/IPC namespaces with a read-only file system (/tmp and $HOME hidden): defence in
depth behind V8's own sandbox. Inside
an isolate there is no host API at all: only ECMAScript, ``WebAssembly``, ``Intl``, a
capturing ``console`` and timers (``languages/glue/ts_runtime.js`` installs them and removes
anything host-reaching an embedder might add). Off-heap buffers (``ArrayBuffer``, typed
arrays, ``WebAssembly.Memory``) are refused per allocation beyond ``memory_mb``.

Calling convention. One framed request per call over a pipe: the JavaScript text
``__fnb_call(id, ...args)`` with arguments encoded as literals (numbers, booleans, JSON strings;
bytes and ``Float64Array`` as base64; other values as JSON text parsed in the isolate). The
answer is a raw number/boolean when nothing was logged, else one JSON envelope with the result
and the console lines. Promises are awaited in the host; the result arrives when they settle.
Time limits: the caller's thread polls its deadline and abort flag every 10 ms and sends a
cancel (V8 ``TerminateExecution``; an isolate waiting on a promise is discarded instead). After
a timeout, abort or out-of-memory the isolate is replaced by a fresh one on the next call
(cold). Errors map back to cell lines through the esbuild source map.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import CONSOLE_MAX_BYTES, CONSOLE_MAX_LINES
from ..errors import (
    Aborted,
    BadArguments,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
    ToolchainMissing,
)
from ..models import Signature
from ..process_wide import ProcessWide
from .base import CallContext, ModuleCache, json_default

PKG_ROOT = Path(__file__).resolve().parent.parent.parent
PRELUDE_PATH = PKG_ROOT / "functions_nb" / "languages" / "glue" / "ts_runtime.js"
ARTIFACT_FORMAT = "fnb-v8/1"
BUNDLE_URL = "fnb-bundle.js"
TICK = 0.01
#: Seconds the cell's top-level code (and the runtime prelude) may run when an isolate starts.
INIT_TIMEOUT = 5.0
#: After a cancel, seconds until the host counts as wedged and is killed.
CANCEL_GRACE = 2.0
HOST_START_TIMEOUT = 30.0
#: Pipe read size (below malloc's mmap threshold, reused).
READ_CHUNK = 1 << 16
#: Data-segment budget per isolate beyond twice its memory limit (V8 reserves ~11 MB each).
ISOLATE_OVERHEAD_MB = 32
HOST_SLACK_MB = 256

# Frames: requests (payload length, call id, isolate id, op), responses (length, call id, type).
_REQ = struct.Struct("<IIIB")
_RESP = struct.Struct("<IIB")
_DOUBLE = struct.Struct("<d")
_INT64 = struct.Struct("<q")
OP_NEW, OP_EVAL, OP_CANCEL, OP_FREE = 1, 2, 3, 4
# Response types: mini-racer's value types, then the host's own.
T_NULL, T_BOOL, T_INT, T_DOUBLE, T_STR, T_UNDEF = 1, 2, 3, 4, 5, 11
T_EXC, T_PARSE, T_OOM, T_TIMEOUT, T_TERMINATED = 200, 201, 202, 203, 204
T_READY, T_GONE, T_HOST_DIED = 250, 252, 253
# Host callback ids above 2**32 (below: call ids): kind << 40 | isolate id.
_NOTIFY, _TAKE, _SYNC = 1, 2, 3

#: Result/parameter kinds -> the letters the prelude's decoder and encoder use.
_LETTERS = {"f64": "n", "f32": "n", "i32": "n", "u32": "n", "bool": "z", "str": "s",
            "bytes": "b", "f64[]": "F", "json": "j", "i64": "i", "u64": "i", "unit": "u"}


# ===================================================================================
# The host process (runs ``host_main``; only the standard library and mini-racer)
# ===================================================================================

class _HostServer:
    """Serves framed requests: creates isolates, starts evaluations, cancels, frees."""

    def __init__(self, rfd: int, wfd: int, cap_mb: int = 0) -> None:
        from py_mini_racer import init_mini_racer
        from py_mini_racer._dll import MR_CALLBACK

        self.dll = init_mini_racer(ignore_duplicate_init=True)
        self.callback = MR_CALLBACK(self._on_result)
        # The first context reserves V8's process-wide ranges (~0.5 GB of address space counted
        # as data); keep one alive so that the data limit is measured after them.
        self._pin = self.dll.mr_init_context(self.callback)
        self.cap_mb = cap_mb
        self.base_mb = _vm_data_mb()
        if cap_mb > 0:
            resource.setrlimit(resource.RLIMIT_DATA, (cap_mb << 20, cap_mb << 20))
        self.budgets: dict[int, int] = {}          # isolate id -> its share of the data limit
        self.rfd, self.wfd = rfd, wfd
        self.lock = threading.Lock()
        self.wlock = threading.Lock()
        self.ctxs: dict[int, int] = {}             # isolate id -> mini-racer context id
        self.takes: dict[int, Any] = {}            # isolate id -> handle of "__fnb_take()"
        self.calls: dict[int, list] = {}           # call id -> [isolate, task id, code handle]
        self.waiting: dict[int, set[int]] = {}     # isolate id -> calls awaiting a promise
        self.sync: dict[int, list] = {}            # setup evaluations: id -> [event, raw]

    # plumbing ------------------------------------------------------------------
    def _budget(self, iso: int, memory_mb: int | None) -> None:
        """Keep the process's data limit at what its isolates may use (heap and buffers of
        each, plus their fixed reservations), below the cap: a backstop, not the limit."""
        with self.lock:
            if memory_mb is None:
                self.budgets.pop(iso, None)
            else:
                self.budgets[iso] = ISOLATE_OVERHEAD_MB + 2 * memory_mb
            total = self.base_mb + HOST_SLACK_MB + sum(self.budgets.values())
        if self.cap_mb > 0:  # the soft limit moves; the hard limit is the cap
            resource.setrlimit(resource.RLIMIT_DATA, (min(total, self.cap_mb) << 20, self.cap_mb << 20))

    def send(self, call_id: int, typ: int, payload: bytes = b"") -> None:
        data = memoryview(_RESP.pack(len(payload), call_id, typ) + payload)
        with self.wlock:
            try:
                while data:
                    data = data[os.write(self.wfd, data):]
            except OSError:
                os._exit(0)  # the parent is gone

    def _frames(self) -> Any:
        """Yield (call id, isolate id, op, payload) per request."""
        buf = bytearray()
        size = _REQ.size
        chunk = memoryview(bytearray(READ_CHUNK))
        reader = open(self.rfd, "rb", buffering=0, closefd=False)  # noqa: SIM115
        while True:
            got = reader.readinto(chunk)  # no per-read allocation
            if not got:
                os._exit(0)  # the parent closed the pipe
            buf += chunk[:got]
            off = 0
            while len(buf) - off >= size:
                n, call_id, iso, op = _REQ.unpack_from(buf, off)
                if len(buf) - off - size < n:
                    break
                yield call_id, iso, op, bytes(buf[off + size:off + size + n])
                off += size + n
            del buf[:off]

    def _string(self, ctx: int, text: bytes) -> Any:
        return self.dll.mr_alloc_string_val(ctx, text, len(text), T_STR)

    @staticmethod
    def _convert(raw: Any) -> tuple[int, bytes]:
        c = raw.contents
        typ = c.type
        if typ == T_DOUBLE:
            return typ, _DOUBLE.pack(c.value.double_val)
        if typ == T_INT:
            return typ, _INT64.pack(c.value.int_val)
        if typ == T_BOOL:
            return typ, b"\x01" if c.value.int_val == 1 else b"\x00"
        if typ == T_STR or typ >= 200:
            return typ, c.value.bytes_val[:c.len] if c.len else b""
        return typ, b""

    # callbacks from the isolates' threads ---------------------------------------------
    def _on_result(self, cb_id: int, raw: Any) -> None:
        kind, iso = cb_id >> 40, cb_id & 0xFFFFFFFFFF
        if kind == 0:
            with self.lock:
                entry = self.calls.pop(cb_id, None)
            if entry is None:
                return
            ctx = self.ctxs.get(entry[0], 0)
            typ, payload = self._convert(raw)
            self.dll.mr_free_value(ctx, raw)
            self.dll.mr_free_value(ctx, entry[2])
            if typ == T_STR and payload == b"P":  # a promise: __fnb_take() delivers it later
                with self.lock:
                    if entry[0] in self.ctxs:
                        self.waiting.setdefault(entry[0], set()).add(cb_id)
                        return
                self.send(cb_id, T_TERMINATED, b"isolate reset")
                return
            self.send(cb_id, typ, payload)
        elif kind == _NOTIFY:
            self.dll.mr_free_value(self.ctxs.get(iso, 0), raw)
            ctx, take = self.ctxs.get(iso), self.takes.get(iso)
            if ctx is not None and take is not None:
                self.dll.mr_eval(ctx, take, (_TAKE << 40) | iso)
        elif kind == _TAKE:
            typ, payload = self._convert(raw)
            self.dll.mr_free_value(self.ctxs.get(iso, 0), raw)
            if typ != T_STR:
                return
            head, _, envelope = payload.partition(b"\n")
            call_id = int(head)
            with self.lock:
                waiting = self.waiting.get(iso, set())
                if call_id not in waiting:
                    return
                waiting.discard(call_id)
            self.send(call_id, T_STR, envelope)
        elif kind == _SYNC:
            slot = self.sync.get(cb_id)
            if slot is not None:
                slot[1] = raw
                slot[0].set()

    # requests -------------------------------------------------------------------------
    def serve(self) -> None:
        for call_id, iso, op, payload in self._frames():
            try:
                if op == OP_EVAL:
                    self._eval(call_id, iso, payload)
                elif op == OP_CANCEL:
                    self._cancel(call_id, iso)
                elif op == OP_NEW:
                    threading.Thread(target=self._new, args=(call_id, iso, payload), daemon=True).start()
                elif op == OP_FREE:
                    self._free(iso)
            except Exception as exc:  # noqa: BLE001 - answer the request, keep serving
                with self.lock:
                    self.calls.pop(call_id, None)
                self.send(call_id, T_EXC, f"V8 host error: {exc!r}".encode())

    def _eval(self, call_id: int, iso: int, code: bytes) -> None:
        ctx = self.ctxs.get(iso)
        if ctx is None:
            self.send(call_id, T_GONE, b"no such isolate")
            return
        handle = self._string(ctx, code)
        entry = [iso, 0, handle]
        with self.lock:
            self.calls[call_id] = entry
        entry[1] = self.dll.mr_eval(ctx, handle, call_id)

    def _cancel(self, call_id: int, iso: int) -> None:
        with self.lock:
            entry = self.calls.get(call_id)
            pending = call_id in self.waiting.get(iso, ())
        if entry is not None and entry[0] in self.ctxs:
            self.dll.mr_cancel_task(self.ctxs[entry[0]], entry[1])
        elif pending:  # code after an await: only discarding the isolate stops it
            self._free(iso)

    def _free(self, iso: int) -> None:
        with self.lock:
            ctx = self.ctxs.pop(iso, None)
            pending = self.waiting.pop(iso, set())
            self.takes.pop(iso, None)
        if ctx is None:
            return
        for call_id in pending:
            self.send(call_id, T_TERMINATED, b"isolate reset")
        self.dll.mr_free_context(ctx)
        self._budget(iso, None)
        with self.lock:
            left = [cid for cid, entry in self.calls.items() if entry[0] == iso]
            for cid in left:
                del self.calls[cid]
        for cid in left:
            self.send(cid, T_TERMINATED, b"isolate reset")

    def _sync_eval(self, ctx: int, iso: int, code: bytes, timeout: float) -> Any:
        """Evaluate during set-up; returns the raw result handle (the caller frees it)."""
        key = (_SYNC << 40) | iso
        slot: list = [threading.Event(), None]
        self.sync[key] = slot
        handle = self._string(ctx, code)
        try:
            task = self.dll.mr_eval(ctx, handle, key)
            if not slot[0].wait(timeout):
                self.dll.mr_cancel_task(ctx, task)
                if not slot[0].wait(CANCEL_GRACE):
                    raise TimeoutError("the isolate did not stop")
                self.dll.mr_free_value(ctx, slot[1])
                raise TimeoutError(f"the cell's top-level code did not finish within {timeout:g} s")
            return slot[1]
        finally:
            self.sync.pop(key, None)
            self.dll.mr_free_value(ctx, handle)

    def _new(self, call_id: int, iso: int, payload: bytes) -> None:
        try:
            self._setup(call_id, iso, payload)
        except Exception as exc:  # noqa: BLE001 - always answer, or the caller waits in vain
            self._free(iso)
            self._budget(iso, None)
            self.send(call_id, T_EXC, f"setting up the isolate failed: {exc!r}".encode())

    def _setup(self, call_id: int, iso: int, payload: bytes) -> None:
        spec = json.loads(payload)
        dll = self.dll
        self._budget(iso, int(spec["limit"]) >> 20)
        ctx = dll.mr_init_context(self.callback)
        with self.lock:
            self.ctxs[iso] = ctx
        try:
            dll.mr_set_hard_memory_limit(ctx, int(spec["limit"]))
            glob = self._sync_eval(ctx, iso, b"globalThis", INIT_TIMEOUT)
            key = self._string(ctx, b"__fnb_notify")
            notify = dll.mr_make_js_callback(ctx, (_NOTIFY << 40) | iso)
            for handle in (dll.mr_set_object_item(ctx, glob, key, notify), glob, key, notify):
                dll.mr_free_value(ctx, handle)
            with self.lock:
                self.takes[iso] = self._string(ctx, b"__fnb_take()")
            for code in spec["codes"]:
                raw = self._sync_eval(ctx, iso, code.encode(), INIT_TIMEOUT)
                typ, text = self._convert(raw)
                dll.mr_free_value(ctx, raw)
                if typ >= 200:
                    self._free(iso)
                    self.send(call_id, typ, text)
                    return
        except TimeoutError as exc:
            self._free(iso)
            self.send(call_id, T_TERMINATED, str(exc).encode())
            return
        self.send(call_id, T_READY)


def host_main(data_mb: int) -> None:
    """Entry point of the host process: requests on fd 0, responses on (a copy of) fd 1."""
    wfd = os.dup(1)
    os.dup2(2, 1)  # stray output (V8 diagnostics) goes to stderr, never into the protocol
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    server = _HostServer(0, wfd, data_mb)
    version = server.dll.mr_v8_version()
    server.send(0, T_READY, version if isinstance(version, bytes) else b"")
    server.serve()


def _vm_data_mb() -> int:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    m = re.search(r"VmData:\s+(\d+) kB", status)
    return int(m.group(1)) >> 10 if m else 0


_BOOTSTRAP = """import sys, types
root = sys.argv[1]
for name, sub in (("functions_nb", ""), ("functions_nb.runtimes", "/runtimes")):
    module = types.ModuleType(name)
    module.__path__ = [root + "/functions_nb" + sub]
    sys.modules[name] = module
from functions_nb.runtimes import v8
v8.host_main(int(sys.argv[2]))
"""


# ===================================================================================
# The parent side
# ===================================================================================

class _HostDied(Exception):
    pass


class _Waiter:
    __slots__ = ("frame",)

    def __init__(self) -> None:
        self.frame: tuple[int, bytes] | None = None


class _Host:
    """One host process and the framed pipe to it. Any waiting caller may read the pipe
    (leader/follower): the reader delivers other callers' frames and wakes them."""

    def __init__(self, data_mb: int, sandbox: list[str] | None) -> None:
        self.errlog = tempfile.TemporaryFile(mode="a+b")  # O_APPEND: the host's writes go to the end
        cmd = [sys.executable, "-I", "-c", _BOOTSTRAP, str(PKG_ROOT), str(data_mb)]
        self.sandboxed = bool(sandbox)
        self.proc = subprocess.Popen((sandbox or []) + cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errlog, close_fds=True,
                                     env={"LC_ALL": "C.UTF-8"})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.alive = True
        self.waiters: dict[int, _Waiter] = {}
        self._ids = itertools.count(1)
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._followers = 0
        self._buf = bytearray()
        self._chunk = memoryview(bytearray(READ_CHUNK))
        self._rfile = open(self.rfd, "rb", buffering=0, closefd=False)  # noqa: SIM115
        ready = _Waiter()
        self.waiters[0] = ready
        deadline = time.monotonic() + HOST_START_TIMEOUT
        while ready.frame is None and self.alive:
            if time.monotonic() > deadline:
                self.kill("the V8 host did not start")
                break
            if select.select([self.rfd], [], [], 0.1)[0]:
                self._read()
        if ready.frame is None or ready.frame[0] != T_READY:
            raise ToolchainMissing(f"the V8 host process did not start: {self.stderr_tail()}")
        self.v8_version = ready.frame[1].decode(errors="replace")

    def new_id(self) -> int:
        return next(self._ids) & 0xFFFFFFFF or next(self._ids)

    def send(self, call_id: int, iso: int, op: int, payload: bytes = b"") -> None:
        data = memoryview(_REQ.pack(len(payload), call_id, iso, op) + payload)
        with self._wlock:
            if not self.alive:
                raise _HostDied("the V8 host is not running")
            try:
                while data:
                    data = data[os.write(self.wfd, data):]
            except OSError:
                self._died()
                raise _HostDied("the V8 host exited") from None

    def call(self, call_id: int, iso: int, op: int, payload: bytes,
             ctx: CallContext | None) -> tuple[int, bytes]:
        """Send a request and wait for its answer; ``ctx`` gives the deadline and abort flag."""
        waiter = _Waiter()
        self.waiters[call_id] = waiter
        try:
            self.send(call_id, iso, op, payload)
        except _HostDied:
            self.waiters.pop(call_id, None)
            return T_HOST_DIED, self.stderr_tail().encode()
        limit = time.monotonic() + INIT_TIMEOUT + HOST_START_TIMEOUT if ctx is None else None
        cancelled = 0.0
        while waiter.frame is None:
            if self._rlock.acquire(blocking=False):
                try:
                    while waiter.frame is None:
                        cancelled = self._check(call_id, iso, ctx, cancelled, limit)
                        if select.select([self.rfd], [], [], TICK)[0]:
                            self._read()
                finally:
                    self._rlock.release()
                    if self._followers:
                        with self._cond:
                            self._cond.notify_all()
            else:
                with self._cond:
                    self._followers += 1
                    if waiter.frame is None:
                        self._cond.wait(TICK)
                    self._followers -= 1
                cancelled = self._check(call_id, iso, ctx, cancelled, limit)
        return waiter.frame

    def _check(self, call_id: int, iso: int, ctx: CallContext | None, cancelled: float,
               limit: float | None) -> float:
        now = time.monotonic()
        if ctx is None:
            if limit is not None and now > limit:
                self.kill("the V8 host did not answer")
            return cancelled
        if not cancelled:
            if ctx.aborted or now >= ctx.deadline:
                if not ctx.aborted:
                    ctx.timed_out = True
                try:
                    self.send(call_id, iso, OP_CANCEL)
                except _HostDied:
                    pass
                return now
            return 0.0
        if now - cancelled > CANCEL_GRACE:
            self.kill("the V8 host did not stop a call")
        return cancelled

    def _read(self) -> None:
        """Read what is available and deliver complete frames."""
        try:
            got = self._rfile.readinto(self._chunk)  # no per-read allocation
        except OSError:
            got = 0
        if not got:
            self._died()
            return
        buf = self._buf
        buf += self._chunk[:got]
        off, size, woke = 0, _RESP.size, False
        while len(buf) - off >= size:
            n, call_id, typ = _RESP.unpack_from(buf, off)
            end = off + size + n
            if end > len(buf):
                break
            waiter = self.waiters.pop(call_id, None)
            if waiter is not None:
                waiter.frame = (typ, bytes(buf[off + size:end]))
                woke = True
            off = end
        del buf[:off]
        if woke and self._followers:
            with self._cond:
                self._cond.notify_all()

    def _died(self) -> None:
        if not self.alive and not self.waiters:
            return
        self.alive = False
        tail = self.stderr_tail()
        status = self._reap()
        if status is not None:
            tail += f"\nexit status {status}"
        for call_id in list(self.waiters):
            waiter = self.waiters.pop(call_id, None)
            if waiter is not None and waiter.frame is None:
                waiter.frame = (T_HOST_DIED, tail.encode())
        with self._cond:
            self._cond.notify_all()

    def _reap(self) -> int | None:
        """Wait (up to 1 s) for the host to exit (it has then written its last words)."""
        try:
            return self.proc.wait(1)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, why: str = "") -> None:
        if why:
            self.errlog.write(f"\n[functions-nb] {why}; killed\n".encode())
        try:
            self.proc.kill()
        except OSError:
            pass
        self._died()

    def stderr_tail(self, limit: int = 1 << 16) -> str:
        try:
            self.errlog.flush()
            size = self.errlog.seek(0, os.SEEK_END)
            self.errlog.seek(max(0, size - limit))
            return self.errlog.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        self.alive = False
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            self.proc.wait(1)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _sandbox_prefix() -> list[str] | None:
    """bubblewrap arguments: no network, own PID/IPC/UTS namespaces, read-only file system."""
    exe = shutil.which("bwrap")
    if exe is None or os.environ.get("FUNCTIONS_NB_V8_SANDBOX", "1") == "0":
        return None
    needed = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.executable, PKG_ROOT)]
    spec = _mini_racer_dir()
    if spec is not None:
        needed.append(spec)
    args = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "LC_ALL", "C.UTF-8",
            "--chdir", "/"]
    for hidden in (Path("/tmp"), Path.home()):
        hidden = hidden.resolve()
        if hidden != Path("/") and not any(p == hidden or hidden in p.parents for p in needed):
            args += ["--tmpfs", str(hidden)]
    return args + ["--"]


def _mini_racer_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("py_mini_racer")
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent


def _default_data_mb() -> int:
    """The cap on the host's data limit: ``$FUNCTIONS_NB_V8_HOST_MB`` or 3/4 of the RAM."""
    env = os.environ.get("FUNCTIONS_NB_V8_HOST_MB")
    if env:
        return int(env)
    try:
        ram_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    except (ValueError, OSError):
        ram_mb = 16384
    return max(1024, ram_mb * 3 // 4)


class V8Runtime:
    """Process-wide: the host process (started on first load, restarted after it dies)."""

    kind = "v8"

    def __init__(self, data_mb: int | None = None, sandbox: bool | None = None) -> None:
        if _mini_racer_dir() is None:
            raise ToolchainMissing("mini-racer is needed to run TypeScript/JavaScript functions: "
                                   "pip install mini-racer")
        self.data_mb = _default_data_mb() if data_mb is None else data_mb
        self._want_sandbox = sandbox
        self.sandboxed = False
        self.restarts = -1
        self.prelude = PRELUDE_PATH.read_text()
        self._host: _Host | None = None
        self._lock = threading.Lock()
        self._iso_ids = itertools.count(1)

    def host(self) -> _Host:
        host = self._host
        if host is not None and host.alive:
            return host
        with self._lock:
            host = self._host
            if host is None or not host.alive:
                if host is not None:
                    host.close()
                host = self._host = self._start()
                self.restarts += 1
            return host

    def _start(self) -> _Host:
        prefix = _sandbox_prefix() if self._want_sandbox is not False else None
        if prefix is not None:
            try:
                host = _Host(self.data_mb, prefix)
                self.sandboxed = True
                return host
            except ToolchainMissing:
                if self._want_sandbox:
                    raise
                self._want_sandbox = False  # bubblewrap does not work here: run without it
        self.sandboxed = False
        return _Host(self.data_mb, None)

    def new_isolate_id(self) -> int:
        return next(self._iso_ids)

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None) -> V8Function:
        return V8Function(self, code, signature, memory_mb, name)

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None

    def _after_fork(self) -> None:
        """In a forked child the parent's host is not ours: forget it (and its pipe ends)."""
        host, self._host = self._host, None
        self._lock = threading.Lock()
        if host is not None:
            host.alive = False
            for fd in (host.wfd, host.rfd):
                try:
                    os.close(fd)
                except OSError:
                    pass


#: The process-wide runtime (created on first use).
runtime: ProcessWide[V8Runtime] = ProcessWide(V8Runtime)


def _forget_after_fork() -> None:
    rt = runtime.peek()
    if rt is not None:
        rt._after_fork()


os.register_at_fork(after_in_child=_forget_after_fork)


# -- argument encoders: Python value -> JavaScript literal ---------------------------------

_NONFINITE = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _encoder(kind: str, sig: Signature, pname: str, ptype: str) -> Callable[[Any], str]:
    def bad(value: Any, why: str = "") -> BadArguments:
        return BadArguments(f"{sig}: argument {pname!r} expects {ptype}, got {_describe(value)}{why}")

    if kind in ("f64", "f32", "i32", "u32"):
        def enc_number(value: Any) -> str:
            t = type(value)
            if t is int:
                return str(value) if -(2**53) <= value <= 2**53 else enc_number(float(value))
            if t is float:
                return repr(value) if value - value == 0 else _NONFINITE[repr(value)]
            if t is bool or type(value).__name__ == "bool_" or not hasattr(value, "__float__"):
                raise bad(value)
            try:
                return enc_number(float(value))
            except (TypeError, ValueError, OverflowError):
                raise bad(value) from None
        return enc_number
    if kind == "bool":
        def enc_bool(value: Any) -> str:
            if value is True or value is False or type(value).__name__ == "bool_":
                return "true" if value else "false"
            raise bad(value)
        return enc_bool
    if kind == "str":
        def enc_str(value: Any) -> str:
            if type(value) is not str and not isinstance(value, str):
                raise bad(value)
            return json.dumps(value)
        return enc_str
    if kind == "bytes":
        def enc_bytes(value: Any) -> str:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise bad(value)
            return f'"{base64.b64encode(value).decode()}"'
        return enc_bytes
    if kind in ("i64", "u64"):
        def enc_bigint(value: Any) -> str:
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise bad(value)
            return f"{value.__index__()}n"
        return enc_bigint
    if kind == "f64[]":
        def enc_f64_array(value: Any) -> str:
            import numpy as np

            if isinstance(value, (str, bytes, dict)) or value is None:
                raise bad(value)
            try:
                array = np.asarray(value, dtype="<f8")
            except (TypeError, ValueError) as exc:
                raise bad(value, f" ({exc})") from None
            if array.ndim != 1:
                raise bad(value, f" (a 1-D array is needed, this one has shape {array.shape})")
            return f'"{base64.b64encode(array.tobytes()).decode()}"'
        return enc_f64_array

    def enc_json(value: Any) -> str:
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=json_default)
        except (TypeError, ValueError) as exc:
            raise bad(value, f" (not JSON-serializable: {exc})") from None
        return json.dumps(text)
    return enc_json


# -- source maps -------------------------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def decode_mappings(mappings: str) -> list[list[tuple[int, int]]]:
    """Source map v3 ``mappings`` -> per generated line, [(generated column, original line)]
    (0-based)."""
    lines: list[list[tuple[int, int]]] = []
    src = oline = ocol = 0
    for text in mappings.split(";"):
        segments = []
        gcol = 0
        for seg in text.split(","):
            if not seg:
                continue
            values, shift, value = [], 0, 0
            for ch in seg:
                digit = _B64[ch]
                value += (digit & 31) << shift
                if digit & 32:
                    shift += 5
                else:
                    values.append(-(value >> 1) if value & 1 else value >> 1)
                    shift = value = 0
            gcol += values[0]
            if len(values) >= 4:
                src += values[1]
                oline += values[2]
                ocol += values[3]
                segments.append((gcol, oline))
        lines.append(segments)
    return lines


# -- loaded functions --------------------------------------------------------------------

class _Isolate:
    __slots__ = ("id", "host", "dead")

    def __init__(self, iso_id: int, host: _Host) -> None:
        self.id = iso_id
        self.host = host
        self.dead = False


class V8Function:
    """One function version: its isolate in the host (created at load, replaced after a
    timeout, abort or out-of-memory) and the call path."""

    def __init__(self, rt: V8Runtime, code: bytes, signature: Signature, memory_mb: int,
                 name: str) -> None:
        try:
            artifact = json.loads(code)
        except ValueError:
            artifact = None
        if not isinstance(artifact, dict) or artifact.get("format") != ARTIFACT_FORMAT:
            raise InvocationError(f"{name}: not a V8 bundle of format {ARTIFACT_FORMAT}")
        self.rt = rt
        self.sig = signature
        self.name = name
        self.memory_mb = int(memory_mb)
        self._map = artifact.get("map") or {}
        self._lines: list[list[tuple[int, int]]] | None = None
        self._rk = _LETTERS.get(signature.result, "j")
        self._nparams = len(signature.params)
        self._encoders = [_encoder(p.kind, signature, p.name, p.type) for p in signature.params]
        config = {"name": name, "kinds": "".join(_LETTERS.get(p.kind, "j") for p in signature.params),
                  "result": self._rk, "limit": self.memory_mb << 20, "limitMb": self.memory_mb,
                  "maxLines": CONSOLE_MAX_LINES, "maxBytes": CONSOLE_MAX_BYTES}
        prelude = rt.prelude.replace("/*FNB_CONFIG*/", json.dumps(config))
        bundle = artifact["js"] + f"\n//# sourceURL={BUNDLE_URL}\n"
        self._setup = json.dumps({"limit": self.memory_mb << 20, "codes": [
            prelude + "\n//# sourceURL=fnb-runtime.js\n", bundle, "__fnb_bind()"]}).encode()
        self._lock = threading.Lock()
        self._iso: _Isolate | None = None
        self._isolate()  # fail at load (top-level errors), not at the first call
        self._fresh = True  # the first call after loading counts as cold

    # isolates -------------------------------------------------------------------------
    def _isolate(self) -> _Isolate:
        with self._lock:
            iso = self._iso
            if iso is not None and not iso.dead and iso.host.alive:
                return iso
            host = self.rt.host()
            iso = _Isolate(self.rt.new_isolate_id(), host)
            typ, payload = host.call(host.new_id(), iso.id, OP_NEW, self._setup, None)
            if typ != T_READY:
                raise self._setup_error(typ, payload)
            self._iso = iso
            return iso

    def _discard(self, iso: _Isolate) -> None:
        if iso.dead:
            return
        iso.dead = True
        if iso.host.alive:
            try:
                iso.host.send(0, iso.id, OP_FREE)
            except _HostDied:
                pass

    def close(self) -> None:
        iso, self._iso = self._iso, None
        if iso is not None:
            self._discard(iso)

    # the call path --------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._nparams:
            self.sig.check_arity(args)
        literals = ",".join([enc(a) for enc, a in zip(self._encoders, args, strict=True)])
        iso = self._iso
        if iso is None or iso.dead or not iso.host.alive:
            iso = self._isolate()
            ctx.cold = True
        elif self._fresh:
            self._fresh = False
            ctx.cold = True
        host = iso.host
        call_id = host.new_id()
        typ, payload = host.call(call_id, iso.id, OP_EVAL,
                                 f"__fnb_call({call_id},{literals})".encode(), ctx)
        rk = self._rk
        if typ == T_STR:
            return self._envelope(payload, ctx)
        if typ == T_DOUBLE:
            return _DOUBLE.unpack(payload)[0]
        if typ == T_INT:
            value = _INT64.unpack(payload)[0]
            return float(value) if rk == "n" else value
        if typ == T_BOOL:
            return payload == b"\x01"
        if typ == T_UNDEF or typ == T_NULL:
            return None
        raise self._failure(iso, typ, payload, ctx)

    def _envelope(self, payload: bytes, ctx: CallContext) -> Any:
        env = json.loads(payload)
        lines = env.get("c")
        if lines:
            log = ctx.log
            for i in range(0, len(lines) - 1, 2):
                text = lines[i + 1]
                log(lines[i], self._clean_stack(text) if BUNDLE_URL in text else text)
        if env.get("d"):
            ctx.dropped += env["d"]
        if "e" in env:
            raise self._user_error(env["e"])
        rk = self._rk
        if "b" in env:
            data = base64.b64decode(env["b"])
            if rk == "F":
                import numpy as np

                return np.frombuffer(data, dtype="<f8").copy()
            return data
        if "x" in env:
            return int(env["x"]) if rk == "i" else float(env["x"])
        value = env.get("v")
        if rk == "n" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if rk == "F" and isinstance(value, list):
            import numpy as np

            return np.asarray(value, dtype="<f8")
        return value

    # errors ---------------------------------------------------------------------------
    def _cell_line(self, text: str) -> int | None:
        """The first stack frame (or location) in the bundle, mapped to its cell line."""
        for m in re.finditer(rf"{re.escape(BUNDLE_URL)}:(\d+)(?::(\d+))?", text):
            line = self._map_line(int(m.group(1)), int(m.group(2) or 1))
            if line is not None:
                return line
        return None

    def _clean_stack(self, text: str) -> str:
        """Stack traces in console output: frames in the bundle become cell lines, the
        runtime's own frames are dropped."""
        def cell(m: re.Match[str]) -> str:
            line = self._map_line(int(m.group(1)), int(m.group(2)))
            return f"cell line {line}" if line else m.group(0)

        kept = [ln for ln in text.split("\n")
                if "fnb-runtime.js" not in ln and not re.match(r"\s*at <anonymous>:\d+:\d+$", ln)]
        return re.sub(rf"{re.escape(BUNDLE_URL)}:(\d+):(\d+)", cell, "\n".join(kept))

    def _map_line(self, line: int, column: int) -> int | None:
        if self._lines is None:
            self._lines = decode_mappings(self._map.get("mappings", ""))
        if not 0 < line <= len(self._lines):
            return None
        segments = self._lines[line - 1]
        if not segments:
            return None
        best = segments[0]
        for seg in segments:
            if seg[0] > column - 1:
                break
            best = seg
        return best[1] + 1

    def _user_error(self, info: dict[str, str]) -> Exception:
        name, message = info.get("n", ""), info.get("m", "")
        line = self._cell_line(info.get("s", ""))
        where = f" at cell line {line}" if line else ""
        text = f"{name}: {message}" if name else message
        if message.startswith("fnb-memory: "):
            return LimitExceeded(f"{self.name}: {message.removeprefix('fnb-memory: ')}{where}")
        if name == "RangeError" and "allocation failed" in message:
            return LimitExceeded(f"{self.name}: {text}{where} (memory limit {self.memory_mb} MB)")
        return InvocationError(f"{self.name}: {text}{where}")

    def _failure(self, iso: _Isolate, typ: int, payload: bytes, ctx: CallContext) -> Exception:
        """The call did not produce a result: the isolate is replaced on the next call."""
        self._discard(iso)
        text = payload.decode(errors="replace").strip()
        if ctx.aborted:
            return Aborted(f"{self.name}: execution {ctx.id} aborted")
        if ctx.timed_out and typ in (T_TERMINATED, T_TIMEOUT, T_HOST_DIED, T_GONE):
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit")
        if typ == T_OOM:
            return LimitExceeded(f"{self.name}: memory limit of {self.memory_mb} MB exceeded "
                                 "(V8 heap)")
        if typ == T_HOST_DIED:
            return self._host_died(text)
        if typ in (T_EXC, T_PARSE):
            line = self._cell_line(text)
            first = text.splitlines()[0] if text else "JavaScript error"
            return InvocationError(f"{self.name}: {first}" + (f" at cell line {line}" if line else ""))
        return InvocationError(f"{self.name}: execution stopped ({text or typ})")

    def _host_died(self, text: str) -> Exception:
        summary = [ln.strip("# ").strip() for ln in text.splitlines()
                   if re.search(r"fatal|out of memory|mmap error|error|killed", ln, re.I)
                   and not ln.lstrip().startswith("/")]
        why = summary[-1] if summary else (text.splitlines()[-1].strip() if text else "no output")
        if re.search(r"out of memory|allocation failed|mmap error|cannot allocate|MemoryError", text, re.I):
            return LimitExceeded(f"{self.name}: the V8 host ran out of memory during this call "
                                 f"({why}; memory limit {self.memory_mb} MB); it is restarted for "
                                 "the next call")
        return InvocationError(f"{self.name}: the V8 host process exited during this call ({why}); "
                               "it is restarted for the next call")

    def _setup_error(self, typ: int, payload: bytes) -> Exception:
        text = payload.decode(errors="replace").strip()
        if typ == T_OOM:
            return LimitExceeded(f"{self.name}: the cell's top-level code exceeded the memory "
                                 f"limit of {self.memory_mb} MB")
        if typ == T_HOST_DIED:
            return self._host_died(text)
        if typ in (T_EXC, T_PARSE):
            line = self._cell_line(text)
            first = re.sub(r"^\S+?:\d+: ", "", text.splitlines()[0]) if text else "error"
            return InvocationError(f"{self.name}: the cell's top-level code failed: {first}"
                                   + (f" at cell line {line}" if line else ""))
        return InvocationError(f"{self.name}: could not start its isolate: {text or typ}")


def raw_baseline(code: bytes, signature: Signature, name: str, args: tuple) -> Callable[[], Any]:
    """The bare engine call for benchmarks: ``MiniRacer().call(name, *args)`` on the same
    bundle, in this process (no host process, no limits, no console capture)."""
    from py_mini_racer import MiniRacer

    racer = MiniRacer()
    racer.eval(json.loads(code)["js"])
    racer.eval(f"var {name} = __fnb_cell.__fnb_entry;")
    return lambda: racer.call(name, *args)


__all__ = ["V8Runtime", "V8Function", "runtime", "host_main", "decode_mappings", "raw_baseline"]
