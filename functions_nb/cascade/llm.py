"""What the LLM tiers (generative, agentic) share.

- :func:`resolve_model`: a pydantic-ai ``Model`` from a ``"provider:model"`` string (or a
  ``Model`` instance, used as is). Providers and their usual environment variables:

  ==========================================  ==========================================
  ``openai:gpt-4o-mini``                      ``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` for any
                                              OpenAI-compatible server (chat completions)
  ``anthropic:claude-sonnet-4-5``             ``ANTHROPIC_API_KEY``
  ``ollama:llama3.2``                         ``OLLAMA_BASE_URL`` (default
                                              ``http://127.0.0.1:11434/v1``)
  ``openai-compatible:<model>@<base_url>``    explicit base URL; ``OPENAI_API_KEY`` if set
  ``test``                                    pydantic-ai's ``TestModel`` (no network)
  ==========================================  ==========================================

- Output and parameter types from a :class:`~functions_nb.models.Signature`
  (:func:`output_type`, :func:`params_adapter`): pydantic validates what the model returns.
- The function's brief (name, signature, description, system prompt, prompt template,
  output schema) and the prompt built from it with the arguments and, with ``fallback``,
  what earlier tiers failed with.
- :class:`LLMTier`: runs one pydantic-ai agent run on the process's LLM event loop (one daemon
  thread, so a model instance and its pooled HTTP connections stay on one loop across calls)
  while the calling thread waits, within the attempt's deadline, cancellable from another
  thread; maps failures to :mod:`functions_nb.errors` and records token usage in the
  attempt's console.

pydantic-ai is imported lazily: without it the tiers are skipped with an install hint.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from .. import values
from ..errors import (
    Aborted,
    BadArguments,
    FunctionsError,
    FunctionTimeout,
    InvocationError,
    ToolchainMissing,
)
from ..models import FunctionInfo, Signature
from ..process_wide import ProcessWide
from .base import Attempt, Tier, TierCall, TierServices

INSTALL_HINT = "pydantic-ai is needed for the {tier} tier: pip install 'functions-nb[llm]'"
NO_MODEL = "no model configured: pass Functions(model='provider:model') or model=..."
OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
PROVIDERS = ("openai", "anthropic", "ollama", "openai-compatible", "test")
#: Longest JSON text of the arguments (or of an earlier partial output) put into a prompt.
MAX_PROMPT_VALUE = 20_000
#: Output validation failures get exactly this many repair requests.
OUTPUT_RETRIES = 1


def pydantic_ai_available() -> bool:
    try:
        import pydantic_ai  # noqa: F401
    except ImportError:
        return False
    return True


def _require(tier: str = "generative") -> None:
    if not pydantic_ai_available():
        raise ToolchainMissing(INSTALL_HINT.format(tier=tier))


# -- models -------------------------------------------------------------------------------

def resolve_model(spec: Any) -> Any:
    """A pydantic-ai model for ``spec``: a ``Model`` instance, or ``"provider:model"``."""
    _require()
    from pydantic_ai.exceptions import UserError
    from pydantic_ai.models import Model

    if isinstance(spec, Model):
        return spec
    if spec == "test":
        from pydantic_ai.models.test import TestModel

        return TestModel()
    provider, sep, name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    provider, name = provider.strip().lower(), name.strip()
    if not sep or not name:
        raise BadArguments(f"model {spec!r}: expected a pydantic-ai Model or 'provider:model' "
                           f"with provider one of {', '.join(PROVIDERS)}")
    try:
        if provider == "openai":
            return _openai_chat(name, None)
        if provider == "ollama":
            from pydantic_ai.providers.ollama import OllamaProvider

            base_url = os.environ.get("OLLAMA_BASE_URL") or OLLAMA_BASE_URL
            return _openai_chat(name, OllamaProvider(base_url=base_url))
        if provider == "openai-compatible":
            m = re.fullmatch(r"(.+?)@(https?://\S+)", name)
            if m is None:
                raise BadArguments(f"model {spec!r}: expected 'openai-compatible:<model>@<base_url>', "
                                   "e.g. 'openai-compatible:llama3@http://127.0.0.1:8000/v1'")
            from pydantic_ai.providers.openai import OpenAIProvider

            key = os.environ.get("OPENAI_API_KEY") or "api-key-not-set"
            return _openai_chat(m.group(1), OpenAIProvider(base_url=m.group(2), api_key=key))
        if provider == "anthropic":
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            return AnthropicModel(name, provider=AnthropicProvider())
    except ImportError as exc:
        raise ToolchainMissing(f"model {spec!r} needs the {exc.name} package: "
                               "pip install 'functions-nb[llm]'") from None
    except UserError as exc:  # e.g. a missing API key
        raise InvocationError(f"cannot use model {spec!r}: {exc}") from None
    raise BadArguments(f"model {spec!r}: unknown provider {provider!r}; use one of "
                       f"{', '.join(PROVIDERS)}")


def _openai_chat(name: str, provider: Any) -> Any:
    """The chat-completions model (what OpenAI-compatible servers speak)."""
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIChatModel(name, provider=provider or OpenAIProvider())


# -- types from signatures ----------------------------------------------------------------

def kind_type(kind: str, bounds: tuple[int, int] | None = None) -> Any:
    """The Python/pydantic type of a host kind (``i32``, ``f64[]``, ``json``, ...): numbers
    and bools are checked by :func:`functions_nb.values.answer` (exact, ranges from the
    table, no bool for a number) and their ranges are in the JSON Schema the model sees."""
    from pydantic import BeforeValidator, Field

    spec = values.kind(kind)
    if kind in values.INT_RANGES:
        lo, hi = values.int_range(kind, bounds)
        return Annotated[int, Field(ge=lo, le=hi), BeforeValidator(_answer(kind, bounds))]
    if kind == "bigint":
        return Annotated[int, BeforeValidator(_answer(kind))]
    if kind == "f32":
        return Annotated[float, Field(ge=spec.lo, le=spec.hi), BeforeValidator(_answer(kind))]
    if kind == "f64":
        return Annotated[float, BeforeValidator(_answer(kind))]
    if kind == "bool":
        return Annotated[bool, BeforeValidator(_answer(kind))]
    if spec.element:
        return list[kind_type(spec.element)]  # type: ignore[misc]
    return {"str": str, "bytes": bytes}.get(kind, Any)


def _answer(kind: str, bounds: tuple[int, int] | None = None) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return values.answer(kind, value, bounds)
        except values.Refused as exc:
            raise ValueError(str(exc)) from None
    return check


def output_type(signature: Signature, schema: dict[str, Any] | None = None) -> Any:
    """The type the model's output must validate against: the signature's result (a unit
    result takes any text, discarded), refined by a JSON Schema when one is given."""
    base = str if signature.result == "unit" else kind_type(signature.result)
    if not schema:
        return base
    from pydantic import AfterValidator, WithJsonSchema

    return Annotated[base, WithJsonSchema(schema), AfterValidator(_schema_check(schema))]


def output_spec(brief: FunctionBrief) -> Any:
    """The agent's output: a call of the output tool ``final_result`` whose argument
    validates against the result type (for ``str`` too: free text is not an answer)."""
    from pydantic_ai import ToolOutput

    return ToolOutput(output_type(brief.signature, brief.output_schema), name="final_result",
                      description=f"The return value of {brief.signature}",
                      max_retries=OUTPUT_RETRIES)


def _schema_check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(value: Any) -> Any:
        errors = sorted(validator.iter_errors(to_jsonable(value)), key=lambda e: list(e.path))
        if errors:
            raise ValueError("; ".join(f"{'/'.join(map(str, e.path)) or 'value'}: {e.message}"
                                       for e in errors[:5]))
        return value

    return check


@functools.lru_cache(maxsize=256)
def params_adapter(signature: Signature) -> Any:
    """A pydantic ``TypeAdapter`` of the parameters as an object (name -> value)."""
    from pydantic import TypeAdapter
    from typing_extensions import TypedDict

    fields = {p.name: kind_type(p.kind, p.bounds) for p in signature.params}
    return TypeAdapter(TypedDict(f"{signature.name}_params", fields))  # type: ignore[operator]


def signature_schema(signature: Signature, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schemas of the parameters (an object) and of the result."""
    from pydantic import TypeAdapter

    return {"params": params_adapter(signature).json_schema(),
            "result": TypeAdapter(output_type(signature, schema)).json_schema()}


