"""The agentic tier: an LLM agent with tools produces the function's output.

Tools: every other deployed function (tool name = function name, description = signature
and description, parameters from the signature; a call runs ``services.invoke``, i.e. the
code tier only, so an agent cannot recurse into the cascade), except prompt-only
(``generative``) functions, which have no code to run; and ``query_history(sql)``, one SELECT
over the ``executions`` table, run on the read-only connection of
:mod:`functions_nb.history_sql` (the REST API's ``/sql`` uses the same). Every tool call is
written to the attempt's console as ``tool <name>(<args>) -> <result or error>``.

Budget: ``options["max_steps"]`` model requests (default 8) and ``options["max_tokens"]``
tokens in all (default 20000), enforced by pydantic-ai ``UsageLimits``; exceeding either
fails the attempt. Output validation, deadline, cancel and fallback are as in the
generative tier (``llm.LLMTier``).

Model: ``options["agent_model"]``, ``options["model"]``, then the client's
``Functions(agent_model=...)`` and ``Functions(model=...)``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from .. import history_sql
from ..errors import FunctionsError
from ..models import FunctionInfo
from .base import TierCall
from .llm import (
    OUTPUT_RETRIES,
    LLMTier,
    build_prompt,
    dumps,
    extract_doc,
    function_brief,
    output_spec,
    params_adapter,
    system_prompt,
    to_jsonable,
)

MAX_STEPS = 8
MAX_TOKENS = 20_000
#: Rows of a history query shown to the model.
MAX_ROWS = 50
#: Longest tool argument/result text in a console line (the model gets the full result).
MAX_LOG = 300

SYSTEM = ("You stand in for the software function `{name}`, whose own implementation failed. "
          "Work out the value it would return for the input. You may call the tools: other "
          "deployed functions, and query_history for past executions (read-only SQL). Then "
          "answer with that value, in the required output format.")
TASK = "Use the tools if they help, then return the function's output for this input."

def _short(value: Any) -> str:
    return dumps(value, MAX_LOG)


class AgenticTier(LLMTier):
    """An agent whose tools are the other deployed functions and a history query."""

    name = "agentic"
    model_options = ("agent_model", "model")
    service_models = ("agent_model", "model")

    def run(self, call: TierCall) -> Any:
        from pydantic_ai import Agent
        from pydantic_ai.usage import UsageLimits

        brief = function_brief(call.info, call.options)
        prompt = build_prompt(brief, call, TASK)
        system = system_prompt(brief, call, SYSTEM)
        out = output_spec(brief)
        tools = [*self._function_tools(call), self._history_tool(call)]
        max_steps = int(call.options.get("max_steps") or MAX_STEPS)
        max_tokens = int(call.options.get("max_tokens") or MAX_TOKENS)
        limits = UsageLimits(request_limit=max_steps, total_tokens_limit=max_tokens)

        def start(model: Any) -> Any:
            agent = Agent(model, output_type=out, system_prompt=system, tools=tools,
                          name=f"agentic:{brief.name}", retries={"output": OUTPUT_RETRIES, "tools": 1})
            return agent.run(prompt, usage_limits=limits)

        return self.run_agent(call, brief, start)

    def describe_limit(self, message: str, call: TierCall) -> str:
        steps = call.options.get("max_steps") or MAX_STEPS
        tokens = call.options.get("max_tokens") or MAX_TOKENS
        if "request_limit" in message:
            what = f"its step limit of {steps} model requests (option max_steps)"
        elif "tokens_limit" in message:
            what = f"its token budget of {tokens} tokens (option max_tokens)"
        else:
            what = "its usage limits"
        return f"the agent exceeded {what}: {message}"

    # tools ----------------------------------------------------------------------------
    def _function_tools(self, call: TierCall) -> list[Any]:
        tools = []
        for info in self.services.list_functions():
            if info.name == call.info.name or info.language == "generative":
                continue
            if info.name == "query_history" or info.name.startswith("final_result"):
                call.log("warning", f"function {info.name!r} is not offered as a tool: its name "
                                    "is reserved by the agent")
                continue
            tools.append(self._function_tool(call, info))
        return tools

    def _function_tool(self, call: TierCall, info: FunctionInfo) -> Any:
        from pydantic import ValidationError
        from pydantic_ai import Tool
        from pydantic_ai.exceptions import ModelRetry, ToolFailed

        adapter = params_adapter(info.signature)
        names = [p.name for p in info.signature.params]
        options = dict(getattr(info, "options", None) or {})
        doc = options.get("description") or extract_doc(info.source, info.name, info.language)
        description = f"{info.signature}" + (f": {doc}" if doc else "")

        async def invoke(**kwargs: Any) -> Any:
            try:
                values = adapter.validate_python(kwargs)
            except ValidationError as exc:
                call.log("info", f"tool {info.name}({_short(kwargs)}) -> bad arguments: {exc}")
                raise ModelRetry(f"arguments do not fit {info.signature}: {exc}") from None
            args = [values[n] for n in names]
            shown = f"tool {info.name}({', '.join(_short(a) for a in args)})"
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    None, functools.partial(self.services.invoke, info.name, *args))
            except Exception as exc:  # noqa: BLE001 - the model is told, and adapts
                call.log("info", f"{shown} -> error: {type(exc).__name__}: {exc}")
                raise ToolFailed(f"{type(exc).__name__}: {exc}") from None
            call.log("info", f"{shown} -> {_short(result)}")
            return to_jsonable(result)

        return Tool.from_schema(invoke, name=info.name, description=description,
                                json_schema=adapter.json_schema())

    def _history_tool(self, call: TierCall) -> Any:
        from pydantic_ai import Tool
        from pydantic_ai.exceptions import ToolFailed

        read = self.services.sql

        async def query_history(sql: str) -> str:
            """Run one read-only SQL query (DuckDB: one SELECT) over the table
            `executions` (columns: id, function, version, language, tier, attempt, status,
            error_kind, error_message, started_at, duration_ms, input, output, console).
            Returns the row count and the first 50 rows as JSON."""
            shown = f"tool query_history({_short(sql)})"
            timeout = max(0.1, min(history_sql.TIMEOUT, call.deadline - time.monotonic()))
            try:
                if read is None:
                    raise history_sql.HistoryQueryError("no history is recorded here")
                result = await asyncio.get_running_loop().run_in_executor(None, functools.partial(
                    read, sql, max_rows=MAX_ROWS, timeout=timeout))
            except Exception as exc:  # noqa: BLE001 - the model is told, and adapts
                text = str(exc) if isinstance(exc, FunctionsError) else f"{type(exc).__name__}: {exc}"
                call.log("info", f"{shown} -> error: {text}")
                raise ToolFailed(text) from None
            rows = result.frame.to_dict(orient="records")
            text = dumps({"rows": result.row_count, "first_rows": rows}, 8000)
            call.log("info", f"{shown} -> {result.row_count} rows")
            return text

        return Tool(query_history, name="query_history")
