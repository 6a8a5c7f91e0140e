"""AssemblyScript cells: calling convention, errors with cell lines, limits, escapes, compiler process."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

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
from functions_nb.languages import get_language, names
from functions_nb.runtimes.base import CallContext

from .conftest import STOP_MARGIN_S, abort_while_running

LANG = "assemblyscript"

pytestmark = [
    pytest.mark.skipif(LANG not in names(), reason="assemblyscript is not in the language registry"),
    pytest.mark.skipif(LANG in names() and not get_language(LANG).toolchain().usable,
                       reason="node >= 20 and npm assemblyscript are needed"),
]

ADD = "export function add(a: i32, b: i32): i32 {\n  return a + b;\n}\n"
GREET = """export function greet(name: string, n: i32): string {
  return "hi".repeat(n) + " " + name;
}
"""
SPIN = """export function spin(n: i32): i32 {
  let x = n;
  while (true) {
    x = x * 31 + 1;
  }
  return x;
}
"""
BOMB = """export function bomb(mb: i32): i32 {
  const kept = new Array<Uint8Array>();
  for (let i = 0; i < mb; i++) kept.push(new Uint8Array(1 << 20));
  return kept.length;
}
"""


@pytest.fixture(scope="module")
def afx(tmp_path_factory):
    """One store for the module: functions deployed once and shared by tests."""
    f = Functions(store=str(tmp_path_factory.mktemp("as-store")),
                  breaker=BreakerConfig(reset_timeout=0.3))
    f.deploy(LANG, ADD, name="add")
    yield f
    f.close()


def deploy(fx: Functions, source: str, name: str, **kw):
    return fx.deploy(LANG, source, name=name, **kw)


# -- calling convention ----------------------------------------------------------------------

def test_scalars(afx):
    assert afx.invoke("add", 2, 3) == 5
    assert afx["add"](-7, 3) == -4
    deploy(afx, "export function mix(a: u8, b: u64, c: f32, d: f64, e: bool, f: i8, g: number): f64 {\n"
                "  return e ? <f64>a + <f64>b + <f64>c + d + <f64>f + g : -1;\n}\n", "mix")
    assert afx.invoke("mix", 255, 2**63, 0.5, 0.25, True, -128, 1.0) == 255 + 2**63 + 0.75 - 127
    deploy(afx, "export function big(): u64 {\n  return u64.MAX_VALUE;\n}\n", "big")
    assert afx.invoke("big") == 2**64 - 1
    deploy(afx, "function neg(b: bool): bool {\n  return !b;\n}\n", "neg")  # export is optional
    assert afx.invoke("neg", False) is True
    deploy(afx, "export function wrap(x: u8): u8 {\n  return <u8>(x + 1);\n}\n", "wrap")
    assert afx.invoke("wrap", 255) == 0
    deploy(afx, "export function hello(): void {\n  console.log(\"hello\");\n}\n", "hello")
    ex = afx.run("hello")
    assert ex.value is None and [c[:2] for c in ex.console] == [("log", "hello")]


def test_strings_and_bytes(afx):
    deploy(afx, GREET, "greet")
    assert afx.invoke("greet", "wörld ✓ 😀", 2) == "hihi wörld ✓ 😀"
    assert afx.invoke("greet", "", 0) == " "
    deploy(afx, "export function rev(data: Uint8Array): Uint8Array {\n"
                "  const out = new Uint8Array(data.length);\n"
                "  for (let i = 0; i < data.length; i++) out[i] = data[data.length - 1 - i];\n"
                "  return out;\n}\n", "rev")
    assert afx.invoke("rev", b"\x00\x01\xff") == b"\xff\x01\x00"
    assert afx.invoke("rev", b"") == b""
    deploy(afx, "export function tail(data: ArrayBuffer): ArrayBuffer {\n  return data.slice(1);\n}\n",
           "tail")
    assert afx.invoke("tail", b"abc") == b"bc"


def test_json_values_in_and_out(afx):
    src = """export function summary(xs: f64[], names: Array<string>, m: Map<string, i64[]>): Map<string, f64[]> {
  let s = 0.0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  const out = new Map<string, f64[]>();
  out.set("sum", [s]);
  out.set(names.join("|"), [<f64>names.length, NaN, Infinity]);
  const ks = m.keys();
  for (let i = 0; i < ks.length; i++) out.set(ks[i], m.get(ks[i]).map<f64>((x: i64) => <f64>x));
  return out;
}
"""
    deploy(afx, src, "summary")
    out = afx.invoke("summary", [1, 2.5], ["a", 'q"\\\n\t é😀'], {"k": [1, -(2**40)]})
    assert out["sum"] == [3.5] and out["k"] == [1.0, -(2.0**40)]
    (key,) = set(out) - {"sum", "k"}
    assert key == 'a|q"\\\n\t é😀'
    n, nan, inf = out[key]
    assert n == 2.0 and nan != nan and inf == float("inf")
    assert afx.invoke("summary", [], [], {}) == {"sum": [0.0], "": [0.0, pytest.approx(float("nan"),
                                                                                         nan_ok=True),
                                                                     float("inf")]}
    src = """export function pick(s: string | null, rows: i32[][], flags: Map<string, bool>): Array<string | null> {
  const out = new Array<string | null>();
  out.push(s);
  out.push(rows.length > 0 ? rows[0].length.toString() : null);
  out.push(flags.has("on") && flags.get("on") ? "on" : "off");
  return out;
}
"""
    deploy(afx, src, "pick")
    assert afx.invoke("pick", None, [], {}) == [None, None, "off"]
    assert afx.invoke("pick", "x", [[1, 2, 3], []], {"on": True}) == ["x", "3", "on"]
    deploy(afx, "export function ints(a: i8[], b: u64[], c: u32[]): i64[] {\n"
                "  const out = new Array<i64>();\n"
                "  for (let i = 0; i < a.length; i++) out.push(<i64>a[i]);\n"
                "  for (let i = 0; i < b.length; i++) out.push(<i64>b[i]);\n"
                "  for (let i = 0; i < c.length; i++) out.push(<i64>c[i]);\n"
                "  return out;\n}\n", "ints")
    assert afx.invoke("ints", [-128, 127], [0, 2**63 - 1], [2**32 - 1]) == \
        [-128, 127, 0, 2**63 - 1, 2**32 - 1]


def test_console_levels(afx):
    src = """export function talk(n: i32): i32 {
  console.log("log " + n.toString());
  console.info("info");
  console.warn("warn");
  console.error("error");
  console.debug("debug");
  trace("tr", 2, 1.5, 2);
  return n;
}
"""
    deploy(afx, src, "talk")
    ex = afx.run("talk", 1)
    assert ex.value == 1
    assert [c[:2] for c in ex.console] == [("log", "log 1"), ("info", "info"), ("warn", "warn"),
                                           ("error", "error"), ("debug", "debug"),
                                           ("debug", "trace: tr 1.5, 2")]


def test_numpy_arrays(afx):
    import numpy as np

    src = """export function scale(xs: Float64Array, k: f64): Float64Array {
  const out = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = xs[i] * k;
  return out;
}
"""
    deploy(afx, src, "scale")
    out = afx.invoke("scale", np.arange(5.0), 2.0)
    assert out.dtype == np.float64 and out.tolist() == [0, 2, 4, 6, 8]
    assert afx.invoke("scale", np.zeros(0), 1.0).shape == (0,)
    big = np.random.default_rng(1).random(100_000)
    assert np.array_equal(afx.invoke("scale", big, 3.0), big * 3.0)
    deploy(afx, "export function inc(xs: Float32Array): Float32Array {\n"
                "  return xs.map((x: f32): f32 => x + 1);\n}\n", "inc")
    out = afx.invoke("inc", np.arange(3, dtype=np.float32))
    assert out.dtype == np.float32 and out.tolist() == [1, 2, 3]
    deploy(afx, "export function flip(xs: Int32Array): Int32Array {\n  return xs.reverse();\n}\n", "flip")
    out = afx.invoke("flip", np.array([1, 2, 3], dtype=np.int32))
    assert out.dtype == np.int32 and out.tolist() == [3, 2, 1]
    deploy(afx, "export function tot(xs: Int64Array): i64 {\n  let s: i64 = 0;\n"
                "  for (let i = 0; i < xs.length; i++) s += xs[i];\n  return s;\n}\n", "tot")
    assert afx.invoke("tot", np.array([1, 2, 2**40], dtype=np.int64)) == 2**40 + 3
    deploy(afx, "export function st(xs: StaticArray<f64>): StaticArray<f64> {\n"
                "  const out = new StaticArray<f64>(xs.length);\n"
                "  for (let i = 0; i < xs.length; i++) out[i] = xs[i] + 1;\n  return out;\n}\n", "st")
    assert afx.invoke("st", np.arange(3.0)).tolist() == [1.0, 2.0, 3.0]


# -- errors ------------------------------------------------------------------------------------

def test_bad_arguments_name_the_signature(afx):
    with pytest.raises(BadArguments, match=r"add\(a: i32, b: i32\) -> i32 takes 2 arguments"):
        afx.invoke("add", 1)
    with pytest.raises(BadArguments, match="argument 'b' expects i32, got str"):
        afx.invoke("add", 1, "2")
    with pytest.raises(BadArguments, match="out of range for i32"):
        afx.invoke("add", 1, 2**40)
    deploy(afx, "export function total(xs: f64[], n: u8[]): f64 {\n"
                "  let s = 0.0;\n  for (let i = 0; i < xs.length; i++) s += xs[i];\n"
                "  return s + <f64>n.length;\n}\n", "total")
    sig = r"total\(xs: f64\[\], n: u8\[\]\) -> f64: "
    # checked in the guest by the generated JSON decoder, reported through fnb.bad_arg
    with pytest.raises(BadArguments, match=sig + r"argument 'xs' expects f64\[\], got \[\"a\"\] "
                                             r"\(expected a number at position 1\)"):
        afx.invoke("total", ["a"], [])
    with pytest.raises(BadArguments, match=sig + r"argument 'n' expects u8\[\], got \[256\] "
                                             r"\(number out of range for u8"):
        afx.invoke("total", [], [256])
    with pytest.raises(BadArguments, match=r"expected an integer \(u8\)"):
        afx.invoke("total", [], [1.5])
    assert afx.invoke("total", [1, 2.5], [7]) == 4.5  # the instance survives


def test_compile_error_has_cell_line(fx):
    src = 'export function add(a: i32, b: i32): i32 {\n  let c: i32 = "x";\n  return a + b;\n}\n'
    with pytest.raises(CompileError) as err:
        deploy(fx, src, "add")
    assert (err.value.line, err.value.column) == (2, 16)
    assert str(err.value).startswith("cell:2:16: error TS2322: Type '~lib/string/String' is not "
                                     "assignable to type 'i32'.")
    with pytest.raises(CompileError) as err:
        deploy(fx, src, "add", line_offset=1)  # as the %%function magic does
    assert err.value.line == 3 and str(err.value).startswith("cell:3:16: error TS2322")
    assert "cell.ts" not in str(err.value)
    with pytest.raises(CompileError) as err:
        deploy(fx, "export function add(a: i32): i32 {\n  return a + q;\n}\n", "add", line_offset=1)
    assert err.value.line == 3 and "cell:3:14: error TS2304: Cannot find name 'q'." in str(err.value)
    assert fx.list() == []  # nothing half-deployed


def test_unsupported_type_is_a_compile_error(fx):
    src = "class Point {\n  x: f64 = 0;\n}\n\nexport function norm(p: Point): f64 {\n  return p.x;\n}\n"
    with pytest.raises(CompileError) as err:
        deploy(fx, src, "norm", line_offset=1)
    assert err.value.line == 6
    assert "cell:6: error: unsupported parameter type: parameter `p: Point` of `norm`" in str(err.value)
    with pytest.raises(CompileError, match="unsupported parameter type: result type `Map<i32, f64>`"):
        deploy(fx, "export function m(): Map<i32, f64> {\n  return new Map<i32, f64>();\n}\n", "m")


def test_missing_entry_point(fx):
    with pytest.raises(CompileError, match=r"no function named `sub`(.|\n)*export function sub\("):
        deploy(fx, ADD, "sub")


def test_runtime_error_reports_cell_line(afx):
    src = """export function boom(x: i32): i32 {
  if (x > 0) {
    throw new Error("bad input " + x.toString());
  }
  assert(x > -5, "too small");
  return x;
}
"""
    deploy(afx, src, "boom", line_offset=1)
    with pytest.raises(InvocationError, match="boom aborted at cell line 4: bad input 3"):
        afx.invoke("boom", 3)
    with pytest.raises(InvocationError, match="boom aborted at cell line 6: too small"):
        afx.invoke("boom", -9)
    assert afx.invoke("boom", 0) == 0  # the next call works (a fresh instance)
    deploy(afx, "export function div(a: i32, b: i32): i32 {\n  return a / b;\n}\n", "div")
    with pytest.raises(InvocationError, match="divide by zero"):
        afx.invoke("div", 1, 0)
    assert afx.invoke("div", 9, 3) == 3


def test_env_imports_come_from_the_language_module(afx):
    """The wasm runtime knows no language: AssemblyScript's ``env`` imports are what
    ``languages.assemblyscript`` registers, given to a module loaded as AssemblyScript only."""
    from functions_nb.languages import wasm_glue
    from functions_nb.runtimes import wasm

    assert "abort" in wasm_glue("assemblyscript").imports["env"]
    info = afx.info("add")
    code = afx.store.get_code(info)
    with pytest.raises(InvocationError, match=r"imports env\.abort, which the sandbox does not"):
        wasm.runtime().load(code, info.signature, memory_mb=16, name="add")
    fn = wasm.runtime().load(code, info.signature, memory_mb=16, name="add",
                             language="assemblyscript")
    ctx = CallContext("x", 5.0)
    assert fn.call((2, 3), ctx) == 5


# -- limits ----------------------------------------------------------------------------------

def test_infinite_loop_stopped_at_timeout(afx):
    deploy(afx, SPIN, "spin", timeout=0.3)
    started = time.monotonic()
    ex = afx.run("spin", 1)
    elapsed = time.monotonic() - started
    assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout)
    assert "stopped at its 0.3 s time limit" in str(ex.error)
    assert 0.29 <= elapsed < 0.3 + STOP_MARGIN_S
    assert 300 <= ex.duration_ms < 300 + STOP_MARGIN_S * 1000
    assert afx.invoke("add", 1, 2) == 3
    ex = afx.run("spin", 1, timeout=0.1)
    assert ex.status == "timeout" and ex.cold and ex.duration_ms < 100 + STOP_MARGIN_S * 1000


def test_memory_bomb_hits_limit(afx):
    deploy(afx, BOMB, "bomb", memory_mb=16)
    with pytest.raises(LimitExceeded, match="memory limit of 16 MB exceeded"):
        afx.invoke("bomb", 64)
    assert afx.invoke("bomb", 4) == 4  # the next call works
    deploy(afx, "export function block(mb: i32): i32 {\n  return new Uint8Array(mb << 20).length;\n}\n",
           "block", memory_mb=16)
    with pytest.raises(LimitExceeded, match=r"memory limit of 16 MB exceeded \(an allocation of \d+ bytes"):
        afx.invoke("block", 100)  # one allocation, far from the limit when it fails
    assert afx.invoke("block", 2) == 2 << 20


def test_incremental_runtime_keeps_memory_bounded(afx):
    """Why ``--runtime incremental``: thousands of warm calls that allocate stay within a small
    heap, while the ``stub`` runtime (never frees) runs into the memory limit."""
    src = 'export function echo(s: string): string {\n  return "<" + s + ">";\n}\n'
    deploy(afx, src, "echo", memory_mb=4)
    arg = "x" * 2000
    first = afx.run("echo", arg).memory_bytes
    for _ in range(3000):
        assert len(afx.invoke("echo", arg)) == 2002
    # ~12 MB allocated in total (3000 x a 4 KB string, in and out); the heap stays small
    assert afx.run("echo", arg).memory_bytes <= max(first, 1 << 20)
    deploy(afx, src, "echo", memory_mb=4, flags={"runtime": "stub"})
    with pytest.raises(LimitExceeded):
        for _ in range(3000):
            afx.invoke("echo", arg)


def test_abort_from_another_thread(fx):
    deploy(fx, SPIN, "spin", timeout=30)
    _, ex = abort_while_running(fx, "spin", 1)
    assert ex.status == "aborted" and isinstance(ex.error, Aborted) and ex.duration_ms < 5000


# -- escape attempts: no API at compile time, no import at load time ---------------------------

REFUSED = "which the sandbox does not provide"


def test_escape_read_file(afx):
    with pytest.raises(CompileError, match=r"cell:2:10: error TS2304: Cannot find name 'fs'"):
        deploy(afx, 'export function rd(): string {\n  return fs.readFileSync("/etc/hostname");\n}\n', "rd")
    with pytest.raises(CompileError, match=r"cell:1: error: 'fs' is not available: AssemblyScript "
                                           r"functions use its standard library only"):
        deploy(afx, 'import { readFileSync } from "fs";\nexport function rd(): string {\n'
                    '  return readFileSync("/etc/hostname");\n}\n', "rd")
    # the compiler itself reads only the cell (in memory), never host files
    with pytest.raises(CompileError, match=r"File '\.\./\.\./\.\./etc/hostname\.ts' not found"):
        deploy(afx, 'import { x } from "../../../etc/hostname";\n'
                    "export function rd(): string {\n  return x;\n}\n", "rd")
    # a raw WASI import: refused at load, or (with a WASI layer) no preopened directory: EBADF
    deploy(afx, '@external("wasi_snapshot_preview1", "path_open")\n'
                "declare function path_open(fd: i32, df: i32, path: usize, len: i32, oflags: i32,\n"
                "  rb: i64, ri: i64, ff: i32, out: usize): i32;\n"
                "export function rd(): i32 {\n"
                '  const p = String.UTF8.encode("/etc/hostname");\n'
                "  return path_open(3, 0, changetype<usize>(p), p.byteLength, 0, 2, 0, 0, 64);\n}\n", "rd")
    try:
        errno = afx.invoke("rd")
    except InvocationError as exc:
        assert f"the module imports wasi_snapshot_preview1.path_open, {REFUSED}" in str(exc)
    else:
        assert errno == 8  # WASI EBADF: fd 3 is no preopened directory


def test_escape_write_file(afx):
    with pytest.raises(CompileError, match=r"cell:2:3: error TS2304: Cannot find name 'writeFileSync'"):
        deploy(afx, 'export function wr(): i32 {\n  writeFileSync("/tmp/fnb-escape", "x");\n  return 0;\n}\n',
               "wr")
    deploy(afx, '@external("env", "writeFile")\ndeclare function writeFile(path: string, data: string): i32;\n'
                'export function wr(): i32 {\n  return writeFile("/tmp/fnb-escape", "x");\n}\n', "wr")
    with pytest.raises(InvocationError, match=f"the module imports env.writeFile, {REFUSED}"):
        afx.invoke("wr")
    assert not os.path.exists("/tmp/fnb-escape")


def test_escape_spawn_process(afx):
    with pytest.raises(CompileError, match=r"cell:1: error: 'child_process' is not available"):
        deploy(afx, 'import { spawnSync } from "child_process";\n'
                    'export function sp(): i32 {\n  spawnSync("id");\n  return 0;\n}\n', "sp")
    deploy(afx, '@external("env", "system")\ndeclare function system(cmd: usize): i32;\n'
                "export function sp(): i32 {\n"
                '  return system(changetype<usize>(String.UTF8.encode("id", true)));\n}\n', "sp")
    with pytest.raises(InvocationError, match=f"the module imports env.system, {REFUSED}"):
        afx.invoke("sp")


def test_escape_open_socket(afx):
    with pytest.raises(CompileError, match=r"cell:2:10: error TS2304: Cannot find name 'fetch'"):
        deploy(afx, 'export function net(): string {\n  return fetch("http://127.0.0.1:1/").text();\n}\n', "net")
    with pytest.raises(CompileError, match=r"error TS2304: Cannot find name 'WebSocket'"):
        deploy(afx, 'export function net(): i32 {\n  const s = new WebSocket("ws://127.0.0.1:1");\n'
                    "  return 0;\n}\n", "net")
    deploy(afx, '@external("env", "connect")\ndeclare function connect(host: string, port: i32): i32;\n'
                'export function net(): i32 {\n  return connect("127.0.0.1", 80);\n}\n', "net")
    with pytest.raises(InvocationError, match=f"the module imports env.connect, {REFUSED}"):
        afx.invoke("net")


def test_escape_read_env_var(afx):
    # AssemblyScript's process.env is a Map the standard library always leaves empty.
    deploy(afx, 'export function env(): string {\n'
                '  return process.env.has("PATH") ? process.env.get("PATH") : "<no PATH>";\n}\n', "env")
    assert afx.invoke("env") == "<no PATH>"
    deploy(afx, 'export function home(): string {\n  return process.env.get("HOME");\n}\n', "home")
    with pytest.raises(InvocationError, match="Key does not exist"):
        afx.invoke("home")
    deploy(afx, '@external("wasi_snapshot_preview1", "environ_sizes_get")\n'
                "declare function environ_sizes_get(count: usize, size: usize): i32;\n"
                "export function envc(): i32 {\n  const buf = new StaticArray<u32>(2);\n"
                "  environ_sizes_get(changetype<usize>(buf), changetype<usize>(buf) + 4);\n"
                "  return <i32>buf[0];\n}\n", "envc")
    try:
        count = afx.invoke("envc")
    except InvocationError as exc:
        assert f"the module imports wasi_snapshot_preview1.environ_sizes_get, {REFUSED}" in str(exc)
    else:
        assert count == 0  # a WASI layer, if any, passes no environment


# -- the compiler process ------------------------------------------------------------------------

def test_compiler_process_restarts_and_serialises(fx):
    from functions_nb.languages.assemblyscript import server

    lang = get_language(LANG)
    lang.compile(ADD, "add", force=True)
    srv = server()
    pid = srv.pid
    assert pid is not None
    # node runs under its permission model: reads limited to the compiler's packages, no writes
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert any(a in (b"--experimental-permission", b"--permission") for a in argv)
    reads = [a for a in argv if a.startswith(b"--allow-fs-read=")]
    assert reads and all(b"assemblyscript" in a or b"binaryen" in a or b"long" in a or
                         a.endswith(b"asc_server.mjs") for a in reads)
    assert not any(a.startswith((b"--allow-fs-write", b"--allow-child-process")) for a in argv)
    os.kill(pid, signal.SIGKILL)  # the process we started; it is restarted on the next compile
    deadline = time.monotonic() + 5
    while srv.pid is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    errors, codes = [], {}

    def build(i: int) -> None:
        try:
            src = f"export function f{i}(a: i32): i32 {{\n  return a + {i};\n}}\n"
            codes[i] = lang.compile(src, f"f{i}", force=True).code
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and sorted(codes) == [0, 1, 2]
    assert srv.pid not in (None, pid)
    assert all(code[:4] == b"\0asm" for code in codes.values())
