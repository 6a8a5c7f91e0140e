"""The behaviour every language keeps, written once (fsspec's abstract-test style): each case
runs for each language of ``cells/``, through the public SDK only.

Timing: limits are 1-2 s and only the error type is checked, never a duration, so the suite
holds on a busy 2-core machine.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from functions_nb import CompileError, FunctionTimeout, InvocationError, LimitExceeded

from ..exact import same
from .cells import LANGUAGES, cells
from .conftest import SECRET_ENV, SECRET_VALUE, Subject, known_keys
from .spec import ATTEMPTS, KINDS, VICTIM_SECRET, default_values

pytestmark = pytest.mark.conformance

TIME_LIMIT = 1.0  # seconds, for the cases that must be stopped
MEMORY_MB = 64


# -- values cross the boundary exactly ------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_identity(subject: Subject, kind: str) -> None:
    cells = subject.cells
    assert kind in cells.identity, \
        f"{cells.language}: cells must give identity[{kind}] or say why it is not applicable"
    name = subject.identity(kind)
    for value in cells.values.get(kind, default_values()[kind]):
        got = subject.fx.invoke(name, value)
        assert same(got, value), f"{name}({value!r}) returned {got!r}"


# -- errors name the cell line --------------------------------------------------------------

def test_compile_error(subject: Subject) -> None:
    cells = subject.cells
    with pytest.raises(CompileError) as err:
        subject.fx.deploy(subject.language, cells.compile_error, name="broken", line_offset=1)
    line = cells.compile_error_line + 1  # the %%function line above the cell
    assert err.value.line == line, str(err.value)
    assert re.search(rf"cell\W{line}\b", str(err.value)), str(err.value)
    assert "broken" not in [f.name for f in subject.fx.list()]  # nothing half-deployed


def test_runtime_error(subject: Subject) -> None:
    cells = subject.cells
    subject.deploy("boom", cells.boom, line_offset=1)
    with pytest.raises(InvocationError) as err:
        subject.fx.invoke("boom", 3)
    assert type(err.value) is InvocationError and "bad input 3" in str(err.value)
    if cells.boom_line is None:
        assert cells.boom_no_line, "say why the language cannot name the line"
    else:
        assert f"cell line {cells.boom_line + 1}" in str(err.value), str(err.value)
    assert subject.fx.invoke("boom", 0) == 0  # the next call works


# -- limits ---------------------------------------------------------------------------------

def test_timeout(subject: Subject) -> None:
    spin = subject.deploy("spin", subject.cells.spin, timeout=TIME_LIMIT)
    assert subject.fx.invoke(spin, 0) == 0
    with pytest.raises(FunctionTimeout, match=rf"\b{TIME_LIMIT:g} s time limit"):
        subject.fx.invoke(spin, 1)
    assert subject.fx.invoke(spin, 0) == 0  # the same function works again
    subject.neighbour_works()  # and another one
    with pytest.raises(FunctionTimeout):
        subject.fx.invoke(spin, 2)


def test_memory_bomb(subject: Subject) -> None:
    bomb = subject.deploy("bomb", subject.cells.bomb, memory_mb=MEMORY_MB)
    assert subject.fx.invoke(bomb, 4) == 4
    with pytest.raises(LimitExceeded, match=rf"\b{MEMORY_MB} MB"):  # names the limit
        subject.fx.invoke(bomb, 4 * MEMORY_MB)
    assert subject.fx.invoke(bomb, 4) == 4  # the next call works


# -- escape attempts ------------------------------------------------------------------------

@pytest.fixture
def listener():
    """A local TCP listener; yields (address, connections seen)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            seen.append(addr)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}", seen
    time.sleep(0.5)  # a connection made during the call is accepted by now
    stop.set()
    thread.join(2)
    server.close()


def try_escape(subject: Subject, what: str, arg: str) -> str:
    """The escape function's answer, or the error it raised (a refusal)."""
    name = subject.deploy("escape", subject.cells.escape, timeout=10)
    try:
        return str(subject.fx.invoke(name, what, arg))
    except InvocationError as exc:
        return f"raised {type(exc).__name__}: {exc}"


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_escape(subject: Subject, attempt: str, tmp_path: Path, request) -> None:
    ESCAPES[attempt](subject, tmp_path, request)


def _escape_read(subject: Subject, tmp_path: Path, request) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("file-secret-31b2c0\n")
    got = try_escape(subject, "read", str(secret))
    assert "file-secret-31b2c0" not in got, got
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    got = try_escape(subject, "read", "/etc/passwd")
    assert passwd not in got, got


def _escape_write(subject: Subject, tmp_path: Path, request) -> None:
    target = tmp_path / "escaped.txt"
    try_escape(subject, "write", str(target))
    assert not target.exists()


def _escape_connect(subject: Subject, tmp_path: Path, request) -> None:
    address, seen = request.getfixturevalue("listener")
    got = try_escape(subject, "connect", address)
    time.sleep(0.5)
    assert not seen, f"the listener saw {seen}; the function said {got!r}"


def _escape_spawn(subject: Subject, tmp_path: Path, request) -> None:
    marker = tmp_path / "spawned"
    got = try_escape(subject, "spawn", f"echo $((6*7))fnb; touch {marker}")
    assert "42fnb" not in got, got  # the shell never ran
    assert not marker.exists()


