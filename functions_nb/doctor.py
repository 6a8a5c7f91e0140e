"""``func doctor``: which languages can compile here, their versions, how to install the rest,
what confines their compilers (the build sandbox) and what isolates functions in each runtime
(``Runtime.isolation()``)."""

from __future__ import annotations

from typing import Any

from . import languages, runtimes
from .languages.base import build_isolation, build_layers


def doctor() -> list[dict[str, Any]]:
    """One row per seed language: usable, version, the install command when missing, its
    runtime kind and that runtime's isolation (as :meth:`Isolation.to_dict`), ``build``:
    what confines its compiler here (``sandboxed``: bubblewrap holds; ``summary``), and
    ``choices``: other toolchains a deploy flag selects (``--toolchain zig-0.16``), each
    installed (with its path) or available on first use."""
    rows = []
    isolation: dict[str, dict[str, Any]] = {}
    build = {"sandboxed": bool(build_layers()["bwrap"]), "summary": build_isolation()}
    for name in languages.names():
        lang = languages.get_language(name)
        tc = lang.toolchain(refresh=True)
        row = tc._asdict()
        if tc.usable:
            row["install"] = ""
        row["runtime"] = lang.runtime
        if lang.runtime not in isolation:
            isolation[lang.runtime] = runtimes.isolation(lang.runtime).to_dict()
        row["isolation"] = isolation[lang.runtime]
        row["build"] = build
        row["choices"] = lang.toolchain_choices()
        for choice in row["choices"]:  # a flag choosing another runtime (python --runtime wasi)
            kind = choice.get("runtime")
            if kind:
                if kind not in isolation:
                    isolation[kind] = runtimes.isolation(kind).to_dict()
                choice["isolation"] = isolation[kind]
        rows.append(row)
    for name in languages.PLANNED:
        rows.append({"language": name, "usable": False, "version": "", "path": "",
                     "install": "", "detail": "not available in this version of functions-nb"})
    return rows


def format_report(rows: list[dict[str, Any]]) -> str:
    """Human-readable table of :func:`doctor` rows, then one isolation line per runtime."""
    lines = []
    width = max(len(r["language"]) for r in rows)
    for r in rows:
        mark = "ok  " if r["usable"] else "--  "
        text = r["version"] or r["detail"]
        lines.append(f"{mark}{r['language']:<{width}}  {text}")
        if r["usable"] and r["detail"]:
            lines.append(f"    {'':<{width}}  note: {r['detail']}")
        if not r["usable"] and r["install"]:
            lines.append(f"    {'':<{width}}  install: {r['install']}")
        for c in r.get("choices", ()):
            where = f"installed: {c['path']}" if c["installed"] else c["detail"]
            lines.append(f"    {'':<{width}}  --{c['flag']} {c['value']}: {c['version']}, {where}")
    build = next((r["build"] for r in rows if r.get("build")), None)
    if build:
        lines.append(f"builds: {build['summary']}")
    seen: dict[str, dict[str, Any]] = {r["runtime"]: r["isolation"] for r in rows
                                       if r.get("isolation")}
    seen.update({c["runtime"]: c["isolation"] for r in rows for c in r.get("choices", ())
                 if c.get("isolation")})
    if seen:
        lines.append("isolation:")
        kind_width = max(map(len, seen))
        for kind, iso in seen.items():
            used = ", ".join([r["language"] for r in rows if r.get("runtime") == kind]
                             + [f"{r['language']} --{c['flag']} {c['value']}" for r in rows
                                for c in r.get("choices", ()) if c.get("runtime") == kind])
            lines.append(f"    {kind:<{kind_width}}  ({used}) {iso['summary']}")
    return "\n".join(lines)
