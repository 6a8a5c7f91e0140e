"""The guest program: runs inside Pyodide, in every function's own interpreter.

The Pyodide host (``pyodide_host.mjs``) compiles this file into its memory snapshot; each
function gets an interpreter restored from that snapshot, in which :func:`init` installs the
console capture and the sandbox's Python-level refusals, drops every JavaScript object
Pyodide's own modules held (:func:`sever_javascript`) and returns :meth:`Guest.handle`, the
dispatcher the host calls for every request to that function. Memory and file limits are set
by the host around each call.

What keeps JavaScript out of reach is not here: once this set-up is done the host refuses
every JavaScript operation the interpreter's WASM module asks for. Everything in this module
is Python state the function could change (the import block only gives a clear message).

Replies are text: a two-digit status (docs/host-protocol.md) and a JSON object: ``v`` the
value, or ``t`` the error text and ``l`` its cell line; ``c`` the console (``[[level code,
text], ...]``) and ``d`` the dropped writes. The host appends its own fields.

The module also imports under CPython (the helpers without side effects can be tested there).
"""

from __future__ import annotations

import base64
import builtins
import gc
import io
import json
import linecache
import logging
import os
import sys
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

# Operations and statuses (docs/host-protocol.md; ANALYSE and BAD_RESULT are Pyodide's own).
LOAD, CALL, ANALYSE = 1, 2, 17
OK, ERROR, INTERRUPTED, MEMORY, HOST_ERROR = 0, 1, 2, 3, 5
BAD_RESULT = 16

#: Console level codes (the parent's ``ctx.log``): 0 log, 1 debug, 2 info, 3 warn, 4 error.
STDOUT, STDERR = 1, 4
RESULT_TYPES = {"i64": "int", "f64": "float", "bool": "bool", "str": "str", "bytes": "bytes"}
_dumps = json.dumps


class Console:
    """What the function wrote during one request, capped at ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[list[Any]] = []
        self.size = 0
        self.dropped = 0

    def add(self, code: int, text: str) -> None:
        if self.size + len(text) > self.max_bytes:
            self.dropped += text.count("\n") or 1
            return
        self.size += len(text)
        if self.parts and self.parts[-1][0] == code:
            self.parts[-1][1].append(text)
        else:
            self.parts.append([code, [text]])

    def take(self) -> str:
        """The JSON fields ``"c":...,"d":n`` and a fresh start."""
        lines = _dumps([[code, "".join(parts)] for code, parts in self.parts]) \
            if self.parts else "[]"
        out = f'"c":{lines},"d":{self.dropped}'
        self.parts.clear()
        self.size = self.dropped = 0
        return out


class Capture(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` into the console."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, console: Console, code: int, name: str) -> None:
        self.console = console
        self.code = code
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if s:
            self.console.add(self.code, s)
        return len(s)

    def flush(self) -> None:
        pass


class ToConsole(logging.Handler):
    """``logging`` records into the console at their level."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)
            return
        lvl = record.levelno
        self.console.add(0 if lvl < 20 else 2 if lvl < 30 else 3 if lvl < 40 else 4, msg + "\n")


def sliced_sleep(real_sleep: Callable[[float], None]) -> Callable[[float], None]:
    """``time.sleep`` in short slices, so an interrupt stops it."""

    def sleep(secs: float) -> None:
        if secs < 0:
            raise ValueError("sleep length must be non-negative")
        until = time.monotonic() + secs
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            real_sleep(min(left, 0.005))
            for _ in range(64):  # Pyodide looks at its interrupt buffer every 50 eval checks
                pass

    return sleep


def no_processes(*args: Any, **kwargs: Any) -> Any:
    raise OSError(38, "processes are not available to functions (sandbox)")


