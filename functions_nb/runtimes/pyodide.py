"""Python functions in Pyodide: one shared, sandboxed node host per kernel.

Calling convention: the artifact is the cell's source (JSON: entry name + source with the
cell's line offset). At its first call a function is loaded into the host as a module of its
own (``cell_<id>``, its own globals; the cell's top level runs then) and stays warm. Arguments
are checked here against the signature (int -> i64 range, float, bool, str, bytes, else JSON)
and sent as one JSON line (bytes as base64); the result comes back the same way, checked in
the guest against the return annotation. stdout -> console ``log``, stderr -> ``error``,
``logging`` -> its level. ``ctx.memory_bytes`` is the shared Python heap's footprint.

The host (``hosts/pyodide_host.mjs``) is one node process, started when a function is first
loaded (in the background) or called, restarted when it died, stopped at interpreter exit.
Requests are lines ``"<seq> <json>"`` on a pipe read synchronously by the worker thread that
runs Pyodide, one at a time (a lock serialises threads); interrupts go over the host's stdin
to its main thread, which writes Pyodide's interrupt buffer. It starts from a memory snapshot
(made by the first host, kept in the cache directory) holding the interpreter, common stdlib
modules and the guest prelude (:func:`_fnb_init`).

Limits: time -- at the deadline or on abort the call is interrupted (KeyboardInterrupt in the
guest; ``time.sleep`` sleeps in slices); code that does not stop within ``GRACE`` seconds is
stopped by killing the host (the next call starts a new one, functions reload lazily).
Memory -- per call, dlmalloc's footprint limit lets Python take at most ``memory_mb`` more from
the shared WASM heap (MemoryError -> LimitExceeded) and files written to the in-memory
filesystem get a budget of the same size (ENOSPC). Memory already free inside the heap is not
charged, so the bound is "limit + free heap at call start" (the heap is trimmed after calls
that grew it). The whole heap is capped at ``FUNCTIONS_NB_PYODIDE_HEAP_MB`` (1536 MB).

Isolation (see :func:`sandbox_layers`): node's permission model (reads only of the Pyodide
package, the host script and the snapshot; no writes, no child processes), an empty
environment, and -- where bubblewrap works -- no network, private pid/ipc/uts/user namespaces
(running as nobody) and a filesystem holding only node, its libraries and those files. Inside
Pyodide ``js``/``pyodide_js`` are gone, ``ctypes``/``pyodide``/``micropip`` cannot be imported,
``os.system`` and friends are refused, and JavaScript code generation from strings throws (no
route from a JS object to ``process``). Functions sharing a host are separate namespaces, not
separate security domains: the boundary protects the machine, not functions from each other.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import inspect
import itertools
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import CONSOLE_MAX_BYTES, CONSOLE_MAX_LINES, cache_dir, node_modules
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
from .base import CallContext, ModuleCache, int_argument, json_default

HOST_SCRIPT = Path(__file__).resolve().parent.parent / "hosts" / "pyodide_host.mjs"
#: After interrupting a call, wait this long for it to stop before killing the host.
GRACE = 0.06
#: How often a waiting call looks at its abort flag.
POLL = 0.01
#: Host start-up (spawn -> ready) may take this long (a cold start without snapshot is ~3 s).
START_TIMEOUT = 120.0
HEAP_MB = int(os.environ.get("FUNCTIONS_NB_PYODIDE_HEAP_MB", "1536"))
_I64 = (-(2**63), 2**63 - 1)


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


def _permission_flag(version: tuple[int, int, int]) -> str | None:
    if version >= (22, 13, 0):
        return "--permission"
    if version >= (20, 0, 0):
        return "--experimental-permission"
    return None


@lru_cache(maxsize=4)
def _ldd(binary: str) -> tuple[str, ...]:
    """Shared libraries ``binary`` loads (paths as the dynamic loader looks them up)."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(re.findall(r"(/\S+)\s+\(0x", out))


def _bwrap_prefix(node: str, readable: list[str]) -> list[str]:
    """bubblewrap arguments: no network, private namespaces, only node + ``readable``."""
    bwrap = shutil.which("bwrap")
    assert bwrap
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev", "--chdir", "/"]
    seen = set()
    for path in [node, *_ldd(node), *readable]:
        if path not in seen:
            seen.add(path)
            args += ["--ro-bind", os.path.realpath(path), path]
    return args


def sandbox_command(node_args: list[str], readable: list[str],
                    layers: dict[str, Any] | None = None) -> list[str]:
    """``node <node_args>`` inside every layer that holds here: bubblewrap (when it works)
    and node's permission model allowing reads of ``readable`` only (plus workers). Run it
    with an empty environment (``env={}``)."""
    layers = layers or sandbox_layers()
    node = layers["node"]
    if node is None:
        raise ToolchainMissing("node is needed to run Python functions (Pyodide): "
                               "apt-get install -y nodejs")
    flags = ["--no-warnings"]
    if layers["permission_flag"]:
        flags += [layers["permission_flag"], *(f"--allow-fs-read={p}" for p in readable),
                  "--allow-worker"]
    prefix = _bwrap_prefix(node, readable) if layers["bwrap"] else []
    return [*prefix, node, *flags, *node_args]


@lru_cache(maxsize=1)
def sandbox_layers() -> dict[str, Any]:
    """Which isolation layers hold on this machine (probed once per process).

    ``node_permissions``: node's permission model (fs read only of Pyodide + host script, no
    writes, no child processes); ``clean_env``: the host starts with an empty environment;
    ``bwrap``: bubblewrap works here, giving ``no_network``, ``pid_namespace``,
    ``user_namespace`` (runs as nobody) and ``private_filesystem``; ``js_hardening``: the
    in-Pyodide measures (no ``js``/``pyodide_js``, no code generation from strings).
    """
    node = node_binary()
    layers: dict[str, Any] = {"node": node, "node_permissions": False, "permission_flag": None,
                              "clean_env": True, "bwrap": False, "no_network": False,
                              "pid_namespace": False, "user_namespace": False,
                              "private_filesystem": False, "js_hardening": True, "detail": ""}
    if node is None:
        layers["detail"] = "node not found"
        return layers
    flag = _permission_flag(_node_version(node))
    layers["node_permissions"] = flag is not None
    layers["permission_flag"] = flag
    if os.environ.get("FUNCTIONS_NB_PYODIDE_BWRAP", "1") == "0":
        layers["detail"] = "bubblewrap disabled by FUNCTIONS_NB_PYODIDE_BWRAP=0"
        return layers
    if shutil.which("bwrap") is None:
        layers["detail"] = "bubblewrap not installed (apt-get install -y bubblewrap): " \
                           "no network isolation"
        return layers
    try:
        proc = subprocess.run([*_bwrap_prefix(node, []), node, "-e",
                               "process.exit(Object.keys(require('os').networkInterfaces())"
                               ".some((n) => n !== 'lo') ? 3 : 0)"],
                              capture_output=True, text=True, timeout=30, env={}, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        layers["detail"] = f"bubblewrap failed: {exc}"
        return layers
    if proc.returncode != 0:
        layers["detail"] = ("bubblewrap cannot create namespaces here (user namespaces "
                            f"disabled?): {proc.stderr.strip()[:200]}")
        return layers
    layers.update(bwrap=True, no_network=True, pid_namespace=True, user_namespace=True,
                  private_filesystem=True)
    return layers


def describe_layers(layers: dict[str, Any] | None = None) -> str:
    """One line for ``func doctor``."""
    layers = layers or sandbox_layers()
    held = [name for name in ("node_permissions", "clean_env", "bwrap", "no_network",
                              "pid_namespace", "user_namespace", "private_filesystem",
                              "js_hardening") if layers.get(name)]
    text = "sandbox: " + ", ".join(held)
    missing = [name for name in ("node_permissions", "bwrap") if not layers.get(name)]
    if missing:
        text += f"; missing: {', '.join(missing)}"
    if layers.get("detail"):
        text += f" ({layers['detail']})"
    return text


# -- the guest side: runs inside Pyodide, once per host ------------------------------------------

def _fnb_init(api: Any, config_json: str) -> Callable[[str], str]:
    """Set up the guest (console capture, limits, import blocks) and return the dispatcher
    ``handle(request_json) -> reply_json``. Runs inside Pyodide: shipped by source."""
    import base64
    import builtins
    import gc
    import io
    import json
    import linecache
    import logging
    import os
    import posix
    import sys
    import time
    import traceback
    import types

    cfg = json.loads(config_json)
    max_bytes = cfg["console_bytes"]
    blocked = frozenset(cfg["blocked_modules"])
    dumps, loads, b64d, b64e = json.dumps, json.loads, base64.b64decode, base64.b64encode
    begin, end = api.begin, api.end
    fns = {}
    console = []
    state = [0, 0]  # console bytes, dropped writes

    def add(code, text):
        n = len(text)
        if state[0] + n > max_bytes:
            state[1] += text.count("\n") or 1
            return
        state[0] += n
        if console and console[-1][0] == code:
            console[-1][1].append(text)
        else:
            console.append([code, [text]])

    class Capture(io.TextIOBase):
        encoding = "utf-8"
        errors = "strict"

        def __init__(self, code, name):
            self.code = code
            self.name = name

        def writable(self):
            return True

        def write(self, s):
            if not isinstance(s, str):
                raise TypeError(f"write() argument must be str, not {type(s).__name__}")
            if s:
                add(self.code, s)
            return len(s)

        def flush(self):
            pass

    sys.stdout = sys.__stdout__ = Capture(1, "<stdout>")
    sys.stderr = sys.__stderr__ = Capture(4, "<stderr>")
    sys.stdin = sys.__stdin__ = io.StringIO("")

    class ToConsole(logging.Handler):
        def emit(self, record):
            try:
                msg = self.format(record)
            except Exception:  # noqa: BLE001 - logging's own convention
                self.handleError(record)
                return
            lvl = record.levelno
            add(0 if lvl < 20 else 2 if lvl < 30 else 3 if lvl < 40 else 4, msg + "\n")

    root = logging.getLogger()
    root.handlers[:] = [ToConsole()]
    root.setLevel(logging.DEBUG)

    real_sleep = time.sleep

    def sleep(secs):
        """time.sleep in short slices, so an interrupt stops it."""
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

    time.sleep = sleep

    def no_processes(*args, **kwargs):
        raise OSError(38, "processes are not available to functions (sandbox)")

    for mod in (os, posix):
        for name in ("system", "popen", "fork", "forkpty", "execv", "execve", "posix_spawn",
                     "posix_spawnp", "spawnv", "spawnve", "spawnl", "spawnle"):
            if hasattr(mod, name):
                setattr(mod, name, no_processes)

    class Blocked:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.partition(".")[0] in blocked:
                raise ModuleNotFoundError(
                    f"module {name!r} is not available to functions (sandbox: no JavaScript "
                    "or host access)", name=name)
            return None

    sys.meta_path.insert(0, Blocked)
    for name in list(sys.modules):
        if name.partition(".")[0] in blocked:
            del sys.modules[name]

    def cell_line(exc):
        line = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "cell":
                line = tb.tb_lineno
            tb = tb.tb_next
        return line

    def report(exc, source):
        """(message, cell line) and a traceback of the cell's frames to the console."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        line = cell_line(exc)
        try:
            linecache.cache["cell"] = (len(source), None, source.splitlines(True), "cell")
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "cell"]
            if frames:
                add(4, "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
                    + text + "\n")
        except Exception:  # noqa: BLE001, S110 - the message alone is enough
            pass
        finally:
            linecache.cache.pop("cell", None)
        return text, line

    def finish(head, footprint):
        lines = dumps([[code, "".join(parts)] for code, parts in console]) if console else "[]"
        out = head + "," + lines + "," + str(state[1]) + "," + str(footprint) + "]"
        console.clear()
        state[0] = state[1] = 0
        return out

    def fail(kind, text, line, footprint):
        return finish("[1," + dumps(kind) + "," + dumps(text) + "," + dumps(line), footprint)

    def encode(value, kind):
        """The result as JSON, checked against the return annotation."""
        if kind == "json":
            return dumps(value)
        if kind == "unit":
            return "null"
        if kind == "i64":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(int(value))
        elif kind == "f64":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return dumps(float(value))
        elif kind == "bool":
            if isinstance(value, bool):
                return "true" if value else "false"
        elif kind == "str":
            if isinstance(value, str):
                return dumps(value)
        elif kind == "bytes":
            if isinstance(value, (bytes, bytearray, memoryview)):
                return '"' + b64e(value).decode() + '"'
        raise TypeError(f"returned {type(value).__name__} {value!r:.80}, but its return "
                        f"annotation is {RESULT_TYPES[kind]}")

    RESULT_TYPES = {"i64": "int", "f64": "float", "bool": "bool", "str": "str", "bytes": "bytes"}

    def guarded(source, footprint, body):
        """Run ``body()``; errors of the cell become replies (memory, interrupt, exit, error)."""
        try:
            return body(), None
        except MemoryError as exc:
            gc.collect()
            text, line = report(exc, source)
            return None, fail("memory", text, line, end(0))
        except KeyboardInterrupt:
            return None, fail("interrupt", "", None, end(footprint))
        except SystemExit as exc:
            return None, fail("error", f"SystemExit: called sys.exit({exc.code!r})", None,
                              end(footprint))
        except BaseException as exc:  # noqa: BLE001 - any error of the cell is its result
            text, line = report(exc, source)
            return None, fail("error", text, line, end(footprint))

    def run(fid, args):
        loaded = fns.get(fid)
        if loaded is None:
            return fail("gone", "", None, 0)
        fn, b64, kind, limit, source = loaded
        for i in b64:
            args[i] = b64d(args[i])
        footprint = begin(limit)
        value, error = guarded(source, footprint, lambda: fn(*args))
        if error is not None:
            return error
        try:
            head = "[0," + encode(value, kind)
        except MemoryError:
            value = None
            gc.collect()
            return fail("memory", "MemoryError: the result is too large", None, end(0))
        except (TypeError, ValueError, RecursionError) as exc:
            text = str(exc) if str(exc).startswith("returned ") else \
                f"returned a value that is not JSON-serializable: {exc}"
            return fail("result", text, None, end(footprint))
        return finish(head, end(footprint))

    def load(fid, name, source, b64, kind, limit):
        # A module of its own (in sys.modules while loaded: dataclasses, pickle and string
        # annotations look the defining module up there).
        module = types.ModuleType(f"cell_{fid}")
        ns = module.__dict__
        ns["__builtins__"] = builtins
        sys.modules[module.__name__] = module

        def run_cell():
            exec(compile(source, "cell", "exec", dont_inherit=True), ns)

        footprint = begin(limit)
        _, error = guarded(source, footprint, run_cell)
        fn = ns.get(name)
        if error is not None or not callable(fn):
            sys.modules.pop(module.__name__, None)
        if error is not None:
            return error.replace('[1,"error"', '[1,"load"', 1)
        if not callable(fn):
            return fail("load", f"NameError: the cell defines no function named {name!r}", None,
                        end(footprint))
        fns[fid] = (fn, tuple(b64), kind, limit, source)
        return finish("[0,null", end(footprint))

    def handle(line):
        try:
            msg = loads(line)
            op = msg[0]
            if op == "c":
                return run(msg[1], msg[2])
            if op == "l":
                return load(*msg[1:])
            if op == "u":
                for fid in msg[1]:
                    fns.pop(fid, None)
                    sys.modules.pop(f"cell_{fid}", None)
                gc.collect()
                return finish("[0,null", end(0))
            if op == "a":  # functions_nb.languages.python.analyse, for newer syntax
                scope = {}
                exec(compile(msg[1], "analyse", "exec", dont_inherit=True), scope)
                return finish("[0," + dumps(scope["analyse"](msg[2], msg[3])), end(0))
            if op == "p":
                return finish("[0," + dumps({"functions": len(fns), "python": sys.version}), end(0))
            return fail("host", f"unknown request {op!r}", None, end(0))
        except KeyboardInterrupt:
            return fail("interrupt", "", None, end(0))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never raised to JS
            return fail("host", f"{type(exc).__name__}: {exc}", None, end(0))

    return handle


@lru_cache(maxsize=1)
def guest_prelude() -> str:
    """The source the host runs first: :func:`_fnb_init`, evaluating to the function."""
    return "from __future__ import annotations\n" + inspect.getsource(_fnb_init) + "\n_fnb_init\n"


#: Modules functions may not import: JavaScript/host access, raw memory, package loading.
BLOCKED_MODULES = ("js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "micropip",
                   "ctypes", "_ctypes")


# -- the host process ----------------------------------------------------------------------------

class HostDied(Exception):
    """The host process exited (or was killed) while a request was outstanding."""


class Host:
    """One running node process hosting Pyodide (see the module docstring)."""

    def __init__(self) -> None:
        pyodide_versions()  # ToolchainMissing when the npm package is not installed
        self.layers = sandbox_layers()
        self.generation = next(_generations)
        self.seq = itertools.count(1)
        self.dead = False
        self._buf = bytearray()
        self._fds: list[int] = []
        self.log_path = cache_dir() / "pyodide" / f"host-{os.getpid()}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.generation == 1:
            _remove_stale_logs(self.log_path.parent)
        started = time.perf_counter()
        self._spawn()
        try:
            self.info = self._handshake()
        except BaseException:
            self.kill()
            raise
        #: spawn -> ready, in ms (what a cold start costs before the first call).
        self.start_ms = (time.perf_counter() - started) * 1000

    # start ---------------------------------------------------------------------------------
    def _spawn(self) -> None:
        pyo = str(pyodide_dir().resolve())
        script = str(HOST_SCRIPT)
        snap = _snapshot_path()
        self.snapshot_used = snap.exists()
        readable = [pyo, script, *([str(snap)] if self.snapshot_used else [])]
        args = ["--pyodide", pyo, "--heap-mb", str(HEAP_MB),
                *(["--snapshot", str(snap)] if self.snapshot_used else ["--make-snapshot"])]
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        self._req_w, self._res_r = req_w, res_r
        self._fds = [req_w, res_r]
        cmd = sandbox_command([script, *args, "--in", str(req_r), "--out", str(res_w)], readable,
                              self.layers)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the host
        try:
            self.proc = _spawner.popen(cmd, stdin=subprocess.PIPE, stdout=self._log,
                                       stderr=self._log, pass_fds=(req_r, res_w), env={},
                                       start_new_session=True, cwd="/")
        except BaseException:
            self._close_fds()
            self._log.close()
            raise
        finally:
            os.close(req_r)
            os.close(res_w)
        self._poll = select.poll()
        self._poll.register(res_r, select.POLLIN)

    def _handshake(self) -> dict[str, Any]:
        setup = {"prelude": guest_prelude(), "digest": _prelude_digest(),
                 "config": {"console_bytes": CONSOLE_MAX_BYTES + 1024,
                            "console_lines": CONSOLE_MAX_LINES,
                            "blocked_modules": list(BLOCKED_MODULES)}}
        self._write(b"0 " + json.dumps(setup).encode() + b"\n")
        deadline = time.monotonic() + START_TIMEOUT
        info = json.loads(self._read_line(deadline).partition(b" ")[2])
        if not self.snapshot_used:
            header = json.loads(self._read_line(deadline).partition(b" ")[2])
            _save_snapshot(self._read_exact(header["snapshot"], deadline))
        elif not info.get("snapshot"):
            _snapshot_path().unlink(missing_ok=True)  # unusable: the next start makes a new one
        return info

    def _read_line(self, deadline: float) -> bytes:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                return line
            self._fill_until(deadline)

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill_until(deadline)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _fill_until(self, deadline: float) -> None:
        if not self._fill(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
            self.kill()
            raise HostDied(f"the Python host did not answer within {START_TIMEOUT:g} s"
                           f"{self.log_tail()}")

    def _fill(self, wait: float) -> bool:
        """Read what the host sent within ``wait`` seconds; False when nothing came."""
        if not self._poll.poll(wait * 1000):
            return False
        data = os.read(self._res_r, 1 << 20)
        if not data:
            self.kill()
            raise HostDied(f"the Python host exited{self.log_tail()}")
        self._buf += data
        return True

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._req_w, view):]
        except OSError as exc:  # broken pipe: the host is gone
            self.kill()
            raise HostDied(f"the Python host exited{self.log_tail()}") from exc

    # requests ------------------------------------------------------------------------------
    def request(self, body: bytes, ctx: CallContext | None, name: str) -> list[Any]:
        """Send one request; wait for its reply, interrupting at the deadline or on abort.

        The caller holds the runtime lock. Raises FunctionTimeout / Aborted (after killing the
        host if the code would not stop) or HostDied.
        """
        seq = next(self.seq)
        self._write(b"%d %s\n" % (seq, body))
        head = b"%d " % seq
        interrupted = 0.0
        buf = self._buf
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                line = bytes(buf[:nl])
                del buf[:nl + 1]
                if not line.startswith(head):
                    continue  # a late answer to an abandoned request
                reply = json.loads(line[len(head):])
                if reply[1] == "fatal":
                    self.kill()
                return reply
            if ctx is None:
                self._fill_until(time.monotonic() + START_TIMEOUT)
                continue
            now = time.monotonic()
            if not interrupted:
                if ctx.aborted or now >= ctx.deadline:
                    self._interrupt(seq)
                    interrupted = now
                    continue
                self._fill(min(ctx.deadline - now, POLL))
            elif now - interrupted >= GRACE:
                self.kill()
                ctx.log(3, "the function did not stop when interrupted; the Python host was "
                           "restarted")
                raise _stopped(ctx, name)
            else:
                self._fill(min(GRACE - (now - interrupted), POLL))

    def _interrupt(self, seq: int) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"%d\n" % seq)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    # stop ----------------------------------------------------------------------------------
    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def kill(self) -> None:
        """Kill the host (and its sandbox) now and reap it."""
        if self.dead:
            return
        self.dead = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        self._reap(5.0)

    def stop(self, timeout: float = 2.0) -> None:
        """Close the pipes so the host exits by itself; kill it if it does not."""
        if self.dead:
            return
        self._close_pipes()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self.dead = True
        self._reap(1.0)
        self.log_path.unlink(missing_ok=True)

    def _reap(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self._close_pipes()
        self._log.close()

    def _close_pipes(self) -> None:
        """Our ends of the request/reply pipes and the host's stdin."""
        self._close_fds()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass

    def _close_fds(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_bytes()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip()][-8:]
        return (":\n" + "\n".join(lines)) if lines else ""


_generations = itertools.count(1)


class _Spawner:
    """Starts host processes from one long-lived thread.

    bwrap's ``--die-with-parent`` (PR_SET_PDEATHSIG) fires when the *thread* that forked the
    sandbox exits, so a host started from a short-lived thread (a background start, an executor
    worker) would be killed with it.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]] = \
            queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="functions-nb-pyodide-spawn",
                                                daemon=True)
                self._thread.start()
        box: list[Any] = [None, None]
        done = threading.Event()
        self._queue.put((lambda: subprocess.Popen(cmd, **kwargs), box, done))
        done.wait()
        if box[1] is not None:
            raise box[1]
        return box[0]

    def _serve(self) -> None:
        while True:
            job, box, done = self._queue.get()
            try:
                box[0] = job()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box[1] = exc
            done.set()


_spawner = _Spawner()


def _remove_stale_logs(folder: Path) -> None:
    """Host logs of processes that are gone (a log is kept after a crash, for its message)."""
    for log in folder.glob("host-*.log"):
        pid = log.stem.removeprefix("host-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            log.unlink(missing_ok=True)


def _stopped(ctx: CallContext, name: str) -> Exception:
    if ctx.aborted:
        return Aborted(f"{name}: execution {ctx.id} aborted")
    ctx.timed_out = True
    return FunctionTimeout(f"{name}: stopped at its {ctx.timeout:g} s time limit")


def _snapshot_path() -> Path:
    version, _ = pyodide_versions()
    node = node_binary() or ""
    key = hashlib.sha256(f"{version}|{_node_version(node)}|{HEAP_MB}|{_prelude_digest()}|"
                         f"{HOST_SCRIPT.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "pyodide" / f"snapshot-{version}-{key}.bin"


@lru_cache(maxsize=1)
def _prelude_digest() -> str:
    return hashlib.sha256(guest_prelude().encode()).hexdigest()[:16]


def _save_snapshot(data: bytes) -> None:
    path = _snapshot_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)  # readable by the sandbox's user
    os.replace(tmp, path)
    for old in path.parent.glob("snapshot-*.bin"):  # made for another version or prelude
        if old != path:
            old.unlink(missing_ok=True)


# -- the runtime ---------------------------------------------------------------------------------

class PyodideRuntime:
    """Process-wide: the shared host (started lazily, restarted when it died) and its lock."""

    kind = "pyodide"

    def __init__(self) -> None:
        self._lock = threading.Lock()         # one request at a time
        self._start_lock = threading.Lock()   # one host start at a time
        self._host: Host | None = None
        self._ids = itertools.count(1)
        self._pending_unload: list[int] = []
        self._unload_lock = threading.Lock()
        self.pid = os.getpid()
        #: Hosts started by this runtime (restarts included).
        self.starts = 0
        atexit.register(self.shutdown)

    # host lifecycle ------------------------------------------------------------------------
    def host(self, ctx: CallContext | None = None, name: str = "") -> Host:
        """The running host; starts one if there is none (waiting for a start elsewhere
        honours ``ctx``'s abort flag)."""
        host = self._host
        if host is not None and host.alive():
            return host
        if ctx is not None:
            while not self._start_lock.acquire(timeout=POLL):
                if ctx.aborted:
                    raise Aborted(f"{name}: execution {ctx.id} aborted")
        else:
            self._start_lock.acquire()
        try:
            host = self._host
            if host is not None and host.alive():
                return host
            if host is not None:
                host.kill()
            self._host = None
            try:
                self._host = Host()
            except HostDied as exc:
                raise InvocationError(str(exc)) from None
            self.starts += 1
            return self._host
        finally:
            self._start_lock.release()

    def start_background(self) -> None:
        """Start the host in a background thread (no-op when it runs or is starting)."""
        host = self._host
        if (host is not None and host.alive()) or self._start_lock.locked():
            return

        def start() -> None:
            try:
                self.host()
            except Exception:  # noqa: BLE001, S110 - the call that needs the host reports it
                pass

        threading.Thread(target=start, name="functions-nb-pyodide-start", daemon=True).start()

    def restart(self) -> None:
        """Stop the host; the next call starts a fresh one (functions reload lazily)."""
        with self._lock:
            self._stop_host()

    def shutdown(self) -> None:
        """Stop the host (registered with atexit)."""
        acquired = self._lock.acquire(timeout=2.0)
        try:
            self._stop_host()
        finally:
            if acquired:
                self._lock.release()

    def _stop_host(self) -> None:
        with self._start_lock:
            host, self._host = self._host, None
        if host is not None:
            host.stop()

    # calls -----------------------------------------------------------------------------------
    def acquire(self, ctx: CallContext, name: str) -> None:
        """Take the request lock, honouring the call's deadline and abort flag."""
        if self._lock.acquire(blocking=False):
            return
        while True:
            if ctx.aborted:
                raise Aborted(f"{name}: execution {ctx.id} aborted")
            left = ctx.deadline - time.monotonic()
            if left <= 0:
                ctx.timed_out = True
                raise FunctionTimeout(f"{name}: stopped at its {ctx.timeout:g} s time limit "
                                      "(waiting for the shared Python host)")
            if self._lock.acquire(timeout=min(left, POLL)):
                return

    def release(self) -> None:
        self._lock.release()

    def flush_unloads(self, host: Host) -> None:
        """Send deferred unloads (the caller holds the lock)."""
        with self._unload_lock:
            fids, self._pending_unload = self._pending_unload, []
        if fids:
            host.request(json.dumps(["u", fids]).encode(), None, "unload")

    def unload(self, fid: int, generation: int) -> None:
        """Drop a function's namespace from the host (now, or before the next request)."""
        host = self._host
        if host is None or host.generation != generation or not host.alive():
            return
        if self._lock.acquire(blocking=False):
            try:
                host.request(json.dumps(["u", [fid]]).encode(), None, "unload")
            except HostDied:
                pass
            finally:
                self._lock.release()
        else:
            with self._unload_lock:
                self._pending_unload.append(fid)

    def analyse(self, code: str, source: str, name: str) -> dict[str, Any]:
        """Run ``analyse(source, name)`` (defined by ``code``) with Pyodide's own Python."""
        host = self.host()
        with self._lock:
            reply = host.request(json.dumps(["a", code, source, name]).encode(), None, "analyse")
        if reply[0] != 0:
            raise InvocationError(f"analysing the cell in Pyodide failed: {reply[2]}")
        return reply[1]

    def ping(self) -> dict[str, Any]:
        """Round trip to the host (starting it if needed): its function count and Python."""
        host = self.host()
        with self._lock:
            return host.request(b'["p"]', None, "ping")[1]

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None) -> PyodideFunction:
        fn = PyodideFunction(self, code, signature, memory_mb, name, next(self._ids))
        self.start_background()
        return fn


#: The process-wide runtime (created on first use; the host starts on first load).
runtime: ProcessWide[PyodideRuntime] = ProcessWide(PyodideRuntime)


def _after_fork_in_child() -> None:
    """A forked child must not talk to (or stop) its parent's host: it gets a fresh runtime
    state and starts its own host when it needs one."""
    rt = runtime.peek()
    if rt is not None:
        host, rt._host = rt._host, None
        rt._lock = threading.Lock()
        rt._start_lock = threading.Lock()
        rt._unload_lock = threading.Lock()
        rt._pending_unload = []
        rt.pid = os.getpid()
        if host is not None:
            host.dead = True
            host._close_fds()
    global _spawner
    _spawner = _Spawner()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- argument conversion ---------------------------------------------------------------------

def _bad(sig: Signature, pname: str, ptype: str, value: Any, why: str = "") -> BadArguments:
    return BadArguments(f"{sig}: argument {pname!r} expects {ptype}, got "
                        f"{type(value).__name__} {value!r:.100}{why}")


def _converter(kind: str, sig: Signature, pname: str, ptype: str) -> Callable[[Any], Any] | None:
    """A function checking (and converting) one argument; None when JSON encoding checks it."""
    if kind == "i64":
        lo, hi = _I64

        def conv_int(v: Any) -> Any:
            return int_argument(v, lo, hi, sig, pname, ptype)
        return conv_int
    if kind == "f64":
        def conv_float(v: Any) -> Any:
            if type(v) is float:
                return v
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
                raise _bad(sig, pname, ptype, v)
            return float(v)
        return conv_float
    if kind == "bool":
        def conv_bool(v: Any) -> Any:
            if v is True or v is False:
                return v
            if type(v).__name__ == "bool_":
                return bool(v)
            raise _bad(sig, pname, ptype, v)
        return conv_bool
    if kind == "str":
        def conv_str(v: Any) -> Any:
            if not isinstance(v, str):
                raise _bad(sig, pname, ptype, v)
            return v
        return conv_str
    if kind == "bytes":
        def conv_bytes(v: Any) -> Any:
            if not isinstance(v, (bytes, bytearray, memoryview)):
                raise _bad(sig, pname, ptype, v)
            return base64.b64encode(v).decode("ascii")
        return conv_bytes
    return None


_dumps = json.JSONEncoder(separators=(",", ":"), default=json_default).encode


class PyodideFunction:
    """One function version: its namespace in the host, created at the first call."""

    def __init__(self, rt: PyodideRuntime, code: bytes, signature: Signature, memory_mb: int,
                 name: str, fid: int) -> None:
        try:
            art = json.loads(code)
            source, entry = art["source"], art["entry"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvocationError(f"{name}: not a Python function artifact ({exc})") from None
        self.rt = rt
        self.sig = signature
        self.name = name
        self.memory_limit = int(memory_mb) * 1024 * 1024
        self.fid = fid
        self._nparams = len(signature.params)
        self._convs = [(i, c) for i, p in enumerate(signature.params)
                       if (c := _converter(p.kind, signature, p.name, p.type)) is not None]
        self._json_params = [i for i, p in enumerate(signature.params) if p.kind == "json"]
        self._bytes_result = signature.result == "bytes"
        b64 = [i for i, p in enumerate(signature.params) if p.kind == "bytes"]
        result = signature.result if signature.result in ("i64", "f64", "bool", "str", "bytes",
                                                          "unit") else "json"
        self._load_body = json.dumps(["l", self.fid, entry, source, b64, result,
                                      self.memory_limit]).encode()
        self._prefix = b'["c",%d,' % self.fid
        self._generation = 0  # host generation this function is loaded into (0: none)

    # the call path ---------------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if len(args) != self._nparams:
            self.sig.check_arity(args)
        values = list(args)
        for i, conv in self._convs:
            values[i] = conv(values[i])
        try:
            body = self._prefix + _dumps(values).encode() + b"]"
        except (TypeError, ValueError) as exc:
            raise self._json_error(values, exc) from None
        rt = self.rt
        host = rt._host
        if host is None or not host.alive():
            waited = time.monotonic()
            host = rt.host(ctx, self.name)
            ctx.deadline += time.monotonic() - waited  # starting the host is not the call's time
        rt.acquire(ctx, self.name)
        try:
            if not host.alive():  # stopped or crashed while we waited for the lock
                host = rt.host(ctx, self.name)
            if rt._pending_unload:
                rt.flush_unloads(host)
            if self._generation != host.generation:
                self._load(host, ctx)
            reply = host.request(body, ctx, self.name)
            if reply[1] == "gone":  # unloaded behind our back (closed, then called again)
                self._load(host, ctx)
                reply = host.request(body, ctx, self.name)
        except HostDied as exc:
            raise InvocationError(f"{self.name}: {exc}") from None
        finally:
            rt.release()
        return self._check(reply, ctx)

    def _load(self, host: Host, ctx: CallContext) -> None:
        """Create the function's namespace in ``host`` (runs the cell's top level)."""
        ctx.cold = True
        self._check(host.request(self._load_body, ctx, self.name), ctx)
        self._generation = host.generation

    def _check(self, reply: list[Any], ctx: CallContext) -> Any:
        """Console and memory into ``ctx``; the value, or raise the guest's error."""
        console, dropped, footprint = reply[-3], reply[-2], reply[-1]
        for code, text in console:
            if code:
                ctx.log(-code, text)
            else:
                ctx.log(0, text[:-1] if text.endswith("\n") else text)
        if dropped:
            ctx.dropped += dropped
        if footprint:
            ctx.memory_bytes = footprint
        if reply[0] == 0:
            value = reply[1]
            if self._bytes_result and value is not None:
                return base64.b64decode(value)
            return value
        kind, text, line = reply[1], reply[2], reply[3]
        where = f" at cell line {line}" if line else ""
        if kind == "interrupt":
            raise _stopped(ctx, self.name)
        if kind == "memory":
            raise LimitExceeded(f"{self.name}: memory limit of {self.memory_limit >> 20} MB "
                                f"exceeded ({text}{where})")
        if kind == "fatal":
            raise InvocationError(f"{self.name}: the Python host failed ({text}); it restarts "
                                  "at the next call")
        if kind == "host":
            raise InvocationError(f"{self.name}: internal error in the Python host: {text}")
        if kind == "load":
            raise InvocationError(f"{self.name}: the cell failed when loaded: {text}{where}")
        return self._raise_error(kind, text, where)

    def _raise_error(self, kind: str, text: str, where: str) -> Any:
        if kind == "result":
            raise InvocationError(f"{self.name} {text.removeprefix('TypeError: ')}")
        raise InvocationError(f"{self.name} raised {text}{where}")

    def _json_error(self, values: list[Any], exc: Exception) -> BadArguments:
        for i in self._json_params:
            try:
                _dumps(values[i])
            except (TypeError, ValueError) as err:
                p = self.sig.params[i]
                return _bad(self.sig, p.name, p.type, values[i], f" (not JSON-serializable: {err})")
        return BadArguments(f"{self.sig}: arguments are not JSON-serializable: {exc}")

    def close(self) -> None:
        """Drop the namespace from the host (a later call loads it again)."""
        generation, self._generation = self._generation, 0
        if generation:
            self.rt.unload(self.fid, generation)


def raw_baseline(code: bytes, signature: Signature, name: str, args: tuple) -> Callable[[], Any]:
    """The bare host round trip for benchmarks: the request line for ``name(*args)`` written
    straight to the shared host's pipe and its reply line read back (no argument checks, no
    executor, no reply decoding, no console handling)."""
    rt = runtime()
    fn = rt.load(code, signature, memory_mb=64, name=name)
    fn.call(args, CallContext("raw-baseline", 60.0))  # loads it into the host
    host = rt.host()
    line = b'0 ["c",%d,%s]\n' % (fn.fid, json.dumps(list(args)).encode())
    lock, req, res = rt._lock, host._req_w, host._res_r

    def raw() -> bytes:
        with lock:
            os.write(req, line)
            reply = os.read(res, 1 << 16)
            while not reply.endswith(b"\n"):
                reply += os.read(res, 1 << 16)
        return reply

    return raw
