"""The exception tree of functions-nb, documented in one place.

::

    FunctionsError
    ├── CompileError            compiler output with cell line numbers (.line, .column)
    │   └── DependencyError     a declared dependency cannot be used (names it and says why)
    ├── ToolchainMissing        a language's toolchain is not installed (says how to install it)
    ├── FunctionNotFound        unknown name or version (also a ``LookupError``)
    ├── BadArguments            caller passed arguments that do not fit the signature (also ``TypeError``)
    ├── InvocationError         the function itself failed: trap, panic, returned error
    │   ├── FunctionTimeout     stopped at its time limit (also ``TimeoutError``)
    │   ├── LimitExceeded       hit its memory limit (also ``MemoryError``)
    │   ├── Aborted             aborted by ``Functions.abort(id)``
    │   └── CascadeExhaustedError  every cascade tier failed, timed out or was skipped (.attempts)
    ├── CircuitOpen             the function's circuit breaker is open; call rejected fast
    ├── QueueFull               the executor queue is full; call rejected
    └── StorageError            the store could not be read or written

Caller mistakes (``BadArguments``, ``FunctionNotFound``: ``caller_error`` is True) never trip
a circuit breaker, and the history's numbers count them apart from the function's errors
(:mod:`functions_nb.history_queries`, by the record's ``error_kind``).
"""

from __future__ import annotations


class FunctionsError(Exception):
    """Root of every error functions-nb raises."""

    kind = "error"
    #: True when the error is the caller's mistake; such errors never trip a breaker.
    caller_error = False

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the message, not a traceback into our internals."""
        return [f"{type(self).__name__}: {self}"]


class CompileError(FunctionsError):
    """The cell did not compile. ``str(err)`` is the compiler's own text, lines relative to the cell."""

    kind = "compile_error"

    def __init__(self, message: str, *, language: str = "", name: str = "",
                 line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.language = language
        self.name = name
        self.line = line
        self.column = column

    def _render_traceback_(self) -> list[str]:
        where = f" (cell line {self.line})" if self.line else ""
        head = f"CompileError: {self.language} function {self.name!r} did not compile{where}"
        return [head, "", *str(self).splitlines()]


class DependencyError(CompileError):
    """A dependency the cell declares cannot be used: not found, no version matches, not
    allowed (an sdist, compiled code the runtime lacks, an install script), or its registry
    did not answer. The message names the package and says why."""

    kind = "dependency_error"


class ToolchainMissing(FunctionsError):
    """A language's toolchain is not usable; the message names the install command."""

    kind = "toolchain_missing"


class FunctionNotFound(FunctionsError, LookupError):
    """No function (or no such version) with that name in the store."""

    kind = "not_found"
    caller_error = True


class BadArguments(FunctionsError, TypeError):
    """The arguments do not fit the function's signature; the message names the signature."""

    kind = "bad_arguments"
    caller_error = True


class InvocationError(FunctionsError):
    """The function ran and failed (trap, panic, or an error it returned)."""

    kind = "runtime_error"


class FunctionTimeout(InvocationError, TimeoutError):
    """The function was stopped at its time limit."""

    kind = "timeout"


class LimitExceeded(InvocationError, MemoryError):
    """The function exceeded its memory limit."""

    kind = "limit_exceeded"


class Aborted(InvocationError):
    """The execution was aborted by id."""

    kind = "aborted"


class CircuitOpen(FunctionsError):
    """The circuit breaker of the function is open; the call was rejected without running."""

    kind = "circuit_open"

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(FunctionsError):
    """The executor's queue is full; the call was rejected."""

    kind = "queue_full"


class StorageError(FunctionsError):
    """The store could not be read or written."""

    kind = "storage_error"


class CascadeExhaustedError(InvocationError):
    """Every tier of a cascade failed, timed out or was skipped. ``attempts`` is the full
    history (tier, attempt, status, error, duration) as a list of ``cascade.Attempt``."""

    kind = "cascade_exhausted"

    def __init__(self, message: str, attempts: list | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])


def error_status(err: BaseException) -> str:
    """The execution-record status for an error."""
    if isinstance(err, FunctionTimeout):
        return "timeout"
    if isinstance(err, Aborted):
        return "aborted"
    if isinstance(err, (CircuitOpen, QueueFull)):
        return "rejected"
    return "error"


class StaleFunctionWarning(UserWarning):
    """The store could not be reached; a version already loaded in this process was used."""
