"""V8 runtime: JavaScript bundles (TypeScript/JavaScript cells) in V8 isolates.

Isolation model. All isolates live in one shared *V8 host process* per kernel
(``hosts/v8_host.py``: PyPI ``mini-racer`` driven through its C API), one isolate per loaded
function version, each with its own heap limit (``memory_mb``), so one function's globals,
timers and memory are its own. The host is a separate process because V8 aborts its whole
process on some out-of-memory paths (a single builtin such as ``new Array(1.3e8).fill(0.5)``
runs past the heap limit before the limit check): that kills only the host; the call raises
``LimitExceeded`` when it was the only one running, and every call cut short names the calls
that were in flight; the next call starts a new host. The host keeps its data-segment limit
at what its isolates may use (capped at ``FUNCTIONS_NB_V8_HOST_MB``, default 3/4 of the RAM),
runs with ``oom_score_adj`` 1000 and, under the host layer's sandbox profile (bubblewrap: no
network, own PID/IPC namespaces, a read-only file system with /tmp and $HOME hidden; seccomp:
no new processes; a clean environment). Inside an isolate there is no host API at all: only
ECMAScript, ``WebAssembly``, ``Intl``, a capturing ``console`` and timers
(``languages/glue/ts_runtime.js``); timers do not outlive the calls that set them. Off-heap
buffers are refused per allocation beyond ``memory_mb``.

Calling convention. One ``CALL`` per call (docs/host-protocol.md): the JavaScript text
``__fnb_call(id, ...args)`` with arguments encoded as literals (numbers, booleans, JSON strings;
bytes and ``Float64Array`` as base64; other values as JSON text parsed in the isolate). The
answer is a raw number/boolean when nothing was logged, else one JSON envelope with the result
and the console lines. Promises are awaited in the host. Time limits are the host layer's
watchdog (``CANCEL`` -> V8 ``TerminateExecution``; kill after ``GRACE``). After a
timeout, abort or out-of-memory the isolate is replaced by a fresh one on the next call
(cold). Errors map back to cell lines through the esbuild source map.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import struct
import sys
import threading
import time
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

from .. import values
from ..config import CONSOLE_MAX_BYTES, CONSOLE_MAX_LINES
from ..errors import (
    Aborted,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
    ToolchainMissing,
)
from ..models import Signature
from ..process_wide import ProcessWide
from .base import CallContext, Isolation, ModuleCache
from .host import HostDied, HostProcess, Op, SharedHostRuntime, Status, sandbox

PKG_ROOT = Path(__file__).resolve().parent.parent.parent
PRELUDE_PATH = PKG_ROOT / "functions_nb" / "languages" / "glue" / "ts_runtime.js"
HOST_SCRIPT = PKG_ROOT / "functions_nb" / "hosts" / "v8_host.py"
ARTIFACT_FORMAT = "fnb-v8/1"
BUNDLE_URL = "fnb-bundle.js"
#: After a cancel, seconds until the host counts as wedged and is killed.
GRACE = 2.0
#: Seconds a host may take to start, and a function to load (the host runs the cell's top
#: level, bounded by 5 s inside, after creating the isolate).
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 35.0

_ISO = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_INT64 = struct.Struct("<q")


class ValueType(IntEnum):
    """The first byte of an ``OK`` reply: mini-racer's type of the value that follows."""

    NULL = 1
    BOOL = 2
    INT = 3
    DOUBLE = 4
    STR = 5
    UNDEFINED = 11


#: Result/parameter kinds -> the letters the prelude's decoder and encoder use.
_LETTERS = {"f64": "n", "f32": "n", "i32": "n", "u32": "n", "bool": "z", "str": "s",
            "bytes": "b", "f64[]": "F", "f32[]": "E", "i32[]": "I", "i64[]": "L", "json": "j",
            "i64": "i", "u64": "i", "bigint": "i", "unit": "u"}
#: Typed-array letters -> numpy dtypes of their items.
_ARRAY_DTYPES = {"F": "<f8", "E": "<f4", "I": "<i4", "L": "<i8"}
#: JSON parameters typed as a Map or a Set get one (from a JSON object / array).
_COLLECTION = re.compile(r"\s*(?:readonly\s+)?(?:Readonly)?(Map|Set)\s*<")
_BIGINT = re.compile(r"\bbigint\b")


