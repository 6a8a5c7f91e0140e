"""Bad input to the SDK and the CLI is refused as a FunctionsError, never a raw Python error
(issue 14, points 6 and 7): limits have ceilings, versions are ASCII digits, JSON arguments
have a depth and size limit, pathological source is a CompileError or BadArguments. Refused
calls and deploys leave nothing behind: no version, no history row claiming success."""

from __future__ import annotations

import subprocess
import sys

import pytest

from functions_nb import Functions
from functions_nb import values as v
from functions_nb.config import Ceilings
from functions_nb.errors import BadArguments, CompileError, FunctionsError

from .conftest import ADD_RS

ECHO_JS = "export function echo(value) { return value }\n"


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.fixture(scope="module")
def fxs(tmp_path_factory):
    """A store with ``add`` (Rust) and ``echo`` (JavaScript, a JSON parameter)."""
    fx = Functions(store=str(tmp_path_factory.mktemp("sdk") / "store"), flush_interval=0.05)
    fx.deploy("rust", ADD_RS, name="add")
    fx.deploy("javascript", ECHO_JS, name="echo")
    yield fx
    fx.close()


def rows(fx: Functions, where: str = "true") -> list[tuple]:
    fx.flush()
    return [tuple(r) for r in fx.sql(f"SELECT function, status, error_kind FROM executions "
                                     f"WHERE {where}").itertuples(index=False)]


# -- versions ------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["add@²", "add@١", "add@１", "add@" + "9" * 5000, "add@0",
                                    "add@-1", "add@1.0", "add@ 1", "add@"])
def test_versions_are_ascii_digits(fxs, target):
    before = rows(fxs)
    for call in (fxs.info, fxs.invoke, fxs.run, fxs.__getitem__, fxs.delete, fxs.breaker):
        with pytest.raises(BadArguments, match="invalid version"):
            call(target)
    assert fxs.versions("add") == [1]
    assert rows(fxs) == before  # nothing ran


@pytest.mark.parametrize("target", [5, None, b"add", ["add"]])
def test_targets_are_text(fxs, target):
    with pytest.raises(BadArguments, match="named by text"):
        fxs.invoke(target, 1, 2)


# -- ceilings on limits --------------------------------------------------------------------

@pytest.mark.parametrize(("limits", "message"), [
    ({"memory_mb": 1e12}, r"memory_mb=1000000000000.0 is above the ceiling of 4096 MB"),
    ({"memory_mb": 10**400}, r"memory_mb=1000.* is above the ceiling of 4096 MB"),
    ({"memory_mb": 4097}, r"memory_mb=4097 is above the ceiling of 4096 MB"),
    ({"memory_mb": 2.5}, r"memory_mb must be a whole number"),
    ({"memory_mb": True}, r"memory_mb must be a whole number"),
    ({"timeout": 1e308}, r"timeout=1e\+308 is above the ceiling of 3600 s"),
    ({"timeout": float("inf")}, r"timeout=inf is above the ceiling of 3600 s"),
    ({"timeout": float("nan")}, r"timeout must be a positive number"),
    ({"timeout": "30"}, r"timeout must be a positive number"),
])
def test_deploy_limits_have_ceilings(fxs, limits, message):
    with pytest.raises(BadArguments, match=message):
        fxs.deploy("rust", ADD_RS, name="big", **limits)
    assert fxs.versions("big") == []


def test_ceilings_are_configurable(fxs, monkeypatch):
    small = Functions(store=fxs.store.url, history=False,
                      ceilings=Ceilings(memory_mb=32, timeout=10.0))
    with pytest.raises(BadArguments, match="above the ceiling of 32 MB"):
        small.deploy("rust", ADD_RS, name="add", memory_mb=64, timeout=5)
    with pytest.raises(BadArguments, match="above the ceiling of 10 s"):
        small.invoke("add", 1, 2, timeout=11)
    assert small.invoke("add", 1, 2, timeout=10) == 3
    monkeypatch.setenv("FUNCTIONS_NB_MAX_MEMORY_MB", "8192")
    monkeypatch.setenv("FUNCTIONS_NB_MAX_TIMEOUT", "7200")
    assert Ceilings.from_env() == Ceilings(memory_mb=8192, timeout=7200.0)
    assert Functions(store=fxs.store.url, history=False).ceilings.memory_mb == 8192


