"""Rust cells build with a current stable rustc (rustc-web 1.96 from scripts/install-rust.sh):
edition 2024 by default, another edition per function, current std APIs, and borrowed JSON
arguments whose strings carry escapes."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from functions_nb import BadArguments, CompileError, Functions
from functions_nb.languages import rust

pytestmark = pytest.mark.skipif(not rust.Rust().toolchain().usable,
                                reason="Rust toolchain (scripts/install-rust.sh) not installed")

#: Let chains (`if let … && …`) exist only in edition 2024 (stable since 1.88).
LET_CHAINS = """fn first_even_square(xs: Vec<i64>) -> Option<i64> {
    if let Some(x) = xs.iter().find(|x| *x % 2 == 0) && *x != 0 {
        return Some(x * x);
    }
    None
}
"""

#: `gen` is an ordinary identifier up to edition 2021 and a reserved keyword in 2024.
GEN_IDENT = """fn next_gen(n: u32) -> u32 {
    let gen = n + 1;
    gen * 2
}
"""


def rustc_version(text: str) -> tuple[int, int]:
    m = re.search(r"rustc (\d+)\.(\d+)\.\d+", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_edition_2024_is_the_default(fx: Functions) -> None:
    info = fx.deploy("rust", LET_CHAINS, name="first_even_square")
    assert fx.invoke("first_even_square", [3, 5, 6, 8]) == 36
    assert fx.invoke("first_even_square", [1, 3]) is None
    assert fx.invoke("first_even_square", [0, 2]) is None  # the chain's second test
    assert info.flags == {}
    # the same program under edition 2021: let chains are refused there, at the cell's line
    with pytest.raises(CompileError) as err:
        fx.deploy("rust", LET_CHAINS, name="first_even_square", flags={"edition": "2021"})
    assert err.value.line == 2 and "let" in str(err.value)
    assert "built as Rust edition" not in str(err.value)  # the edition was chosen
    # 2021 code whose unsafe attributes and extern blocks 2024 refuses: the error says why
    src = '#[no_mangle]\nfn double(n: i32) -> i32 { n * 2 }\nfn twice(n: i32) -> i32 { double(n) }\n'
    with pytest.raises(CompileError, match=r"(?s)unsafe attribute.*built as Rust edition 2024"):
        fx.deploy("rust", src, name="twice")
    fx.deploy("rust", src, name="twice", flags={"edition": "2021"})
    assert fx.invoke("twice", 21) == 42


def test_current_std_methods(fx: Functions) -> None:
    """`u32::is_multiple_of` (stable since 1.87) and `i32::midpoint`/`isqrt` (1.84-1.87)."""
    src = """fn fizzbuzz(n: u32) -> Vec<String> {
    (1..=n).map(|i| match (i.is_multiple_of(3), i.is_multiple_of(5)) {
        (true, true) => "FizzBuzz".to_string(),
        (true, false) => "Fizz".to_string(),
        (false, true) => "Buzz".to_string(),
        _ => i.to_string(),
    }).collect()
}

