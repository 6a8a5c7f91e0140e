"""Language registry. A language is one module here; adding one touches only this table."""

from __future__ import annotations

import importlib

from ..errors import BadArguments
from .base import Language, Toolchain

#: name -> "module:Class", imported on first use.
_REGISTRY = {
    "rust": "functions_nb.languages.rust:Rust",
    "zig": "functions_nb.languages.zig:Zig",
    "go": "functions_nb.languages.go:Go",
    "assemblyscript": "functions_nb.languages.assemblyscript:AssemblyScript",
    "typescript": "functions_nb.languages.typescript:TypeScript",
    "javascript": "functions_nb.languages.typescript:JavaScript",
    "python": "functions_nb.languages.python:Python",
    "csharp": "functions_nb.languages.csharp:CSharp",
    "generative": "functions_nb.languages.generative:Generative",
}
ALIASES = {"rs": "rust", "golang": "go", "as": "assemblyscript", "ts": "typescript",
           "js": "javascript", "py": "python", "cs": "csharp", "c#": "csharp",
           "prompt": "generative"}
#: Seed languages not yet built in this version (``func doctor`` lists them honestly).
PLANNED: tuple[str, ...] = ()

_instances: dict[str, Language] = {}


def names() -> list[str]:
    return list(_REGISTRY)


def get_language(name: str) -> Language:
    """The language object for ``name`` (or an alias such as ``rs``)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        planned = " (planned, not in this version)" if key in PLANNED else ""
        raise BadArguments(f"unknown language {name!r}{planned}; available: "
                           f"{', '.join(_REGISTRY)}")
    if key not in _instances:
        module, cls = _REGISTRY[key].split(":")
        _instances[key] = getattr(importlib.import_module(module), cls)()
    return _instances[key]


__all__ = ["Language", "Toolchain", "get_language", "names", "PLANNED"]
