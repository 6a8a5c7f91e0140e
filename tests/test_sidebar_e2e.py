"""End to end: JupyterLab in Debian's Chromium (Playwright, no browser download).

A real ``jupyter lab`` serves the notebook, the REST API and the prebuilt sidebar. One notebook
shows every functions-nb view (``%invoke``, ``%fn_breakers``, ``%functions``, ``%fn_logs``,
``%fn_metrics``, ``fx.human.widget()``) and leaves a human task pending. The test checks the
sidebar at its default width (no clipped numbers, names on one line with an ellipsis), a
kernel's open breaker in the sidebar (whose it is), the row details (caller mistakes apart),
invoking from the form, answering the notebook's task in the sidebar, a pending invoke from the
sidebar answered in the notebook (the sidebar shows the answer), Retry-After, the dark theme;
then saves the notebook, closes it with its kernel shut down, reopens it, restarts JupyterLab
and reopens it again: every view is its static output, no "Error displaying widget". The
screenshots go to ``build/e2e/`` (the README's ``docs/sidebar*.png`` are copies).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
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
LONG_NAME = "collatz_steps_until_one_is_reached"
#: A function with a package pinned from npm: its detail row lists it.
WITH_PACKAGE = ('// @dependencies zod@3.23.8\nimport { z } from "zod";\n'
                "export function checked(s: string): string {\n  return z.string().min(1).parse(s);\n}\n")

NOTEBOOK_CELLS = [
    "%load_ext functions_nb\nfrom functions_nb import Functions\nfx = Functions()",
    "%%function rust add\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}",
    f"%%function rust {LONG_NAME}\nfn {LONG_NAME}(n: i64) -> i64 {{\n    let mut n = n;\n"
    "    let mut steps = 0;\n    while n > 1 {\n        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };\n"
    "        steps += 1;\n    }\n    steps\n}",
    '%%function rust boom\nfn boom(x: i32) -> i32 {\n    if x > 0 {\n        panic!("bad input {}", x);\n'
    "    }\n    x\n}",
    "%invoke add 2 3",
    f'fx.run("{LONG_NAME}", 27)\nfx.run("add", "x", 1)  # a caller mistake, not an error of add\n'
    'for _ in range(5):  # the kernel\'s breaker of boom opens\n    fx.run("boom", 1)\n%fn_breakers',
    "%functions",
    "%fn_logs boom",
    "%fn_metrics add",
    'pending = fx.invoke("add", 20, 22, start_tier="human", question="What is 20 + 22?")\n'
    'print("task", pending.task_id)',
    "fx.human.widget()",
    'print("answered:", pending.wait(300))',
    # answers the sidebar's own pending invoke (add(1, 2) sent to a person) from the notebook
    "import time\n"
    "def asked():\n"
    '    return [t for t in fx.human.ls() if t["function"].startswith("add@") and t["args"] == [1, 2]]\n'
    "deadline = time.time() + 300\n"
    "while not asked() and time.time() < deadline:\n"
    "    time.sleep(0.5)\n"
    "(task,) = asked()\n"
    'fx.human.answer(task["task_id"], 99, who="the notebook", why="1 + 2, say 99")\n'
    'print("answered in the notebook:", task["task_id"])',
]
(C_INVOKE, C_BREAKERS, C_FUNCTIONS, C_LOGS, C_METRICS, C_PENDING, C_HUMAN, C_WAIT,
 C_ANSWER) = range(4, 13)
#: Cell -> text its static view shows (also after a reopen, with no kernel state).
VIEW_TEXT = {C_INVOKE: "add@1", C_BREAKERS: "5 consecutive failures", C_FUNCTIONS: LONG_NAME,
             C_LOGS: "newest first", C_METRICS: "p95", C_HUMAN: "Human tasks"}


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


class Lab:
    """A JupyterLab server with its own root, store, settings and runtime directories; it can
    be stopped and started again on the same port and files (a JupyterLab restart)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root, self.store, self.settings = tmp / "root", tmp / "store", tmp / "settings"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "lab.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "FUNCTIONS_NB_STORE": str(self.store),
               "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"),
               "JUPYTER_CONFIG_DIR": str(self.tmp / "config"), "IPYTHONDIR": str(self.tmp / "ipython")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                 f"--port={self.port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
                 f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
                 "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
                 f"--LabServerApp.user_settings_dir={self.settings}",
                 f"--LabServerApp.workspaces_dir={self.tmp / 'ws'}", f"--FunctionsNB.store={self.store}"],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(self.proc, self.base, TOKEN, self.log, timeout=120)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def api(self, method: str, path: str) -> object:
        """A call to Jupyter's own REST API (sessions, kernels)."""
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    if not (labextension_dir() / "package.json").exists():
        pytest.fail(f"the sidebar is not built/linked at {labextension_dir()}: run `make setup`")
    server = Lab(tmp_path_factory.mktemp("lab"))
    server.root.mkdir()
    (server.root / "views.ipynb").write_text(json.dumps(notebook(NOTEBOOK_CELLS)))
    # no news / update pop-ups over the page
    notify = server.settings / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # every cell in the DOM (the default windowing renders only what is scrolled into view)
    tracker = server.settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def cell_output(page, index: int) -> str:
    return cell(page, index).locator(".jp-OutputArea").inner_text()