def _escape_env(subject: Subject, tmp_path: Path, request) -> None:
    got = try_escape(subject, "env", SECRET_ENV)
    assert SECRET_VALUE not in got, got


ESCAPES = {"read": _escape_read, "write": _escape_write, "connect": _escape_connect,
           "spawn": _escape_spawn, "env": _escape_env}


# -- console --------------------------------------------------------------------------------

def test_console(subject: Subject) -> None:
    talk = subject.deploy("talk", subject.cells.talk)
    ex = subject.fx.run(talk, "héllo ✓")
    assert ex.status == "ok" and ex.value == len("héllo ✓")
    out, err = subject.cells.console_levels
    assert [c[:2] for c in ex.console] == [(out, "out: héllo ✓"), (err, "err: héllo ✓")]
    subject.fx.flush()
    (logged,) = subject.fx.sql(f"SELECT console FROM executions WHERE id = '{ex.id}'").console
    assert "out: héllo ✓" in str(logged) and "err: héllo ✓" in str(logged)


# -- functions cannot hurt each other ---------------------------------------------------------

def test_lingering(subject: Subject) -> None:
    """Work started in a call (timer, thread, goroutine) does not run on after the call:
    stopped when it returns, or counted against the function and stopped at its limit."""
    linger = subject.deploy("linger", subject.cells.linger, timeout=TIME_LIMIT)
    try:
        subject.fx.invoke(linger, "start")
    except InvocationError:
        pass  # refused, or stopped at the limit: either way it must not run on
    time.sleep(TIME_LIMIT + 1.0)  # past the function's limit
    counts = []
    for _ in range(2):
        try:
            counts.append(subject.fx.invoke(linger, "read"))
        except InvocationError as exc:
            pytest.fail(f"a later call of the function failed (the work ran on in it): {exc}")
        time.sleep(0.5)
    assert counts[0] == counts[1], f"the work kept running after its call: counter {counts}"
    subject.neighbour_works()


def test_hoard_memory(subject: Subject) -> None:
    """Memory kept across calls counts against the function that keeps it: it fails itself,
    naming memory, and never holds more than its limit; a neighbour keeps working."""
    hoard = subject.deploy("hoard", subject.cells.hoard, memory_mb=MEMORY_MB)
    step = 8
    with pytest.raises(LimitExceeded, match="(?i)memory"):
        for _ in range(4 * MEMORY_MB // step):
            held = subject.fx.invoke(hoard, step)
            assert held <= MEMORY_MB, f"{hoard} holds {held} MB under a {MEMORY_MB} MB limit"
            subject.neighbour_works()
    subject.neighbour_works()


def test_hoard_fds(subject: Subject) -> None:
    """Open files kept across calls count against the function: it fails itself, naming what
    it holds; neighbours, and functions loaded afterwards, keep working."""
    source = subject.cells.hoard_fds
    hoard = subject.deploy("hoard_fds", source)
    one_file = subject.deploy("one_file", source)
    fresh = subject.deploy("fresh_after_fds", subject.cells.talk.replace("talk", "fresh_after_fds"))
    with pytest.raises(InvocationError, match="(?i)(file|descriptor)"):
        for _ in range(200):
            subject.fx.invoke(hoard, 64)
            subject.neighbour_works()
    assert subject.fx.invoke(one_file, 5) == 5
    subject.neighbour_works()
    assert subject.fx.invoke(fresh, "x") == 1  # loaded after the hoarding


def test_isolation(subject: Subject) -> None:
    """Functions sharing a host cannot read or change each other's state, nor shared
    built-ins."""
    victim = subject.deploy("victim", subject.cells.victim)
    attacker = subject.deploy("attacker", subject.cells.attacker)
    assert subject.fx.invoke(victim, "abc") == "ok:abc"
    try:
        found = str(subject.fx.invoke(attacker, "abc"))
    except InvocationError as exc:
        found = str(exc)
    assert VICTIM_SECRET not in found, f"the attacker read the victim's secret: {found}"
    assert subject.fx.invoke(victim, "abc") == "ok:abc"
    assert subject.fx.invoke(victim, "xyz") == "ok:xyz"


# -- the language modules themselves ------------------------------------------------------------

@pytest.mark.parametrize("language", LANGUAGES)
def test_cells_name_only_known_cases(language: str) -> None:
    """A mark on a misspelt case would silently mark nothing: every key names a case, every
    reason is given, and a known failure names the issue it waits for."""
    lang = cells(language)
    assert lang.language == language
    for key, reason in {**lang.not_applicable, **lang.xfail}.items():
        assert key in known_keys(), f"{language}: unknown case {key!r}"
        assert reason.strip(), f"{language}: {key} needs a reason"
    assert all(r.startswith("issue 13: ") for r in lang.xfail.values())
    assert not set(lang.xfail) & set(lang.not_applicable)
    for kind in KINDS:
        assert (kind in lang.identity) != (f"identity[{kind}]" in lang.not_applicable), \
            f"{language}: identity[{kind}] needs a cell or a reason, not both"