def _param_letter(param: Any) -> str:
    letter = _LETTERS.get(param.kind, "j")
    if letter == "j":
        m = _COLLECTION.match(param.type or "")
        if m:
            return m.group(1)[0]
    return letter


def _takes_bigint(param: Any) -> bool:
    """A JSON parameter whose type mentions bigint (``number | bigint``, ``bigint[]``): an
    integer beyond 2**53 in it crosses as a BigInt."""
    return param.kind == "json" and bool(_BIGINT.search(param.type or ""))


# -- the runtime: one shared host ---------------------------------------------------------------

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


def sandbox_profile() -> sandbox.SandboxProfile:
    """The file system read-only with /tmp and $HOME hidden (unless Python lives there)."""
    needed = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.executable, PKG_ROOT)]
    mini_racer = _mini_racer_dir()
    if mini_racer is not None:
        needed.append(mini_racer)
    hide = []
    for hidden in (Path("/tmp"), Path.home()):
        hidden = hidden.resolve()
        if hidden != Path("/") and not any(p == hidden or hidden in p.parents for p in needed):
            hide.append(str(hidden))
    return sandbox.SandboxProfile("v8", root_ro=True, hide=hide, nobody=False,
                                  rlimits={"core": 0})


class V8Runtime(SharedHostRuntime):
    """Process-wide: the shared V8 host (started on first load, restarted after it dies)."""

    kind = "v8"
    label = "the V8 host"

    def __init__(self, data_mb: int | None = None, sandbox: bool | None = None) -> None:
        if _mini_racer_dir() is None:
            raise ToolchainMissing("mini-racer is needed to run TypeScript/JavaScript functions: "
                                   "pip install mini-racer")
        super().__init__()
        self.data_mb = _default_data_mb() if data_mb is None else data_mb
        self._want_sandbox = sandbox
        self.sandboxed = False
        self.prelude = PRELUDE_PATH.read_text()
        self._iso_ids = itertools.count(1)
        #: host generation -> {request id: function name} of the calls in flight there.
        self.inflight: dict[int, dict[int, str]] = {}
        #: host generation -> the functions whose calls were in flight when it died.
        self.casualties: dict[int, set[str]] = {}

    @property
    def restarts(self) -> int:
        return max(0, self.generation - 1)

    def start_host(self, generation: int) -> HostProcess:
        profile = sandbox_profile()
        want = self._want_sandbox
        check = [sys.executable, "-I", "-c", "import py_mini_racer"]
        use = want if want is not None else (sandbox.probe(profile, check)["bwrap"] or False)
        launch = sandbox.launch(profile, [], sandbox=use)
        try:
            host = HostProcess(
                lambda p: [*launch.argv, sys.executable, "-I", str(HOST_SCRIPT), str(p.request),
                           str(p.reply), str(self.data_mb)],
                label=self.label, env=launch.env, generation=generation, grace=GRACE,
                start_timeout=START_TIMEOUT, extra_fds=launch.fds, notable=_notable)
        except HostDied as exc:
            raise ToolchainMissing(f"the V8 host process did not start: {exc}") from None
        finally:
            launch.close()
        self.sandboxed = bool(use)
        self.inflight[generation] = {}
        return host

    def isolation(self) -> Isolation:
        profile = sandbox_profile()
        layers = sandbox.probe(profile, [sys.executable, "-I", "-c", "import py_mini_racer"])
        if self._want_sandbox is False:
            layers = {**layers, "bwrap": False, "detail": "disabled for this runtime"}
        return sandbox.isolation("v8", layers, (
            "one V8 isolate per function version (own globals, heap limit, timers)",
            "no host API inside an isolate"), ("time", "heap memory"))

    def after_fork(self) -> None:
        self.inflight, self.casualties = {}, {}

    def new_isolate_id(self) -> int:
        return next(self._iso_ids)

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> V8Function:
        return V8Function(self, code, signature, memory_mb, name)


