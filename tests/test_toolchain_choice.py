"""Choosing a toolchain per function: ``--toolchain``/``--edition`` deploy flags (magic, CLI,
SDK), Zig 0.16 fetched on first use into the cache (never the environment), flags a language
does not know refused naming what it accepts, ``func doctor`` listing the choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from functions_nb import BadArguments, CompileError, Functions, ToolchainMissing, doctor
from functions_nb.doctor import format_report
from functions_nb.languages import fetched, get_language

FUNC = [str(Path(sys.executable).with_name("func"))]

#: Written for Zig 0.16: the array-repeat operator ``**``, which Zig 0.17 removed.
PANGRAM = """const std = @import("std");

fn is_pangram(s: []const u8) bool {
    var seen = [_]bool{false} ** 26;
    for (s) |c| if (std.ascii.isAlphabetic(c)) {
        seen[std.ascii.toLower(c) - 'a'] = true;
    };
    std.log.info("checked {d} bytes", .{s.len});
    for (seen) |x| if (!x) return false;
    return true;
}
"""
FOX = "The quick brown fox jumps over the lazy dog"


def test_zig_016_program_deploys_and_runs_with_fx_deploy(fx):
    info = fx.deploy("zig", PANGRAM, "is_pangram", flags={"toolchain": "zig-0.16"})
    assert info.toolchain == {"zig": "0.16.0"} and info.flags == {"toolchain": "zig-0.16"}
    ex = fx.run("is_pangram", FOX)
    assert ex.value is True and [c[:2] for c in ex.console] == [("info", "checked 43 bytes")]
    assert fx.invoke("is_pangram", "abc") is False
    stored = fx.store.get_info("is_pangram", info.version)  # read back from the store
    assert stored.toolchain == {"zig": "0.16.0"} and stored.flags == {"toolchain": "zig-0.16"}
    again = fx.deploy("zig", PANGRAM, "is_pangram", flags={"toolchain": "zig-0.16"})
    assert again.cached and again.version == info.version
    # the default toolchain's build of the same source is a different version (hash follows it)
    fixed = PANGRAM.replace("var seen = [_]bool{false} ** 26;", "var seen: [26]bool = @splat(false);")
    on16 = fx.deploy("zig", fixed, "is_pangram", flags={"toolchain": "zig-0.16"})
    on17 = fx.deploy("zig", fixed, "is_pangram")
    assert on16.version != on17.version and on16.content_hash != on17.content_hash
    assert on17.toolchain["zig"].startswith("0.17") and fx.invoke("is_pangram", FOX) is True


def test_zig_016_toolchain_lives_in_the_cache_not_the_environment(fx):
    fx.deploy("zig", PANGRAM, "is_pangram", flags={"toolchain": "zig-0.16"})
    zig = get_language("zig")
    chosen = zig.toolchain_for({"toolchain": "zig-0.16"})
    assert Path(chosen.path).is_file() and chosen.version == "0.16.0"
    assert Path(chosen.path).is_relative_to(fetched.toolchains_dir())
    assert not Path(chosen.path).is_relative_to(sys.prefix)
    assert zig.toolchain().version.startswith("0.17")  # the environment's default is unchanged
    row = next(r for r in doctor() if r["language"] == "zig")
    assert row["choices"] == [{"flag": "toolchain", "value": "zig-0.16", "version": "0.16.0",
                               "installed": True, "path": chosen.path, "detail": "installed"}]
    assert f"--toolchain zig-0.16: 0.16.0, installed: {chosen.path}" in format_report([row])


def test_zig_016_program_through_the_magic(ip, capsys):
    r = ip.run_cell(f"%%function zig is_pangram --toolchain zig-0.16\n{PANGRAM}")
    assert r.success, r.error_in_exec
    assert "deployed zig is_pangram@1" in capsys.readouterr().out
    magics = ip.magics_manager.registry["FunctionsMagics"]
    assert magics.last.toolchain == {"zig": "0.16.0"} and magics.last.flags == {"toolchain": "zig-0.16"}
    r = ip.run_cell(f"%invoke is_pangram '{FOX}'")
    assert r.success and r.result is True


def test_zig_016_only_code_under_the_default_names_the_option(fx, ip, capsys):
    with pytest.raises(CompileError) as err:
        fx.deploy("zig", PANGRAM, "is_pangram")
    text = str(err.value)
    assert err.value.line == 4 and "Zig 0.17 removed the array-repeat operator `**`" in text
    assert "--toolchain zig-0.16" in text and '{"toolchain": "zig-0.16"}' in text
    r = ip.run_cell(f"%%function zig is_pangram\n{PANGRAM}")
    assert not r.success and r.error_in_exec.line == 5  # the %%function line is line 1
    assert "--toolchain zig-0.16" in str(r.error_in_exec)
    # the hint is about 0.17 only: a 0.16 build with a real mistake does not get it
    with pytest.raises(CompileError) as err16:
        fx.deploy("zig", PANGRAM.replace("** 26", "** zz"), "is_pangram",
                  flags={"toolchain": "zig-0.16"})
    assert "zz" in str(err16.value) and "--toolchain" not in str(err16.value)


def test_unknown_toolchain_value_is_refused_naming_the_accepted_ones(fx, ip, capsys):
    with pytest.raises(BadArguments) as err:
        fx.deploy("zig", PANGRAM, "is_pangram", flags={"toolchain": "zig-0.15"})
    assert "toolchain=zig-0.15" in str(err.value) and "zig-0.17, zig-0.16" in str(err.value)
    r = ip.run_cell(f"%%function zig is_pangram --toolchain 0.16\n{PANGRAM}")
    assert isinstance(r.error_in_exec, BadArguments)
    assert "toolchain=0.16 is not accepted" in str(r.error_in_exec)
    assert "zig-0.17, zig-0.16" in str(r.error_in_exec)
    assert fx.list() == []  # nothing was compiled or stored


def test_unknown_flag_is_refused_naming_the_accepted_flags(fx, ip, capsys):
    with pytest.raises(BadArguments) as err:
        fx.deploy("zig", PANGRAM, "is_pangram", flags={"edition": "2021"})
    text = str(err.value)
    assert "zig does not accept the deploy flag 'edition'" in text
    assert "toolchain (zig-0.17, zig-0.16)" in text and "optimize (ReleaseSafe" in text
    go = "func Add(a int, b int) int {\n\treturn a + b\n}\n"
    r = ip.run_cell(f"%%function go Add --toolchain go-1.26\n{go}")
    assert isinstance(r.error_in_exec, BadArguments)
    assert "go does not accept the deploy flag 'toolchain'; it accepts none" in str(r.error_in_exec)
    with pytest.raises(BadArguments, match=r"python does not accept the deploy flag 'toolchain'; "
                                           r"it accepts: runtime \(pyodide, wasi\)"):
        fx.deploy("python", "def f():\n    return 1\n", "f", flags={"toolchain": "3.14"})
    # every built-in language declares its flags: --edition is never silently ignored
    for lang, src, name in (("typescript", "function f(): number { return 1; }\n", "f"),
                            ("javascript", "function f() { return 1; }\n", "f"),
                            ("python", "def f():\n    return 1\n", "f"),
                            ("assemblyscript", "function f(): i32 { return 1; }\n", "f")):
        with pytest.raises(BadArguments, match=f"{lang} does not accept the deploy flag 'edition'"):
            fx.deploy(lang, src, name, flags={"edition": "2021"})
    with pytest.raises(BadArguments, match=r"typecheck \(True, False\); strict \(True, False\)"):
        fx.deploy("typescript", "function f(): number { return 1; }\n", "f", flags={"tsc": 1})
    cs = "public static int Twice(int x) { return 2 * x; }\n"
    with pytest.raises(BadArguments, match=r"csharp flag unsafe=1 is not accepted; "
                                           r"unsafe is one of: True, False"):
        fx.deploy("csharp", cs, "Twice", flags={"unsafe": 1})
    # values it does accept still build
    fx.deploy("zig", "fn one() i32 {\n    return 1;\n}\n", "one", flags={"optimize": "ReleaseSmall"})
    assert fx.invoke("one") == 1


def test_cli_deploy_toolchain_and_edition(store, tmp_path):
    env = {**os.environ, "FUNCTIONS_NB_STORE": store}
    src = tmp_path / "is_pangram.zig"
    src.write_text(PANGRAM)
    out = subprocess.run([*FUNC, "deploy", str(src), "--toolchain", "zig-0.16"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "deployed is_pangram@1" in out
    res = subprocess.run([*FUNC, "invoke", "is_pangram", json.dumps([FOX])], env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) is True
    fx = Functions(store=store)
    try:
        assert fx.info("is_pangram").toolchain == {"zig": "0.16.0"}
    finally:
        fx.close()
    bad = subprocess.run([*FUNC, "deploy", str(src), "--edition", "2021"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "zig does not accept the deploy flag 'edition'" in bad.stderr
    assert "Traceback" not in bad.stderr


# -- the fetch machinery, with a package built here (no network) ---------------------------

def _wheel(folder: Path, name: str = "fnbprobe", version: str = "1.0") -> None:
    """A minimal pure-Python wheel of ``name`` in ``folder`` (what pip installs from)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)


