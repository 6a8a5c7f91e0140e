"""Crates per Rust function: a cargo-script front matter (``---`` / ``[dependencies]`` /
``---``) resolved by cargo against crates.io, pinned by Cargo.lock's checksums, the .crate files
stored with the version, built offline for wasm32 in the build sandbox."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from functions_nb import CompileError, Functions
from functions_nb.dependencies import Lock, Resolved, crates, materialize
from functions_nb.errors import DependencyError
from functions_nb.languages import get_language, rust

needs_rust = pytest.mark.skipif(not rust.Rust().toolchain().usable,
                                reason="Rust toolchain (scripts/install-rust.sh) not installed")

NUMBERS_RS = r"""---
[dependencies]
regex = "1"
---
use regex::Regex;

/// The runs of digits in `text`, in order.
fn numbers(text: &str) -> Vec<String> {
    let re = Regex::new(r"\d+").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}
"""

#: A function using regex without declaring it (no JSON: no serde to build either).
UNDECLARED_RS = """use regex::Regex;

fn count_numbers(text: &str) -> u32 {
    Regex::new(r"\\d+").unwrap().find_iter(text).count() as u32
}
"""

#: serde declared by the cell itself (the glue adds its features), structs crossing as JSON.
SERDE_RS = """---cargo
[dependencies]
serde = { version = "1.0", features = ["derive"] }
serde_json = "1"
---
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Order { item: String, qty: u32, price: f64 }

#[derive(Serialize)]
struct Total { items: usize, amount: f64, json: String }

fn total(orders: Vec<Order>) -> Total {
    let amount = orders.iter().map(|o| o.qty as f64 * o.price).sum();
    let names: Vec<&str> = orders.iter().map(|o| o.item.as_str()).collect();
    Total { items: orders.len(), amount, json: serde_json::to_string(&names).unwrap() }
}
"""

#: getrandom 0.2 refuses wasm32-unknown-unknown unless its "js" feature is on.
GETRANDOM_RS = """---
[dependencies]
getrandom = "0.2"
---
fn roll() -> u32 {
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).unwrap();
    u32::from_le_bytes(b)
}
"""


@pytest.fixture
def dead_registry(tmp_path: Path) -> dict[str, str]:
    """Cargo's own configuration replacing crates.io with a registry that does not answer."""
    home = tmp_path / "cargo-home-dead"
    home.mkdir()
    (home / "config.toml").write_text('[source.crates-io]\nreplace-with = "dead"\n'
                                      '[source.dead]\nregistry = "sparse+http://127.0.0.1:9/"\n'
                                      "[net]\nretry = 0\n")
    return {"CARGO_HOME": str(home)}


# -- the declaration: cargo script front matter ---------------------------------------------

def test_front_matter_declarations_are_canonical() -> None:
    src = ("#!/usr/bin/env cargo\n\n----cargo  \n[dependencies]\nregex = '1.10'\n"
           "serde = { version = \"1\", features = [\"derive\"], default_features = false }\n"
           "[dependencies.itoa]\nversion = \"1\"\n# --- fewer dashes than the fence\n----\n"
           "fn f() -> i32 { 1 }\n")
    assert rust.declarations(src) == (
        'itoa = "1"', 'regex = "1.10"',
        'serde = { version = "1", default-features = false, features = ["derive"] }')
    blank = rust.without_front_matter(src)
    assert blank.split("\n")[:10] == [""] * 10 and blank.split("\n")[10] == "fn f() -> i32 { 1 }"
    # the blank lines a build puts before the cell (its line offset in a notebook)
    assert rust.declarations("\n\n" + src) == rust.declarations(src)
    assert rust.without_front_matter("\n\n" + src).split("\n")[12] == "fn f() -> i32 { 1 }"
    assert set(rust.without_front_matter("\n\n" + src).split("\n")[:12]) == {""}
    assert rust.declarations("fn f() -> i32 { 1 }\n") == ()
    assert rust.declarations("---\n---\nfn f() -> i32 { 1 }\n") == ()
    # the manifest the lock and the build share: the glue's serde merged, serde_json optional
    manifest = tomllib.loads(rust.cargo_manifest(rust.declarations(src), {"opt_level": "s"}))
    assert manifest["dependencies"]["serde"]["features"] == ["derive"]
    assert manifest["dependencies"]["serde_json"]["optional"] is True
    assert manifest["features"] == {rust.JSON_FEATURE: ["dep:serde_json"]}
    assert manifest["profile"]["release"]["opt-level"] == "s"
    assert manifest["profile"]["release"]["package"]["fnb_cell"]["overflow-checks"] is True


