"""Go cells: wasip1 reactor with //go:wasmexport, values, errors, limits and the sandbox."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from functions_nb import (
    BadArguments,
    CompileError,
    Functions,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
)

from .conftest import STOP_MARGIN_S

GO = """import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

type Stats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
}

func greet(name string) string {
	fmt.Println("greeting", name)
	fmt.Fprintln(os.Stderr, "careful")
	return "Hello, " + strings.ToUpper(name) + "!"
}

func stats(xs []float64, scale float32) (Stats, error) {
	if len(xs) == 0 {
		return Stats{}, errors.New("no values")
	}
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return Stats{N: len(xs), Mean: t / float64(len(xs)) * float64(scale)}, nil
}

func work(op string, n int) int {
	switch op {
	case "panic":
		var m map[string]int
		m["x"] = n
	case "spin":
		x := n
		for {
			x = x*31 + 7
		}
	case "sleep":
		time.Sleep(time.Duration(n) * time.Millisecond)
	case "bomb":
		keep := [][]byte{}
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			b[0] = 1
			keep = append(keep, b)
		}
		return len(keep)
	}
	return n
}

func escape(what string, arg string) string {
	var err error
	switch what {
	case "read":
		_, err = os.ReadFile("/etc/hostname")
	case "write":
		err = os.WriteFile(arg, []byte("x"), 0o644)
	case "spawn":
		err = exec.Command("/bin/sh", "-c", "echo escaped").Run()
	case "socket":
		var c net.Conn
		c, err = net.Dial("tcp", arg)
		if c != nil {
			c.Close()
		}
	case "env":
		if v, ok := os.LookupEnv(arg); ok {
			return "leaked " + v
		}
		return fmt.Sprintf("refused: %s is not set (%d variables visible)", arg, len(os.Environ()))
	}
	if err != nil {
		return "refused: " + err.Error()
	}
	return "escaped"
}

func doubled(xs []int32) []int32 {
	out := make([]int32, len(xs))
	for i, x := range xs {
		out[i] = 2 * x
	}
	return out
}