fn roots(n: u64) -> u64 { n.isqrt() + 7u64.midpoint(9) }
"""
    fx.deploy("rust", src, name="fizzbuzz")
    assert fx.invoke("fizzbuzz", 15) == ["1", "2", "Fizz", "4", "Buzz", "Fizz", "7", "8", "Fizz",
                                         "Buzz", "11", "Fizz", "13", "14", "FizzBuzz"]
    fx.deploy("rust", src, name="roots")
    assert fx.invoke("roots", 99) == 9 + 8


def test_edition_2021_per_function(fx: Functions) -> None:
    """A 2021 program that edition 2024 refuses (`gen` is a keyword there) builds with the
    edition flag; the flag is kept in the version's metadata and is part of its identity."""
    with pytest.raises(CompileError) as err:
        fx.deploy("rust", GEN_IDENT, name="next_gen")
    assert err.value.line == 2 and "gen" in str(err.value)
    assert "built as Rust edition 2024" in str(err.value) and "--edition 2021" in str(err.value)
    info = fx.deploy("rust", GEN_IDENT, name="next_gen", flags={"edition": "2021"})
    assert info.flags == {"edition": "2021"}
    assert fx.invoke("next_gen", 4) == 10
    assert fx.info("next_gen").flags == {"edition": "2021"}
    # the same source under another edition is another version
    other = fx.deploy("rust", "fn one() -> i32 { 1 }", name="one", flags={"edition": "2021"})
    again = fx.deploy("rust", "fn one() -> i32 { 1 }", name="one")
    assert (other.version, again.version) == (1, 2) and fx.invoke("one") == 1
    # the year may be an int; the prelude and glue build under 2018 and 2015 too
    for edition in (2018, "2015"):
        fn = f"gen{edition}"
        fx.deploy("rust", GEN_IDENT.replace("next_gen", fn), name=fn, flags={"edition": edition})
        assert fx.invoke(fn, 1) == 4


@pytest.mark.parametrize("edition", ["2023", "latest", 2027, True, None])
def test_unknown_edition_is_refused(fx: Functions, edition: object) -> None:
    with pytest.raises(BadArguments, match=r"edition=.* is not accepted; edition is one of: "
                                           r"2024, 2021, 2018, 2015"):
        fx.deploy("rust", "fn one() -> i32 { 1 }", name="one", flags={"edition": edition})
    assert fx.list() == []


def test_metadata_records_the_current_rustc(fx: Functions) -> None:
    info = fx.deploy("rust", "fn one() -> i32 { 1 }", name="one")
    recorded = info.toolchain["rust"]
    assert rustc_version(recorded) >= (1, 96)
    assert fx.info("one").toolchain == {"rust": recorded}
    # it is the compiler the install script put in the private prefix, as doctor shows it
    tc = rust.Rust().toolchain()
    assert tc.version == recorded and tc.path == rust.RUSTC
    assert Path(tc.path).resolve().is_relative_to(rust.sysroot())
    assert f"sysroot {rust.sysroot()}" in tc.detail
    # ... and not Debian's rustc 1.63 (if that is installed beside it)
    debian = Path("/usr/bin/rustc")
    if debian.exists() and debian.resolve() != Path(rust.RUSTC).resolve():
        out = subprocess.run([str(debian), "--version"], capture_output=True, text=True).stdout
        assert out.strip() != recorded


def test_borrowed_json_strings_with_escapes(fx: Functions) -> None:
    """`&str` inside JSON-typed parameters: strings with quotes, backslashes, control
    characters and non-ASCII text (escaped on the wire) arrive exactly, also as map keys,
    struct fields and inside a result that borrows from the argument."""
    src = """use std::collections::{BTreeMap, HashSet};

fn join(parts: Vec<&str>, sep: &str) -> String { parts.join(sep) }

fn longest<'a>(words: &[&'a str]) -> HashSet<&'a str> {
    let max = words.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    words.iter().copied().filter(|w| w.chars().count() == max).collect()
}

fn keys(m: BTreeMap<&str, i32>) -> Vec<String> { m.keys().map(|k| format!("<{k}>")).collect() }

struct Person<'a> { name: &'a str, tags: Vec<&'a str> }

fn describe(p: Person) -> String { format!("{}:{}", p.name, p.tags.join("+")) }
"""
    tricky = ['say "hi"', "back\\slash", "tab\tand\nnewline", "é ✓ 😀", "", "plain", "\x00\x1f"]
    fx.deploy("rust", src, name="join")
    assert fx.invoke("join", tricky, "|") == "|".join(tricky)
    fx.deploy("rust", src, name="longest")
    assert sorted(fx.invoke("longest", ["a\"b", "é\\x", "xyz", "z"])) == ["a\"b", "xyz", "é\\x"]
    fx.deploy("rust", src, name="keys")
    assert fx.invoke("keys", {"q\"uote": 1, "ünï": 2, "plain": 3}) == ["<plain>", "<q\"uote>", "<ünï>"]
    fx.deploy("rust", src, name="describe")
    assert fx.invoke("describe", {"name": "Zoë \"Z\"", "tags": ["a\\b", "c\nd"]}) == \
        'Zoë "Z":a\\b+c\nd'
    # many calls: the copies made for escaped strings are freed after each call
    for i in range(200):
        s = f"{i}\"{'x' * 1000}"
        assert fx.invoke("join", [s, s], "") == s + s
    # a wrong shape is still a BadArguments naming the parameter
    with pytest.raises(BadArguments, match="argument 'parts' does not fit its type"):
        fx.invoke("join", [1, 2], "")