@needs_rust  # deploy checks the toolchain first
@pytest.mark.parametrize(("front", "line", "match"), [
    ("---\n[dependencies]\nregex = \"1\"\n", 1, "no closing `---`"),
    ("---rust\n[dependencies]\n---\n", 1, "infostring is `rust`"),
    ("\n--- cargo clippy\n[dependencies]\n---\n", 2, "does not open a front matter"),
    ("---\n[dependencies]\n----\n---\n", 3, "starts with the front matter's fence"),
    ("---\n[dependencies]\nregex = \n---\n", 3, "not valid TOML"),
    ("---\n[package]\nedition = \"2021\"\n---\n", 1, r"\[package\].*edition is a deploy flag"),
    ("---\n[build-dependencies]\ncc = \"1\"\n---\n", 1, "build-dependencies"),
    ("---\n[dependencies]\nsecret = { path = \"/etc\" }\n---\n", 1, "`path` is not allowed"),
    ("---\n[dependencies]\nx = { git = \"https://example.org/x\" }\n---\n", 1, "`git` is not allowed"),
    ("---\n[dependencies]\nx = { version = \"1\", registry = \"mine\" }\n---\n", 1,
     "`registry` is not allowed"),
    ("---\n[dependencies]\nx = { version = \"1\", target = \"x\" }\n---\n", 1, "`target` is not read"),
    ("---\n[dependencies]\nx = { features = [\"a\"] }\n---\n", 1, "needs a version requirement"),
    ("---\n[dependencies]\nx = \"1; rm -rf /\"\n---\n", 1, "needs a version requirement"),
    ("---\n[dependencies]\n\"../x\" = \"1\"\n---\n", 1, "not a crate name"),
    ("---\n[dependencies]\nx = { version = \"1\", features = [\"a b\"] }\n---\n", 1,
     "features must be a list"),
    ("---\n[dependencies]\njson = { version = \"1\", package = \"serde_json\" }\n---\n", 1,
     "used by the glue under its own name"),
    ("---\n[dependencies]\n" + "".join(f"c{i} = \"1\"\n" for i in range(65)) + "---\n", 1,
     "at most 64"),
])
def test_invalid_declarations_are_refused_before_any_registry(fx, dead_registry, monkeypatch,
                                                               front, line, match) -> None:
    for key, value in dead_registry.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DependencyError, match=match) as err:
        fx.deploy("rust", front + "fn f() -> i32 { 1 }\n", name="f")
    assert err.value.line == line
    assert "127.0.0.1:9" not in str(err.value)  # refused here, no registry asked


# -- deploy, invoke, the lock -----------------------------------------------------------------

@needs_rust
def test_a_crate_from_crates_io_is_locked_stored_and_used(fx) -> None:
    info = fx.deploy("rust", NUMBERS_RS, name="numbers")
    assert fx.invoke("numbers", "a1 b22 c333 and 4444") == ["1", "22", "333", "4444"]
    lock = Lock.from_dict(info.dependencies)
    assert lock.ecosystem == "crates" and lock.declared == ('regex = "1"',)
    cargo_lock = tomllib.loads(lock.extra)
    locked = {p["name"]: p for p in cargo_lock["package"] if "source" in p}
    assert {"regex", "regex-syntax", "regex-automata", "serde", "serde_json"} <= locked.keys()
    assert [p.name for p in lock.packages] == sorted(locked)  # every crate of the lock
    for pkg in lock.packages:  # each file is a blob whose sha256 is crates.io's checksum
        assert pkg.file == f"{pkg.name}-{pkg.version}.crate"
        assert pkg.version == locked[pkg.name]["version"]
        assert pkg.sha256 == pkg.registry_hash == locked[pkg.name]["checksum"]
        assert hashlib.sha256(fx.store.get_blob(pkg.sha256)).hexdigest() == pkg.sha256
    row = fx.versions("numbers", detail=True)[-1]
    assert {(d["name"], d["version"]) for d in row["dependencies"]} >= {
        ("regex", locked["regex"]["version"])}
    # a redeploy with the same declarations reuses the lock: no registry asked
    again = fx.deploy("rust", NUMBERS_RS.replace("in order", "in the order found"), name="numbers")
    assert again.version == 2 and again.dependencies == info.dependencies


