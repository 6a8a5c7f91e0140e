"""Zig cells: calling convention, errors, logging, panics."""

from __future__ import annotations

import pytest

from functions_nb import BadArguments, CompileError, InvocationError

ZIG = """const std = @import("std");

fn add(a: i32, b: i32) i32 {
    std.log.info("add {d} {d}", .{ a, b });
    return a + b;
}

const Stats = struct { n: usize, mean: f64 };

fn stats(xs: []const f64) Stats {
    var total: f64 = 0;
    for (xs) |x| total += x;
    return .{ .n = xs.len, .mean = total / @as(f64, @floatFromInt(xs.len)) };
}

fn greet(alloc: std.mem.Allocator, name: []const u8) ![]const u8 {
    std.log.warn("greeting {s}", .{name});
    return std.fmt.allocPrint(alloc, "Hello, {s}!", .{name});
}

fn divide(a: i64, b: i64) !i64 {
    if (b == 0) return error.DivisionByZero;
    return @divTrunc(a, b);
}

fn small(a: u8, b: u8) u8 {
    return a + b;
}

fn count(words: []const []const u8) usize {
    return words.len;
}

fn flags(on: bool, x: f32) f32 {
    return if (on) x * 2 else x;
}

fn sum(xs: []const i64) i64 {
    var t: i64 = 0;
    for (xs) |x| t += x;
    return t;
}
"""


@pytest.fixture(params=[None, "zig-0.16"], ids=["zig-0.17", "zig-0.16"])
def zfx(fx, request):
    """The cell deployed with the default Zig (0.17) and with ``--toolchain zig-0.16``: the one
    glue file serves both."""
    flags = {"toolchain": request.param} if request.param else None
    for name in ("add", "stats", "greet", "divide", "small", "flags", "sum", "count"):
        info = fx.deploy("zig", ZIG, name=name, flags=flags)
        assert info.toolchain["zig"].startswith("0.16" if request.param else "0.17")
    return fx


def test_values_cross_the_boundary(zfx):
    fx = zfx
    ex = fx.run("add", 2, 3)
    assert ex.value == 5 and [(c[0], c[1]) for c in ex.console] == [("info", "add 2 3")]
    assert fx.invoke("stats", [1, 2, 4.5]) == {"n": 3, "mean": 2.5}
    ex = fx.run("greet", "Zig")
    assert ex.value == "Hello, Zig!" and ex.console[0][:2] == ("warn", "greeting Zig")
    assert fx.invoke("divide", -9, 2) == -4
    assert fx.invoke("flags", True, 1.5) == 3.0
    assert fx.invoke("sum", [1, 2, 2**40]) == 3 + 2**40
    for _ in range(200):  # the per-call arena is reset: memory does not grow
        fx.invoke("greet", "x" * 1000)
    assert fx.run("greet", "y").memory_bytes < 4 * 1024 * 1024


def test_errors(zfx):
    fx = zfx
    with pytest.raises(InvocationError, match="DivisionByZero"):
        fx.invoke("divide", 1, 0)
    with pytest.raises(InvocationError, match="integer overflow"):
        fx.invoke("small", 200, 100)
    assert fx.invoke("small", 1, 2) == 3
    with pytest.raises(BadArguments, match="out of range for u8"):
        fx.invoke("small", 256, 1)
    with pytest.raises(BadArguments, match=r"expects \[\]const f64.*1-D numpy array"):
        fx.invoke("stats", {"not": "a list"})
    with pytest.raises(BadArguments, match="does not fit its type"):
        fx.invoke("count", [1, 2])
    assert fx.invoke("count", ["a", "b"]) == 2
    with pytest.raises(BadArguments, match="expects bool"):
        fx.invoke("flags", 1, 1.0)


def test_compile_error_line(fx):
    src = "fn add(a: i32, b: i32) i32 {\n    return a + c;\n}\n"
    with pytest.raises(CompileError) as err:
        fx.deploy("zig", src, name="add")
    assert err.value.line == 2
    assert "cell:2:16: error: use of undeclared identifier 'c'" in str(err.value)
    assert "referenced by" not in str(err.value)


def test_export_fn_is_accepted(fx):
    fx.deploy("zig", "export fn twice(x: i32) i32 {\n    return 2 * x;\n}\n", name="twice")
    assert fx.invoke("twice", 21) == 42


def test_reserved_declarations_are_refused(fx):
    src = 'const std = @import("std");\npub const std_options: std.Options = .{};\n' \
          'fn f() i32 { return 1; }\n'
    with pytest.raises(CompileError, match="std_options"):
        fx.deploy("zig", src, name="f")


