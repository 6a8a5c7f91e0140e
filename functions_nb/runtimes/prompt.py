"""The "prompt" runtime kind: prompt-only functions (``%%function generative``) have no code.

Loading one succeeds (so the loader, breakers and listings treat it like any function);
calling its code raises: an invocation goes through the cascade, starting at the generative
tier (``client.Functions.invoke`` routes it there).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvocationError
from ..models import Signature
from ..process_wide import ProcessWide
from .base import CallContext, Isolation, ModuleCache


class PromptFunction:
    def __init__(self, name: str) -> None:
        self.name = name

    def call(self, args: tuple, ctx: CallContext) -> Any:
        raise InvocationError(f"{self.name} is a prompt-only function: it has no code tier; "
                              "invoke it through the cascade (fx.invoke routes it there)")

    def close(self) -> None:
        pass


class PromptRuntime:
    kind = "prompt"

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> PromptFunction:
        return PromptFunction(name)

    def isolation(self) -> Isolation:
        return Isolation("prompt", ("no code runs: the generative tier answers",))

    def close(self) -> None:
        pass


#: The process-wide runtime.
runtime: ProcessWide[PromptRuntime] = ProcessWide(PromptRuntime)
