"""Rust -> wasm32-unknown-unknown with a current stable rustc (Debian bookworm-security's
``rustc-web`` 1.96, unpacked into a private prefix by ``scripts/install-rust.sh``, which also
builds the wasm32 standard library; ``make setup`` runs it). Edition 2024 by default; a deploy
flag chooses another (``flags={"edition": "2021"}``).

The cell is written verbatim to ``cell.rs`` and pulled into a generated crate with
``include!``, so compiler diagnostics name cell lines. A prelude (compiled before the cell)
routes ``println!``/``eprintln!``/``dbg!`` to the host console, reports panics and failed
allocations to the host; the glue exports a wrapper named after the function.

Calling convention: integers, floats and bool are wasm parameters and results;
``&str``/``String`` and ``&[u8]``/``Vec<u8>`` are passed as (pointer, length) into guest
memory allocated with ``__fnb_alloc``; every other type is JSON through serde_json
(Debian's ``librust-serde-json-dev``), e.g. ``Vec<f64>``, ``HashMap<String, i64>``, or your
own ``#[derive(Serialize, Deserialize)]`` structs. Strings, bytes and JSON results come
back as one i64 packing (pointer << 32 | length), freed with ``__fnb_free`` after the host
copies them out. ``Result<T, E: Display>`` returns ``T`` or raises with ``E``'s text. JSON
numbers cross exactly (serde_json's ``float_roundtrip``); an integer beyond i64/u64 in a JSON
argument, which serde_json would read as a float, is refused naming it.

Signatures as people write them: lifetimes (``fn f<'a>(xs: &[&'a str]) -> HashSet<&'a str>``;
borrowed JSON arguments borrow from the argument's buffer, strings with escapes from a copy
that lives until the call returns); type parameters get a concrete
type chosen from their bounds (``serde_json::Value`` for ``PartialEq``/``Clone``/``Debug``,
``i64`` for ordering and arithmetic; the signature shows the chosen type); the cell's own
structs and enums that cross get serde's derives added when they lack them (on the item's
line, so cell lines stay right). Built with overflow checks on: an overflow panics, and the
message names wasm32's 32-bit ``usize``.

Crates from crates.io: the cell declares them as a cargo script does, in front matter at its
top (RFC 3503: a ``---`` fence, optionally ``---cargo``, a ``[dependencies]`` table, a closing
fence with as many dashes). ``functions_nb.dependencies.crates`` resolves them with cargo
into a Cargo.lock and fetches every ``.crate`` (outside the build sandbox); the build unpacks
them into a directory source and runs ``cargo build --frozen`` in the sandbox, the cell being
the crate's library with the same prelude and glue as any Rust cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tarfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..config import cache_dir
from ..errors import BadArguments, DependencyError
from ..models import Param, Signature
from .base import (
    BuildSandbox,
    Language,
    Toolchain,
    find_function,
    first_version_line,
    line_of,
    literal_line,
    outside,
    run_tool,
    split_top_level,
)

if TYPE_CHECKING:
    from ..dependencies import Resolved

#: Where ``scripts/install-rust.sh`` puts the compiler (``usr/bin/rustc``, its libraries in
#: ``usr/lib/<multiarch>``, the sysroot ``usr`` with the wasm32 standard library).
RUST_HOME = Path(os.environ.get("FUNCTIONS_NB_RUST_HOME", "/opt/functions-nb/rust"))
RUSTC = os.environ.get("FUNCTIONS_NB_RUSTC", str(RUST_HOME / "usr" / "bin" / "rustc"))
CARGO = os.environ.get("FUNCTIONS_NB_CARGO", str(RUST_HOME / "usr" / "bin" / "cargo"))
#: The wasm linker: Debian's lld 14 (rustc-web's own lld would need llvm-22's binaries).
LINKER = "/usr/bin/wasm-ld-14"
TARGET = "wasm32-unknown-unknown"
DEBIAN_REGISTRY = "/usr/share/cargo/registry"
#: Editions a deploy can choose (``flags={"edition": "2021"}``); the first is the default.
EDITIONS = ("2024", "2021", "2018", "2015")
INSTALL_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-rust.sh"

SCALARS: dict[str, tuple[str, tuple[int, int] | None]] = {
    "i8": ("i32", (-(2**7), 2**7 - 1)), "i16": ("i32", (-(2**15), 2**15 - 1)),
    "i32": ("i32", None), "isize": ("i32", None),
    "u8": ("u32", (0, 2**8 - 1)), "u16": ("u32", (0, 2**16 - 1)),
    "u32": ("u32", None), "usize": ("u32", None),
    "i64": ("i64", None), "u64": ("u64", None),
    "f32": ("f32", None), "f64": ("f64", None), "bool": ("bool", None),
}
#: Element types of slices/Vecs passed as numpy arrays (kind "f64[]" etc.).
ARRAY_ELEMENTS = ("f64", "f32", "i32", "i64")
WASM_TYPE = {"i32": "i32", "u32": "i32", "bool": "i32", "i64": "i64", "u64": "i64",
             "f32": "f32", "f64": "f64"}

GLUE_DIR = Path(__file__).parent / "glue"
PRELUDE = (GLUE_DIR / "rust_prelude.rs").read_text()

PRELUDE_JSON = (GLUE_DIR / "rust_prelude_json.rs").read_text()

DEPS_CARGO = '''[package]
name = "fnb_deps"
version = "0.1.0"
edition = "2024"
[lib]
path = "lib.rs"
[dependencies]
serde = { version = "1", features = ["derive"] }
# float_roundtrip: numbers parse to the nearest double (the default path can be one ulp off);
# raw_value: the glue writes NaN and the infinities as bare tokens (serde_json writes null)
serde_json = { version = "1", features = ["float_roundtrip", "raw_value"] }
'''
DEPS_CONFIG = f'''[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "{DEBIAN_REGISTRY}"
[net]
offline = true
'''


GLUE_HASH = hashlib.sha256((PRELUDE + PRELUDE_JSON + DEPS_CARGO).encode()).hexdigest()[:16]

#: Bounds of an entry type parameter that any JSON value (``serde_json::Value``) meets.
_ANY_JSON = {"PartialEq", "Eq", "Clone", "Debug", "Display", "ToString", "Serialize",
             "Deserialize", "DeserializeOwned", "Sized", "Send", "Sync"}
#: Bounds ``i64`` meets (ordering, hashing, arithmetic).
_NUMERIC = _ANY_JSON | {"Ord", "PartialOrd", "Copy", "Hash", "Default", "Add", "Sub", "Mul", "Div",
                        "Rem", "Neg", "AddAssign", "SubAssign", "MulAssign", "DivAssign", "Sum",
                        "Product", "From", "Into", "TryFrom", "TryInto"}
#: A lifetime in a type (``'a``, ``'static``) and the space after it.
_LIFETIME = re.compile(r"'\w+\b\s*")
#: ``#[derive(...)]`` naming serde's traits.
_SERDE = {name: re.compile(rf"#\s*\[\s*derive\s*\([^)]*\b{name}\b") for name in ("Serialize", "Deserialize")}
#: A struct or enum item: (its attributes and visibility, its name).
_ITEM = re.compile(r"(?m)^[ \t]*(?:pub(?:\s*\([^)]*\))?\s+)?(?:struct|enum)\s+([A-Za-z_]\w*)")

#: rustc errors that edition 2024 brings to code written for 2021 (keywords, unsafe
#: attributes and extern blocks, references to `static mut`, ...).
_EDITION_2024 = re.compile(r"reserved keyword|unsafe attribute used without unsafe|extern blocks "
                           r"must be unsafe|rust-2024|rust_2024|[Ee]dition 2024|2024 edition")
#: An attribute that exports a function under a symbol name.
_EXPORT_ATTR = re.compile(r'#\s*\[\s*(?:unsafe\s*\(\s*)?(?:no_mangle|export_name\s*=\s*"[^"]*")'
                          r'\s*\)?\s*\]')
#: include_str!/include_bytes!/include! of a literal path (others: dep-info and the sandbox).
_LITERAL_INCLUDE = re.compile(r'\binclude(_str|_bytes)?\s*!\s*[(\[{]\s*"([^"\\]*)"')


def classify(ty: str) -> tuple[str, tuple[int, int] | None]:
    """Host kind of a Rust type."""
    t = re.sub(r"\s+", "", ty)
    t = re.sub(r"^&'\w+", "&", t)
    if t in SCALARS:
        return SCALARS[t]
    if t in ("&str", "String", "&String"):
        return "str", None
    if t in ("&[u8]", "Vec<u8>", "&Vec<u8>"):
        return "bytes", None
    m = re.fullmatch(r"(?:&\[(\w+)\]|&?Vec<(\w+)>)", t)
    if m and (m.group(1) or m.group(2)) in ARRAY_ELEMENTS:
        return f"{m.group(1) or m.group(2)}[]", None
    return "json", None


def sysroot() -> Path:
    """The sysroot passed to every build (``--sysroot``): without it rustc would pick the
    wasm32 libraries of another installed rustc (E0786)."""
    return Path(RUSTC).resolve().parents[1]


def compiler_libraries() -> list[str]:
    """rustc's own shared libraries (librustc_driver, libLLVM) beside the sysroot's lib."""
    return sorted(str(p) for pattern in ("librustc_driver-*.so", "libLLVM.so.*")
                  for p in (sysroot() / "lib").glob(f"*/{pattern}"))


def compiler_env() -> dict[str, str]:
    """The environment rustc and cargo run with: ``LD_LIBRARY_PATH`` naming the folder of
    their libraries (the install script's RPATH finds them too; a rustc given by
    ``FUNCTIONS_NB_RUSTC`` may have none)."""
    folders = sorted({str(Path(p).parent) for p in compiler_libraries()})
    return {"LD_LIBRARY_PATH": ":".join(folders)} if folders else {}


def _entry_pattern(name: str) -> str:
    """The entry function's ``fn name<...>`` up to its parameter list."""
    return rf"(?m)\bfn\s+{re.escape(name)}\s*(?:<(?:[^<>]|<[^<>]*>)*>)?\s*(?=\()"


