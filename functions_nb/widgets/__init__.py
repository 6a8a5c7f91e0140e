"""Views of what happened, over the DuckDB history: ipywidgets with static HTML fallbacks."""

from __future__ import annotations

from .base import View

__all__ = ["View"]
