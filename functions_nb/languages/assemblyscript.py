"""AssemblyScript (npm ``assemblyscript``) -> WebAssembly, run by the ``wasm`` runtime.

Compiling: one long-lived node process (``hosts/asc_server.mjs``) keeps the compiler warm
(≈0.1-0.3 s per cell instead of ≈1.2 s per CLI start). It is started on the first compile,
restarted if it died, stopped at exit; a lock serialises requests. It compiles in memory: the
compiler reads only the cell and its own standard library and writes nothing, and node runs
under its permission model (reads limited to the compiler's packages, no writes, no child
processes). Built ``-O3 --runtime incremental`` with asserts on: the incremental runtime's
GC keeps memory bounded across many warm calls on one instance (``stub`` never frees).

The cell stays at the top of ``cell.ts`` (diagnostics and ``abort`` locations are cell
lines); ``export`` is blanked out of the entry function and generated glue appended below it
exports a wrapper under the function's name. Calling convention: ``i8``..``u64``,
``isize``/``usize``, ``f32``/``f64``/``number`` and ``bool`` are wasm values; ``string``
arrives as UTF-8 (pointer, length) and ``Uint8Array``/``ArrayBuffer`` as bytes, both in
buffers from ``__fnb_alloc``; ``Float64Array``/``Float32Array``/``Int32Array``/``Int64Array``
(or ``StaticArray<f64>`` ...) are numpy arrays passed as (pointer, element count); arrays,
``Map<string, T>`` and ``T | null`` of those are JSON, decoded and encoded by generated
code. Results other than numbers come back as one i64 (pointer << 32 | byte length).

Isolation: the module can import only what the wasm runtime provides (console, abort,
trace, seed and error reporting); any other ``@external`` import is refused at load.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import NODE_INSTALL_HINT, node_modules
from ..models import Param, Signature
from ..process_wide import ProcessWide
from ..runtimes.host import sandbox, spawner
from .base import (
    BuildSandbox,
    Guest,
    HostImport,
    Language,
    Toolchain,
    WasmGlue,
    build_layers,
    find_function,
    line_of,
    split_top_level,
)

GLUE = (Path(__file__).parent / "glue" / "as_glue.ts").read_text()
SERVER = Path(__file__).resolve().parent.parent / "hosts" / "asc_server.mjs"
#: Allocator patches the server applies (see asc_server.mjs); fewer means a changed compiler.
EXPECTED_PATCHES = 5
RUNTIMES = ("incremental", "stub")
COMPILE_TIMEOUT = 120.0

_INT_TYPES: dict[str, tuple[str, int, int]] = {
    "i8": ("i32", -(2**7), 2**7 - 1), "i16": ("i32", -(2**15), 2**15 - 1),
    "i32": ("i32", -(2**31), 2**31 - 1), "isize": ("i32", -(2**31), 2**31 - 1),
    "u8": ("u32", 0, 2**8 - 1), "u16": ("u32", 0, 2**16 - 1),
    "u32": ("u32", 0, 2**32 - 1), "usize": ("u32", 0, 2**32 - 1),
    "i64": ("i64", -(2**63), 2**63 - 1), "u64": ("u64", 0, 2**64 - 1),
}
_FLOATS = {"f32": "f32", "f64": "f64", "number": "f64"}
_BOOLS = ("bool", "boolean")
#: Typed arrays <-> numpy arrays: kind, element type.
_TYPED = {"Float64Array": ("f64[]", "f64"), "Float32Array": ("f32[]", "f32"),
          "Int32Array": ("i32[]", "i32"), "Int64Array": ("i64[]", "i64")}
_STATIC = {"f64": "f64[]", "f32": "f32[]", "i32": "i32[]", "i64": "i64[]"}
_WASM = {"i32": "i32", "u32": "u32", "i64": "i64", "u64": "u64", "f32": "f32", "f64": "f64",
         "bool": "i32"}
SUPPORTED = ("i8..i64, u8..u64, isize, usize, f32, f64, number, bool, string, Uint8Array, "
             "ArrayBuffer, Float64Array, Float32Array, Int32Array, Int64Array, StaticArray<f64|f32|"
             "i32|i64>, and as JSON: T[] / Array<T>, Map<string, T>, T | null of these")


class UnsupportedType(ValueError):
    """A type the host boundary cannot carry."""


# -- JSON types ------------------------------------------------------------------------------

@dataclass(frozen=True)
class JType:
    """A JSON-carried type: ``scalar`` (an AS number type / bool / string), ``array``,
    ``map`` (string keys) or ``null`` (nullable ``inner``)."""

    tag: str
    name: str = ""
    inner: JType | None = None

    def ts(self) -> str:
        if self.tag == "scalar":
            return self.name
        assert self.inner is not None
        if self.tag == "array":
            return f"Array<{self.inner.ts()}>"
        if self.tag == "map":
            return f"Map<string, {self.inner.ts()}>"
        return f"{self.inner.ts()} | null"


def parse_type(text: str) -> JType:
    """Parse an AS type expression the JSON codec supports, or raise UnsupportedType."""
    t = re.sub(r"\s+", " ", text.strip())
    while t.startswith("(") and t.endswith(")") and _balanced(t[1:-1]):
        t = t[1:-1].strip()
    alts = split_top_level(t, "|")
    if len(alts) > 1:
        rest = [a for a in alts if a != "null"]
        if len(rest) != 1 or len(alts) != 2:
            raise UnsupportedType(text)
        inner = parse_type(rest[0])
        if inner.tag == "scalar" and inner.name not in ("string",):
            raise UnsupportedType(text)  # AS has no nullable number types
        return JType("null", inner=inner)
    if t.endswith("[]"):
        return JType("array", inner=parse_type(t[:-2]))
    m = re.fullmatch(r"(Array|Map)\s*<(.*)>", t)
    if m:
        args = split_top_level(m.group(2))
        if m.group(1) == "Array" and len(args) == 1:
            return JType("array", inner=parse_type(args[0]))
        if m.group(1) == "Map" and len(args) == 2 and args[0] == "string":
            return JType("map", inner=parse_type(args[1]))
        raise UnsupportedType(text)
    if t in _INT_TYPES or t in _FLOATS or t in _BOOLS or t == "string":
        return JType("scalar", "bool" if t == "boolean" else t)
    raise UnsupportedType(text)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch in "(<[{"
        depth -= ch in ")>]}"
        if depth < 0:
            return False
    return depth == 0


class _Codec:
    """Generates AS decoders/encoders for JSON types (one function per composite type)."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self._dec: dict[str, str] = {}
        self._enc: dict[str, str] = {}

    def decode(self, t: JType, r: str = "r") -> str:
        """An AS expression reading a value of ``t`` from the reader named ``r``."""
        if t.tag == "scalar":
            n = t.name
            if n == "string":
                return f"{r}.str()"
            if n == "bool":
                return f"{r}.bool()"
            if n in _FLOATS:
                return f"<f32>{r}.float()" if n == "f32" else f"{r}.float()"
            if n == "u64":
                return f"{r}.u64()"
            _, lo, hi = _INT_TYPES[n]
            lo_s = "i64.MIN_VALUE" if lo == -(2**63) else str(lo)
            return f'<{n}>{r}.int({lo_s}, {hi}, "{n}")'
        key = t.ts()
        if key not in self._dec:
            fname = f"__fnb_dec_{len(self._dec)}"
            self._dec[key] = fname
            assert t.inner is not None
            inner = self.decode(t.inner)
            if t.tag == "null":
                body = f"  if (r.isNull()) return null;\n  return {inner};\n"
            elif t.tag == "array":
                body = (f"  const a = new {key}();\n"
                        "  if (!r.expect(0x5B, \"'['\") || r.eat(0x5D)) return a;\n"
                        f"  do a.push({inner}); while (r.more(0x5D, \"']'\"));\n  return a;\n")
            else:
                body = (f"  const m = new {key}();\n"
                        "  if (!r.expect(0x7B, \"'{'\") || r.eat(0x7D)) return m;\n"
                        "  do {\n    const k = r.str();\n"
                        "    if (!r.expect(0x3A, \"':'\")) break;\n"
                        f"    m.set(k, {inner});\n"
                        "  } while (r.more(0x7D, \"'}'\"));\n  return m;\n")
            self.functions.append(f"function {fname}(r: __FnbReader): {key} {{\n{body}}}\n")
        return f"{self._dec[key]}({r})"

    def encode(self, t: JType, value: str) -> str:
        """An AS statement writing ``value`` of type ``t`` with the writer ``w``."""
        if t.tag == "scalar":
            n = t.name
            if n == "string":
                return f"w.str({value});"
            if n == "bool":
                return f'w.raw({value} ? "true" : "false");'
            if n == "f64" or n == "number":
                return f"w.float({value});"
            if n == "f32":
                return (f"{{ const x = {value}; if (isFinite(x)) w.raw(x.toString()); "
                        "else w.float(<f64>x); }")
            return f"w.raw({value}.toString());"
        key = t.ts()
        if key not in self._enc:
            fname = f"__fnb_enc_{len(self._enc)}"
            self._enc[key] = fname
            assert t.inner is not None
            if t.tag == "null":
                body = f'  if (v === null) w.raw("null");\n  else {self.encode(t.inner, "v!")}\n'
            elif t.tag == "array":
                body = ("  w.byte(0x5B);\n  for (let i = 0; i < v.length; i++) {\n"
                        "    if (i) w.byte(0x2C);\n"
                        f"    {self.encode(t.inner, 'unchecked(v[i])')}\n  }}\n  w.byte(0x5D);\n")
            else:
                body = ("  const ks = v.keys();\n  w.byte(0x7B);\n"
                        "  for (let i = 0; i < ks.length; i++) {\n    if (i) w.byte(0x2C);\n"
                        "    const k = unchecked(ks[i]);\n    w.str(k);\n    w.byte(0x3A);\n"
                        f"    {self.encode(t.inner, 'v.get(k)')}\n  }}\n  w.byte(0x7D);\n")
            self.functions.append(f"function {fname}(w: __FnbWriter, v: {key}): void {{\n{body}}}\n")
        return f"{self._enc[key]}(w, {value});"