def without_entry_export(source: str, name: str) -> str:
    """``source`` with ``#[no_mangle]``/``#[export_name = ...]`` (plain or ``unsafe(...)``)
    blanked out on the entry function: the glue exports it under its name (both would define
    the symbol). Spaces replace the attribute, so cell lines and columns stay right."""
    found = find_function(source, _entry_pattern(name))
    if found is None:
        return source
    head = source[:found[0].start()]
    m = re.search(r'((?:#\s*\[[^\]]*\]\s*)+)(?:pub(?:\s*\([^)]*\))?\s+)?(?:const\s+)?'
                  r'(?:unsafe\s+)?(?:extern\s*(?:"[^"]*"\s*)?)?$', head)
    if m is None:
        return source
    attrs = _EXPORT_ATTR.sub(lambda a: re.sub(r"\S", " ", a.group(0)), m.group(1))
    return source[:m.start(1)] + attrs + source[m.end(1):]


def borrowing(source: str) -> frozenset[str]:
    """The cell's structs and enums with lifetime parameters (``struct Person<'a>``)."""
    return frozenset(m.group(1) for m in _ITEM.finditer(source)
                     if re.match(r"\s*<\s*'", source[m.end():]))


def host_linker() -> dict[str, str]:
    """Build scripts and proc macros link for the host with Debian's triple-named gcc
    (``/usr/bin/cc`` goes through ``/etc/alternatives``, which the build sandbox hides)."""
    machine = platform.machine()
    gcc = f"/usr/bin/{machine}-linux-gnu-gcc"
    triple = f"{machine}-unknown-linux-gnu"
    return {f"CARGO_TARGET_{triple.upper().replace('-', '_')}_LINKER": gcc} if Path(gcc).exists() else {}


# -- crates from crates.io: front matter, manifest, directory source -------------------------

#: An opening or closing front matter fence: 3+ dashes, an infostring, trailing blanks.
_FENCE = re.compile(r"(-{3,})[ \t]*([^\s,]*)[ \t]*")
#: A crate name as crates.io takes them.
_CRATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
#: A version requirement (``1``, ``^1.2``, ``>=0.4, <0.6``, ``=1.0.3``, ``*``).
_VERSION_REQ = re.compile(r"[0-9A-Za-z.*^~<>=, +-]{1,100}")
#: A feature of a dependency (``derive``, ``std``, ``serde/std``).
_FEATURE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+./-]{0,63}")
#: The most crates a cell declares.
MAX_DECLARED = 64
#: Keys of a dependency's table read here, in the order the canonical text writes them.
_SPEC_KEYS = ("version", "default-features", "features", "package")
#: Keys cargo knows that a function's dependency cannot have, and why.
_REFUSED_KEYS = {
    "path": "a path dependency would build files from outside the cell",
    "git": "git dependencies are not reachable from here",
    "branch": "git dependencies are not reachable from here",
    "tag": "git dependencies are not reachable from here",
    "rev": "git dependencies are not reachable from here",
    "registry": "crates come from crates.io (cargo's own configuration can mirror it)",
    "registry-index": "crates come from crates.io (cargo's own configuration can mirror it)",
    "workspace": "a cell is not part of a workspace",
    "optional": "nothing would enable an optional dependency",
}
#: The crates the glue uses under their own names (JSON-typed parameters and results).
GLUE_CRATES = {"serde": ("1", ("derive",)),
               "serde_json": ("1", ("float_roundtrip", "raw_value"))}
#: The Cargo feature that builds the glue's crates (when the cell needs JSON).
JSON_FEATURE = "fnb-json"
#: Bump when the build of a cell with crates changes (its manifest, the directory source).
CRATES_BUILD = "2"
#: The package a cell with crates becomes (the name of the plain build's crate too).
CELL_CRATE = "fnb_cell"


