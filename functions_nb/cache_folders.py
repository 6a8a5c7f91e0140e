"""Folders of the local cache that are made once and then only read (an unpacked package
tree per lock, a fetched toolchain): :func:`made_once`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def made_once(target: Path, fill: Callable[[Path], None]) -> Path:
    """``target``, made by ``fill(folder)`` unless it exists: filled in a temporary folder
    beside it, under a file lock (so two processes never fill it twice), and renamed into
    place only when ``fill`` returned, so nobody sees a half-made one. An error in ``fill``
    leaves nothing behind."""
    if target.is_dir():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if target.is_dir():  # made by another process meanwhile
            return target
        tmp = target.with_name(f".{target.name}.tmp-{os.urandom(8).hex()}")
        tmp.mkdir()
        try:
            fill(tmp)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


__all__ = ["made_once"]
