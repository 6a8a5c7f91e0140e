"""The one HTTP client of the resolvers: GET with a time limit, a size cap and errors that
name the package (a registry that does not answer is a :class:`DependencyError`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ..errors import DependencyError

#: Seconds a registry has to answer one request.
TIMEOUT = 60.0
#: The largest file a resolver fetches (a package bigger than this is refused, named).
MAX_BYTES = 256 << 20
USER_AGENT = "functions-nb (dependency resolver)"


def get(url: str, package: str, *, accept: str = "*/*", max_bytes: int = MAX_BYTES) -> bytes:
    """The body of ``url``, fetched for ``package`` (named in every error)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - https registries
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise DependencyError(f"{package}: not found in the registry ({url})") from None
        raise DependencyError(f"{package}: the registry answered {exc.code} {exc.reason} "
                              f"({url})") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DependencyError(f"{package}: the registry did not answer ({url}: {reason})"
                              ) from None
    if len(data) > max_bytes:
        raise DependencyError(f"{package}: {url} is larger than {max_bytes >> 20} MiB")
    return data


def get_json(url: str, package: str, *, accept: str = "application/json") -> Any:
    """``url``'s JSON body (see :func:`get`)."""
    data = get(url, package, accept=accept)
    try:
        return json.loads(data)
    except ValueError:
        raise DependencyError(f"{package}: the registry's answer is not JSON ({url})") from None


__all__ = ["MAX_BYTES", "TIMEOUT", "get", "get_json"]
