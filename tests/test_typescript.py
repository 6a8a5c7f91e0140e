"""TypeScript/JavaScript cells: calling convention, errors with cell lines, limits, sandbox."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from functions_nb import (
    Aborted,
    BadArguments,
    BreakerConfig,
    CompileError,
    Functions,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
)
from functions_nb.models import Param, Signature
from functions_nb.runtimes import v8
from functions_nb.runtimes.base import CallContext

from .conftest import STOP_MARGIN_S

ADD_TS = """export function add(a: number, b: number): number {
  return a + b
}
"""

SPIN_JS = """function spin(n) {
  let x = n;
  while (true) { x = (x * 31) % 1000003 }
}
"""

#: What a function may see on globalThis: ECMAScript, WebAssembly, Intl, console, timers.
ALLOWED_GLOBALS = set("""AggregateError Array ArrayBuffer AsyncDisposableStack Atomics BigInt BigInt64Array
BigUint64Array Boolean DataView Date DisposableStack Error EvalError FinalizationRegistry Float16Array
Float32Array Float64Array Function Infinity Int16Array Int32Array Int8Array Intl Iterator JSON Map Math
NaN Number Object Promise Proxy RangeError ReferenceError Reflect RegExp Set SharedArrayBuffer String
SuppressedError Symbol SyntaxError Temporal TypeError URIError Uint16Array Uint32Array Uint8Array
Uint8ClampedArray WeakMap WeakRef WeakSet WebAssembly __fnb_call __fnb_cell __fnb_take clearTimeout
console decodeURI decodeURIComponent encodeURI encodeURIComponent escape eval globalThis isFinite
isNaN parseFloat parseInt queueMicrotask setTimeout undefined unescape""".split())


@pytest.fixture(scope="module")
def fxm(tmp_path_factory):
    """One store for the module; the breaker never opens (tests provoke many failures)."""
    f = Functions(store=str(tmp_path_factory.mktemp("ts-store")),
                  breaker=BreakerConfig(failure_threshold=10_000))
    yield f
    f.close()


@pytest.fixture(scope="module")
def escape(fxm):
    """A JavaScript function that evaluates an expression (awaited) and returns the result or
    the error text: the probe for every escape attempt."""
    src = """async function probe(expr) {
  try {
    return { ok: true, value: String(await (0, eval)(expr)) };
  } catch (e) {
    return { ok: false, error: String(e) };
  }
}
"""
    fxm.deploy("javascript", src, name="probe", timeout=5)
    return lambda expr: fxm.invoke("probe", expr)


# -- calling convention ----------------------------------------------------------------------

def test_scalars_strings_json(fxm):
    info = fxm.deploy("typescript", ADD_TS, name="add")
    assert str(info.signature) == "add(a: number, b: number) -> number"
    assert fxm.invoke("add", 2, 3) == 5.0
    assert fxm["add"](0.5, -2) == -1.5
    assert fxm.invoke("add", 2**60, 1) == float(2**60)
    assert np.isinf(fxm.invoke("add", float("inf"), 1))
    fxm.deploy("typescript", "export function neg(b: boolean): boolean { return !b }", name="neg")
    assert fxm.invoke("neg", False) is True
    fxm.deploy("typescript", "export const greet = (name: string, n: number): string =>\n"
                             "  `${'hi'.repeat(n)} ${name}`", name="greet")
    assert fxm.invoke("greet", "wörld ✓ \"q\" \u2028", 2) == "hihi wörld ✓ \"q\" \u2028"
    src = """interface Point { x: number; y: number }