HASH_MAP = """const std = @import("std");

fn tally(alloc: std.mem.Allocator, text: []const u8) !std.StringHashMap(u32) {
    var map = std.StringHashMap(u32).init(alloc);
    var words = std.mem.tokenizeScalar(u8, text, ' ');
    while (words.next()) |w| {
        const slot = try map.getOrPut(w);
        slot.value_ptr.* = if (slot.found_existing) slot.value_ptr.* + 1 else 1;
    }
    return map;
}
"""


@pytest.mark.parametrize("toolchain", [None, "zig-0.16"])
def test_hash_map_result_and_comptime_refusal_under_both_toolchains(fx, toolchain):
    flags = {"toolchain": toolchain} if toolchain else None
    fx.deploy("zig", HASH_MAP, name="tally", flags=flags)
    assert fx.invoke("tally", "a b a") == {"a": 2, "b": 1}
    with pytest.raises(CompileError, match=r"`comptime n: u32`"):
        fx.deploy("zig", "fn twice(comptime n: u32) u32 {\n    return 2 * n;\n}\n", name="twice",
                  flags=flags)


FLOATS = """const std = @import("std");

const Point = struct { x: f64, y: f32, label: []const u8, weight: ?f64 };
const Shape = union(enum) { circle: f64, dot, count: i32 };

fn point(x: f64) Point {
    return .{ .x = x, .y = 2, .label = "p", .weight = if (x > 0) 1 else null };
}

fn specials() [5]f64 {
    return .{ std.math.nan(f64), std.math.inf(f64), -std.math.inf(f64), -0.0, 1e300 };
}

fn shapes() [3]Shape {
    return .{ .{ .circle = 1 }, .dot, .{ .count = 3 } };
}

fn prices(alloc: std.mem.Allocator) !std.StringHashMap(f64) {
    var map = std.StringHashMap(f64).init(alloc);
    try map.put("tea", 2);
    return map;
}

fn echo(v: std.json.Value) std.json.Value {
    return v;
}
"""


def _exact(got, want):
    """Same type and value all the way down (NaN is NaN, -0.0 keeps its sign)."""
    import math

    assert type(got) is type(want), (got, want)
    if isinstance(want, float):
        assert (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1, got) == math.copysign(1, want)), (got, want)
    elif isinstance(want, list):
        assert len(got) == len(want), (got, want)
        for g, w in zip(got, want, strict=True):
            _exact(g, w)
    elif isinstance(want, dict):
        assert got.keys() == want.keys(), (got, want)
        for k in want:
            _exact(got[k], want[k])
    else:
        assert got == want


@pytest.mark.parametrize("toolchain", [None, "zig-0.16"])
def test_floats_in_json_results_stay_floats(fx, toolchain):
    """std.json writes an integral float as `2`: the glue writes every float so that it reads
    back as the same float (2.0, -0.0, 1e300, NaN, infinities), in structs, arrays, optionals,
    unions, hash maps and std.json.Value alike."""
    flags = {"toolchain": toolchain} if toolchain else None
    for name in ("point", "specials", "shapes", "prices", "echo"):
        fx.deploy("zig", FLOATS, name=name, flags=flags)
    _exact(fx.invoke("point", 2.0), {"x": 2.0, "y": 2.0, "label": "p", "weight": 1.0})
    _exact(fx.invoke("point", -0.0), {"x": -0.0, "y": 2.0, "label": "p", "weight": None})
    _exact(fx.invoke("specials"), [float("nan"), float("inf"), -float("inf"), -0.0, 1e300])
    _exact(fx.invoke("shapes"), [{"circle": 1.0}, {"dot": {}}, {"count": 3}])
    _exact(fx.invoke("prices"), {"tea": 2.0})
    value = {"a": [1.0, -0.0, 5e-324, 1e22, 0.1], "b": 7, "c": None, "d": "x", "e": {"f": 3.0}}
    _exact(fx.invoke("echo", value), value)
    _exact(fx.invoke("echo", 2.0), 2.0)


