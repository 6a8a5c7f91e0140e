"""``make demo``: execute ``notebooks/quickstart.ipynb`` headless and summarise what ran.

It deploys into the store everything else uses by default (``$FUNCTIONS_NB_STORE`` or
``~/.functions-nb/store``), so ``make lab`` shows the quickstart's functions in its sidebar.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def execute(notebook: Path = NOTEBOOK, store: str | None = None) -> Any:
    """Run ``notebook`` in a fresh kernel on ``store`` (default: the default store); returns
    the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    from .config import default_store_url

    os.environ["FUNCTIONS_NB_STORE"] = store or default_store_url()
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    return nb


def summarise(nb: Any, store: str, elapsed: float, name: str = NOTEBOOK.name) -> None:
    """Print each code cell's first line and outputs, then what the store holds."""
    print(f"executed {name} in {elapsed:.1f} s\n")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first = cell.source.splitlines()[0] if cell.source else ""
        print(f"[{i:2}] {first}")
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            for line in str(text).strip().splitlines()[:8]:
                print(f"       {line}")
    from functions_nb import Functions

    fx = Functions(store=store)
    summary = fx.sql("SELECT count(*) AS executions, count(DISTINCT function) AS functions, "
                     "count(*) FILTER (WHERE status = 'ok') AS ok FROM executions").iloc[0]
    print(f"\n{len(fx.list())} functions deployed; {int(summary.executions)} executions "
          f"recorded ({int(summary.ok)} ok) across {int(summary.functions)} functions")
    print(f"store: {store} (`make lab` opens JupyterLab on it: the sidebar lists these functions)")
    fx.close()


def run(notebook: Path = NOTEBOOK, store: str | None = None) -> int:
    started = time.perf_counter()
    nb = execute(notebook, store)
    summarise(nb, os.environ["FUNCTIONS_NB_STORE"], time.perf_counter() - started, notebook.name)
    return 0


if __name__ == "__main__":
    sys.exit(run())
