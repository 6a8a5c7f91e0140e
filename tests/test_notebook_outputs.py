"""What the magics leave in a notebook, through a real kernel (nbclient): each value and each
error once, ``--quiet`` quiet, the compile progress line turning into the outcome, one compile
time in one unit, and a displayed view updated in place by ``refresh()``."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from functions_nb import demo

from .notebook_runner import NOTEBOOKS, execute_notebook

CELLS = {
    "setup": "%load_ext functions_nb\nfrom functions_nb import Functions\nimport functions_nb.magics\n"
             "fx = Functions()",
    "deploy": "%%function rust add\nfn add(a: i32, b: i32) -> i32 {\n    println!(\"adding\");\n"
              "    a + b\n}",
    "quiet": "%%function rust add2 --quiet\nfn add2(a: i32, b: i32) -> i32 {\n    a + b\n}",
    "slow": "functions_nb.magics.PROGRESS_AFTER = 0  # every compile shows its progress line\n",
    "progress": "%%function rust add3 --force\nfn add3(a: i32, b: i32) -> i32 {\n    a + b + 0\n}",
    "broken": "%%function rust bad\nfn bad(a: i32) -> i32 {\n    let y: i32 = \"s\";\n    a\n}",
    "bare": "%invoke add 2 40",
    "assigned": "x = %invoke add 2 3",
    "invoke_quiet": "%invoke --quiet add 1 1",
    "bad_args": "%invoke add 'a' 3",
    "view": "from functions_nb.widgets.functions import FunctionsTable\ntable = FunctionsTable(fx)\ntable",
    "refresh": "for i in range(7):\n    fx.invoke('add2', i, 1)\ntable.refresh();",
}


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS.values()])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUNCTIONS_NB_STORE", str(tmp_path_factory.mktemp("outputs") / "store"))
        execute_notebook(nb, timeout=300, allow_errors=True)
    return {key: cell.outputs for key, cell in zip(CELLS, nb.cells, strict=True)}


def _texts(outputs) -> list[str]:
    return [o.get("text", "") or o.get("data", {}).get("text/plain", "") or o.get("evalue", "")
            for o in outputs]


def test_each_value_once(cells):
    bare = cells["bare"]
    assert [o.output_type for o in bare] == ["display_data", "execute_result"]
    box, out = bare
    assert "add@1 · ok" in box.data["text/plain"] and "[log] adding" in box.data["text/plain"]
    assert "42" not in box.data["text/plain"] and ">42<" not in box.data["text/html"]
    assert out.data["text/plain"] == "42"
    assigned = cells["assigned"]  # nothing to show but how the call went
    assert [o.output_type for o in assigned] == ["display_data"] and "add@1 · ok" in _texts(assigned)[0]
    assert [o.output_type for o in cells["invoke_quiet"]] == ["execute_result"]


def test_each_error_once(cells):
    bad = cells["bad_args"]
    assert [o.output_type for o in bad] == ["error"]
    assert bad[0].ename == "BadArguments" and "argument 'a' expects i32" in bad[0].evalue
    assert bad[0].traceback == [f"BadArguments: {bad[0].evalue}"]  # one readable line
    broken = cells["broken"]  # the progress line went: only the compile error is left
    assert [o.output_type for o in broken if o.get("data") != {}] == ["error"]
    assert "compiled in" not in "".join(_texts(broken)) and broken[-1].ename == "CompileError"


def test_quiet_is_quiet(cells):
    assert cells["quiet"] == []


def test_one_compile_time_one_unit(cells):
    deployed = "".join(_texts(cells["deploy"]))
    assert re.fullmatch(r"deployed rust add@1 \(compiled in \d+(\.\d+)? s\) · add\(a: i32, b: i32\) -> i32\s*",
                        deployed), deployed
    # a compile slow enough for the progress line: that line becomes the deploy line
    progress = cells["progress"]
    assert len(progress) == 1 and progress[0].output_type == "display_data"
    text = progress[0].data["text/plain"]
    assert text.startswith("deployed rust add3@1 (compiled in ") and "compiling" not in text
    assert len(re.findall(r"compiled in", text)) == 1 and " ms" not in text


def test_view_updated_in_place(cells):
    """``table.refresh()`` in a later cell replaced the table's own output (display id): the
    saved notebook shows the new numbers where the table is, and the refresh cell shows nothing."""
    view = cells["view"]
    assert [o.output_type for o in view] == ["display_data"]
    assert "add2@1 rust: 7 calls" in view[0].data["text/plain"]
    assert 'class="fnb-view fnb-functions"' in view[0].data["text/html"]
    assert cells["refresh"] == []


def test_every_notebook_is_executed_by_a_test():
    """Each notebook of notebooks/ runs in a test through notebook_runner (which fails on stderr
    or warnings), quickstart.ipynb through demo.execute (`make demo`)."""
    here = Path(__file__).parent
    sources = "".join(p.read_text() for p in here.glob("test_*notebook*.py"))
    for path in NOTEBOOKS.glob("*.ipynb"):
        if path == demo.NOTEBOOK:
            assert "demo.execute(" in sources and "noise(nb)" in sources
        else:
            assert f'execute_notebook("{path.name}"' in sources or f'run_notebook("{path.name}"' in sources, path.name