def _notable(lines: list[str]) -> list[str]:
    """The lines of a crashed host's log that say why (V8's fatal errors)."""
    return [ln.strip("# ").strip() for ln in lines
            if re.search(r"fatal|out of memory|mmap error|allocation failed|killed", ln, re.I)
            and not ln.lstrip().startswith("/")][-2:]


#: The process-wide runtime (created on first use).
runtime: ProcessWide[V8Runtime] = ProcessWide(V8Runtime)


# -- argument encoders: Python value -> JavaScript literal ---------------------------------
# The check is the value-kind table's (functions_nb/values.py); what is V8's is the literal.

_NONFINITE = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _number(x: int | float) -> str:
    if type(x) is int:
        return str(x)
    return repr(x) if x - x == 0 else _NONFINITE[repr(x)]


def _b64_literal(data: bytes | memoryview) -> str:
    return f'"{base64.b64encode(data).decode()}"'


#: Per kind: checked value -> JavaScript literal (the prelude decodes by the parameter's letter).
_LITERALS: dict[str, Callable[[Any], str]] = {
    **dict.fromkeys(("f64", "f32", "i32", "u32"), _number),
    "bool": lambda b: "true" if b else "false",
    "str": json.dumps,
    "bytes": _b64_literal,
    **dict.fromkeys(("i64", "u64", "bigint"), lambda i: f"{i}n"),
    **dict.fromkeys(("f64[]", "f32[]", "i32[]", "i64[]"), lambda arr: _b64_literal(arr.tobytes())),
}


_LONG_NUMBER = re.compile(r"\d{16}")
_JS_SAFE = 2 ** 53


