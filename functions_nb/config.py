"""Seed defaults (DESIGN.md) and where things live on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Tier timeouts in seconds (code, generative, agentic, human).
TIER_TIMEOUTS = {"code": 30.0, "generative": 60.0, "agentic": 300.0, "human": 86400.0}
DEFAULT_TIMEOUT = TIER_TIMEOUTS["code"]
DEFAULT_MEMORY_MB = 64
MAX_CONCURRENCY = 10
MAX_QUEUE = 100
LOG_RETENTION_DAYS = 7
#: Console capture caps per execution.
CONSOLE_MAX_LINES = 1000
CONSOLE_MAX_BYTES = 64 * 1024
#: Input/output JSON kept in an execution record is truncated to this many characters.
RECORD_MAX_CHARS = 2000
#: Loaded functions kept warm.
LRU_SIZE = 64
#: How long ``name`` (latest) stays resolved before the store is asked again.
LATEST_TTL = 2.0


@dataclass(frozen=True)
class BreakerConfig:
    """Circuit breaker settings; defaults are the seed's."""

    failure_threshold: int = 5
    reset_timeout: float = 30.0
    half_open_max_calls: int = 1
    success_threshold: int = 2


def default_store_url() -> str:
    """``$FUNCTIONS_NB_STORE`` or ``~/.functions-nb/store``."""
    env = os.environ.get("FUNCTIONS_NB_STORE")
    if env:
        return env
    return str(Path.home() / ".functions-nb" / "store")


def cache_dir() -> Path:
    """Local build and module cache: ``$FUNCTIONS_NB_CACHE`` or ``$XDG_CACHE_HOME/functions-nb``."""
    env = os.environ.get("FUNCTIONS_NB_CACHE")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "functions-nb"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: npm packages functions-nb runs (see package.json at the project root).
NODE_PACKAGES = ("esbuild", "typescript", "assemblyscript", "pyodide")
NODE_INSTALL_HINT = ("make setup (or: npm install --prefix ~/.cache/functions-nb/node "
                     "esbuild@0.28.2 typescript@7.0.2 assemblyscript@0.28.20 pyodide@314.0.7)")


def node_modules() -> Path:
    """Where the npm toolchains live: ``$FUNCTIONS_NB_NODE_MODULES``, the project checkout's
    ``node_modules`` (``make setup`` installs there), or ``<cache_dir>/node/node_modules``."""
    env = os.environ.get("FUNCTIONS_NB_NODE_MODULES")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "node_modules"
    if checkout.is_dir():
        return checkout
    return cache_dir() / "node" / "node_modules"
