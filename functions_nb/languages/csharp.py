"""C# with Mono's ``mcs`` (C# <= 7.2, Mono 6.8) -> a .NET library run by the "mono" runtime.

The entry point is the static method whose name is the deployed name, written either bare
(``public static int add(int a, int b) { return a + b; }``) or inside your own class or
namespace. ``using`` directives at the top of the cell keep working; the implicit global usings
of a current .NET project (System, System.Collections.Generic, System.IO, System.Linq,
System.Threading, System.Threading.Tasks; not System.Net.Http, which Mono here lacks) are added
before the cell's first line when the cell lacks them. A parameter with a default value
(``string name = "you"``) may be omitted or given by name: the host passes the compiled
default. Bare members (methods, fields) are wrapped in ``static partial class __FnbCell``
*in place*: the wrapper text is inserted on the first and last line of each run of bare
members, so every line of the compiled file is the cell's own line (no ``#line``: Mono's
debug symbols shift lines after a ``#line`` directive) and only columns on an inserted line
need correcting. Types declared in the cell stay top-level (extension methods work). Compiled
with ``mcs -target:library -optimize -debug``; the artifact code is the .dll with its .mdb
debug symbols and the lines of ``throw`` statements appended (see ``TRAILER_MAGIC``; the dll
loads as is), so exceptions name cell lines (Mono reports a ``throw`` at the next statement's
line; the host corrects that with the list).

Calling convention (see ``runtimes/mono.py``): int/short/sbyte -> i32 (bounded), byte/ushort
-> u32 (bounded), uint -> u32, long -> i64, ulong -> u64, float -> f32, double -> f64, bool,
string -> str, byte[] -> bytes, double[]/float[]/int[]/long[] -> numpy arrays (lists accepted),
anything else (``List<T>``, ``Dictionary<string, T>``, tuples, your own classes) -> JSON,
converted by reflection in the host. ``void`` returns None. A ``params T[] xs`` parameter
takes the rest of the positional arguments, each checked as a ``T`` (by name: a list), and
crosses as the array would (as Go's variadics do).

Flags: ``optimize`` (default True: ``-optimize``), ``unsafe`` (``-unsafe``: pointer code).
References: mscorlib, System, System.Core (LINQ), System.Numerics (BigInteger, Complex).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

from ..models import Param, Signature
from .base import BuildSandbox, Language, Toolchain, line_of, run_tool, split_top_level

#: Bump when the wrapper, the artifact layout or how a signature crosses changes (part of the
#: code hash).
GLUE = "3"  # 3: `params T[]` is variadic (stored versions of such cells re-deploy)
#: A current .NET project's implicit global usings that Mono provides (no System.Net.Http).
IMPLICIT_USINGS = ("System", "System.Collections.Generic", "System.IO", "System.Linq",
                   "System.Threading", "System.Threading.Tasks")
MCS = "mcs"
MONO = "mono"
WRAPPER = "__FnbCell"
_OPEN = f"public static partial class {WRAPPER} {{ "
_CLOSE = " }"
#: The artifact is the .dll with an overlay: [mdb][u32 throw line]*[u32 count][u32 mdb size][magic]
TRAILER_MAGIC = b"FNBCS001"

_I32 = (-(2**31), 2**31 - 1)
#: C# type (aliases and System.* names) -> (kind, bounds)
_TYPES: dict[str, tuple[str, tuple[int, int] | None]] = {
    "int": ("i32", None), "Int32": ("i32", None),
    "short": ("i32", (-(2**15), 2**15 - 1)), "Int16": ("i32", (-(2**15), 2**15 - 1)),
    "sbyte": ("i32", (-(2**7), 2**7 - 1)), "SByte": ("i32", (-(2**7), 2**7 - 1)),
    "byte": ("u32", (0, 255)), "Byte": ("u32", (0, 255)),
    "ushort": ("u32", (0, 2**16 - 1)), "UInt16": ("u32", (0, 2**16 - 1)),
    "uint": ("u32", None), "UInt32": ("u32", None),
    "long": ("i64", None), "Int64": ("i64", None),
    "ulong": ("u64", None), "UInt64": ("u64", None),
    "float": ("f32", None), "Single": ("f32", None),
    "double": ("f64", None), "Double": ("f64", None),
    "bool": ("bool", None), "Boolean": ("bool", None),
    "string": ("str", None), "String": ("str", None),
    "byte[]": ("bytes", None), "Byte[]": ("bytes", None),
    "double[]": ("f64[]", None), "Double[]": ("f64[]", None),
    "float[]": ("f32[]", None), "Single[]": ("f32[]", None),
    "int[]": ("i32[]", None), "Int32[]": ("i32[]", None),
    "long[]": ("i64[]", None), "Int64[]": ("i64[]", None),
}
_MODIFIERS = ("public", "private", "protected", "internal", "static", "unsafe", "extern", "new",
              "virtual", "override", "sealed", "abstract", "partial", "readonly")
_NOT_TYPES = {"return", "else", "new", "await", "throw", "case", "goto", "yield", "in", "is", "as",
              "out", "ref", "typeof", "sizeof", "nameof", "default", "using", "lock", "if", "while",
              "for", "foreach", "switch", "catch", "when", "var", "checked", "unchecked"}
_TYPE_RE = (r"(?:\((?:[^()]|\([^()]*\))*\)"  # tuple type
            r"|[A-Za-z_][\w.]*(?:\s*<(?:[^<>]|<(?:[^<>]|<[^<>]*>)*>)*>)?)"  # name, generic args
            r"(?:\s*\?)?(?:\s*\[[\s,]*\])*")  # nullable, arrays
_DECL_KEYWORDS = re.compile(r"\b(class|struct|interface|enum|namespace|delegate)\b")
_DIAG = re.compile(r"^(?P<file>[^\s(]*cell\.cs)\((?P<line>\d+),(?P<col>\d+)\):\s*(?P<rest>.*)$")


def classify(ty: str) -> tuple[str, tuple[int, int] | None]:
    """Host kind of a C# type."""
    t = re.sub(r"\s+", "", ty)
    t = re.sub(r"^(global::)?System\.", "", t)
    if t in _TYPES:
        return _TYPES[t]
    return "json", None