func keys(m map[string]int, flag bool, b []byte) []string {
	out := []string{}
	for k, v := range m {
		if flag {
			out = append(out, fmt.Sprintf("%s=%d", k, v+len(b)))
		}
	}
	return out
}
"""
NAMES = ("greet", "stats", "work", "escape", "doubled", "keys")


@pytest.fixture(scope="module")
def gfx(tmp_path_factory):
    fx = Functions(store=str(tmp_path_factory.mktemp("go") / "store"))
    for name in NAMES:
        fx.deploy("go", GO, name=name, line_offset=1, timeout=5, memory_mb=64)
    yield fx
    fx.close()


def test_values_cross_the_boundary(gfx):
    fx = gfx
    ex = fx.run("greet", "gopher")
    assert ex.value == "Hello, GOPHER!"
    assert [(lvl, text) for lvl, text, _ in ex.console] == [("log", "greeting gopher"),
                                                            ("error", "careful")]
    assert fx.invoke("stats", np.array([1.0, 2.0, 3.0]), 2.0) == {"n": 3, "mean": 4.0}
    assert fx.invoke("stats", [1, 2], 1.0) == {"n": 2, "mean": 1.5}
    out = fx.invoke("doubled", np.arange(4, dtype=np.int32))
    assert out.dtype == np.int32 and out.tolist() == [0, 2, 4, 6]
    assert fx.invoke("keys", {"a": 1}, True, b"xyz") == ["a=4"]
    assert fx.invoke("keys", {"a": 1}, False, b"") == []
    assert str(fx.info("stats").signature) == "stats(xs: []float64, scale: float32) -> (Stats, error)"


def test_errors_and_bad_arguments(gfx):
    fx = gfx
    with pytest.raises(InvocationError, match="stats failed: no values"):
        fx.invoke("stats", [], 1.0)
    with pytest.raises(InvocationError, match=r"panic: assignment to entry in nil map \(at cell line 38\)"):
        fx.invoke("work", "panic", 1)
    assert fx.invoke("work", "ok", 7) == 7  # the instance was replaced
    with pytest.raises(BadArguments, match=r"work\(op: string, n: int\) -> int: argument 'n' expects int"):
        fx.invoke("work", "ok", "7")
    with pytest.raises(BadArguments, match="does not fit its type map"):
        fx.invoke("keys", ["not", "a map"], True, b"")


def test_limits(gfx):
    fx = gfx
    fx.invoke("work", "ok", 1)
    for op, n in (("spin", 1), ("sleep", 60_000)):
        started = time.monotonic()
        ex = fx.run("work", op, n, timeout=0.3)
        elapsed = time.monotonic() - started
        assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout), (op, ex.error)
        assert ex.duration_ms < 300 + STOP_MARGIN_S * 1000, (op, ex.duration_ms)
        assert elapsed < 0.3 + STOP_MARGIN_S
        assert fx.invoke("work", "ok", 2) == 2
    with pytest.raises(LimitExceeded, match="64 MB"):
        fx.invoke("work", "bomb", 500)
    assert fx.invoke("work", "bomb", 4) == 4


def test_abort_a_running_call(gfx):
    fx = gfx
    fx.invoke("work", "ok", 1)

    def abort_soon():
        time.sleep(0.2)
        for r in fx.running():
            fx.abort(r["id"])

    threading.Thread(target=abort_soon).start()
    ex = fx.run("work", "spin", 1, timeout=10)
    assert ex.status == "aborted" and ex.duration_ms < STOP_MARGIN_S * 1000


# -- the sandbox: every attempt is refused ---------------------------------------------

def test_cannot_read_host_files(gfx):
    assert gfx.invoke("escape", "read", "") == "refused: open /etc/hostname: Bad file number"


def test_cannot_write_files(gfx, tmp_path):
    target = tmp_path / "escape.txt"
    assert gfx.invoke("escape", "write", str(target)).startswith("refused: open")
    assert not target.exists()


def test_cannot_open_sockets(gfx):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        out = gfx.invoke("escape", "socket", f"127.0.0.1:{port}")
        assert out.startswith("refused: dial tcp")
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected
    finally:
        server.close()


def test_cannot_read_environment(gfx, monkeypatch):
    monkeypatch.setenv("FNB_SECRET", "hunter2")
    assert gfx.invoke("escape", "env", "FNB_SECRET") == \
        "refused: FNB_SECRET is not set (0 variables visible)"


# -- compile errors -----------------------------------------------------------------------

def test_compile_error_has_cell_line(fx):
    src = "func add(a, b int32) int32 {\n\treturn a + c\n}\n"
    with pytest.raises(CompileError) as err:
        fx.deploy("go", src, name="add", line_offset=1)
    assert err.value.line == 3
    assert "cell:3:13: undefined: c" in str(err.value)
    with pytest.raises(CompileError, match=r"(?s)no function named `nope`.*func nope\("):
        fx.deploy("go", src, name="nope")


PROBE = """
import sys, time
t0 = time.perf_counter()
from functions_nb import Functions
from functions_nb.runtimes.wasm import runtime
t1 = time.perf_counter()
fx = Functions(store=sys.argv[1])
value = fx.invoke("greet", "x")
t2 = time.perf_counter()
print(value.replace(" ", "_"), runtime().compiles, round((t2 - t1) * 1000, 1))
"""


def test_fresh_process_uses_the_precompiled_module(gfx, tmp_path):
    """The Go runtime takes ~1.5 s to compile to native code; a fresh process with an empty
    local cache deserializes the module the store already holds instead."""
    env = {**os.environ, "FUNCTIONS_NB_CACHE": str(tmp_path / "empty-cache")}
    out = subprocess.run([sys.executable, "-c", PROBE, gfx.store.url], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["Hello,_X!", "0"]
    assert float(out[2]) > 0


BYTES_GO = """package checksum

import "encoding/hex"

// Hex writes its bytes as hexadecimal.
func Hex(data ...byte) string {
	return hex.EncodeToString(data)
}

