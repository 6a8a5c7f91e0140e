"""Progress of a long operation (``fx.map``, ``fx.migrate``) that a saved notebook can show.

``progress(total=n, desc=..., unit=...)`` (or ``progress(iterable, ...)``) returns, in a Jupyter
kernel, an :class:`HtmlProgress`: one output with a display id whose HTML bar is replaced in
place (at most every ``interval`` seconds, and once more at the end). It is plain HTML, not a
widget, so the saved notebook shows the final bar after a reopen or in nbconvert (tqdm's
notebook bar is a widget: "model not found" there). Elsewhere it is tqdm's text bar on stderr.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from .base import esc, in_kernel

_BAR = ("display:inline-block;width:240px;height:10px;vertical-align:middle;margin:0 6px;"
        "background:var(--jp-layout-color3, #ddd);border-radius:2px;overflow:hidden")
_FILL = "display:block;height:100%;background:var(--jp-brand-color1, #1976d2)"


class HtmlProgress:
    """A progress bar as an HTML output updated in place (the subset of tqdm's API that
    functions-nb uses: ``update``, ``close``, iteration, a context manager)."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", interval: float = 0.2) -> None:
        self.iterable = iterable
        self.total = total if total is not None or iterable is None else len(iterable)  # type: ignore[arg-type]
        self.desc = desc
        self.unit = unit
        self.interval = interval
        self.n = 0
        self.started = time.perf_counter()
        self.closed = False
        self._shown_at = 0.0
        from IPython.display import display

        self._display_id = uuid.uuid4().hex
        display(self.bundle(), raw=True, display_id=self._display_id)

    def text(self) -> str:
        elapsed = time.perf_counter() - self.started
        rate = f" · {self.n / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and self.n else ""
        of = f"/{self.total:,}" if self.total is not None else ""
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{self.n:,}{of} {self.unit}{rate} · {elapsed:.1f} s"

    def html(self) -> str:
        share = min(self.n / self.total, 1.0) if self.total else 0.0
        fill = f'<span style="{_FILL};width:{share:.1%}"></span>'
        return (f'<div class="fnb-progress" style="font-family:var(--jp-ui-font-family, sans-serif);'
                f'font-size:var(--jp-ui-font-size1, 13px)">'
                f'<span class="fnb-bar" style="{_BAR}">{fill}</span>{esc(self.text())}</div>')

    def bundle(self) -> dict[str, str]:
        return {"text/html": self.html(), "text/plain": self.text()}

    def _show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._shown_at >= self.interval:
            from IPython.display import update_display

            self._shown_at = now
            update_display(self.bundle(), raw=True, display_id=self._display_id)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._show()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._show(force=True)

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> HtmlProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it") -> Any:
    """An :class:`HtmlProgress` in a Jupyter kernel, tqdm's text bar elsewhere."""
    if in_kernel():
        return HtmlProgress(iterable, total=total, desc=desc, unit=unit)
    from tqdm.std import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit)


__all__ = ["HtmlProgress", "progress"]
