"""C# cells on the shared Mono host: calling convention, errors with cell lines, limits,
crashes and sandbox escape attempts (real mcs, mono and bubblewrap; nothing mocked)."""

from __future__ import annotations

import os
import socket
import threading
import time

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
    languages,
)
from functions_nb.runtimes import mono

from .conftest import abort_while_running

pytestmark = pytest.mark.skipif(
    "csharp" not in languages.names() or not languages.get_language("csharp").toolchain().usable,
    reason="C# is not registered or Mono (mcs, mono) is not installed")

ADD_CS = "public static int add(int a, int b) { return a + b; }\n"

# Returns at once for n == 0 (to warm it up); otherwise loops until stopped.
SPIN_CS = """public static long spin(long n) {
    long x = n;
    while (n != 0) { x = x * 31 + 1; }
    return x;
}
"""

BOMB_CS = """using System.Collections.Generic;

public static int bomb(int mb) {
    var kept = new List<byte[]>();
    for (int i = 0; i < mb; i++) { var b = new byte[1 << 20]; b[7] = 1; kept.Add(b); }
    return kept.Count;
}
"""


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    """One store and one Functions for the module (the host process is shared anyway)."""
    f = Functions(store=str(tmp_path_factory.mktemp("csharp") / "store"),
                  breaker=BreakerConfig(failure_threshold=1000))
    yield f
    f.close()


def sandboxed() -> bool:
    return mono.sandbox_layers()["bwrap"]


# -- calling convention ------------------------------------------------------------------

def test_scalars(cs):
    cs.deploy("csharp", ADD_CS, name="add")
    assert cs.invoke("add", 2, 3) == 5
    assert cs["add"](-7, 3) == -4
    cs.deploy("csharp", "public static double mix(byte a, short b, ulong c, float f, bool e) {\n"
                        "    return e ? a + b + (double)c + f : -1;\n}", name="mix")
    assert cs.invoke("mix", 255, -2, 2**63, 0.5, True) == 255 - 2 + 2**63 + 0.5
    cs.deploy("csharp", "public static ulong big() { return ulong.MaxValue; }", name="big")
    assert cs.invoke("big") == 2**64 - 1
    cs.deploy("csharp", "static bool neg(bool b) { return !b; }", name="neg")  # private is fine
    assert cs.invoke("neg", False) is True
    cs.deploy("csharp", "public static long wide(long a, uint b) { return a * b; }", name="wide")
    assert cs.invoke("wide", -(2**40), 3) == -3 * 2**40
    sig = cs.info("mix").signature
    assert [p.kind for p in sig.params] == ["u32", "i32", "u64", "f32", "bool"] and sig.result == "f64"


def test_strings_bytes_void(cs):
    cs.deploy("csharp", 'using System.Linq;\n\npublic static string greet(string name, int n) {\n'
                        '    return string.Concat(Enumerable.Repeat("hi", n)) + " " + name;\n}',
              name="greet")
    assert cs.invoke("greet", "wörld ✓", 2) == "hihi wörld ✓"
    assert cs.invoke("greet", None, 1) == "hi "  # a C# string may be null
    cs.deploy("csharp", "public static byte[] rev(byte[] d) { System.Array.Reverse(d); return d; }",
              name="rev")
    assert cs.invoke("rev", b"\x00\x01\xff") == b"\xff\x01\x00"
    cs.deploy("csharp", "public static void nothing(int x) { }", name="nothing")
    assert cs.invoke("nothing", 1) is None


