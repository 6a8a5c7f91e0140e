"""`make lab` opens JupyterLab on notebooks/ with the sidebar and the REST API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

from tests.jupyter_process import stop_group, wait_healthy
from tests.s3server import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_make_lab_serves_the_notebooks_the_sidebar_and_the_api(tmp_path):
    port = free_port()
    args = (f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token=t "
            f"--LabApp.extension_manager=readonly --FunctionsNB.store={tmp_path / 'store'}")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "MAKEFLAGS": ""}
    log = tmp_path / "make-lab.log"
    proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    headers = {"Authorization": "token t"}

    def get(path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        return urllib.request.urlopen(req, timeout=5).read()

    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", "t", log, timeout=240)  # make checks the set-up first
        contents = json.loads(get("/api/contents"))
        assert {"quickstart.ipynb", "languages.ipynb", "cascade.ipynb", "storage.ipynb",
                "observability.ipynb", "scaleout.ipynb"} <= {c["name"] for c in contents["content"]}
        page = get("/lab").decode()
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.S).group(1))
        assert "functions-nb" in {ext["name"] for ext in config["federated_extensions"]}
    finally:
        stop_group(proc, wait=20)