@needs_rust
def test_a_compile_error_in_a_cell_with_crates_names_its_cell_line(fx) -> None:
    broken = NUMBERS_RS.replace("m.as_str().to_string()", "m.as_str().to_strin()")
    with pytest.raises(CompileError, match="to_strin") as err:
        fx.deploy("rust", broken, name="numbers")
    assert err.value.line == 10 and "cell:10" in str(err.value)
    assert not isinstance(err.value, DependencyError)
    # in a notebook the %%function line comes first: lines count from the cell's top
    with pytest.raises(CompileError, match="to_strin") as err:
        fx.deploy("rust", "#!/usr/bin/env cargo\n" + broken, name="numbers", line_offset=1)
    assert err.value.line == 12


@needs_rust
def test_the_cell_s_flags_hold_with_crates(fx) -> None:
    """Overflow checks in the cell's own code (on by default, as in a plain Rust cell), the
    edition from the deploy flag; the crates built for the lock are reused."""
    src = NUMBERS_RS.replace("fn numbers(text: &str) -> Vec<String> {",
                             "fn digits(text: &str, bump: u8) -> u8 {\n    let _ = "
                             "Regex::new(r\"x\").unwrap();\n    let n = text.len() as u8;\n"
                             "    return n + bump;\n}\nfn numbers(text: &str) -> Vec<String> {")
    fx.deploy("rust", src.replace("fn numbers(", "fn unused("), name="digits")
    assert fx.invoke("digits", "abc", 5) == 8
    with pytest.raises(Exception, match="overflow"):
        fx.invoke("digits", "abc", 255)
    fx.deploy("rust", src.replace("fn numbers(", "fn unused("), name="digits",
              flags={"overflow_checks": False, "edition": "2021"})
    assert fx.invoke("digits", "abc", 255) == 2  # wraps, as asked
    with pytest.raises(CompileError, match="let chains|let` expressions"):  # 2021 has none
        fx.deploy("rust", src.replace("let _ = ", "if let Ok(_) = Regex::new(\"y\") && true "
                                      "{}\n    let _ = "), name="digits", flags={"edition": "2021"})


@needs_rust
def test_a_function_without_the_declaration_cannot_use_the_crate(fx) -> None:
    with pytest.raises(CompileError, match="regex") as err:
        fx.deploy("rust", UNDECLARED_RS, name="count_numbers")
    assert not isinstance(err.value, DependencyError) and err.value.line == 1


@needs_rust
@pytest.mark.slow  # serde's proc macro (syn) builds for this lock
def test_the_cell_s_own_serde_and_the_glue_s_json(fx) -> None:
    fx.deploy("rust", SERDE_RS, name="total")
    got = fx.invoke("total", [{"item": "tea", "qty": 2, "price": 1.25},
                              {"item": "jam", "qty": 1, "price": 3.5}])
    assert got == {"items": 2, "amount": 6.0, "json": '["tea","jam"]'}
    with pytest.raises(Exception, match="qty"):  # serde's own error, through the glue
        fx.invoke("total", [{"item": "tea", "price": 1.0}])


@needs_rust
def test_unknown_crate_and_version_are_refused_naming_them(fx) -> None:
    body = "fn f() -> i32 { 1 }\n"
    with pytest.raises(DependencyError, match="fnb_no_such_crate_q7"):
        fx.deploy("rust", "---\n[dependencies]\nfnb_no_such_crate_q7 = \"1\"\n---\n" + body,
                  name="f")
    with pytest.raises(DependencyError, match=r"(?s)regex.*999"):
        fx.deploy("rust", "---\n[dependencies]\nregex = \"999\"\n---\n" + body, name="f")


