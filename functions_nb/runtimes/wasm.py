"""WebAssembly runtime on wasmtime-py.

One ``Engine`` per process with epoch interruption; a daemon thread advances the epoch every
``TICK`` seconds. Each call sets its store's epoch deadline one tick ahead; when it passes,
a deadline callback checks the execution's timeout and abort flag and either extends the
deadline or traps. Calls run in the caller's thread through wasmtime's *unchecked* call
path with a preallocated value buffer per instance (types are checked once, at load),
which is what makes a warm call cheaper than ``Func.__call__``.

Per-call limits: time (epoch deadline), memory (``Store.set_limits``). A trap, timeout or
abort discards the instance; the next call gets a fresh one (a cold call).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import platform
import re
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _bindings as _b
from wasmtime import _ffi as ffi
from wasmtime import _func as _wasmtime_func

from .. import values
from ..config import cache_dir, modcache_secret
from ..errors import Aborted, BadArguments, FunctionTimeout, InvocationError, LimitExceeded
from ..models import Param, Signature
from ..process_wide import ProcessWide
from ..values import ARRAY_DTYPES, INT_RANGES
from .base import CallContext, HostImport, Isolation, ModuleCache, WasmGlue
from .modcache import PrecompiledCache, Seal, Unverified

TICK = 0.01
#: The wasmtime ``Config`` of the engine (also part of the precompiled-module cache key).
ENGINE_CONFIG: dict[str, Any] = {"epoch_interruption": True, "cranelift_opt_level": "speed"}
#: Ticks a module's start function and initialisers may run (5 s).
INIT_TICKS = 500
def _wasmtime_version() -> str:
    """wasmtime-py's version, from its dist-info folder's name (importlib.metadata costs tens of
    ms of imports on every cold start; this is one directory listing)."""
    from pathlib import Path

    site = Path(wasmtime.__file__).resolve().parent.parent
    for info in site.glob("wasmtime-*.dist-info"):
        return info.name.removeprefix("wasmtime-").removesuffix(".dist-info")
    import importlib.metadata

    return importlib.metadata.version("wasmtime")


_WASMTIME_VERSION = _wasmtime_version()
_MASK64 = (1 << 64) - 1
_VALTYPES = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64(),
             "f32": wasmtime.ValType.f32(), "f64": wasmtime.ValType.f64()}
#: Magnitude from which a float rounds to an infinite f32 (smaller ones pass without a call).
_F32_OVERFLOW = float(2**128 - 2**103)

_call_unchecked = _b._wasmtime_func_call_unchecked
_set_deadline = _b._wasmtime_context_set_epoch_deadline
_memory_data = _b._wasmtime_memory_data
_memory_size = _b._wasmtime_memory_data_size
_DeadlineCB = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.POINTER(ffi.wasmtime_context_t),
                               ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64),
                               ctypes.POINTER(ctypes.c_uint8))
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_noop_finalizer = _Finalizer(lambda _p: None)


class WasmRuntime:
    """Process-wide wasmtime engine, epoch ticker and module cache."""

    kind = "wasm"

    def __init__(self) -> None:
        config = wasmtime.Config()
        for option, value in ENGINE_CONFIG.items():
            setattr(config, option, value)
        self.engine = wasmtime.Engine(config)
        engine = f"wasmtime-py {_WASMTIME_VERSION}"
        config_key = json.dumps({**ENGINE_CONFIG, "machine": platform.machine()}, sort_keys=True)
        #: Identifies engine + config; part of every precompiled-module cache key.
        self.fingerprint = hashlib.sha256(f"{engine}|{config_key}".encode()).hexdigest()[:16]
        #: Precompiled modules, sealed: verified (engine, configuration, hash) before use.
        self.modules = PrecompiledCache(
            lambda: cache_dir() / "modcache", Seal(modcache_secret(), engine, config_key), ".cwasm",
            build=self._compile, load=self._deserialize)
        self._ticker = threading.Thread(target=self._tick, name="functions-nb-epoch", daemon=True)
        self._ticker.start()
        self.compiles = 0

    def _tick(self) -> None:
        engine = self.engine
        while True:
            time.sleep(TICK)
            engine.increment_epoch()

    def module(self, code: bytes, cache: ModuleCache | None = None) -> wasmtime.Module:
        """Compile ``code`` or reuse a verified precompiled copy (local file, then the shared
        cache; see :mod:`functions_nb.runtimes.modcache`)."""
        return self.modules.get(f"{hashlib.sha256(code).hexdigest()}-{self.fingerprint}", code,
                                cache)

    def _compile(self, code: bytes) -> tuple[wasmtime.Module, bytes]:
        try:
            module = wasmtime.Module(self.engine, code)
        except wasmtime.WasmtimeError as exc:
            raise InvocationError(f"invalid WebAssembly module: {exc}") from exc
        self.compiles += 1
        return module, module.serialize()

    def _deserialize(self, data: bytes) -> wasmtime.Module:
        try:
            return wasmtime.Module.deserialize(self.engine, data)
        except wasmtime.WasmtimeError as exc:
            raise Unverified(f"wasmtime refused it ({exc})") from None

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> WasmFunction:
        """Load a module exporting ``name``; ``language`` (the artifact's) adds the host
        imports and trap explanation its language registers (:meth:`Language.wasm_glue`)."""
        module = self.module(code, cache)
        # only a module that imports more than the runtime's own ``fnb`` functions needs its
        # language's glue (the language registry stays off the cold path of the others)
        needs_glue = language and any(imp.module != "fnb" for imp in module.imports)
        if needs_glue:
            from .. import languages

            glue = languages.wasm_glue(language)
        else:
            glue = WasmGlue()
        return WasmFunction(self, module, signature, memory_mb, name, glue)

    def isolation(self) -> Isolation:
        return Isolation(
            "wasm",
            ("wasmtime: each function in its own store and linear memory, in this process",
             "imports: console and error reporting only (plus what the module's language "
             "registers, see Language.wasm_glue); any other import refused at load",
             "WASI: no preopened directories, environment, arguments, stdin or sockets"),
            limits=("time (epoch interruption)", "memory (store limits)",
                    "a trapped instance is discarded"))

    def close(self) -> None:
        """Nothing to stop: the epoch ticker is a daemon thread and modules are plain memory."""


#: The process-wide runtime (created on first use).
runtime: ProcessWide[WasmRuntime] = ProcessWide(WasmRuntime)


# -- argument conversion -------------------------------------------------------

def _int_setter(p: Param, field: str, sig: Signature) -> Callable[[Any, Any], None]:
    lo, hi = values.int_range(p.kind, p.bounds)
    wrap = p.kind in ("u32", "u64")
    whi = INT_RANGES[p.kind][1]

    def set_int(slot: Any, value: Any) -> None:
        if type(value) is not int or not lo <= value <= hi:  # plain in-range ints: no call
            value = values.int_argument(value, lo, hi, sig, p.name, p.type)
        if wrap and value > whi // 2:
            value -= whi + 1
        setattr(slot, field, value)

    return set_int


def _float_setter(p: Param, sig: Signature) -> Callable[[Any, Any], None]:
    field, check = p.kind, values.argument(sig, p)
    limit = _F32_OVERFLOW if p.kind == "f32" else math.inf

    def set_float(slot: Any, value: Any) -> None:
        if type(value) is not float or not -limit < value < limit:
            value = check(value)
        setattr(slot, field, value)

    return set_float


def _bool_setter(p: Param, sig: Signature) -> Callable[[Any, Any], None]:
    check = values.argument(sig, p)

    def set_bool(slot: Any, value: Any) -> None:
        slot.i32 = 1 if (value if value is True or value is False else check(value)) else 0

    return set_bool


#: An encoded argument: (bytes or a numpy array, byte count, the length parameter).
_Encoded = tuple[Any, int, int]


def _encoder(p: Param, sig: Signature) -> Callable[[Any], _Encoded]:
    """Strings (UTF-8), bytes, 1-D arrays (copied into guest memory once, no copy before) and
    JSON text, checked by :mod:`functions_nb.values`."""
    if p.kind in ARRAY_DTYPES:
        to_array = values.argument(sig, p)

        def enc_array(value: Any) -> _Encoded:
            arr = to_array(value)
            return arr, arr.nbytes, arr.shape[0]
        return enc_array
    convert = {"str": values.to_utf8, "bytes": values.to_bytes}.get(p.kind)
    if convert is None:
        def convert(value: Any) -> bytes:
            return values.to_json_text(value).encode()

    def enc_bytes(value: Any) -> _Encoded:
        try:
            data = convert(value)
        except values.Refused as exc:
            raise values.bad_argument(sig, p.name, p.type, value, exc.why) from None
        return data, len(data), len(data)
    return enc_bytes


# -- loaded functions ------------------------------------------------------------

class _Instance:
    """One instance in its own store, with a preallocated raw value buffer (the
    :class:`~functions_nb.runtimes.base.Guest` a language's host imports see)."""

    __slots__ = ("store", "cptr", "fref", "buf", "slots", "nbuf", "trap", "trap_ref", "memory",
                 "mref", "alloc_ref", "free_ref", "ctx", "_keep", "abuf")

    def read(self, ptr: int, length: int) -> bytes:
        base = _memory_data(self.cptr, self.mref)
        return ctypes.string_at(ctypes.addressof(base.contents) + ptr, length)

    def log(self, level: int, text: str) -> None:
        if self.ctx is not None:
            self.ctx.log(level, text)

    def panic(self, message: str) -> None:
        if self.ctx is not None:
            self.ctx.panic_msg = message


class WasmFunction:
    """A module loaded for one function version: an instance pool and the call path."""

    def __init__(self, rt: WasmRuntime, module: wasmtime.Module, signature: Signature,
                 memory_mb: int, name: str, glue: WasmGlue) -> None:
        self.rt = rt
        self.module = module
        #: Import module -> name -> host function: ours ("fnb") and the language's.
        self._host_modules: dict[str, Any] = {**glue.imports, "fnb": _HOST_IMPORTS}
        self._explain_trap = glue.explain_trap
        self.sig = signature
        self.memory_limit = int(memory_mb) * 1024 * 1024
        self.export = name
        self._idle: list[_Instance] = []
        self._setters: list[tuple[int, int, Callable[[Any, Any], None]]] = []
        self._encoders: list[tuple[int, int, Callable[[Any], _Encoded]]] = []
        slot = 0
        for pos, p in enumerate(signature.params):
            if p.kind in INT_RANGES:
                field = "i32" if p.kind in ("i32", "u32") else "i64"
                self._setters.append((slot, pos, _int_setter(p, field, signature)))
                slot += 1
            elif p.kind in ("f32", "f64"):
                self._setters.append((slot, pos, _float_setter(p, signature)))
                slot += 1
            elif p.kind == "bool":
                self._setters.append((slot, pos, _bool_setter(p, signature)))
                slot += 1
            else:
                self._encoders.append((slot, pos, _encoder(p, signature)))
                slot += 2
        self.nslots = max(slot, 1)
        self._nparams = len(signature.params)
        self._result = signature.result
        self._check_imports()
        self._release_instance(self._instantiate())  # fail at load, not at first call
        self._fresh = True  # the first call after loading counts as cold

    def _check_imports(self) -> None:
        self._wasi = False
        for imp in self.module.imports:
            if imp.module == WASI:
                self._wasi = True
                continue
            if imp.name not in self._host_modules.get(imp.module, ()):
                raise InvocationError(
                    f"the module imports {imp.module}.{imp.name}, which the sandbox does not "
                    "provide (functions get no host access beyond console output)")

    # instances -----------------------------------------------------------------
    def _instantiate(self) -> _Instance:
        inst = _Instance()
        store = wasmtime.Store(self.rt.engine)
        store.set_limits(memory_size=self.memory_limit)
        inst.store = store
        inst.ctx = None
        store.set_epoch_deadline(INIT_TICKS)  # a start function gets INIT_TICKS, then traps
        try:
            if self._wasi:
                instance = self._wasi_linker(store, inst).instantiate(store, self.module)
            else:
                imports = [_bind(store, inst, self._host_modules[imp.module][imp.name])
                           for imp in self.module.imports]
                instance = wasmtime.Instance(store, self.module, imports)
        except wasmtime.Trap as exc:
            raise InvocationError(f"{self.export}: module start-up trapped: "
                                  f"{_trap_reason(str(exc))}") from None
        except wasmtime.WasmtimeError as exc:  # e.g. a WASI import the linker does not define
            raise InvocationError(f"{self.export}: the module cannot be instantiated: {exc} "
                                  "(the sandbox does not provide it)") from None
        exports = instance.exports(store)
        func = exports[self.export]
        if not isinstance(func, wasmtime.Func):
            raise InvocationError(f"export {self.export!r} is not a function")
        try:
            memory = exports["memory"]
        except KeyError:
            memory = None
        inst.memory = memory
        inst.mref = ctypes.byref(memory._memory) if memory is not None else None
        inst.cptr = store._context()
        inst.fref = ctypes.byref(func._func)
        inst.nbuf = self.nslots
        inst.buf = (ffi.wasmtime_val_raw_t * self.nslots)()
        inst.slots = [inst.buf[i] for i in range(self.nslots)]
        inst.abuf = (ffi.wasmtime_val_raw_t * 2)()
        inst.trap = ctypes.POINTER(ffi.wasm_trap_t)()
        inst.trap_ref = ctypes.byref(inst.trap)
        inst.alloc_ref = _func_ref(exports, "__fnb_alloc")
        inst.free_ref = _func_ref(exports, "__fnb_free")

        callback = watch_deadline(store, inst)
        inst._keep = (instance, func, exports, callback)
        for init_name in ("_initialize", "__fnb_init"):  # WASI reactor start-up, our own
            init = _func_ref(exports, init_name)
            if init is not None:
                _set_deadline(inst.cptr, INIT_TICKS)
                err = _call_unchecked(inst.cptr, init, inst.abuf, 0, inst.trap_ref)
                if err or inst.trap:
                    _take_host_exception()
                    raise InvocationError(f"{self.export}: initialisation ({init_name}) trapped")
        return inst

    def _wasi_linker(self, store: wasmtime.Store, inst: _Instance) -> wasmtime.Linker:
        """WASI with nothing to reach: no preopened directories, no environment, no
        arguments, no stdin; stdout/stderr go to the console and sleeping obeys the time
        limit (``fd_write`` and ``poll_oneoff`` are ours)."""
        config = wasmtime.WasiConfig()
        # fds 1 and 2 must exist for the guest's runtime (Go checks them at start-up); what
        # is written to them goes to the console through our fd_write, never to the file.
        config.stdout_file = os.devnull
        config.stderr_file = os.devnull
        store.set_wasi(config)
        linker = wasmtime.Linker(self.rt.engine)
        linker.allow_shadowing = True
        linker.define_wasi()
        for name, spec in _WASI_OVERRIDES.items():
            linker.define(store, WASI, name, _bind(store, inst, spec))
        for module, funcs in self._host_modules.items():
            for name, spec in funcs.items():
                linker.define(store, module, name, _bind(store, inst, spec))
        return linker

    def _release_instance(self, inst: _Instance) -> None:
        inst.ctx = None
        self._idle.append(inst)

    def close(self) -> None:
        self._idle.clear()

    # the call path -------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._nparams:
            self.sig.check_arity(args)
        idle = self._idle
        if idle:
            inst = idle.pop()
            if self._fresh:
                self._fresh = False
                ctx.cold = True
        else:
            inst = self._instantiate()
            ctx.cold = True
        inst.ctx = ctx
        try:
            slots = inst.slots
            for slot, pos, setter in self._setters:
                setter(slots[slot], args[pos])
        except BadArguments:
            self._release_instance(inst)
            raise
        if self._encoders:
            self._marshal(inst, args, ctx)
        _set_deadline(inst.cptr, 1)
        err = _call_unchecked(inst.cptr, inst.fref, inst.buf, inst.nbuf, inst.trap_ref)
        if err or inst.trap:
            raise self._failure(inst, err, ctx)
        ctx.memory_bytes = _memory_size(inst.cptr, inst.mref) if inst.mref is not None else None
        if ctx.fail_msg is not None or ctx.bad_arg_msg is not None:
            self._release_instance(inst)
            raise self._returned_error(ctx)
        kind = self._result
        if kind == "i32":
            value: Any = slots[0].i32
        elif kind == "f64":
            value = slots[0].f64
        elif kind == "unit":
            value = None
        elif kind == "i64":
            value = slots[0].i64
        elif kind == "bool":
            value = slots[0].i32 != 0
        elif kind == "f32":
            value = slots[0].f32
        elif kind == "u32":
            value = slots[0].i32 & 0xFFFFFFFF
        elif kind == "u64":
            value = slots[0].i64 & _MASK64
        else:
            value = self._unmarshal(inst, slots[0].i64 & _MASK64)
        self._release_instance(inst)
        return value

    def _marshal(self, inst: _Instance, args: tuple, ctx: CallContext) -> None:
        try:
            encoded = [(slot, encode(args[pos])) for slot, pos, encode in self._encoders]
        except BadArguments:
            self._release_instance(inst)
            raise
        for slot, (data, nbytes, length) in encoded:
            ptr = self._guest_alloc(inst, nbytes, ctx)
            base = _memory_data(inst.cptr, inst.mref)
            dst = ctypes.addressof(base.contents) + ptr
            if isinstance(data, bytes):
                ctypes.memmove(dst, data, nbytes)
            else:
                _copy(dst, data.ctypes.data, nbytes)
            inst.slots[slot].i32 = ptr
            inst.slots[slot + 1].i32 = length

    def _guest_alloc(self, inst: _Instance, size: int, ctx: CallContext) -> int:
        if inst.alloc_ref is None:
            raise InvocationError(f"{self.export}: module exports no __fnb_alloc")
        inst.abuf[0].i32 = size
        _set_deadline(inst.cptr, 100)
        err = _call_unchecked(inst.cptr, inst.alloc_ref, inst.abuf, 2, inst.trap_ref)
        if err or inst.trap:
            raise self._failure(inst, err, ctx)
        ptr = inst.abuf[0].i32 & 0xFFFFFFFF
        if ptr == 0 and size:
            ctx.oom_size = None
            inst.ctx = None  # discarded: earlier arguments of this call stay allocated in it
            raise LimitExceeded(f"{self.export}: could not allocate {size} bytes for the "
                                f"arguments within the {self.memory_limit >> 20} MB memory limit")
        return ptr

    def _unmarshal(self, inst: _Instance, packed: int) -> Any:
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        kind = self._result
        if kind in ARRAY_DTYPES:
            value = self._read_array(inst, ptr, length)
            self._guest_free(inst, ptr, length)
            return value
        data = inst.read(ptr, length) if length else b""
        self._guest_free(inst, ptr, length)
        if kind == "str":
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvocationError(f"{self.export} returned text that is not UTF-8 "
                                      f"({exc.reason} at byte {exc.start})") from None
        if kind == "bytes":
            return data
        return json.loads(_fix_nonfinite(data))

    def _guest_free(self, inst: _Instance, ptr: int, length: int) -> None:
        if inst.free_ref is not None and ptr:
            inst.abuf[0].i32 = ptr
            inst.abuf[1].i32 = length
            _call_unchecked(inst.cptr, inst.free_ref, inst.abuf, 2, inst.trap_ref)

    def _read_array(self, inst: _Instance, ptr: int, nbytes: int) -> Any:
        import numpy as np

        dtype = np.dtype(ARRAY_DTYPES[self._result])
        out = np.empty(nbytes // dtype.itemsize, dtype)
        if nbytes:
            base = _memory_data(inst.cptr, inst.mref)
            _copy(out.ctypes.data, ctypes.addressof(base.contents) + ptr, out.nbytes)
        return out

    # errors ----------------------------------------------------------------------
    def _returned_error(self, ctx: CallContext) -> Exception:
        if ctx.bad_arg_msg is not None:
            return BadArguments(f"{self.sig}: {ctx.bad_arg_msg}")
        msg = ctx.fail_msg or ""
        if msg == "OutOfMemory":
            return LimitExceeded(f"{self.export}: out of memory (limit {self.memory_limit >> 20} MB)")
        return InvocationError(f"{self.export} failed: {msg}")

    def _failure(self, inst: _Instance, err: Any, ctx: CallContext) -> Exception:
        """Turn a trap or error into our exception; the instance is discarded."""
        host_error = _take_host_exception()
        if host_error is not None and not isinstance(host_error, wasmtime.Trap):
            return InvocationError(f"{self.export}: a host function failed: "
                                   f"{type(host_error).__name__}: {host_error}")
        if err:
            text = str(wasmtime.WasmtimeError._from_ptr(err))
        elif inst.trap:
            text = str(wasmtime.Trap._from_ptr(inst.trap))
        else:
            text = "failed"
        inst.ctx = None
        if ctx.aborted:
            return Aborted(f"{self.export}: execution {ctx.id} aborted")
        if ctx.timed_out:
            return FunctionTimeout(f"{self.export}: stopped at its {ctx.timeout:g} s time limit")
        if ctx.bad_arg_msg is not None:
            return BadArguments(f"{self.sig}: {ctx.bad_arg_msg}")
        limit_mb = self.memory_limit >> 20
        if ctx.oom_size is not None:
            return LimitExceeded(f"{self.export}: memory limit of {limit_mb} MB exceeded "
                                 f"(an allocation of {ctx.oom_size} bytes failed)")
        if ctx.panic_msg is not None:
            msg = _cell_location(ctx.panic_msg)
            if "out of memory" in msg.lower():
                return LimitExceeded(f"{self.export}: {msg} (limit {limit_mb} MB)")
            return InvocationError(f"{self.export} {msg}")
        reason = _trap_reason(text)
        if self._explain_trap is not None:
            ctx.finish_console()
            fatal = self._explain_trap(ctx.console)
            if fatal is not None:
                if "out of memory" in fatal:
                    return LimitExceeded(f"{self.export}: {fatal} (memory limit of {limit_mb} MB)")
                return InvocationError(f"{self.export} {fatal}")
        if inst.mref is not None:
            try:
                size = _memory_size(inst.cptr, inst.mref)
            except Exception:  # noqa: BLE001 - the store is going away anyway
                size = 0
            if size + 65536 > self.memory_limit and "unreachable" in reason:
                return LimitExceeded(f"{self.export}: memory limit of {limit_mb} MB exceeded")
        return InvocationError(f"{self.export} trapped: {reason}")


def watch_deadline(store: wasmtime.Store, inst: Any) -> Any:
    """Install the epoch-deadline callback of ``store``, whose current call is ``inst.ctx``
    (None between calls): each tick it traps an aborted call or one past its deadline
    (setting ``timed_out``), else extends the deadline by one tick. Returns the callback,
    which the caller keeps alive as long as the store."""

    def on_deadline(_ctx: Any, _data: Any, delta: Any, kind: Any) -> int:
        call = inst.ctx
        if call is not None:
            if call.aborted:
                return _error("fnb: aborted")
            if time.monotonic() >= call.deadline:
                call.timed_out = True
                return _error("fnb: timeout")
        delta[0] = 1
        kind[0] = 0  # continue
        return 0

    callback = _DeadlineCB(on_deadline)
    _b.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, _noop_finalizer)
    return callback


#: Arrays at least this large are copied by two threads (memmove releases the GIL).
SPLIT_COPY_BYTES = 2 << 20
_copier: Any = None


def _copy(dst: int, src: int, nbytes: int) -> None:
    """memmove between raw addresses; large copies in two halves on two threads (~1.5x
    faster for an 8 MB array on two cores: one core cannot saturate memory bandwidth)."""
    global _copier
    if nbytes < SPLIT_COPY_BYTES:
        ctypes.memmove(dst, src, nbytes)
        return
    if _copier is None:
        from concurrent.futures import ThreadPoolExecutor

        _copier = ThreadPoolExecutor(1, thread_name_prefix="functions-nb-copy")
    half = (nbytes // 2) & ~63
    other = _copier.submit(ctypes.memmove, dst + half, src + half, nbytes - half)
    ctypes.memmove(dst, src, half)
    other.result()


def _take_host_exception() -> BaseException | None:
    """wasmtime-py parks an exception raised in a host function in a module global for its
    own call wrapper to re-raise; our unchecked calls must take it, or the next failing
    wasmtime-py call anywhere in the process would raise this stale one."""
    exc = _wasmtime_func.LAST_EXCEPTION
    _wasmtime_func.LAST_EXCEPTION = None
    return exc


#: A JSON string (kept as it is) or a bare inf/nan outside strings.
_NONFINITE = re.compile(rb'"(?:[^"\\]|\\.)*"|(?<![\w.])(-?)(inf|nan)(?![\w"])')


def _fix_nonfinite(data: bytes) -> bytes:
    """Zig's JSON writer emits bare inf/nan; Python's json reads Infinity/NaN. Text inside
    strings is left alone ("x inf y" stays as it is)."""
    def token(m: re.Match[bytes]) -> bytes:
        if m.group(2) is None:  # a string
            return m.group(0)
        return m.group(1) + b"Infinity" if m.group(2) == b"inf" else b"NaN"

    return _NONFINITE.sub(token, data) if b"inf" in data or b"nan" in data else data


def _trap_reason(text: str) -> str:
    m = re.search(r"wasm trap: (.+)", text)
    if m:
        return m.group(1).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "trap"


def _cell_location(msg: str) -> str:
    """'panicked at cell.rs:3:5: boom' -> 'panicked at cell line 3: boom'."""
    return re.sub(r"\S*cell\.\w+:(\d+):\d+", r"cell line \1", msg)


def _error(message: str) -> int:
    return ctypes.cast(_b.wasmtime_error_new(message.encode()), ctypes.c_void_p).value or 0


def _func_ref(exports: Any, name: str) -> Any:
    try:
        func = exports[name]
    except KeyError:
        return None
    return ctypes.byref(func._func) if isinstance(func, wasmtime.Func) else None


# -- host imports (module "fnb") -------------------------------------------------

def _text(inst: _Instance, ptr: int, length: int) -> str:
    return inst.read(ptr, length).decode("utf-8", errors="replace")


def _host_log(inst: _Instance, level: int, ptr: int, length: int) -> None:
    if inst.ctx is not None:
        inst.ctx.log(level, _text(inst, ptr, length))


def _host_fail(inst: _Instance, ptr: int, length: int) -> None:
    if inst.ctx is not None:
        inst.ctx.fail_msg = _text(inst, ptr, length)


def _host_panic(inst: _Instance, ptr: int, length: int) -> None:
    if inst.ctx is not None:
        msg = _text(inst, ptr, length)
        inst.ctx.panic_msg = msg if msg.startswith("panicked") else f"panicked: {msg}"


def _host_oom(inst: _Instance, size: int) -> None:
    if inst.ctx is not None:
        inst.ctx.oom_size = size & 0xFFFFFFFF


def _host_bad_arg(inst: _Instance, ptr: int, length: int) -> None:
    if inst.ctx is not None:
        inst.ctx.bad_arg_msg = _text(inst, ptr, length)


#: What every module may import: console and error reporting, nothing that reaches the host.
_HOST_IMPORTS: dict[str, HostImport] = {
    "log": HostImport(("i32", "i32", "i32"), (), _host_log),
    "fail": HostImport(("i32", "i32"), (), _host_fail),
    "panic": HostImport(("i32", "i32"), (), _host_panic),
    "oom": HostImport(("i32",), (), _host_oom),
    "bad_arg": HostImport(("i32", "i32"), (), _host_bad_arg),
}


# -- WASI (Go's wasip1 and other WASI reactors) ---------------------------------------

WASI = "wasi_snapshot_preview1"
_ERRNO_BADF, _ERRNO_INVAL, _ERRNO_NOTSUP = 8, 28, 58


def _write(inst: _Instance, ptr: int, data: bytes) -> None:
    base = _memory_data(inst.cptr, inst.mref)
    ctypes.memmove(ctypes.addressof(base.contents) + ptr, data, len(data))


def _wasi_fd_write(inst: _Instance, fd: int, iovs: int, count: int, nwritten: int) -> int:
    if fd not in (1, 2):
        return _ERRNO_BADF
    raw = inst.read(iovs, 8 * count)
    chunks = []
    for i in range(count):
        ptr, length = struct.unpack_from("<II", raw, 8 * i)
        chunks.append(inst.read(ptr, length))
    data = b"".join(chunks)
    if inst.ctx is not None and data:
        inst.ctx.log(-1 if fd == 1 else -4, data.decode("utf-8", errors="replace"))
    _write(inst, nwritten, struct.pack("<I", len(data)))
    return 0


def _wasi_poll_oneoff(inst: _Instance, subs: int, events: int, count: int, nevents: int) -> int:
    """Sleeping (clock subscriptions) in slices, so the time limit and abort still apply
    while the guest waits; stdout/stderr are always writable; other fds do not exist."""
    if count == 0:
        return _ERRNO_INVAL
    raw = inst.read(subs, 48 * count)
    ready: list[bytes] = []
    clocks: list[tuple[int, float]] = []
    for i in range(count):
        userdata, tag = struct.unpack_from("<QB", raw, 48 * i)
        if tag == 0:
            clock_id, timeout, _precision, flags = struct.unpack_from("<I4xQQH", raw, 48 * i + 16)
            now = time.monotonic_ns() if clock_id == 1 else time.time_ns()
            clocks.append((userdata, (timeout - now if flags & 1 else timeout) / 1e9))
        else:
            (fd,) = struct.unpack_from("<I", raw, 48 * i + 16)
            ok = tag == 2 and fd in (1, 2)
            ready.append(struct.pack("<QHBxxxxxQH6x", userdata, 0 if ok else _ERRNO_BADF, tag,
                                     65536 if ok else 0, 0))
    if not ready:
        wake = min(delay for _, delay in clocks)
        _sleep(inst.ctx, wake)
        ready = [struct.pack("<QHBxxxxxQH6x", userdata, 0, 0, 0, 0)
                 for userdata, delay in clocks if delay <= wake]
    _write(inst, events, b"".join(ready))
    _write(inst, nevents, struct.pack("<I", len(ready)))
    return 0


def _sleep(ctx: CallContext | None, seconds: float) -> None:
    end = time.monotonic() + max(0.0, seconds)
    while True:
        left = end - time.monotonic()
        if ctx is not None:
            if ctx.aborted:
                raise wasmtime.Trap("fnb: aborted")
            if time.monotonic() >= ctx.deadline:
                ctx.timed_out = True
                raise wasmtime.Trap("fnb: timeout")
            left = min(left, ctx.deadline - time.monotonic() + 0.001)
        if left <= 0:
            return
        time.sleep(min(left, 0.01))


_WASI_OVERRIDES: dict[str, HostImport] = {
    "fd_write": HostImport(("i32", "i32", "i32", "i32"), ("i32",), _wasi_fd_write),
    "poll_oneoff": HostImport(("i32", "i32", "i32", "i32"), ("i32",), _wasi_poll_oneoff),
}

def _bind(store: wasmtime.Store, inst: _Instance, spec: HostImport) -> wasmtime.Func:
    impl = spec.impl
    ftype = wasmtime.FuncType([_VALTYPES[t] for t in spec.params],
                              [_VALTYPES[t] for t in spec.results])
    return wasmtime.Func(store, ftype, lambda *a: impl(inst, *a))