# -- source scanning -------------------------------------------------------------------

def mask(src: str) -> str:
    """The source with comments, string and char literals blanked (newlines kept), so braces
    and names can be found with plain scanning; offsets are unchanged."""
    out = list(src)
    n = len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    def skip_string(i: int) -> int:
        """``i`` at the prefix ($, @) or the quote; returns the index after the literal."""
        prefix = ""
        while src[i] in "$@":
            prefix += src[i]
            i += 1
        verbatim, interp = "@" in prefix, "$" in prefix
        i += 1  # opening quote
        while i < n:
            c = src[i]
            if c == "\\" and not verbatim:
                i += 2
            elif c == '"':
                if verbatim and i + 1 < n and src[i + 1] == '"':
                    i += 2
                else:
                    return i + 1
            elif interp and c == "{":
                if i + 1 < n and src[i + 1] == "{":
                    i += 2
                else:
                    i = skip_code(i + 1, "}")
            elif c == "\n" and not verbatim:
                return i  # unterminated: let the compiler report it
            else:
                i += 1
        return n

    def skip_code(i: int, close: str) -> int:
        depth = 0
        while i < n:
            c = src[i]
            if c == '"' or (c in "$@" and src[i:i + 3].lstrip("$@").startswith('"')):
                i = skip_string(i)
                continue
            if c == "'":
                i = skip_char(i)
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    return i + 1
                depth -= 1
            i += 1
        return n

    def skip_char(i: int) -> int:
        j = i + 1
        while j < n and src[j] != "'" and src[j] != "\n":
            j += 2 if src[j] == "\\" else 1
        return j + 1

    i = 0
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == '"' or (c in "$@" and src[i:i + 3].lstrip("$@").startswith('"')):
            j = skip_string(i)
            blank(i, j)
            i = j
        elif c == "'":
            j = skip_char(i)
            blank(i, j)
            i = j
        else:
            i += 1
    return "".join(out)


def top_level_items(masked: str) -> list[tuple[int, int, str]]:
    """Depth-0 items of the cell: (start, end, what) with what in using / type / member /
    directive; start is the first character of the item, end is just past it."""
    items: list[tuple[int, int, str]] = []
    n = len(masked)
    i = 0
    while i < n:
        while i < n and masked[i].isspace():
            i += 1
        if i >= n:
            break
        if masked[i] == "#":  # preprocessor line
            j = masked.find("\n", i)
            j = n if j < 0 else j
            items.append((i, j, "directive"))
            i = j
            continue
        start, depth, j = i, 0, i
        header_end = None
        while j < n:
            c = masked[j]
            if c in "({[":
                if c == "{" and depth == 0 and header_end is None:
                    header_end = j
                depth += 1
            elif c in ")}]":
                depth -= 1
                if c == "}" and depth == 0:
                    header = masked[start:header_end]
                    if "=" not in header:  # a body ends the item; `= {...};` / `{ get; } = x;` go on
                        k = j + 1
                        while k < n and masked[k] in " \t":
                            k += 1
                        j = k + 1 if k < n and masked[k] == ";" else j + 1
                        break
            elif c == ";" and depth == 0:
                j += 1
                break
            j += 1
        header = masked[start:header_end if header_end is not None else j]
        before_paren = header.split("(")[0]
        if re.match(r"(using|extern\s+alias)\b", header):
            what = "using"
        elif _DECL_KEYWORDS.search(before_paren):
            what = "type"
        else:
            what = "member"
        items.append((start, min(j, n), what))
        i = j
    return items