def coerce_output(signature: Signature, value: Any) -> Any:
    """The validated model output as the code tier would return it (numpy arrays for array
    kinds, None for a unit result)."""
    if signature.result == "unit":
        return None
    if signature.result.endswith("[]"):
        import numpy as np

        return np.asarray(value, dtype=values.ARRAY_DTYPES[signature.result])
    return value


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (numpy -> lists/numbers, bytes -> text, sets -> lists)."""
    return json.loads(dumps(value))


def dumps(value: Any, limit: int | None = None) -> str:
    from ..values import json_default

    def default(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v).decode("utf-8", "replace")
        try:
            return json_default(v)
        except TypeError:
            return repr(v)

    text = json.dumps(value, default=default, ensure_ascii=False)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"... (truncated, {len(text)} characters in all)"
    return text


# -- the function's brief and the prompt ----------------------------------------------

_DOC_MARKERS = re.compile(r"^\s*(?:///?!?|/\*\*?|\*/|\*|#)\s?")
_SKIP_LINE = re.compile(r"^\s*(?:#!?\[.*\]|\[.*\]|@\w.*|//go:.*|//export\b.*)\s*$")


def extract_doc(source: str, name: str, language: str = "") -> str:
    """The doc comment of function ``name`` in ``source``: a Python docstring, or the
    comment lines right above the definition (``///``, ``//``, ``/** */``, ``#``); attribute,
    decorator and directive lines in between are skipped, XML tags (C#) removed."""
    if language == "python":
        with contextlib.suppress(SyntaxError, ValueError):
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                    return (ast.get_docstring(node) or "").strip()
    lines = source.splitlines()
    define = re.compile(rf"\b(?:fn|func|function|def|sub)\s+{re.escape(name)}\b|\b{re.escape(name)}\s*\(")
    found = next((i for i, line in enumerate(lines)
                  if define.search(line) and not _DOC_MARKERS.match(line)), None)
    if found is None:
        return ""
    doc: list[str] = []
    for line in reversed(lines[:found]):
        if _SKIP_LINE.match(line):
            continue
        if not line.strip() or not _DOC_MARKERS.match(line):
            break
        doc.append(_DOC_MARKERS.sub("", line, count=1).rstrip().removesuffix("*/").rstrip())
    text = "\n".join(reversed(doc))
    text = re.sub(r"</?\w+[^>]*>", "", text)  # C# <summary> etc.
    return "\n".join(x.strip() for x in text.strip().splitlines()).strip()


@dataclass(frozen=True)
class FunctionBrief:
    """What the model is told about the function it stands in for."""

    name: str
    signature: Signature
    description: str = ""
    system: str = ""
    template: str = ""
    output_schema: dict[str, Any] | None = None


def _info_options(info: FunctionInfo) -> dict[str, Any]:
    return dict(getattr(info, "options", None) or {})


def function_brief(info: FunctionInfo, options: dict[str, Any]) -> FunctionBrief:
    """The brief of ``info``: per-call ``options`` (description, system, prompt,
    output_schema) over the function's stored options, over what its source says (a
    generative function's spec, or another language's doc comment)."""
    stored = _info_options(info)
    spec = None
    if info.language == "generative":
        from ..languages.generative import parse_spec

        spec = parse_spec(info.source, info.name)

    def pick(key: str, from_spec: Any) -> Any:
        return options.get(key) or stored.get(key) or from_spec

    description = pick("description", spec.description if spec else None)
    if not description:
        description = extract_doc(info.source, info.name, info.language)
    return FunctionBrief(
        name=info.name, signature=spec.signature if spec else info.signature,
        description=description, system=pick("system", spec.system if spec else ""),
        template=pick("prompt", spec.prompt if spec else ""),
        output_schema=pick("output_schema", spec.output_schema if spec else None))


def arguments(signature: Signature, args: tuple) -> dict[str, Any]:
    """The arguments by parameter name."""
    signature.check_arity(args)
    return {p.name: a for p, a in zip(signature.params, args, strict=True)}


def fill(template: str, values: dict[str, Any], what: str) -> str:
    """Fill ``{placeholders}`` of a prompt template from the arguments."""
    from ..languages.generative import fill_template

    try:
        return fill_template(template, values)
    except KeyError as exc:
        raise BadArguments(f"{what} template has {{{exc.args[0]}}}, which is not a parameter "
                           f"(parameters: {', '.join(values) or 'none'})") from None


def fallback_context(failures: list[Attempt]) -> str:
    """What earlier tiers failed with, for the next tier's prompt."""
    lines = ["Earlier attempts to produce this output failed:"]
    for a in failures:
        line = f"- {a.tier} tier, attempt {a.attempt}: {a.status}"
        if a.error:
            line += f": {a.error_kind + ': ' if a.error_kind else ''}{a.error}"
        if a.partial is not None:
            line += f"; partial output: {dumps(a.partial, MAX_PROMPT_VALUE // 4)}"
        lines.append(line)
    return "\n".join(lines)


def build_prompt(brief: FunctionBrief, call: TierCall, task: str) -> str:
    """The user prompt: the filled template (if any), the function, its input, the
    fallback context (with ``call.fallback``) and the ``task``."""
    values = arguments(brief.signature, call.args)
    parts = []
    if brief.template:
        parts.append(fill(brief.template, values, "the prompt"))
    parts.append(f"Function: {brief.signature}")
    if brief.description:
        parts.append(f"Description: {brief.description}")
    parts.append(f"Input (JSON, by parameter name): {dumps(values, MAX_PROMPT_VALUE)}")
    if call.failures:
        parts.append(fallback_context(call.failures))
    parts.append(task)
    return "\n\n".join(parts)


def system_prompt(brief: FunctionBrief, call: TierCall, default: str) -> str:
    if brief.system:
        return fill(brief.system, arguments(brief.signature, call.args), "the system")
    return default.format(name=brief.name)


# -- reading a run's messages ---------------------------------------------------------

def last_output(messages: list[Any]) -> Any:
    """The last output the model gave (output-tool arguments or text), or None."""
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

    for message in reversed(messages):
        if not isinstance(message, ModelResponse):
            continue
        for part in message.parts:
            if isinstance(part, ToolCallPart) and part.tool_name.startswith("final_result"):
                try:
                    args = part.args_as_dict(raise_if_invalid=True)
                except (ValueError, AssertionError):
                    return part.args
                return args["response"] if set(args) == {"response"} else args
        text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
        if text:
            return text
    return None


def usage_line(messages: list[Any]) -> str:
    from pydantic_ai.messages import ModelResponse

    responses = [m for m in messages if isinstance(m, ModelResponse)]
    tokens_in = sum(r.usage.input_tokens or 0 for r in responses)
    tokens_out = sum(r.usage.output_tokens or 0 for r in responses)
    model = responses[-1].model_name if responses else "no response"
    return (f"usage: {len(responses)} model request{'s' * (len(responses) != 1)}, "
            f"{tokens_in} input tokens, {tokens_out} output tokens ({model})")


# -- the tiers' common part -----------------------------------------------------------

class LLMTier(Tier):
    """A tier that answers with one pydantic-ai agent run (see :meth:`run_agent`)."""

    #: Option keys naming the model, most specific first (then ``services`` defaults).
    model_options: tuple[str, ...] = ("model",)
    service_models: tuple[str, ...] = ("model",)
    #: Polling interval of ``call.cancel`` while a run is in flight (``cancel()`` is immediate).
    poll = 0.05

    def __init__(self, services: TierServices) -> None:
        self.services = services
        #: The runs in flight on the LLM loop, by execution id (their asyncio tasks).
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._lock = threading.Lock()

    def model_spec(self, options: dict[str, Any]) -> Any:
        for key in self.model_options:
            if options.get(key) is not None:
                return options[key]
        for key in self.service_models:
            if getattr(self.services, key, None) is not None:
                return getattr(self.services, key)
        return None

    def skip_reason(self, info: FunctionInfo, options: dict[str, Any]) -> str | None:
        if info.runtime == "onnx" and not options.get("llm_for_models"):
            return "a model: the LLM tiers are skipped (llm_for_models=True uses them)"
        if not pydantic_ai_available():
            return INSTALL_HINT.format(tier=self.name)
        if self.model_spec(options) is None:
            return NO_MODEL
        return None

    def cancel(self, call: TierCall) -> None:
        llm = _LLM_LOOP.peek()
        if llm is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed at exit: nothing runs
                llm.loop.call_soon_threadsafe(self._cancel_task, call.execution_id)

    def _cancel_task(self, execution_id: str) -> None:
        """On the LLM loop: cancel that run's task (``run_agent`` returns once it unwound)."""
        with self._lock:
            task = self._running.get(execution_id)
        if task is not None:
            task.cancel()

    def describe_limit(self, message: str, call: TierCall) -> str:
        """Text of a usage-limit failure (the agentic tier names its options)."""
        return message

    def _stopped(self, call: TierCall) -> FunctionsError:
        if time.monotonic() >= call.deadline:
            return FunctionTimeout(f"the {self.name} tier did not answer within {call.timeout:g} s")
        return Aborted(f"the {self.name} tier attempt was cancelled")

    def run_agent(self, call: TierCall, brief: FunctionBrief,
                  start: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run ``start(model)`` (an agent run) to its output within ``call.deadline``.

        The run is a task on the process's LLM loop while this thread waits; :meth:`cancel`
        (from any thread) cancels it, and so does ``call.cancel`` being set. Errors become
        FunctionTimeout / Aborted / InvocationError (with ``partial``: the model's last output
        when it did not validate); token usage goes to ``call.console``."""
        _require(self.name)
        spec = self.model_spec(call.options)
        if spec is None:
            raise InvocationError(NO_MODEL)
        if call.cancelled():
            raise self._stopped(call)
        model = resolve_model(spec)
        messages: list[Any] = []
        future = _LLM_LOOP().submit(self._guard(start, model, call, messages, owned=model is not spec))
        # The run stops itself at the deadline; the extra seconds only guard against a loop
        # that no longer turns.
        limit = None if call.deadline == float("inf") else max(call.remaining, 0.0) + 5.0
        try:
            result = future.result(limit)  # also after a cancel: the task has unwound by then
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            raise self._stopped(call) from None
        except Exception as exc:  # noqa: BLE001 - mapped onto the errors tree
            if not future.done():  # result() gave up waiting: the loop no longer turns
                future.cancel()
                raise FunctionTimeout(f"the {self.name} tier did not answer within "
                                      f"{call.timeout:g} s (its event loop is stuck)") from None
            raise self._error(exc, call, brief, messages) from exc
        finally:
            call.log("info", usage_line(messages))
        return coerce_output(brief.signature, result.output)

    async def _guard(self, start: Callable[[Any], Awaitable[Any]], model: Any, call: TierCall,
                     messages: list[Any], owned: bool) -> Any:
        """``start(model)`` within the remaining time, stopped when ``call.cancel`` is set (the
        run is created here, so a task cancelled before it starts leaves no coroutine behind
        that was never awaited). The run's messages land in ``messages``; a model this tier
        created is closed at the end."""
        from pydantic_ai import capture_run_messages

        with self._lock:
            self._running[call.execution_id] = asyncio.current_task()  # type: ignore[assignment]
        try:
            if call.cancel.is_set():
                raise asyncio.CancelledError
            with capture_run_messages() as captured:
                main = asyncio.ensure_future(asyncio.wait_for(start(model), max(call.remaining, 0.001)))

                async def watch() -> None:
                    while not call.cancel.is_set():
                        await asyncio.sleep(self.poll)

                watcher = asyncio.ensure_future(watch())
                try:
                    done, _ = await asyncio.wait({main, watcher}, return_when=asyncio.FIRST_COMPLETED)
                    if main not in done:
                        raise asyncio.CancelledError
                    return main.result()
                finally:
                    messages.extend(captured)
                    for t in (main, watcher):
                        t.cancel()
                    await asyncio.gather(main, watcher, return_exceptions=True)
        finally:
            with self._lock:
                self._running.pop(call.execution_id, None)
            if owned:
                await _close_model(model)

    def _error(self, exc: Exception, call: TierCall, brief: FunctionBrief,
               messages: list[Any]) -> FunctionsError:
        from pydantic_ai.exceptions import (
            ModelAPIError,
            UnexpectedModelBehavior,
            UsageLimitExceeded,
            UserError,
        )

        if isinstance(exc, FunctionsError):
            return exc
        if isinstance(exc, TimeoutError):
            return FunctionTimeout(f"the {self.name} tier did not answer within {call.timeout:g} s")
        if isinstance(exc, UsageLimitExceeded):
            message = str(exc).split(". Consider raising the limit")[0]
            return InvocationError(self.describe_limit(message, call))
        if isinstance(exc, UnexpectedModelBehavior):
            err = InvocationError(
                f"the model's output does not fit `{brief.signature}` (after {OUTPUT_RETRIES} repair "
                f"retry): {exc}")
            err.partial = last_output(messages)  # type: ignore[attr-defined]
            return err
        if isinstance(exc, ModelAPIError):
            return InvocationError(f"the model request failed: {type(exc).__name__}: {exc}")
        if isinstance(exc, UserError):
            return InvocationError(f"the {self.name} tier could not run: {exc}")
        return InvocationError(f"the {self.name} tier failed: {type(exc).__name__}: {exc}")


async def _close_model(model: Any) -> None:
    """Close the HTTP client of a model this tier created."""
    close = getattr(getattr(model, "client", None), "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            result = close()
            if asyncio.iscoroutine(result):
                await result


class _LLMLoop:
    """The process's event loop for LLM calls, run forever by one daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="functions-nb-llm",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future[Any]:
        with self._lock:
            if not self.thread.is_alive():  # a forked child: threads do not survive fork
                self._start()
            return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)


_LLM_LOOP: ProcessWide[_LLMLoop] = ProcessWide(_LLMLoop, on_exit="close")