class Blocked:
    """A meta-path finder refusing the modules in ``names`` with a clear message (user code
    can remove it: the host's refusal of JavaScript is what holds)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(
                f"module {name!r} is not available to functions (sandbox: no JavaScript "
                "or host access)", name=name)
        return None


def _no_schedule(callback: Any, delay: float = 0) -> None:
    """asyncio's scheduling without JavaScript: nothing scheduled runs (work must not outlive
    its call; there is no event loop between calls)."""


#: Pyodide's own packages and modules: where its Python side keeps JavaScript objects.
PYODIDE_PACKAGES = frozenset({"js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core"})


def is_js(value: Any) -> bool:
    """A JavaScript object as Pyodide hands it to Python (an instance of a JsProxy class)."""
    return type(type(value)).__name__ == "_JsProxyMetaClass"


def sever_javascript() -> int:
    """Drop the JavaScript objects Pyodide's Python side holds: the modules ``js`` and
    ``pyodide_js`` and its import hooks for them, asyncio's scheduler, the package list (in
    its modules, and the objects of their classes). After set-up the host refuses any use of
    them (which ends the interpreter), so they are dropped before; asyncio keeps working
    without running anything scheduled. Returns how many references were dropped."""
    finders = [f for f in sys.meta_path
               if type(f).__name__ in ("JsFinder", "WindowsToLinuxPathFinder")]
    for finder in finders:
        sys.meta_path.remove(finder)
    modules = [m for name, m in list(sys.modules.items())
               if name.partition(".")[0] in PYODIDE_PACKAGES and isinstance(m, types.ModuleType)]
    holders: list[Any] = [sys.modules, *finders]
    for module in modules:
        names = vars(module)
        holders.append(names)
        if names.get("__name__") == "pyodide.webloop":
            names["scheduleCallback"] = _no_schedule
            names["create_once_callable"] = lambda fn, **_: fn
        for cls in [v for v in names.values()
                    if isinstance(v, type) and v.__module__ == module.__name__]:
            holders += [o for o in gc.get_referrers(cls) if type(o) is cls]
    dropped = 0
    for holder in holders:
        names = holder if isinstance(holder, dict) else getattr(holder, "__dict__", {})
        inner = [v for v in names.values() if isinstance(v, dict)] if names is not holder else []
        for mapping in (names, *inner):
            for key in [k for k, v in mapping.items() if is_js(v)]:
                del mapping[key]
                dropped += 1
    gc.collect()
    return dropped


def stop_tasks() -> None:
    """Cancel the asyncio tasks a call left behind (work must not outlive its call)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return
    try:
        loop = asyncio.get_event_loop()
        for task in asyncio.all_tasks(loop):
            task.cancel()
    except Exception:  # noqa: BLE001, S110 - no loop: nothing scheduled
        pass