def test_install_script_is_idempotent() -> None:
    """A second run of scripts/install-rust.sh checks its stamp and does nothing."""
    script = rust.INSTALL_SCRIPT
    assert script.is_file()
    stamp = rust.sysroot().parent / ".fnb-installed"
    if not stamp.exists():
        pytest.skip(f"rustc not installed by {script} (no {stamp})")
    before = stamp.stat().st_mtime_ns
    started = time.monotonic()
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin",
                               "FUNCTIONS_NB_RUST_HOME": str(rust.sysroot().parent)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert time.monotonic() - started < 60  # seconds, not the minutes of a first install
    assert stamp.stat().st_mtime_ns == before


def test_json_numbers_cross_exactly_or_are_refused(fx: Functions) -> None:
    """serde_json reads floats to the nearest double (its fast path could be one ulp off) and
    would read an integer beyond 64 bits as a float: such an argument is refused instead."""
    src = """use std::collections::HashMap;

fn same(x: serde_json::Value) -> serde_json::Value { x }

fn scaled(m: HashMap<String, f64>) -> HashMap<String, f64> { m }
"""
    fx.deploy("rust", src, name="same")
    floats = [1.692562348817397e+44, 6.073225862278691e+71, 5e-324, 1.7976931348623157e308, -0.0]
    got = fx.invoke("same", floats)
    assert got == floats and [repr(g) for g in got] == [repr(f) for f in floats]
    edges = [2**64 - 1, -(2**63), {"k": [2**63, "2**64 as text: 18446744073709551616"]}]
    assert fx.invoke("same", edges) == edges
    for wide in ([2**64], {"a": [1, -(2**63) - 1]}, 2**100):
        with pytest.raises(BadArguments, match=r"argument 'x' holds the integer -?\d+, beyond 64 bits"):
            fx.invoke("same", wide)
    fx.deploy("rust", src, name="scaled")
    assert fx.invoke("scaled", {"a": 6.073225862278691e+71}) == {"a": 6.073225862278691e+71}


def test_entry_already_exported(fx: Functions) -> None:
    """A file written as a wasm export (`#[unsafe(no_mangle)] pub extern "C" fn`) deploys as
    written: the glue's export replaces the attribute's (both defined the symbol before); an
    error further down still names its own cell line."""
    src = '#[unsafe(no_mangle)]\npub extern "C" fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n'
    fx.deploy("rust", src, name="add")
    assert fx.invoke("add", 2, 3) == 5
    src = '#[no_mangle]\n#[inline(never)]\npub extern "C" fn mul(a: i64, b: i64) -> i64 { a * b }\n'
    fx.deploy("rust", src, name="mul", flags={"edition": "2021"})
    assert fx.invoke("mul", -4, 5) == -20
    src = '#[unsafe(export_name = "sub")]\nfn sub(a: i32, b: i32) -> i32 {\n    a - "b"\n}\n'
    with pytest.raises(CompileError) as err:
        fx.deploy("rust", src, name="sub")
    assert err.value.line == 3 and "cell:3:" in str(err.value)