class FrontMatter(NamedTuple):
    """A cell's cargo-script front matter: its TOML text and the cell lines of its fences."""

    body: str
    opens: int
    closes: int


def front_matter(source: str) -> FrontMatter | None:
    """The front matter at the top of ``source`` (after an optional shebang and blank lines),
    as cargo scripts write it, or None. A fence that opens and never closes, an infostring
    other than ``cargo``, or a line inside starting with the fence's dashes is refused."""
    lines = source.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():  # a build's own blank lines (line_offset)
        i += 1
    if i < len(lines) and lines[i].startswith("#!") and not lines[i].startswith("#!["):
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or not lines[i].startswith("---"):
        return None
    m = _FENCE.fullmatch(lines[i].rstrip("\r"))
    if m is None:
        raise _declaration_error(f"`{lines[i].strip()}` does not open a front matter: cargo "
                                 "scripts write `---` or `---cargo` alone on the line", i + 1)
    dashes, info = m.groups()
    if info not in ("", "cargo"):
        raise _declaration_error(f"the front matter's infostring is `{info}`: cargo scripts "
                                 "write `---` or `---cargo`", i + 1)
    for j in range(i + 1, len(lines)):
        text = lines[j].rstrip("\r")
        if not text.startswith(dashes):
            continue
        if re.fullmatch(re.escape(dashes) + r"[ \t]*", text):
            return FrontMatter("\n".join(lines[i + 1:j]), i + 1, j + 1)
        raise _declaration_error(f"this line starts with the front matter's fence `{dashes}` "
                                 f"(opened at line {i + 1}); a longer fence escapes it", j + 1)
    raise _declaration_error(f"the front matter opened by `{dashes}` has no closing `{dashes}`",
                             i + 1)


def without_front_matter(source: str) -> str:
    """``source`` with its front matter (and a shebang before it) as blank lines: rustc sees
    Rust only, and cell line numbers stay right."""
    fm = front_matter(source)
    if fm is None:
        return source
    lines = source.split("\n")
    return "\n".join([""] * fm.closes + lines[fm.closes:])


def _declaration_error(message: str, line: int | None = None) -> DependencyError:
    where = f"cell:{line}: " if line else ""
    return DependencyError(f"{where}error: {message}", language="rust", line=line)


def declarations(source: str) -> tuple[str, ...]:
    """The crates the cell's front matter declares, one canonical ``name = spec`` line each,
    sorted by name (the text :func:`cargo_manifest` builds on, and what a redeploy compares)."""
    fm = front_matter(source)
    if fm is None:
        return ()
    try:
        doc = tomllib.loads(fm.body + "\n")  # an error names a line, not "end of document"
    except tomllib.TOMLDecodeError as exc:
        text = re.sub(r"\(at line (\d+)", lambda m: f"(at cell line {int(m.group(1)) + fm.opens}",
                      str(exc))
        line = re.search(r"at cell line (\d+)", text)
        raise _declaration_error(f"the front matter is not valid TOML: {text}",
                                 int(line.group(1)) if line else fm.opens) from None
    other = sorted(set(doc) - {"dependencies"})
    if other:
        raise _declaration_error(
            f"the front matter has [{', '.join(other)}]: a function reads only its "
            "[dependencies] (the edition is a deploy flag, the build profile is the "
            "function's)", fm.opens)
    table = doc.get("dependencies", {})
    if not isinstance(table, dict):
        raise _declaration_error("`dependencies` must be a table", fm.opens)
    return _canonical(table, fm.opens)


def _canonical(table: dict[str, Any], line: int | None) -> tuple[str, ...]:
    """``table`` (crate -> spec) checked and written canonically (see :func:`declarations`)."""
    if len(table) > MAX_DECLARED:
        raise _declaration_error(f"{len(table)} crates declared; at most {MAX_DECLARED}", line)
    out = []
    for crate, spec in sorted(table.items()):
        if not _CRATE_NAME.fullmatch(crate) or crate.replace("-", "_") in (CELL_CRATE, "fnb_prelude"):
            raise _declaration_error(f"`{crate}` is not a crate name a function can depend on",
                                     line)
        if isinstance(spec, str):
            spec = {"version": spec}
        if not isinstance(spec, dict):
            raise _declaration_error(f"crate `{crate}`: write a version (`{crate} = \"1\"`) or a "
                                     f"table (`{crate} = {{ version = \"1\", features = [...] }}`)",
                                     line)
        spec = {("default-features" if k == "default_features" else k): v for k, v in spec.items()}
        for key in spec:
            if key in _REFUSED_KEYS:
                raise _declaration_error(f"crate `{crate}`: `{key}` is not allowed: "
                                         f"{_REFUSED_KEYS[key]}", line)
            if key not in _SPEC_KEYS:
                raise _declaration_error(f"crate `{crate}`: `{key}` is not read here; a dependency "
                                         f"takes {', '.join(_SPEC_KEYS)}", line)
        version = spec.get("version")
        if not isinstance(version, str) or not _VERSION_REQ.fullmatch(version):
            raise _declaration_error(f"crate `{crate}`: needs a version requirement (such as "
                                     f"\"1\" or \"^0.4.2\"), got {version!r}", line)
        features = spec.get("features", [])
        if not isinstance(features, list) or not all(
                isinstance(f, str) and _FEATURE.fullmatch(f) for f in features):
            raise _declaration_error(f"crate `{crate}`: features must be a list of feature "
                                     f"names, got {features!r}", line)
        if not isinstance(spec.get("default-features", True), bool):
            raise _declaration_error(f"crate `{crate}`: default-features is true or false", line)
        package = spec.get("package", crate)
        if not isinstance(package, str) or not _CRATE_NAME.fullmatch(package):
            raise _declaration_error(f"crate `{crate}`: package must be a crate name", line)
        if (crate in GLUE_CRATES or package in GLUE_CRATES) and package != crate:
            raise _declaration_error(f"crate `{crate}`: {package if package in GLUE_CRATES else crate}"
                                     " is used by the glue under its own name: declare it "
                                     "without renaming", line)
        out.append(f"{crate} = {json.dumps(version) if spec.keys() == {'version'} else _inline(spec)}")
    return tuple(out)


