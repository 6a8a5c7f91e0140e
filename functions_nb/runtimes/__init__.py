"""Runtime kinds: where compiled code runs. Imported lazily by kind.

Each kind's module has a process-wide ``runtime()`` implementing
:class:`~functions_nb.runtimes.base.Runtime` (load, isolation, close).
"""

from __future__ import annotations

import importlib

from .base import Isolation, Runtime

_KINDS = {
    "wasm": "functions_nb.runtimes.wasm",
    "v8": "functions_nb.runtimes.v8",
    "pyodide": "functions_nb.runtimes.pyodide",
    "mono": "functions_nb.runtimes.mono",
    "prompt": "functions_nb.runtimes.prompt",
    "onnx": "functions_nb.runtimes.onnx",
    "wasi-python": "functions_nb.runtimes.wasi_python",
}


def kinds() -> list[str]:
    return list(_KINDS)


def get_runtime(kind: str) -> Runtime:
    """The process-wide runtime for ``kind`` (e.g. ``"wasm"``)."""
    try:
        module = importlib.import_module(_KINDS[kind])
    except KeyError:
        raise ValueError(f"unknown runtime kind {kind!r}; known: {', '.join(_KINDS)}") from None
    return module.runtime()


def isolation(kind: str) -> Isolation:
    """What isolates functions of runtime ``kind`` on this machine (for ``func doctor``)."""
    try:
        return get_runtime(kind).isolation()
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot start isolates nothing
        return Isolation(kind, (), (f"cannot start: {type(exc).__name__}: {exc}",))


__all__ = ["get_runtime", "isolation", "kinds"]
