"""Layering: no import cycles among the package's modules, and each module imports alone.

The graph counts every import a module makes of another module of the package, at module
level, inside functions (lazy imports) and under ``if TYPE_CHECKING`` alike: a lazy import
hides a cycle from the interpreter, not from a reader.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import functions_nb

PACKAGE = Path(functions_nb.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def imports_of(name: str) -> set[str]:
    """The package's modules that ``name`` imports (anywhere in its source)."""
    path, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:  # `from .pkg import mod` imports the submodule
                sub = f"{source}.{alias.name}"
                if sub in MODULES:
                    found.add(sub)
                elif source in MODULES:
                    found.add(source)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports():
    graph = {name: imports_of(name) for name in MODULES}
    # a lazy import inside a method, a relative `from ..x import y`, a submodule import
    assert "functions_nb.widgets.result" in graph["functions_nb.models"]
    assert "functions_nb.errors" in graph["functions_nb.server.handlers"]
    assert "functions_nb.widgets.metrics" in graph["functions_nb.magics"]


def test_no_import_cycles():
    graph = {name: imports_of(name) for name in MODULES}
    assert cycles(graph) == []


# heavy optional dependencies (a Jupyter server, IPython) are imported by the modules that
# need them; every module still imports on its own, in a fresh interpreter
@pytest.mark.parametrize("name", ["functions_nb.models", "functions_nb.widgets.result",
                                  "functions_nb.client", "functions_nb.distributed",
                                  "functions_nb.mapping", "functions_nb.history_queries",
                                  "functions_nb.server.handlers", "functions_nb.server.openapi"])
def test_module_imports_alone(name):
    code = (f"import importlib, sys; m = importlib.import_module({name!r}); "
            "assert 'distributed' not in sys.modules, 'imported Dask'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