// Checksum mixes the bytes after a seed.
func Checksum(seed int64, data ...uint8) int64 {
	sum := seed
	for _, b := range data {
		sum = sum*31 + int64(b)
	}
	return sum
}
"""


def test_variadic_bytes_take_the_rest_as_a_byte_slice(fx):
    info = fx.deploy("go", BYTES_GO, "Hex")
    (param,) = info.signature.params
    assert param.variadic and param.kind == "bytes" and str(info.signature) == \
        "Hex(data: ...byte) -> string"
    assert fx.invoke("Hex", 0, 255, 16) == "00ff10"
    assert fx.invoke("Hex") == ""  # no bytes: an empty slice
    assert fx.invoke("Hex", *b"hi") == "6869"
    assert fx.invoke("Hex", data=b"\x01\x02") == "0102"  # by name: bytes or a list of them
    assert fx.invoke("Hex", data=[1, 2]) == "0102"
    assert fx.map("Hex", [(1, 2), (), (255,)]) == ["0102", "", "ff"]
    with pytest.raises(BadArguments, match=r"argument 'data\[1\]' expects byte.*out of range"):
        fx.invoke("Hex", 1, 256)
    with pytest.raises(BadArguments, match=r"argument 'data\[0\]' expects byte"):
        fx.invoke("Hex", "a")
    with pytest.raises(BadArguments, match=r"argument 'data\[0\]' expects byte"):
        fx.invoke("Hex", b"hi")  # as in Go, a slice is spread to fill a variadic: *b"hi"
    fx.deploy("go", BYTES_GO, "Checksum")
    assert fx.invoke("Checksum", 7, 1, 2) == (7 * 31 + 1) * 31 + 2
    assert fx.invoke("Checksum", 7) == 7
    with pytest.raises(BadArguments, match=r"argument 'data\[0\]' expects uint8.*out of range"):
        fx.invoke("Checksum", 7, -1)


EXACT_GO = """package exact

import "encoding/json"

type Reading struct {
	Value  float64            `json:"value"`
	Scale  float32            `json:"scale"`
	Labels map[string]float64 `json:"labels"`
	Next   *Reading           `json:"next,omitempty"`
	Count  int                `json:"count"`
}

func Echo(r Reading) Reading {
	return r
}

func Items(xs []any) []any {
	return xs
}

// Sum adds the numbers among xs (a number in an interface{} arrives as a json.Number).
func Sum(xs []any) float64 {
	total := 0.0
	for _, x := range xs {
		if n, ok := x.(json.Number); ok {
			f, _ := n.Float64()
			total += f
		}
	}
	return total
}

func Totals(m map[string][]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = 0
		for _, x := range v {
			out[k] += x
		}
	}
	return out
}
"""


def test_json_floats_and_interface_numbers_cross_exactly(fx):
    """encoding/json wrote a float64 2.0 as 2 and -0.0 as 0 (read back as ints), rounded an
    int beyond 2**53 in an interface{} and left 0 where a null met an int: floats now stay
    floats, a number in an interface{} is a json.Number crossing as its text, and such a null
    is refused naming where."""
    import math

    for name in ("Echo", "Items", "Totals", "Sum"):
        fx.deploy("go", EXACT_GO, name)
    reading = {"value": 2.0, "scale": 0.5, "labels": {"a": -0.0, "b": 1e300}, "count": 3,
               "next": {"value": -0.0, "scale": 1.0, "labels": None, "count": 0}}
    got = fx.invoke("Echo", reading)
    assert got == reading and type(got["value"]) is float and type(got["count"]) is int
    assert math.copysign(1, got["labels"]["a"]) < 0 and math.copysign(1, got["next"]["value"]) < 0
    assert type(got["next"]["scale"]) is float
    assert fx.invoke("Totals", {"x": [1.0, 1.0], "y": []}) == {"x": 2.0, "y": 0.0}
    assert all(type(v) is float for v in fx.invoke("Totals", {"x": [1.0], "y": []}).values())
    # numbers in an interface{} cross as their text: ints of any size, 2.0 and -0.0 as floats
    items = [1, 2**53 + 1, -(2**63), 2**100, 2.0, -0.0, 2.5, "a", None, [1, {"k": 2.0}]]
    got = fx.invoke("Items", items)
    assert got == items and [type(x) for x in got] == [type(x) for x in items]
    assert math.copysign(1, got[5]) < 0 and type(got[9][1]["k"]) is float
    # ... and the function sees json.Number (what encoding/json's UseNumber gives)
    assert fx.invoke("Sum", [1, 2.5, "x", 2**53 + 1]) == 2**53 + 4.5
    with pytest.raises(BadArguments, match=r"argument 'r' does not fit its type Reading: "
                                           r"null at \.count for a int, which has no null"):
        fx.invoke("Echo", {**reading, "count": None})
    with pytest.raises(BadArguments, match=r"null at \.labels\.a for a float64"):
        fx.invoke("Echo", {**reading, "labels": {"a": None}})
    # an integer a float64 cannot hold exactly is refused (encoding/json rounded it)
    assert fx.invoke("Totals", {"x": [2**53, 2**70]}) == {"x": 2.0**53 + 2.0**70}
    with pytest.raises(BadArguments, match=r"integer 9007199254740993 at \.x\[1\] has no exact "
                                           r"float64 value"):
        fx.invoke("Totals", {"x": [1, 2**53 + 1]})
