"""The code tier: the deployed function itself, run by the executor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Aborted
from ..models import FunctionInfo
from .base import Tier, TierCall


class CodeTier(Tier):
    """Runs the deployed version through the loader and executor (limits, breaker, record)."""

    name = "code"
    enforces_deadline = True

    def __init__(self, load: Callable[[str], Any], executor: Any) -> None:
        self._load = load
        self._executor = executor

    def skip_reason(self, info: FunctionInfo, options: dict[str, Any]) -> str | None:
        if info.runtime == "prompt":
            return "prompt-only function: there is no code to run"
        return None

    def run(self, call: TierCall) -> Any:
        fn = self._load(call.info.target)
        if call.cancelled():
            raise Aborted(f"{call.info.name}: cancelled before the code tier started")
        ex = self._executor.run(fn, call.args, call.timeout, detail=True, tier="code",
                                attempt=call.attempt, exec_id=call.execution_id,
                                cascade_id=call.options.get("cascade_id"))
        call.console.extend(ex.console)
        value = ex.result()
        if call.options.get("min_confidence") is not None:  # an unsure classifier escalates
            from .confidence import check

            check(call.info.name, value, call.options["min_confidence"])
        return value

    def cancel(self, call: TierCall) -> None:
        self._executor.abort(call.execution_id)
