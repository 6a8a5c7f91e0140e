"""notebooks/storage.ipynb (local folder -> S3 migration) executed headless."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "storage.ipynb"


def test_storage_notebook(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                          for o in c.get("outputs", []))
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "(144, [1, 2])" in text
    assert "('add@3', [3], [1, 2])" in text
    assert "'copied': ['add@1', 'add@2', 'sq@1']" in text and "'failed': []" in text
    assert "'deleted': ['add@1', 'add@2', 'sq@1']" in text
    assert "(42, 49, [])" in text and "(2, 1)" in text
