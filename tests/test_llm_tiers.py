"""The LLM tiers (generative, agentic) and prompt-only functions, driven by pydantic-ai's own
test models, plus one run through the real OpenAI client over HTTP to a local server."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai.messages import (  # noqa: E402
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402
from pydantic_ai.models.test import TestModel  # noqa: E402

from functions_nb import (
    history_sql,  # noqa: E402
    languages,  # noqa: E402
)
from functions_nb.cascade import Attempt, TierCall, TierServices  # noqa: E402
from functions_nb.cascade.agentic import AgenticTier  # noqa: E402
from functions_nb.cascade.generative import GenerativeTier  # noqa: E402
from functions_nb.cascade.llm import NO_MODEL, output_type, resolve_model  # noqa: E402
from functions_nb.errors import (  # noqa: E402
    Aborted,
    BadArguments,
    CompileError,
    FunctionTimeout,
    InvocationError,
)
from functions_nb.languages.generative import parse_spec  # noqa: E402
from functions_nb.models import Param, Signature  # noqa: E402

from .conftest import ADD_RS, BOOM_RS, SPIN_RS, STOP_MARGIN_S  # noqa: E402
from .openai_server import OpenAIServer  # noqa: E402

PARSE_RS = """/// Reads a decimal number from text, e.g. "42".
#[allow(dead_code)]
fn parse_num(s: &str) -> i32 {
    s.trim().parse().unwrap()
}
"""

CLASSIFY = """# sentiment, as a prompt only
classify(text: str, labels: list) -> str
description: Sentiment of a product review.
system:
    You label reviews for {labels}.
prompt:
    Review: {text}
    Pick one of {labels}; braces {{like this}} stay.
output:
    {"type": "string", "enum": ["positive", "negative"]}
