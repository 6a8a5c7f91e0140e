"""The cascade end to end through fx.invoke / fx.cascade with the real tiers: escalation over
HTTP through the OpenAI client, parallel mode cancelling losers, fallback context, a
prompt-only function, and escalation to a person answered from another process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from functions_nb import CascadeExhaustedError, Functions

from .conftest import SPIN_RS
from .openai_server import OpenAIServer

PARSE_RS = """/// The quantity in an order line, e.g. "12".
fn parse_qty(s: &str) -> Result<i64, String> {
    s.trim().parse::<i64>().map_err(|_| format!("not a number: {:?}", s))
}
"""


def answer_with(value, seen: list | None = None, delay: float = 0.0, marks: list | None = None):
    """A pydantic-ai FunctionModel answering ``value`` through the output tool."""

    async def respond(messages, info: AgentInfo) -> ModelResponse:
        if seen is not None:
            seen.append("\n".join(str(getattr(p, "content", "")) for m in messages
                                  for p in m.parts))
        if delay:
            await asyncio.sleep(delay)
            if marks is not None:
                marks.append("finished")  # never reached when the call is cancelled
        tool = info.output_tools[0]
        args = {"response": value} if "response" in json.dumps(tool.parameters_json_schema) \
            else value
        return ModelResponse(parts=[ToolCallPart(tool.name, args)])

    return FunctionModel(respond)


@pytest.fixture
def cfx(store):
    fx = Functions(store=store)
    yield fx
    fx.close()


def test_escalation_to_generative_through_the_openai_client(cfx, monkeypatch):
    """Code fails on odd input; the generative tier answers through the real openai client,
    over HTTP, from an OpenAI-compatible server on 127.0.0.1."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cfx.deploy("rust", PARSE_RS, name="parse_qty")
    with OpenAIServer(answer=12) as server:
        cfx.model = f"openai-compatible:qty-model@{server.url}"
        result = cfx.cascade("parse_qty", "a dozen")
    assert (result.value, result.tier) == (12, "generative")
    assert [(a.tier, a.status) for a in result.attempts] == [("code", "failed"),
                                                            ("generative", "completed")]
    body = server.requests[0]["body"]
    text = json.dumps(body["messages"])
    assert server.requests[0]["path"] == "/v1/chat/completions" and body["model"] == "qty-model"
    assert "a dozen" in text and "parse_qty" in text and "not a number" in text  # fallback
    df = cfx.sql("SELECT tier, status FROM executions WHERE cascade_id = "
                 "(SELECT cascade_id FROM executions WHERE tier = 'generative')")
    assert sorted(zip(df.tier, df.status, strict=True)) == [("code", "error"), ("generative", "ok")]