FETCH = """import sys, time
from functions_nb.languages.fetched import fetch
def check(tmp):
    time.sleep(1.0)  # hold the lock a while, so the other process really waits
    return None if (tmp / "fnbprobe" / "__init__.py").is_file() else "no package"
print(fetch("fnbprobe==1.0", "fnbprobe-1.0", what="probe", check=check))
"""


def _offline_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FUNCTIONS_NB_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(tmp_path / "wheels")}


def test_fetch_is_idempotent_and_safe_against_two_processes(tmp_path):
    _wheel(tmp_path / "wheels")
    env = _offline_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", FETCH], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    target = tmp_path / "cache" / "toolchains" / "fnbprobe-1.0"
    assert [o[0].strip() for o in outs] == [str(target)] * 2
    announced = [line for _, err in outs for line in err.splitlines() if "fetching probe" in line]
    assert len(announced) == 1  # one process installed, the other waited and found it
    assert (target / "fnbprobe" / "__init__.py").read_text() == "VERSION = '1.0'\n"
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]  # nothing half-done
    again = subprocess.run([sys.executable, "-c", FETCH], env=env, text=True, capture_output=True,
                           check=True)
    assert again.stdout.strip() == str(target) and "fetching" not in again.stderr


def test_failed_fetch_says_how_to_install_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "wheels").mkdir()  # an index with nothing in it
    for key, value in _offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ToolchainMissing) as err:
        fetched.fetch("fnbprobe==1.0", "fnbprobe-1.0", what="probe", say=lambda _: None)
    assert "pip install fnbprobe==1.0 failed" in str(err.value)
    assert "install it by hand with:" in str(err.value) and "--target" in str(err.value)
    assert not fetched.is_fetched("fnbprobe-1.0")
    _wheel(tmp_path / "wheels")
    with pytest.raises(ToolchainMissing, match="the fetched probe does not work: refused"):
        fetched.fetch("fnbprobe==1.0", "fnbprobe-1.0", what="probe", say=lambda _: None,
                      check=lambda _tmp: "refused")
    assert not fetched.is_fetched("fnbprobe-1.0")
    assert [p.name for p in fetched.toolchains_dir().iterdir()] == [".fnbprobe-1.0.lock"]


