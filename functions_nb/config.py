"""Seed defaults (DESIGN.md) and where things live on disk."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, NamedTuple

from .errors import BadArguments

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


#: Longest function source a deploy accepts, in UTF-8 bytes.
MAX_SOURCE_BYTES = 1024 * 1024
#: Largest ``line_offset`` of a deploy (the source is shifted by that many newlines).
MAX_LINE_OFFSET = 100_000


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


class Ceilings(NamedTuple):
    """The largest limits a deploy or a call may ask for; above them it is refused with
    :class:`~functions_nb.errors.BadArguments` naming the limit and its ceiling.

    Defaults: 4096 MB of memory; 1 h for the code tier (a deploy's ``timeout``, a call's
    ``timeout=``, ``tier_timeouts["code"]``); 24 h for any other tier and for a cascade's
    ``total_timeout`` (the human tier waits a day by default). :meth:`from_env` reads
    ``$FUNCTIONS_NB_MAX_MEMORY_MB``, ``$FUNCTIONS_NB_MAX_TIMEOUT`` and
    ``$FUNCTIONS_NB_MAX_TIER_TIMEOUT``; ``Functions(ceilings=...)`` sets them per client."""

    memory_mb: int = 4096
    timeout: float = 3600.0
    tier_timeout: float = TIER_TIMEOUTS["human"]
    source_bytes: int = MAX_SOURCE_BYTES

    @classmethod
    def from_env(cls) -> Ceilings:
        base = cls()
        return cls(int(_env_number("FUNCTIONS_NB_MAX_MEMORY_MB", base.memory_mb)),
                   _env_number("FUNCTIONS_NB_MAX_TIMEOUT", base.timeout),
                   _env_number("FUNCTIONS_NB_MAX_TIER_TIMEOUT", base.tier_timeout))

    def check_memory(self, value: Any, what: str = "memory_mb") -> int:
        """``value`` as a memory limit in MB (a whole number, 1 ..ceiling), else BadArguments."""
        whole = _is_number(value) and (isinstance(value, numbers.Integral)
                                        or (math.isfinite(value) and value == int(value)))
        if not whole or value < 1:
            raise BadArguments(f"{what} must be a whole number of MB, at least 1; got {_shown(value)}")
        if value > self.memory_mb:
            raise BadArguments(f"{what}={_shown(value)} is above the ceiling of {self.memory_mb} MB "
                               "(Ceilings.memory_mb, $FUNCTIONS_NB_MAX_MEMORY_MB)")
        return int(value)

    def check_timeout(self, value: Any, what: str = "timeout", tier: str = "code") -> float:
        """``value`` as a time limit in seconds (above 0, at most the ceiling of ``tier``:
        :attr:`timeout` for the code tier, :attr:`tier_timeout` for the others), else
        BadArguments."""
        if not _is_number(value) or not value > 0:
            raise BadArguments(f"{what} must be a positive number of seconds; got {_shown(value)}")
        ceiling, field, env = ((self.timeout, "timeout", "FUNCTIONS_NB_MAX_TIMEOUT")
                               if tier == "code" else
                               (self.tier_timeout, "tier_timeout", "FUNCTIONS_NB_MAX_TIER_TIMEOUT"))
        if value > ceiling:
            raise BadArguments(f"{what}={_shown(value)} is above the ceiling of {ceiling:g} s "
                               f"(Ceilings.{field}, ${env})")
        return float(value)

    def check_source(self, source: Any) -> str:
        """A function's source: text of at most :attr:`source_bytes` UTF-8 bytes."""
        if not isinstance(source, str):
            raise BadArguments(f"source must be text, got {type(source).__name__}")
        if len(source) > self.source_bytes:  # a UTF-8 byte per character at least
            size = len(source)
        else:
            try:
                size = len(source.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise BadArguments(f"source is not valid text: {exc.reason} at index "
                                   f"{exc.start}") from None
        if size > self.source_bytes:
            raise BadArguments(f"source is {size} bytes or more; the ceiling is "
                               f"{self.source_bytes} bytes (Ceilings.source_bytes)")
        return source


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and type(value).__name__ not in ("bool", "bool_")


class BreakerConfig(NamedTuple):
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


def modcache_secret() -> bytes:
    """The secret that seals precompiled modules (:mod:`functions_nb.runtimes.modcache`):
    ``$FUNCTIONS_NB_MODCACHE_KEY``, else a random key kept in ``~/.functions-nb/modcache.key``
    (made on first use, readable by its owner only), so this user's processes on this machine
    (kernels, the Jupyter server, local Dask workers) trust each other's compiled code. Give
    machines that share a store the same ``$FUNCTIONS_NB_MODCACHE_KEY`` to share it across them.
    Without a usable home folder: a key for this process only (nothing shared, nothing unsafe)."""
    env = os.environ.get("FUNCTIONS_NB_MODCACHE_KEY")
    if env:
        return env.encode()
    try:
        return _key_file(Path.home() / ".functions-nb" / "modcache.key")
    except (OSError, RuntimeError):
        return _PROCESS_SECRET


_PROCESS_SECRET = os.urandom(32).hex().encode()


def _key_file(path: Path) -> bytes:
    """The key in ``path``, made (owner-only, complete or absent) when missing or empty."""
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        key = b""
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.urandom(16).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(32).hex().encode())
    try:
        if path.exists():
            os.replace(tmp, path)  # an empty key file
        else:
            os.link(tmp, path)  # exclusive: a key another process made first wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


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
