"""Runtime kinds: where compiled code runs. Imported lazily by kind."""

from __future__ import annotations

import importlib
from typing import Any

_KINDS = {
    "wasm": "functions_nb.runtimes.wasm",
    "v8": "functions_nb.runtimes.v8",
    "pyodide": "functions_nb.runtimes.pyodide",
    "mono": "functions_nb.runtimes.mono",
    "prompt": "functions_nb.runtimes.prompt",
}


def get_runtime(kind: str) -> Any:
    """The process-wide runtime for ``kind`` (e.g. ``"wasm"``)."""
    try:
        module = importlib.import_module(_KINDS[kind])
    except KeyError:
        raise ValueError(f"unknown runtime kind {kind!r}; known: {', '.join(_KINDS)}") from None
    return module.runtime()