# -- signatures ------------------------------------------------------------------------------

def classify(ty: str) -> tuple[str, tuple[int, int] | None]:
    """Host kind (and bounds) of an AS type; raises UnsupportedType."""
    t = re.sub(r"\s+", " ", ty.strip())
    if t in _INT_TYPES:
        kind, lo, hi = _INT_TYPES[t]
        narrow = t in ("i8", "i16", "u8", "u16")
        return kind, ((lo, hi) if narrow else None)
    if t in _FLOATS:
        return _FLOATS[t], None
    if t in _BOOLS:
        return "bool", None
    if t == "string":
        return "str", None
    if t in ("Uint8Array", "ArrayBuffer"):
        return "bytes", None
    if t in _TYPED:
        return _TYPED[t][0], None
    m = re.fullmatch(r"StaticArray\s*<\s*(\w+)\s*>", t)
    if m and m.group(1) in _STATIC:
        return _STATIC[m.group(1)], None
    parse_type(t)
    return "json", None


def _kind(ty: str) -> tuple[str, tuple[int, int] | None]:
    """:func:`classify`, with unsupported types left as "json" for ``_build`` to refuse."""
    try:
        return classify(ty)
    except UnsupportedType:
        return "json", None


#: What an AssemblyScript cell can import.
NO_PACKAGES = ("AssemblyScript functions use its standard library only (~lib/...); packages from "
               "the npm registry are not resolved for them (TypeScript functions can use them)")
