"""Circuit breaker: seed defaults, state machine, and integration with invocations."""

from __future__ import annotations

import time

import pytest

from functions_nb import BadArguments, CircuitOpen, InvocationError
from functions_nb.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from functions_nb.config import BreakerConfig

from .conftest import BOOM_RS


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_seed_defaults():
    cfg = BreakerConfig()
    assert (cfg.failure_threshold, cfg.reset_timeout, cfg.half_open_max_calls,
            cfg.success_threshold) == (5, 30.0, 1, 2)


def test_state_machine():
    clock = Clock()
    b = CircuitBreaker("f@1", clock=clock)
    for _ in range(4):
        b.before_call()
        b.on_failure()
    assert b.state == CLOSED
    b.on_success()  # a success resets the count of consecutive failures
    for _ in range(5):
        b.before_call()
        b.on_failure()
    assert b.state == OPEN
    with pytest.raises(CircuitOpen) as err:
        b.before_call()
    assert err.value.retry_after == pytest.approx(30.0)
    clock.now = 29.9
    with pytest.raises(CircuitOpen):
        b.before_call()
    clock.now = 30.0
    b.before_call()  # the probe
    assert b.state == HALF_OPEN
    with pytest.raises(CircuitOpen, match="probe"):
        b.before_call()  # only one probe at a time
    b.on_success()
    assert b.state == HALF_OPEN
    b.before_call()
    b.on_success()
    assert b.state == CLOSED
    for _ in range(5):
        b.on_failure()
    clock.now = 61.0
    b.before_call()
    b.on_failure()  # a failed probe opens it again
    assert b.state == OPEN and b.trips == 3


def test_breaker_on_real_invocations(fx):
    fx.deploy("rust", BOOM_RS, name="boom")
    for _ in range(10):  # caller errors never count
        with pytest.raises(BadArguments):
            fx.invoke("boom", "x")
    assert fx.breaker("boom")["state"] == "closed"
    for _ in range(5):
        with pytest.raises(InvocationError):
            fx.invoke("boom", 1)
    assert fx.breaker("boom")["state"] == "open"
    with pytest.raises(CircuitOpen):
        fx.invoke("boom", 0)
    rejected = fx.run("boom", 0)  # rejected without running the function
    assert rejected.status == "rejected" and rejected.duration_ms == 0.0
    time.sleep(0.35)  # reset_timeout=0.3 in the fixture
    assert fx.invoke("boom", 0) == 0
    assert fx.breaker("boom")["state"] == "half_open"
    assert fx.invoke("boom", 0) == 0
    assert fx.breaker("boom")["state"] == "closed"
    df = fx.sql("select status, count(*) n from executions where function='boom' "
                "group by status order by status")
    assert dict(zip(df.status, df.n, strict=True)) == {"error": 15, "ok": 2, "rejected": 2}


def test_transitions_reset_and_retry_in():
    from functions_nb.breaker import CLOSED, OPEN, CircuitBreaker
    from functions_nb.config import BreakerConfig

    now = [100.0]
    b = CircuitBreaker("f@1", BreakerConfig(failure_threshold=2, reset_timeout=10),
                       clock=lambda: now[0])
    b.on_failure()
    b.on_failure()
    assert b.state == OPEN and b.retry_in() == 10
    now[0] += 4
    assert b.snapshot()["retry_in"] == 6
    b.reset()
    assert b.state == CLOSED and b.failures == 0 and b.retry_in() == 0
    assert [(t["from"], t["to"], t["why"]) for t in b.snapshot()["transitions"]] == [
        ("closed", "open", "2 consecutive failures"), ("open", "closed", "reset by hand")]
