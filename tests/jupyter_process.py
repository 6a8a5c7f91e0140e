"""Jupyter servers the tests start as processes: wait until the API answers, stop the group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path


def wait_healthy(proc: subprocess.Popen, base: str, token: str, log: Path, timeout: float = 60) -> None:
    """Return once ``{base}/functions-nb/api/health`` says ok; fail with the log's tail if the
    process exits or ``timeout`` seconds pass first."""
    request = urllib.request.Request(f"{base}/functions-nb/api/health",
                                     headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.load(urllib.request.urlopen(request, timeout=5))["status"] == "ok":
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer within {timeout:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_group(proc: subprocess.Popen, wait: float = 15) -> None:
    """Stop a process started with ``start_new_session=True`` and its group: SIGTERM (Jupyter
    shuts its kernels down), SIGKILL if it lingers, then SIGKILL for stragglers of the group."""
    for sig, seconds in ((signal.SIGTERM, wait), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(seconds)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