#: What a C# cell can use (no NuGet registry is reachable here).
NO_PACKAGES = ("C# functions use the .NET base class library only (System.*, Microsoft.*, "
               "Mono.*); no NuGet registry is reachable here, so packages cannot be added")
_BCL_ROOTS = frozenset({"System", "Microsoft", "Mono"})


def packages(source: str) -> list[tuple[str, int]]:
    """Namespaces of ``using`` directives that neither the base class library nor the cell
    itself (its ``namespace`` declarations) provides, with their cell lines."""
    masked = mask(source)
    own = {m.group(1).split(".")[0] for m in re.finditer(r"\bnamespace\s+([\w.]+)", masked)}
    found = []
    for start, end, what in top_level_items(masked):
        m = re.fullmatch(r"(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?([\w.]+)"
                         r"(?:<[^;]*>)?\s*;", masked[start:end].strip())
        if what == "using" and m and m.group(1).split(".")[0] not in _BCL_ROOTS | own:
            found.append((m.group(1), masked.count("\n", 0, start) + 1))
    return found


def implicit_usings(source: str) -> str:
    """The ``using`` directives of a current .NET project's implicit global usings that the
    cell lacks, on one line to put before its first line that is not a preprocessor directive
    (so cell lines stay as written).
    System.Net.Http is left out: Mono here has no System.Net.Http assembly. None before an
    ``extern alias`` (which must come first)."""
    items = top_level_items(mask(source))
    heads = [re.sub(r"\s+", " ", source[a:b]).strip() for a, b, what in items if what == "using"]
    if any(h.startswith("extern") for h in heads):
        return ""
    have = {m.group(1) for h in heads if (m := re.fullmatch(r"using ([\w.]+) ?;", h))}
    return "".join(f"using {ns}; " for ns in IMPLICIT_USINGS if ns not in have)


def wrap(source: str) -> tuple[str, dict[int, tuple[int, int]]]:
    """Wrap runs of bare members in ``__FnbCell`` in place. Returns the new source and, per
    line with inserted text, (0-based column of the insertion, inserted length)."""
    masked = mask(source)
    runs: list[tuple[int, int]] = []  # runs of consecutive bare members
    current: list[int] | None = None
    for start, end, what in top_level_items(masked):
        if what == "member":
            if current is None:
                current = [start, end]
            else:
                current[1] = end
        elif what != "directive" and current is not None:
            runs.append((current[0], current[1]))
            current = None
    if current is not None:
        runs.append((current[0], current[1]))
    if not runs:
        return source, {}
    out, shifts, pos = [], {}, 0
    for start, end in runs:
        out.append(source[pos:start])
        out.append(_OPEN)
        line = line_of(source, start)
        col = start - (source.rfind("\n", 0, start) + 1)
        shifts[line] = (col, len(_OPEN))
        out.append(source[start:end])
        out.append(_CLOSE)
        pos = end
    out.append(source[pos:])
    return "".join(out), shifts


def enclosing_types(masked: str, offset: int) -> list[str] | None:
    """Names of the namespaces/classes around ``offset`` ("N", "C", ...); None when it is
    inside something else (a method body: a local function or a call)."""
    stack: list[str] = []
    last = 0
    for k in range(offset):
        c = masked[k]
        if c == "{":
            stack.append(masked[last:k])
            last = k + 1
        elif c == "}":
            if stack:
                stack.pop()
            last = k + 1
        elif c == ";":
            last = k + 1
    names = []
    for header in stack:
        head = header.split("(")[0]
        m = re.search(r"\bnamespace\s+([\w.]+)", head)
        if m:
            names.append(m.group(1))
            continue
        m = re.search(r"\b(class|struct)\s+(\w+)\s*(<)?", head)
        if m is None:
            return None
        if m.group(3):
            names.append(f"{m.group(2)}<>")
        else:
            names.append(f"{m.group(2)}")
    return names