def test_json_values_in_and_out(cs):
    src = """using System.Collections.Generic;
using System.Linq;

public class Point { public double X; public double Y { get; set; } }

public static Point centroid(List<Point> points, Dictionary<string, double> weights) {
    if (points.Count == 0) return null;
    double w = weights.ContainsKey("scale") ? weights["scale"] : 1.0;
    return new Point { X = w * points.Average(p => p.X), Y = w * points.Average(p => p.Y) };
}
"""
    cs.deploy("csharp", src, name="centroid")
    pts = [{"x": 0, "y": 0}, {"X": 2, "Y": 4}]  # member names match case-insensitively
    assert cs.invoke("centroid", pts, {"scale": 2.0}) == {"X": 2.0, "Y": 4.0}
    assert cs.invoke("centroid", [], {}) is None
    cs.deploy("csharp", "using System.Collections.Generic;\n"
                        "public static (int, string) summary(Dictionary<string, List<int>> groups) {\n"
                        "    int n = 0; foreach (var g in groups.Values) n += g.Count;\n"
                        "    return (n, string.Join(\",\", groups.Keys));\n}", name="summary")
    assert cs.invoke("summary", {"a": [1, 2], "b": [3]}) == [3, "a,b"]
    cs.deploy("csharp", "public static object echo(object o) { return o; }", name="echo")
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": -3}}
    assert cs.invoke("echo", value) == value
    with pytest.raises(BadArguments, match=r"summary\(groups: Dictionary<string, List<int>>\) -> "
                                           r"\(int, string\): argument 'groups' does not fit its type"):
        cs.invoke("summary", {"a": ["x"]})