def _inline(spec: dict[str, Any]) -> str:
    """A dependency's spec as an inline TOML table (keys in :data:`_SPEC_KEYS` order)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(map(value, v)) + "]"
        return json.dumps(v)  # checked ASCII text: a TOML basic string
    return "{ " + ", ".join(f"{k} = {value(spec[k])}" for k in _SPEC_KEYS if k in spec) + " }"


def cargo_manifest(declared: tuple[str, ...], flags: Mapping[str, Any] | None = None) -> str:
    """The Cargo.toml of a cell with crates: its ``declared`` dependencies (checked again), the
    glue's serde/serde_json (added to the cell's own declaration of them, else optional behind
    :data:`JSON_FEATURE`), and a release profile like the plain build's flags. The resolver
    locks it with default ``flags``; the build uses the deploy's (the lock fits both)."""
    flags = flags or {}
    try:
        table = tomllib.loads("\n".join(declared))
    except tomllib.TOMLDecodeError as exc:
        raise _declaration_error(f"the declared dependencies are not TOML: {exc}") from None
    deps = {line.partition(" = ")[0]: line for line in _canonical(table, None)}
    optional = []
    for crate, (version, features) in GLUE_CRATES.items():
        if crate in deps:  # the cell's own: the glue's features added
            spec = tomllib.loads(deps[crate])[crate]
            spec = {"version": spec} if isinstance(spec, str) else spec
            spec["features"] = sorted({*spec.get("features", []), *features})
            deps[crate] = f"{crate} = {_inline(spec)}"
        else:
            optional.append(f"dep:{crate}")
            deps[crate] = (f"{crate} = {{ version = \"{version}\", features = "
                           f"{json.dumps(list(features))}, optional = true }}")
    opt = flags.get("opt_level", 2)
    return "\n".join([
        "[package]", f'name = "{CELL_CRATE}"', 'version = "0.1.0"',
        f'edition = "{flags.get("edition", EDITIONS[0])}"', "publish = false", 'resolver = "3"',
        "", "[workspace]",  # its own root: a Cargo.toml in a folder above is not its workspace
        "", "[lib]", 'path = "lib.rs"', 'crate-type = ["cdylib"]',
        "", "[dependencies]", *deps.values(),
        "", "[features]", f"{JSON_FEATURE} = {json.dumps(optional)}",
        "", "[profile.release]", f"opt-level = {json.dumps(opt)}", 'panic = "abort"',
        'strip = "symbols"', "overflow-checks = false",
        # integer overflow panics in the cell (as in its plain build), not inside the crates
        "", f"[profile.release.package.{CELL_CRATE}]",
        f"overflow-checks = {'true' if flags.get('overflow_checks', True) else 'false'}", ""])


#: The most a ``.crate`` file may unpack to.
MAX_UNPACKED = 512 << 20