@needs_rust
def test_a_crate_that_cannot_build_for_wasm32_is_named_with_the_compiler_s_message(fx) -> None:
    with pytest.raises(CompileError) as err:
        fx.deploy("rust", GETRANDOM_RS, name="roll")
    text = str(err.value)
    assert "crate getrandom 0.2." in text and "wasm32-unknown-unknown" in text
    assert "\"js\" feature" in text  # getrandom's own compile_error!


def test_a_module_importing_javascript_bindings_is_refused_naming_who_brought_them() -> None:
    """What a crate's ``js`` feature builds (seen with getrandom 0.2 + js): a module importing
    wasm-bindgen's placeholder module, which no runtime here provides."""
    import wasmtime

    name = b"__wbindgen_placeholder__"
    imports = bytes([1, len(name)]) + name + bytes([1]) + b"f" + bytes([0, 0])
    module = (b"\0asm\x01\0\0\0" + bytes([1, 4, 1, 0x60, 0, 0])
              + bytes([2, len(imports)]) + imports)
    wasmtime.Module.validate(wasmtime.Engine(), module)  # a real module
    lock = textwrap.dedent("""\
        [[package]]
        name = "getrandom"
        version = "0.2.17"
        source = "registry+https://github.com/rust-lang/crates.io-index"
        dependencies = ["cfg-if", "js-sys", "wasm-bindgen"]

        [[package]]
        name = "js-sys"
        version = "0.3.107"
        source = "registry+https://github.com/rust-lang/crates.io-index"
        dependencies = ["wasm-bindgen 0.2.100"]
        """)
    assert rust.js_bindings(module, lock) == ["getrandom 0.2.17", "js-sys 0.3.107"]
    assert rust.js_bindings(module.replace(name, b"fnb" + b"_" * 21), lock) is None


@needs_rust
def test_the_build_uses_the_lock_as_it_is(fx) -> None:
    """A lock whose Cargo.lock disagrees with its files, or names a file that is not a crate,
    is refused by the build (cargo --frozen, the unpacking)."""
    info = fx.deploy("rust", NUMBERS_RS, name="numbers")
    lock = Lock.from_dict(info.dependencies)
    files = tuple(materialize(lock.packages, fx.store))
    regex = next(p for p in lock.packages if p.name == "regex")
    forged = lock._replace(extra=lock.extra.replace(regex.sha256, "0" * 64))
    with pytest.raises(CompileError, match=r"(?s)checksum.*regex"):
        get_language("rust").compile(NUMBERS_RS, "numbers", force=True,
                                     deps=Resolved(forged, files))
    hostile = lock._replace(packages=tuple(p._replace(name="../../x") for p in lock.packages))
    with pytest.raises(DependencyError, match="not a crate name"):
        get_language("rust").compile(NUMBERS_RS, "numbers", force=True,
                                     deps=Resolved(hostile, files))



def _fnv_rs(front: str, hex_too: bool) -> str:
    """A cell hashing its text with fnv (FNV-1a, 64 bits), in hex by hand or with hex."""
    body = ("hex::encode(h.finish().to_be_bytes())" if hex_too
            else "format!(\"{:016x}\", h.finish())")
    return (f"---\n[dependencies]\n{front}---\nuse std::hash::Hasher;\n\n"
            f"fn fnv64(text: &str) -> String {{\n    let mut h = fnv::FnvHasher::default();\n"
            f"    h.write(text.as_bytes());\n    {body}\n}}\n")


def _fnv1a(text: str) -> str:
    h = 0xcbf29ce484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001b3) % (1 << 64)
    return f"{h:016x}"


def _versions(info) -> dict[str, str]:
    return {p.name: p.version for p in Lock.from_dict(info.dependencies).packages}


