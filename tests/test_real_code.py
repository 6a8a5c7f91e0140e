"""Programs as people write them (issue 15): each test is one failure class, written from
scratch, and fails on the code before the fix."""

from __future__ import annotations

import pytest

from functions_nb import BadArguments, CompileError, Functions, InvocationError


@pytest.fixture(scope="module")
def fxm(tmp_path_factory):
    f = Functions(store=str(tmp_path_factory.mktemp("real-code-store")))
    yield f
    f.close()


# -- TypeScript / JavaScript --------------------------------------------------------------

WORD_COUNT_TS = """export function count(text: string): Map<string, number> {
  const seen = new Map<string, number>()
  for (const w of text.split(" ")) seen.set(w, (seen.get(w) ?? 0) + 1)
  return seen
}
"""


def test_ts_map_result_is_a_dict(fxm):
    fxm.deploy("typescript", WORD_COUNT_TS, name="count")
    assert fxm.invoke("count", "a b a") == {"a": 2, "b": 1}


def test_js_set_bigint_and_nested_results_cross_exactly(fxm):
    src = """function shapes(n) {
  return {set: new Set([1, 2, 2]), big: 2n ** 70n, nested: [new Map([[1, 10n]]), null, undefined]}
}
"""
    fxm.deploy("javascript", src, name="shapes")
    out = fxm.invoke("shapes", 0)
    assert out == {"set": {1, 2}, "big": 2 ** 70, "nested": [{1: 10}, None, None]}
    assert type(out["big"]) is int and type(out["set"]) is set
    fxm.deploy("javascript", "function big(n) { return BigInt(n) ** 3n }", name="big")
    assert fxm.invoke("big", 3) == 27 and type(fxm.invoke("big", 3)) is int
    fxm.deploy("javascript", "function pairs() { return new Map([[[1], 2]]) }", name="pairs")
    with pytest.raises(InvocationError, match="Map key"):
        fxm.invoke("pairs")


def test_js_untyped_int_beyond_2_53_is_refused(fxm):
    fxm.deploy("javascript", "function inc(xs) { return xs.map((x) => x + 1) }", name="inc")
    assert fxm.invoke("inc", [2 ** 53 - 1]) == [2 ** 53]
    with pytest.raises(BadArguments, match=r"2\*\*53"):
        fxm.invoke("inc", [1, 2 ** 53 + 1])
    fxm.deploy("typescript", "export function cube(n: bigint): bigint { return n ** 3n }", name="cube")
    assert fxm.invoke("cube", 2 ** 60 + 1) == (2 ** 60 + 1) ** 3


def test_ts_default_parameter_is_used_when_omitted(fxm):
    src = 'export function two_fer(name: string = "you"): string {\n  return `One for ${name}, one for me.`\n}\n'
    info = fxm.deploy("typescript", src, name="two_fer")
    assert info.signature.params[0].has_default
    assert fxm.invoke("two_fer") == "One for you, one for me."
    assert fxm.invoke("two_fer", "Bob") == "One for Bob, one for me."
    fxm.deploy("javascript", "function greet(a, b = 2) { return a * b }", name="greet")
    assert fxm.invoke("greet", 5) == 10
    with pytest.raises(BadArguments):
        fxm.invoke("greet")


# -- Rust -----------------------------------------------------------------------------------

ANAGRAMS_RS = """use std::collections::HashSet;

pub fn anagrams_for<'a>(word: &str, possible: &[&'a str]) -> HashSet<&'a str> {
    let sorted = |w: &str| { let mut c: Vec<char> = w.to_lowercase().chars().collect(); c.sort(); c };
    let key = sorted(word);
    possible.iter().copied()
        .filter(|c| c.to_lowercase() != word.to_lowercase() && sorted(c) == key)
        .collect()
}
"""


def test_rust_lifetimes_in_the_signature(fxm):
    fxm.deploy("rust", ANAGRAMS_RS, name="anagrams_for")
    assert sorted(fxm.invoke("anagrams_for", "listen", ["enlists", "google", "inlets", "silent"])) \
        == ["inlets", "silent"]


SHAPES_RS = """#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind { Equilateral, Isosceles, Scalene }

pub struct Report { kind: Kind, sides: Vec<u32> }

pub fn classify(sides: [u32; 3]) -> Report {
    let kind = if sides[0] == sides[1] && sides[1] == sides[2] { Kind::Equilateral }
        else if sides[0] == sides[1] || sides[1] == sides[2] || sides[0] == sides[2] { Kind::Isosceles }
        else { Kind::Scalene };
    let oops: u32 = "x";
    Report { kind, sides: sides.to_vec() }
}
"""


