"""``make bench`` runs ``benchmarks/run.py`` as a script, so ``benchmarks/`` is first on its
``sys.path``: a benchmark module named like an installed package (``onnx.py``) hides that
package from everything the run imports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_no_benchmark_module_shadows_an_installed_one():
    names = {p.stem for p in BENCHMARKS.glob("*.py")} | {p.name for p in BENCHMARKS.iterdir()
                                                         if (p / "__init__.py").exists()}
    others = [p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS]
    shadowed = sorted(n for n in names if n != "__init__"
                      and importlib.machinery.PathFinder.find_spec(n, others) is not None)
    assert shadowed == [], f"benchmarks/ would hide these installed modules: {shadowed}"
