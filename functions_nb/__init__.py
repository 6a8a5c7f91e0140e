"""functions-nb: multi-language functions in Jupyter, deployed to fsspec storage, run sandboxed.

Public API::

    from functions_nb import Functions, FunctionsError, CompileError
    fx = Functions(store="file:///some/dir")
    fx.deploy("rust", source, name="add")
    fx.invoke("add", 2, 3)

In IPython: ``%load_ext functions_nb`` for ``%%function``, ``%invoke`` and ``%fn_sql``.
"""

from __future__ import annotations

from typing import Any

from .client import FunctionHandle, Functions
from .config import BreakerConfig
from .doctor import doctor
from .errors import (
    Aborted,
    BadArguments,
    CascadeExhaustedError,
    CircuitOpen,
    CompileError,
    FunctionNotFound,
    FunctionsError,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
    QueueFull,
    StorageError,
    ToolchainMissing,
)
from .models import Execution, FunctionInfo, Signature

__version__ = "0.1.0"

__all__ = [
    "Functions", "FunctionHandle", "BreakerConfig", "doctor", "Execution", "FunctionInfo",
    "Signature", "FunctionsError", "CompileError", "ToolchainMissing", "FunctionNotFound",
    "BadArguments", "InvocationError", "FunctionTimeout", "LimitExceeded", "Aborted",
    "CircuitOpen", "QueueFull", "StorageError", "CascadeExhaustedError", "load_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext functions_nb``: registers ``%%function``, ``%invoke`` and ``%fn_sql``."""
    from .magics import FunctionsMagics

    ipython.register_magics(FunctionsMagics(ipython))


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab sidebar (``jupyter labextension develop`` links it)."""
    return [{"src": "labextension", "dest": "functions-nb"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """``jupyter server extension enable functions_nb`` works as well as ``functions_nb.server``."""
    return [{"module": "functions_nb.server"}]
