from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
from typing import Any

import pytest

from functions_nb import BreakerConfig, Functions

# The test shells' and kernels' IPython profile (its history database) is a throwaway folder,
# never the user's: concurrent test processes then never share one SQLite file.
os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="fnb-test-ipython-")

ADD_RS = """fn add(a: i32, b: i32) -> i32 {
    a + b
}
"""

# A loop the optimiser cannot remove: it only ends when the executor stops it.
SPIN_RS = """fn spin(n: u64) -> u64 {
    let mut x = n;
    loop {
        x = unsafe { std::ptr::read_volatile(&x) }.wrapping_mul(31);
    }
}
"""

BOMB_RS = """fn bomb(mb: u32) -> u32 {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mb {
        kept.push(vec![1u8; 1 << 20]);
    }
    kept.len() as u32
}
"""

BOOM_RS = """fn boom(x: i32) -> i32 {
    if x > 0 {
        panic!("bad input {}", x);
    }
    x
}
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: the behaviour suite every language passes (tests/conformance)")


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture
def ip(store, monkeypatch):
    """An IPython shell with the extension loaded, its client on this test's store (not
    whichever client another test created last)."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "functions_nb")
    magics = shell.magics_manager.registry["FunctionsMagics"]
    magics._fx = Functions(store=store)
    yield shell
    magics._fx.close()
    magics._fx = None


@pytest.fixture
def fx(store):
    f = Functions(store=store, breaker=BreakerConfig(reset_timeout=0.3))
    yield f
    f.close()


def abort_while_running(fx: Functions, name: str, *args: Any, settle: float = 0.0,
                        wait: float = 5.0) -> tuple[dict[str, Any], Any]:
    """Run ``name`` in a thread and abort it from this one once ``fx.running()`` shows it
    (after ``settle`` more seconds); returns the running row and the finished Execution."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("ex", fx.run(name, *args)))
    thread.start()
    deadline = time.monotonic() + wait
    while not fx.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(settle)
    (running,) = fx.running()
    assert fx.abort(running["id"]) is True
    thread.join(wait)
    return running, box["ex"]


#: Test modules that take minutes (whole notebooks, packaging, fresh environments, a real
#: Jupyter server under schemathesis) or need a browser: ``make quick`` leaves them out,
#: ``make test`` runs everything.
SLOW_MODULES = {"test_binder", "test_wheel", "test_make_lab", "test_api_contract",
                "test_cascade_notebook", "test_languages_notebook", "test_notebook",
                "test_observability_notebook", "test_scaleout_notebook", "test_storage_notebook",
                "test_onnx_notebook", "test_onnx_dask", "test_scientific_notebook",
                "test_history_scale"}
BROWSER_MODULES = {"test_sidebar_e2e"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


#: How late a stop may come on a busy 2-core machine: tests check that a limit stops code
#: near it (not at a 30 s default, not never), not how fast; `make bench` measures speed.
STOP_MARGIN_S = 3.0


#: Skip reasons that mean "this machine lacks a toolchain or a sandbox layer". `make test`
#: installs all of them and sets FUNCTIONS_NB_STRICT_SKIPS=1, so there such a skip is a
#: failure (a broken toolchain must not pass as "skipped"); elsewhere it stays a skip.
MISSING_CAPABILITY = ("toolchain not usable", "not usable here", "not installed",
                      "does not work here", "needs bubblewrap")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("FUNCTIONS_NB_STRICT_SKIPS") == "1":
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if any(text in reason for text in MISSING_CAPABILITY):
            report.outcome = "failed"
            report.longrepr = f"skipped for a missing capability under make test: {reason}"


@contextlib.contextmanager
def watched_port(wait: float = 2.0) -> Any:
    """A TCP listener on 127.0.0.1 for escape tests: yields ``(port, peers)``; ``peers`` lists
    every address that connected while the block ran (and up to ``wait`` s after)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    peers: list[object] = []

    def accept() -> None:
        try:
            conn, addr = listener.accept()
            peers.append(addr)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        yield listener.getsockname()[1], peers
        thread.join(wait)
    finally:
        listener.close()


@pytest.fixture(scope="module")
def moto():
    """A moto S3 server on loopback for the module's tests."""
    from .s3server import MotoServer

    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


#: The REST API's path below the Jupyter server's base URL.
API = ("functions-nb", "api")


@pytest.fixture
def api(jp_fetch):
    """Call the REST API of the test's Jupyter server: ``await api(*path, method=, body=)`` ->
    ``(response, JSON body or None)``; errors are answers, not exceptions."""
    async def call(*path, method="GET", body=None, **kwargs):
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        kwargs.setdefault("raise_error", False)
        resp = await jp_fetch(*API, *path, method=method, body=body, **kwargs)
        return resp, (json.loads(resp.body) if resp.body else None)
    return call