def cell_line(exc: BaseException) -> int | None:
    """The last line of the cell in ``exc``'s traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "cell":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _not_text_key(value: Any, depth: int = 0) -> tuple[Any, ...]:
    """``(key,)``: the first dict key in a result that is not a str (json.dumps would make it
    one: ``{1: "a"}`` would come back as ``{"1": "a"}``); ``()`` when there is none."""
    if depth > 1000:
        return ()
    items: Any = ()
    if isinstance(value, dict):
        for k in value:
            if type(k) is not str:
                return (k,)
        items = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    for v in items:
        if isinstance(v, (dict, list, tuple)):
            found = _not_text_key(v, depth + 1)
            if found:
                return found
    return ()


def _surrogate(value: Any, depth: int = 0) -> str | None:
    """The first str in a result holding a surrogate code point (the host's JSON reader would
    join a pair written as two of them into one character)."""
    if isinstance(value, str):
        return value if any("\ud800" <= c <= "\udfff" for c in value) else None
    if depth > 1000:
        return None
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else \
        value if isinstance(value, (list, tuple)) else ()
    for v in items:
        found = _surrogate(v, depth + 1)
        if found is not None:
            return found
    return None


def _exact_text(value: Any, text: str) -> str:
    """``text`` (the JSON of a result) when it stands for ``value`` exactly; ValueError
    naming what would change otherwise."""
    if "{" in text:
        key = _not_text_key(value)
        if key:
            raise ValueError(f"returned a dict with the key {key[0]!r} ({type(key[0]).__name__}): "
                             "JSON object keys are text, it would arrive as "
                             f"{_dumps({key[0]: 0})[1:-4]}; use str keys")
    if "\\ud" in text:
        bad = _surrogate(value)
        if bad is not None:
            raise ValueError(f"returned text holding a surrogate code point ({bad[:40]!r}), "
                             "which is not Unicode text and cannot cross exactly")
    return text


def encode(value: Any, kind: str) -> str:
    """The result as JSON, checked against the return annotation (TypeError if it does not
    fit, ValueError/RecursionError if it is not JSON or would not cross exactly)."""
    if kind == "json":
        return _exact_text(value, _dumps(value))
    if kind == "unit":
        return "null"
    if kind == "i64":
        if isinstance(value, int) and not isinstance(value, bool):
            return str(int(value))
    elif kind == "f64":
        if isinstance(value, float):
            return _dumps(value)
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                exact = float(value) == value
            except OverflowError:
                exact = False
            if not exact:
                raise TypeError(f"returned int {value!r:.80}, which has no exact float value, "
                                "but its return annotation is float")
            return _dumps(float(value))
    elif kind == "bool":
        if isinstance(value, bool):
            return "true" if value else "false"
    elif kind == "str":
        if isinstance(value, str):
            return _exact_text(value, _dumps(value))
    elif kind == "bytes":
        if isinstance(value, (bytes, bytearray, memoryview)):
            return '"' + base64.b64encode(value).decode() + '"'
    raise TypeError(f"returned {type(value).__name__} {value!r:.80}, but its return "
                    f"annotation is {RESULT_TYPES[kind]}")


class Guest:
    """One function's side of its interpreter: its module, its console, its dispatcher."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.console = Console(config["console_bytes"])
        self.blocked = frozenset(config["blocked_modules"])
        self.fn: Callable[..., Any] | None = None
        self.b64: tuple[int, ...] = ()
        self.kind = "json"
        self.source = ""

    def install(self) -> None:
        """Console capture, sliced sleep, no processes, blocked modules (the process-wide
        state of this interpreter, which only this function uses)."""
        sys.stdout = sys.__stdout__ = Capture(self.console, STDOUT, "<stdout>")
        sys.stderr = sys.__stderr__ = Capture(self.console, STDERR, "<stderr>")
        sys.stdin = sys.__stdin__ = io.StringIO("")
        root = logging.getLogger()
        root.handlers[:] = [ToConsole(self.console)]
        root.setLevel(logging.DEBUG)
        time.sleep = sliced_sleep(time.sleep)
        import posix
        for mod in (os, posix):
            for name in ("system", "popen", "fork", "forkpty", "execv", "execve", "posix_spawn",
                         "posix_spawnp", "spawnv", "spawnve", "spawnl", "spawnle"):
                if hasattr(mod, name):
                    setattr(mod, name, no_processes)
        sever_javascript()
        sys.meta_path.insert(0, Blocked(self.blocked))
        for name in list(sys.modules):
            if name.partition(".")[0] in self.blocked:
                del sys.modules[name]

    # replies ---------------------------------------------------------------------------
    def reply(self, status: int, fields: str) -> str:
        return f"{status:02d}{{{fields},{self.console.take()}}}"

    def failure(self, status: int, exc: BaseException | None, text: str = "") -> str:
        line = None
        if exc is not None:
            text, line = self.report(exc)
        return self.reply(status, f'"t":{_dumps(text)},"l":{_dumps(line)}')

    def report(self, exc: BaseException) -> tuple[str, int | None]:
        """(message, cell line), and a traceback of the cell's frames to the console."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        line = cell_line(exc)
        source = self.source
        try:
            linecache.cache["cell"] = (len(source), None, source.splitlines(True), "cell")
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "cell"]
            if frames:
                self.console.add(STDERR, "Traceback (most recent call last):\n"
                                 + "".join(traceback.format_list(frames)) + text + "\n")
        except Exception:  # noqa: BLE001, S110 - the message alone is enough
            pass
        finally:
            linecache.cache.pop("cell", None)
        return text, line

    def guarded(self, body: Callable[[], Any]) -> tuple[Any, str | None]:
        """Run ``body()``; an error of the cell becomes its reply."""
        try:
            return body(), None
        except MemoryError as exc:
            gc.collect()
            return None, self.failure(MEMORY, exc)
        except KeyboardInterrupt:
            return None, self.failure(INTERRUPTED, None)
        except SystemExit as exc:
            return None, self.failure(ERROR, None, f"SystemExit: called sys.exit({exc.code!r})")
        except BaseException as exc:  # noqa: BLE001 - any error of the cell is its result
            return None, self.failure(ERROR, exc)

    # operations ------------------------------------------------------------------------
    def handle(self, op: int, body: str) -> str:
        try:
            if op == CALL:
                return self.call(json.loads(body))
            if op == LOAD:
                return self.load(*json.loads(body))
            if op == ANALYSE:  # functions_nb.languages.python.analyse, for newer syntax
                code, source, name = json.loads(body)
                scope: dict[str, Any] = {}
                exec(compile(code, "analyse", "exec", dont_inherit=True), scope)  # noqa: S102
                return self.reply(OK, '"v":' + _dumps(scope["analyse"](source, name)))
            return self.failure(HOST_ERROR, None, f"unknown operation {op}")
        except KeyboardInterrupt:
            return self.failure(INTERRUPTED, None)
        except MemoryError:
            gc.collect()
            return self.failure(MEMORY, None, "MemoryError")
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never raised to JS
            return self.failure(HOST_ERROR, None, f"{type(exc).__name__}: {exc}")

    def load(self, name: str, source: str, b64: list[int], kind: str,
             site: str | None = None) -> str:
        """Run the cell as the module ``cell`` (in sys.modules: dataclasses, pickle and string
        annotations look the defining module up there) and keep its function ``name``.
        ``site``: the folder holding the function's dependencies (written by the host), put
        on ``sys.path`` after the standard library (no bytecode is written there)."""
        if site and site not in sys.path:
            sys.path.append(site)
            sys.dont_write_bytecode = True
        module = types.ModuleType("cell")
        ns = module.__dict__
        ns["__builtins__"] = builtins
        sys.modules["cell"] = module
        self.source = source
        _, error = self.guarded(
            lambda: exec(compile(source, "cell", "exec", dont_inherit=True), ns))  # noqa: S102
        if error is not None:
            return error
        fn = ns.get(name)
        if not callable(fn):
            return self.failure(ERROR, None,
                                f"NameError: the cell defines no function named {name!r}")
        self.fn, self.b64, self.kind = fn, tuple(b64), kind
        return self.reply(OK, '"v":null')

    def call(self, args: list[Any]) -> str:
        fn = self.fn
        if fn is None:
            return self.failure(HOST_ERROR, None, "the function is not loaded")
        for i in self.b64:
            if i < len(args):  # an omitted parameter keeps its default
                args[i] = base64.b64decode(args[i])
        value, error = self.guarded(lambda: fn(*args))
        stop_tasks()
        if error is not None:
            return error
        try:
            text = encode(value, self.kind)
        except MemoryError:
            value = None
            gc.collect()
            return self.failure(MEMORY, None, "MemoryError: the result is too large")
        except (TypeError, ValueError, RecursionError) as exc:
            why = str(exc) if str(exc).startswith("returned ") else \
                f"returned a value that is not JSON-serializable: {exc}"
            return self.failure(BAD_RESULT, None, why)
        return self.reply(OK, '"v":' + text)


def init(config_json: str) -> Callable[[int, str], str]:
    """Set this interpreter up for one function; the dispatcher ``handle(op, body)``."""
    guest = Guest(json.loads(config_json))
    guest.install()
    return guest.handle
