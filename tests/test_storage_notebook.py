"""notebooks/storage.ipynb (local folder -> S3 migration) executed headless."""

from __future__ import annotations

from .notebook_runner import run_notebook


def test_storage_notebook(tmp_path):
    text = "\n".join(run_notebook("storage.ipynb", cwd=tmp_path, timeout=300).values())
    assert "(144, [1, 2])" in text
    assert "('add@3', [3], [1, 2])" in text
    assert "'copied': ['add@1', 'add@2', 'sq@1']" in text and "'failed': []" in text
    assert "'deleted': ['add@1', 'add@2', 'sq@1']" in text
    assert "(42, 49, [])" in text and "(2, 1)" in text
