"""Rust cells: calling convention, errors with cell lines, signatures."""

from __future__ import annotations

import pytest

from functions_nb import BadArguments, CompileError, InvocationError

from .conftest import ADD_RS


def test_scalars_strings_json(fx):
    fx.deploy("rust", ADD_RS, name="add")
    assert fx.invoke("add", 2, 3) == 5
    assert fx["add"](-7, 3) == -4
    fx.deploy("rust", "fn mix(a: u8, b: u64, c: f32, d: f64, e: bool) -> f64 {\n"
                      "    if e { a as f64 + b as f64 + c as f64 + d } else { -1.0 }\n}", name="mix")
    assert fx.invoke("mix", 255, 2**63, 0.5, 0.25, True) == 255 + 2**63 + 0.75
    fx.deploy("rust", "fn big() -> u64 { u64::MAX }", name="big")
    assert fx.invoke("big") == 2**64 - 1
    fx.deploy("rust", "fn neg(b: bool) -> bool { !b }", name="neg")
    assert fx.invoke("neg", False) is True
    fx.deploy("rust", 'fn greet(name: &str, n: usize) -> String {\n'
                      '    format!("{} {}", "hi".repeat(n), name)\n}', name="greet")
    assert fx.invoke("greet", "wörld ✓", 2) == "hihi wörld ✓"
    fx.deploy("rust", "fn rev(data: Vec<u8>) -> Vec<u8> { data.into_iter().rev().collect() }",
              name="rev")
    assert fx.invoke("rev", b"\x00\x01\xff") == b"\xff\x01\x00"
    src = """use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Serialize, Deserialize)]
struct Point { x: f64, y: f64 }

fn centroid(points: &[Point], weights: HashMap<String, f64>) -> Option<Point> {
    if points.is_empty() { return None; }
    let w = weights.get("scale").copied().unwrap_or(1.0);
    let n = points.len() as f64;
    Some(Point { x: w * points.iter().map(|p| p.x).sum::<f64>() / n,
                 y: w * points.iter().map(|p| p.y).sum::<f64>() / n })
}
"""
    fx.deploy("rust", src, name="centroid")
    pts = [{"x": 0, "y": 0}, {"x": 2, "y": 4}]
    assert fx.invoke("centroid", pts, {"scale": 2.0}) == {"x": 2.0, "y": 4.0}
    assert fx.invoke("centroid", [], {}) is None


def test_unit_and_result(fx):
    src = """fn check(x: i32) -> Result<i32, String> {
    if x < 0 { return Err(format!("negative: {}", x)); }
    Ok(x * 2)
}
"""
    fx.deploy("rust", src, name="check")
    assert fx.invoke("check", 4) == 8
    with pytest.raises(InvocationError, match="negative: -1"):
        fx.invoke("check", -1)
    assert fx.invoke("check", 5) == 10  # the instance survives a returned error
    fx.deploy("rust", 'fn hello() { println!("hello"); }', name="hello")
    ex = fx.run("hello")
    assert ex.value is None and [c[:2] for c in ex.console] == [("log", "hello")]


def test_console_levels_and_partial_lines(fx):
    src = """fn talk(n: i32) -> i32 {
    print!("a");
    print!("b\\n");
    eprintln!("oops {}", n);
    let y = dbg!(n + 1);
    println!("done");
    y
}
"""
    fx.deploy("rust", src, name="talk")
    ex = fx.run("talk", 1)
    assert ex.value == 2
    levels = [(lvl, msg) for lvl, msg, _ in ex.console]
    assert levels[0] == ("log", "ab")
    assert levels[1] == ("error", "oops 1")
    assert levels[2][0] == "debug" and "n + 1 = 2" in levels[2][1] and "cell" in levels[2][1]
    assert levels[3] == ("log", "done")


def test_trap_is_an_invocation_error(fx):
    fx.deploy("rust", "fn div(a: i32, b: i32) -> i32 {\n    a / b\n}", name="div")
    with pytest.raises(InvocationError, match="divide by zero|panicked"):
        fx.invoke("div", 1, 0)
    assert fx.invoke("div", 9, 3) == 3


def test_bad_arguments_name_the_signature(fx):
    fx.deploy("rust", ADD_RS, name="add")
    with pytest.raises(BadArguments, match=r"add\(a: i32, b: i32\) -> i32 takes 2 arguments"):
        fx.invoke("add", 1)
    with pytest.raises(BadArguments, match="argument 'b' expects i32, got str"):
        fx.invoke("add", 1, "2")
    with pytest.raises(BadArguments, match="out of range for i32"):
        fx.invoke("add", 1, 2**40)
    fx.deploy("rust", "fn total(xs: Vec<f64>) -> f64 { xs.iter().sum() }", name="total")
    with pytest.raises(BadArguments, match=r"argument 'xs' expects Vec<f64>.*numbers"):
        fx.invoke("total", ["a"])
    assert fx.invoke("total", [1, 2.5]) == 3.5
    fx.deploy("rust", "fn count(xs: Vec<String>) -> usize { xs.len() }", name="count")
    with pytest.raises(BadArguments, match="does not fit its type"):
        fx.invoke("count", [1])
    assert fx.invoke("count", ["a", "b"]) == 2


def test_compile_error_has_cell_line(fx):
    src = "fn add(a: i32, b: i32) -> i32 {\n    let c: i32 = \"x\";\n    a + b\n}\n"
    with pytest.raises(CompileError) as err:
        fx.deploy("rust", src, name="add")
    assert err.value.line == 2
    assert "cell:2:" in str(err.value) and "mismatched types" in str(err.value)
    with pytest.raises(CompileError) as err:
        fx.deploy("rust", src, name="add", line_offset=1)
    assert err.value.line == 3 and "cell:3:" in str(err.value)
    assert fx.list() == []  # nothing half-deployed


def test_missing_entry_point(fx):
    with pytest.raises(CompileError, match="no function named `sub`"):
        fx.deploy("rust", ADD_RS, name="sub")


def test_helpers_and_warnings(fx):
    src = "fn helper(x: i32) -> i32 { x * 10 }\n\nfn main_fn(x: i32) -> i32 {\n    let unused = 1;\n    helper(x)\n}\n"
    info = fx.deploy("rust", src, name="main_fn")
    assert fx.invoke("main_fn", 4) == 40
    assert "unused" in info.warnings and "cell:4:" in info.warnings


def test_fallible_float_result(fx):
    fx.deploy("rust", 'fn inverse(x: i64) -> Result<f64, String> {\n'
                      '    if x == 0 { Err("no inverse of 0".into()) } else { Ok(1.0 / x as f64) }\n}\n',
              name="inverse")
    assert fx.invoke("inverse", 4) == 0.25
    with pytest.raises(InvocationError, match="no inverse of 0"):
        fx.invoke("inverse", 0)