class CSharp(Language):
    name = "csharp"
    runtime = "mono"
    extension = ".cs"
    install_hint = "apt-get install -y mono-mcs mono-runtime bubblewrap"
    #: ``optimize`` (mcs -optimize, default on), ``unsafe`` (allow unsafe code).
    accepted_flags = {"optimize": (True, False), "unsafe": (True, False)}

    def build_sandbox(self) -> BuildSandbox:
        """mono and its install (the compiler, the reference assemblies), read-only; mcs runs
        as ``mono mcs.exe`` (its /usr/bin script needs a shell)."""
        mono = os.path.realpath(shutil.which(MONO) or "/usr/bin/mono")
        lib = Path(mono).parent.parent / "lib"
        natives = [str(p) for p in lib.glob("libmono-native.so*")]
        return BuildSandbox(tools=(mono, *natives), read=(str(lib / "mono"), "/etc/mono"),
                            proc=True)

    def _mcs(self) -> list[str]:
        mono = os.path.realpath(shutil.which(MONO) or "/usr/bin/mono")
        return [mono, str(Path(mono).parent.parent / "lib" / "mono" / "4.5" / "mcs.exe")]

    def _discover(self) -> Toolchain:
        mcs, mono = shutil.which(MCS), shutil.which(MONO)
        if not mcs or not mono:
            missing = " and ".join(t for t, p in ((MCS, mcs), (MONO, mono)) if not p)
            return Toolchain(self.name, False, install=self.install_hint, detail=f"{missing} not found")
        out = run_tool([*self._mcs(), "--version"], timeout=60,
                       sandbox_=self.build_sandbox()).stdout.strip()
        version = f"mcs {out.split()[-1]}" if out else "mcs"
        from ..runtimes import mono as mono_runtime

        return Toolchain(self.name, True, f"{version}, {mono_runtime.mono_version()}", mcs,
                         self.install_hint,
                         "isolation: " + mono_runtime.runtime().isolation().summary())

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """As the base class, plus :data:`GLUE` (the wrapper and artifact layout)."""
        return super().code_hash(source, name, {**flags, "csharp_glue": GLUE}, line_offset)

    # signature -----------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        self.refuse_packages(packages(source), name, NO_PACKAGES)
        masked = mask(source)
        mods = "|".join(_MODIFIERS)
        pattern = rf"(?P<mods>(?:\b(?:{mods})\s+)*)(?P<ret>{_TYPE_RE})\s+{re.escape(name)}\s*(?=\()"
        for m in re.finditer(pattern, masked):
            ret = re.sub(r"\s+", " ", m.group("ret")).strip()
            if ret in _NOT_TYPES or ret in _MODIFIERS:
                continue
            before = re.sub(r"(?m)^[ \t]*#.*$", "", masked[:m.start()]).rstrip()  # directives
            if before and before[-1] not in ";{}]":
                continue
            types = enclosing_types(masked, m.start())
            if types is None:
                continue
            line = line_of(source, m.start())
            if "static" not in m.group("mods").split():
                raise self.error(
                    f"cell line {line}: `{name}` must be static, e.g.\n\n"
                    f"    public static {ret} {name}(...) {{ ... }}", name, line)
            return self._signature(source, masked, m, name, ret, types, line)
        raise self.error(
            f"no static method named `{name}` in the cell: the entry point is the static method "
            f"whose name is the deployed name, e.g.\n\n"
            f"    public static int {name}(int a, int b) {{ return a + b; }}", name)

    def _signature(self, source: str, masked: str, m: re.Match[str], name: str, ret: str,
                   types: list[str], line: int) -> Signature:
        if any(t.endswith("<>") for t in types):
            raise self.error(f"cell line {line}: `{name}` is inside a generic class; put the entry "
                             "point in a non-generic class", name, line)
        depth, j = 0, m.end()
        for j in range(m.end(), len(masked)):
            if masked[j] == "(":
                depth += 1
            elif masked[j] == ")":
                depth -= 1
                if depth == 0:
                    break
        params_text = source[masked.index("(", m.end()) + 1:j]
        params = []
        for i, part in enumerate(split_top_level(mask(params_text))):
            params.append(self._param(part, i, name, line))
        result_type = ret
        result = "unit" if ret == "void" else classify(ret)[0]
        return Signature(name, tuple(params), result, result_type)

    def _param(self, part: str, index: int, name: str, line: int) -> Param:
        text = re.sub(r"^\s*(\[[^\]]*\]\s*)+", "", part).split("=")[0].strip()
        words = text.split()
        variadic = False
        while words and words[0] in ("this", "params"):
            variadic = variadic or words[0] == "params"
            words.pop(0)
        if words and words[0] in ("ref", "out", "in"):
            raise self.error(f"cell line {line}: parameter `{text}` of `{name}`: ref/out/in "
                             "parameters are not supported (the caller cannot observe them); return "
                             "the value instead", name, line)
        m = re.fullmatch(rf"(?P<type>{_TYPE_RE})\s+(?P<name>@?\w+)", " ".join(words))
        if m is None:
            raise self.error(f"cell line {line}: cannot read parameter {part.strip()!r} of `{name}`",
                             name, line)
        ptype = re.sub(r"\s+", " ", m.group("type")).strip()
        kind, bounds = classify(ptype)
        pname = m.group("name").lstrip("@") or f"arg{index}"
        if variadic:  # `params T[] xs`: the rest of the arguments, each checked as a T
            if not ptype.endswith("[]"):
                raise self.error(f"cell line {line}: parameter `{text}` of `{name}`: a params "
                                 "parameter must be an array (`params int[] xs`)", name, line)
            element, bounds = classify(ptype[:-2])
            return Param(pname, kind, f"params {ptype}", bounds, variadic=True, element=element)
        has_default = "=" in re.sub(r"^\s*(\[[^\]]*\]\s*)+", "", part)
        return Param(pname, kind, ptype, bounds, has_default)

    # build -------------------------------------------------------------------------
    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        wrapped, shifts = wrap(source)
        prefix = implicit_usings(source)
        lines = wrapped.split("\n")
        at = next((i for i, text in enumerate(lines) if not text.lstrip().startswith("#")), 0)
        lines[at] = prefix + lines[at]  # after leading directives (#define must come first)
        (workdir / "cell.cs").write_text("\n".join(lines))
        cmd = [*self._mcs(), "-target:library", "-debug", "-nologo", "-out:cell.dll",
               "-r:System.Numerics.dll"]
        if flags.get("optimize", True):
            cmd.append("-optimize")
        if flags.get("unsafe"):
            cmd.append("-unsafe")
        cmd.append("cell.cs")
        proc = run_tool(cmd, cwd=workdir, timeout=120, sandbox_=self.build_sandbox(),
                        name=self.name)
        errors, warnings = _diagnostics(proc.stdout + "\n" + proc.stderr, shifts,
                                        (at + 1, len(prefix)))
        dll = workdir / "cell.dll"
        if proc.returncode != 0 or not dll.exists():
            first = errors[0] if errors else None
            text = "\n".join(e[0] for e in errors) or (proc.stdout + proc.stderr).strip()
            raise self.error(text, signature.name, first[1] if first else None,
                             first[2] if first else None)
        mdb = workdir / "cell.dll.mdb"
        symbols = mdb.read_bytes() if mdb.exists() else b""
        throws = sorted({line_of(source, m.start()) for m in re.finditer(r"\bthrow\b", mask(source))})
        trailer = struct.pack(f"<{len(throws)}III", *throws, len(throws), len(symbols)) + TRAILER_MAGIC
        return dll.read_bytes() + symbols + trailer, "\n".join(warnings)