def _inexact_int(value: Any) -> int | None:
    """The first int in a JSON value that a JavaScript number cannot hold exactly."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) > _JS_SAFE else None
    items = value.values() if isinstance(value, dict) else \
        value if isinstance(value, (list, tuple, set, frozenset)) else ()
    for item in items:
        found = _inexact_int(item)
        if found is not None:
            return found
    return None


def _encoder(sig: Signature, param: Any) -> Callable[[Any], str]:
    check = values.argument(sig, param)
    literal = _LITERALS.get(param.kind, json.dumps)  # JSON kinds: the JSON text as a string
    if param.kind == "str":
        def encode_str(value: Any) -> str:
            return json.dumps(values.unicode_argument(check(value), sig, param))
        return encode_str
    if literal is not json.dumps:
        def encode(value: Any) -> str:
            return literal(check(value))
        return encode
    bigint = _takes_bigint(param)
    pairs = _param_letter(param) == "M"

    def encode_json(value: Any) -> str:
        sent = value
        if pairs and isinstance(value, dict):  # a Map keeps its keys' types: sent as pairs
            sent = [[k, v] for k, v in value.items()]
            try:
                text = values.to_json_text(sent)
            except values.Refused as exc:
                raise values.bad_argument(sig, param.name, param.type, value, exc.why) from None
        else:
            text = check(value)
        if not bigint and _LONG_NUMBER.search(text):  # only then can an int be beyond 2**53
            big = _inexact_int(sent if not hasattr(sent, "tolist") else sent.tolist())
            if big is not None:
                raise values.bad_argument(
                    sig, param.name, param.type, value,
                    f"the int {big} is beyond 2**53: a JavaScript number cannot hold it exactly "
                    "(declare the parameter `bigint` or `number | bigint` to pass it as a BigInt)")
        return json.dumps(text)
    return encode_json


def _json_int(text: str) -> int | float:
    """An integer literal in a JSON result: JavaScript wrote a number, and beyond 2**53 that
    number is a float (its shortest form may end in made-up zeros: 2**60 prints as
    1152921504606847000); BigInts come tagged, never as literals."""
    value = int(text)
    return value if -_JS_SAFE <= value <= _JS_SAFE else float(text)


_LONG_DIGITS = re.compile(rb"\d{16}")


def _loads(payload: bytes) -> Any:
    """An envelope; integer literals beyond 2**53 (only where 16 digits run) as floats."""
    if _LONG_DIGITS.search(payload):
        return json.loads(payload, parse_int=_json_int)
    return json.loads(payload)


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

    def __init__(self, iso_id: int, host: HostProcess) -> None:
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
        self._encoders = [_encoder(signature, p) for p in signature.params]
        config = {"name": name, "kinds": "".join(_param_letter(p) for p in signature.params),
                  "bigs": "".join("1" if _takes_bigint(p) else "0" for p in signature.params),
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
            reply = host.request(Op.LOAD, _ISO.pack(iso.id), self._setup, what=f"loading {self.name}",
                                 setup_timeout=LOAD_TIMEOUT)
            if reply.status != Status.OK:
                raise self._setup_error(reply.status, reply.body)
            self._iso = iso
            return iso

    def _discard(self, iso: _Isolate) -> None:
        if iso.dead:
            return
        iso.dead = True
        if iso.host.alive:
            iso.host.unload(iso.id)

    def close(self) -> None:
        iso, self._iso = self._iso, None
        if iso is not None:
            self._discard(iso)

    # the call path --------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._nparams:
            self.sig.check_arity(args)
        literals = ",".join([enc(a) for enc, a in zip(self._encoders, args, strict=False)])  # arity checked
        iso = self._iso
        if iso is None or iso.dead or not iso.host.alive:
            loading = time.monotonic()
            iso = self._isolate()
            ctx.cold = True
            ctx.deadline += time.monotonic() - loading  # loading is not the call's time
        elif self._fresh:
            self._fresh = False
            ctx.cold = True
        host = iso.host
        rid = host.channel.new_id()
        inflight = self.rt.inflight.setdefault(host.generation, {})
        inflight[rid] = self.name
        try:
            reply = host.channel.request(
                Op.CALL, _ISO.pack(iso.id), f"__fnb_call({rid},{literals})".encode(),
                request_id=rid, watch=host.watch_for(ctx, f"a call of {self.name}"))
            if reply.status == Status.DIED:  # who was running when it died (first look)
                running = self.rt.casualties.setdefault(host.generation, set(inflight.values()))
                others = sorted(running - {self.name})
                raise self._host_died(reply.body.decode(errors="replace"), others, ctx)
        finally:
            inflight.pop(rid, None)
        if reply.status != Status.OK:
            raise self._failure(iso, reply.status, reply.body, ctx)
        body = reply.body
        typ, payload = body[0], body[1:]
        if typ == ValueType.STR:
            return self._envelope(payload, ctx)
        if typ == ValueType.DOUBLE:
            return _DOUBLE.unpack(payload)[0]
        if typ == ValueType.INT:
            value = _INT64.unpack(payload)[0]
            return float(value) if self._rk == "n" else value
        if typ == ValueType.BOOL:
            return payload == b"\x01"
        return None

    def _envelope(self, payload: bytes, ctx: CallContext) -> Any:
        env = _loads(payload)
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
            if rk in _ARRAY_DTYPES:
                import numpy as np

                return np.frombuffer(data, dtype=_ARRAY_DTYPES[rk]).copy()
            return data
        if "x" in env:
            return int(env["x"]) if rk == "i" else float(env["x"])
        if "t" in env:
            return self._untag(env["t"])
        value = env.get("v")
        if rk == "n" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if rk in _ARRAY_DTYPES and isinstance(value, list):  # a plain array returned
            return self._array(value, _ARRAY_DTYPES[rk])
        return value

    def _array(self, items: list[Any], dtype: str) -> Any:
        """A plain JavaScript array returned for a typed-array result: the numpy array, when
        every item fits the dtype exactly; else InvocationError naming the item."""
        try:
            return values.to_array(items, values.kind_of_dtype(dtype))
        except values.Refused as exc:
            raise InvocationError(f"{self.name} returned {values.shown(items)}, not "
                                  f"{self.sig.result_type}: {exc.why or exc.expected}") from None

    def _untag(self, value: Any) -> Any:
        """The prelude's tagged form of a result holding a Map, Set or BigInt -> Python."""
        if not isinstance(value, dict):
            return value
        (tag, inner), = value.items()
        if tag == "i":
            return int(inner)
        if tag == "f":  # NaN, Infinity, -Infinity
            return float(inner)
        if tag == "a":
            return [self._untag(x) for x in inner]
        if tag == "o":
            return {k: self._untag(x) for k, x in inner.items()}
        try:
            if tag == "m":
                return {self._untag(k): self._untag(x) for k, x in inner}
            return {self._untag(x) for x in inner}
        except TypeError:  # an object or array as a key or member
            what = "Map key" if tag == "m" else "Set member"
            raise InvocationError(f"{self.name} returned a {'Map' if tag == 'm' else 'Set'} with an "
                                  f"object or array as a {what}: a Python dict or set cannot hold "
                                  "it (return an array of pairs or of values instead)") from None

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

    def _failure(self, iso: _Isolate, status: int, body: bytes, ctx: CallContext) -> Exception:
        """The call did not produce a result: the isolate is replaced on the next call."""
        self._discard(iso)
        if ctx.aborted:
            return Aborted(f"{self.name}: execution {ctx.id} aborted")
        if ctx.timed_out and status in (Status.INTERRUPTED, Status.GONE):
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit")
        if status == Status.MEMORY:
            return LimitExceeded(f"{self.name}: memory limit of {self.memory_mb} MB exceeded "
                                 "(V8 heap)")
        if status == Status.ERROR:
            text = body[1:].decode(errors="replace").strip()
            line = self._cell_line(text)
            first = text.splitlines()[0] if text else "JavaScript error"
            return InvocationError(f"{self.name}: {first}" + (f" at cell line {line}" if line else ""))
        text = body.decode(errors="replace").strip()
        return InvocationError(f"{self.name}: execution stopped ({text or Status(status).name})")

    def _host_died(self, reason: str, others: list[str], ctx: CallContext | None) -> Exception:
        """The host ended during this call. Whose fault it was: a kill by the watchdog names
        the call it stopped; a crash is this call's only when no other call was in flight."""
        if ctx is not None and ctx.aborted:
            return Aborted(f"{self.name}: execution {ctx.id} aborted")
        if ctx is not None and ctx.timed_out:
            return FunctionTimeout(f"{self.name}: stopped at its {ctx.timeout:g} s time limit "
                                   "(the V8 host was restarted to stop it)")
        oom = re.search(r"out of memory|allocation failed|mmap error|cannot allocate|MemoryError",
                        reason, re.I)
        if others:
            return InvocationError(
                f"{self.name}: cut short because {reason}, while calls of {', '.join(others)} "
                "were running too; it is restarted for the next call")
        if oom:
            return LimitExceeded(f"{self.name}: the V8 host ran out of memory during this call "
                                 f"({reason}; memory limit {self.memory_mb} MB); it is restarted "
                                 "for the next call")
        return InvocationError(f"{self.name}: {reason} during this call; it is restarted for the "
                               "next call")

    def _setup_error(self, status: int, body: bytes) -> Exception:
        if status == Status.MEMORY:
            return LimitExceeded(f"{self.name}: the cell's top-level code exceeded the memory "
                                 f"limit of {self.memory_mb} MB")
        if status == Status.DIED:
            return self._host_died(body.decode(errors="replace"), [], None)
        if status == Status.ERROR:
            text = body[1:].decode(errors="replace").strip()
            line = self._cell_line(text)
            first = re.sub(r"^\S+?:\d+: ", "", text.splitlines()[0]) if text else "error"
            return InvocationError(f"{self.name}: the cell's top-level code failed: {first}"
                                   + (f" at cell line {line}" if line else ""))
        text = body.decode(errors="replace").strip()
        return InvocationError(f"{self.name}: could not start its isolate: {text or status}")


def raw_baseline(code: bytes, signature: Signature, name: str, args: tuple) -> Callable[[], Any]:
    """The bare engine call for benchmarks: ``MiniRacer().call(name, *args)`` on the same
    bundle, in this process (no host process, no limits, no console capture)."""
    from py_mini_racer import MiniRacer

    racer = MiniRacer()
    racer.eval(json.loads(code)["js"])
    racer.eval(f"var {name} = __fnb_cell.__fnb_entry;")
    return lambda: racer.call(name, *args)


__all__ = ["V8Runtime", "V8Function", "runtime", "decode_mappings", "raw_baseline"]
