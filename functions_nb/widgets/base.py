"""What every functions-nb view is: an ipywidgets tree for live frontends, plus a static HTML
rendering for everything else (nbclient/nbconvert output, GitHub, a plain terminal).

A view implements :meth:`View.html` (static HTML from its current data) and
:meth:`View.build` (the ipywidgets tree, created on first display), and calls
:meth:`View.refresh` to re-query and update both. Displaying a view emits one mime bundle with
the widget reference *and* ``text/html``: JupyterLab shows the live widget, a static viewer
the HTML.
"""

from __future__ import annotations

import html
import threading
import weakref
from abc import ABC, abstractmethod
from typing import Any

#: Console level -> colour (JupyterLab's CSS variables with fallbacks).
LEVEL_COLOURS = {"debug": "var(--jp-ui-font-color2, #888)", "log": "inherit",
                 "info": "var(--jp-info-color1, #0277bd)",
                 "warn": "var(--jp-warn-color1, #ef6c00)",
                 "error": "var(--jp-error-color1, #d32f2f)"}
#: Status -> colour.
STATUS_COLOURS = {"ok": "var(--jp-success-color1, #388e3c)", "error": LEVEL_COLOURS["error"],
                  "timeout": LEVEL_COLOURS["warn"], "aborted": LEVEL_COLOURS["warn"],
                  "rejected": LEVEL_COLOURS["warn"], "pending": LEVEL_COLOURS["info"],
                  "skipped": LEVEL_COLOURS["debug"], "caller_error": LEVEL_COLOURS["debug"],
                  "closed": "var(--jp-success-color1, #388e3c)",
                  "open": LEVEL_COLOURS["error"], "half_open": LEVEL_COLOURS["warn"]}


def start_live(owner: Any, method: str, stop: threading.Event, interval: float,
               name: str) -> threading.Thread:
    """A daemon thread calling ``owner.<method>()`` every ``interval`` seconds until ``stop``
    is set or the owner is garbage (it holds only a weak reference). A failing call is
    skipped: a display or store hiccup must not end the live refresh."""
    ref = weakref.ref(owner)

    def loop() -> None:
        while not stop.wait(interval):
            target = ref()
            if target is None:
                return
            try:
                getattr(target, method)()
            except Exception:  # noqa: BLE001 - see the docstring
                pass
            del target

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table_html(columns: list[str], rows: list[list[Any]], *, caption: str = "") -> str:
    """A plain HTML table (already-escaped cells may be passed as ``Markup``)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else esc(c)}</td>"
                                    for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="fnb-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Markup(str):
    """HTML that must not be escaped again."""


class View(ABC):
    """A live widget with a static HTML fallback."""

    def __init__(self) -> None:
        self._widget: Any = None

    @abstractmethod
    def html(self) -> str:
        """Static HTML of the current data."""

    @abstractmethod
    def build(self) -> Any:
        """Create the ipywidgets tree (called once, on first display or access)."""

    def update(self) -> None:  # noqa: B027 - views with live widgets override it
        """Push the current data into the widget (after :meth:`refresh` re-queried)."""

    def refresh(self) -> View:
        """Re-query and update; returns self."""
        self.update()
        return self

    @property
    def widget(self) -> Any:
        if self._widget is None:
            self._widget = self.build()
        return self._widget

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/html": self.html(), "text/plain": repr(self)}
        try:
            widget_bundle = self.widget._repr_mimebundle_()
        except Exception:  # noqa: BLE001 - no ipywidgets / no comm: the static view stands
            widget_bundle = None
        if isinstance(widget_bundle, dict):
            for key, value in widget_bundle.items():
                if key.startswith("application/vnd.jupyter.widget-view"):
                    bundle[key] = value
        return bundle