def test_numpy_arrays(cs):
    cs.deploy("csharp", "public static double[] scale(double[] xs, double k) {\n"
                        "    var r = new double[xs.Length];\n"
                        "    for (int i = 0; i < xs.Length; i++) r[i] = xs[i] * k;\n    return r;\n}",
              name="scale")
    out = cs.invoke("scale", np.arange(5.0), 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_array_equal(out, [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(cs.invoke("scale", [1, 2], 0.5), [0.5, 1.0])
    cs.deploy("csharp", "public static long total(int[] xs) { long s = 0; foreach (var x in xs) s += x; "
                        "return s; }", name="total")
    assert cs.invoke("total", np.arange(1000, dtype=np.int32)) == 499500
    with pytest.raises(BadArguments, match="argument 'xs' expects int"):
        cs.invoke("total", [1.5, 2])


def test_console_levels(cs):
    src = """using System;

public static int talk(int n) {
    Console.Write("a");
    Console.WriteLine("b");
    Console.Error.WriteLine("oops " + n);
    Console.WriteLine("done");
    Console.Write("tail");
    return n + 1;
}
"""
    cs.deploy("csharp", src, name="talk")
    ex = cs.run("talk", 1)
    assert ex.value == 2
    assert [(lvl, msg) for lvl, msg, _ in ex.console] == [
        ("log", "ab"), ("error", "oops 1"), ("log", "done"), ("log", "tail")]


def test_unsafe_flag(cs):
    src = "public static unsafe int first(int[] xs) { fixed (int* p = xs) { return *p; } }\n"
    with pytest.raises(CompileError, match="CS0227"):  # unsafe code needs the flag
        cs.deploy("csharp", src, name="first")
    cs.deploy("csharp", src, name="first", flags={"unsafe": True})
    assert cs.invoke("first", [7, 8]) == 7


def test_user_class_namespace_and_extension_methods(cs):
    src = """using System;

namespace Geometry {
    public static class Shapes {
        public static double area(double r) { return Math.PI * r * r; }
    }
}
"""
    cs.deploy("csharp", src, name="area")
    assert cs.invoke("area", 1.0) == pytest.approx(3.14159265)
    src = """public static class Ext {
    public static int Twice(this int x) { return 2 * x; }
}

static int counter = 0;

public static int quad(int x) { counter++; return x.Twice().Twice() + 0 * counter; }
"""
    cs.deploy("csharp", src, name="quad")
    assert cs.invoke("quad", 5) == 20


# -- errors with cell lines ------------------------------------------------------------------

def test_compile_error_has_cell_line(cs):
    src = "public static int bad(int a) {\n    int c = \"x\";\n    return a;\n}\n"
    with pytest.raises(CompileError) as err:
        cs.deploy("csharp", src, name="bad")
    assert err.value.line == 2
    assert "cell(2,13): error CS0029" in str(err.value)
    with pytest.raises(CompileError) as err:
        cs.deploy("csharp", src, name="bad", line_offset=1)
    assert err.value.line == 3 and "cell(3,13): error CS0029" in str(err.value)
    # an error on the line where the wrapper is inserted keeps its own column
    with pytest.raises(CompileError) as err:
        cs.deploy("csharp", "public static int bad2(int a) { return a + zz; }", name="bad2")
    assert "cell(1,44): error CS0103" in str(err.value) and err.value.column == 44
    assert "__FnbCell" not in str(err.value)
    assert not any(f.name in ("bad", "bad2") for f in cs.list())  # nothing half-deployed


def test_warnings_have_cell_lines(cs):
    src = "using System;\n\npublic static int warn(int x) {\n    int unused = 1;\n    return x;\n}\n"
    info = cs.deploy("csharp", src, name="warn", line_offset=1)
    assert cs.invoke("warn", 4) == 4
    assert "cell(5,9): warning CS0219" in info.warnings and "unused" in info.warnings


def test_missing_or_non_static_entry_point(cs):
    with pytest.raises(CompileError, match="no static method named `sub`") as err:
        cs.deploy("csharp", ADD_CS, name="sub")
    assert "public static int sub(" in str(err.value)  # shows an example
    with pytest.raises(CompileError, match="`inst` must be static"):
        cs.deploy("csharp", "public class C { public int inst(int x) { return x; } }", name="inst")
    with pytest.raises(CompileError, match="ref/out/in parameters are not supported"):
        cs.deploy("csharp", "public static void outp(out int x) { x = 1; }", name="outp")


def test_bad_arguments_name_the_signature(cs):
    cs.deploy("csharp", ADD_CS, name="add")
    with pytest.raises(BadArguments, match=r"add\(a: int, b: int\) -> int takes 2 arguments"):
        cs.invoke("add", 1)
    with pytest.raises(BadArguments, match=r"add\(a: int, b: int\) -> int: argument 'b' expects int, got str"):
        cs.invoke("add", 1, "2")
    with pytest.raises(BadArguments, match="out of range for int"):
        cs.invoke("add", 1, 2**40)
    with pytest.raises(BadArguments, match="expects int, got bool"):
        cs.invoke("add", 1, True)
    cs.deploy("csharp", "public static int small(byte b) { return b; }", name="small")
    with pytest.raises(BadArguments, match=r"argument 'b' expects byte, got int 256 \(out of range for byte: 0..255\)"):
        cs.invoke("small", 256)
    assert cs.invoke("add", np.int64(4), 5) == 9  # numpy integers are fine


def test_runtime_error_reports_cell_line(cs):
    src = """using System;

public static int boom(int x) {
    if (x > 0)
        throw new InvalidOperationException("bad input " + x);
    return 10 / (x + 1);
}
"""
    cs.deploy("csharp", src, name="boom", line_offset=1)
    with pytest.raises(InvocationError) as err:
        cs.invoke("boom", 3)
    assert str(err.value) == ("boom threw System.InvalidOperationException: bad input 3 "
                              "at cell line 6")
    with pytest.raises(InvocationError, match="DivideByZeroException.* at cell line 7"):
        cs.invoke("boom", -1)
    assert cs.invoke("boom", 0) == 10  # the next call works


# -- limits ------------------------------------------------------------------------------------

def test_runaway_loop_stopped_at_timeout(cs):
    cs.deploy("csharp", SPIN_CS, name="spin", timeout=0.3)
    cs.deploy("csharp", ADD_CS, name="add")
    assert cs.invoke("spin", 0) == 0  # loaded and warm
    pid = mono.runtime().host().proc.pid
    started = time.monotonic()
    ex = cs.run("spin", 1)
    elapsed = time.monotonic() - started
    assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout)
    assert "0.3 s time limit" in str(ex.error)
    assert ex.duration_ms >= 290 and elapsed < 0.3 + 3.0  # margins that hold on a busy machine
    assert cs.invoke("add", 1, 2) == 3
    assert mono.runtime().host().proc.pid == pid  # Thread.Abort stopped it: no restart
    ex = cs.run("spin", 1, timeout=0.1)  # per-call override
    assert ex.status == "timeout" and "0.1 s time limit" in str(ex.error)
    assert cs.invoke("spin", 0) == 0


def test_unabortable_loop_kills_and_restarts_the_host(cs):
    # an endless finally block cannot be Thread.Abort-ed: the host process is killed instead
    src = "public static int stuck(int n) {\n    try { } finally { while (n > 0) { } }\n    return n;\n}\n"
    cs.deploy("csharp", src, name="stuck", timeout=0.3)
    cs.deploy("csharp", ADD_CS, name="add")
    assert cs.invoke("stuck", 0) == 0
    pid = mono.runtime().host().proc.pid
    started = time.monotonic()
    ex = cs.run("stuck", 1)
    assert ex.status == "timeout" and "killed" in str(ex.error)
    assert time.monotonic() - started < 0.3 + mono.GRACE + 3.0  # stopped, with a busy machine's margin
    ex = cs.run("add", 1, 2)
    assert ex.value == 3 and ex.cold
    assert mono.runtime().host().proc.pid != pid


def test_memory_bomb_hits_limit(cs):
    cs.deploy("csharp", BOMB_CS, name="bomb", memory_mb=16)
    # 2000 MB cannot finish under the host's 1024 MB heap cap: the watchdog stops it at the
    # 16 MB growth limit, or (on a starved machine, where the 2 ms watchdog runs late) the cap does
    with pytest.raises(LimitExceeded, match="memory limit (of )?16 MB"):
        cs.invoke("bomb", 2000)
    assert cs.invoke("bomb", 4) == 4  # the next call works
    # one allocation larger than the whole host heap: OutOfMemoryException -> LimitExceeded
    cs.deploy("csharp", "public static int huge(int mb) { var b = new byte[mb * (1 << 20)]; "
                        "return b.Length; }", name="huge", memory_mb=16)
    with pytest.raises(LimitExceeded, match="memory limit 16 MB"):
        cs.invoke("huge", 2000)
    assert cs.invoke("huge", 1) == 1 << 20


def test_abort_by_execution_id(cs):
    cs.deploy("csharp", SPIN_CS.replace("spin(", "spin_abort("), name="spin_abort", timeout=30)
    _, ex = abort_while_running(cs, "spin_abort", 1, settle=0.05, wait=10)
    assert ex.status == "aborted" and isinstance(ex.error, Aborted)
    assert ex.duration_ms < 5000


def test_concurrent_calls_from_threads(cs):
    src = """using System;
using System.Threading;

public static int slow(int x) {
    Console.WriteLine("start " + x);
    Thread.Sleep(500);
    Console.WriteLine("end " + x);
    return x * 10;
}
"""
    cs.deploy("csharp", src, name="slow")
    assert cs.invoke("slow", 0) == 0
    results = {}

    def call(i):
        results[i] = cs.run("slow", i)

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert time.monotonic() - started < 4 * 0.5  # they ran at the same time in the host
    for i in range(1, 5):
        ex = results[i]
        assert ex.value == i * 10
        assert [msg for _, msg, _ in ex.console] == [f"start {i}", f"end {i}"]  # not mixed up


def test_new_version_replaces_old(cs):
    src = "static int calls = 0;\npublic static string ver(int x) {{ calls++; return \"{v}:\" + calls; }}\n"
    cs.deploy("csharp", src.format(v="v1"), name="ver")
    assert cs.invoke("ver", 0) == "v1:1"
    assert cs.invoke("ver", 0) == "v1:2"
    cs.deploy("csharp", src.format(v="v2"), name="ver")
    assert cs.invoke("ver", 0) == "v2:1"  # its own AppDomain: statics start fresh
    assert cs.invoke("ver@1", 0) == "v1:3"
    fn = cs.loader.get("ver@1").code
    fn.close()  # what the LRU does on eviction: the AppDomain is unloaded
    assert fn._host is None


# -- crashes do not take the kernel down -----------------------------------------------------

@pytest.mark.parametrize("body, expect", [
    ('System.Environment.FailFast("giving up"); return x;', r"C# host was killed by SIGABRT.*giving up"),
    ("return crash(x + 1) + 1;", r"StackOverflowException"),
    ("System.Environment.Exit(3); return x;", r"crash called Environment\.Exit\(3\), which ends the shared C# host"),
])
def test_crashing_function_does_not_take_the_kernel_down(cs, body, expect):
    cs.deploy("csharp", f"public static int crash(int x) {{ {body} }}", name="crash")
    cs.deploy("csharp", ADD_CS, name="add")
    with pytest.raises(InvocationError, match=expect):
        cs.invoke("crash", 1)
    assert cs.invoke("add", 2, 2) == 4  # this process is alive; the host restarts when needed


# -- the sandbox: each escape attempt is refused ------------------------------------------------

def test_escape_read_host_file(cs):
    if not sandboxed():
        pytest.skip("bubblewrap is not usable here")
    assert os.path.exists("/etc/hostname")
    cs.deploy("csharp", "public static string read(string p) { return System.IO.File.ReadAllText(p); }",
              name="read")
    with pytest.raises(InvocationError, match=r'FileNotFoundException: Could not find file "/etc/hostname"'):
        cs.invoke("read", "/etc/hostname")


def test_escape_write_outside(cs, tmp_path):
    if not sandboxed():
        pytest.skip("bubblewrap is not usable here")
    cs.deploy("csharp", "public static int write(string p) { System.IO.File.WriteAllText(p, \"x\"); "
                        "return 1; }", name="write")
    target = tmp_path / "escaped.txt"
    with pytest.raises(InvocationError, match="DirectoryNotFoundException"):
        cs.invoke("write", str(target))
    assert not target.exists()
    with pytest.raises(InvocationError, match="UnauthorizedAccessException"):  # read-only Mono install
        cs.invoke("write", "/usr/lib/mono/escaped.txt")
    assert not os.path.exists("/usr/lib/mono/escaped.txt")
    assert cs.invoke("write", "/tmp/inside.txt") == 1  # the private /tmp works


def test_escape_spawn_process(cs):
    cs.deploy("csharp", """using System.Diagnostics;
public static string spawn(string exe) {
    var p = Process.Start(new ProcessStartInfo(exe, "--version") { UseShellExecute = false });
    p.WaitForExit();
    return "ran " + p.ExitCode;
}
""", name="spawn")
    if sandboxed():
        with pytest.raises(InvocationError, match="Win32Exception: .*Cannot find the specified file"):
            cs.invoke("spawn", "/bin/sh")
    if mono.runtime().host().info.get("seccomp") == "on":
        # the mono binary is inside the sandbox, but seccomp refuses fork (EPERM; Mono words
        # its failed fork as "Out of memory")
        with pytest.raises(InvocationError, match="Win32Exception: ApplicationName='/usr/bin/mono-sgen'.*"
                                                  "Native error"):
            cs.invoke("spawn", os.path.realpath("/usr/bin/mono"))


def test_escape_socket_to_localhost(cs):
    if not sandboxed():
        pytest.skip("bubblewrap is not usable here")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    cs.deploy("csharp", "public static string connect(int port) {\n"
                        "    var c = new System.Net.Sockets.TcpClient();\n"
                        "    c.Connect(\"127.0.0.1\", port);\n    return \"connected\";\n}", name="connect")
    try:
        with pytest.raises(InvocationError, match="SocketException: (Connection refused|Network is unreachable)"):
            cs.invoke("connect", port)
        with pytest.raises(socket.timeout):
            listener.accept()  # nothing ever arrived
    finally:
        listener.close()


def test_escape_read_environment(cs, monkeypatch):
    monkeypatch.setenv("FNB_CSHARP_SECRET", "s3cret")
    mono.runtime().shutdown()  # the next host starts with the variable set in this process
    cs.deploy("csharp", "public static string env(string n) { return System.Environment.GetEnvironmentVariable(n); }",
              name="env")
    assert cs.invoke("env", "FNB_CSHARP_SECRET") is None
    assert cs.invoke("env", "HOME") == "/tmp"


# -- toolchain report, process hygiene ------------------------------------------------------------

def test_doctor_reports_isolation_layers():
    tc = languages.get_language("csharp").toolchain(refresh=True)
    assert tc.usable and tc.version.startswith("mcs ") and "Mono" in tc.version
    assert "isolation:" in tc.detail and "seccomp" in tc.detail
    if sandboxed():
        assert "bubblewrap: no network" in tc.detail


def test_host_killed_from_outside_restarts(cs):
    cs.deploy("csharp", ADD_CS, name="add")
    assert cs.invoke("add", 1, 1) == 2
    host = mono.runtime().host()
    host.proc.kill()
    host.proc.wait(10)  # it ended while nothing ran: the next call notices and starts another
    ex = cs.run("add", 1, 2)
    assert ex.value == 3 and ex.cold
    assert not host.alive and "killed by SIGKILL" in host.reason
    assert mono.runtime().host() is not host


def test_large_memory_limit_raises_the_host_heap_cap(cs):
    src = BOMB_CS.replace("bomb(", "bigbomb(")
    cs.deploy("csharp", src, name="bigbomb", memory_mb=1200)
    assert cs.invoke("bigbomb", 64) == 64  # more than a 16 MB function could hold
    assert mono.runtime().heap_mb >= 1200 + mono.HEAP_HEADROOM_MB
    assert mono.runtime().host().heap_mb == mono.runtime().heap_mb


def test_shutdown_leaves_no_process(cs):
    cs.deploy("csharp", ADD_CS, name="add")
    assert cs.invoke("add", 1, 1) == 2
    host = mono.runtime().host()
    mono.runtime().shutdown()
    assert host.proc.poll() is not None  # exited and reaped
    assert cs.invoke("add", 1, 2) == 3  # a new host starts on demand


def test_raw_baseline_calls_add_on_its_own_host(fx):
    fx.deploy("csharp", ADD_CS, name="add")
    info = fx.info("add")
    code = fx.store.get_code(info)
    raw = mono.raw_baseline(code, info.signature, "add", (2, 3))
    assert raw() == 5
    assert raw() == 5
    assert fx.invoke("add", 2, 3) == 5  # the shared host is undisturbed


PARAMS_CS = """public static long Sum(int start, params int[] xs) {
    long total = start;
    foreach (var x in xs) total += x;
    return total;
}

public static string Join(string sep, params string[] parts) { return string.Join(sep, parts); }

public static int Count(params byte[] data) { return data.Length * 1000 + (data.Length > 0 ? data[0] : 0); }

public static double Mean(params double[] xs) { return xs.Length == 0 ? 0 : xs.Average(); }
"""


def test_params_arrays_take_the_rest_of_the_arguments(cs):
    info = cs.deploy("csharp", PARAMS_CS, name="Sum")
    last = info.signature.params[-1]
    assert last.variadic and last.kind == "i32[]" and last.element == "i32"
    assert str(info.signature) == "Sum(start: int, xs: params int[]) -> long"
    assert cs.invoke("Sum", 1, 2, 3, 4) == 10
    assert cs.invoke("Sum", 5) == 5  # no rest: an empty array
    assert cs.invoke("Sum", start=1, xs=[10, 20]) == 31  # by name: a list of the elements
    assert cs.map("Sum", [(1, 2), (0,), (1, 1, 1)]) == [3, 0, 3]
    with pytest.raises(BadArguments, match=r"argument 'xs\[1\]' expects int.*out of range"):
        cs.invoke("Sum", 0, 1, 2**31)
    with pytest.raises(BadArguments, match=r"argument 'xs\[0\]' expects int"):
        cs.invoke("Sum", 0, "1")
    with pytest.raises(BadArguments, match=r"argument 'xs\[0\]' expects int"):
        cs.invoke("Sum", 0, [1, 2])  # an array is spread to fill params: *[1, 2]
    cs.deploy("csharp", PARAMS_CS, name="Join")
    assert cs.invoke("Join", "-", "a", "é", "c") == "a-é-c" and cs.invoke("Join", ",") == ""
    with pytest.raises(BadArguments, match=r"argument 'parts\[0\]' expects string"):
        cs.invoke("Join", "-", 1)
    cs.deploy("csharp", PARAMS_CS, name="Count")
    assert cs.invoke("Count", 7, 8) == 2007 and cs.invoke("Count") == 0
    assert cs.invoke("Count", data=b"\x05") == 1005
    with pytest.raises(BadArguments, match=r"argument 'data\[0\]' expects byte"):
        cs.invoke("Count", 256)
    cs.deploy("csharp", PARAMS_CS, name="Mean")
    assert cs.invoke("Mean", 1, 2.5) == 1.75 and cs.invoke("Mean") == 0


EXACT_CS = """public class Pt { public double a; public float b; public int n; }
public static object Echo(object x) { return x; }
public static List<double> Doubles(List<double> xs) { return xs; }
public static Pt Point(Pt p) { return p; }
public static Dictionary<string, double> Prices(Dictionary<string, double> d) { return d; }
public static float Single(float x) { return x; }
"""


def test_values_cross_exactly_or_are_refused(cs):
    """-0.0 keeps its sign through JSON both ways (Mono's parser and "R" format drop it), an
    object parameter refuses an integer beyond 64 bits (a double would round it), and a float
    parameter refuses a value f32 cannot hold (it was an InvocationError from struct.pack)."""
    import math

    for name in ("Echo", "Doubles", "Point", "Prices", "Single"):
        cs.deploy("csharp", EXACT_CS, name=name)

    def negative_zero(x):
        return x == 0 and type(x) is float and math.copysign(1, x) < 0

    assert negative_zero(cs.invoke("Echo", -0.0))
    assert [negative_zero(x) for x in cs.invoke("Doubles", [-0.0, 0.0, 2.0])] == [True, False, False]
    point = cs.invoke("Point", {"a": -0.0, "b": -0.0})
    assert negative_zero(point["a"]) and negative_zero(point["b"])
    assert negative_zero(cs.invoke("Prices", {"tea": -0.0})["tea"])
    assert cs.invoke("Echo", [2**64 - 1, -2**63, 2.0]) == [2**64 - 1, -2**63, 2.0]
    for big in (2**64, -2**63 - 1, [1, 2**70]):
        with pytest.raises(BadArguments, match=r"argument 'x' does not fit its type object: "
                                               r"integer -?\d+ is beyond 64 bits"):
            cs.invoke("Echo", big)
    with pytest.raises(BadArguments, match=r"argument 'x' expects float.*out of range for f32"):
        cs.invoke("Single", 1e308)
    assert cs.invoke("Single", 1.5) == 1.5


def test_json_as_deep_as_arguments_may_be_comes_back(cs):
    src = ("public class Node { public Node next; }\n"
           "public static object Deep(object x) { return x; }\n"
           "public static Node Loop() { var n = new Node(); n.next = n; return n; }\n")
    cs.deploy("csharp", src, name="Deep")
    value: list = []
    for _ in range(99):  # 100 levels: the most an argument may have (values.MAX_JSON_DEPTH)
        value = [value]
    assert cs.invoke("Deep", value) == value
    cs.deploy("csharp", src, name="Loop")
    with pytest.raises(InvocationError, match="nested more than 200 levels deep \\(a cycle\\?\\)"):
        cs.invoke("Loop")


def test_an_integer_a_double_field_cannot_hold_is_refused(cs):
    cs.deploy("csharp", EXACT_CS, name="Doubles")
    assert cs.invoke("Doubles", [2**53, -(2**62), 3, 2**70]) == [2.0**53, -(2.0**62), 3.0, 2.0**70]
    for big in (2**53 + 1, -(2**63) + 1, 2**64 - 1, 2**70 + 1):
        with pytest.raises(BadArguments, match=rf"integer {big} has no exact double value"):
            cs.invoke("Doubles", [1.5, big])
    cs.deploy("csharp", EXACT_CS, name="Point")
    with pytest.raises(BadArguments, match=r"expected an integer \(int\), got the float 2\.0"):
        cs.invoke("Point", {"a": 1.0, "b": 1.0, "n": 2.0})


def test_json_doubles_cross_exactly(cs):
    """Mono's double.Parse misrounds some texts (1 in 6 subnormals, about 1 in 300 doubles of
    extreme magnitude) and its "R" format picks digits that do not always read back: doubles in
    JSON are converted exactly both ways, floats come back as their exact value."""
    import random
    import struct

    cs.deploy("csharp", EXACT_CS, name="Echo")
    rng = random.Random(7)
    bits = [rng.randrange(1, 2**53) for _ in range(150)] + \
        [rng.randrange(2**52, 0x7FF0000000000000) for _ in range(300)]
    values = [struct.unpack("<d", struct.pack("<q", b))[0] for b in bits]
    values += [-v for v in values] + [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                                      2.388713296911463e-210, 2.0, 0.1, 1e23]
    got = cs.invoke("Echo", values)
    wrong = [(v, g) for v, g in zip(values, got, strict=True)
             if struct.pack("<d", v) != struct.pack("<d", g)]
    assert not wrong, wrong[:5]
    cs.deploy("csharp", EXACT_CS, name="Point")
    assert cs.invoke("Point", {"a": 0.1, "b": 0.1, "n": 1})["b"] == struct.unpack(
        "<f", struct.pack("<f", 0.1))[0]  # the float's exact value, as a scalar float result