"""


# -- helpers ------------------------------------------------------------------------------

def services(fx, **kw) -> TierServices:
    return TierServices(invoke=fx.invoke, list_functions=fx.list,
                        sql=history_sql.reader(fx.history), **kw)


def make_call(info, *args, timeout=10.0, options=None, previous=None, fallback=True,
              tier="generative") -> TierCall:
    return TierCall(info=info, args=args, tier=tier, attempt=1, timeout=timeout,
                    deadline=time.monotonic() + timeout, cancel=threading.Event(),
                    execution_id=uuid.uuid4().hex, previous=list(previous or []),
                    fallback=fallback, options=dict(options or {}))


def answer(info: AgentInfo, value) -> ModelResponse:
    """A call of the output tool with ``value``."""
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"response": value})])


def user_text(messages) -> str:
    return "\n".join(p.content for m in messages if isinstance(m, ModelRequest)
                     for p in m.parts if isinstance(p, UserPromptPart))


def system_text(messages) -> str:
    return "\n".join(p.content for m in messages if isinstance(m, ModelRequest)
                     for p in m.parts if isinstance(p, SystemPromptPart))


class Recorder:
    """A FunctionModel body that answers with ``values`` in turn and keeps what it saw."""

    def __init__(self, *values):
        self.values = list(values)
        self.seen: list[list] = []

    def __call__(self, messages, info: AgentInfo) -> ModelResponse:
        self.seen.append(list(messages))
        return answer(info, self.values[min(len(self.seen), len(self.values)) - 1])


@pytest.fixture
def parse_info(fx):
    return fx.deploy("rust", PARSE_RS, name="parse_num")


@pytest.fixture
def generative_lang(monkeypatch):
    """Until the registry lists it, register the generative language for this test."""
    if "generative" not in languages.names():
        monkeypatch.setitem(languages._REGISTRY, "generative",
                            "functions_nb.languages.generative:Generative")


# -- models and types ---------------------------------------------------------------------

def test_resolve_model_specs(monkeypatch):
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel

    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    m = resolve_model("openai:gpt-4o-mini")
    assert isinstance(m, OpenAIChatModel) and m.model_name == "gpt-4o-mini"
    assert m.base_url.rstrip("/") == "http://127.0.0.1:9/v1"

    monkeypatch.delenv("OLLAMA_BASE_URL", raising=False)
    m = resolve_model("ollama:llama3.2")
    assert m.model_name == "llama3.2" and m.base_url.rstrip("/") == "http://127.0.0.1:11434/v1"
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:8/v1")
    assert resolve_model("ollama:llama3.2").base_url.rstrip("/") == "http://127.0.0.1:8/v1"

    m = resolve_model("openai-compatible:my-model@http://127.0.0.1:7/v1")
    assert m.model_name == "my-model" and m.base_url.rstrip("/") == "http://127.0.0.1:7/v1"

    monkeypatch.setenv("ANTHROPIC_API_KEY", "dummy")
    m = resolve_model("anthropic:claude-sonnet-4-5")
    assert isinstance(m, AnthropicModel) and m.model_name == "claude-sonnet-4-5"

    model = TestModel()
    assert resolve_model(model) is model
    with pytest.raises(BadArguments, match="provider:model"):
        resolve_model("gpt-4o")
    with pytest.raises(BadArguments, match="unknown provider 'nope'"):
        resolve_model("nope:x")
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(InvocationError, match="OPENAI_API_KEY"):
        resolve_model("openai:gpt-4o-mini")


def test_output_types_follow_the_signature():
    from pydantic import TypeAdapter, ValidationError

    def sig(result, *params):
        return Signature("f", tuple(params), result, result)

    u8 = TypeAdapter(output_type(sig("u32")))
    assert u8.validate_python(7) == 7
    with pytest.raises(ValidationError):
        u8.validate_python(-1)
    assert TypeAdapter(output_type(sig("f64[]"))).validate_python([1, 2.5]) == [1.0, 2.5]
    assert TypeAdapter(output_type(sig("json"))).validate_python({"a": [1]}) == {"a": [1]}
    assert TypeAdapter(output_type(sig("bool"))).json_schema() == {"type": "boolean"}
    enum = TypeAdapter(output_type(sig("str"), {"type": "string", "enum": ["a", "b"]}))
    assert enum.json_schema()["enum"] == ["a", "b"]
    with pytest.raises(ValidationError, match="is not one of"):
        enum.validate_python("c")

    from functions_nb.cascade.llm import params_adapter

    schema = params_adapter(sig("unit", Param("n", "u32", "u8", (0, 255)), Param("x", "f64", "f64"))).json_schema()
    assert schema["properties"]["n"] == {"maximum": 255, "minimum": 0, "title": "N", "type": "integer"}
    assert schema["required"] == ["n", "x"]


# -- generative tier ----------------------------------------------------------------------

def test_generative_answers_with_the_models_value(fx, parse_info):
    model = Recorder(42)
    tier = GenerativeTier(services(fx, model=FunctionModel(model)))
    call = make_call(parse_info, "forty-two")
    assert tier.skip_reason(parse_info, call.options) is None
    assert tier.run(call) == 42
    prompt = user_text(model.seen[0])
    assert "parse_num(s: &str) -> i32" in prompt
    assert 'Reads a decimal number from text, e.g. "42".' in prompt  # the Rust doc comment
    assert '{"s": "forty-two"}' in prompt
    assert "parse_num" in system_text(model.seen[0])
    assert any(text.startswith("usage: 1 model request,") for _, text, _ in call.console)


def test_generative_repairs_a_bad_output_once(fx, parse_info):
    model = Recorder("not a number", 7)
    tier = GenerativeTier(services(fx, model=FunctionModel(model)))
    assert tier.run(make_call(parse_info, "7")) == 7
    assert len(model.seen) == 2
    retry = [p for p in model.seen[1][-1].parts if isinstance(p, (RetryPromptPart, ToolReturnPart))]
    assert "expected an integer (i32)" in str(retry[0].content)  # the values table's words


def test_generative_fails_after_two_bad_outputs_with_partial(fx, parse_info):
    model = Recorder("nope", 2**40)
    tier = GenerativeTier(services(fx, model=FunctionModel(model)))
    with pytest.raises(InvocationError, match=r"does not fit `parse_num\(s: &str\) -> i32`") as err:
        tier.run(make_call(parse_info, "x"))
    assert len(model.seen) == 2
    assert err.value.partial == 2**40


def test_generative_prompt_carries_the_fallback_context(fx, parse_info):
    failed = Attempt("code", 1, "failed", error="panicked at 'invalid digit found in string'",
                     error_kind="runtime_error", partial=None)
    for fallback, expected in ((True, True), (False, False)):
        model = Recorder(5)
        tier = GenerativeTier(services(fx, model=FunctionModel(model)))
        assert tier.run(make_call(parse_info, "five", previous=[failed], fallback=fallback)) == 5
        prompt = user_text(model.seen[0])
        assert ("code tier, attempt 1: failed: runtime_error: panicked at 'invalid digit found in "
                "string'" in prompt) is expected
        assert ("Earlier attempts" in prompt) is expected


def test_generative_prompt_template_and_system_options(fx, parse_info):
    model = Recorder(3)
    tier = GenerativeTier(services(fx))
    options = {"model": FunctionModel(model), "prompt": "Count the words in: {s} ({{s}} is literal)",
               "system": "You count words of {s}.", "description": "word counter"}
    assert tier.run(make_call(parse_info, "a b c", options=options)) == 3
    prompt = user_text(model.seen[0])
    assert prompt.startswith("Count the words in: a b c ({s} is literal)")
    assert "Description: word counter" in prompt
    assert system_text(model.seen[0]) == "You count words of a b c."
    with pytest.raises(BadArguments, match=r"\{text\}, which is not a parameter"):
        tier.run(make_call(parse_info, "a", options={**options, "prompt": "{text}"}))


def test_llm_tiers_skip_without_a_model(fx, parse_info):
    for tier in (GenerativeTier(services(fx)), AgenticTier(services(fx))):
        assert tier.skip_reason(parse_info, {}) == NO_MODEL
        assert tier.skip_reason(parse_info, {"model": "test"}) is None
    assert AgenticTier(services(fx, agent_model="test")).skip_reason(parse_info, {}) is None
    assert GenerativeTier(services(fx, agent_model="test")).skip_reason(parse_info, {}) == NO_MODEL
    with pytest.raises(InvocationError, match="no model configured"):
        GenerativeTier(services(fx)).run(make_call(parse_info, "1"))


def _slow_model(marks: dict[str, threading.Event]) -> FunctionModel:
    async def slow(messages, info: AgentInfo) -> ModelResponse:
        marks["started"].set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            marks["cancelled"].set()
            raise
        marks["end"].set()
        return answer(info, 1)

    return FunctionModel(slow)


def test_generative_times_out_at_the_deadline(fx, parse_info):
    marks = {k: threading.Event() for k in ("started", "cancelled", "end")}
    tier = GenerativeTier(services(fx, model=_slow_model(marks)))
    call = make_call(parse_info, "1", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(FunctionTimeout, match="did not answer within 1 s"):
        tier.run(call)
    assert time.monotonic() - started < 1.0 + STOP_MARGIN_S
    assert marks["cancelled"].is_set() and not marks["end"].is_set()


def test_generative_cancel_from_another_thread_stops_the_model_call(fx, parse_info):
    marks = {k: threading.Event() for k in ("started", "cancelled", "end")}
    tier = GenerativeTier(services(fx, model=_slow_model(marks)))
    call = make_call(parse_info, "1", timeout=30)
    stopped_at = []

    def engine_cancels():
        assert marks["started"].wait(10)
        stopped_at.append(time.monotonic())
        call.cancel.set()
        tier.cancel(call)

    threading.Thread(target=engine_cancels, daemon=True).start()
    with pytest.raises(Aborted, match="cancelled"):
        tier.run(call)
    assert time.monotonic() - stopped_at[0] < STOP_MARGIN_S
    assert marks["cancelled"].is_set() and not marks["end"].is_set()
    assert tier._running == {}


# -- agentic tier -------------------------------------------------------------------------

def test_agentic_calls_another_function_as_a_tool(fx):
    fx.deploy("rust", ADD_RS, name="add")
    boom = fx.deploy("rust", BOOM_RS, name="boom")
    seen: list[AgentInfo] = []

    def agent(messages, info: AgentInfo) -> ModelResponse:
        seen.append(info)
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("add", {"a": 2, "b": 3})])
        return answer(info, returns[0].content * 10)

    tier = AgenticTier(services(fx, agent_model=FunctionModel(agent)))
    call = make_call(boom, 4, tier="agentic")
    assert tier.run(call) == 50
    tools = {t.name: t for t in seen[0].function_tools}
    assert set(tools) == {"add", "query_history"}  # not the function being invoked
    assert tools["add"].description.startswith("add(a: i32, b: i32) -> i32")
    assert tools["add"].parameters_json_schema["required"] == ["a", "b"]
    lines = [text for _, text, _ in call.console]
    assert "tool add(2, 3) -> 5" in lines
    assert any(text.startswith("usage: 2 model requests") for text in lines)


def test_agentic_history_tool_is_read_only(fx):
    boom = fx.deploy("rust", BOOM_RS, name="boom")
    fx.invoke("boom", 0)
    fx.flush()
    results: list[str] = []

    def agent(messages, info: AgentInfo) -> ModelResponse:
        for part in messages[-1].parts:
            if isinstance(part, (ToolReturnPart, RetryPromptPart)):
                results.append(str(part.content))
        if len(results) == 0:
            return ModelResponse(parts=[ToolCallPart("query_history", {"sql": "DELETE FROM executions"})])
        if len(results) == 1:
            return ModelResponse(parts=[ToolCallPart("query_history", {
                "sql": "SELECT function, status FROM executions WHERE function = 'boom';"})])
        return answer(info, 0)

    call = make_call(boom, 1, tier="agentic", options={"model": FunctionModel(agent)})
    assert AgenticTier(services(fx)).run(call) == 0
    assert "refused" in results[0] and '"rows": 1' in results[1] and '"status": "ok"' in results[1]
    lines = [text for _, text, _ in call.console]
    assert 'tool query_history("DELETE FROM executions") -> error: refused: history queries run ' \
           "exactly one SELECT statement (this text has: DELETE)" in lines
    assert any(t.startswith("tool query_history(\"SELECT") and t.endswith("-> 1 rows") for t in lines)
    assert len(fx.sql("SELECT * FROM executions WHERE function = 'boom'")) == 1


def test_agentic_step_limit_is_a_clear_error(fx):
    fx.deploy("rust", ADD_RS, name="add")
    boom = fx.deploy("rust", BOOM_RS, name="boom")
    calls = []

    def looping(messages, info: AgentInfo) -> ModelResponse:
        calls.append(1)
        return ModelResponse(parts=[ToolCallPart("add", {"a": len(calls), "b": 1})])

    call = make_call(boom, 1, tier="agentic", options={"model": FunctionModel(looping), "max_steps": 3})
    with pytest.raises(InvocationError, match=r"step limit of 3 model requests \(option max_steps\)"):
        AgenticTier(services(fx)).run(call)
    assert len(calls) == 3
    assert sum(text.startswith("tool add(") for _, text, _ in call.console) == 3


def test_agentic_deadline_does_not_wait_for_a_running_tool(fx):
    fx.deploy("rust", SPIN_RS, name="spin", timeout=0.5 + STOP_MARGIN_S + 5)
    boom = fx.deploy("rust", BOOM_RS, name="boom")

    def agent(messages, info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("spin", {"n": 3})])

    call = make_call(boom, 1, tier="agentic", timeout=0.5, options={"model": FunctionModel(agent)})
    started = time.monotonic()
    with pytest.raises(FunctionTimeout, match="agentic tier did not answer within 0.5 s"):
        AgenticTier(services(fx)).run(call)
    assert time.monotonic() - started < 0.5 + STOP_MARGIN_S  # not the spinning tool's own limit


def test_agentic_tool_errors_reach_the_model(fx):
    fx.deploy("rust", BOOM_RS, name="boom")
    add = fx.deploy("rust", ADD_RS, name="add")
    told = []

    def agent(messages, info: AgentInfo) -> ModelResponse:
        parts = [p for p in messages[-1].parts if isinstance(p, (ToolReturnPart, RetryPromptPart))]
        if not parts:
            return ModelResponse(parts=[ToolCallPart("boom", {"x": 9})])
        told.append(str(parts[0].content))
        return answer(info, -1)

    call = make_call(add, 1, 2, tier="agentic", options={"model": FunctionModel(agent)})
    assert AgenticTier(services(fx)).run(call) == -1
    assert "bad input 9" in told[0]
    assert any(t.startswith("tool boom(9) -> error: ") and "bad input 9" in t for _, t, _ in call.console)


# -- prompt-only functions ------------------------------------------------------------------

def test_generative_cell_parses_into_a_signature():
    spec = parse_spec(CLASSIFY, "classify")
    assert str(spec.signature) == "classify(text: str, labels: list) -> str"
    assert [p.kind for p in spec.signature.params] == ["str", "json"]
    assert spec.signature.result == "str"
    assert spec.system == "You label reviews for {labels}."
    assert spec.prompt == "Review: {text}\nPick one of {labels}; braces {{like this}} stay."
    assert spec.output_schema == {"type": "string", "enum": ["positive", "negative"]}
    assert spec.description == "Sentiment of a product review."
    assert parse_spec("f(x: int, y: float, b: bool, raw: bytes, d: dict[str, int])", "f").signature.result == "str"
    assert parse_spec("f(x)\noutput: {\"type\": \"object\"}", "f").signature.result == "json"


@pytest.mark.parametrize(("cell", "line", "text"), [
    ("classify(text: str) -> Foo", 1, "unknown type `Foo`"),
    ("# c\nclassify(text: str)\nprompt:\n    Tell me about {txt}\n", 4, "`{txt}` in prompt: is not a parameter"),
    ("classify(text: str)\noutput:\n  {\"type\": \"string\",\n   oops}", 4, "output: is not JSON"),
    ("classify(text: str)\nsome words", 2, "expected a section header"),
    ("label(text: str)", 1, "the signature names `label`"),
])
def test_bad_generative_cell_names_its_line(cell, line, text):
    with pytest.raises(CompileError, match=text) as err:
        parse_spec(cell, "classify")
    assert err.value.line == line
    assert str(err.value).startswith(f"cell line {line}: ")


def test_deployed_prompt_function_runs_in_the_generative_tier(fx, generative_lang):
    with pytest.raises(CompileError) as err:  # the magic's line offset: cell lines
        fx.deploy("generative", "classify(text: str)\nprompt: {nope}", name="classify", line_offset=1)
    assert err.value.line == 3
    info = fx.deploy("generative", CLASSIFY, name="classify")
    assert info.runtime == "prompt" and info.language == "generative"
    assert str(info.signature) == "classify(text: str, labels: list) -> str"

    model = Recorder("meh", "positive")  # the first answer is not in the output schema's enum
    tier = GenerativeTier(services(fx, model=FunctionModel(model)))
    assert tier.run(make_call(info, "Great kettle", ["positive", "negative"])) == "positive"
    assert len(model.seen) == 2
    assert system_text(model.seen[0]) == 'You label reviews for ["positive", "negative"].'
    prompt = user_text(model.seen[0])
    assert prompt.startswith('Review: Great kettle\nPick one of ["positive", "negative"]; braces '
                             "{like this} stay.")
    assert "Description: Sentiment of a product review." in prompt

    # TestModel fills the output tool from its JSON schema: the enum's first value
    assert GenerativeTier(services(fx, model=TestModel())).run(make_call(info, "ok", [])) == "positive"


def test_prompt_function_through_fx_invoke(fx, generative_lang):
    fx.deploy("generative", "shout(text: str) -> str\nprompt: Shout {text}", name="shout")
    model = Recorder("HI!")
    assert fx.invoke("shout", "hi", model=FunctionModel(model)) == "HI!"
    assert user_text(model.seen[0]).startswith("Shout hi")
    fx.flush()
    rows = fx.sql("SELECT tier, status FROM executions WHERE function = 'shout' AND tier = 'generative'")
    assert rows.to_dict(orient="records") == [{"tier": "generative", "status": "ok"}]


# -- through the real OpenAI client over HTTP ----------------------------------------------

def test_generative_through_the_openai_client_over_http(fx, parse_info, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-dummy")
    with OpenAIServer(answer=1234) as server:
        tier = GenerativeTier(services(fx, model=f"openai-compatible:canned-model@{server.url}"))
        call = make_call(parse_info, "twelve hundred thirty-four")
        assert tier.run(call) == 1234
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test-dummy"
    body = request["body"]
    assert body["model"] == "canned-model"
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    assert "parse_num(s: &str) -> i32" in text and "twelve hundred thirty-four" in text
    assert any(t["function"]["name"].startswith("final_result") for t in body["tools"])
    assert any("usage: 1 model request, 42 input tokens, 7 output tokens (canned-model)" in t
               for _, t, _ in call.console)


def test_a_model_instance_is_reused_across_calls_on_one_loop(fx, parse_info):
    """A user's model instance keeps its pooled HTTP connections on the one LLM loop: three
    calls, every one through the real OpenAI client, and no socket or transport left behind."""
    import gc
    import warnings

    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with OpenAIServer(answer=1234) as server:
            model = OpenAIChatModel("canned-model",
                                    provider=OpenAIProvider(base_url=server.url, api_key="sk-test"))
            tier = GenerativeTier(services(fx, model=model))
            assert [tier.run(make_call(parse_info, "twelve")) for _ in range(3)] == [1234] * 3
        gc.collect()
    assert len(server.requests) == 3
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], \
        [str(w.message) for w in caught]


def _call_in_child(tier, info, queue):
    try:
        queue.put(tier.run(make_call(info, "seven")))
    except BaseException as exc:
        queue.put(repr(exc))


def test_llm_tier_runs_in_a_forked_child(fx, parse_info):
    """The LLM loop's thread does not survive fork: a forked child starts its own."""
    import multiprocessing

    def answer(messages, info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"response": 7})])

    tier = GenerativeTier(services(fx, model=FunctionModel(answer)))
    assert tier.run(make_call(parse_info, "seven")) == 7  # the parent's loop is running
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_call_in_child, args=(tier, parse_info, queue))
    child.start()
    try:
        assert queue.get(timeout=60) == 7
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


def test_text_answer_fails_validation_with_partial(fx, parse_info):
    def chatty(messages, info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("I think it is about twelve")])

    tier = GenerativeTier(services(fx, model=FunctionModel(chatty)))
    with pytest.raises(InvocationError) as err:
        tier.run(make_call(parse_info, "12"))
    assert err.value.partial == "I think it is about twelve"