export function centroid(points: Point[], opts: { scale?: number }): Point | null {
  if (points.length === 0) return null;
  const s = opts.scale ?? 1;
  const n = points.length;
  return { x: s * points.reduce((a, p) => a + p.x, 0) / n,
           y: s * points.reduce((a, p) => a + p.y, 0) / n };
}
"""
    fxm.deploy("typescript", src, name="centroid")
    pts = [{"x": 0, "y": 0}, {"x": 2, "y": 4}]
    assert fxm.invoke("centroid", pts, {"scale": 2.0}) == {"x": 2, "y": 4}
    assert fxm.invoke("centroid", [], {}) is None
    fxm.deploy("typescript", "export function big(a: bigint): bigint { return a * 2n }", name="big")
    assert fxm.invoke("big", 2**70) == 2**71
    fxm.deploy("typescript", "export function nothing(x: any): void { x.y = 1 }", name="nothing")
    assert fxm.invoke("nothing", {"__proto__": 1}) is None


def test_bytes_and_float64_arrays(fxm):
    fxm.deploy("typescript", "export function rev(data: Uint8Array): Uint8Array {\n"
                             "  return data.slice().reverse()\n}", name="rev")
    assert fxm.invoke("rev", b"\x00\x01\xff") == b"\xff\x01\x00"
    assert fxm.invoke("rev", bytes(range(256)) * 100) == (bytes(range(256)) * 100)[::-1]
    fxm.deploy("typescript", "export function scale(xs: Float64Array, k: number): Float64Array {\n"
                             "  return xs.map((v) => v * k)\n}", name="scale")
    out = fxm.invoke("scale", np.arange(5, dtype=np.int32), 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert fxm.invoke("scale", [1, 2.5, float("nan")], 2)[:2].tolist() == [2.0, 5.0]
    fxm.deploy("typescript", "export function total(xs: Float64Array): number {\n"
                             "  return xs.reduce((a, b) => a + b, 0)\n}", name="total")
    assert fxm.invoke("total", np.linspace(0, 1, 100_001)) == pytest.approx(50_000.5)


def test_javascript_any_json(fxm):
    info = fxm.deploy("javascript", "function echo(value, extra = 1) {\n"
                                    "  return { value, extra, kind: typeof value }\n}", name="echo")
    assert str(info.signature) == "echo(value: any, extra: any) -> any"
    assert fxm.invoke("echo", [1, "a", None, {"b": True}], 2) == \
        {"value": [1, "a", None, {"b": True}], "extra": 2, "kind": "object"}
    fxm.deploy("javascript", "export async function shout(s) { return s.toUpperCase() }", name="shout")
    assert fxm.invoke("shout", "hey") == "HEY"


def test_async_awaits_promises_and_timers(fxm):
    src = """export async function later(ms: number, v: string): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, ms));
  console.log("woke after", ms);
  return v + "!";
}
"""
    fxm.deploy("typescript", src, name="later", timeout=2)
    ex = fxm.run("later", 30, "done")
    assert ex.value == "done!" and ex.duration_ms >= 25
    assert [c[:2] for c in ex.console] == [("log", "woke after 30")]


def test_console_levels_and_formatting(fxm):
    src = """export function talk(n: number): number {
  console.log("hello", { a: [1, 2] }, n, "%d%%", 5);
  console.info("x=%s", "y");
  console.warn("careful");
  console.error("bad", new Error("inner"));
  console.debug("two\\nlines");
  return n + 1;
}
"""
    fxm.deploy("typescript", src, name="talk", line_offset=1)
    ex = fxm.run("talk", 1)
    assert ex.value == 2.0
    lines = [(lvl, msg) for lvl, msg, _ in ex.console]
    assert lines[0] == ("log", "hello { a: [ 1, 2 ] } 1 %d%% 5")
    assert lines[1] == ("info", "x=y")
    assert lines[2] == ("warn", "careful")
    assert lines[3] == ("error", "bad Error: inner")
    assert lines[4][0] == "error" and "at talk (cell line 6)" in lines[4][1]
    assert ("debug", "two") in lines and ("debug", "lines") in lines
    assert all("fnb-runtime" not in msg for _, msg in lines)
    assert fxm.run("talk", 2).console[0][1].endswith(" 2 %d%% 5")  # drained per call


def test_console_capped(fxm):
    fxm.deploy("javascript", "function noisy(n) {\n  for (let i = 0; i < n; i++) console.log(i);\n"
                             "  return n\n}", name="noisy")
    ex = fxm.run("noisy", 5000)
    assert ex.value == 5000 and len(ex.console) == 1001
    assert "console truncated" in ex.console[-1][1]


# -- compile errors ------------------------------------------------------------------------------

def test_syntax_error_has_cell_line(fxm):
    src = "export function add(a: number, b: number): number {\n  let c = = 1;\n  return a + b\n}\n"
    with pytest.raises(CompileError) as err:
        fxm.deploy("typescript", src, name="add", line_offset=1)
    assert err.value.line == 3 and err.value.column == 11
    assert str(err.value).startswith('cell:3:11: error: Unexpected "="')
    with pytest.raises(CompileError) as err:
        fxm.deploy("javascript", "function f(a) {\n  return a +* 1\n}", name="f")
    assert err.value.line == 2 and "cell:2:" in str(err.value)


def test_type_error_has_cell_line(fxm):
    src = "export function bad_type(a: number, b: number): number {\n  const c: string = a;\n  return a + b\n}\n"
    with pytest.raises(CompileError) as err:
        fxm.deploy("typescript", src, name="bad_type", line_offset=1)
    assert err.value.line == 3 and err.value.column == 9
    assert "cell:3:9: error TS2322: Type 'number' is not assignable to type 'string'." in str(err.value)
    assert "bad_type" not in fxm.list()
    # the type checker can be switched off; esbuild just strips the types
    fxm.deploy("typescript", src, name="bad_type", flags={"typecheck": False})
    assert fxm.invoke("bad_type", 1, 2) == 3.0
    with pytest.raises(CompileError, match=r"cell:1:38: error TS\d+: Cannot find name 'process'"):
        fxm.deploy("typescript", "export function f(): string { return process.env.HOME }", name="f")


def test_missing_entry_point(fxm):
    with pytest.raises(CompileError, match="no function named `sub`") as err:
        fxm.deploy("typescript", ADD_TS, name="sub")
    assert "export function sub(a: number, b: number): number" in str(err.value)
    with pytest.raises(CompileError, match=r"function sub\(a, b\)"):
        fxm.deploy("javascript", "function add(a, b) { return a + b }", name="sub")


def test_warnings_and_optional_checks(fxm):
    info = fxm.deploy("javascript", "function w(x) {\n  if (x === -0) return 1;\n  return 2\n}", name="w",
                      line_offset=1)
    assert info.warnings.startswith('cell:3:13: warning: Comparison with -0 using the "===" operator')
    src = "function chk(x) {\n  let n = 1;\n  n = 'text';\n  return n\n}"
    fxm.deploy("javascript", src, name="chk")  # JavaScript: no type check unless asked
    with pytest.raises(CompileError, match=r"^cell:3:3: error TS2322: Type 'string' is not assignable "
                                           r"to type 'number'\.$"):
        fxm.deploy("javascript", src, name="chk", flags={"typecheck": True})
    loose = "export function loose(a, b: number): number {\n  return a + b\n}"
    with pytest.raises(CompileError, match="cell:1:23: error TS7006: Parameter 'a' implicitly has an 'any'"):
        fxm.deploy("typescript", loose, name="loose")
    info = fxm.deploy("typescript", loose, name="loose", flags={"strict": False})
    assert str(info.signature) == "loose(a: any, b: number) -> number"
    assert fxm.invoke("loose", "x", 1) == "x1"  # a JSON value in, whatever the function returns out


# -- runtime errors -------------------------------------------------------------------------------

def test_bad_arguments_name_the_signature(fxm):
    fxm.deploy("typescript", ADD_TS, name="add")
    with pytest.raises(BadArguments, match=r"add\(a: number, b: number\) -> number takes 2 arguments, got 1"):
        fxm.invoke("add", 1)
    with pytest.raises(BadArguments, match=r"add\(a: number, b: number\) -> number: argument 'b' "
                                           r"expects number, got str '2'"):
        fxm.invoke("add", 1, "2")
    with pytest.raises(BadArguments, match="argument 'a' expects number, got bool True"):
        fxm.invoke("add", True, 1)
    fxm.deploy("javascript", "function echo2(v) { return v }", name="echo2")
    with pytest.raises(BadArguments, match="not JSON-serializable"):
        fxm.invoke("echo2", object())
    fxm.deploy("typescript", "export function total2(xs: Float64Array): number { return xs.length }",
               name="total2")
    with pytest.raises(BadArguments, match="1-D array"):
        fxm.invoke("total2", np.zeros((2, 2)))


def test_runtime_error_reports_cell_line(fxm):
    src = """function check(x: number): number {
  if (x > 0) {
    throw new RangeError("bad input " + x);
  }
  return x;
}

