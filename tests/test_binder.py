"""binder/ stays in step with the Makefile and pyproject (mybinder.org builds it with repo2docker)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def makefile_var(name: str) -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name}\s*:=\s*(.+)$", text, re.M)
    assert match, name
    return match.group(1).split()


def test_apt_txt_has_the_makefile_toolchains():
    apt = {line.strip() for line in (BINDER / "apt.txt").read_text().splitlines()
           if line.strip() and not line.startswith("#")}
    assert set(makefile_var("APT_PACKAGES")) <= apt
    assert "make" in apt


def test_environment_gives_python_and_a_recent_node():
    text = (BINDER / "environment.yml").read_text()
    python = re.search(r"python=(\d+)\.(\d+)", text)
    node = re.search(r"nodejs=(\d+)", text)
    assert python and node
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and (int(python[1]), int(python[2])) >= (3, 11)
    assert int(node[1]) >= 20  # esbuild 0.28, TypeScript 7 and Pyodide 314 need node >= 20


def test_postbuild_runs_the_makefile_binder_steps(tmp_path):
    post = BINDER / "postBuild"
    assert post.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(post)], check=True)
    assert "make binder" in post.read_text()
    # the dry run: the package with real extras, the npm parts and the sidebar, no apt-get
    plan = subprocess.run(["make", "-n", "binder", f"VENV={tmp_path}/env"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    assert "apt-get install" not in plan.replace("command -v python3", "").split("pip install")[1]
    extras = re.search(r"pip install -q -e '\.\[([^\]]+)\]'", plan)
    assert extras, plan
    known = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras[1].split(",")) <= set(known) and "lab" in extras[1]
    assert "labextension" in plan


def test_readme_has_the_binder_badge():
    readme = (ROOT / "README.md").read_text()
    assert "https://mybinder.org/badge_logo.svg" in readme
    assert re.search(r"https://mybinder\.org/v2/gh/[^)\s]+\?urlpath=lab", readme)


def test_repo2docker_reads_binder_as_meant(tmp_path):
    """repo2docker (what mybinder.org runs) turned into its Dockerfile, without Docker: the
    apt.txt packages, the conda environment from environment.yml, then postBuild as the user."""
    src = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(src)], check=True)
    for name in ("apt.txt", "environment.yml", "postBuild"):  # the working tree's binder/
        shutil.copy2(BINDER / name, src / "binder" / name)
    repo2docker = Path(sys.executable).with_name("repo2docker")
    run = subprocess.run([str(repo2docker), "--no-build", "--no-run", "--debug", "--user-id", "1000",
                          "--user-name", "jovyan", str(src)], capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Building conda environment for python=3.11" in out
    dockerfile = out[out.index("FROM "):]
    apt = re.search(r"apt-get install --yes --no-install-recommends ([^&]+)&&", dockerfile)
    assert apt, dockerfile[:3000]
    assert set(makefile_var("APT_PACKAGES")) | {"make"} <= set(apt[1].split())
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"' in dockerfile
    copy, post = dockerfile.index("COPY --chown=1000:1000 src/ ${REPO_DIR}/"), dockerfile.index(
        "RUN ./binder/postBuild")
    assert copy < post and "USER ${NB_USER}" in dockerfile[copy:post]


def test_postbuild_in_a_fresh_environment(tmp_path):
    """binder/postBuild for real, as repo2docker runs it: a fresh clone and a fresh Python
    environment (NB_PYTHON_PREFIX), then the sidebar and the server extension are enabled there
    and a function deploys and runs."""
    src, env = tmp_path / "repo", tmp_path / "env"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(src)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    run = subprocess.run(["binder/postBuild"], cwd=src, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "NB_PYTHON_PREFIX": str(env), "MAKEFLAGS": "",
                              "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config")})
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    jupyter = str(env / "bin" / "jupyter")
    labext = subprocess.run([jupyter, "labextension", "list"], capture_output=True, text=True)
    assert re.search(r"functions-nb v[\d.]+ \S*enabled\S* \S*OK", labext.stdout + labext.stderr)
    serverext = subprocess.run([jupyter, "server", "extension", "list"], capture_output=True, text=True)
    assert re.search(r"functions_nb\.server \S*enabled", serverext.stdout + serverext.stderr)
    smoke = subprocess.run([str(env / "bin" / "python"), "-c", (
        "from functions_nb import Functions\n"
        f"fx = Functions(store={str(tmp_path / 'store')!r})\n"
        "fx.deploy('rust', 'fn add(a: i32, b: i32) -> i32 { a + b }', 'add')\n"
        "print(fx.invoke('add', 2, 3))\nfx.close()")], capture_output=True, text=True, timeout=300)
    assert smoke.stdout.strip() == "5", smoke.stderr[-3000:]