def wait_output(page, index: int, text: str, timeout: float = 120_000) -> None:
    page.wait_for_function(
        "([i, text]) => document.querySelectorAll('.jp-Notebook .jp-Cell')[i]"
        "?.querySelector('.jp-OutputArea')?.innerText.includes(text)", arg=[index, text],
        timeout=timeout)


def wait_kernel_idle(page, timeout: float = 120_000) -> None:
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'); }", timeout=timeout)


#: What the sidebar at its current width shows badly: number / status / time cells whose text
#: is cut (scrollWidth > clientWidth), names that are not one line with an ellipsis, tables
#: wider than their box; and the panel's width.
LAYOUT_PROBLEMS = """() => {
  const panel = document.querySelector('#functions-nb-sidebar');
  const found = {width: panel.getBoundingClientRect().width, clipped: [], names: [], wide: []};
  for (const td of panel.querySelectorAll('table.fnb-table td, table.fnb-table th')) {
    if (!td.offsetParent || td.closest('tr.fnb-detail')) continue;
    if (td.matches('.fnb-col-name, .fnb-col-function')) continue;
    if (td.scrollWidth > td.clientWidth) found.clipped.push(`${td.className}: ${td.innerText}`);
  }
  for (const el of panel.querySelectorAll('.fnb-name-text')) {
    const style = getComputedStyle(el);
    const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.4;
    const oneLine = el.getBoundingClientRect().height <= line * 1.5;
    if (!oneLine || style.textOverflow !== 'ellipsis' || style.whiteSpace !== 'nowrap')
      found.names.push(`${el.innerText} (${el.getBoundingClientRect().height}px, ${style.textOverflow})`);
  }
  for (const wrap of panel.querySelectorAll('.fnb-table-wrap'))
    if (wrap.scrollWidth > wrap.clientWidth) found.wide.push(wrap.scrollWidth - wrap.clientWidth);
  return found;
}"""


def assert_readable(page) -> dict:
    found = page.evaluate(LAYOUT_PROBLEMS)
    assert not found["clipped"] and not found["names"] and not found["wide"], found
    return found


def assert_static_views(page) -> None:
    """The reopened notebook: every view cell shows its static output, no widget error."""
    page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell').length >= 13")
    for index, text in VIEW_TEXT.items():
        wait_output(page, index, text, timeout=60_000)
    page.wait_for_timeout(1000)  # widget renderers, had there been any, fail asynchronously
    body = page.locator("body").inner_text()
    assert "Error displaying widget" not in body and "model not found" not in body


