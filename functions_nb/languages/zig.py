"""Zig 0.17 (PyPI ``ziglang``, the default) or 0.16 -> wasm32-freestanding.

Deploy flag ``toolchain``: ``"zig-0.17"`` (the default, the environment's ``ziglang``) or
``"zig-0.16"`` (PyPI ``ziglang==0.16.0``, fetched on first use into the cache's
``toolchains/`` folder, never into the environment). Flag ``optimize``: the build mode.

The cell stays at the top of ``cell.zig`` (so diagnostics carry cell line numbers); the glue
in ``glue/zig_glue.zig`` is appended after it and exports a wrapper named after the function,
derived at compile time from the function's type. Calling convention: integers up to 64
bits, floats and bool are wasm values; ``[]const u8`` is a UTF-8 string passed as (pointer,
length); every other type (slices of numbers, structs, ...) is JSON parsed with ``std.json``
into the declared type. A first parameter ``std.mem.Allocator`` receives a per-call arena
(freed after the host has read the result). ``E!T`` returns raise the error's name;
``std.log.*`` goes to the console with its level; panics report their message. Built
``ReleaseSafe`` so overflow and bounds checks stay on. Hash maps (``std.StringHashMap``,
``std.AutoHashMap``, ...) in results are JSON objects (integer keys as their decimal text).
``comptime`` parameters on the entry function are refused at deploy; code using Zig 0.16's
array-repeat ``**`` gets an error under 0.17 saying Zig 0.17 removed it and naming
``--toolchain zig-0.16`` (or use ``@splat``). One glue file serves both versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import cache_dir
from ..models import Param, Signature
from . import fetched
from .base import (
    BuildSandbox,
    Language,
    Toolchain,
    find_function,
    first_version_line,
    line_of,
    run_tool,
    split_top_level,
)

GLUE = (Path(__file__).parent / "glue" / "zig_glue.zig").read_text()
GLUE_HASH = hashlib.sha256(GLUE.encode()).hexdigest()[:16]
#: What Zig 0.17 says about ``a ** n``, the array-repeat operator it removed.
_REPEAT_ERROR = "binary operator '*' has whitespace on one side, but not the other"
#: The ``toolchain`` flag's value meaning the environment's ``ziglang`` (0.17).
DEFAULT_TOOLCHAIN = "zig-0.17"
#: Other ``toolchain`` values -> the ``ziglang`` version fetched from PyPI for them.
FETCHED = {"zig-0.16": "0.16.0"}
#: Zig's build modes (flag ``optimize``).
OPTIMIZE = ("ReleaseSafe", "ReleaseSmall", "ReleaseFast", "Debug")


def zig_dir() -> Path | None:
    """The ``ziglang`` package's folder: the static ``zig`` binary and its ``lib``."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def fetched_folder(version: str) -> Path:
    """Where ``ziglang==version`` is (or will be) fetched: its ``ziglang`` package folder."""
    return fetched.fetched_path(f"ziglang-{version}") / "ziglang"


def fetch_zig(version: str) -> Path:
    """``ziglang==version``'s folder, fetched from PyPI on first use (idempotent, safe
    against concurrent fetches); its ``zig version`` must print ``version``."""

    def check(tmp: Path) -> str | None:
        proc = run_tool([str(tmp / "ziglang" / "zig"), "version"], timeout=120,
                        sandbox_=_sandbox(tmp / "ziglang", None))
        got = first_version_line(proc.stdout)
        return None if got == version else f"`zig version` printed {got or proc.stderr!r}"

    fetched.fetch(f"ziglang=={version}", f"ziglang-{version}", what=f"Zig {version}", check=check)
    return fetched_folder(version)


def _sandbox(folder: Path | None, cache: Path | None) -> BuildSandbox:
    """A build sandbox for the zig binary in ``folder`` (with its ``lib``, read-only) and
    Zig's global cache ``cache`` (writable)."""
    zig = str(folder / "zig") if folder else "zig"
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    return BuildSandbox(tools=(zig,), read=(str(folder),) if folder else (),
                        write=(str(cache),) if cache else (), proc=zig)


_INT = re.compile(r"([iu])(\d+)")


def classify(ty: str) -> tuple[str, tuple[int, int] | None]:
    t = ty.replace(" ", "")
    if t in ("std.mem.Allocator", "mem.Allocator", "Allocator"):
        return "allocator", None
    if t in ("[]constu8", "[]u8"):
        return "str", None
    m = re.fullmatch(r"\[\](?:const)?(f64|f32|i32|i64)", t)
    if m:
        return f"{m.group(1)}[]", None
    if t in ("bool", "f32", "f64"):
        return t, None
    if t in ("usize", "isize"):
        return ("u32" if t == "usize" else "i32"), None
    m = _INT.fullmatch(t)
    if m:
        signed, bits = m.group(1) == "i", int(m.group(2))
        if bits <= 64:
            base = ("i" if signed else "u") + ("32" if bits <= 32 else "64")
            if bits in (32, 64):
                return base, None
            lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            return base, (lo, hi)
    return "json", None


