"""``map_on_cluster``: invoke a deployed function once per input on a Dask cluster, without a
``Functions`` on the calling side (what ``Functions(cluster=...).map`` does with one).

The machinery (chunks, worker clients, deterministic execution ids ``map_id-i``, retries)
is in :mod:`functions_nb.mapping`; this front end only names the client class the workers
build (``Functions``), so the client itself never imports a front end. Importing this module
does not import Dask.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .client import Functions
from .mapping import RETRIES, MapResults, auto_chunk_size, execution_id, map_chunks


def map_on_cluster(client: Any, store_url: str, storage_options: dict[str, Any] | None,
                   target: str, inputs: Iterable[Any], *, timeout: float | None = None,
                   progress: bool | None = None, raise_errors: bool = False,
                   chunk_size: int | None = None, retries: int = RETRIES,
                   map_id: str | None = None, options: dict[str, Any] | None = None,
                   ) -> MapResults:
    """Invoke ``target`` once per input on the Dask workers of ``client`` (a
    ``distributed.Client``, a scheduler address or a cluster object); each worker opens the
    store ``store_url`` with ``Functions(store=store_url, storage_options=..., **options)``.
    Results in input order; the parameters are those of :func:`functions_nb.mapping.map_chunks`."""
    return map_chunks(client, Functions, store_url, storage_options, target, inputs,
                      timeout=timeout, progress=progress, raise_errors=raise_errors,
                      chunk_size=chunk_size, retries=retries, map_id=map_id, options=options)


__all__ = ["MapResults", "auto_chunk_size", "execution_id", "map_on_cluster"]
