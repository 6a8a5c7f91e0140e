"""functions-nb: multi-language functions in Jupyter, deployed to fsspec storage, run sandboxed.

Public API::

    from functions_nb import Functions, FunctionsError, CompileError
    fx = Functions(store="file:///some/dir")
    fx.deploy("rust", source, name="add")
    fx.invoke("add", 2, 3)

In IPython: ``%load_ext functions_nb`` for ``%%function``, ``%invoke`` and ``%fn_sql``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import FunctionHandle, Functions
    from .config import BreakerConfig
    from .doctor import doctor
    from .errors import (
        Aborted,
        BadArguments,
        CascadeExhaustedError,
        CircuitOpen,
        CompileError,
        DependencyError,
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
    "Signature", "FunctionsError", "CompileError", "DependencyError", "ToolchainMissing", "FunctionNotFound",
    "BadArguments", "InvocationError", "FunctionTimeout", "LimitExceeded", "Aborted",
    "CircuitOpen", "QueueFull", "StorageError", "CascadeExhaustedError", "load_ipython_extension",
]

#: Where each public name lives: imported on first use, so ``import functions_nb`` loads
#: nothing heavy (no store, runtime, DuckDB, pandas) until a name is used.
_EXPORTS = {
    "Functions": ".client", "FunctionHandle": ".client", "BreakerConfig": ".config",
    "doctor": ".doctor", "Execution": ".models", "FunctionInfo": ".models",
    "Signature": ".models",
    **dict.fromkeys(["FunctionsError", "CompileError", "DependencyError", "ToolchainMissing",
                     "FunctionNotFound", "BadArguments", "InvocationError", "FunctionTimeout",
                     "LimitExceeded", "Aborted", "CircuitOpen", "QueueFull", "StorageError",
                     "CascadeExhaustedError"], ".errors"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """The package keeps ``doctor`` the function: importing the submodule of the same name
    would otherwise replace the attribute with the module (``functions_nb.doctor`` the
    module stays in ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