def _diagnostics(output: str, shifts: dict[int, tuple[int, int]],
                 prefix: tuple[int, int] = (1, 0)
                 ) -> tuple[list[tuple[str, int | None, int | None]], list[str]]:
    """mcs output -> (errors as (text, line, column), warnings), as `cell(LINE,COL): ...`;
    ``prefix`` is (line, length) of the implicit usings put at the start of that line."""
    errors: list[tuple[str, int | None, int | None]] = []
    warnings: list[str] = []
    for raw in output.splitlines():
        raw = raw.rstrip()
        if not raw or raw.startswith("Compilation "):
            continue
        text = raw.replace(f"{WRAPPER}.", "").replace(f"`{WRAPPER}'", "the cell")
        m = _DIAG.match(text)
        line = col = None
        if m:
            line, col = int(m.group("line")), int(m.group("col"))
            if line == prefix[0] and prefix[1]:
                col = max(1, col - prefix[1])
            insert = shifts.get(line)
            if insert and col > insert[0] + insert[1]:
                col -= insert[1]
            elif insert and col > insert[0]:
                col = insert[0] + 1
            text = f"cell({line},{col}): {m.group('rest')}"
        if ": error " in text or text.startswith("error "):
            errors.append((text, line, col))
        elif ": warning " in text or text.startswith("warning "):
            warnings.append(text)
        elif errors and "(Location of the symbol" in text:
            errors.append((text, None, None))
    return errors, warnings
