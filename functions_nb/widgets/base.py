"""What every functions-nb view is: a static HTML rendering that any reader shows (JupyterLab,
a reopened or shared notebook, nbconvert, GitHub, a terminal's text), kept current while the
kernel runs, plus an optional ipywidgets panel with controls.

A view implements :meth:`View.html` (static HTML from its current data) and may implement
:meth:`View.build` (the ipywidgets tree, created on first access of :attr:`View.widget`) and
:meth:`View.update_widget`; :meth:`View.refresh` re-queries and calls :meth:`View.update`.

Displaying a view (``display(view)``, or a view as a cell's value) emits one ``display_data``
output holding only ``text/html`` and ``text/plain``, with a display id. While the kernel
lives, :meth:`View.update` replaces that output in place (``update_display_data``): a live
tail, a breaker countdown, a ``refresh()`` all land in it, so the saved notebook holds the last
state. No output refers to a widget model, so a reopened notebook (after the kernel or
JupyterLab restarted) never shows "Error displaying widget: model not found". The widget panel
is there for whoever displays ``view.widget`` explicitly, for the running kernel only.
"""

from __future__ import annotations

import html
import threading
import uuid
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


class LiveRefresh:
    """A view that re-reads what it shows every ``interval`` seconds on a daemon thread while
    ``live`` (its ``poll()`` does the reading); the output keeps its last state when stopped."""

    live: bool
    interval: float
    _thread: threading.Thread | None = None
    _stop: threading.Event

    def displayed(self) -> None:
        if self.live:
            self.start()

    def start(self) -> None:
        """Start the live thread (daemon), unless it runs."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = start_live(self, "poll", self._stop, self.interval,
                                  f"functions-nb-{type(self).__name__}")

    def stop(self, timeout: float | None = None) -> None:
        """Stop the live thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


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


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a frontend may show ``update_display_data``); False in a
    terminal IPython or plain Python, where an update would print the view again."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


class View(ABC):
    """Static HTML, updated in place while the kernel runs; an optional live widget."""

    def __init__(self) -> None:
        self._widget: Any = None
        #: Display ids of the outputs showing this view, and the HTML they show.
        self._display_ids: list[str] = []
        self._shown_html: str | None = None
        self._display_lock = threading.Lock()

    @abstractmethod
    def html(self) -> str:
        """Static HTML of the current data."""

    @abstractmethod
    def build(self) -> Any:
        """Create the ipywidgets tree (called once, on first access of :attr:`widget`)."""

    def update_widget(self) -> None:  # noqa: B027 - views with a widget override it
        """Push the current data into the widget, if it was built."""

    def update(self) -> None:
        """Show the current data: in the widget if built, and in every output showing this view."""
        self.update_widget()
        self.push()

    def refresh(self) -> View:
        """Re-query and update; returns self."""
        self.update()
        return self

    @property
    def widget(self) -> Any:
        """The ipywidgets panel (controls included). It lives as long as the kernel: a saved
        notebook that shows it needs JupyterLab's "save widget state" to show it again."""
        if self._widget is None:
            self._widget = self.build()
        return self._widget

    def bundle(self) -> dict[str, Any]:
        """The mime bundle every output of this view holds: static HTML and text."""
        return {"text/html": self.html(), "text/plain": repr(self)}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.bundle()

    def _ipython_display_(self) -> None:
        """``display(view)`` and a view as a cell's value: one output with a display id (no
        ``Out[n]`` copy), which :meth:`push` keeps current."""
        from IPython.display import display

        bundle = self.bundle()
        display_id = uuid.uuid4().hex
        display(bundle, raw=True, display_id=display_id)
        with self._display_lock:
            self._display_ids.append(display_id)
            self._shown_html = bundle["text/html"]
        self.displayed()

    def displayed(self) -> None:  # noqa: B027 - views with a live thread override it
        """Called after the view was displayed (e.g. to start a live refresh)."""

    def push(self) -> None:
        """Replace the outputs showing this view with its current HTML (in a kernel, when the
        HTML changed)."""
        if not self._display_ids or not in_kernel():
            return
        from IPython.display import update_display

        bundle = self.bundle()
        with self._display_lock:
            if bundle["text/html"] == self._shown_html:
                return
            self._shown_html = bundle["text/html"]
            for display_id in self._display_ids:
                update_display(bundle, raw=True, display_id=display_id)