def test_sidebar_and_notebook_end_to_end(lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    from functions_nb import Functions

    fx = Functions(store=str(lab.store), history=False)
    try:  # deployed beside the notebook's functions, in the server's store
        fx.deploy("typescript", WITH_PACKAGE, name="checked")
    finally:
        fx.close()
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
            page.goto(f"{lab.base}/lab/tree/views.ipynb?token={TOKEN}")

            # 1. the notebook deploys, shows every view and leaves a human task pending
            wait_kernel_idle(page)
            # not awaited: two cells block until the sidebar answers / asks
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            wait_output(page, C_PENDING, "task ", timeout=240_000)
            task_id = cell_output(page, C_PENDING).split("task", 1)[1].split()[0]
            for index, text in VIEW_TEXT.items():
                wait_output(page, index, text)

            # 2. the sidebar at its default width: every function, the kernel's open breaker
            page.click('li.lm-TabBar-tab[data-id="functions-nb-sidebar"]')
            panel = page.locator("#functions-nb-sidebar")
            functions = panel.locator('[data-testid="fnb-functions"]')
            for name in ("add", "boom", LONG_NAME):
                functions.locator(f'tr[data-function="{name}"]').wait_for()
            boom = functions.locator('tr[data-function="boom"]')
            badge = boom.locator('.fnb-badge[data-breaker="open"][data-breaker-owner="kernel"]')
            badge.wait_for()  # the kernel's breaker, through the transitions in the store
            assert badge.inner_text().strip() == "kernel open"
            found = assert_readable(page)
            assert found["width"] <= 320, found  # JupyterLab's default sidebar width
            long_name = functions.locator(f'tr[data-function="{LONG_NAME}"] .fnb-name-text')
            assert long_name.get_attribute("title") == LONG_NAME
            assert long_name.evaluate("e => e.scrollWidth > e.clientWidth")  # cut with an ellipsis
            assert functions.locator(".fnb-col-p50").first.is_hidden()  # moved to the detail

            # 3. row details: versions, numbers, caller mistakes apart, the breaker's owner
            boom.click()
            detail = functions.locator('tr.fnb-detail[data-detail-for="boom"]')
            transition = detail.locator('dd[data-field="breaker_last"]').inner_text()
            assert "closed → open" in transition and "by kernel" in transition, transition
            assert "5 consecutive failures" in transition
            assert "closed" in detail.locator('dd[data-field="breaker"]').inner_text()  # the server's
            assert detail.locator('dd[data-field="calls"]').inner_text().startswith("5 · 5 errors (100.0%)")
            functions.locator('tr[data-function="add"]').click()
            add = functions.locator('tr.fnb-detail[data-detail-for="add"]')
            assert add.locator('dd[data-field="caller_errors"]').inner_text().startswith("1")
            mistake = add.locator('dd[data-field="last_error"]').inner_text()
            assert "bad_arguments" in mistake and "caller mistake" in mistake, mistake
            assert add.locator('dd[data-field="version"]').inner_text().startswith("v1 of 1")
            assert "p95" in add.locator('dd[data-field="latency"]').inner_text()
            assert_readable(page)
            functions.locator('tr[data-function="add"]').click()  # folds it again
            add.wait_for(state="detached")
            functions.locator('tr[data-function="checked"]').click()  # its pinned package
            checked = functions.locator('tr.fnb-detail[data-detail-for="checked"]')
            assert checked.locator('dd[data-field="dependencies"]').inner_text().strip() == "zod 3.23.8"
            functions.locator('tr[data-function="checked"]').click()
            checked.wait_for(state="detached")

            # 4. invoke from the sidebar's form
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

            # 5. the notebook's pending human task, answered in the sidebar
            task = panel.locator(f'[data-testid="fnb-tasks"] [data-task-id="{task_id}"]')
            task.wait_for()
            panel.evaluate("e => { e.scrollTop = 0; }")
            page.screenshot(path=str(SHOTS / "sidebar.png"))
            task.locator('input[name="value"]').fill("42")
            task.locator('input[name="why"]').fill("checked by the e2e test")
            task.locator('button[data-action="answer"]').click()
            task.wait_for(state="detached")
            wait_output(page, C_WAIT, "answered:", timeout=60_000)
            assert "answered: 42" in cell_output(page, C_WAIT)

            # 6. a pending invoke from the sidebar, answered in the notebook: the sidebar follows
            # (the notebook answers at once: record what the result box showed on the way)
            page.evaluate("""() => { const box = document.querySelector('[data-testid="fnb-invoke-result"]');
              window.fnbShown = [];
              new MutationObserver(() => window.fnbShown.push(box.dataset.status + ' ' + box.innerText))
                .observe(box, {attributes: true, childList: true, subtree: true}); }""")
            form.locator('input[name="args"]').fill("[1, 2]")
            form.locator('input[name="options"]').fill('{"start_tier": "human"}')
            form.locator('button[type="submit"]').click()
            wait_output(page, C_ANSWER, "answered in the notebook:", timeout=120_000)
            answered = panel.locator('[data-testid="fnb-invoke-result"][data-status="ok"]')
            answered.wait_for(timeout=30_000)
            assert answered.locator(".fnb-result-value").inner_text().strip() == "99"
            assert "answered by the notebook" in answered.inner_text()
            shown = page.evaluate("() => window.fnbShown")
            assert any(s.startswith("pending pending: task") for s in shown), shown

            # bad JSON is refused in the form, without a request
            form.locator('input[name="args"]').fill("[2, ")
            form.locator('button[type="submit"]').click()
            panel.locator('[data-testid="fnb-invoke-result"][data-status="error"]').wait_for()

            # 7. polling brings the calls into the numbers and the recent executions
            page.wait_for_function(
                "() => { const r = document.querySelector('#functions-nb-sidebar "
                "[data-testid=\"fnb-functions\"] tr[data-function=\"add\"]');"
                " return r && r.querySelector('.fnb-col-status').innerText.trim() === 'ok'"
                " && Number(r.querySelector('.fnb-col-count').innerText) >= 2; }", timeout=60_000)
            recent = panel.locator('[data-testid="fnb-recent"] tr[data-execution-id]')
            recent.first.wait_for()
            assert "add" in panel.locator('[data-testid="fnb-recent"]').inner_text()
            assert panel.locator('[data-testid="fnb-status"]').inner_text().strip()
            assert_readable(page)
            page.screenshot(path=str(SHOTS / "sidebar-after.png"))

            # wider (the split handle dragged): language and p50 join the row, still readable
            handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + 220, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            functions.locator(".fnb-col-p50").first.wait_for(state="visible")
            wide = assert_readable(page)
            assert wide["width"] >= 400, wide
            assert functions.locator('tr[data-function="add"] .fnb-col-language').inner_text() == "rust"
            page.screenshot(path=str(SHOTS / "sidebar-wide.png"))

            # 8. an outage: the status line says so and polling waits Retry-After (12 s), which is
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

            # 9. the panel follows the theme (JupyterLab's CSS variables), readable in both
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
            assert_readable(page)
            page.screenshot(path=str(SHOTS / "sidebar-dark.png"))
            page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                          " {theme: 'JupyterLab Light'})")
            page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=30_000)

            # 10. save, close with the kernel shut down, reopen: the static views, no widget error
            wait_kernel_idle(page)
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function(
                "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
            saved = json.loads((lab.root / "views.ipynb").read_text())
            assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {})
                       for c in saved["cells"] for o in c["outputs"])
            page.evaluate("() => { window.jupyterapp.commands.execute('application:close-all'); }")
            page.wait_for_timeout(1000)
            dialog = page.locator(".jp-Dialog")
            if dialog.count():  # a live view changed an output after the save: keep the saved file
                dialog.get_by_role("button", name="Discard").click()
            page.wait_for_function("() => !document.querySelector('.jp-Notebook')", timeout=30_000)
            for session in lab.api("GET", "sessions"):  # the kernel and its widget models go
                lab.api("DELETE", f"sessions/{session['id']}")
            page.goto(f"{lab.base}/lab/tree/views.ipynb?token={TOKEN}")
            assert_static_views(page)
            page.screenshot(path=str(SHOTS / "notebook-reopened.png"))

            # 11. after a JupyterLab restart, the same
            lab.stop()
            lab.start()
            page.goto(f"{lab.base}/lab/tree/views.ipynb?token={TOKEN}")
            assert_static_views(page)
        except Exception:
            page.screenshot(path=str(SHOTS / "failure.png"))
            raise
        finally:
            browser.close()
    ours = [e for e in errors if "functions-nb" in e or "fnb" in e]
    assert not ours, ours
