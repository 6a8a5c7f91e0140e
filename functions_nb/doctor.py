"""``func doctor``: which languages can compile here, their versions, how to install the rest."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import languages


def doctor() -> list[dict[str, Any]]:
    """One row per seed language: usable, version, and the install command when missing."""
    rows = []
    for name in languages.names():
        tc = languages.get_language(name).toolchain(refresh=True)
        row = asdict(tc)
        if tc.usable:
            row["install"] = ""
        rows.append(row)
    for name in languages.PLANNED:
        rows.append({"language": name, "usable": False, "version": "", "path": "",
                     "install": "", "detail": "not available in this version of functions-nb"})
    return rows


def format_report(rows: list[dict[str, Any]]) -> str:
    """Human-readable table of :func:`doctor` rows."""
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
    return "\n".join(lines)