def test_doctor_lists_zig_016_as_available_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "fresh"))
    row = next(r for r in doctor() if r["language"] == "zig")
    assert row["usable"] and row["version"].startswith("0.17")
    choice = row["choices"][0]
    assert choice["value"] == "zig-0.16" and not choice["installed"] and choice["path"] == ""
    assert "--toolchain zig-0.16: 0.16.0, available on first use (PyPI ziglang==0.16.0" \
        in format_report([row])



def test_zig_016_builds_run_in_a_sandbox_that_binds_its_folder(fx):
    from functions_nb.languages.base import build_layers

    fx.deploy("zig", PANGRAM, "is_pangram", flags={"toolchain": "zig-0.16"})
    zig = get_language("zig")
    folder = str(Path(zig.toolchain_for({"toolchain": "zig-0.16"}).path).parent)
    box = zig.build_sandbox("zig-0.16")
    assert box.tools == (f"{folder}/zig",) and box.read == (folder,)
    assert box.write[0].endswith("zig-global-0.16.0")  # its own global cache, not 0.17's
    default = zig.build_sandbox()
    assert folder not in default.read and default.tools != box.tools
    if build_layers()["bwrap"]:  # the deploy above compiled with only that folder visible
        profile = box.profile("zig", "/nonexistent-cwd")
        assert any(folder in str(b) for b in profile.binds)