def test_per_call_limits_have_ceilings(fxs):
    before = rows(fxs)
    with pytest.raises(BadArguments, match="timeout=1e\\+308 is above the ceiling of 3600 s"):
        fxs.invoke("add", 1, 2, timeout=1e308)
    with pytest.raises(BadArguments, match="ceiling of 3600 s"):
        fxs.run("add", 1, 2, timeout=7200)
    with pytest.raises(BadArguments, match="ceiling of 3600 s"):
        fxs["add"](1, 2, timeout=1e9)
    with pytest.raises(BadArguments, match="ceiling of 3600 s"):
        fxs.map("add", [(1, 2)], timeout=1e9)
    with pytest.raises(BadArguments, match=r"tier_timeouts\['code'\]=1000000000.0 is above"):
        fxs.invoke("add", 1, 2, tier_timeouts={"code": 1e9})
    with pytest.raises(BadArguments, match=r"tier_timeouts\['human'\]=1000000000.0 is above the "
                                           r"ceiling of 86400 s"):
        fxs.cascade("add", 1, 2, tier_timeouts={"human": 1e9})
    with pytest.raises(BadArguments, match="total_timeout=inf is above the ceiling of 86400 s"):
        fxs.cascade("add", 1, 2, total_timeout=float("inf"))
    with pytest.raises(BadArguments, match="tier_timeouts must be a dict"):
        fxs.cascade("add", 1, 2, tier_timeouts=[5])
    with pytest.raises(BadArguments, match="invalid cascade options"):
        fxs.cascade("add", 1, 2, skip_tiers=5)
    with pytest.raises(BadArguments, match=r"options\['cascade'\].*ceiling of 86400 s"):
        fxs.deploy("rust", ADD_RS, name="big",
                   options={"cascade": {"tier_timeouts": {"agentic": 1e12}}})
    assert fxs.versions("big") == []
    assert rows(fxs) == before  # nothing ran, nothing recorded
    assert fxs.invoke("add", 1, 2, timeout=3600) == 3  # at the ceiling is fine


# -- JSON arguments ------------------------------------------------------------------------

def test_json_arguments_have_a_depth_limit(fxs):
    assert fxs.invoke("echo", nested(v.MAX_JSON_DEPTH)) == nested(v.MAX_JSON_DEPTH)
    for depth in (v.MAX_JSON_DEPTH + 1, 5000, 200_000):
        with pytest.raises(BadArguments, match=r"echo\(value: any\).*'value'.*nested more than "
                                               r"100 levels deep"):
            fxs.invoke("echo", nested(depth))
    deep_dict: dict = {}
    for _ in range(300):
        deep_dict = {"[": deep_dict, "s": "]]]]"}
    with pytest.raises(BadArguments, match="nested more than 100 levels deep"):
        fxs.invoke("echo", deep_dict)
    flat = {"s": "[" * 500, "rows": [[i, i] for i in range(500)]}  # many brackets, not deep
    assert fxs.invoke("echo", flat) == flat
    failed = rows(fxs, "function = 'echo' AND status != 'ok'")
    assert failed and all(r[1:] == ("error", "bad_arguments") for r in failed)


def test_json_arguments_have_a_size_limit(fxs):
    with pytest.raises(BadArguments, match=f"at most {v.MAX_JSON_CHARS} are accepted"):
        fxs.invoke("echo", ["x" * v.MAX_JSON_CHARS])


def test_json_answers_have_the_same_limits():
    with pytest.raises(v.Refused, match="nested more than 100 levels deep"):
        v.answer("json", nested(100_000))
    assert v.answer("json", {"a": [1, 2]}) == {"a": [1, 2]}
    assert v.json_depth('{"a":[{"b":"[[["}],"c":[]}') == 3


# -- deploy input --------------------------------------------------------------------------

