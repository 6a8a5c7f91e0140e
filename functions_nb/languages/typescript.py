"""TypeScript and JavaScript -> one JS bundle (esbuild) run in V8 (``runtimes/v8.py``).

The cell is written verbatim to ``cell.ts`` / ``cell.js`` with one line appended,
``export { NAME as __fnb_entry };``, so the entry function may be exported or not. esbuild
bundles it to an IIFE (``var __fnb_cell = ...``; V8 here rejects ESM ``export``) with an
external source map, so runtime stack frames map back to cell lines. For TypeScript,
``tsc --noEmit`` (the native TypeScript 7 compiler, called directly rather than through its
node wrapper) type-checks the cell first; flag ``typecheck`` (on by default for TypeScript,
off for JavaScript) and ``strict`` (TypeScript default on). Diagnostics of both tools name
``cell:LINE:COL`` with notebook cell lines.

Calling convention (parameter types as written in the signature):
``number`` <-> float, ``boolean`` <-> bool, ``string`` <-> str, ``bigint`` <-> int,
``Uint8Array`` <-> bytes, ``Float64Array``, ``Float32Array``, ``Int32Array``,
``BigInt64Array`` <- numpy array or list, -> numpy array of float64, float32, int32, int64;
anything else (``any``, arrays, objects, interfaces, unions, untyped JavaScript parameters)
is a JSON value. ``void`` results are ``None``; ``async`` functions and returned promises are
awaited. Results of JSON kinds cross exactly: a ``Map`` is a dict, a ``Set`` a set, a
``BigInt`` an int (anywhere in the value); ``undefined`` and ``null`` are ``None`` (inside
arrays too; object keys whose value is ``undefined`` are left out, as ``JSON.stringify`` does).
NaN and the infinities inside a JSON result are floats; an integral JSON number is an int up
to 2**53 and the float it is beyond (JavaScript has one number type). A Python int a
JavaScript number cannot hold exactly (beyond 2**53) is refused for a JSON parameter unless its
type mentions ``bigint`` (``number | bigint``: it arrives as a BigInt); ``bigint`` parameters
take any int. Parameters typed ``Map<...>`` / ``Set<...>`` get a Map / Set made from the dict /
list. Text with a surrogate code point is refused (UTF-16 would join a pair). Parameters with
a default value (``name = "you"``) or marked optional (``name?``) may be omitted: JavaScript
then uses its default.
The artifact is JSON: ``{"format", "entry", "js", "map"}``.

npm packages: a bare import (``import { z } from "zod"``) declares one, an optional
``// @dependencies zod@3.23.8`` header pins versions (:mod:`functions_nb.dependencies.npm`);
the locked tarballs, unpacked once per lock on a machine, are the build's ``node_modules``
(a link, read-only in the sandbox) and are bundled with the cell, so only that function has
them. Node's built-in modules stay unresolvable.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import NODE_INSTALL_HINT, node_modules
from ..errors import DependencyError
from ..models import Param, Signature
from .base import (
    OUTSIDE,
    BuildSandbox,
    Language,
    Toolchain,
    first_version_line,
    line_of,
    literal_line,
    outside,
    run_tool,
    split_top_level,
)

if TYPE_CHECKING:
    from ..dependencies import Resolved

ARTIFACT_FORMAT = "fnb-v8/1"
GLUE_DIR = Path(__file__).parent / "glue"
ENV_DTS = GLUE_DIR / "ts_env.d.ts"
COMPILE_TIMEOUT = 120.0

_SCALARS = {"number": "f64", "boolean": "bool", "string": "str", "bigint": "bigint"}
_UNIT = {"void", "undefined", "never"}
#: Typed arrays <-> 1-D numpy arrays of their dtype.
_TYPED_ARRAYS = {"Float64Array": "f64[]", "Float32Array": "f32[]", "Int32Array": "i32[]",
                 "BigInt64Array": "i64[]"}
_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
#: esbuild's options when the cell has npm packages. A function runs in V8 without Node and
#: without a DOM, as a worker of the edge runtimes does: packages' ``worker`` and ``browser``
#: builds first (they avoid Node's built-ins), as those runtimes' bundlers choose them, then
#: ESM ``module``, then CommonJS ``main`` (``platform=neutral`` reads no package field by
#: itself); code that branches on ``process.env.NODE_ENV`` gets its production branch;
#: ``node_modules`` is a link to the packages' tree, and their paths stay under it.
DEPS_ESBUILD_ARGS = ("--main-fields=browser,module,main", "--conditions=worker,browser",
                     '--define:process.env.NODE_ENV="production"',
                     "--preserve-symlinks")


# -- toolchain ---------------------------------------------------------------------------

def esbuild_path() -> Path | None:
    nm = node_modules()
    for path in (nm / "@esbuild" / f"{sys.platform}-{_arch()}" / "bin" / "esbuild",
                 nm / "esbuild" / "bin" / "esbuild", nm / ".bin" / "esbuild"):
        if path.exists():
            return path
    return None


def tsc_path() -> Path | None:
    """The native tsc (TypeScript 7) binary; its node wrapper only as a fallback (+0.3 s)."""
    nm = node_modules()
    native = nm / "@typescript" / f"typescript-{sys.platform}-{_arch()}" / "lib" / "tsc"
    if native.exists():
        return native
    wrapper = nm / ".bin" / "tsc"
    return wrapper if wrapper.exists() else None


def tsc_sandbox(tsc: Path) -> BuildSandbox:
    """The native tsc and its ``lib.*.d.ts`` beside it; the node wrapper: node and the
    typescript package."""
    if tsc.name == "tsc" and tsc.parent.name == "lib" and "@typescript" in tsc.parts:
        return BuildSandbox(tools=(str(tsc),), read=(str(tsc.resolve().parent),),
                            proc=str(tsc))
    node = shutil.which("node") or "/usr/bin/node"
    return BuildSandbox(tools=(node,), read=(str((node_modules() / "typescript").resolve()),),
                        memory="data")


def _arch() -> str:
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine)


# -- source scanning -----------------------------------------------------------------------

def mask(source: str, strings: bool = True) -> str:
    """``source`` with comments (and string contents) blanked: same length, newlines kept."""
    out = list(source)
    i, n = 0, len(source)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        ch = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if ch == "/" and nxt == "/":
            j = source.find("\n", i)
            j = n if j == -1 else j
            blank(i, j)
            i = j
        elif ch == "/" and nxt == "*":
            j = source.find("*/", i + 2)
            j = n if j == -1 else j + 2
            blank(i, j)
            i = j
        elif ch in "'\"`":
            j = i + 1
            depth = 0
            while j < n:
                c = source[j]
                if c == "\\":
                    j += 2
                    continue
                if ch == "`" and c == "$" and j + 1 < n and source[j + 1] == "{":
                    depth += 1
                elif ch == "`" and c == "}" and depth:
                    depth -= 1
                elif c == ch and not depth:
                    break
                elif c == "\n" and ch != "`":
                    break
                j += 1
            if strings:
                blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _matching(text: str, i: int) -> int:
    """Index of the bracket closing the one at ``i`` (``([{`` only), or -1."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    for j in range(i, len(text)):
        c = text[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                return -1
            if not stack:
                return j
    return -1


def _top_level(text: str, chars: str) -> int:
    """Index of the first of ``chars`` outside brackets (``=`` not part of ``=>``/``==``...)."""
    depth = 0
    for k, ch in enumerate(text):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}" or (ch == ">" and not (k and text[k - 1] == "=")):
            depth -= 1
        elif depth == 0 and ch in chars:
            if ch == "=" and (text[k + 1:k + 2] in ("=", ">") or text[k - 1:k] in "=!<>"):
                continue
            return k
    return -1


def _return_type(masked: str, source: str, i: int, arrow: bool) -> tuple[str, int]:
    """The return annotation starting at ``i`` (after the parameter list): (text, end)."""
    j = i
    while j < len(masked) and masked[j].isspace():
        j += 1
    if j >= len(masked) or masked[j] != ":":
        return "", j
    start = j + 1
    depth = 0
    k = start
    while k < len(masked):
        ch = masked[k]
        if arrow and depth == 0 and masked.startswith("=>", k):
            break
        if ch == "{" and depth == 0 and not arrow:
            so_far = masked[start:k].strip()
            if so_far and so_far[-1] not in "|&:,<(=" and not so_far.endswith("=>"):
                break
        if ch in "([{<":
            depth += 1
        elif ch in ")]}" or (ch == ">" and masked[k - 1] != "="):
            depth -= 1
        k += 1
    return " ".join(source[start:k].split()), k


def classify(ty: str) -> str:
    """Host kind of a TypeScript type."""
    t = re.sub(r"\s+", "", ty)
    t = t.removeprefix("readonly")
    if t in _SCALARS:
        return _SCALARS[t]
    base = re.sub(r"<.*>$", "", t)
    if base == "Uint8Array":
        return "bytes"
    if base in _TYPED_ARRAYS:
        return _TYPED_ARRAYS[base]
    return "json"


def _result_kind(ty: str, is_async: bool) -> str:
    t = re.sub(r"\s+", "", ty)
    m = re.fullmatch(r"(?:Promise|PromiseLike)<(.*)>", t)
    if m:
        t = m.group(1)
    elif not t:
        return "json"
    return "unit" if t in _UNIT else classify(t)


class TypeScript(Language):
    name = "typescript"
    runtime = "v8"
    extension = ".ts"
    install_hint = NODE_INSTALL_HINT
    #: Parameters and results carry TypeScript types (JavaScript: every value is JSON).
    typed = True
    #: ``typecheck``: run ``tsc --noEmit`` (default: TypeScript yes, JavaScript no);
    #: ``strict``: tsc's strict mode (same defaults).
    accepted_flags = {"typecheck": (True, False), "strict": (True, False)}

    #: Bare imports are npm packages (:mod:`functions_nb.dependencies.npm`).
    ecosystem = "npm"

    # toolchain -----------------------------------------------------------------------
    def _discover(self) -> Toolchain:
        esbuild = esbuild_path()
        if esbuild is None:
            return Toolchain(self.name, False, install=self.install_hint,
                             detail=f"esbuild not found under {node_modules()}")
        version = f"esbuild {first_version_line(run_tool([str(esbuild), '--version']).stdout)}"
        tsc = tsc_path()
        details = []
        if tsc is not None:
            out = run_tool(self._tsc_cmd(tsc) + ["--version"], sandbox_=tsc_sandbox(tsc)).stdout
            version += f", tsc {first_version_line(out).split()[-1]}"
        elif self.typed:
            details.append("tsc not found: type checking unavailable")
        if importlib.util.find_spec("py_mini_racer") is None:
            details.append("mini-racer is needed to run functions: pip install mini-racer")
        if shutil.which("npm") is None:
            details.append("npm not found: cells cannot import npm packages (it comes with Node.js)")
        return Toolchain(self.name, True, version, str(esbuild), self.install_hint, "; ".join(details))

    # signature -------------------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        masked = mask(source)
        found = self._find(masked, name)
        if found is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    {self._example(name)}", name)
        start, open_paren, is_async, arrow = found
        line = line_of(source, start)
        if open_paren < 0:  # `x => ...`: one untyped parameter
            ident = re.match(r"\s*([A-Za-z_$][\w$]*)", masked[-open_paren:])
            params = (Param(ident.group(1) if ident else "arg0", "json", "any"),)
            return Signature(name, params, "json", "any")
        close = _matching(masked, open_paren)
        if close == -1:
            raise self.error(f"cell line {line}: cannot find the end of the parameter list of "
                             f"`{name}`", name, line)
        params = []
        plain = mask(source, strings=False)  # comments blanked, string literal types kept
        for i, part in enumerate(split_top_level(plain[open_paren + 1:close])):
            param = self._param(part, i, name, line)
            if param is not None:
                params.append(param)
        rtype, _ = _return_type(masked, plain, close + 1, arrow)
        if not self.typed or not rtype:
            return Signature(name, tuple(params), "json", "Promise<any>" if is_async and self.typed
                             else "any")
        return Signature(name, tuple(params), _result_kind(rtype, is_async), rtype)

    def _example(self, name: str) -> str:
        if self.typed:
            return f"export function {name}(a: number, b: number): number {{ return a + b }}"
        return f"function {name}(a, b) {{ return a + b }}"

    @staticmethod
    def _find(masked: str, name: str) -> tuple[int, int, bool, bool] | None:
        """(start, index of '(' or -(index of a bare parameter), async, arrow) of the entry."""
        ident = re.escape(name)
        decl = re.compile(rf"(?<![\w$.])(async\s+)?function\s*(?:\*\s*)?{ident}(?![\w$])\s*")
        var = re.compile(rf"(?<![\w$.])(?:const|let|var)\s+{ident}(?![\w$])\s*"
                         rf"(?::(?:[^=;]|=>)*?)?=(?![>=])\s*"
                         rf"(async\s+)?(function\b\s*(?:\*\s*)?[\w$]*\s*)?")
        for pattern in (decl, var):
            for m in pattern.finditer(masked):
                i = m.end()
                if i < len(masked) and masked[i] == "<":  # generic parameters
                    depth = 0
                    while i < len(masked):
                        depth += {"<": 1, ">": -1}.get(masked[i], 0)
                        i += 1
                        if depth == 0:
                            break
                    while i < len(masked) and masked[i].isspace():
                        i += 1
                arrow = pattern is var and not m.group(2)
                if i < len(masked) and masked[i] == "(":
                    return m.start(), i, bool(m.group(1)), arrow
                if arrow and re.match(r"[A-Za-z_$][\w$]*\s*=>", masked[i:]):
                    return m.start(), -i, bool(m.group(1)), True
        return None

    def _param(self, part: str, i: int, name: str, line: int) -> Param | None:
        if part.startswith("..."):
            raise self.error(f"cell line {line}: rest parameter `{part}` of `{name}` is not "
                             "supported: take an array instead", name, line)
        eq = _top_level(part, "=")
        decl = part[:eq] if eq != -1 else part
        colon = _top_level(decl, ":")
        pname = (decl[:colon] if colon != -1 else decl).strip().rstrip("?").strip()
        pname = re.sub(r"^(?:public|private|protected|readonly)\s+", "", pname)
        ptype = " ".join(decl[colon + 1:].split()) if colon != -1 else ""
        if pname == "this":
            return None
        if not re.fullmatch(r"[A-Za-z_$][\w$]*", pname):
            pname = f"arg{i}"
        optional = eq != -1 or (decl[:colon] if colon != -1 else decl).strip().endswith("?")
        if not self.typed or not ptype:
            return Param(pname, "json", "any", has_default=optional)
        return Param(pname, classify(ptype), ptype, has_default=optional)

    # build -----------------------------------------------------------------------------
    def declared_dependencies(self, source: str, flags: dict[str, Any]) -> tuple[str, ...]:
        """The npm packages the cell imports (bare specifiers, Node's built-ins left out) and
        those its ``// @dependencies`` header names, with the header's versions
        (:func:`functions_nb.dependencies.npm.declare`)."""
        from ..dependencies import npm

        plain = mask(source, strings=False)  # comments blanked: a header line must be one
        header = [(m.group(0), line_of(source, m.start())) for m in npm.HEADER.finditer(source)
                  if plain[source.index("//", m.start())] == " "]
        imports = [(spec, line_of(source, at)) for spec, at in _imports(source)]
        try:
            return npm.declare(imports, header)
        except DependencyError as exc:
            exc.language = self.name
            raise

    def _build_with_deps(self, source: str, signature: Signature, workdir: Path,
                         flags: dict[str, Any], deps: Resolved) -> tuple[bytes, str]:
        """The same bundle, with the locked npm packages at ``workdir/node_modules``: a link to
        their unpacked tree (:func:`~functions_nb.dependencies.npm.tree`, made once per lock on
        this machine, bound read-only into the sandbox), so esbuild and tsc resolve bare
        imports there and nowhere else. No install script runs."""
        from ..dependencies import npm

        self._check_imports(source, signature.name)
        try:
            tree = npm.tree(deps)
        except OSError as exc:
            raise self.error(f"cannot unpack the npm packages: {exc}", signature.name) from None
        (workdir / "node_modules").symlink_to(tree / "node_modules", target_is_directory=True)
        return self._bundle(source, signature, workdir, flags, DEPS_ESBUILD_ARGS, (str(tree),))

    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        return self._bundle(source, signature, workdir, flags)

    def _bundle(self, source: str, signature: Signature, workdir: Path, flags: dict[str, Any],
                extra: tuple[str, ...] = (), read: tuple[str, ...] = ()) -> tuple[bytes, str]:
        """esbuild, then tsc; ``extra``: more esbuild options, ``read``: folders both may read
        besides the build directory (the unpacked npm packages)."""
        esbuild = esbuild_path()
        assert esbuild is not None  # require_toolchain checked it
        cell = f"cell{self.extension}"
        self._check_imports(source, signature.name)
        (workdir / cell).write_text(f"{source}\nexport {{ {signature.name} as __fnb_entry }};\n")
        proc = run_tool([str(esbuild), cell, "--bundle", "--format=iife", "--global-name=__fnb_cell",
                         "--platform=neutral", "--target=esnext", "--sourcemap=external",
                         "--sources-content=false", "--charset=utf8", "--outfile=out.js",
                         "--metafile=meta.json", "--log-level=warning", "--color=false", *extra],
                        cwd=workdir, timeout=COMPILE_TIMEOUT, name="esbuild",
                        sandbox_=BuildSandbox(tools=(str(esbuild),), read=read))
        errors, warnings = _esbuild_diagnostics(proc.stderr)
        self._check_inputs(source, workdir, errors, signature.name)
        if proc.returncode != 0 or not (workdir / "out.js").exists():
            text = "\n".join(e[0] for e in errors) or proc.stderr.strip()
            text = re.sub(r"Are you trying to bundle for node\?.*?remove this error\.",
                          "Functions run in V8 without Node: its built-in modules cannot be "
                          "imported.", text, flags=re.S)
            first = errors[0] if errors else ("", None, None)
            raise self.error(text, signature.name, first[1], first[2])
        if flags.get("typecheck", self.typed):
            self._typecheck(cell, signature.name, workdir, flags, read)
        js = (workdir / "out.js").read_text()
        js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js)
        source_map = json.loads((workdir / "out.js.map").read_text())
        code = json.dumps({"format": ARTIFACT_FORMAT, "entry": signature.name, "js": js,
                           "map": source_map}, separators=(",", ":"))
        return code.encode(), "\n".join(w[0] for w in warnings)

    def _check_imports(self, source: str, name: str) -> None:
        """Refuse imports of absolute paths and parent folders (the cell is a single file):
        the error names the import and its cell line."""
        for m in _IMPORT.finditer(mask(source, strings=False)):
            spec = _ESCAPE.sub(lambda e: chr(int(e.group(1) or e.group(2), 16)), m.group("spec"))
            if spec.startswith(("/", "file:", "\\")) or re.match(r"[A-Za-z]:[\\/]", spec) or \
                    re.match(r"\.\.?(/|$)", spec) and outside(spec, Path("/cell")):
                line = line_of(source, m.start("spec"))
                col = m.start("spec") - source.rfind("\n", 0, m.start("spec"))
                raise self.error(f"cell:{line}:{col}: error: import {spec!r}: the build cannot "
                                 f"read {spec}: {OUTSIDE}", name, line, col)

    def _check_inputs(self, source: str, workdir: Path, errors: list[Diagnostic],
                      name: str) -> None:
        """Refuse a bundle that read a file outside the build directory (esbuild's metafile),
        and say so when an import did not resolve because the sandbox hides its file."""
        for text, line, col in errors:
            m = re.search(r'error: Could not resolve "([^"]+)"', text)
            if m and (m.group(1).startswith("/") or outside(m.group(1), workdir)):
                raise self.outside_read_error(m.group(1), name, line, col)
        try:
            inputs = json.loads((workdir / "meta.json").read_text()).get("inputs", {})
        except (OSError, ValueError):
            inputs = {}
        for path in inputs:
            if outside(path, workdir):
                raise self.outside_read_error(path, name, literal_line(source, Path(path).name))

    @staticmethod
    def _tsc_cmd(tsc: Path) -> list[str]:
        if "@typescript" in tsc.parts:
            return [str(tsc)]
        return [shutil.which("node") or "/usr/bin/node", str(tsc.resolve())]

    def _typecheck(self, cell: str, name: str, workdir: Path, flags: dict[str, Any],
                   read: tuple[str, ...] = ()) -> None:
        tsc = tsc_path()
        if tsc is None:
            raise self.error("type checking needs tsc (npm typescript); install it with: "
                             f"{NODE_INSTALL_HINT}, or deploy with flags={{'typecheck': False}}", name)
        (workdir / "env.d.ts").write_text(ENV_DTS.read_text())
        cmd = [*self._tsc_cmd(tsc), "--noEmit", "--pretty", "false", "--target", "esnext", "--lib", "esnext",
               "--module", "esnext", "--moduleResolution", "bundler", "--moduleDetection", "force",
               "--types", "", "--skipLibCheck"]
        # explicit either way: TypeScript 7 is strict by default
        cmd += ["--strict", "true" if flags.get("strict", self.typed) else "false"]
        if not self.typed:
            cmd += ["--allowJs", "--checkJs"]
        if read:  # node_modules is a link to the packages' tree: keep their paths under it
            cmd += ["--preserveSymlinks"]
        proc = run_tool(cmd + [cell, "env.d.ts"], cwd=workdir, timeout=COMPILE_TIMEOUT, name="tsc",
                        sandbox_=(box := tsc_sandbox(tsc))._replace(read=(*box.read, *read)))
        if proc.returncode == 0:
            return
        errors = _tsc_diagnostics(proc.stdout + proc.stderr)
        text = "\n".join(e[0] for e in errors) or (proc.stdout + proc.stderr).strip()
        text = text.replace(f"{workdir}/", "")
        from ..dependencies.npm import package_of

        untyped = sorted({package_of(m) or m for m in re.findall(
            r"TS7016: Could not find a declaration file for module '([^']+)'", text)})
        if untyped:
            text = re.sub(r"(?m)^\s*Try `npm i --save-dev .*\n?", "", text).rstrip()
            types = " ".join(f"@types/{_types_name(m)}" for m in untyped)
            text += (f"\nhint: {', '.join(untyped)} ships no types: name its type package in the "
                     f"cell's header (// @dependencies {types}) if it exists, or deploy with "
                     "flags={'strict': False}")
        first = errors[0] if errors else ("", None, None)
        raise self.error(text, name, first[1], first[2])


def _types_name(package: str) -> str:
    """The DefinitelyTyped name of a package (``@scope/pkg`` -> ``scope__pkg``)."""
    return package[1:].replace("/", "__") if package.startswith("@") else package


class JavaScript(TypeScript):
    name = "javascript"
    extension = ".js"
    typed = False


# -- diagnostics ---------------------------------------------------------------------------

Diagnostic = tuple[str, int | None, int | None]
#: JavaScript escapes esbuild decodes in a specifier (``\u002f``, ``\u{2f}``, ``\x2f``).
_ESCAPE = re.compile(r"\\u\{?([0-9a-fA-F]{1,6})\}?|\\x([0-9a-fA-F]{2})")
#: Module specifiers in static and dynamic imports, re-exports and require().
_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*(?:\(\s*)?|\brequire\s*\(\s*)"""
                     r"""(?P<q>["'`])(?P<spec>[^"'`\n]*)(?P=q)""")


def _imports(source: str) -> list[tuple[str, int]]:
    """The module specifiers the cell imports (static and dynamic imports, re-exports,
    require()) and where each starts, not counting text inside comments or string literals."""
    code = mask(source)
    plain = mask(source, strings=False)
    found = []
    for m in _IMPORT.finditer(plain):
        if code[m.start()] != source[m.start()]:  # the keyword is inside a string
            continue
        if plain[max(0, m.start() - 32):m.start()].rstrip().endswith("."):
            continue  # a method (``loader.require("x")``), not a module import
        spec = _ESCAPE.sub(lambda e: chr(int(e.group(1) or e.group(2), 16)), m.group("spec"))
        found.append((spec, m.start("spec")))
    return found


def _esbuild_diagnostics(stderr: str) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """esbuild's text diagnostics -> (errors, warnings) as ``cell:L:C: error: ...`` blocks."""
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    for block in re.split(r"(?m)^(?=[✘▲X] \[)", stderr):
        head = re.match(r"[✘▲X] \[(ERROR|WARNING)\] (.*)", block)
        if not head:
            continue
        level, message = head.group(1).lower(), head.group(2).strip()
        loc = re.search(r"(?m)^\s*cell\.[jt]s:(\d+):(\d+):\s*$", block)
        if loc:
            line, col = int(loc.group(1)), int(loc.group(2)) + 1
            rest = block[loc.end():].strip("\n")
            text = f"cell:{line}:{col}: {level}: {message}" + (f"\n{rest.rstrip()}" if rest.strip() else "")
        else:
            line = col = None
            rest = block[head.end():].strip()
            text = f"{level}: {message}" + (f"\n{rest}" if rest else "")
        text = re.sub(r"\bcell\.[jt]s:(\d+):(\d+)", r"cell:\1:\2", text)
        (errors if level == "error" else warnings).append((text, line, col))
    return errors, warnings


def _tsc_diagnostics(output: str) -> list[Diagnostic]:
    """``cell.ts(3,9): error TS2322: ...`` (and continuation lines) -> ``cell:3:9: error TS2322: ...``."""
    found: list[Diagnostic] = []
    for line in output.splitlines():
        m = re.match(r"(\S+?)\((\d+),(\d+)\): (error|warning) (TS\d+: .*)", line)
        if m:
            file = "cell" if re.fullmatch(r"cell\.[jt]s", m.group(1)) else m.group(1)
            lno, col = int(m.group(2)), int(m.group(3))
            found.append((f"{file}:{lno}:{col}: {m.group(4)} {m.group(5)}",
                          lno if file == "cell" else None, col if file == "cell" else None))
        elif line.strip() and found:
            text, lno, col = found[-1]
            found[-1] = (f"{text}\n{line}", lno, col)
        elif line.strip():
            found.append((line, None, None))
    return found
