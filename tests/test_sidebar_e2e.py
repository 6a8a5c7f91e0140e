"""End to end: JupyterLab in Debian's Chromium (Playwright, no browser download).

A real ``jupyter lab`` serves the notebook, the REST API and the prebuilt sidebar. The test
deploys a Rust function from a notebook, sees it in the sidebar, invokes it from the sidebar's
form, answers the notebook's pending human task in the sidebar (the notebook's ``wait()``
returns the answer), checks the panel follows the dark theme, and saves screenshots to
``build/e2e/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright import sync_api

from functions_nb import _jupyter_labextension_paths
from tests.jupyter_process import stop_group, wait_healthy
from tests.s3server import free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "e2e"
TOKEN = "e2e-token"

NOTEBOOK_CELLS = [
    "%load_ext functions_nb\nfrom functions_nb import Functions\nfx = Functions()",
    "%%function rust add\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}",
    'pending = fx.invoke("add", 20, 22, start_tier="human", question="What is 20 + 22?")\n'
    'print("task", pending.task_id)',
    'print("answered:", pending.wait(300))',
]



def labextension_dir() -> Path:
    """Where JupyterLab finds the sidebar: the venv's share/jupyter/labextensions/functions-nb."""
    dest = _jupyter_labextension_paths()[0]["dest"]
    return Path(sys.prefix) / "share" / "jupyter" / "labextensions" / dest


def notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src,
                       "outputs": [], "execution_count": None} for i, src in enumerate(cells)]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server with its own root, store, settings and runtime directories."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    if not (labextension_dir() / "package.json").exists():
        pytest.fail(f"the sidebar is not built/linked at {labextension_dir()}: run `make setup`")
    tmp = tmp_path_factory.mktemp("lab")
    root, store, settings = tmp / "root", tmp / "store", tmp / "settings"
    root.mkdir()
    (root / "deploy.ipynb").write_text(json.dumps(notebook(NOTEBOOK_CELLS)))
    # no news / update pop-ups over the page
    notify = settings / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = free_port()
    env = {**os.environ, "FUNCTIONS_NB_STORE": str(store), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp / "config"), "IPYTHONDIR": str(tmp / "ipython")}
    log = open(tmp / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
         f"--LabServerApp.user_settings_dir={settings}", f"--LabServerApp.workspaces_dir={tmp / 'ws'}",
         f"--FunctionsNB.store={store}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, TOKEN, tmp / "lab.log")
        yield {"base": base, "store": store, "log": tmp / "lab.log"}
    finally:
        stop_group(proc)
        log.close()


def cell_output(page, index: int) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea").inner_text()


def test_sidebar_end_to_end(lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-extensions"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.set_default_timeout(60_000)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.goto(f"{lab['base']}/lab/tree/deploy.ipynb?token={TOKEN}")

            # 1. deploy from the notebook (and leave a human task pending)
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " return !!(w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.status === 'idle'); }", timeout=120_000)
            # not awaited: the last cell blocks until the sidebar answers the human task
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(
                "() => document.querySelectorAll('.jp-Notebook .jp-Cell')[2]"
                "?.querySelector('.jp-OutputArea')?.innerText.includes('task ')", timeout=120_000)
            assert "deployed" in cell_output(page, 1).lower() or "add" in cell_output(page, 1)
            task_id = cell_output(page, 2).split("task", 1)[1].split()[0]

            # 2. the sidebar lists the function
            page.click('li.lm-TabBar-tab[data-id="functions-nb-sidebar"]')
            panel = page.locator("#functions-nb-sidebar")
            row = panel.locator('[data-testid="fnb-functions"] tr[data-function="add"]')
            row.wait_for()
            assert row.locator(".fnb-col-language").inner_text().strip().lower() == "rust"
            assert row.locator(".fnb-col-versions").inner_text().strip() == "1"
            assert row.locator(".fnb-col-breaker").inner_text().strip().lower() == "closed"

            # 3. invoke from the sidebar's form
            form = panel.locator('form[data-testid="fnb-invoke"]')
            form.locator('select[name="function"]').select_option("add")
            assert form.locator('[data-testid="fnb-signature"]').inner_text().strip() == \
                "add(a: i32, b: i32) -> i32"
            form.locator('input[name="args"]').fill("[2, 3]")
            form.locator('input[name="options"]').fill("")
            form.locator('button[type="submit"]').click()
            result = panel.locator('[data-testid="fnb-invoke-result"][data-status="ok"]')
            result.wait_for()
            assert result.locator(".fnb-result-value").inner_text().strip() == "5"

            # 4. the notebook's pending human task, answered in the sidebar
            task = panel.locator(f'[data-testid="fnb-tasks"] [data-task-id="{task_id}"]')
            task.wait_for()
            page.screenshot(path=str(SHOTS / "sidebar.png"))
            task.locator('input[name="value"]').fill("42")
            task.locator('input[name="why"]').fill("checked by the e2e test")
            task.locator('button[data-action="answer"]').click()
            task.wait_for(state="detached")
            page.wait_for_function(
                "() => document.querySelectorAll('.jp-Notebook .jp-Cell')[3]"
                "?.querySelector('.jp-OutputArea')?.innerText.includes('answered:')", timeout=60_000)
            assert "answered: 42" in cell_output(page, 3)

            # bad JSON is refused in the form, without a request
            form.locator('input[name="args"]').fill("[2, ")
            form.locator('button[type="submit"]').click()
            panel.locator('[data-testid="fnb-invoke-result"][data-status="error"]').wait_for()


            # 5. polling brings the sidebar's own call into the stats and the recent executions
            page.wait_for_function(
                "() => { const r = document.querySelector('#functions-nb-sidebar "
                "[data-testid=\"fnb-functions\"] tr[data-function=\"add\"]');"
                " return r && r.querySelector('.fnb-col-status').innerText.trim() === 'ok'"
                " && r.querySelector('.fnb-col-p50').innerText.trim() !== ''"
                " && r.querySelector('.fnb-col-p50').innerText.trim() !== '—'; }", timeout=60_000)
            recent = panel.locator('[data-testid="fnb-recent"] tr[data-execution-id]')
            recent.first.wait_for()
            assert "add" in panel.locator('[data-testid="fnb-recent"]').inner_text()
            assert panel.locator('[data-testid="fnb-status"]').inner_text().strip()
            page.screenshot(path=str(SHOTS / "sidebar-after.png"))

            # 6. an outage: the status line says so and polling waits Retry-After (12 s), which is
            # longer than the first backoff step (3-9 s), then recovers
            hits: list[float] = []

            def outage(route):
                hits.append(time.monotonic())
                route.fulfill(status=503, headers={"Retry-After": "12"}, content_type="application/json",
                              body=json.dumps({"error": {"code": "storage_error",
                                                         "message": "simulated outage"}}))
            page.route("**/functions-nb/api/summary*", outage)
            panel.locator('button[data-action="refresh"]').click()
            status = panel.locator('[data-testid="fnb-status"]')
            page.wait_for_function(
                "() => document.querySelector('[data-testid=\"fnb-status\"]').innerText"
                ".includes('retrying in 12 s')")
            assert "simulated outage" in status.inner_text()
            assert status.get_attribute("data-state") == "error"
            page.wait_for_timeout(max(0, 9_500 - (time.monotonic() - hits[0]) * 1000))
            assert len(hits) == 1, [round(h - hits[0], 2) for h in hits]
            page.unroute("**/functions-nb/api/summary*")
            panel.locator('button[data-action="refresh"]').click()
            page.wait_for_function(
                "() => document.querySelector('[data-testid=\"fnb-status\"]').dataset.state === 'ok'")

            # 7. the panel follows the theme (JupyterLab's CSS variables)
            def background() -> str:
                return page.evaluate("() => getComputedStyle(document.querySelector("
                                     "'#functions-nb-sidebar')).backgroundColor")
            light = background()
            page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                          " {theme: 'JupyterLab Dark'})")
            page.wait_for_function(
                "() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
            page.wait_for_timeout(500)
            assert background() != light
            page.screenshot(path=str(SHOTS / "sidebar-dark.png"))
        finally:
            browser.close()
    ours = [e for e in errors if "functions-nb" in e or "fnb" in e]
    assert not ours, ours