def test_rust_types_without_serde_derives_cross(fxm):
    with pytest.raises(CompileError) as err:  # cell line numbers survive the added derives
        fxm.deploy("rust", SHAPES_RS, name="classify")
    assert err.value.line == 10 and "glue" not in str(err.value)
    fxm.deploy("rust", SHAPES_RS.replace('    let oops: u32 = "x";\n', ""), name="classify")
    assert fxm.invoke("classify", [2, 2, 3]) == {"kind": "Isosceles", "sides": [2, 2, 3]}


def test_rust_usize_overflow_in_wasm32_is_reported(fxm):
    fxm.deploy("rust", "pub fn square(p: usize) -> usize {\n    p * p\n}\n", name="square")
    assert fxm.invoke("square", 60000) == 3_600_000_000
    with pytest.raises(InvocationError, match=r"overflow.*wasm32.*32 bits") as err:
        fxm.invoke("square", 70000)
    assert "cell line 2" in str(err.value)


# -- Zig ----------------------------------------------------------------------------------------

def test_zig_repeat_operator_error_says_it_was_removed(fxm):
    src = """fn is_pangram(s: []const u8) bool {
    var seen = [_]bool{false} ** 26;
    for (s) |c| if (std.ascii.isAlphabetic(c)) { seen[std.ascii.toLower(c) - 'a'] = true; };
    for (seen) |x| if (!x) return false;
    return true;
}
const std = @import("std");
"""
    with pytest.raises(CompileError) as err:
        fxm.deploy("zig", src, name="is_pangram")
    assert err.value.line == 2 and "Zig 0.17 removed" in str(err.value) and "@splat" in str(err.value)
    fxm.deploy("zig", src.replace("var seen = [_]bool{false} ** 26;", "var seen: [26]bool = @splat(false);"),
               name="is_pangram")
    assert fxm.invoke("is_pangram", "The quick brown fox jumps over the lazy dog") is True


def test_zig_comptime_entry_parameter_is_refused_by_name(fxm):
    src = "fn convert(comptime n: u32) u32 {\n    return n * 2;\n}\n"
    with pytest.raises(CompileError, match=r"`comptime n: u32`") as err:
        fxm.deploy("zig", src, name="convert")
    assert err.value.line == 1 and "/" not in str(err.value).split("comptime", 1)[0]
    assert "glue" not in str(err.value)


def test_zig_hash_map_result_is_a_dict(fxm):
    src = """const std = @import("std");

fn count(alloc: std.mem.Allocator, text: []const u8) !std.StringHashMap(u32) {
    var map = std.StringHashMap(u32).init(alloc);
    var words = std.mem.tokenizeScalar(u8, text, ' ');
    while (words.next()) |w| {
        const slot = try map.getOrPut(w);
        slot.value_ptr.* = if (slot.found_existing) slot.value_ptr.* + 1 else 1;
    }
    return map;
}

fn lengths(alloc: std.mem.Allocator, n: u32) !std.AutoHashMap(u32, u64) {
    var map = std.AutoHashMap(u32, u64).init(alloc);
    var i: u32 = 1;
    while (i <= n) : (i += 1) try map.put(i, @as(u64, i) * i);
    return map;
}
"""
    fxm.deploy("zig", src, name="count")
    assert fxm.invoke("count", "a b a c a") == {"a": 3, "b": 1, "c": 1}
    fxm.deploy("zig", src, name="lengths")
    assert fxm.invoke("lengths", 3) == {"1": 1, "2": 4, "3": 9}


SUBLIST_RS = """#[derive(Debug, PartialEq, Eq)]
pub enum Comparison { Equal, Sublist, Superlist, Unequal }

fn contains<T: PartialEq>(big: &[T], small: &[T]) -> bool {
    small.is_empty() || big.windows(small.len()).any(|w| w == small)
}

pub fn sublist<T: PartialEq>(first: &[T], second: &[T]) -> Comparison {
    if first == second { Comparison::Equal }
    else if contains(second, first) { Comparison::Sublist }
    else if contains(first, second) { Comparison::Superlist }
    else { Comparison::Unequal }
}

pub fn largest<T>(xs: &[T]) -> T where T: PartialOrd + Copy {
    let mut best = xs[0];
    for &x in xs { if x > best { best = x } }
    best
}
"""


def test_rust_simple_generics_in_the_signature(fxm):
    fxm.deploy("rust", SUBLIST_RS, name="sublist")
    assert fxm.invoke("sublist", [1, 2], [0, 1, 2, 3]) == "Sublist"
    assert fxm.invoke("sublist", ["a", "b"], ["a", "b"]) == "Equal"
    fxm.deploy("rust", SUBLIST_RS, name="largest")
    assert fxm.invoke("largest", [3, -7, 2 ** 40]) == 2 ** 40
    with pytest.raises(CompileError, match=r"type parameter `I: Iterator"):
        fxm.deploy("rust", "fn total<I: Iterator<Item = u32>>(xs: I) -> u32 { xs.sum() }", name="total")
