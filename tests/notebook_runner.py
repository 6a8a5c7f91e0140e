"""Execute a notebook headless with nbclient (for the tests). Every notebook of ``notebooks/``
runs through :func:`execute_notebook`, which fails on any stderr output or warning in a cell
(a notebook is read by people, and noise there reads as a bug) and on any output that refers
to a widget model (a saved notebook, reopened, cannot show it)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: The mime type of an output that refers to a live widget model (gone with the kernel).
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: A warning as Python's ``warnings`` module or ``logging`` prints one.
_WARNING = re.compile(r"\b\w*Warning\b[:\]]|^WARNING\b|\bwarnings\.warn\(", re.MULTILINE)


def output_text(output: NotebookNode) -> str:
    """The text of one output: a stream's text, else the text/plain of its data."""
    return str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))


def noise(nb: NotebookNode) -> list[str]:
    """Every stderr output and every warning in the cells' outputs, as ``cell N: text``."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = output_text(out)
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                found.append(f"cell {i} stderr: {text.strip()[:300]}")
            elif _WARNING.search(text):
                found.append(f"cell {i} warning: {text.strip()[:300]}")
    return found


def widget_outputs(nb: NotebookNode) -> list[str]:
    """Every output holding a widget reference, as ``cell N: text``: JupyterLab renders it
    first, so a reopened notebook shows "Error displaying widget: model not found" there."""
    return [f"cell {i}: {output_text(out).strip()[:200]}"
            for i, cell in enumerate(nb.cells) for out in cell.get("outputs", [])
            if WIDGET_MIME in out.get("data", {})]


def execute_notebook(notebook: str | NotebookNode, cwd: Path | None = None, timeout: int = 600,
                     allow_errors: bool = False) -> NotebookNode:
    """Run ``notebooks/<notebook>`` (or a notebook object) in a fresh kernel; fails on noise."""
    if isinstance(notebook, str):
        path = NOTEBOOKS / notebook
        nb = nbformat.read(path, as_version=4)
    else:
        nb = notebook
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd or NOTEBOOKS)}}).execute()
    problems = noise(nb)
    assert not problems, "stderr output or warnings in the notebook:\n" + "\n".join(problems)
    widgets = widget_outputs(nb)
    assert not widgets, "outputs a reopened notebook cannot show (widget models):\n" + "\n".join(widgets)
    return nb


def cell_texts(nb: NotebookNode) -> dict[int, str]:
    """{cell index: its text and text/plain outputs} of the code cells."""
    return {i: "".join(output_text(o) for o in c.get("outputs", []))
            for i, c in enumerate(nb.cells) if c.cell_type == "code"}


def run_notebook(name: str, cwd: Path | None = None, timeout: int = 600) -> dict[int, str]:
    """Run ``notebooks/<name>`` (see :func:`execute_notebook`); returns :func:`cell_texts`."""
    return cell_texts(execute_notebook(name, cwd, timeout))