#: What a Zig cell can import (there is no Zig package registry here).
NO_PACKAGES = ("Zig functions use the standard library only (@import(\"std\")); no Zig package "
               "registry is reachable here, and a cell is one file")
_IMPORT = re.compile(r'@import\(\s*"([^"]*)"\s*\)')


def packages(source: str) -> list[tuple[str, int]]:
    """``@import`` targets other than ``std``/``builtin``/``root``, with their cell lines
    (comments skipped; Zig has only ``//`` comments)."""
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("//", 1)[0]
        found += [(m.group(1), number) for m in _IMPORT.finditer(code)
                  if m.group(1) not in ("std", "builtin", "root")]
    return found


class Zig(Language):
    name = "zig"
    runtime = "wasm"
    extension = ".zig"
    install_hint = "pip install ziglang"
    accepted_flags = {"toolchain": (DEFAULT_TOOLCHAIN, *FETCHED), "optimize": OPTIMIZE}

    def build_sandbox(self, choice: str = DEFAULT_TOOLCHAIN) -> BuildSandbox:
        """The chosen zig binary and its ``lib`` (read-only), that version's global cache
        (writable)."""
        return _sandbox(*self._folders(choice))

    @staticmethod
    def _folders(choice: str) -> tuple[Path | None, Path]:
        """(the folder of the zig that ``choice`` means, its own global cache)."""
        if choice == DEFAULT_TOOLCHAIN:
            return zig_dir(), cache_dir() / "zig-global"
        version = FETCHED[choice]
        return fetched_folder(version), cache_dir() / f"zig-global-{version}"

    def toolchain_for(self, flags: Mapping[str, Any]) -> Toolchain:
        """The environment's Zig, or for ``toolchain: "zig-0.16"`` the pinned 0.16.0 (its
        version is known before it is fetched: the fetch happens at the first build)."""
        choice = flags.get("toolchain", DEFAULT_TOOLCHAIN)
        if choice == DEFAULT_TOOLCHAIN:
            return self.toolchain()
        if choice not in FETCHED:
            self.check_flags(flags)  # names the accepted values
        version = FETCHED[choice]
        folder = fetched_folder(version)
        installed = folder.is_dir()
        return Toolchain(self.name, True, version, str(folder / "zig"),
                         f"fetched on first use: pip install ziglang=={version}",
                         "" if installed else "available on first use")

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """As the base class, plus the glue's text (a glue change rebuilds cached builds)."""
        return super().code_hash(source, name, {**flags, "zig_glue": GLUE_HASH}, line_offset)

    def toolchain_choices(self) -> list[dict[str, Any]]:
        rows = []
        for choice, version in FETCHED.items():
            folder = fetched_folder(version)
            installed = folder.is_dir()
            rows.append({"flag": "toolchain", "value": choice, "version": version,
                         "installed": installed, "path": str(folder / "zig") if installed else "",
                         "detail": "installed" if installed else
                         f"available on first use (PyPI ziglang=={version}, about 100 MB)"})
        return rows

    def _discover(self) -> Toolchain:
        folder = zig_dir()
        if folder is None or not (folder / "zig").exists():
            return Toolchain(self.name, False, install=self.install_hint, detail="not found")
        zig = str(folder / "zig")
        proc = run_tool([zig, "version"], timeout=60, sandbox_=self.build_sandbox())
        if proc.returncode != 0:
            return Toolchain(self.name, False, install=self.install_hint,
                             detail=(proc.stderr or proc.stdout).strip()[-300:] or "not found")
        return Toolchain(self.name, True, first_version_line(proc.stdout), zig, self.install_hint)

    def parse_signature(self, source: str, name: str) -> Signature:
        self.refuse_packages(packages(source), name, NO_PACKAGES)
        found = find_function(source, rf"(?m)\bfn\s+{re.escape(name)}\s*(?=\()")
        if found is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    fn {name}(a: i32, b: i32) i32 {{\n"
                f"        return a + b;\n    }}", name)
        match, params_text, rest = found
        line = line_of(source, match.start())
        for reserved in ("std_options", "panic"):
            if re.search(rf"(?m)^\s*(pub\s+)?(const|var)\s+{reserved}\b", source):
                raise self.error(f"the cell declares `{reserved}`, which the functions-nb glue "
                                 "defines (logging and panics go to the host console)", name)
        params, allocator = [], False
        for part in split_top_level(params_text):
            pname, sep, ty = part.partition(":")
            if not sep:
                raise self.error(f"cannot read parameter {part!r} of `{name}`", name, line)
            if re.match(r"\s*comptime\s", pname):
                shown = " ".join(part.split())
                raise self.error(f"cell line {line}: parameter `{shown}` of `{name}` is `comptime`: "
                                 "the host passes values at run time, so the entry function cannot "
                                 "take comptime parameters; make it a plain parameter (or call a "
                                 "comptime helper from the entry function)", name, line)
            pname = pname.strip().removeprefix("noalias ").strip()
            kind, bounds = classify(ty)
            if kind == "allocator":
                allocator = True
                continue
            if ty.strip() == "anytype":
                raise self.error(f"parameter `{pname}: anytype` of `{name}`: the entry function "
                                 "needs concrete parameter types", name, line)
            params.append(Param(pname, kind, ty.strip(), bounds))
        ret = re.sub(r"callconv\([^)]*\)", "", rest).strip()
        fallible = "!" in ret
        inner = ret.split("!", 1)[1].strip() if fallible else ret
        result = "unit" if inner in ("void", "noreturn", "") else classify(inner)[0]
        return Signature(name, tuple(params), result, ret or "void", fallible, allocator)

    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        name = signature.name
        # An `export fn` would clash with the glue's export; blank out the keyword in place so
        # columns and lines stay the same.
        source = re.sub(rf"\bexport(\s+fn\s+{re.escape(name)}\b)",
                        lambda m: " " * len("export") + m.group(1), source)
        (workdir / "cell.zig").write_text(
            f"{source}\n\n{GLUE}\ncomptime {{\n    __fnb_export({name}, \"{name}\");\n}}\n")
        opt = flags.get("optimize", "ReleaseSafe")
        choice = flags.get("toolchain", DEFAULT_TOOLCHAIN)
        zig = (self.require_toolchain().path if choice == DEFAULT_TOOLCHAIN
               else str(fetch_zig(FETCHED[choice]) / "zig"))
        cmd = [zig, "build-exe", "-target", "wasm32-freestanding",
               "-fno-entry", "-rdynamic",
               "-O", opt, "-fstrip", "--color", "off", "cell.zig", "-femit-bin=out.wasm",
               "--cache-dir", str(workdir / "zig-cache"),
               "--global-cache-dir", str(self._folders(choice)[1])]
        proc = run_tool(cmd, cwd=workdir, sandbox_=self.build_sandbox(choice), name=self.name)
        out = proc.stderr
        if proc.returncode != 0 or not (workdir / "out.wasm").exists():
            text, line, col = self._errors(out, source.count("\n") + 1,
                                           repeat_hint=choice == DEFAULT_TOOLCHAIN)
            raise self.error(text, name, line, col)
        return (workdir / "out.wasm").read_bytes(), ""

    @staticmethod
    def _errors(stderr: str, cell_lines: int, repeat_hint: bool = True
                ) -> tuple[str, int | None, int | None]:
        """Keep error blocks, rename ``cell.zig`` to ``cell``, drop reference traces;
        errors past the cell's last line are in the glue and say so. ``repeat_hint``: the
        build was Zig 0.17's, so the error 0.16's ``**`` causes there is explained."""
        blocks: list[str] = []
        first: tuple[int, int] | None = None
        current: list[str] = []
        skipping = False
        for raw in stderr.splitlines():
            m = re.match(r"^(?:.*/)?cell\.zig:(\d+):(\d+): (error|note): (.*)", raw)
            if m:
                skipping = False
                lineno, col, level = int(m.group(1)), int(m.group(2)), m.group(3)
                in_glue = lineno > cell_lines
                if level == "error":
                    if current:
                        blocks.append("\n".join(current))
                    current = []
                    if first is None and not in_glue:
                        first = (lineno, col)
                where = "glue" if in_glue else f"cell:{lineno}:{col}"
                current.append(f"{where}: {level}: {m.group(4)}")
                continue
            if raw.startswith("referenced by:") or raw.startswith("error: the following command"):
                skipping = True
                continue
            if skipping or not current:
                continue
            current.append(raw)
        if current:
            blocks.append("\n".join(current))
        text = "\n\n".join(blocks) or stderr.strip()
        text = re.sub(r"(?:/[^\s:'\"]+/)(cell\.zig|zig_glue\.zig)", r"\1", text)  # no machine paths
        text = re.sub(r"(?:/[^\s:'\"]+/)(lib/std/\S+\.zig)", r"<zig>/\1", text)
        if repeat_hint and _REPEAT_ERROR in text:
            text += ("\n\nZig 0.17 removed the array-repeat operator `**` (code written for Zig 0.16 "
                     "and earlier uses it). Build the cell as written with Zig 0.16: deploy with "
                     "`--toolchain zig-0.16` (`%%function zig NAME --toolchain zig-0.16`, or "
                     "flags={\"toolchain\": \"zig-0.16\"}); or write `@splat` with the array type, "
                     "e.g. `const seen: [26]bool = @splat(false);` for `[_]bool{false} ** 26`")
        if first is None and blocks:
            text += ("\n\n(the error is in the generated glue: the entry function's signature "
                     "uses a type that cannot cross the host boundary)")
        return text, first[0] if first else None, first[1] if first else None
