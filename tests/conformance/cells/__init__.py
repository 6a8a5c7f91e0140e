"""One module per language, each defining ``CELLS`` (a :class:`~tests.conformance.spec.Cells`)."""

from __future__ import annotations

import importlib

from ..spec import Cells

LANGUAGES = ("rust", "go", "zig", "assemblyscript", "typescript", "javascript", "python",
             "python_wasi", "csharp")
#: Subjects that are a language deployed with flags: subject -> (language, deploy flags).
DEPLOYED_AS = {"python_wasi": ("python", {"runtime": "wasi"})}


def cells(language: str) -> Cells:
    return importlib.import_module(f"{__name__}.{language}").CELLS
