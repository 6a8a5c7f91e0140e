"""The cascade engine with the code tier: options, retries, timeouts, skipped tiers, records.
(LLM tiers: test_llm_tiers.py and test_cascade_tiers.py; human: test_human.py.)"""

from __future__ import annotations

import time

import pytest

from functions_nb import BadArguments, CascadeExhaustedError, Functions

from .conftest import SPIN_RS, STOP_MARGIN_S

FLAKY_RS = """static mut CALLS: u32 = 0;

fn flaky(x: i64) -> Result<i64, String> {
    unsafe {
        CALLS += 1;
        let calls = CALLS;  // a copy: edition 2024 refuses references to a static mut
        if calls <= 2 {
            return Err(format!("transient failure {}", calls));
        }
    }
    Ok(x * 2)
}
"""

PARSE_RS = """fn parse(s: &str) -> Result<i64, String> {
    s.trim().parse::<i64>().map_err(|e| format!("cannot parse {:?}: {}", s, e))
}
"""


@pytest.fixture
def cfx(store):
    fx = Functions(store=store)
    yield fx
    fx.close()


def test_plain_invoke_is_not_a_cascade(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse")
    assert cfx.invoke("parse", "41") == 41
    with pytest.raises(Exception, match="cannot parse") as err:
        cfx.invoke("parse", "x")
    assert not isinstance(err.value, CascadeExhaustedError)


def test_code_tier_success_carries_tier_and_attempts(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse")
    result = cfx.cascade("parse", "12")
    assert result.value == 12 and result.tier == "code"
    assert [(a.tier, a.attempt, a.status) for a in result.attempts] == [("code", 1, "completed")]


def test_retries_are_counted_with_backoff(cfx):
    cfx.deploy("rust", FLAKY_RS, name="flaky")
    started = time.monotonic()
    result = cfx.cascade("flaky", 5, tier_retries={"code": 3}, backoff=0.05,
                         skip_tiers=["generative", "agentic", "human"])
    assert result.value == 10
    statuses = [(a.tier, a.attempt, a.status) for a in result.attempts if a.status != "skipped"]
    assert statuses == [("code", 1, "failed"), ("code", 2, "failed"), ("code", 3, "completed")]
    assert result.attempts[0].error == "flaky failed: transient failure 1"
    assert time.monotonic() - started >= 0.05 + 0.1  # backoff 0.05 then 0.1


def test_every_tier_failing_raises_exhausted_with_complete_history(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse")
    with pytest.raises(CascadeExhaustedError) as err:
        cfx.invoke("parse", "nope", tier_retries={"code": 1}, backoff=0.01,
                   skip_tiers=["human"])
    attempts = err.value.attempts
    got = [(a.tier, a.attempt, a.status) for a in attempts]
    assert got == [("code", 1, "failed"), ("code", 2, "failed"), ("generative", 0, "skipped"),
                   ("agentic", 0, "skipped"), ("human", 0, "skipped")]
    assert all("cannot parse" in a.error for a in attempts[:2])
    assert "no model configured" in attempts[2].reason
    assert attempts[4].reason == "skipped by the skip_tiers option"
    assert "code#1: failed" in str(err.value) and "generative#0: skipped" in str(err.value)


def test_caller_errors_are_raised_at_once(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse")
    with pytest.raises(BadArguments, match="parse"):
        cfx.invoke("parse", 1, 2, tier_retries={"code": 3})
    with pytest.raises(BadArguments, match="expects &str"):
        cfx.invoke("parse", 1, tier_retries={"code": 3})
    with pytest.raises(BadArguments, match="unknown tier 'kode'"):
        cfx.invoke("parse", "1", skip_tiers=["kode"])
    with pytest.raises(BadArguments, match="start_tier"):
        cfx.invoke("parse", "1", start_tier="magic")


def test_tier_timeout_and_total_timeout_are_enforced(cfx):
    cfx.deploy("rust", SPIN_RS, name="spin", timeout=30)
    started = time.monotonic()
    with pytest.raises(CascadeExhaustedError) as err:
        cfx.invoke("spin", 1, tier_timeouts={"code": 0.2}, tier_retries={"code": 1},
                   backoff=0.01, skip_tiers=["human"])
    assert [a.status for a in err.value.attempts[:2]] == ["timeout", "timeout"]
    assert time.monotonic() - started < 0.4 + STOP_MARGIN_S
    # the total timeout cuts the attempt short although the code tier may take 30 s
    started = time.monotonic()
    with pytest.raises(CascadeExhaustedError, match="total timeout ran out") as err:
        cfx.invoke("spin", 1, total_timeout=0.3, tier_retries={"code": 5}, skip_tiers=["human"])
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 0.3 + STOP_MARGIN_S
    assert err.value.attempts[0].status == "timeout"
    assert len([a for a in err.value.attempts if a.tier == "code"]) == 1


def test_start_tier_and_deploy_time_defaults(cfx):
    cfx.deploy("rust", FLAKY_RS, name="flaky",
               options={"cascade": {"tier_retries": {"code": 2}, "backoff": 0.01,
                                    "skip_tiers": ["human"]}})
    assert cfx.invoke("flaky", 4) == 8  # the defaults make a plain invoke a cascade
    cfx.deploy("rust", PARSE_RS, name="parse")
    with pytest.raises(CascadeExhaustedError) as err:
        cfx.invoke("parse", "1", start_tier="generative", skip_tiers=["human"])
    assert [a.tier for a in err.value.attempts] == ["generative", "agentic", "human"]


def test_every_attempt_is_an_execution_record(cfx):
    cfx.deploy("rust", PARSE_RS, name="parse")
    with pytest.raises(CascadeExhaustedError) as err:
        cfx.invoke("parse", "x", tier_retries={"code": 1}, backoff=0.01, skip_tiers=["human"])
    df = cfx.sql("SELECT cascade_id, tier, attempt, status, error_message FROM executions "
                 "ORDER BY started_at, attempt")
    assert df.cascade_id.nunique() == 1 and df.cascade_id.iloc[0]
    rows = list(zip(df.tier, df.attempt, df.status, strict=True))
    assert rows[:2] == [("code", 1, "error"), ("code", 2, "error")]
    assert set(rows[2:]) == {("generative", 0, "skipped"), ("agentic", 0, "skipped"),
                             ("human", 0, "skipped")}
    assert len(err.value.attempts) == len(df)


def test_invoke_magic_cascade_flags(store, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from functions_nb.magics import FunctionsMagics

    shell = InteractiveShell.instance()
    fx = Functions(store=store)
    shell.register_magics(FunctionsMagics(shell, fx))
    fx.deploy("rust", FLAKY_RS, name="flaky")
    r = shell.run_cell("%invoke --cascade --retries code=3 --skip-tiers generative,agentic,human "
                       "flaky 21")
    assert r.success and r.result == 42, r.error_in_exec
    out = capsys.readouterr().out
    assert "code#1 failed" in out and "code#3 completed" in out
    assert "answered by the code tier" in out
    r = shell.run_cell("%invoke --retries code=x flaky 1")
    assert not r.success and "--retries: cannot read 'code=x'" in str(r.error_in_exec)
    fx.close()
