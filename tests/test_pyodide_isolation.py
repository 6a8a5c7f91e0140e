"""Python functions sharing one Pyodide host cannot hurt each other: each has its own
interpreter (state, builtins, files, heap), its own limits, and its own crashes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest

from functions_nb import Functions, InvocationError, LimitExceeded
from functions_nb.languages import get_language
from functions_nb.runtimes import pyodide

pytestmark = pytest.mark.skipif(not get_language("python").toolchain().usable,
                                reason="node or the pyodide npm package is missing")

VICTIM_PY = '''SECRET = "victim-secret-5f1c9e"


def victim(x: str) -> str:
    return "ok:" + "".join(sorted(x)) + ":" + SECRET[:6]
'''

ATTACKER_PY = '''import builtins
import gc
import sys


def victims():
    """Every namespace in this interpreter holding the victim's secret."""
    found = [o for o in gc.get_objects() if isinstance(o, dict) and is_secret(o.get("SECRET"))]
    found += [vars(m) for m in list(sys.modules.values()) if is_secret(getattr(m, "SECRET", 0))]
    return found


def is_secret(value):
    return isinstance(value, str) and value.startswith("victim-secret")


def attacker(how: str) -> str:
    if how == "read":
        return repr([ns["SECRET"] for ns in victims()])
    if how == "code":
        hit = 0
        for ns in victims():
            if callable(ns.get("victim")):
                ns["victim"].__code__ = (lambda x: "666").__code__
                hit += 1
        return f"replaced {hit}"
    if how == "builtins":
        builtins.sorted = lambda *a, **k: list("pwned")
        return "".join(sorted("abc"))
    return "?"
'''


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    fx = Functions(store=str(tmp_path_factory.mktemp("pyiso")))
    fx.deploy("python", VICTIM_PY, name="victim")
    fx.deploy("python", ATTACKER_PY, name="attacker")
    fx.deploy("python", "def add(a: int, b: int) -> int:\n    return a + b\n", name="add")
    assert fx.invoke("victim", "cba") == "ok:abc:victim"
    yield fx
    fx.close()


# -- state: globals, code, builtins ---------------------------------------------------------

def test_a_function_cannot_read_another_functions_globals(fx):
    assert fx.invoke("attacker", "read") == "[]"
    assert fx.invoke("victim", "zyx") == "ok:xyz:victim"


def test_a_function_cannot_replace_another_functions_code(fx):
    assert fx.invoke("attacker", "code") == "replaced 0"
    assert fx.invoke("victim", "ba") == "ok:ab:victim"


def test_a_function_cannot_replace_builtins_for_others(fx):
    assert fx.invoke("attacker", "builtins") == "pwned"  # its own interpreter: its business
    assert fx.invoke("victim", "cab") == "ok:abc:victim"


# -- files ------------------------------------------------------------------------------------

FILES_PY = '''import os


def big_file(mb: int) -> int:
    """One sparse file of ``mb`` MB (truncate), then written at its end."""
    with open("/tmp/big.bin", "wb") as f:
        f.truncate(mb << 20)
        f.seek((mb << 20) - 1)
        f.write(b"x")
    return os.path.getsize("/tmp/big.bin")


def chunks(mb: int) -> int:
    with open("/tmp/chunks.bin", "wb") as f:
        for _ in range(mb):
            f.write(bytes(1 << 20))
    return os.path.getsize("/tmp/chunks.bin")


def left_over(name: str) -> str:
    """What earlier calls left in /tmp and the home folder; then leaves ``name`` there."""
    seen = sorted(os.listdir("/tmp") + os.listdir("."))
    with open(f"/tmp/{name}", "wb") as f:
        f.write(b"y" * 1000)
    with open(name, "w") as f:
        f.write("z")
    return ",".join(seen)


def interpreter_file(x: int) -> str:
    """Grow a file that was there before the call (the interpreter's own)."""
    path = [p for p in os.listdir("/lib") if p.endswith(".zip")][0]
    with open(f"/lib/{path}", "ab") as f:
        f.write(b"x" * x)
    return "written"
