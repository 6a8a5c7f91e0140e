"""The generative tier: ONE LLM call produces the function's output.

The model is told the function's name, signature, description (``options["description"]``,
the function's doc comment / docstring, or a generative cell's ``description:``), the
arguments, an optional prompt template (``options["prompt"]`` or the cell's ``prompt:``, with
``{param}`` placeholders) and system prompt (``options["system"]`` or the cell's
``system:``), and with ``fallback`` what the earlier tiers failed with. Its answer is
validated against the signature's return type (and a generative cell's ``output:`` JSON
Schema); a failing answer gets exactly one repair request (pydantic-ai output retries = 1),
then the attempt fails with the last answer as ``partial``.

Model: ``options["model"]``, else the client's ``Functions(model=...)``.
"""

from __future__ import annotations

from typing import Any

from .base import TierCall
from .llm import OUTPUT_RETRIES, LLMTier, build_prompt, function_brief, output_spec, system_prompt

SYSTEM = ("You stand in for the software function `{name}`. Given its signature, description "
          "and input, produce exactly the value the function would return. Answer only with "
          "that value, in the required output format.")
TASK = "Return the function's output for this input."


class GenerativeTier(LLMTier):
    """One LLM call whose output is the function's result."""

    name = "generative"
    model_options = ("model",)
    service_models = ("model",)

    def run(self, call: TierCall) -> Any:
        from pydantic_ai import Agent

        brief = function_brief(call.info, call.options)
        prompt = build_prompt(brief, call, TASK)
        system = system_prompt(brief, call, SYSTEM)
        out = output_spec(brief)

        def start(model: Any) -> Any:
            agent = Agent(model, output_type=out, system_prompt=system, name=f"generative:{brief.name}",
                          retries={"output": OUTPUT_RETRIES})
            return agent.run(prompt)

        return self.run_agent(call, brief, start)
