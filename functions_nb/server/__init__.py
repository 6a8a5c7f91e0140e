"""Jupyter Server extension: the functions-nb REST API under ``/functions-nb/api/``.

Enabled with ``jupyter server extension enable functions_nb.server`` (the wheel ships a
``jupyter_server_config.d`` file that enables it on install). Jupyter's own authentication
protects every route and Jupyter's Authorizer decides each action (read, execute, write on the
resource ``functions``); configure with ``c.FunctionsNB.store``, ``max_body_bytes``,
``max_json_depth``, ``rate_limit``, ``rate_burst``, ``sql_timeout``, ``sql_memory_mb`` and
``sql_threads``.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any

from .config import FunctionsNB

__all__ = ["FunctionsNB"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "functions_nb.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import ServerState, handlers

    config = FunctionsNB(parent=serverapp)
    web_app = serverapp.web_app
    state = ServerState(config)
    web_app.settings["functions_nb"] = state
    # Function-style extensions get no stop hook: flush history and close at exit.
    ref = weakref.ref(state)
    atexit.register(lambda: (s := ref()) is not None and s.close())
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    serverapp.log.info("functions-nb API at %sfunctions-nb/api/ (store %s)",
                       web_app.settings["base_url"], config.store)


# The older name Jupyter Server also looks for.
load_jupyter_server_extension = _load_jupyter_server_extension