def test_fallback_context_reaches_the_next_tier_only_with_fallback(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse_qty")
    seen: list[str] = []
    cfx.model = answer_with(7, seen)
    assert cfx.invoke("parse_qty", "seven", skip_tiers=["agentic", "human"]) == 7
    assert "not a number" in seen[-1]
    assert cfx.invoke("parse_qty", "seven", fallback=False, skip_tiers=["agentic", "human"]) == 7
    assert "not a number" not in seen[-1] and "seven" in seen[-1]


def test_parallel_first_success_wins_and_the_slow_code_is_aborted(cfx):
    cfx.deploy("rust", SPIN_RS, name="spin", timeout=30)
    cfx.model = answer_with(99, delay=0.5)  # the code tier is spinning when the model answers
    started = time.monotonic()
    result = cfx.cascade("spin", 1, parallel=True, skip_tiers=["agentic", "human"])
    assert (result.value, result.tier) == (99, "generative")
    assert time.monotonic() - started < 5  # not the code tier's 30 s
    code = next(a for a in result.attempts if a.tier == "code")
    assert code.status == "cancelled" and code.duration_ms < 5000, code
    cfx.flush()
    df = cfx.sql(f"SELECT status, duration_ms FROM executions WHERE id = '{code.execution_id}'")
    assert df.status.tolist() == ["aborted"]  # the executor really stopped the WASM loop


def test_parallel_cancels_a_slow_model_call(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse_qty")
    marks: list[str] = []
    cfx.model = answer_with(5, delay=10, marks=marks)
    started = time.monotonic()
    result = cfx.cascade("parse_qty", "5", parallel=True, skip_tiers=["agentic", "human"])
    assert (result.value, result.tier) == (5, "code")
    gen = next(a for a in result.attempts if a.tier == "generative")
    assert gen.status == "cancelled"
    time.sleep(0.3)
    assert marks == []  # the model call was cancelled, it never finished its 10 s
    assert time.monotonic() - started < 5


def test_prompt_only_function_runs_from_the_generative_tier(cfx):
    cell = ("summary(text: str, words: int) -> str\n"
            "prompt:\n    Summarise in {words} words: {text}\n")
    info = cfx.deploy("generative", cell, name="summary")
    assert info.runtime == "prompt"
    seen: list[str] = []
    cfx.model = answer_with("short text", seen)
    assert cfx.invoke("summary", "a long text about cascades", 2) == "short text"
    assert "Summarise in 2 words: a long text about cascades" in seen[-1]
    result = cfx.cascade("summary", "x", 1)
    assert [(a.tier, a.status) for a in result.attempts] == [("code", "skipped"),
                                                            ("generative", "completed")]
    assert "prompt-only" in result.attempts[0].reason


def test_escalation_to_a_person_answered_from_another_process(cfx, store):
    """code fails, the model's answers do not validate, the agent is skipped, a person answers
    with the CLI in another process while this kernel keeps working."""
    cfx.deploy("rust", PARSE_RS, name="parse_qty")
    cfx.model = answer_with("not an int")
    pending = cfx.invoke("parse_qty", "one and a half dozen", skip_tiers=["agentic"],
                         question="How many items is that?")
    assert not pending.done()
    assert [(a.tier, a.status) for a in pending.attempts] == [
        ("code", "failed"), ("generative", "failed"), ("agentic", "skipped"), ("human", "pending")]
    task = cfx.human.ls()[0]
    assert task["question"].startswith("How many items")
    answer = subprocess.run(
        [sys.executable, "-m", "functions_nb.cli", "--store", store, "human", "answer",
         task["task_id"], "--value", "18", "--who", "maria", "--why", "1.5 dozen"],
        capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert cfx.invoke("parse_qty", "3") == 3  # the kernel was never blocked
    assert pending.wait(timeout=10) == 18
    deadline = time.monotonic() + 60  # the resolution record is written by the waiter
    while True:
        cfx.flush()
        df = cfx.sql("SELECT tier, status FROM executions WHERE tier = 'human' ORDER BY started_at")
        if df.status.tolist()[-1:] == ["ok"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert df.status.tolist()[-1] == "ok"
    with pytest.raises(CascadeExhaustedError):
        cfx.invoke("parse_qty", "?", skip_tiers=["agentic", "human"])


def test_escalation_to_the_agent_which_calls_another_function(cfx):
    from pydantic_ai.messages import ToolReturnPart

    from .conftest import ADD_RS

    cfx.deploy("rust", ADD_RS, name="add")
    cfx.deploy("rust", PARSE_RS, name="parse_qty")

    def agent(messages, info: AgentInfo) -> ModelResponse:
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("add", {"a": 3, "b": 4})])
        tool = info.output_tools[0]
        return ModelResponse(parts=[ToolCallPart(tool.name, {"response": returns[0].content})])

    cfx.agent_model = FunctionModel(agent)
    result = cfx.cascade("parse_qty", "3 plus 4", skip_tiers=["generative", "human"])
    assert (result.value, result.tier) == (7, "agentic")
    agentic = result.attempts[-1]
    cfx.flush()
    df = cfx.sql(f"SELECT console FROM executions WHERE id = '{agentic.execution_id}'")
    messages = [line["message"] for line in df.console.iloc[0]]
    assert "tool add(3, 4) -> 7" in messages  # the agent's tool call is recorded
