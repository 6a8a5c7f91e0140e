"""The guest program (functions_nb/hosts/pyodide_guest.py) on its own, without node or
Pyodide: run by CPython in a child process (it replaces the interpreter's stdout, sleep and
process functions, as it does in each function's Pyodide interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

from functions_nb.hosts import pyodide_guest as guest
from functions_nb.runtimes import pyodide

DRIVER = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
import pyodide_guest as g
requests = json.loads(sys.stdin.read())  # before init: it replaces stdin, stdout and stderr
handle = g.init(json.dumps({"console_bytes": 200, "blocked_modules": ["ctypes"]}))
os.write(1, json.dumps([handle(op, body) for op, body in requests]).encode())
'''

CELL = '''import logging, os, sys, time

def f(a: int, raw: bytes) -> str:
    print("hello", a)
    logging.warning("careful")
    if a < 0:
        raise ValueError(f"negative {a}")
    if a == 0:
        return 0
    if a == 1:
        import ctypes
    if a == 2:
        os.system("id")
    if a == 3:
        print("x" * 500)
    if a == 4:
        time.sleep(0.01)
    return raw.decode() * a
'''


def run_guest(requests: list[tuple[int, str]]) -> list[tuple[int, dict]]:
    proc = subprocess.run([sys.executable, "-I", "-c", DRIVER, str(pyodide.HOSTS)],
                          input=json.dumps(requests), capture_output=True, text=True, timeout=60,
                          check=True)
    return [(int(r[:2]), json.loads(r[2:])) for r in json.loads(proc.stdout)]


def test_guest_loads_calls_and_reports():
    load = json.dumps(["f", CELL, [1], "str"])
    calls = [[a, "eHk="] for a in (5, -1, 0, 1, 2, 3, 4)]
    replies = run_guest([(guest.LOAD, load), *((guest.CALL, json.dumps(c)) for c in calls),
                         (guest.CALL, "not json")])
    (status, body), *rest = replies
    assert status == guest.OK and body == {"v": None, "c": [], "d": 0}
    ok, neg, zero, blocked, system, chatty, slept, bad = rest
    assert ok[0] == guest.OK and ok[1]["v"] == "xy" * 5
    assert ok[1]["c"] == [[1, "hello 5\n"], [3, "careful\n"]]
    assert neg[0] == guest.ERROR and neg[1]["t"] == "ValueError: negative -1" and neg[1]["l"] == 7
    assert any("Traceback" in text for _, text in neg[1]["c"])
    assert zero[0] == guest.BAD_RESULT
    assert zero[1]["t"] == "returned int 0, but its return annotation is str"
    assert blocked[0] == guest.ERROR and "module 'ctypes' is not available" in blocked[1]["t"]
    assert system[0] == guest.ERROR and "processes are not available" in system[1]["t"]
    assert chatty[0] == guest.OK and chatty[1]["d"] >= 1  # over the 200-byte console cap
    assert slept[0] == guest.OK and slept[1]["v"] == "xy" * 4
    assert bad[0] == guest.HOST_ERROR and "JSONDecodeError" in bad[1]["t"]


def test_encode_checks_the_return_annotation():
    assert guest.encode(3, "i64") == "3" and guest.encode(2, "f64") == "2.0"
    assert guest.encode(b"\x00", "bytes") == '"AA=="' and guest.encode(None, "unit") == "null"
    for value, kind in ((True, "i64"), ("1", "f64"), (1, "bool"), (b"x", "str")):
        try:
            guest.encode(value, kind)
        except TypeError as exc:
            assert "but its return annotation is" in str(exc)
        else:
            raise AssertionError(f"{value!r} accepted as {kind}")
