"""``make demo``: execute ``notebooks/quickstart.ipynb`` headless and summarise what ran."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def run(notebook: Path = NOTEBOOK, store: str | None = None) -> int:
    import nbformat
    from nbclient import NotebookClient

    store = store or os.environ.get("FUNCTIONS_NB_STORE") or tempfile.mkdtemp(prefix="fnb-demo-")
    os.environ["FUNCTIONS_NB_STORE"] = store
    nb = nbformat.read(notebook, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    elapsed = time.perf_counter() - started
    print(f"executed {notebook.name} in {elapsed:.1f} s (store: {store})\n")
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
                     "sum((status = 'ok')::int) AS ok FROM executions").iloc[0]
    print(f"\n{len(fx.list())} functions deployed; {int(summary.executions)} executions "
          f"recorded ({int(summary.ok)} ok) across {int(summary.functions)} functions")
    return 0


if __name__ == "__main__":
    sys.exit(run())
