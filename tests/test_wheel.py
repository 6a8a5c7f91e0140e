"""The wheel ships the prebuilt JupyterLab sidebar and the file that enables the server extension."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_sidebar_and_the_server_extension(tmp_path):
    # `make setup` has built functions_nb/labextension, so the build hook skips npm here
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = tmp_path.glob("functions_nb-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        data = next(n for n in names if n.endswith(".data/data/share/jupyter/labextensions/"
                                                   "functions-nb/package.json"))
        meta = json.loads(zf.read(data))
        prefix = data.rsplit("/", 1)[0]
        static = [n for n in names if n.startswith(prefix + "/static/")]
        enable = next(n for n in names if n.endswith("etc/jupyter/jupyter_server_config.d/functions_nb.json"))
        assert json.loads(zf.read(enable))["ServerApp"]["jpserver_extensions"]["functions_nb.server"]
    assert meta["name"] == "functions-nb"
    assert meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert prefix + "/" + meta["jupyterlab"]["_build"]["load"] in names
    assert any(n.endswith("style.js") for n in static)
    # build output and npm trees are not package data
    assert not [n for n in names if n.startswith("functions_nb/labextension") or "node_modules" in n]