PATHOLOGICAL_PY = {
    "RecursionError in the compiler": "def f(x: int) -> int:\n    return " + "x+" * 200_000
                                      + "x\n",
    "MemoryError in the parser": "def f(x: int) -> int:\n    return " + "-" * 200_000 + "x\n",
}


@pytest.mark.parametrize("case", list(PATHOLOGICAL_PY))
def test_pathological_python_source_is_a_compile_error(fxs, case):
    with pytest.raises(CompileError, match="nested too deeply or too long for Python's parser"):
        fxs.deploy("python", PATHOLOGICAL_PY[case], name="f")
    assert fxs.versions("f") == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"source": "# " + "x" * (1 << 20)}, r"source is \d+ bytes or more; the ceiling is 1048576"),
    ({"source": "é" * 600_000}, r"source is 1200000 bytes or more"),
    ({"source": "fn f() {}\n\ud800"}, "source is not valid text"),
    ({"source": b"fn f() {}"}, "source must be text"),
    ({"language": 5}, "language must be text"),
    ({"language": "cobol"}, "unknown language"),
    ({"name": "f" * 10_000}, "invalid function name"),
    ({"name": "add\n"}, "invalid function name"),
    ({"line_offset": 10**9}, "line_offset must be a whole number"),
    ({"line_offset": -1}, "line_offset must be a whole number"),
    ({"flags": [1]}, "flags must be a dict"),
    ({"options": {"description": object()}}, "options: .*not JSON-serializable"),
    ({"options": {"deep": nested(5000)}}, "options: .*nested more than 100 levels"),
    ({"options": {"cascade": "fast"}}, r"options\['cascade'\] must be a dict"),
])
def test_bad_deploy_input_is_refused(fxs, kwargs, message):
    call = {"language": "rust", "source": ADD_RS.replace("add", "f"), "name": "f", **kwargs}
    with pytest.raises(BadArguments, match=message):
        fxs.deploy(call.pop("language"), call.pop("source"), call.pop("name"), **call)
    assert fxs.versions("f") == []


# -- everything else a caller sends --------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda fx: fx.rollback("add", True),
    lambda fx: fx.rollback("add", "1"),
    lambda fx: fx.logs(limit="x"),
    lambda fx: fx.logs("add@²"),
    lambda fx: fx.sql("SELEC 1"),
    lambda fx: fx.sql("SELECT nope FROM executions"),
    lambda fx: fx.sql(5),
    lambda fx: fx.map("add", 5),
    lambda fx: fx.versions(5),
    lambda fx: fx.invoke("add", 1),
    lambda fx: fx.invoke("add", 1, 2**40),
    lambda fx: fx.invoke("echo", {1, object()}),
    lambda fx: fx.invoke("echo", float("nan")),
])
def test_sdk_raises_only_functions_errors(fxs, call):
    with pytest.raises(FunctionsError):
        call(fxs)
    assert fxs.info("add").version == 1


# -- the CLI -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["invoke", "echo", "[" * 50_000 + "]" * 50_000],
    ["invoke", "echo", "[" + "[" * 150 + "]" * 150 + "]"],
    ["invoke", "add@²", "[1, 2]"],
    ["invoke", "add@١", "[1, 2]"],
    ["invoke", "add", "[1, 2]", "--timeout", "1e308"],
    ["rollback", "add@١"],
    ["rm", "add@" + "9" * 5000],
    ["sql", "SELEC 1"],
    ["deploy", "/nonexistent/add.rs"],
    ["deploy", "BIG", "--memory", "99999999"],
    ["deploy", "BIG", "--timeout", "1e308"],
])
def test_cli_prints_one_line_errors(fxs, argv, tmp_path):
    big = tmp_path / "big.rs"
    big.write_text(ADD_RS.replace("add", "big"))
    argv = [str(big) if a == "BIG" else a for a in argv]
    proc = subprocess.run([sys.executable, "-m", "functions_nb.cli", "--store", fxs.store.url,
                           *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr[-2000:]
    if argv[0] != "sql":  # DuckDB's message points at the query in lines of its own
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert fxs.versions("big") == [] and fxs.versions("add") == [1]