'''


@pytest.fixture(scope="module")
def files(fx):
    for name in ("big_file", "chunks", "left_over", "interpreter_file"):
        fx.deploy("python", FILES_PY, name=name, memory_mb=64)
    return fx


def test_a_file_bigger_than_the_memory_limit_is_refused(files):
    with pytest.raises(LimitExceeded, match="big_file: memory limit of 64 MB exceeded by the "
                                            "files it wrote"):
        files.invoke("big_file", 300)
    with pytest.raises(LimitExceeded, match="chunks: memory limit of 64 MB exceeded by the "
                                            "files it wrote"):
        files.invoke("chunks", 300)
    assert files.invoke("big_file", 8) == 8 << 20  # under the limit: fine


def test_files_do_not_outlive_the_call(files):
    assert files.invoke("left_over", "first") == ""
    assert files.invoke("left_over", "second") == ""  # nothing of the first call is left
    for _ in range(6):  # 6 x 40 MB under a 64 MB limit: nothing accumulates
        assert files.invoke("chunks", 40) == 40 << 20


def test_files_of_the_interpreter_cannot_be_written(files):
    ex = files.run("interpreter_file", 10)
    assert isinstance(ex.error, InvocationError) and "Read-only file system" in str(ex.error)


# -- memory kept across calls ---------------------------------------------------------------

HOARD_PY = "kept = []\n\n\ndef hoard(mb: int) -> int:\n" \
           "    kept.extend(bytearray(1 << 20) for _ in range(mb))\n    return len(kept)\n"


def test_memory_kept_across_calls_fails_the_function_that_keeps_it(fx):
    fx.deploy("python", HOARD_PY, name="hoard", memory_mb=64)
    fx.invoke("add", 0, 0)
    with pytest.raises(LimitExceeded) as err:
        for step in range(1, 40):
            assert fx.invoke("hoard", 8) == 8 * step <= 64
            neighbour = fx.run("add", step, 1)  # warm and well throughout
            assert neighbour.value == step + 1 and not neighbour.cold
    message = str(err.value)
    assert message.startswith("hoard: memory limit of 64 MB exceeded")
    held = int(re.search(r"it holds (\d+) MB across calls", message).group(1))
    assert 40 <= held <= 64
    after = fx.run("add", 2, 2)
    assert after.value == 4 and not after.cold


# -- crashes ----------------------------------------------------------------------------------

CRASH_PY = "import sys\n\ndef crash(n: int) -> int:\n    sys.setrecursionlimit(10**6)\n\n" \
           "    def down(k):\n        return down(k + 1) + 1\n    return down(n)\n"


def test_a_crash_fails_only_its_own_call(fx):
    """Neighbours called from other threads while one function keeps crashing its interpreter
    all succeed, warm, on the same host."""
    fx.deploy("python", CRASH_PY, name="crash")
    assert fx.invoke("add", 1, 1) == 2
    starts = pyodide.runtime().starts
    errors: list[str] = []
    results: list[tuple[int, bool]] = []
    stop = threading.Event()

    def neighbour(k: int) -> None:
        i = 0
        while not stop.is_set() or i < 5:
            ex = fx.run("add", k, i)
            results.append((ex.value - k - i, ex.cold))
            if ex.error is not None:
                errors.append(str(ex.error))
            i += 1

    threads = [threading.Thread(target=neighbour, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            with pytest.raises(InvocationError, match="crash: its Python interpreter crashed"):
                fx.invoke("crash", 0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors and results and all(r == (0, False) for r in results)
    assert pyodide.runtime().starts == starts


# -- work left behind -------------------------------------------------------------------------

LINGER_PY = '''import asyncio

count = 0


async def ticking():
    global count
    while True:
        count += 1
        await asyncio.sleep(0)


def linger(op: str) -> int:
    if op == "start":
        asyncio.get_event_loop().create_task(ticking())
    return count
'''


def test_tasks_left_behind_do_not_run_while_the_host_serves_others(fx):
    """The host's event loop turns while it creates another function's interpreter: an
    asyncio task a call left behind must not run then."""
    fx.deploy("python", LINGER_PY, name="linger")
    assert fx.invoke("linger", "start") == 0
    fx.deploy("python", "def later(x: int) -> int:\n    return x\n", name="later")
    assert fx.run("later", 1).cold  # a new interpreter was made meanwhile
    assert fx.invoke("linger", "read") == 0


def test_least_recently_used_interpreter_goes_beyond_the_instance_cap(tmp_path):
    """With FUNCTIONS_NB_PYODIDE_INSTANCES=2 a third function's interpreter replaces the least
    recently used one, which is made again (cold, fresh globals) at its next call."""
    code = f"""
import json
from functions_nb import Functions
fx = Functions(store={str(tmp_path / 'store')!r})
src = "hits = 0\\n\\ndef {{n}}() -> int:\\n    global hits\\n    hits += 1\\n    return hits\\n"
for n in ("a", "b", "c"):
    fx.deploy("python", src.format(n=n), name=n)
seen = [(n, fx.run(n).value) for n in ("a", "a", "b", "c", "b")]
again = fx.run("a")
print(json.dumps([seen, again.value, again.cold]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "FUNCTIONS_NB_PYODIDE_INSTANCES": "2"})
    assert proc.returncode == 0, proc.stderr
    seen, value, cold = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == [["a", 1], ["a", 2], ["b", 1], ["c", 1], ["b", 2]]
    assert value == 1 and cold  # "a" was dropped for "c", made again
