"""The human tier: tasks in the store, answered from a widget, Python, or another process."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from functions_nb import BadArguments, Functions, history_sql
from functions_nb.cascade.base import Attempt, HumanPending, TierCall, TierServices
from functions_nb.cascade.human import HumanDesk, HumanTier, Pending
from functions_nb.errors import Aborted, FunctionTimeout, InvocationError
from functions_nb.storage import FunctionStore
from functions_nb.storage.tasks import TaskClosed, TaskNotFound, TaskQueue

from .conftest import ADD_RS

PARSE_RS = """fn parse(s: &str) -> i32 {
    s.trim().parse::<i32>().unwrap()
}
"""


@pytest.fixture
def deployed(fx):
    fx.deploy("rust", PARSE_RS, name="parse")
    return fx


def services(fx) -> TierServices:
    return TierServices(invoke=fx.invoke, list_functions=fx.list, sql=history_sql.reader(fx.history),
                        tasks=TaskQueue(fx.store))


def code_failure(fx, arg="x1") -> Attempt:
    """A real failure of the code tier (the Rust parser panics on odd input)."""
    ex = fx.run("parse", arg)
    assert ex.status == "error"
    return Attempt("code", 1, "failed", str(ex.error), ex.error.kind, ex.duration_ms)


def make_call(fx, *args, timeout=60.0, previous=(), **options) -> TierCall:
    return TierCall(fx.info("parse"), args or ("x1",), "human", 1, timeout, time.monotonic() + timeout,
                    threading.Event(), uuid.uuid4().hex[:12], list(previous), True, options)


def ask(fx, tier, *args, **kw) -> Pending:
    """Run the tier without waiting: it raises HumanPending with the handle."""
    with pytest.raises(HumanPending) as signal:
        tier.run(make_call(fx, *args, **kw))
    return signal.value.pending


def wait_until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# -- TaskQueue ---------------------------------------------------------------------------------

def test_task_queue_create_list_answer_first_answer_wins(deployed):
    fx = deployed
    tasks = TaskQueue(fx.store)
    failure = code_failure(fx)
    task = tasks.create(fx.info("parse"), ("x1",), question="what is x1?", failures=[failure.to_dict()],
                        execution_id="ex1")
    assert task.status == "pending" and task.function == "parse@1" and task.args == ["x1"]
    assert task.options == {"decisions": ["approve", "reject", "value"],
                            "signature": "parse(s: &str) -> i32", "result": "i32", "result_type": "i32"}
    assert abs(task.deadline - time.time() - 86400) < 60  # the human tier's 24 h
    stored = json.loads(open(tasks._task_path(task.id)).read())
    assert stored["question"] == "what is x1?" and stored["failures"][0]["tier"] == "code"
    assert "panicked" in stored["failures"][0]["error"] and stored["execution_id"] == "ex1"
    other = tasks.create(fx.info("parse"), ("y",), question="and y?")
    assert [t.id for t in tasks.list("pending")] == [task.id, other.id]
    assert tasks.get(task.id[:6]).id == task.id  # a unique prefix is enough

    answer = tasks.answer(task.id, "value", 1, who="alice", why="x is one")
    assert answer["decision"] == "value" and answer["value"] == 1
    on_disk = json.loads(Path(tasks._answer_path(task.id)).read_text())
    assert on_disk["who"] == "alice" and on_disk["why"] == "x is one" and on_disk["answered_at"]
    assert tasks.get(task.id).status == "answered"
    assert [t.id for t in tasks.list("answered")] == [task.id]
    assert [t.id for t in tasks.list("pending")] == [other.id]
    assert len(tasks.list()) == 2

    with pytest.raises(TaskClosed, match="already answered by alice") as err:
        tasks.answer(task.id, "reject", who="bob", why="no")
    assert "first answer stands" in str(err.value)
    assert json.loads(Path(tasks._answer_path(task.id)).read_text())["who"] == "alice"  # unchanged
    with pytest.raises(TaskNotFound, match="no human task 'nope'"):
        tasks.get("nope")
    with pytest.raises(BadArguments, match="status 'done'"):
        tasks.list("done")


def test_default_who_is_the_login(deployed):
    tasks = TaskQueue(deployed.store)
    task = tasks.create(deployed.info("parse"), ("7",), question="q")
    assert tasks.answer(task.id, "approve")["who"] == getpass.getuser()


def test_expiry_and_withdraw(deployed):
    fx = deployed
    tasks = TaskQueue(fx.store)
    short = tasks.create(fx.info("parse"), ("x",), question="q", timeout=0.2)
    assert tasks.get(short.id).status == "pending"
    time.sleep(0.3)
    assert tasks.get(short.id).status == "expired"
    assert [t.id for t in tasks.list("expired")] == [short.id]
    with pytest.raises(TaskClosed, match="expired at .* without an answer"):
        tasks.answer(short.id, "value", 3)

    task = tasks.create(fx.info("parse"), ("x",), question="q")
    tasks.withdraw(task.id, "another tier answered first")
    got = tasks.get(task.id)
    assert got.status == "withdrawn" and got.answer["why"] == "another tier answered first"
    with pytest.raises(TaskClosed, match="already withdrawn by cascade .*another tier answered first"):
        tasks.answer(task.id, "value", 3)


def test_bad_value_is_refused_at_answer_time(deployed):
    fx = deployed
    tasks = TaskQueue(fx.store)
    task = tasks.create(fx.info("parse"), ("x",), question="q")
    with pytest.raises(BadArguments, match=r"parse\(s: &str\) -> i32: the answer must be an integer \(i32\), "
                                           r"got str 'forty'"):
        tasks.answer(task.id, "value", "forty")
    with pytest.raises(BadArguments, match="out of range for i32"):
        tasks.answer(task.id, "value", 2**40)
    with pytest.raises(BadArguments, match="decision 'maybe'"):
        tasks.answer(task.id, "maybe")
    assert tasks.get(task.id).status == "pending"  # nothing lost: the task is still open
    assert tasks.answer(task.id, "value", " 42 ")["value"] == 42  # typed text is coerced


def test_hybrid_store_tasks_go_to_the_write_store(tmp_path):
    fx = Functions(store=str(tmp_path / "primary"), fallback=str(tmp_path / "fallback"))
    try:
        fx.deploy("rust", PARSE_RS, name="parse")
        tasks = TaskQueue(fx.store)
        assert tasks.store is fx.store.writes
        task = tasks.create(fx.info("parse"), ("x",), question="q")
        assert (tmp_path / "primary" / "tasks" / f"{task.id}.json").exists()
        assert not (tmp_path / "fallback" / "tasks").exists()
    finally:
        fx.close()


# -- HumanTier ----------------------------------------------------------------------------------

def test_wait_human_answered_from_another_thread(deployed):
    fx = deployed
    tier = HumanTier(services(fx))
    tasks = tier.services.tasks
    assert tier.skip_reason(fx.info("parse"), {}) is None
    assert HumanTier(TierServices(fx.invoke, fx.list, history_sql.reader(fx.history))).skip_reason(fx.info("parse"), {}) == \
        "no human channel: the store has no task queue"

    def person():
        assert wait_until(lambda: tasks.list("pending"))
        task = tasks.list("pending")[0]
        HumanDesk(tasks).answer(task.id, 7, who="dana", why="seen it")

    helper = threading.Thread(target=person)
    helper.start()
    call = make_call(fx, previous=[code_failure(fx)], wait_human=True)
    assert tier.run(call) == 7
    helper.join()
    assert any("human task" in text and "func human answer" in text for _lvl, text, _ts in call.console)
    task = tasks.list("answered")[0]
    assert task.answer["who"] == "dana" and "code tier (attempt 1) failed" in task.question
    assert "parse(s: &str) -> i32" in task.question and '["x1"]' in task.question


def test_not_waiting_gives_a_pending_handle(deployed):
    fx = deployed
    tier = HumanTier(services(fx))
    desk = HumanDesk(tier.services.tasks)
    pending = ask(fx, tier, question="What number is 'x1'?")
    calls = []
    pending.on_resolved = lambda p, status, value, error: calls.append((p, status, value, error))
    assert not pending.done() and pending.status == "pending"
    assert repr(pending).startswith(f"<pending human task {pending.task_id[:4]}… for parse@1: waiting since")
    with pytest.raises(HumanPending, match="waiting for a person"):
        _ = pending.value
    with pytest.raises(TimeoutError, match="still pending after waiting 0.2 s") as err:
        pending.wait(timeout=0.2)
    assert not isinstance(err.value, FunctionTimeout)  # waiting gave up, the task did not time out
    assert desk.ls()[0]["question"] == "What number is 'x1'?"

    desk.answer(pending.task_id, 42, who="erin")
    assert pending.wait(timeout=10) == 42
    assert pending.value == 42 and pending.done() and pending.status == "answered"
    assert "answered by erin -> 42" in repr(pending)
    time.sleep(1.3)  # the background watcher had a chance too: still exactly one call
    assert calls == [(pending, "completed", 42, None)]


def test_on_resolved_fires_without_anybody_waiting(deployed):
    fx = deployed
    pending = ask(fx, HumanTier(services(fx)))
    seen = []
    pending.on_resolved = lambda p, status, value, error: seen.append(value)
    TaskQueue(fx.store).answer(pending.task_id, "value", 5)  # the bare queue: nobody nudges the handle
    assert wait_until(lambda: seen == [5], timeout=10)


DRIVER = """import argparse, sys
from functions_nb import cli_human
from functions_nb.client import Functions
p = argparse.ArgumentParser(prog="func")
p.add_argument("--store")
cli_human.add_parser(p.add_subparsers(dest="command", required=True))
args = p.parse_args(sys.argv[1:])
sys.exit(cli_human.run(args, lambda a: Functions(store=a.store, history=False)))
"""


def func_command() -> list[str]:
    """``func`` itself once the lead wires ``human`` into cli.py; until then the same
    cli_human code behind a minimal parser, still in another process."""
    from functions_nb.cli import build_parser

    try:
        build_parser().parse_args(["human", "ls"])
        return [sys.executable, "-m", "functions_nb.cli"]
    except SystemExit:
        return [sys.executable, "-c", DRIVER]


def test_answered_from_another_process_while_this_one_keeps_working(deployed, store):
    fx = deployed
    fx.deploy("rust", ADD_RS, name="add")
    pending = ask(fx, HumanTier(services(fx)), previous=[code_failure(fx)])
    resolved = []
    pending.on_resolved = lambda p, status, value, error: resolved.append((status, value, error))
    assert not pending.done()
    worked = sum(fx.invoke("add", i, 1) for i in range(50))  # the kernel is free meanwhile
    assert worked == sum(range(1, 51)) and not pending.done()

    proc = subprocess.Popen([*func_command(), "--store", store, "human", "answer", pending.task_id,
                             "--value", "42", "--who", "frank", "--why", "from a shell"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    rounds = 0
    while proc.poll() is None:  # still working while the other process answers
        assert fx.invoke("add", rounds, 2) == rounds + 2
        rounds += 1
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert f"task {pending.task_id}: value 42 by frank" in out
    assert rounds > 0
    assert pending.wait(timeout=10) == 42
    assert resolved == [("completed", 42, None)]
    answer = pending.answer
    assert answer["who"] == "frank" and answer["why"] == "from a shell" and answer["answered_at"]


def human_cli(fx):
    """``func human ...`` run in this process against ``fx``: the parser and a runner."""
    from functions_nb import cli_human

    parser = argparse.ArgumentParser(prog="func")
    cli_human.add_parser(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        return cli_human.run(parser.parse_args(list(argv)), lambda _a: fx)

    return parser, run


def test_cli_human_in_process(deployed, capsys):
    fx = deployed
    tasks = TaskQueue(fx.store)
    first = tasks.create(fx.info("parse"), ("x1",), question="first?")
    second = tasks.create(fx.info("parse"), ("x2",), question="second?",
                          failures=[{"tier": "generative", "error": "did not validate", "partial": 12}])
    _, run = human_cli(fx)

    assert run("human", "ls") == 0
    out = capsys.readouterr().out
    assert first.id in out and second.id in out and "first?" in out and 'input=["x1"]' in out
    assert run("human", "ls", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["proposed"] for r in rows] == [None, 12] and rows[1]["failed"] == "generative: did not validate"


def test_cli_human_answers_and_refusals(deployed, capsys):
    fx = deployed
    tasks = TaskQueue(fx.store)
    a = tasks.create(fx.info("parse"), ("x1",), question="a?")
    b = tasks.create(fx.info("parse"), ("x2",), question="b?",
                     failures=[{"tier": "generative", "error": "did not validate", "partial": 12}])
    c = tasks.create(fx.info("parse"), ("x3",), question="c?")
    parser, run = human_cli(fx)

    with pytest.raises(BadArguments, match="the answer must be an integer"):
        run("human", "answer", a.id, "--value", "nope")
    assert run("human", "answer", a.id, "--value", "42", "--who", "gus") == 0
    assert run("human", "answer", b.id, "--approve", "--who", "gus", "--why", "close enough") == 0
    assert run("human", "answer", c.id[:8], "--reject", "--why", "garbage in") == 0
    out = capsys.readouterr().out
    assert f"task {a.id}: value 42 by gus" in out and f"task {b.id}: approve by gus" in out
    assert f"task {c.id}: reject by" in out
    with pytest.raises(TaskClosed, match="already answered by gus"):
        run("human", "answer", a.id, "--value", "43")
    assert run("human", "ls") == 0 and "no pending human tasks" in capsys.readouterr().out
    assert run("human", "ls", "--all", "--json") == 0
    rows = {r["task_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[a.id]["value"] == 42 and rows[b.id]["decision"] == "approve"
    assert rows[c.id]["why"] == "garbage in"
    with pytest.raises(SystemExit):  # one of --value / --approve / --reject is required
        parser.parse_args(["human", "answer", a.id])


def test_cli_human_withdraw(deployed, capsys):
    fx = deployed
    tier = HumanTier(services(fx))
    pending = ask(fx, tier, "x1")
    _, run = human_cli(fx)

    assert run("human", "withdraw", pending.task_id[:8], "--why", "not needed any more") == 0
    assert f"task {pending.task_id}: withdrawn (not needed any more)" in capsys.readouterr().out
    with pytest.raises(Aborted, match="not needed any more"):
        pending.wait(timeout=10)
    with pytest.raises(TaskClosed, match="already withdrawn"):
        run("human", "answer", pending.task_id, "--value", "1")
    with pytest.raises(TaskClosed):
        run("human", "withdraw", pending.task_id)


def test_reject_approve_and_withdraw_outcomes(deployed):
    fx = deployed
    tier = HumanTier(services(fx))
    desk = HumanDesk(tier.services.tasks)
    proposal = Attempt("generative", 1, "failed", "output did not validate", "runtime_error", 3.0, partial=41)

    rejected = ask(fx, tier, previous=[code_failure(fx)])
    desk.reject(rejected.task_id, "input is garbage", who="alice")
    with pytest.raises(InvocationError, match="rejected by alice: input is garbage"):
        rejected.wait(timeout=10)
    assert rejected.status == "answered" and isinstance(rejected.error, InvocationError)

    approved = ask(fx, tier, previous=[code_failure(fx), proposal])
    assert "it proposed 41" in approved.task.question and "approve the proposal" in approved.task.question
    desk.approve(approved.task_id, who="bob", why="41 is right")
    assert approved.wait(timeout=10) == 41

    nothing = ask(fx, tier, previous=[code_failure(fx)])
    desk.approve(nothing.task_id)
    assert nothing.wait(timeout=10) is None  # nothing was proposed

    withdrawn = ask(fx, tier)
    assert withdrawn.withdraw("not needed any more")
    with pytest.raises(Aborted, match="withdrawn: not needed any more"):
        withdrawn.wait(timeout=10)


def test_timeout_outcomes(deployed):
    fx = deployed
    tier = HumanTier(services(fx), poll=0.05)
    tasks = tier.services.tasks
    proposal = Attempt("generative", 1, "failed", "output did not validate", partial=41)

    # default: fail, as a timeout; the task is settled as expired in the store
    call = make_call(fx, timeout=0.4, wait_human=True)
    with pytest.raises(FunctionTimeout, match=r"no answer within 0\.4s \(human task"):
        tier.run(call)
    task = tasks.list("expired")[0]
    assert task.answer["decision"] == "expired" and task.answer["who"] == "timeout"

    # approve: the proposed output of the last failure
    call = make_call(fx, timeout=0.4, previous=[proposal], wait_human=True, human_timeout_outcome="approve")
    assert tier.run(call) == 41

    # default_value, checked when the task is created; a non-waiting handle gets it too
    pending = ask(fx, tier, timeout=0.4, human_timeout_outcome="default_value", human_default_value="-1")
    assert pending.wait(timeout=10) == -1 and pending.status == "expired"
    with pytest.raises(BadArguments, match="the answer must be an integer"):
        tier.run(make_call(fx, human_timeout_outcome="default_value", human_default_value="many"))

    # the default is 24 h
    assert "no answer within 24h" in str(_outcome_of_expired(fx, tasks))


def _outcome_of_expired(fx, tasks):
    from functions_nb.cascade.human import outcome

    task = tasks.create(fx.info("parse"), ("x",), question="q")
    task.answer = {"decision": "expired"}
    return outcome(task)[2]


def test_pending_survives_a_restart(deployed, store):
    fx = deployed
    pending = ask(fx, HumanTier(services(fx)), "x9")
    task_id = pending.task_id
    del pending
    fx.close()

    # a new kernel: new client, new queue, new desk on the same store
    fx2 = Functions(store=store)
    try:
        desk = HumanDesk(TaskQueue(fx2.store))
        assert [row["task_id"] for row in desk.ls()] == [task_id]
        again = desk.get(task_id)
        assert desk.get(task_id[:5]) is again  # one handle per task in a desk
        assert again.function == "parse@1" and again.task.args == ["x9"] and not again.done()
        assert again.attempts == []  # no failures were recorded for this call
        desk.answer(task_id, 9, who="hana")
        assert again.wait(timeout=10) == 9
    finally:
        fx2.close()


def test_cancellation_withdraws_the_task(deployed):
    fx = deployed
    tier = HumanTier(services(fx), poll=0.05)
    call = make_call(fx, wait_human=True)
    box = {}

    def attempt():
        try:
            box["value"] = tier.run(call)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    worker = threading.Thread(target=attempt)
    worker.start()
    assert wait_until(lambda: tier.services.tasks.list("pending"))
    call.cancel.set()  # e.g. a parallel tier won
    worker.join(5)
    assert not worker.is_alive()
    assert isinstance(box.get("error"), Aborted) and "withdrawn" in str(box["error"])
    task = tier.services.tasks.list("withdrawn")[0]
    with pytest.raises(TaskClosed, match="already withdrawn"):
        HumanDesk(tier.services.tasks).answer(task.id, 1)


def test_widget_answers_and_refreshes(deployed):
    pytest.importorskip("ipywidgets")
    import ipywidgets

    fx = deployed
    tier = HumanTier(services(fx))
    desk = HumanDesk(tier.services.tasks)
    one = ask(fx, tier, "x1", previous=[code_failure(fx)])
    two = ask(fx, tier, "x2", previous=[Attempt("generative", 1, "failed", "bad output", partial=2)])
    view = desk.widget(live=False)
    assert one.task_id in view.html() and "x2" in view.html()  # the static output
    panel = view.widget
    assert isinstance(panel, ipywidgets.VBox)
    assert set(panel.rows) == {one.task_id, two.task_id}

    row = panel.rows[one.task_id]
    row.value.value = "forty-two"  # refused: the row stays, the message says why
    row.submit.click()
    assert one.task_id in panel.rows and "must be an integer" in panel.message.value
    panel.who.value, panel.why.value = "ivy", "read the input"
    panel.rows[one.task_id].value.value = "42"
    panel.rows[one.task_id].submit.click()
    assert one.task_id not in panel.rows and set(panel.rows) == {two.task_id}
    assert one.wait(timeout=10) == 42
    assert one.answer["who"] == "ivy" and one.answer["why"] == "read the input"

    panel.rows[two.task_id].approve.click()
    assert panel.rows == {} and two.wait(timeout=10) == 2
    three = ask(fx, tier, "x3")
    panel.refresh_button.click()
    assert set(panel.rows) == {three.task_id}
    assert one.task_id not in view.html() and three.task_id in view.html()
    panel.rows[three.task_id].reject.click()
    with pytest.raises(InvocationError, match="rejected by ivy: read the input"):
        three.wait(timeout=10)
    assert desk.frame(None)["status"].tolist() == ["answered"] * 3


def test_live_widget_follows_answers_made_elsewhere(deployed):
    pytest.importorskip("ipywidgets")
    fx = deployed
    tier = HumanTier(services(fx))
    desk = HumanDesk(tier.services.tasks)
    one = ask(fx, tier, "x1")
    two = ask(fx, tier, "x2")
    view = desk.widget(interval=0.05)
    panel = view.widget
    try:
        assert set(panel.rows) == {one.task_id, two.task_id}
        panel.rows[two.task_id].value.value = "7"  # typed, not sent yet
        # answered by someone else (the sidebar, the CLI, another kernel: the same store)
        HumanDesk(TaskQueue(fx.store)).answer(one.task_id, 1, who="sam")
        assert wait_until(lambda: set(panel.rows) == {two.task_id})
        assert panel.rows[two.task_id].value.value == "7"  # what was typed survives the refresh
        three = ask(fx, tier, "x3")
        assert wait_until(lambda: set(panel.rows) == {two.task_id, three.task_id})
        assert one.wait(timeout=10) == 1
    finally:
        panel.close()
    assert view._stop.is_set()


def test_engine_returns_a_pending_and_records_the_answer(deployed):
    """Through fx.invoke: code fails, the human tier is reached, the handle resolves."""
    fx = deployed
    pending = fx.invoke("parse", "x1", skip_tiers=["generative", "agentic"])
    assert isinstance(pending, Pending) and not pending.done()
    assert [a.tier for a in pending.attempts if a.status != "skipped"] == ["code", "human"]
    assert "panicked" in pending.task.question
    HumanDesk(TaskQueue(fx.store)).answer(pending.task_id, 1, who="jo")
    assert pending._outcome is not None  # answered in this process: the handle knows at once
    assert pending.wait(timeout=10) == 1
    fx.flush()
    rows = fx.sql("SELECT status FROM executions WHERE tier = 'human'")["status"].tolist()
    assert "ok" in rows


def test_one_final_record_per_task_in_a_process(deployed):
    """fx.human.get(id) for a task this process's cascade made is the handle invoke returned,
    so the answer is recorded once, not once per handle."""
    fx = deployed
    pending = fx.invoke("parse", "x1", skip_tiers=["generative", "agentic"])
    assert fx.human.get(pending.task_id) is pending
    fx.human.answer(pending.task_id, 3, who="jo")
    assert pending.wait(timeout=10) == 3 and fx.human.get(pending.task_id).wait(timeout=10) == 3
    fx.flush()
    rows = fx.sql("SELECT status, count(*) AS n FROM executions WHERE tier = 'human' "
                  f"AND id = '{pending.execution_id}' GROUP BY status ORDER BY status")
    assert dict(zip(rows["status"], rows["n"], strict=True)) == {"ok": 1, "pending": 1}


def test_tasks_on_s3(deployed):
    pytest.importorskip("s3fs")
    from .s3server import MotoServer, s3_storage_options

    fx = deployed
    with MotoServer() as moto:
        moto.make_bucket("human")
        tasks = TaskQueue(FunctionStore("s3://human/team", s3_storage_options(moto.endpoint)))
        task = tasks.create(fx.info("parse"), ("x1",), question="on s3?")
        assert [t.id for t in tasks.list("pending")] == [task.id]
        pending = Pending(tasks, task)
        tasks.answer(task.id, "value", 8, who="kim")
        with pytest.raises(TaskClosed, match="already answered by kim"):
            tasks.answer(task.id, "value", 9)
        assert pending.wait(timeout=10) == 8 and tasks.get(task.id).status == "answered"