export function boom(x: number): number {
  return check(x) * 2;
}
"""
    fxm.deploy("typescript", src, name="boom", line_offset=1)
    with pytest.raises(InvocationError) as err:
        fxm.invoke("boom", 3)
    assert str(err.value) == "boom: RangeError: bad input 3 at cell line 4"
    assert fxm.invoke("boom", 0) == 0.0  # the isolate survives a thrown error
    fxm.deploy("javascript", "async function later_fail(x) {\n  await null;\n  return x.y.z\n}",
               name="later_fail", line_offset=1)
    with pytest.raises(InvocationError, match=r"TypeError: Cannot read properties of undefined "
                                              r"\(reading 'z'\) at cell line 4"):
        fxm.invoke("later_fail", {})
    fxm.deploy("javascript", "function thrower() {\n  throw 'plain'\n}", name="thrower")
    with pytest.raises(InvocationError, match="thrower: threw \"plain\""):
        fxm.invoke("thrower")


def test_top_level_error_reports_cell_line(fxm):
    src = "const table = JSON.parse('{oops');\n\nfunction lookup(k) {\n  return table[k]\n}\n"
    fxm.deploy("javascript", src, name="lookup", line_offset=1)
    with pytest.raises(InvocationError, match=r"lookup: the cell's top-level code failed: "
                                              r"SyntaxError: .*JSON.* at cell line 2"):
        fxm.invoke("lookup", "a")


def test_cold_then_warm(fxm):
    fxm.deploy("typescript", "export function inc(x: number): number { return x + 1 }", name="inc")
    first, second = fxm.run("inc", 1), fxm.run("inc", 2)
    assert first.cold and not second.cold and second.value == 3.0


def test_concurrent_calls_share_the_host(fxm):
    fxm.deploy("typescript", ADD_TS, name="add")
    fxm.deploy("javascript", "async function nap(ms) {\n  await new Promise((r) => setTimeout(r, ms));\n"
                             "  return ms\n}", name="nap", timeout=5)
    wrong = []
    naps = []

    def adder(k):
        for i in range(50):
            if fxm.invoke("add", k, i) != k + i:
                wrong.append((k, i))

    threads = [threading.Thread(target=adder, args=(k,)) for k in range(6)]
    threads.append(threading.Thread(target=lambda: naps.append(fxm.invoke("nap", 200))))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not wrong and naps == [200]


# -- limits -----------------------------------------------------------------------------------------

def test_runaway_loop_stopped_at_timeout(fxm):
    fxm.deploy("javascript", SPIN_JS, name="spin", timeout=0.3)
    started = time.monotonic()
    ex = fxm.run("spin", 1)
    elapsed = time.monotonic() - started
    assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout)
    assert str(ex.error) == "spin: stopped at its 0.3 s time limit"
    assert 0.3 <= elapsed < 0.3 + STOP_MARGIN_S
    assert 300 <= ex.duration_ms < 300 + STOP_MARGIN_S * 1000
    with pytest.raises(FunctionTimeout):  # per-call override
        fxm.invoke("spin", 1, timeout=0.1)
    ex = fxm.run("spin", 2)
    assert ex.status == "timeout" and ex.cold  # a fresh isolate after each timeout
    fxm.deploy("typescript", ADD_TS, name="add")
    assert fxm.invoke("add", 1, 2) == 3.0


def test_pending_promise_stopped_at_timeout(fxm):
    src = "async function hang(ms) {\n  await new Promise((r) => setTimeout(r, ms));\n  return ms\n}\n"
    fxm.deploy("javascript", src, name="hang", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(FunctionTimeout, match="0.2 s time limit"):
        fxm.invoke("hang", 60_000)
    assert time.monotonic() - started < 0.2 + STOP_MARGIN_S
    ex = fxm.run("hang", 5)
    assert ex.value == 5 and ex.cold


def test_memory_bomb_hits_limit(fxm):
    src = "function bomb(n) {\n  const keep = [];\n  for (let i = 0; i < n; i++) keep.push(new Array(100000).fill(i));\n" \
          "  return keep.length\n}\n"
    fxm.deploy("javascript", src, name="bomb", memory_mb=32)
    with pytest.raises(LimitExceeded, match="memory limit of 32 MB"):
        fxm.invoke("bomb", 10_000)
    ex = fxm.run("bomb", 3)
    assert ex.value == 3 and ex.cold  # the next call works, in a fresh isolate
    fxm.deploy("javascript", "function buffers(n) {\n  return new Float64Array(n).length\n}",
               name="buffers", memory_mb=32)
    with pytest.raises(LimitExceeded, match="allocating 800000000 bytes exceeds the 32 MB memory limit"):
        fxm.invoke("buffers", 100_000_000)
    assert fxm.invoke("buffers", 1000) == 1000


def _bundle(name: str, body: str) -> bytes:
    js = f"var __fnb_cell = {{__fnb_entry: function {name}(n) {{\n{body}\n}}}};\n"
    return json.dumps({"format": v8.ARTIFACT_FORMAT, "entry": name, "js": js, "map": {}}).encode()


def test_host_crash_is_contained():
    """V8 aborts its process when one builtin outgrows the heap before the limit check runs;
    in the host process that fails the call (LimitExceeded), not the kernel, and the next
    call gets a new host. A small host data cap makes it quick."""
    rt = v8.V8Runtime(data_mb=800, sandbox=False)
    sig = Signature("fill", (Param("n", "f64", "number"),), "f64", "number")
    try:
        fn = rt.load(_bundle("fill", "  return new Array(n).fill(0.5).length;"), sig,
                     memory_mb=64, name="fill")
        first_host = rt.host()
        with pytest.raises(LimitExceeded, match=r"fill: the V8 host ran out of memory during this "
                                                r"call \(.*memory limit 64 MB\)"):
            fn.call((1.3e8,), CallContext("a", 30))
        assert not first_host.alive
        ctx = CallContext("b", 30)
        assert fn.call((10,), ctx) == 10.0 and ctx.cold and rt.restarts == 1
        # off-heap buffers beyond the host's data budget: refused, or the host dies (either way
        # the call raises LimitExceeded and the next call works)
        hog = rt.load(_bundle("hog", "  const keep = [];\n"
                                     "  for (let i = 0; i < n; i++) keep.push(new Uint8Array(1 << 20).fill(1));\n"
                                     "  return keep.length;"), sig, memory_mb=64, name="hog")
        with pytest.raises(LimitExceeded, match="hog: .*(Array buffer allocation failed|ran out of memory)"):
            hog.call((4000,), CallContext("c", 30))
        assert hog.call((2,), CallContext("d", 30)) == 2.0
    finally:
        rt.close()


def test_abort_running_call(fxm):
    fxm.deploy("javascript", SPIN_JS.replace("spin(", "spin30("), name="spin30", timeout=30)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("ex", fxm.run("spin30", 1)))
    thread.start()
    deadline = time.monotonic() + 5
    running = []
    while not running and time.monotonic() < deadline:
        running = [r for r in fxm.running() if r["function"] == "spin30"]
        time.sleep(0.01)
    time.sleep(0.05)
    assert fxm.abort(running[0]["id"]) is True
    thread.join(5)
    ex = box["ex"]
    assert ex.status == "aborted" and isinstance(ex.error, Aborted)
    assert ex.duration_ms < STOP_MARGIN_S * 1000


# -- escape attempts: each must be refused with the specific reason --------------------------------

def test_escape_read_file(escape):
    assert escape("require('fs').readFileSync('/etc/hostname', 'utf8')") == \
        {"ok": False, "error": "ReferenceError: require is not defined"}
    assert escape("process.binding('fs')") == \
        {"ok": False, "error": "ReferenceError: process is not defined"}


def test_escape_write_file(escape, tmp_path):
    target = tmp_path / "written.txt"
    assert escape(f"require('fs').writeFileSync({json.dumps(str(target))}, 'x')") == \
        {"ok": False, "error": "ReferenceError: require is not defined"}
    assert escape("process.mainModule.require('fs')") == \
        {"ok": False, "error": "ReferenceError: process is not defined"}
    assert not target.exists()


def test_escape_spawn_process(escape, tmp_path):
    marker = tmp_path / "spawned"
    assert escape(f"require('child_process').execSync('touch {marker}')") == \
        {"ok": False, "error": "ReferenceError: require is not defined"}
    assert escape("process.getBuiltinModule('child_process')") == \
        {"ok": False, "error": "ReferenceError: process is not defined"}
    assert not marker.exists()


def test_escape_socket_to_localhost(escape):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        assert escape(f"fetch('http://127.0.0.1:{port}/')") == \
            {"ok": False, "error": "ReferenceError: fetch is not defined"}
        assert escape(f"new WebSocket('ws://127.0.0.1:{port}/')") == \
            {"ok": False, "error": "ReferenceError: WebSocket is not defined"}
        assert escape("new XMLHttpRequest()") == \
            {"ok": False, "error": "ReferenceError: XMLHttpRequest is not defined"}
        with pytest.raises(TimeoutError):
            server.accept()  # nothing connected
    finally:
        server.close()


def test_escape_environment_variables(escape):
    assert escape("process.env.HOME") == {"ok": False, "error": "ReferenceError: process is not defined"}
    assert escape("Deno.env.get('HOME')") == {"ok": False, "error": "ReferenceError: Deno is not defined"}
    assert escape("Bun.env.HOME") == {"ok": False, "error": "ReferenceError: Bun is not defined"}


def test_escape_dynamic_import(escape, fxm):
    assert escape("import('fs')") == {"ok": False, "error": "Error: Not supported"}
    assert escape("import('data:text/javascript,export default 1')") == \
        {"ok": False, "error": "Error: Not supported"}
    with pytest.raises(CompileError, match='Could not resolve "fs"'):
        fxm.deploy("javascript", "import fs from 'fs';\nfunction r() { return fs.readFileSync('/etc/hostname') }",
                   name="r")


def test_escape_via_function_constructor(escape):
    assert escape("Function('return this')().process") == {"ok": True, "value": "undefined"}
    assert escape("(() => {}).constructor('return typeof require')()") == {"ok": True, "value": "undefined"}
    names = escape("Object.getOwnPropertyNames(globalThis).join(' ')")["value"].split()
    assert set(names) <= ALLOWED_GLOBALS, set(names) - ALLOWED_GLOBALS


def test_host_process_has_no_network(fxm, escape):
    rt = v8.runtime()
    fxm.deploy("javascript", "function addjs(a, b) { return a + b; }", name="addjs")
    assert fxm.invoke("addjs", 1, 2) == 3
    if not rt.sandboxed:
        pytest.skip("bubblewrap not usable here: the host runs without namespaces")
    host = rt.current()
    assert host is not None
    hosts = []  # the processes of this runtime's host (bwrap and what runs inside), no one else's
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            ancestors, parent = [], pid
            while parent not in ("0", "1") and len(ancestors) < 32:
                parent = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1]
                ancestors.append(parent)
        except OSError:
            continue
        if b"v8_host.py" in cmdline and str(host.pid) in ancestors:
            hosts.append(pid)
    assert hosts
    ours = os.readlink("/proc/self/ns/net")
    assert all(os.readlink(f"/proc/{pid}/ns/net") != ours for pid in hosts)


def test_parameter_lists_split_around_arrows():
    """One splitter for every C-like language: `=>` (TS) and `->` (Rust) close no bracket."""
    from functions_nb.languages.base import split_top_level

    assert split_top_level("f: (x: number) => number, n: number") == ["f: (x: number) => number",
                                                                       "n: number"]
    assert split_top_level("f: Box<dyn Fn(i32) -> i32>, b: Vec<u8>") == ["f: Box<dyn Fn(i32) -> i32>",
                                                                          "b: Vec<u8>"]
    assert split_top_level("a: Map<string, number>, b: A | B", ",") == ["a: Map<string, number>", "b: A | B"]
    assert split_top_level("A | Map<string, B | C> | null", "|") == ["A", "Map<string, B | C>", "null"]


def test_host_started_from_a_short_lived_thread_survives_it(fxm):
    """bubblewrap's --die-with-parent fires when the thread that started the host ends; the
    host layer starts every host from one long-lived thread. (Before it, the second call
    failed: "the V8 host process exited during this call".)"""
    fxm.deploy("javascript", "function addjs(a, b) { return a + b; }", name="addjs")
    v8.runtime().restart()  # the next call starts a new host, from the thread below
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("run", fxm.run("addjs", 2, 3)))
    worker.start()
    worker.join()
    started = v8.runtime().current()
    assert box["run"].value == 5 and started is not None
    deadline = time.monotonic() + 1.0  # the thread is gone: give a PDEATHSIG time to land
    while time.monotonic() < deadline and started.proc.poll() is None:
        time.sleep(0.05)
    assert started.proc.poll() is None, "the host died with the thread that started it"
    assert fxm.invoke("addjs", 4, 5) == 9
    assert v8.runtime().current() is started


def test_timers_do_not_outlive_their_call(fxm):
    """A setTimeout callback left behind by a call that returned never runs (before: it ran
    after the call, burning the isolate's CPU for seconds and changing its state)."""
    fxm.deploy("javascript", """function linger(ms) {
  setTimeout(() => {
    globalThis.fired = (globalThis.fired || 0) + 1;
    const t = Date.now();
    while (Date.now() - t < ms) {}
  }, 0);
  return globalThis.fired || 0;
}""", name="linger")
    assert fxm.invoke("linger", 1500) == 0
    time.sleep(0.3)  # a leaked timer fires within milliseconds of the call returning
    assert fxm.invoke("linger", 1500) == 0  # the leftover callback never ran
    # timers a pending call awaits still fire
    fxm.deploy("javascript", """async function later(ms) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ms;
}""", name="later")
    assert fxm.invoke("later", 20) == 20


def test_a_crash_blames_the_function_that_caused_it():
    """V8 aborts the host on some out-of-memory paths; a call of another function that was in
    flight fails with an error naming the crash and the calls that were running, not with
    "ran out of memory during this call" (that blamed the bystander)."""
    rt = v8.V8Runtime(data_mb=800, sandbox=False)
    sig = Signature("f", (Param("n", "f64", "number"),), "f64", "number")
    try:
        slow = rt.load(_bundle("slow", "  const t = Date.now();\n  while (Date.now() - t < n) {}\n"
                                       "  return 1;"), sig, memory_mb=64, name="slow")
        fill = rt.load(_bundle("fill", "  return new Array(n).fill(0.5).length;"), sig,
                       memory_mb=64, name="fill")
        box: dict = {}

        def bystander() -> None:
            try:
                box["value"] = slow.call((20_000,), CallContext("s", 60))
            except Exception as exc:
                box["error"] = exc

        worker = threading.Thread(target=bystander)
        worker.start()
        deadline = time.monotonic() + 30
        while not any(rt.inflight.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(InvocationError, match="fill: cut short because the V8 host was killed "
                                                  r"by SIG\w+ .*while calls of slow were running"):
            fill.call((1.3e8,), CallContext("f", 60))
        worker.join(30)
        error = box.get("error")
        assert isinstance(error, InvocationError) and not isinstance(error, LimitExceeded)
        assert "while calls of fill were running" in str(error)
        assert "during this call" not in str(error)
        assert slow.call((1,), CallContext("again", 60)) == 1.0
    finally:
        rt.close()


def test_forked_child_starts_its_own_host(fxm):
    """A forked child never talks to its parent's host over the inherited pipes: it starts its
    own, and the parent's host keeps working after the child exits."""
    fxm.deploy("javascript", "function addjs(a, b) { return a + b; }", name="addjs")
    assert fxm.invoke("addjs", 1, 2) == 3
    parent_host = v8.runtime().current()
    assert parent_host is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its host's pid and the result, then leave at once
        try:
            value = fxm.invoke("addjs", 20, 22)
            host = v8.runtime().current()
            os.write(write, json.dumps([value, host.pid if host else 0]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        value, child_host = json.loads(f.read() or "[0, 0]")
    os.waitpid(pid, 0)
    assert value == 42 and child_host not in (0, parent_host.pid)
    assert fxm.invoke("addjs", 5, 6) == 11 and v8.runtime().current() is parent_host


def test_loading_does_not_count_against_the_time_limit(fxm):
    """Starting a host and loading a function (the cell's top level) are not the call's time,
    as for every shared host (docs/host-protocol.md)."""
    fxm.deploy("javascript", """const t = Date.now();
while (Date.now() - t < 1200) {}  // a slow top level
function quick(n) { return n + 1; }""", name="quick", timeout=0.8)
    v8.runtime().restart()
    assert fxm.invoke("quick", 1) == 2


def test_a_chain_of_zero_delay_timers_does_not_starve_other_timers(fxm):
    """setTimeout(f, 0) is a task (clamped to 1 ms, as in browsers and node), not a microtask:
    a self-rescheduling timer lets the awaited one fire (before: the call hit its limit)."""
    fxm.deploy("javascript", """let count = 0;
function tick() { count++; setTimeout(tick, 0); }
async function starve(ms) {
  setTimeout(tick, 0);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return count > 0;
}""", name="starve", timeout=5)
    assert fxm.invoke("starve", 50) is True
