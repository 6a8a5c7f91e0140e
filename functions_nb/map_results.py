"""What ``fx.map`` returns: its results in input order, with the map's id (a module of its
own so that the code and model map paths both build on it without importing each other)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class MapResults(list):
    """The results of a map in input order (a ``list``); ``map_id`` names its executions:
    input ``i`` ran as execution ``f"{map_id}-{i}"``."""

    def __init__(self, items: Iterable[Any] = (), map_id: str = "") -> None:
        super().__init__(items)
        self.map_id = map_id

    @property
    def errors(self) -> dict[int, BaseException]:
        """Index -> exception of every input that failed."""
        return {i: r for i, r in enumerate(self) if isinstance(r, BaseException)}

    @property
    def where(self) -> str:
        """SQL condition selecting this map's executions, e.g.
        ``fx.sql(f"SELECT count(DISTINCT id) FROM executions WHERE {res.where}")``."""
        return f"starts_with(id, '{self.map_id}-')"
