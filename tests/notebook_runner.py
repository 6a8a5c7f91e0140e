"""Execute a notebook headless with nbclient and collect its text outputs (for the tests)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, cwd: Path | None = None, timeout: int = 600) -> dict[int, str]:
    """Run ``notebooks/<name>``; returns {cell index: its text and text/plain outputs}."""
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd or path.parent)}}).execute()
    return {i: "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                       for o in c.get("outputs", []))
            for i, c in enumerate(nb.cells) if c.cell_type == "code"}
