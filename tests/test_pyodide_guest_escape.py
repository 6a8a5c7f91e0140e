"""A Python function that takes the guest's import block apart still reaches no JavaScript.

The guest's ``Blocked`` finder only gives a friendly message: user code can remove it (and
every other finder, path hook and cached module). What holds is outside Python: after an
interpreter's set-up the host refuses every JavaScript operation its WASM module asks for
(a refusal ends that interpreter; the next call gets a fresh one), and nothing in the
interpreter holds a JavaScript object any more. Each route below is tried from a deployed
function with the block removed; none may hand out a JavaScript object, and the function can
still not read a host file, start a process, open a socket or read the host's environment.
"""

from __future__ import annotations

import json
import os

import pytest

from functions_nb import Functions, InvocationError
from functions_nb.languages import get_language
from functions_nb.runtimes import pyodide

from .conftest import watched_port

pytestmark = pytest.mark.skipif(not get_language("python").toolchain().usable,
                                reason="node or the pyodide npm package is missing")

# Imports are spelled dynamically: the deploy-time check refuses a literal `import ctypes`.
ESCAPE_PY = r'''
import builtins
import gc
import importlib
import importlib.machinery as machinery
import json
import os
import socket
import sys
import zipimport

TOUCHED = {"js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "micropip", "ctypes",
           "_ctypes"}
JS_FUNCTIONS = ("create_proxy", "to_js", "create_once_callable", "js2py_deep", "raw_call")


def is_js(value):
    """A JavaScript object as Pyodide hands it to Python (a JsProxy instance)."""
    return type(type(value)).__name__ == "_JsProxyMetaClass" and not isinstance(value, type)


def unblock():
    """Every finder, path hook and cached module gone, then CPython's stock finders back."""
    sys.meta_path.clear()
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    for name in list(sys.modules):
        if name.partition(".")[0] in TOUCHED:
            del sys.modules[name]
    sys.meta_path.extend([machinery.BuiltinImporter, machinery.FrozenImporter,
                          machinery.PathFinder])
    sys.path_hooks.extend([zipimport.zipimporter, machinery.FileFinder.path_hook(
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (machinery.SourceFileLoader, machinery.SOURCE_SUFFIXES),
        (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES))])
    builtins.__import__ = importlib.__import__


def use(core):
    """What a JavaScript-bridge module gives: a JavaScript object, or the error."""
    for name in JS_FUNCTIONS:
        fn = getattr(core, name, None)
        if fn is None:
            continue
        value = fn(len) if name != "to_js" else fn([1, 2])
        if is_js(value):
            return f"{name}() gave {type(value).__name__} {str(value)[:60]}"
    return None


def found_in_gc():
    for obj in gc.get_objects():
        if is_js(obj):
            return obj
        for ref in gc.get_referents(obj):
            if is_js(ref):
                return ref
    return None


def found_in_frames():
    """Up the stack into the guest program: its frames' locals, globals and their objects."""
    frame = sys._getframe()
    while frame is not None:
        for value in [*frame.f_locals.values(), *frame.f_globals.values()]:
            for candidate in (value, *getattr(value, "__dict__", {}).values()):
                if is_js(candidate):
                    return candidate
        frame = frame.f_back
    return None


def jsfinder_modules():
    """Pyodide's finder for JavaScript modules, put back on sys.meta_path."""
    finders = [o for o in gc.get_objects() if type(o).__name__ == "JsFinder"]
    sys.meta_path[:0] = finders
    out = []
    for name in ("js", "pyodide_js"):
        try:
            out.append(f"{name}: {importlib.import_module(name)!r}")
        except ImportError:
            pass
    return "; ".join(out) or None


def side_module():
    """A minimal WASM side module, loaded as an extension module (dlopen)."""
    def section(kind, body):
        return bytes([kind, len(body)]) + body
    dylink = b"\x08dylink.0" + bytes([1, 4, 0, 0, 0, 0])
    blob = (b"\0asm\1\0\0\0" + section(0, dylink) + section(1, b"\x01\x60\x00\x01\x7f")
            + section(3, b"\x01\x00") + section(7, b"\x01\x0bPyInit_evil\x00\x00")
            + section(10, b"\x01\x04\x00\x41\x00\x0b"))
    os.makedirs("/tmp/evil", exist_ok=True)
    path = "/tmp/evil/evil" + machinery.EXTENSION_SUFFIXES[0]
    with open(path, "wb") as f:
        f.write(blob)
    imp = importlib.import_module("_imp")
    try:
        return repr(imp.create_dynamic(machinery.ModuleSpec("evil", None, origin=path)))
    except SystemError as exc:
        return f"the side module ran ({exc})"


def gc_modules():
    """Pyodide's Python modules, found without sys.modules: their bridge functions."""
    for obj in gc.get_objects():
        if type(obj).__name__ == "module" and obj.__name__.partition(".")[0] in TOUCHED:
            got = use(obj)
            if got:
                return f"{obj.__name__}.{got}"
    return None


def ctypes_call():
    ctypes = importlib.import_module("ctypes")
    buf = ctypes.create_string_buffer(4)
    ctypes.memmove(buf, b"abc", 3)  # a C function called through libffi
    return f"memmove copied {buf.value!r}"


def host(port):
    """After all that: a host file, a process, a socket, the environment."""
    out = {}
    try:
        with open("/etc/hostname") as f:
            out["read"] = "ALLOWED " + f.read()
    except OSError as exc:
        out["read"] = f"refused {exc}"
    try:
        out["spawn"] = "ALLOWED " + repr(importlib.import_module("subprocess").run(["id"]))
    except OSError as exc:
        out["spawn"] = f"refused {exc}"
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        out["socket"] = "ALLOWED"
    except OSError as exc:
        out["socket"] = f"refused {exc}"
    out["env"] = dict(os.environ)
    return json.dumps(out)


def escape(route: str, port: int) -> str:
    unblock()
    try:
        if route == "host":
            return host(port)
        if route == "_pyodide_core":
            value = use(importlib.import_module("_pyodide_core"))
        elif route == "to_js":
            value = importlib.import_module("_pyodide_core").to_js([1, 2])
        elif route == "_builtin_from_name":
            value = use(importlib._bootstrap._builtin_from_name("_pyodide_core"))
        elif route == "_imp.create_builtin":
            imp = importlib.import_module("_imp")
            value = use(imp.create_builtin(machinery.ModuleSpec("_pyodide_core", None)))
        elif route == "__import__":
            value = use(__import__("_pyodide_core"))
        elif route == "pyodide.ffi":
            value = use(importlib.import_module("pyodide.ffi"))
        elif route == "js modules":
            value = jsfinder_modules()
        elif route == "gc":
            value = found_in_gc()
        elif route == "gc modules":
            value = gc_modules()
        elif route == "frames":
            value = found_in_frames()
        elif route == "sys":
            value = next((v for v in vars(sys).values() if is_js(v)), None)
        elif route == "posix.system":  # a fresh posix module: not the guest's patched one
            imp = importlib.import_module("_imp")
            rc = imp.create_builtin(machinery.ModuleSpec("posix", None)).system("id")
            value = f"system() returned {rc}" if rc == 0 else None
        elif route == "ctypes":
            value = ctypes_call()
        elif route == "dlopen":
            value = side_module()
        else:
            return "unknown route"
    except Exception as exc:
        return f"refused: {type(exc).__name__}: {exc}"
    if value is None or route == "to_js" and not is_js(value):
        return "refused: nothing found"
    return f"ALLOWED: {str(value)[:300]}"
'''

