"""Views of what happened, over the DuckDB history: ipywidgets with static HTML fallbacks."""

from __future__ import annotations

from .base import View
from .breakers import BreakersView
from .functions import FunctionsTable
from .logs import LogsView
from .metrics import MetricsView
from .result import ResultView

__all__ = ["BreakersView", "FunctionsTable", "LogsView", "MetricsView", "ResultView", "View"]