@needs_rust
def test_a_changed_declaration_keeps_the_other_crates_at_their_locked_versions(fx) -> None:
    """As cargo with the project's Cargo.lock present: a crate unpinned afterwards stays at the
    version its old pin locked, a new crate is added; a pin excluding the locked version moves
    the crate."""
    old = "1.0.5"  # an older fnv than crates.io's newest 1.x
    fresh, _ = crates.resolver().resolve(('fnv = "1"',), language="rust", name="probe")
    newest = next(f.package.version for f in fresh if f.package.name == "fnv")
    assert newest != old  # without a previous lock, cargo takes the newest

    pinned = fx.deploy("rust", _fnv_rs(f'fnv = "={old}"\n', False), name="fnv64")
    assert _versions(pinned)["fnv"] == old and "hex" not in _versions(pinned)
    assert fx.invoke("fnv64", "hello") == _fnv1a("hello")

    added = fx.deploy("rust", _fnv_rs('fnv = "1"\nhex = "0.4"\n', True), name="fnv64")
    lock = Lock.from_dict(added.dependencies)
    assert lock.declared == ('fnv = "1"', 'hex = "0.4"')
    got = _versions(added)
    assert got["fnv"] == old and "hex" in got  # kept, added
    assert {n: v for n, v in got.items() if n != "hex"} == _versions(pinned)  # nothing else moved
    assert f'name = "fnv"\nversion = "{old}"' in lock.extra and 'name = "hex"' in lock.extra
    assert fx.invoke("fnv64", "hello") == _fnv1a("hello")
    row = fx.versions("fnv64", detail=True)[-1]
    assert {("fnv", old), ("hex", got["hex"])} <= {(d["name"], d["version"])
                                                   for d in row["dependencies"]}

    moved = fx.deploy("rust", _fnv_rs('fnv = ">1.0.5"\nhex = "0.4"\n', True), name="fnv64")
    assert _versions(moved)["fnv"] == newest  # the cell's pin wins over the previous lock
    assert _versions(moved)["hex"] == got["hex"]
    assert fx.invoke("fnv64", "world") == _fnv1a("world")


# -- another machine, the registry gone -----------------------------------------------------

@needs_rust
@pytest.mark.slow  # the crates build again in the second machine's empty cache
def test_a_second_machine_builds_and_runs_from_the_store_alone(fx, tmp_path, monkeypatch,
                                                               dead_registry) -> None:
    first = fx.deploy("rust", NUMBERS_RS, name="numbers")
    lock = first.dependencies

    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache-b"))
    for key, value in dead_registry.items():
        monkeypatch.setenv(key, value)
    other = Functions(store=str(tmp_path / "store"), history=False)
    try:
        assert other.invoke("numbers", "7 of 9") == ["7", "9"]
        changed = NUMBERS_RS.replace(r'r"\d+"', r'r"\d+(\.\d+)?"')
        rebuilt = other.deploy("rust", changed, name="numbers")  # a real build, offline
        assert rebuilt.version == 2 and rebuilt.dependencies == lock
        assert other.invoke("numbers", "pi is 3.14, e 2.72") == ["3.14", "2.72"]
        files = sorted(p.name for p in (tmp_path / "cache-b" / "deps").glob("*/*"))
        assert files == sorted(p["file"] for p in lock["packages"])  # from the store's blobs
        with pytest.raises(DependencyError, match="127.0.0.1 port 9"):  # the registry is gone
            other.deploy("rust", "---\n[dependencies]\nitoa = \"1\"\n---\n"
                         "fn f(n: u32) -> String { itoa::Buffer::new().format(n).to_string() }\n",
                         name="f")
    finally:
        other.close()

    script = textwrap.dedent(f"""\
        from functions_nb import Functions
        fx = Functions(store={str(tmp_path / "store")!r}, history=False)
        print(fx.invoke("numbers@1", "10 green bottles, 9 left"))
        print(fx.info("numbers").dependencies == {lock!r})
        fx.close()
        """)
    env = {**os.environ, "FUNCTIONS_NB_CACHE": str(tmp_path / "cache-c"), **dead_registry}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["['10', '9']", "True"]
