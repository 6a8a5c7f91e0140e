"""Language registry. A language is one module here; adding one touches only this table."""

from __future__ import annotations

import importlib
from pathlib import PurePath

from ..errors import BadArguments
from .base import Language, Toolchain, WasmGlue

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
    "onnx": "functions_nb.languages.onnx:Onnx",
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
        _instances[key] = _class(key)()
    return _instances[key]


def _class(key: str) -> type[Language]:
    module, cls = _REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), cls)


def extensions() -> dict[str, str]:
    """File extension -> language, from each language's ``extensions``."""
    table: dict[str, str] = {}
    for key in _REGISTRY:
        cls = _class(key)
        for ext in cls.extensions or (cls.extension,):
            table.setdefault(ext, key)
    return table


def language_of(path: str) -> str | None:
    """The language a file name means by its extension (the longest that matches), or None."""
    name = PurePath(path).name.lower()
    table = extensions()
    matches = [ext for ext in table if name.endswith(ext) and len(name) > len(ext)]
    return table[max(matches, key=len)] if matches else None


def wasm_glue(language: str) -> WasmGlue:
    """What ``language`` adds to the wasm runtime (nothing for an unknown or empty name)."""
    key = ALIASES.get(language.lower(), language.lower())
    return get_language(key).wasm_glue() if key in _REGISTRY else WasmGlue()


__all__ = ["Language", "Toolchain", "WasmGlue", "extensions", "get_language", "language_of",
           "names", "wasm_glue", "PLANNED"]
