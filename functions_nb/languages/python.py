"""Python -> Pyodide (CPython compiled to WebAssembly), run by a shared node host.

The cell is an ordinary module: the entry point is the function whose name is the deployed
name (``def add(a: int, b: int) -> int``); helpers, classes and standard-library imports are
fine. Compiling parses the cell with this interpreter's ``ast`` and ``compile(source, "cell",
"exec")`` (errors read ``cell:3:5: SyntaxError: ...`` with notebook cell lines), derives the
signature from the annotations and checks every import against what Pyodide can provide
offline: the standard library bundled in the ``pyodide`` npm package (packages such as numpy
would come from a CDN, and there is no network). The artifact is the source (JSON: entry name +
source with the cell's line offset); nothing is compiled ahead of time.

Calling convention (annotation -> kind): ``int`` -> i64, ``float`` -> f64, ``bool`` -> bool,
``str`` -> str, ``bytes`` -> bytes, anything else (``list[int]``, ``dict``, a dataclass, no
annotation) -> JSON; ``-> None`` returns nothing. Parameters must be positional (no
``*args``; keyword-only parameters need defaults). The host and sandbox are described in
``functions_nb/runtimes/pyodide.py``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import NODE_INSTALL_HINT
from ..errors import ToolchainMissing
from ..models import Param, Signature
from ..runtimes import pyodide as host
from .base import Language, Toolchain

KINDS = {"int": "i64", "float": "f64", "bool": "bool", "str": "str", "bytes": "bytes"}
#: Built into the interpreter without a ``PyInit_`` export of their own.
CORE_MODULES = frozenset({"sys", "builtins", "marshal", "_warnings", "_frozen_importlib",
                          "_frozen_importlib_external"})


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _wasm_exports(data: bytes) -> list[str]:
    """Names exported by a WebAssembly module (its export section)."""
    pos, names = 8, []
    while pos < len(data):
        section = data[pos]
        size, pos = _leb(data, pos + 1)
        if section == 7:
            count, p = _leb(data, pos)
            for _ in range(count):
                length, p = _leb(data, p)
                names.append(data[p:p + length].decode("utf-8", "replace"))
                p += length + 1  # name, kind
                _, p = _leb(data, p)  # index
            return names
        pos += size
    return names


@lru_cache(maxsize=4)
def _available(path: str, version: str) -> frozenset[str]:
    """Top-level modules Pyodide offers offline: the bundled stdlib zip + built-in modules."""
    root = Path(path)
    with zipfile.ZipFile(root / "python_stdlib.zip") as zf:
        names = {n.split("/")[0].removesuffix(".py") for n in zf.namelist()}
    builtin = {n[len("PyInit_"):] for n in _wasm_exports((root / "pyodide.asm.wasm").read_bytes())
               if n.startswith("PyInit_")}
    return frozenset((names | builtin | CORE_MODULES) - {"site-packages", ""})


def available_modules() -> frozenset[str]:
    version, _ = host.pyodide_versions()
    return _available(str(host.pyodide_dir()), version)


def _annotation(node: ast.expr | None) -> tuple[str, str]:
    """(kind, type as written) of an annotation."""
    if node is None:
        return "json", "Any"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "int"
        try:
            inner = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return "json", node.value
        return _annotation(inner)[0], node.value
    written = ast.unparse(node)
    if isinstance(node, ast.Name) and node.id in KINDS:
        return KINDS[node.id], written
    return "json", written


def _entry(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            found = node
    return found


class Python(Language):
    name = "python"
    runtime = "pyodide"
    extension = ".py"
    install_hint = NODE_INSTALL_HINT

    def _discover(self) -> Toolchain:
        node = host.node_binary()
        if node is None:
            return Toolchain(self.name, False, install="apt-get install -y nodejs",
                             detail="node not found (Pyodide runs in node)")
        try:
            version, python = host.pyodide_versions()
        except ToolchainMissing as exc:
            return Toolchain(self.name, False, install=self.install_hint, detail=str(exc))
        nv = ".".join(map(str, host._node_version(node)))
        return Toolchain(self.name, True, f"Pyodide {version} (Python {python}) on node v{nv}",
                         str(host.pyodide_dir()), self.install_hint, host.describe_layers())

    # signature -----------------------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            # Reported with cell line numbers by _build, which sees the line offset.
            return Signature(name, (), "json", "Any")
        fn = _entry(tree, name)
        if fn is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    def {name}(a: int, b: int) -> int:\n"
                "        return a + b", name)
        args = fn.args
        params = tuple(Param(a.arg, *_annotation(a.annotation))
                       for a in [*args.posonlyargs, *args.args])
        if isinstance(fn.returns, ast.Constant) and fn.returns.value is None:
            return Signature(name, params, "unit", "None")
        kind, written = _annotation(fn.returns)
        return Signature(name, params, kind, written)

    # build ---------------------------------------------------------------------------------
    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        name = signature.name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                compile(source, "cell", "exec", dont_inherit=True)
                tree = ast.parse(source)
            except SyntaxError as exc:
                raise self._syntax_error(exc, name) from None
        fn = _entry(tree, name)
        if fn is None:  # parse_signature saw a syntax error it left to us; cannot happen now
            raise self.error(f"no function named `{name}` in the cell", name)
        self._check_function(fn, name)
        self._check_imports(tree, name)
        notes = [f"cell:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught
                 if getattr(w, "filename", "") == "cell"]
        code = json.dumps({"format": 1, "entry": name, "source": source,
                           "python": ".".join(map(str, sys.version_info[:2]))}).encode()
        return code, "\n".join(notes)

    def _syntax_error(self, exc: SyntaxError, name: str) -> Exception:
        line, col = exc.lineno, exc.offset
        text = f"cell:{line}:{col}: {type(exc).__name__}: {exc.msg}"
        if exc.text and exc.text.strip():
            src = exc.text.rstrip("\n")
            text += f"\n    {src.strip()}"
            if col:
                indent = len(src) - len(src.lstrip())
                text += "\n    " + " " * max(0, col - 1 - indent) + "^"
        _, pyodide_python = host.pyodide_versions()
        if sys.version_info[:2] < _version_tuple(pyodide_python):
            text += (f"\n(checked with Python {sys.version_info.major}.{sys.version_info.minor}; "
                     f"Pyodide runs Python {pyodide_python})")
        return self.error(text, name, line, col)

    def _check_function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> None:
        where = f"cell:{fn.lineno}:{fn.col_offset + 1}"
        if isinstance(fn, ast.AsyncFunctionDef):
            raise self.error(f"{where}: error: `{name}` is `async def`; the entry point must be a "
                             "plain function", name, fn.lineno, fn.col_offset + 1)
        args = fn.args
        if args.vararg is not None:
            raise self.error(f"{where}: error: `{name}` takes *{args.vararg.arg}; give every "
                             "parameter a name (arguments are passed positionally)", name,
                             fn.lineno, fn.col_offset + 1)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if default is None:
                raise self.error(f"{where}: error: keyword-only parameter `{arg.arg}` of `{name}` "
                                 "needs a default (arguments are passed positionally)", name,
                                 fn.lineno, fn.col_offset + 1)

    def _check_imports(self, tree: ast.Module, name: str) -> None:
        available = available_modules()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    raise self.error(f"cell:{node.lineno}:{node.col_offset + 1}: ImportError: "
                                     "relative imports need a package; a cell is a single module",
                                     name, node.lineno, node.col_offset + 1)
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top in host.BLOCKED_MODULES:
                    why = (f"module '{module}' is not available to functions (they run sandboxed, "
                           "without JavaScript, raw memory or host access)")
                elif top not in available:
                    why = (f"No module named '{module}' in Pyodide offline: only the Python "
                           "standard library bundled with the pyodide npm package is available "
                           "(other packages come from a CDN, and functions have no network)")
                else:
                    continue
                raise self.error(f"cell:{node.lineno}:{node.col_offset + 1}: "
                                 f"ModuleNotFoundError: {why}", name, node.lineno,
                                 node.col_offset + 1)


def _version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