def unpack_crate(path: Path, name: str, version: str, checksum: str, into: Path) -> None:
    """Unpack ``path`` (a ``.crate``: a gzipped tar of ``<name>-<version>/``) into ``into``
    as a crate of a cargo directory source (``.cargo-checksum.json`` naming ``checksum``, the
    lock's). Members outside that folder, links out of it and devices are refused."""
    if not _CRATE_NAME.fullmatch(name) or not re.fullmatch(r"[0-9A-Za-z.+-]{1,64}", version):
        raise DependencyError(f"crate {name!r} {version!r}: not a crate name and version")
    top = f"{name}-{version}"
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if m.name != top and not m.name.startswith(top + "/"):
                    raise DependencyError(f"crate {name} {version}: {path.name} holds "
                                          f"{m.name!r}, outside {top}/")
            if sum(m.size for m in members) > MAX_UNPACKED:
                raise DependencyError(f"crate {name} {version}: unpacks to more than "
                                      f"{MAX_UNPACKED >> 20} MiB")
            tar.extractall(into, members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DependencyError(f"crate {name} {version}: {path.name} cannot be unpacked: {exc}"
                              ) from None
    (into / top / ".cargo-checksum.json").write_text(
        json.dumps({"files": {}, "package": checksum}))


def vendor(deps: Resolved) -> Path:
    """The directory source of ``deps``' crates (``<cache>/rust-crates/<lock>``), unpacked
    once per lock from the verified local copies of its files."""
    from ..cache_folders import made_once
    from ..dependencies import sha256

    def fill(crates: Path) -> None:
        for pkg, path in zip(deps.lock.packages, deps.files, strict=True):
            if sha256(path.read_bytes()) != pkg.sha256:
                raise DependencyError(f"crate {pkg.name} {pkg.version}: {path} does not match "
                                      "its lock's sha256")
            unpack_crate(path, pkg.name, pkg.version, pkg.sha256, crates)

    return made_once(cache_dir() / "rust-crates" / deps.lock.digest()[:24], fill)


def _source_replacement(lock_text: str, vendored: Path) -> str:
    """``.cargo/config.toml`` pointing every registry of the lock at ``vendored``, offline."""
    doc = tomllib.loads(lock_text) if lock_text else {}
    sources = sorted({p["source"] for p in doc.get("package", []) if "source" in p})
    out = []
    for i, source in enumerate(sources):
        if source == "registry+https://github.com/rust-lang/crates.io-index":
            out += ["[source.crates-io]", 'replace-with = "vendored"']
        else:
            kind, _, url = source.partition("+")
            out += [f"[source.lock-{i}]", f"registry = {json.dumps(source if kind == 'sparse' else url)}",
                    'replace-with = "vendored"']
    return "\n".join([*out, "[source.vendored]", f"directory = {json.dumps(str(vendored))}",
                      "[net]", "offline = true", ""])


#: The import modules of wasm-bindgen's JavaScript bindings.
_WASM_BINDGEN = (b"__wbindgen_placeholder__", b"__wbindgen_externref_xform__")


def js_bindings(code: bytes, lock_text: str) -> list[str] | None:
    """None when ``code`` imports no wasm-bindgen module; else the crates of the Cargo.lock
    ``lock_text`` that depend on wasm-bindgen or js-sys (what brought it in)."""
    if not any(module in code for module in _WASM_BINDGEN):
        return None
    packages = tomllib.loads(lock_text).get("package", []) if lock_text else []
    return sorted({f"{p['name']} {p['version']}" for p in packages
                   if any(d.split()[0] in ("wasm-bindgen", "js-sys")
                          for d in p.get("dependencies", []))})


def _cargo_stderr(stderr: str, workdir: Path) -> str:
    """cargo's own error text (from its first ``error:``), the build folder named "the cell"."""
    text = stderr[stderr.find("error"):] if "error" in stderr else stderr
    return text.replace(str(workdir), "<the cell>").strip()[-4000:]


def _package_of(package_id: str) -> str:
    """``name version`` of a cargo package id (``registry+…#name@1.2.3`` or the older
    ``name 1.2.3 (registry+…)``)."""
    if "#" in package_id:
        tail = package_id.rsplit("#", 1)[1]
        name, _, version = tail.partition("@")
        return f"{name} {version}".strip()
    return " ".join(package_id.split()[:2])


class Rust(Language):
    name = "rust"
    runtime = "wasm"
    extension = ".rs"
    install_hint = ("make toolchains (as root: apt-get install -y rustc cargo libstd-rust-dev-wasm32 "
                    "lld librust-serde-json-dev librust-serde-derive-dev, then "
                    "scripts/install-rust.sh: Debian bookworm-security's rustc-web into "
                    f"{RUST_HOME} with the {TARGET} standard library)")
    accepted_flags = {"edition": (*EDITIONS, *map(int, EDITIONS)),
                      "opt_level": (0, 1, 2, 3, "s", "z"), "overflow_checks": (True, False)}
    ecosystem = "crates"

    def declared_dependencies(self, source: str, flags: dict[str, Any]) -> tuple[str, ...]:
        """The crates of the cell's front matter (``---`` / ``[dependencies]`` / ``---``), one
        canonical ``name = { version = ... }`` line each (:func:`declarations`)."""
        return declarations(source)

    def build_sandbox(self, deps: Path | None = None) -> BuildSandbox:
        """rustc (with the libraries it loads), its linker and sysroot, the offline crate
        registry and the built serde (read-only); ``/proc`` holds only the link to rustc."""
        return BuildSandbox(tools=(RUSTC, LINKER, *compiler_libraries()),
                            read=(str(sysroot()), DEBIAN_REGISTRY, *([str(deps)] if deps else [])),
                            env=compiler_env(), proc=RUSTC)

    def check_flags(self, flags: Mapping[str, Any]) -> None:
        """``edition`` is one of :data:`EDITIONS` (a string, or the year as an int); the other
        flags as :attr:`accepted_flags` lists them."""
        if "edition" in flags and str(flags["edition"]) not in EDITIONS \
                or isinstance(flags.get("edition"), bool):
            raise BadArguments(f"rust flag edition={flags['edition']!r} is not accepted; edition is "
                               f"one of: {', '.join(EDITIONS)} (default {EDITIONS[0]})")
        super().check_flags(flags)

    def prepare(self) -> Path:
        """Build serde/serde_json for this toolchain now (``make setup`` calls this), so the
        first cell with JSON-typed parameters does not wait for it; returns their folder.
        Built once per toolchain: later calls only check."""
        self.require_toolchain()
        return self._deps_args("setup")[1]

    def _discover(self) -> Toolchain:
        if not Path(RUSTC).exists():
            return Toolchain(self.name, False, install=self.install_hint, detail=f"{RUSTC} not found")
        box = self.build_sandbox()
        proc = run_tool([RUSTC, "--version"], sandbox_=box)
        version = first_version_line(proc.stdout)
        if proc.returncode != 0 or not version:
            return Toolchain(self.name, False, "", RUSTC, self.install_hint,
                             f"{RUSTC} does not run: {proc.stderr.strip()[-300:]}")
        if not (sysroot() / "lib" / "rustlib" / TARGET / "lib").is_dir():
            return Toolchain(self.name, False, version, RUSTC, self.install_hint,
                             f"the {TARGET} standard library is missing from {sysroot()}")
        if not Path(LINKER).exists():
            return Toolchain(self.name, False, version, RUSTC, "apt-get install -y lld",
                             f"the wasm linker {LINKER} is missing")
        detail = f"{RUSTC}, sysroot {sysroot()}"
        if not Path(CARGO).exists():
            detail += f"; no cargo at {CARGO}: crates from crates.io unavailable"
        if not any(Path(DEBIAN_REGISTRY).glob("serde_json-*")):
            detail += "; no serde_json crate: JSON-typed parameters unavailable"
        return Toolchain(self.name, True, version, RUSTC, self.install_hint, detail)

    # signature -----------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        source = without_front_matter(source)
        found = find_function(source, _entry_pattern(name))
        if found is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    fn {name}(a: i32, b: i32) -> i32 {{ a + b }}",
                name)
        match, params_text, rest = found
        chosen = self._type_arguments(match, rest, name, line_of(source, match.start()))
        if chosen:
            def concrete(ty: str) -> str:
                return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: chosen.get(m.group(0), m.group(0)), ty)
            params_text = concrete(params_text)
            rest = concrete(rest.split("where")[0])
        params = []
        for i, part in enumerate(split_top_level(params_text)):
            pat, sep, ty = part.partition(":")
            if not sep:
                raise self.error(f"cell line {line_of(source, match.start())}: cannot read parameter "
                                 f"{part!r} of `{name}`", name, line_of(source, match.start()))
            pname = pat.strip().removeprefix("mut ").strip()
            if not re.fullmatch(r"[A-Za-z_]\w*", pname):
                pname = f"arg{i}"
            kind, bounds = classify(ty)
            if ty.replace(" ", "").startswith("&mut"):
                raise self.error(f"parameter `{pname}: {ty.strip()}` of `{name}`: &mut parameters "
                                 "are not supported (the host cannot observe the change); return "
                                 "the new value instead", name, line_of(source, match.start()))
            params.append(Param(pname, kind, ty.strip(), bounds))
        ret = rest.split("where")[0].strip()
        result_type = ret[2:].strip() if ret.startswith("->") else "()"
        fallible = False
        inner = result_type
        m = re.fullmatch(r"Result\s*<(.*)>", re.sub(r"\s+", " ", result_type))
        if m:
            parts = split_top_level(m.group(1))
            inner = parts[0] if parts else "()"
            fallible = True
        result = "unit" if inner.replace(" ", "") in ("()", "") else classify(inner)[0]
        return Signature(name, tuple(params), result, result_type, fallible)

    def _type_arguments(self, match: re.Match[str], rest: str, name: str, line: int) -> dict[str, str]:
        """The concrete type the host uses for each type parameter of the entry function:
        ``serde_json::Value`` (any JSON) when its bounds are only comparison, cloning and
        printing, ``i64`` when they need ordering or arithmetic; other bounds are refused."""
        generics = re.search(r"<(.*)>", match.group(0))
        bounds: dict[str, list[str]] = {}
        for g in split_top_level(generics.group(1)) if generics else []:
            g = g.strip()
            if g and not g.startswith("'"):
                if g.startswith("const "):
                    raise self.error(f"cell line {line}: the entry function `{name}` has the const "
                                     f"parameter `{g}`: write a concrete value", name, line)
                pname, _, bound = g.partition(":")
                bounds[pname.strip()] = split_top_level(bound, "+")
        if "where" in rest:
            for clause in split_top_level(rest.split("where", 1)[1]):
                pname, _, bound = clause.partition(":")
                if pname.strip() in bounds:
                    bounds[pname.strip()] += split_top_level(bound, "+")
        chosen = {}
        for pname, bound in bounds.items():
            traits = {re.sub(r"<.*", "", b).strip().split("::")[-1] for b in bound} - {""}
            traits = {t for t in traits if not t.startswith(("'", "?"))}
            if traits <= _ANY_JSON:
                chosen[pname] = "serde_json::Value"
            elif traits <= _NUMERIC:
                chosen[pname] = "i64"
            else:
                raise self.error(
                    f"cell line {line}: the entry function `{name}` has the type parameter "
                    f"`{pname}: {' + '.join(b.strip() for b in bound)}`: the host passes JSON "
                    "values (any JSON for `PartialEq`/`Clone`/`Debug` bounds, i64 for ordering "
                    "and arithmetic); write the concrete type", name, line)
        return chosen

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """As the base class, plus the prelude, the serde build and the glue generated for the
        entry signature (a change in any of them rebuilds what was cached before)."""
        glue = self.glue(self.parse_signature(source, name), borrowing(source))
        crates = [CRATES_BUILD] if declarations(source) else []  # plain cells' hashes unchanged
        return super().code_hash(source, name, {**flags, "rust_glue": [GLUE_HASH, glue, *crates]},
                                 line_offset)

    # glue ------------------------------------------------------------------------
    def glue(self, sig: Signature, borrowing: frozenset[str] = frozenset()) -> str:
        """The exported wrapper of ``sig``'s function; ``borrowing``: the cell's structs and
        enums with lifetime parameters (a JSON argument of such a type borrows)."""
        wparams, prep, args = [], [], []
        for i, p in enumerate(sig.params):
            t = p.type.replace(" ", "")
            if p.kind in WASM_TYPE:
                wparams.append(f"p{i}: {WASM_TYPE[p.kind]}")
                args.append(f"p{i} != 0" if p.kind == "bool" else f"p{i} as {t}")
                continue
            wparams += [f"p{i}: *mut u8", f"l{i}: usize"]
            if p.kind == "json":
                prep.append(f"let _g{i} = fnb_prelude::ArgBuf(p{i}, l{i});")
                owned = _LIFETIME.sub("", p.type.strip())  # the glue declares no lifetimes
                if owned.startswith("&"):
                    owned = re.sub(r"^&\s*", "", owned)
                    if owned.startswith("["):
                        owned = f"Vec<{owned[1:-1]}>"
                borrows = "&" in owned or "'" in p.type or \
                    bool(set(re.findall(r"[A-Za-z_]\w*", owned)) & borrowing)
                take = "take_json_borrowed" if borrows else "take_json"
                prep.append(f"let a{i}: {owned} = unsafe "
                            f"{{ fnb_prelude::{take}({json.dumps(p.name)}, p{i}, l{i}) }};")
                args.append(f"&a{i}" if t.startswith("&") else f"a{i}")
                continue
            # str, bytes, arrays: borrowed in place, freed when the wrapper returns
            elem = "u8" if p.kind in ("str", "bytes") else p.kind[:-2]
            prep.append(f"let _g{i} = fnb_prelude::ArgBuf(p{i}, l{i} * "
                        f"std::mem::size_of::<{elem}>());")
            view = (f"fnb_prelude::arg_str(p{i}, l{i})" if p.kind == "str"
                    else f"fnb_prelude::arg_slice::<{elem}>(p{i}, l{i})")
            prep.append(f"let a{i} = unsafe {{ {view} }};")
            if t.startswith("&[") or t in ("&str", "&'staticstr"):
                args.append(f"a{i}")
            else:  # String, Vec<T> and &-references to them
                owned = f"a{i}.to_string()" if p.kind == "str" else f"a{i}.to_vec()"
                args.append(f"&{owned}" if t.startswith("&") else owned)
        if any("take_json_borrowed" in line for line in prep):
            # first, so it drops last: after the result (which may borrow from it) is serialised
            prep.insert(0, "let _arena = fnb_prelude::Arena::new();")
        call = f"{sig.name}({', '.join(args)})"
        kind = sig.result
        if kind == "unit":
            wret, conv, default = "", "{ let _ = v; }", ""
        elif kind in WASM_TYPE:
            wret = f" -> {WASM_TYPE[kind]}"
            conv = f"(v as {WASM_TYPE[kind]})" if kind != "bool" else "(v as i32)"
            default = "0.0" if kind in ("f32", "f64") else "0"
        else:
            wret = " -> i64"
            conv = {"str": "fnb_prelude::ret_str(v)", "bytes": "fnb_prelude::ret_bytes(v)",
                    "json": "fnb_prelude::ret_json(&v)"}.get(kind, "fnb_prelude::ret_array(v)")
            default = "0"
        if sig.fallible:
            body = (f"match {call} {{ Ok(v) => {conv}, Err(e) => "
                    f"{{ fnb_prelude::__fail(&format!(\"{{}}\", e)); {default} }} }}")
        else:
            body = f"{{ let v = {call}; {conv} }}"
        return ("#[unsafe(export_name = \"" + sig.name + "\")]\n"
                f"pub extern \"C\" fn __fnb_entry({', '.join(wparams)}){wret} {{\n"
                + "".join(f"    {line}\n" for line in prep)
                + f"    {body}\n}}\n")

    # build -------------------------------------------------------------------------
    def _write_crate(self, source: str, signature: Signature, workdir: Path) -> bool:
        """The cell's crate in ``workdir`` (``lib.rs`` pulling in the prelude, the cell and the
        glue), the same for both builds; returns whether it needs serde (JSON kinds)."""
        needs_json = any(p.kind == "json" for p in signature.params) or signature.result == "json" \
            or "serde" in source
        for m in _LITERAL_INCLUDE.finditer(source):  # early, with the line (dep-info has none)
            if outside(m.group(2), workdir):
                line = line_of(source, m.start(2))
                raise self.outside_read_error(m.group(2), signature.name, line)
        prelude = PRELUDE + (PRELUDE_JSON if needs_json else "")
        (workdir / "fnb_prelude.rs").write_text(prelude)
        cell = without_entry_export(source, signature.name)
        (workdir / "cell.rs").write_text(with_serde_derives(cell, signature) if needs_json else cell)
        (workdir / "glue.rs").write_text(self.glue(signature, borrowing(source)))
        (workdir / "lib.rs").write_text(
            "#![allow(dead_code)]\n#[macro_use] mod fnb_prelude;\n"
            "include!(\"cell.rs\");\ninclude!(\"glue.rs\");\n")
        return needs_json

    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        source = without_front_matter(source)
        needs_json = self._write_crate(source, signature, workdir)
        cmd = [RUSTC, "--edition", str(flags.get("edition", EDITIONS[0])), "--crate-type", "cdylib",
               "--crate-name", "fnb_cell", "--target", TARGET, "--sysroot", str(sysroot()),
               "-C", f"linker={LINKER}", "-C", f"opt-level={flags.get('opt_level', 2)}",
               "-C", "panic=abort", "-C", "strip=symbols", "-C", "target-feature=+simd128",
               # integer overflow panics (as in `cargo test`) instead of wrapping silently
               "-C", f"overflow-checks={'on' if flags.get('overflow_checks', True) else 'off'}",
               "--error-format=json", "--emit=link=out.wasm,dep-info=out.d", "lib.rs"]
        deps = None
        if needs_json:
            deps_args, deps = self._deps_args(signature.name)
            cmd += deps_args
        proc = run_tool(cmd, cwd=workdir, sandbox_=self.build_sandbox(deps), name=self.name)
        errors, warnings = self._diagnostics(proc.stderr)
        self._check_reads(source, workdir, errors, signature.name, workdir / "out.d")
        if proc.returncode != 0 or not (workdir / "out.wasm").exists():
            self._fail(errors, proc.stderr, flags, signature.name)
        return (workdir / "out.wasm").read_bytes(), "\n".join(w[0] for w in warnings)

    def _fail(self, errors: list[tuple[str, int | None, int | None]], stderr: str,
              flags: dict[str, Any], name: str) -> None:
        """Raise the build's errors (the first one's cell line), saying when the edition
        explains them."""
        first = errors[0] if errors else None
        text = "\n".join(e[0] for e in errors) or stderr.strip()
        if "edition" not in flags and _EDITION_2024.search(text):
            text += (f"\n(the cell is built as Rust edition {EDITIONS[0]}; code written for "
                     "edition 2021 can keep it: `--edition 2021` in %%function and func "
                     "deploy, flags={\"edition\": \"2021\"} in fx.deploy)")
        raise self.error(text, name, first[1] if first else None, first[2] if first else None)

    def _build_with_deps(self, source: str, signature: Signature, workdir: Path,
                         flags: dict[str, Any], deps: Resolved) -> tuple[bytes, str]:
        """The cell as the library of a cargo package whose dependencies are the lock's crates,
        unpacked into a directory source: ``cargo build --frozen`` (no network, the lock as it
        is) for wasm32 in the build sandbox, build scripts and proc macros included. Crates
        built for one lock are kept for the next build with it (``<cache>/rust-target``)."""
        from filelock import FileLock

        if deps.lock.ecosystem != self.ecosystem:
            raise DependencyError(f"a {deps.lock.ecosystem} lock cannot build a Rust cell",
                                  language=self.name, name=signature.name)
        source = without_front_matter(source)
        needs_json = self._write_crate(source, signature, workdir)
        vendored = vendor(deps)
        (workdir / "Cargo.toml").write_text(cargo_manifest(deps.lock.declared, flags))
        (workdir / "Cargo.lock").write_text(deps.lock.extra)
        (workdir / ".cargo").mkdir()
        (workdir / ".cargo" / "config.toml").write_text(
            _source_replacement(deps.lock.extra, vendored))
        tc = self.toolchain()
        key = hashlib.sha256(json.dumps([tc.version, str(sysroot()), deps.lock.digest()])
                             .encode()).hexdigest()[:24]
        target = cache_dir() / "rust-target" / key
        target.mkdir(parents=True, exist_ok=True)
        box = BuildSandbox(tools=(CARGO, RUSTC, LINKER, *compiler_libraries()),
                           read=("/usr", "/etc/ld.so.cache", str(sysroot()), str(vendored)),
                           write=(str(target),), env=compiler_env(), proc=True)
        env = {"RUSTC": RUSTC, "CARGO_HOME": str(workdir / ".cargo-home"),
               "CARGO_TARGET_DIR": str(target),
               "RUSTFLAGS": f"--sysroot {sysroot()} -C target-feature=+simd128",
               f"CARGO_TARGET_{TARGET.upper().replace('-', '_')}_LINKER": LINKER,
               **host_linker()}
        cmd = [CARGO, "build", "--frozen", "--release", "--target", TARGET,
               "--message-format=json", *(["--features", JSON_FEATURE] if needs_json else [])]
        with FileLock(str(target / ".fnb-lock")):  # one build at a time reads its wasm out
            dep_info = target / TARGET / "release" / "deps" / f"{CELL_CRATE}.d"
            dep_info.unlink(missing_ok=True)  # another cell's, from the last build here
            proc = run_tool(cmd, cwd=workdir, env=env, timeout=900, sandbox_=box,
                            name=self.name)
            cell, crates, wasm = self._cargo_messages(proc.stdout)
            code = wasm.read_bytes() if wasm is not None and proc.returncode == 0 else None
            errors, warnings = self._diagnostics("\n".join(cell))
            self._check_reads(source, workdir, errors, signature.name, dep_info, target)
        if code is None:
            if not errors and crates:
                crate, texts = next(iter(crates.items()))
                raise self.error(f"crate {crate} does not build for {TARGET}:\n"
                                 + "\n".join(texts).replace(f"{vendored}/", ""), signature.name)
            if not errors:
                raise self.error("cargo could not build the cell's crates:\n"
                                 + _cargo_stderr(proc.stderr, workdir), signature.name)
            self._fail(errors, proc.stderr, flags, signature.name)
        users = js_bindings(code, deps.lock.extra)
        if users is not None:
            raise self.error(
                f"the module imports JavaScript bindings (wasm-bindgen, which the lock has through "
                f"{', '.join(users) or 'a crate'}): functions run as plain WebAssembly with no "
                "JavaScript host; leave out the crates or features that bring wasm-bindgen in "
                "(a `js` feature, or a default one such as chrono's `wasmbind`: declare the "
                "crate with `default-features = false` and the features you need)",
                signature.name)
        return code, "\n".join(w[0] for w in warnings)

    @staticmethod
    def _cargo_messages(stdout: str) -> tuple[list[str], dict[str, list[str]], Path | None]:
        """cargo's JSON messages -> (the cell crate's diagnostics as rustc JSON lines, each
        dependency's errors by ``name version``, the cell's wasm)."""
        cell: list[str] = []
        crates: dict[str, list[str]] = {}
        wasm = None
        for line in stdout.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            ours = msg.get("target", {}).get("name") == CELL_CRATE or \
                f"#{CELL_CRATE}@" in msg.get("package_id", "") or \
                msg.get("package_id", "").startswith(f"{CELL_CRATE} ")
            if msg.get("reason") == "compiler-message":
                if ours:
                    cell.append(json.dumps(msg["message"]))
                elif msg["message"].get("level") == "error" and msg["message"].get("rendered"):
                    crates.setdefault(_package_of(msg["package_id"]), []).append(
                        msg["message"]["rendered"].rstrip())
            elif msg.get("reason") == "compiler-artifact" and ours:
                wasm = next((Path(f) for f in msg.get("filenames", []) if f.endswith(".wasm")),
                            None)
        return cell, crates, wasm

    def _check_reads(self, source: str, workdir: Path,
                     errors: list[tuple[str, int | None, int | None]], name: str,
                     dep_info_file: Path, outputs: Path | None = None) -> None:
        """Refuse a cell that read the environment (``env!``/``option_env!``, as rustc's
        dep-info records them, or its error for an unset one) or a file outside its build
        directory (dep-info, or the error for one the sandbox hides). ``outputs``: where the
        build writes besides its directory (the dep-info's targets there are no reads)."""
        try:
            dep_info = dep_info_file.read_text()
        except OSError:
            dep_info = ""
        for var in re.findall(r"(?m)^# env-dep:([^=\n]*)", dep_info):
            raise self.env_read_error(var, name, literal_line(source, var))
        for text, line, col in errors:
            m = re.search(r"environment variable `([^`]*)` not defined", text)
            if m:
                raise self.env_read_error(m.group(1), name, line, col)
            # rustc 1.96 quotes the path (`/etc/x`), older ones did not
            m = re.search(r"couldn't read (?:`([^`\n]+)`|(.+?)): [^:\n]*\(os error \d+\)", text)
            if m and outside(m.group(1) or m.group(2), workdir):
                raise self.outside_read_error(m.group(1) or m.group(2), name, line, col)
        for dep, inputs in re.findall(r"(?m)^([^#\s][^:\n]*):(.*)$", dep_info):
            if outputs is not None and inputs.strip() and not outside(dep, outputs):
                continue  # what the build wrote (cargo's target folder), not read
            if outside(dep, workdir):
                raise self.outside_read_error(dep, name, literal_line(source, dep))

    @staticmethod
    def _diagnostics(stderr: str) -> tuple[list[tuple[str, int | None, int | None]], list]:
        """rustc JSON diagnostics -> (errors, warnings), each (text, cell_line, column)."""
        errors, warnings = [], []
        for line in stderr.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if not isinstance(d, dict) or "rendered" not in d or not d.get("rendered"):
                continue
            text = d["rendered"].rstrip()
            if re.match(r"(error|warning): aborting due to|(error|warning): \d+ warnings? emitted|"
                        r"warning: .*generated \d+ warning", text):
                continue
            spans = d.get("spans") or []
            primary = next((s for s in spans if s.get("is_primary")), spans[0] if spans else None)
            lineno = col = None
            if primary and primary.get("file_name", "").endswith("cell.rs"):
                lineno, col = primary["line_start"], primary["column_start"]
            elif primary and primary.get("file_name", "").endswith("glue.rs"):
                text += ("\n(in the generated glue: the signature of the entry function uses a type "
                         "that cannot cross the host boundary; see the calling convention)")
            text = re.sub(r"(\s-->\s)cell\.rs:", r"\1cell:", text)
            if d.get("level") == "error":
                errors.append((text, lineno, col))
            elif d.get("level") == "warning" and primary and \
                    primary.get("file_name", "").endswith("cell.rs"):
                warnings.append((text, lineno, col))
        return errors, warnings

    def _deps_args(self, name: str) -> tuple[list[str], Path]:
        """``--extern`` flags for serde/serde_json, built once with cargo from Debian's crates
        (and their folder). That build runs sandboxed too, seeing ``/usr`` read-only (serde's
        build script is linked by the host's C toolchain) and only its own folder writable."""
        tc = self.toolchain()
        from filelock import FileLock

        rustflags = f"-Cembed-bitcode=yes --sysroot {sysroot()}"  # bitcode: LTO can use them
        # the wasm32 std it links against (a reinstall rebuilds it: serde must follow)
        std = sorted((p.name, p.stat().st_size)
                     for p in (sysroot() / "lib" / "rustlib" / TARGET / "lib").glob("*.rlib"))
        key = hashlib.sha256(json.dumps([tc.version, str(sysroot()), rustflags, DEPS_CARGO, std])
                             .encode()).hexdigest()[:12]
        root = cache_dir() / "rust-deps" / key
        root.mkdir(parents=True, exist_ok=True)
        manifest = root / "externs.json"
        with FileLock(str(root / ".lock")):
            if not manifest.exists():
                if not any(Path(DEBIAN_REGISTRY).glob("serde_json-*")):
                    raise self.error(
                        "JSON-typed parameters or results need serde_json: "
                        "apt-get install -y librust-serde-json-dev librust-serde-derive-dev", name)
                (root / "Cargo.toml").write_text(DEPS_CARGO)
                (root / "lib.rs").write_text("")
                (root / ".cargo").mkdir(exist_ok=True)
                (root / ".cargo" / "config.toml").write_text(DEPS_CONFIG)
                box = BuildSandbox(tools=(CARGO, RUSTC, *compiler_libraries()),
                                   read=("/usr", "/etc/ld.so.cache", str(sysroot())),
                                   env=compiler_env(), proc=True)
                proc = run_tool([CARGO, "build", "--release", "--target", TARGET,
                                 "--message-format=json"], cwd=root,
                                env={"RUSTC": RUSTC, "CARGO_HOME": str(root / ".cargo-home"),
                                     "RUSTFLAGS": rustflags, **host_linker()},
                                timeout=900, sandbox_=box, name="rust-deps")
                if proc.returncode != 0:
                    raise self.error("building serde/serde_json for wasm failed:\n" + proc.stderr[-3000:],
                                     name)
                externs = {}
                for line in proc.stdout.splitlines():
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    if msg.get("reason") == "compiler-artifact" and \
                            msg["target"]["name"] in ("serde", "serde_json"):
                        rlib = [f for f in msg["filenames"] if f.endswith(".rlib")]
                        externs[msg["target"]["name"]] = rlib[0]
                manifest.write_text(json.dumps(externs))
        externs = json.loads(manifest.read_text())
        args = ["-L", f"dependency={root}/target/{TARGET}/release/deps",
                "-L", f"dependency={root}/target/release/deps"]
        for crate, path in externs.items():
            args += ["--extern", f"{crate}={path}"]
        return args, root