_FROM = re.compile(r"""\b(?:import|export)\b[^;'"]*?\bfrom\s*(['"])([^'"]+)\1|\bimport\s*(['"])([^'"]+)\3""")


def packages(source: str) -> list[tuple[str, int]]:
    """Imported modules that are neither relative nor the standard library, with cell lines
    (comments skipped)."""
    from .typescript import mask

    code = mask(source, strings=False)
    found = []
    for m in _FROM.finditer(code):
        target = m.group(2) or m.group(4)
        if not target.startswith((".", "~lib/", "/")):
            found.append((target, code.count("\n", 0, m.start()) + 1))
    return found


_ENTRY = r"(?m)^[ \t]*(?:export[ \t]+)?function[ \t]+{name}[ \t]*(?:<[^>(]*>)?[ \t]*(?=\()"


class AssemblyScript(Language):
    name = "assemblyscript"
    runtime = "wasm"
    extension = ".ts"
    #: AssemblyScript files are ``.ts`` too; ``.as.ts`` tells them from TypeScript.
    extensions = (".as.ts",)
    install_hint = NODE_INSTALL_HINT
    #: ``runtime``: AssemblyScript's memory runtime (default incremental); ``opt_level`` 0-3.
    accepted_flags = {"runtime": RUNTIMES, "opt_level": (0, 1, 2, 3, "0", "1", "2", "3")}

    def wasm_glue(self) -> WasmGlue:
        """AssemblyScript's ``env`` imports (abort, trace, seed, console)."""
        return WASM_GLUE

    def _discover(self) -> Toolchain:
        node = shutil.which("node") or "/usr/bin/node"
        if not Path(node).exists():
            return Toolchain(self.name, False, install="apt-get install -y nodejs (node >= 20)",
                             detail="node not found")
        pkg = node_modules() / "assemblyscript" / "package.json"
        if not pkg.exists():
            return Toolchain(self.name, False, path=node, install=self.install_hint,
                             detail=f"npm package assemblyscript not found in {node_modules()}")
        version = json.loads(pkg.read_text())["version"]
        node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                      timeout=30, check=False).stdout.strip()
        if not re.match(r"v(2\d|[3-9]\d)\.", node_version):
            return Toolchain(self.name, False, version, node, "node >= 20 is needed",
                             f"node {node_version} is too old for assemblyscript {version}")
        # The glue and allocator patches are part of what determines the compiled code.
        glue_hash = hashlib.sha256(GLUE.encode() + SERVER.read_bytes()).hexdigest()[:8]
        return Toolchain(self.name, True, f"assemblyscript {version} (glue {glue_hash})",
                         node, self.install_hint, f"node {node_version}")

    # signature ---------------------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        self.refuse_packages(packages(source), name, NO_PACKAGES)
        found = find_function(source, _ENTRY.format(name=re.escape(name)))
        if found is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    export function {name}(a: i32, b: i32): i32 "
                "{\n      return a + b;\n    }", name)
        match, params_text, rest = found
        if "<" in source[match.start():match.end()]:
            raise self.error(f"the entry function `{name}` cannot be generic", name)
        params = []
        for part in split_top_level(params_text):
            m = re.fullmatch(r"(?s)(\.\.\.)?\s*([A-Za-z_$][\w$]*)\s*(\?)?\s*:\s*(.+?)\s*(=.*)?", part)
            if m is None or m.group(1) or m.group(3):
                raise self.error(
                    f"cannot read parameter {part.strip()!r} of `{name}`: write `name: type` "
                    "(rest and optional parameters are not supported)", name)
            pname, ptype = m.group(2), m.group(4).strip()
            kind, bounds = _kind(ptype)
            params.append(Param(pname, kind, ptype, bounds))
        ret = rest.strip()
        result_type = ret[1:].strip() if ret.startswith(":") else "void"
        result = "unit" if result_type == "void" else _kind(result_type)[0]
        return Signature(name, tuple(params), result, result_type)

    def _check_types(self, source: str, sig: Signature) -> None:
        """Refuse types that cannot cross the boundary (here, where ``source`` carries the
        cell's line offset, so the error names the notebook line)."""
        found = find_function(source, _ENTRY.format(name=re.escape(sig.name)))
        lineno = line_of(source, found[0].start()) if found else None
        checks = [(f"parameter `{p.name}: {p.type}`", p.type) for p in sig.params]
        if sig.result != "unit":
            checks.append((f"result type `{sig.result_type}`", sig.result_type))
        for what, ty in checks:
            try:
                classify(ty)
            except UnsupportedType:
                raise self.error(self._unsupported(lineno, what, sig.name), sig.name,
                                 lineno) from None

    @staticmethod
    def _unsupported(lineno: int | None, what: str, name: str) -> str:
        return (f"cell:{lineno}: error: unsupported parameter type: {what} of `{name}` cannot "
                f"cross the host boundary.\nSupported: {SUPPORTED}.\n(Classes have no JSON "
                "mapping in AssemblyScript: pass their fields as separate parameters or arrays.)")

    # glue ----------------------------------------------------------------------------------
    def glue(self, sig: Signature) -> str:
        """The entry wrapper (plus JSON codecs), exported under the function's name."""
        codec = _Codec()
        wparams, prep, args, checks = [], [], [], []
        for i, p in enumerate(sig.params):
            t = re.sub(r"\s+", " ", p.type.strip())
            if p.kind in _WASM:
                wparams.append(f"p{i}: {_WASM[p.kind]}")
                if p.kind == "bool":
                    args.append(f"p{i} != 0")
                elif t in _FLOATS or t in ("i32", "u32", "i64", "u64"):
                    args.append(f"p{i}")
                else:
                    args.append(f"<{t}>p{i}")
                continue
            wparams += [f"p{i}: usize", f"l{i}: i32"]
            if p.kind == "str":
                prep.append(f"const a{i} = __fnb_take_str(p{i}, l{i});")
            elif t == "ArrayBuffer":
                prep.append(f"const a{i} = __fnb_take_buffer(p{i}, l{i});")
            elif t.startswith("StaticArray"):
                elem = t[t.index("<") + 1:-1].strip()
                prep.append(f"const a{i} = __fnb_take_static<{elem}>(p{i}, l{i});")
            elif p.kind != "json":  # Uint8Array and the typed arrays
                prep.append(f"const a{i} = __fnb_take_typed<{t}>(p{i}, l{i});")
            else:
                jt = parse_type(t)
                prep.append(f"const r{i} = new __FnbReader(p{i}, p{i} + <usize>l{i});")
                prep.append(f"const a{i} = {codec.decode(jt, f'r{i}')};")
                prep.append(f"if (ok) ok = __fnb_json_arg(r{i}, {json.dumps(p.name)}, "
                            f"{json.dumps(p.type)});")
                checks.append(f"heap.free(p{i});")
            args.append(f"a{i}")
        call = f"{sig.name}({', '.join(args)})"
        kind, rtype = sig.result, re.sub(r"\s+", " ", sig.result_type.strip())
        if kind == "unit":
            wret, early, tail = "void", "return;", f"{call};"
        elif kind in _WASM:
            wret, early = _WASM[kind], "return 0;"
            tail = f"return <{wret}>{call};"
        else:
            wret, early = "u64", "return 0;"
            if kind == "str":
                tail = f"return __fnb_ret_str({call});"
            elif rtype == "ArrayBuffer":
                tail = f"return __fnb_ret_buffer({call});"
            elif rtype.startswith("StaticArray"):
                elem = rtype[rtype.index("<") + 1:-1].strip()
                tail = f"return __fnb_ret_static<{elem}>({call});"
            elif kind != "json":
                tail = f"return __fnb_ret_typed<{rtype}>({call});"
            else:
                enc = codec.encode(parse_type(rtype), "v")
                tail = (f"const v = {call};\n  const w = new __FnbWriter();\n  {enc}\n"
                        "  return w.finish();")
        lines = []
        if checks:
            lines.append("let ok = true;")
        lines += prep
        if checks:
            lines += checks
            lines.append(f"if (!ok) {early}")
        lines.append(tail)
        body = "".join(f"  {line}\n" for line in lines)
        return ("\n".join(codec.functions)
                + f"\nfunction __fnb_entry({', '.join(wparams)}): {wret} {{\n{body}}}\n"
                + f"export {{ __fnb_entry as {sig.name} }};\n")

    # build ---------------------------------------------------------------------------------
    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        runtime = flags.get("runtime", "incremental")
        opt = str(flags.get("opt_level", 3))
        if runtime not in RUNTIMES or opt not in ("0", "1", "2", "3"):
            raise self.error(f"unsupported flags {flags!r}: runtime is one of {', '.join(RUNTIMES)}, "
                             "opt_level 0-3", signature.name)
        self._check_types(source, signature)
        cell = self._unexport(source, signature.name)
        cell_lines = cell.count("\n") + 1
        text = cell + ("\n" if not cell.endswith("\n") else "") + GLUE + self.glue(signature)
        args = [f"-O{opt}", "--runtime", runtime]
        try:
            tc = self.require_toolchain()
            reply = server().compile({"cell.ts": text}, args, tc.path, _permission_flag(tc.detail))
        except RuntimeError as exc:
            raise self.error(str(exc), signature.name) from None
        errors, warnings = _diagnostics(reply.get("stderr", ""), cell_lines)
        if not reply.get("ok"):
            first = next((e for e in errors if e[1] is not None), errors[0] if errors else None)
            message = "\n\n".join(e[0] for e in errors) or reply.get("stderr", "").strip() or \
                "the AssemblyScript compiler failed without a message"
            raise self.error(message, signature.name, first[1] if first else None,
                             first[2] if first else None)
        return base64.b64decode(reply["wasm"]), "\n\n".join(w[0] for w in warnings)

    @staticmethod
    def _unexport(source: str, name: str) -> str:
        """Blank out ``export`` of the entry function (same columns, same lines)."""
        pattern = rf"(?m)^([ \t]*)export([ \t]+function[ \t]+{re.escape(name)}\b)"
        return re.sub(pattern, lambda m: m.group(1) + " " * 6 + m.group(2), source, count=1)