def test_other_flags_are_checked(fx: Functions) -> None:
    """A misspelt flag is refused, not ignored; opt_level and overflow_checks still work."""
    with pytest.raises(BadArguments, match=r"rust does not accept the deploy flag 'editon'; it "
                                           r"accepts: edition .*opt_level .*overflow_checks"):
        fx.deploy("rust", GEN_IDENT, name="next_gen", flags={"editon": "2021"})
    with pytest.raises(BadArguments, match=r"rust has one toolchain|does not accept the deploy "
                                           r"flag 'toolchain'"):
        fx.deploy("rust", "fn one() -> i32 { 1 }", name="one", flags={"toolchain": "rust-1.63"})
    src = "fn wrap(a: u8) -> u8 {\n    a + 200\n}\n"
    fx.deploy("rust", src, name="wrap", flags={"overflow_checks": False, "opt_level": "s"})
    assert fx.invoke("wrap", 100) == 44


def test_nonfinite_floats_in_json_results(fx: Functions) -> None:
    """NaN and the infinities inside a JSON result come back as themselves (serde_json alone
    writes them as null), in structs, enums, options, tuples, maps and lists, f32 too."""
    src = """use std::collections::BTreeMap;

struct Stats { mean: f64, spread: Option<f32>, hist: Vec<f64> }
enum Shape { Circle(f64), Rect { w: f64, h: f32 } }

fn edges() -> (Stats, Vec<Shape>, BTreeMap<String, f64>) {
    let s = Stats { mean: f64::NAN, spread: Some(f32::NEG_INFINITY), hist: vec![1.5, f64::INFINITY, -0.0] };
    let mut m = BTreeMap::new();
    m.insert("nan".to_string(), f64::NAN);
    m.insert("max".to_string(), f64::MAX);
    (s, vec![Shape::Circle(f64::INFINITY), Shape::Rect { w: -f64::INFINITY, h: f32::NAN }], m)
}
"""
    fx.deploy("rust", src, name="edges")
    stats, shapes, m = fx.invoke("edges")
    assert math.isnan(stats["mean"]) and stats["spread"] == -math.inf
    assert stats["hist"][:2] == [1.5, math.inf] and math.copysign(1, stats["hist"][2]) == -1
    assert shapes[0] == {"Circle": math.inf} and shapes[1]["Rect"]["w"] == -math.inf
    assert math.isnan(shapes[1]["Rect"]["h"])
    assert math.isnan(m["nan"]) and m["max"] == 1.7976931348623157e308
    # an f32 inside JSON is the same float as an f32 result (its exact value, not "0.1")
    fx.deploy("rust", "fn tenth() -> f32 { 0.1 }", name="tenth")
    fx.deploy("rust", "fn tenths() -> Vec<Option<f32>> { vec![Some(0.1), None] }", name="tenths")
    assert fx.invoke("tenths") == [fx.invoke("tenth"), None] == [float(np.float32(0.1)), None]


def test_text_in_json_results_is_left_alone(fx: Functions) -> None:
    """Words such as inf and nan inside strings of a JSON result are text, not numbers."""
    fx.deploy("rust", 'fn words() -> Vec<String> {\n    ["x inf y", "nan", "-inf", "a\\" inf"]'
                      '.iter().map(|s| s.to_string()).collect()\n}\n', name="words")
    assert fx.invoke("words") == ["x inf y", "nan", "-inf", 'a" inf']


def test_prepare_builds_serde_once_for_make_setup() -> None:
    """``make setup`` builds serde for the installed rustc (what a first JSON-typed cell would
    otherwise wait for); a second call only finds it."""
    from functions_nb.languages import get_language

    rust = get_language("rust")
    folder = rust.prepare()
    externs = json.loads((folder / "externs.json").read_text())
    assert set(externs) == {"serde", "serde_json"} and all(Path(p).exists() for p in externs.values())
    assert rust.prepare() == folder
