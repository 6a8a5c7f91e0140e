"""Runtime kinds: where compiled code runs. Imported lazily by kind.

Each kind's module has a process-wide ``runtime()`` implementing
:class:`~functions_nb.runtimes.base.Runtime`. :func:`get_runtime` hands out exactly that
object; a runtime not yet ported to the protocol is wrapped in :class:`_Adapted` meanwhile.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .base import Isolation, LoadedCode, ModuleCache, Runtime

_KINDS = {
    "wasm": "functions_nb.runtimes.wasm",
    "v8": "functions_nb.runtimes.v8",
    "pyodide": "functions_nb.runtimes.pyodide",
    "mono": "functions_nb.runtimes.mono",
    "prompt": "functions_nb.runtimes.prompt",
}


def kinds() -> list[str]:
    return list(_KINDS)


def _module(kind: str) -> ModuleType:
    try:
        return importlib.import_module(_KINDS[kind])
    except KeyError:
        raise ValueError(f"unknown runtime kind {kind!r}; known: {', '.join(_KINDS)}") from None


def get_runtime(kind: str) -> Runtime:
    """The process-wide runtime for ``kind`` (e.g. ``"wasm"``)."""
    module = _module(kind)
    rt = module.runtime()
    return rt if isinstance(rt, Runtime) else _Adapted(kind, module, rt)


def isolation(kind: str) -> Isolation:
    """What isolates functions of runtime ``kind`` on this machine (for ``func doctor``)."""
    try:
        return get_runtime(kind).isolation()
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot start isolates nothing
        return Isolation(kind, (), (f"cannot start: {type(exc).__name__}: {exc}",))


# -- adapter for runtimes not yet ported to the protocol -----------------------------------
# Porters: give the runtime class ``isolation()`` and ``close()`` and accept ``language=`` in
# ``load()``; ``get_runtime`` then returns it as is, and its entry below goes (delete this
# section when it is empty).

def _pyodide_isolation(module: ModuleType) -> Isolation:
    layers = module.sandbox_layers()
    names = ("node_permissions", "clean_env", "bwrap", "no_network", "pid_namespace",
             "user_namespace", "private_filesystem", "js_hardening")
    missing = tuple(n for n in ("node_permissions", "bwrap") if not layers.get(n))
    if missing and layers.get("detail"):
        missing = (*missing[:-1], f"{missing[-1]} ({layers['detail']})")
    return Isolation("pyodide", tuple(n for n in names if layers.get(n)), missing)


def _mono_isolation(module: ModuleType) -> Isolation:
    parts = module.isolation_summary().removeprefix("isolation: ").split("; ")
    missing = tuple(p for p in parts if p.startswith(("NO ", "no ")))
    return Isolation("mono", tuple(p for p in parts if p not in missing), missing)


def _v8_isolation(module: ModuleType) -> Isolation:
    layers = ["one V8 isolate per function version in a shared host process",
              "no host API inside an isolate"]
    missing: tuple[str, ...] = ()
    if module._sandbox_prefix() is not None:
        layers.append("bubblewrap (no network, own pid/ipc namespaces, read-only filesystem)")
    else:
        missing = ("bubblewrap (not installed or disabled): the host can use the network",)
    return Isolation("v8", tuple(layers), missing, ("time", "heap memory"))


def _prompt_isolation(_module: ModuleType) -> Isolation:
    return Isolation("prompt", ("no code runs: the generative tier answers",))


_LEGACY_ISOLATION: dict[str, Callable[[ModuleType], Isolation]] = {
    "pyodide": _pyodide_isolation, "mono": _mono_isolation, "v8": _v8_isolation,
    "prompt": _prompt_isolation}


class _Adapted:
    """A runtime that predates the protocol, seen through it."""

    def __init__(self, kind: str, module: ModuleType, rt: Any) -> None:
        self.kind = kind
        self._module = module
        self._rt = rt

    def load(self, code: bytes, signature: Any, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> LoadedCode:
        return self._rt.load(code, signature, memory_mb=memory_mb, name=name, cache=cache)

    def isolation(self) -> Isolation:
        describe = _LEGACY_ISOLATION.get(self.kind)
        if describe is None:
            return Isolation(self.kind, (), ("not described by this runtime",))
        return describe(self._module)

    def close(self) -> None:
        stop = getattr(self._rt, "close", None) or getattr(self._rt, "shutdown", None)
        if stop is not None:
            stop()


__all__ = ["get_runtime", "isolation", "kinds"]