# -- diagnostics -------------------------------------------------------------------------------

_HEAD = re.compile(r"^(ERROR|WARNING|INFO|PEDANTIC) (\w+): (.*)$")
_WHERE = re.compile(r"└─ in (\S+)\((\d+),(\d+)\)")


def _diagnostics(stderr: str, cell_lines: int) -> tuple[list[tuple[str, int | None, int | None]],
                                                         list[tuple[str, int | None, int | None]]]:
    """asc's text -> (errors, warnings), each (``cell:L:C: error TS2322: ...`` + snippet, L, C)."""
    errors, warnings = [], []
    for block in re.split(r"\n\s*\n", stderr.replace("\r\n", "\n")):
        lines = [ln for ln in block.strip("\n").splitlines() if ln.strip()]
        if not lines:
            continue
        head = _HEAD.match(lines[0].strip())
        if head is None:
            if lines[0].startswith("FAILURE") or re.match(r"\d+ (parse|compile) error", lines[0]):
                continue
            errors.append(("\n".join(lines), None, None))
            continue
        severity, code, message = head.groups()
        where = _WHERE.search(block)
        lineno = col = None
        prefix = ""
        glue_note = ""
        if where and where.group(1) == "cell.ts":
            line, c = int(where.group(2)), int(where.group(3))
            if line > cell_lines:
                glue_note = ("\n(in the generated glue: the entry function's signature uses a type "
                             f"that cannot cross the host boundary; supported: {SUPPORTED})")
            else:
                lineno, col, prefix = line, c, f"cell:{line}:{c}: "
        elif where:
            prefix = f"{where.group(1)}:{where.group(2)}:{where.group(3)}: "
        snippet = [ln for ln in lines[1:] if "└─ in" not in ln and ln.strip() != ":"]
        if glue_note:
            snippet = []
        text = f"{prefix}{severity.lower()} {code}: {message}" + \
            "".join(f"\n{ln}" for ln in snippet) + glue_note
        if severity == "ERROR":
            errors.append((text, lineno, col))
        elif lineno is not None:
            warnings.append((text, lineno, col))
    return errors, warnings


