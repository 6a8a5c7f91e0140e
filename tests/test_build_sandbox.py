"""Every build runs sandboxed: a cell cannot read host files or environment variables at compile
time (Rust include_str!/include_bytes!/env!/option_env!, esbuild imports, Zig @embedFile, Go
//go:embed, AssemblyScript imports), nothing endless can be read, and refused cells leave nothing
deployed. Plus the runner itself: clean environment, no network, limits, output cap, and builds
that still run (with ``func doctor`` saying so) where bubblewrap does not work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from functions_nb import CompileError, doctor
from functions_nb.languages import base, get_language
from functions_nb.languages.base import BuildSandbox, run_tool
from functions_nb.runtimes.host import sandbox

SECRET_VAR = "FNB_BUILD_SECRET"
SECRET = "s3cr3t-do-not-leak"


def bwrap_works() -> bool:
    return bool(base.build_layers()["bwrap"])


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A host file outside every build directory."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    (tmp_path / "secret.json").write_text(json.dumps({"token": SECRET}))
    return path


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_VAR, SECRET)
    return SECRET_VAR


def refused(fx, language: str, source: str, name: str, *needles: str,
            line: int | None = 2) -> CompileError:
    """Deploying ``source`` fails with a CompileError naming ``needles`` (and ``line``), the
    secret is nowhere in it, and nothing is deployed."""
    before = fx.list()
    with pytest.raises(CompileError) as info:
        fx.deploy(language, source, name=name)
    text = str(info.value)
    for needle in needles:
        assert needle in text, text
    assert SECRET not in text
    if line is not None:
        assert info.value.line == line, text
    assert fx.list() == before
    return info.value


# -- Rust ---------------------------------------------------------------------------------------

RS = "// a cell\nfn {name}() -> usize {{ {expr} }}\n"


@pytest.mark.parametrize("macro", ["include_str", "include_bytes"])
def test_rust_include_etc_shadow(fx, macro):
    refused(fx, "rust", RS.format(name="r", expr=f'{macro}!("/etc/shadow").len()'), "r",
            "the build cannot read /etc/shadow", "only see the cell's directory and the toolchain")


@pytest.mark.parametrize("macro", ["include_str", "include_bytes"])
def test_rust_include_host_file_outside_the_build(fx, secret_file, macro):
    refused(fx, "rust", RS.format(name="r", expr=f'{macro}!("{secret_file}").len()'), "r",
            f"the build cannot read {secret_file}")


def test_rust_include_host_file_through_concat(fx, secret_file):
    """No literal to scan: the sandbox hides the file (without it, rustc's dep-info shows it)."""
    head, tail = str(secret_file.parent), secret_file.name
    expr = f'include_str!(concat!("{head}", "/", "{tail}")).len()'
    refused(fx, "rust", RS.format(name="r", expr=expr), "r", f"the build cannot read {secret_file}")


def test_rust_include_relative_path_out_of_the_build(fx):
    refused(fx, "rust", RS.format(name="r", expr='include_bytes!("../../../../../etc/passwd").len()'),
            "r", "the build cannot read ../../../../../etc/passwd")


def test_rust_env_macro(fx, secret_env):
    refused(fx, "rust", RS.format(name="r", expr=f'env!("{secret_env}").len()'), "r",
            f"the build cannot read the environment variable {secret_env}", "clean environment")


def test_rust_option_env_macro(fx, secret_env):
    refused(fx, "rust", RS.format(name="r", expr=f'option_env!("{secret_env}").map_or(0, |s| s.len())'),
            "r", f"the build cannot read the environment variable {secret_env}", "clean environment")


def test_rust_option_env_of_an_unset_variable(fx):
    """Even a variable the build does not have is refused (it is still a read of the environment)."""
    refused(fx, "rust", RS.format(name="r", expr='option_env!("HOME").map_or(0, |s| s.len())'), "r",
            "the build cannot read the environment variable HOME")


def test_rust_proc_self_environ(fx, secret_env):
    expr = 'include_bytes!(concat!("/proc/", "self/environ")).len()'
    refused(fx, "rust", RS.format(name="r", expr=expr), "r",
            "the build cannot read /proc/self/environ", line=None)


@pytest.mark.parametrize("path", ['"/dev/zero"', 'concat!("/dev/", "zero")'])
def test_rust_dev_zero_is_refused_quickly(fx, path):
    started = time.monotonic()
    refused(fx, "rust", RS.format(name="r", expr=f"include_bytes!({path}).len()"), "r",
            "the build cannot read /dev/zero", line=None)
    assert time.monotonic() - started < 120  # not stopped by an outside limit


# -- JavaScript / TypeScript (esbuild) ------------------------------------------------------------

@pytest.mark.parametrize("language", ["javascript", "typescript"])
def test_esbuild_absolute_import_with_text_type(fx, language):
    src = 'const x = 1;\nimport s from "/etc/passwd" with { type: "text" };\n' \
          "export function r() { return s }\n"
    refused(fx, language, src, "r", "import '/etc/passwd'", "the build cannot read /etc/passwd")


def test_esbuild_absolute_import_of_a_txt_file(fx, secret_file):
    src = f'const x = 1;\nimport s from "{secret_file}";\nfunction r() {{ return s }}\n'
    refused(fx, "javascript", src, "r", f"import '{secret_file}'", "only see the cell's directory")


def test_esbuild_absolute_import_of_a_json_file(fx, secret_file):
    path = secret_file.with_suffix(".json")
    src = f'const x = 1;\nimport s from "{path}";\nfunction r() {{ return s.token }}\n'
    refused(fx, "javascript", src, "r", f"import '{path}'")


def test_esbuild_parent_directory_and_require(fx):
    refused(fx, "javascript", 'const x = 1;\nimport s from "../../../secret.txt";\nfunction r() { return s }',
            "r", "import '../../../secret.txt'")
    refused(fx, "javascript", '// x\nconst s = require("/etc/hostname");\nfunction r() { return s }',
            "r", "import '/etc/hostname'")
    refused(fx, "javascript", '// x\nexport { default } from "file:///etc/hostname";\nfunction r() { return 1 }',
            "r", "file:///etc/hostname")


def test_esbuild_escaped_specifier_is_still_refused(fx, secret_file):
    """An escape the import scan does not decode: the sandbox (or esbuild's metafile) refuses."""
    escaped = str(secret_file).replace("/", "\\u002f")
    src = f'const x = 1;\nimport s from "{escaped}" with {{ type: "text" }};\nfunction r() {{ return s }}\n'
    refused(fx, "javascript", src, "r", f"the build cannot read {secret_file}", line=None)


def test_esbuild_dev_zero(fx):
    src = 'const x = 1;\nimport z from "/dev/zero" with { type: "text" };\nfunction r() { return z.length }\n'
    started = time.monotonic()
    refused(fx, "javascript", src, "r", "import '/dev/zero'")
    assert time.monotonic() - started < 120


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap does not work here")
def test_esbuild_itself_cannot_see_host_files(tmp_path, secret_file):
    """Below the import scan: esbuild in its sandbox does not find a host file."""
    from functions_nb.languages.typescript import esbuild_path

    esbuild = str(esbuild_path())
    work = tmp_path / "build"
    work.mkdir()
    (work / "cell.js").write_text(f'import s from "{secret_file}";\nexport default s;\n')
    proc = run_tool([esbuild, "cell.js", "--bundle", "--outfile=out.js"], cwd=work,
                    sandbox_=BuildSandbox(tools=(esbuild,)))
    assert proc.returncode != 0 and "Could not resolve" in proc.stderr
    assert not (work / "out.js").exists()


# -- Zig, Go, AssemblyScript (refused before; kept refused) ----------------------------------------

@pytest.mark.parametrize("path", ["/etc/passwd", "SECRET"])
def test_zig_embed_file(fx, secret_file, path):
    path = str(secret_file) if path == "SECRET" else path
    src = f'const std = @import("std");\nconst s = @embedFile("{path}");\n' \
          "fn r() usize { return s.len; }\n"
    refused(fx, "zig", src, "r", path)


@pytest.mark.parametrize("pattern", ["/etc/passwd", "../secret.txt", "SECRET"])
def test_go_embed(fx, secret_file, pattern):
    pattern = str(secret_file) if pattern == "SECRET" else pattern
    src = f'import _ "embed"\n//go:embed {pattern}\nvar s string\n' \
          "func r() int32 { return int32(len(s)) }\n"
    refused(fx, "go", src, "r", "pattern", line=2)


@pytest.mark.parametrize("path", ["/etc/passwd", "SECRET", "../../secret"])
def test_assemblyscript_import_of_a_host_path(fx, secret_file, path):
    path = str(secret_file.with_suffix("")) if path == "SECRET" else path
    src = f'// cell\nimport {{ x }} from "{path}";\nexport function r(): i32 {{ return 1; }}\n'
    refused(fx, "assemblyscript", src, "r", "not found")


# -- C#: mcs has no way for a cell to read a file; it runs sandboxed ----------------------------

@pytest.mark.skipif(not bwrap_works() or not shutil.which("mcs"), reason="needs bubblewrap and mcs")
def test_mcs_runs_sandboxed(tmp_path, secret_file):
    """mcs in the C# build sandbox cannot open a host file even when told to (a resource)."""
    cs = get_language("csharp")
    work = tmp_path / "build"
    work.mkdir()
    (work / "cell.cs").write_text("public static class C { public static int f() { return 1; } }\n")
    proc = run_tool([*cs._mcs(), "-target:library", f"-resource:{secret_file}", "cell.cs"],
                    cwd=work, sandbox_=cs.build_sandbox())
    assert proc.returncode != 0 and "CS1566" in proc.stdout + proc.stderr
    proc = run_tool([*cs._mcs(), "-target:library", "cell.cs"], cwd=work, sandbox_=cs.build_sandbox())
    assert proc.returncode == 0 and (work / "cell.dll").exists()


def test_python_deploy_runs_nothing_of_the_cell_on_the_host(fx, tmp_path):
    """Python's deploy-time checks parse the cell; none of its code runs on the host."""
    marker = tmp_path / "ran"
    src = f"open({str(marker)!r}, 'w').write('x')\n\ndef p() -> int:\n    return 1\n"
    fx.deploy("python", src, name="p")
    assert not marker.exists()


# -- the runner ----------------------------------------------------------------------------------

def test_clean_environment(tmp_path, secret_env):
    proc = run_tool(["/usr/bin/env"], cwd=tmp_path, sandbox_=BuildSandbox(tools=("/usr/bin/env",)))
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert secret_env not in env and SECRET not in proc.stdout
    assert env["HOME"] == str(tmp_path) and env["TMPDIR"].startswith(str(tmp_path))
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LC_ALL", "PWD"}  # PWD: bubblewrap's --chdir


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap does not work here")
def test_only_the_declared_files_and_no_network(tmp_path, secret_file):
    ls = BuildSandbox(tools=("/bin/ls", "/bin/cat"), proc=True)
    proc = run_tool(["/bin/ls", "/", str(secret_file.parent)], sandbox_=ls)
    assert "No such file" in proc.stderr  # the secret's folder is not there
    assert "etc" not in proc.stdout.split() and "root" not in proc.stdout.split()
    net = run_tool(["/bin/cat", "/proc/net/dev"], sandbox_=ls).stdout
    interfaces = [line.split(":")[0].strip() for line in net.splitlines() if ":" in line]
    assert interfaces == ["lo"]


def test_timeout_kills_the_build(tmp_path):
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_tool(["/bin/sleep", "60"], cwd=tmp_path, timeout=0.5,
                 sandbox_=BuildSandbox(tools=("/bin/sleep",)))
    assert time.monotonic() - started < 30


def test_output_is_capped(tmp_path):
    proc = run_tool(["/usr/bin/seq", "1", "300000"], cwd=tmp_path, max_output=1000,
                    sandbox_=BuildSandbox(tools=("/usr/bin/seq",)))
    assert proc.returncode == 0
    head, _, note = proc.stdout.rpartition("\n[output cut: ")
    assert len(head.encode()) == 1000 and note.endswith("KiB]")


def test_file_size_limit(tmp_path):
    box = BuildSandbox(tools=("/bin/sh", "/usr/bin/seq"), fsize_mb=1)
    proc = run_tool(["/bin/sh", "-c", "seq 1 2000000 > big.txt"], cwd=tmp_path, sandbox_=box)
    assert proc.returncode != 0 and "stopped by its file size limit (1 MB)" in proc.stderr
    assert (tmp_path / "big.txt").stat().st_size <= 1 << 20


def test_cpu_time_limit(tmp_path):
    box = BuildSandbox(tools=("/bin/sh",), cpu_s=1)
    proc = run_tool(["/bin/sh", "-c", "while :; do :; done"], cwd=tmp_path, sandbox_=box, timeout=120)
    assert proc.returncode != 0 and "stopped by its CPU time limit (1 s)" in proc.stderr


def test_builds_run_without_bubblewrap_and_doctor_says_so(fx, monkeypatch, secret_env):
    monkeypatch.setenv("FUNCTIONS_NB_SANDBOX", "0")
    monkeypatch.setattr(sandbox, "_probed", {})
    assert not base.build_layers()["bwrap"]
    rows = doctor()
    assert not rows[0]["build"]["sandboxed"] and "NO build sandbox" in rows[0]["build"]["summary"]
    fx.deploy("rust", RS.format(name="ok", expr="7"), name="ok")
    assert fx.invoke("ok") == 7
    refused(fx, "rust", RS.format(name="r", expr=f'option_env!("{secret_env}").map_or(0, |s| s.len())'),
            "r", f"environment variable {secret_env}")
    refused(fx, "rust", RS.format(name="r", expr='include_str!(concat!("/etc/", "shadow")).len()'), "r",
            "the build cannot read /etc/shadow", line=None)


def test_doctor_reports_the_build_sandbox():
    rows = doctor()
    build = rows[0]["build"]
    assert all(r["build"] == build for r in rows)
    assert build["sandboxed"] == bwrap_works()
    if build["sandboxed"]:
        assert build["summary"].startswith("bubblewrap (no network; only the toolchain")


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap does not work here")
def test_asc_server_runs_sandboxed(fx):
    """The long-lived AssemblyScript compiler runs under bubblewrap (no host /etc), started from
    the spawner thread."""
    from functions_nb.languages import assemblyscript

    fx.deploy("assemblyscript", "export function one(): i32 { return 1; }", name="one")
    pid = assemblyscript.server().pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert os.path.basename(cmdline[0]) in (b"prlimit", b"bwrap") and b"--unshare-net" in cmdline