def with_serde_derives(source: str, sig: Signature) -> str:
    """``source`` with serde's derives added to the cell's own structs and enums that cross
    the boundary (named in the signature, or inside one that is) and lack them. The attribute
    goes on the item's own line, so cell line numbers stay right."""
    items = {m.group(1): m for m in _ITEM.finditer(source)}
    wanted: dict[str, set[str]] = {}
    todo = [(p.type, "Deserialize") for p in sig.params if p.kind == "json"]
    if sig.result == "json":
        todo.append((sig.result_type, "Serialize"))
    while todo:
        text, trait = todo.pop()
        for ident in set(re.findall(r"[A-Za-z_]\w*", text)) & items.keys():
            if trait in wanted.setdefault(ident, set()):
                continue
            wanted[ident].add(trait)
            m = items[ident]
            body_start = source.find("{", m.end())
            end = source.find(";", m.end())
            if body_start != -1 and (end == -1 or body_start < end):
                depth, end = 0, body_start
                while end < len(source):
                    depth += {"{": 1, "}": -1}.get(source[end], 0)
                    end += 1
                    if depth == 0:
                        break
            todo.append((source[m.end():end], trait))
    out = source
    for ident, traits in sorted(wanted.items(), key=lambda kv: -items[kv[0]].start()):
        m = items[ident]
        line_start = source.rfind("\n", 0, m.start()) + 1
        attrs = source[:line_start].rstrip().splitlines()
        block = []
        while attrs and attrs[-1].strip().startswith(("#[", "///", "//")):
            block.append(attrs.pop())
        missing = [t for t in ("Serialize", "Deserialize")
                   if t in traits and not any(_SERDE[t].search(a) for a in block)]
        if missing:
            attr = f"#[derive({', '.join(f'serde::{t}' for t in missing)})] "
            at = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            out = out[:at] + attr + out[at:]
    return out
