"""Fixtures of the conformance suite: one client per language, its cells deployed on demand
(each once per module), and the per-language marks (not applicable -> skip with the reason,
known failure -> strict xfail) applied at collection."""

from __future__ import annotations

import os
from typing import Any

import pytest

from functions_nb import BreakerConfig, Functions
from functions_nb.languages import get_language, names

from ..exact import same
from .cells import DEPLOYED_AS, LANGUAGES, cells
from .spec import ATTEMPTS, CASES, KINDS, Cells, default_values

#: Set while collecting, before any host process starts, so every host this test process
#: starts could inherit it: a function must never see it.
SECRET_ENV = "FNB_CONFORMANCE_SECRET"
SECRET_VALUE = "env-secret-8d41b7"
os.environ[SECRET_ENV] = SECRET_VALUE


class Subject:
    """One language under test: its cells and a client whose deploys are made once."""

    def __init__(self, cells: Cells, fx: Functions) -> None:
        self.cells = cells
        self.language, self.flags = DEPLOYED_AS.get(cells.language, (cells.language, {}))
        self.fx = fx
        self._deployed: dict[str, tuple] = {}

    def deploy(self, name: str, source: str, **options: Any) -> str:
        """Deploy ``source`` as ``name`` unless this exact deploy was made already."""
        key = (source, tuple(sorted(options.items())))
        if self._deployed.get(name) != key:
            if self.flags:
                options = {"flags": self.flags, **options}
            self.fx.deploy(self.language, source, name=name, **options)
            self._deployed[name] = key
        return name

    def identity(self, kind: str) -> str:
        name = "id_" + kind.replace("[]", "_array")
        return self.deploy(name, self.cells.identity[kind].format(name=name))

    def neighbour_works(self) -> None:
        """A function beside the others (in the same host, for a shared-host language) works:
        its identity of ``str`` (else of its first kind) returns what it got."""
        kind = "str" if "str" in self.cells.identity else next(iter(self.cells.identity))
        value = self.cells.values.get(kind, default_values()[kind])[-1]
        got = self.fx.invoke(self.identity(kind), value)
        assert same(got, value), f"the neighbour returned {got!r} for {value!r}"


@pytest.fixture(scope="module", params=LANGUAGES)
def subject(request, tmp_path_factory):
    language = request.param
    deployed, flags = DEPLOYED_AS.get(language, (language, {}))
    if deployed not in names() or not get_language(deployed).toolchain_for(flags).usable:
        pytest.skip(f"{language}: toolchain not usable here")
    fx = Functions(store=str(tmp_path_factory.mktemp(f"conformance-{language}") / "store"),
                   breaker=BreakerConfig(failure_threshold=10_000))
    yield Subject(cells(language), fx)
    fx.close()


def _case_keys(item: pytest.Item) -> list[str]:
    case = item.originalname.removeprefix("test_")
    params = item.callspec.params
    keys = [case]
    for param in ("kind", "attempt"):
        if param in params:
            keys.insert(0, f"{case}[{params[param]}]")
    return keys


def known_keys() -> set[str]:
    return {*CASES, *(f"identity[{k}]" for k in KINDS), *(f"escape[{a}]" for a in ATTEMPTS)}


def pytest_collection_modifyitems(config, items):
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None or "subject" not in spec.params or "conformance" not in item.nodeid:
            continue
        lang = cells(spec.params["subject"])
        for key in _case_keys(item):
            if key in lang.not_applicable:
                item.add_marker(pytest.mark.skip(
                    reason=f"not applicable to {lang.language}: {lang.not_applicable[key]}"))
                break
            if key in lang.xfail:
                item.add_marker(pytest.mark.xfail(strict=True, reason=lang.xfail[key]))
                break
