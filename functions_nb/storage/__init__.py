"""Storage of deployed functions over fsspec."""

from .store import FunctionStore

__all__ = ["FunctionStore"]