# -- the compiler process ------------------------------------------------------------------------

class AscServer:
    """A long-lived ``node asc_server.mjs`` answering JSON compile requests (one at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=50)
        self._pid = 0
        self._next_id = 0
        self.info: dict[str, Any] = {}
        self.starts = 0

    def compile(self, files: dict[str, str], args: list[str], node: str,
                permission: str = "--experimental-permission",
                timeout: float = COMPILE_TIMEOUT) -> dict[str, Any]:
        with self._lock:
            self._ensure(node, permission)
            self._next_id += 1
            request = json.dumps({"id": self._next_id, "files": files, "args": args}) + "\n"
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            try:
                proc.stdin.write(request.encode())
                proc.stdin.flush()
            except OSError:
                self._kill()
                raise RuntimeError("the AssemblyScript compiler process exited: "
                                   + self._last_stderr()) from None
            reply = self._read(timeout, f"node {SERVER.name}")
            if reply.get("id") != self._next_id:
                self._kill()
                raise RuntimeError(f"the AssemblyScript compiler answered out of turn: {reply!r:.200}")
            return reply

    def _ensure(self, node: str, permission: str) -> None:
        if self._proc is not None and self._proc.poll() is None and self._pid == os.getpid():
            return
        if self._proc is not None and self._pid == os.getpid():
            self._kill()
        nm = node_modules()
        reads = [p for p in (SERVER, nm / "assemblyscript", nm / "binaryen", nm / "long")
                 if p.exists()]
        cmd = [node, "--no-warnings", permission,
               *[f"--allow-fs-read={p.resolve()}{os.sep if p.is_dir() else ''}" for p in reads],
               str(SERVER), str(nm.resolve())]
        box = build_sandbox(node, reads)
        run = sandbox.launch(box.profile("assemblyscript", None), cmd, layers=build_layers())
        try:  # from the spawner thread: --die-with-parent must not fire when a caller's ends
            proc = spawner.popen(run.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=run.env, pass_fds=run.fds,
                                 start_new_session=True)
        finally:
            run.close()
        self._proc, self._pid, self.starts = proc, os.getpid(), self.starts + 1
        self._lines = lines = queue.Queue()
        stderr = self._stderr
        stderr.clear()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True,
                         name="asc-server-out").start()
        threading.Thread(target=_drain, args=(proc.stderr, stderr), daemon=True,
                         name="asc-server-err").start()
        self.info = self._read(60.0, "starting the AssemblyScript compiler")
        if not self.info.get("ready"):
            self._kill()
            raise RuntimeError(f"the AssemblyScript compiler did not start: {self.info!r:.300}")

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._kill()
            raise subprocess.TimeoutExpired(what, timeout) from None
        if line is None:
            self._kill()
            raise RuntimeError("the AssemblyScript compiler process exited: " + self._last_stderr())
        return json.loads(line)

    def _last_stderr(self) -> str:
        time.sleep(0.05)  # let the drain thread catch the last words
        return " | ".join(self._stderr)[-1500:] or "no output"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def stop(self) -> None:
        """Close the process (at exit): end its input, then kill it if it lingers."""
        with self._lock:
            proc = self._proc
            if proc is None or self._pid != os.getpid():
                return
            try:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._kill()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None


def _pump(stream: Any, lines: queue.Queue[bytes | None]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(None)


def _drain(stream: Any, keep: deque[str]) -> None:
    for line in iter(stream.readline, b""):
        keep.append(line.decode(errors="replace").rstrip())


def build_sandbox(node: str, reads: list[Path]) -> BuildSandbox:
    """The compiler server's sandbox: node and the compiler's packages (read-only), no
    processes (it compiles in memory; node's permission model also holds inside). Its CPU
    limit spans the process's life: a server that reaches it is restarted."""
    return BuildSandbox(tools=(node,), read=tuple(str(p.resolve()) for p in reads),
                        processes=False, cpu_s=3600, memory="data")


def _permission_flag(node_detail: str) -> str:
    """Node's permission model flag: ``--permission`` from node 23, experimental before."""
    m = re.search(r"v(\d+)\.", node_detail)
    return "--permission" if m and int(m.group(1)) >= 23 else "--experimental-permission"


#: The process-wide compiler process manager (the process itself starts on first use).
server: ProcessWide[AscServer] = ProcessWide(AscServer, on_exit="stop")


# -- host side: the "env" imports AssemblyScript modules expect (run by the wasm runtime) ----

def _as_string(guest: Guest, ptr: int) -> str:
    """An AssemblyScript string: UTF-16LE, byte length stored just before the data."""
    if not ptr:
        return ""
    size = int.from_bytes(guest.read(ptr - 4, 4), "little")
    return guest.read(ptr, size).decode("utf-16-le", errors="replace")


def _as_abort(guest: Guest, msg: int, file: int, line: int, col: int) -> None:
    text = _as_string(guest, msg) or "abort"
    where = _as_string(guest, file)
    guest.panic(f"aborted at {where}:{line}:{col}: {text}" if where else f"aborted: {text}")


def _as_trace(guest: Guest, msg: int, n: int, *values: float) -> None:
    shown = ", ".join(f"{v:g}" for v in values[:max(0, min(n, 5))])
    guest.log(0, f"trace: {_as_string(guest, msg)}" + (f" {shown}" if shown else ""))


def _as_seed(_guest: Guest) -> float:
    return float(time.time_ns() % (1 << 52))


def _as_console(level: int) -> HostImport:
    def console(guest: Guest, ptr: int) -> None:
        guest.log(level, _as_string(guest, ptr))
    return HostImport(("i32",), (), console)


WASM_GLUE = WasmGlue(imports={"env": {
    "abort": HostImport(("i32", "i32", "i32", "i32"), (), _as_abort),
    "trace": HostImport(("i32", "i32", "f64", "f64", "f64", "f64", "f64"), (), _as_trace),
    "seed": HostImport((), ("f64",), _as_seed),
    **{f"console.{name}": _as_console(level)
       for level, name in enumerate(("debug", "log", "info", "warn", "error"))},
}})