ROUTES = ["_pyodide_core", "to_js", "_builtin_from_name", "_imp.create_builtin", "__import__",
          "pyodide.ffi", "js modules", "gc", "gc modules", "frames", "sys", "posix.system", "ctypes",
          "dlopen"]
#: The host's refusal, when a route asks the WASM module for a JavaScript operation.
REFUSED = "JavaScript is not available to functions"


@pytest.fixture(scope="module")
def efx(tmp_path_factory):
    fx = Functions(store=str(tmp_path_factory.mktemp("pyescape")))
    fx.deploy("python", ESCAPE_PY, name="escape")
    fx.deploy("python", "def add(a: int, b: int) -> int:\n    return a + b\n", name="add")
    assert fx.invoke("add", 1, 2) == 3
    yield fx
    fx.close()


@pytest.mark.parametrize("route", ROUTES)
def test_without_the_import_block_no_javascript_is_reachable(efx, route):
    """Either the route finds nothing (a Python error), or it asks the host for a JavaScript
    operation, which ends its own interpreter; a neighbour is not affected."""
    starts = pyodide.runtime().starts
    ex = efx.run("escape", route, 0)
    if ex.error is not None:
        assert isinstance(ex.error, InvocationError), ex.error
        assert "its Python interpreter crashed" in str(ex.error) and REFUSED in str(ex.error)
    else:
        assert ex.value.startswith("refused: "), f"{route}: {ex.value}"
    neighbour = efx.run("add", 2, 3)
    assert neighbour.value == 5 and not neighbour.cold
    assert pyodide.runtime().starts == starts  # the host went on
    again = efx.run("escape", "gc", 0)  # a fresh interpreter, when the route ended its own
    assert again.value.startswith("refused: "), again.value


def test_without_the_import_block_the_host_stays_out_of_reach(efx):
    secret = "FNB_ESCAPE_SECRET"
    os.environ[secret] = "s3cr3t-escape-91"
    try:
        with watched_port() as (port, got):
            pyodide.runtime().restart()  # the next host starts with the secret in our environment
            out = json.loads(efx.invoke("escape", "host", port))
    finally:
        del os.environ[secret]
    assert out["read"].startswith("refused") and "No such file" in out["read"]
    assert out["spawn"].startswith("refused")
    assert out["socket"].startswith("refused") and got == []
    assert secret not in out["env"] and "s3cr3t" not in json.dumps(out["env"])
