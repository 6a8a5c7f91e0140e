"""numpy arrays into and out of WASM kernels (Rust, Zig; Go and AssemblyScript in their tests)."""

from __future__ import annotations

import numpy as np
import pytest

from functions_nb import BadArguments, Functions, LimitExceeded

RUST = """fn total(xs: &[f64]) -> f64 {
    xs.iter().sum()
}

fn scale(xs: Vec<f32>, k: f32) -> Vec<f32> {
    xs.iter().map(|x| x * k).collect()
}

fn cumsum(xs: &[i64]) -> Vec<i64> {
    let mut acc = 0;
    xs.iter().map(|x| { acc += x; acc }).collect()
}

fn evens(xs: &[i32]) -> Vec<i32> {
    xs.iter().copied().filter(|x| x % 2 == 0).collect()
}
"""

ZIG = """const std = @import("std");

fn total(xs: []const f64) f64 {
    var t: f64 = 0;
    for (xs) |x| t += x;
    return t;
}

fn scale(alloc: std.mem.Allocator, xs: []const f32, k: f32) ![]f32 {
    const out = try alloc.alloc(f32, xs.len);
    for (xs, 0..) |x, i| out[i] = x * k;
    return out;
}

fn cumsum(alloc: std.mem.Allocator, xs: []const i64) ![]i64 {
    const out = try alloc.alloc(i64, xs.len);
    var acc: i64 = 0;
    for (xs, 0..) |x, i| {
        acc += x;
        out[i] = acc;
    }
    return out;
}
"""


@pytest.fixture(scope="module")
def afx(tmp_path_factory):
    fx = Functions(store=str(tmp_path_factory.mktemp("arrays") / "store"))
    yield fx
    fx.close()


@pytest.fixture(scope="module")
def deployed(afx):
    for name in ("total", "scale", "cumsum", "evens"):
        afx.deploy("rust", RUST.replace(f"fn {name}(", f"fn rs_{name}("), name=f"rs_{name}",
                   memory_mb=32)
    for name in ("total", "scale", "cumsum"):
        afx.deploy("zig", ZIG.replace(f"fn {name}(", f"fn zig_{name}("), name=f"zig_{name}",
                   memory_mb=32)
    return afx


@pytest.mark.parametrize("lang", ["rs", "zig"])
def test_arrays_in_and_out(deployed, lang):
    fx = deployed
    xs = np.random.default_rng(1).random(100_000)
    assert fx.invoke(f"{lang}_total", xs) == pytest.approx(xs.sum(), rel=1e-12)
    out = fx.invoke(f"{lang}_scale", np.arange(5, dtype=np.float32), 2.0)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.tolist() == [0, 2, 4, 6, 8]
    out = fx.invoke(f"{lang}_cumsum", np.array([1, 2, 3, 2**40], dtype=np.int64))
    assert out.dtype == np.int64 and out.tolist() == [1, 3, 6, 6 + 2**40]
    # empty arrays, lists, and safe dtype conversions (int32 -> float64, int32 -> int64)
    assert fx.invoke(f"{lang}_total", np.array([], dtype=np.float64)) == 0
    assert fx.invoke(f"{lang}_total", [1, 2.5]) == 3.5
    assert fx.invoke(f"{lang}_total", np.arange(4, dtype=np.int32)) == 6
    assert fx.invoke(f"{lang}_cumsum", np.arange(3, dtype=np.int32)).tolist() == [0, 1, 3]
    assert fx.invoke(f"{lang}_cumsum", []).tolist() == []
    # a strided view is made contiguous before the copy
    assert fx.invoke(f"{lang}_total", np.arange(10.0)[::2]) == 20


def test_rust_filter_returns_shorter_array(deployed):
    assert deployed.invoke("rs_evens", np.arange(10, dtype=np.int32)).tolist() == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("lang", ["rs", "zig"])
def test_bad_arrays_name_the_signature(deployed, lang):
    fx = deployed
    with pytest.raises(BadArguments, match=r"scale\(xs: .*argument 'xs'.*float64 array cannot be converted to float32"):
        fx.invoke(f"{lang}_scale", np.arange(3.0), 1.0)
    with pytest.raises(BadArguments, match="expected a 1-D array, got 2 dimensions"):
        fx.invoke(f"{lang}_total", np.ones((2, 2)))
    with pytest.raises(BadArguments, match="numbers"):
        fx.invoke(f"{lang}_total", ["a"])
    with pytest.raises(BadArguments, match="int64 array cannot be converted"):
        fx.invoke(f"{lang}_scale", np.arange(3), 1.0)
    assert fx.invoke(f"{lang}_total", np.ones(3)) == 3  # still works after the refusals


@pytest.mark.parametrize("lang", ["rs", "zig"])
def test_array_larger_than_memory_limit(deployed, lang):
    fx = deployed
    big = np.ones(6 * 1024 * 1024)  # 48 MB > the 32 MB limit
    with pytest.raises(LimitExceeded, match="32 MB"):
        fx.invoke(f"{lang}_total", big)
    assert fx.invoke(f"{lang}_total", np.ones(1000)) == 1000


def test_repeated_large_calls_do_not_grow_memory(deployed):
    fx = deployed
    xs = np.ones(1_000_000)  # 8 MB, a quarter of the limit
    sizes = set()
    for _ in range(20):
        ex = fx.run("rs_total", xs)
        assert ex.value == 1_000_000
        sizes.add(ex.memory_bytes)
    assert len(sizes) == 1, sizes  # arguments are freed after every call


def test_history_records_large_arrays_by_description(deployed):
    fx = deployed
    fx.invoke("rs_total", np.arange(100_000, dtype=np.float64))
    row = fx.sql("SELECT input FROM executions WHERE function = 'rs_total' "
                 "ORDER BY started_at DESC LIMIT 1").iloc[0]
    assert '"array": "float64"' in row.input and '"shape": [100000]' in row.input
    assert len(row.input) < 1000