ARGS = """const std = @import("std");

const Color = enum { red, green, blue };

fn totals(m: std.AutoHashMapUnmanaged(u32, std.StringHashMap(f64))) std.AutoHashMapUnmanaged(u32, f64) {
    var out: std.AutoHashMapUnmanaged(u32, f64) = .empty;
    var it = m.iterator();
    while (it.next()) |e| {
        var sum: f64 = 0;
        var inner = e.value_ptr.iterator();
        while (inner.next()) |x| sum += x.value_ptr.*;
        out.put(std.heap.wasm_allocator, e.key_ptr.*, sum) catch unreachable;
    }
    return out;
}

fn paint(c: Color, dim: ?Color) Color {
    return dim orelse c;
}

fn narrow(a: u1, b: i7, c: u24) i33 {
    return @as(i33, a) + b + c;
}
"""


@pytest.mark.parametrize("toolchain", [None, "zig-0.16"])
def test_map_enum_and_odd_width_arguments(fx, toolchain):
    """Hash-map parameters are built from a dict (std.json cannot parse them); an enum takes
    only its tag name (std.json also took 0 or "0" as the first tag); integers of any width up
    to 64 bits are parameters and results (the C calling convention has no u1 or i24)."""
    flags = {"toolchain": toolchain} if toolchain else None
    for name in ("totals", "paint", "narrow"):
        fx.deploy("zig", ARGS, name=name, flags=flags)
    assert fx.invoke("totals", {"1": {"a": 1.5, "b": 2.0}, "7": {}}) == {"1": 3.5, "7": 0.0}
    with pytest.raises(BadArguments, match="does not fit its type: InvalidCharacter"):
        fx.invoke("totals", {"x": {}})  # a key that is not a u32
    assert fx.invoke("paint", "red", None) == "red" and fx.invoke("paint", "red", "blue") == "blue"
    for bad, message in (("0", '"0" is no tag of'), (0, "a JSON integer is no tag name of"),
                         ("purple", '"purple" is no tag of')):
        with pytest.raises(BadArguments, match=message):
            fx.invoke("paint", bad, None)
    assert fx.invoke("narrow", 1, -64, 2**24 - 1) == 1 - 64 + 2**24 - 1
    with pytest.raises(BadArguments, match="out of range for u1"):
        fx.invoke("narrow", 2, 0, 0)
    with pytest.raises(BadArguments, match="out of range for i7"):
        fx.invoke("narrow", 0, 64, 0)


@pytest.mark.parametrize("toolchain", [None, "zig-0.16"])
def test_json_numbers_cross_exactly_or_are_refused(fx, toolchain):
    """As scalar arguments: a float (2.0) is no integer, and an integer must be one the float
    type holds exactly (std.json took 2.0 as 2 and rounded 2**53 + 1)."""
    src = ("const P = struct { a: f64, b: i64, c: ?[]const f32 = null };\n\n"
           "fn ident(x: P) P {\n    return x;\n}\n")
    fx.deploy("zig", src, name="ident", flags={"toolchain": toolchain} if toolchain else None)
    got = fx.invoke("ident", {"a": 2**53, "b": -(2**63), "c": [1, 0.5]})
    assert got == {"a": 2.0**53, "b": -(2**63), "c": [1.0, 0.5]} and type(got["a"]) is float
    assert fx.invoke("ident", {"a": 2**70, "b": 0})["a"] == 2.0**70
    cases = [({"a": 2**53 + 1, "b": 0}, "integer 9007199254740993 has no exact f64 value"),
             ({"a": 1.5, "b": 2.0}, r"the float 2e0 is no integer \(i64 declared\)"),
             ({"a": 0, "b": 0, "c": [2**60 + 1]}, "integer 1152921504606846977 has no exact f32"),
             ({"a": 2**200, "b": 0}, "is beyond 128 bits: pass it as a float for f64")]
    for value, message in cases:
        with pytest.raises(BadArguments, match=message):
            fx.invoke("ident", value)


@pytest.mark.parametrize("toolchain", [None, "zig-0.16"])
def test_enum_fields_take_only_tag_names(fx, toolchain):
    src = ("const Color = enum { red, green };\nconst Pixel = struct { c: Color, n: u8 };\n\n"
           "fn pix(p: []const Pixel) []const Pixel {\n    return p;\n}\n")
    fx.deploy("zig", src, name="pix", flags={"toolchain": toolchain} if toolchain else None)
    assert fx.invoke("pix", [{"c": "green", "n": 1}]) == [{"c": "green", "n": 1}]
    with pytest.raises(BadArguments, match=r'"0" is no tag of .*Color'):
        fx.invoke("pix", [{"c": "0", "n": 1}])
    with pytest.raises(BadArguments, match=r"a JSON integer is no tag name of .*Color"):
        fx.invoke("pix", [{"c": 1, "n": 1}])
