"""``func human``: list and answer the human tier's tasks from a shell.

    func human ls [--json] [--all]
    func human answer TASK_ID (--value JSON | --approve | --reject) [--who W] [--why TEXT]
    func human withdraw TASK_ID [--why TEXT]

A task id may be abbreviated to a unique prefix. ``--value`` is JSON (``42``, ``'"text"'``,
``'[1, 2]'``); text that is not JSON is taken as a string. The answer is checked against the
function's result type before it is stored, and the first answer wins.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``human ls``, ``answer`` and ``withdraw`` to ``func``'s subparsers; returns the parser."""
    h = subparsers.add_parser("human", help="list and answer human tasks of the cascade")
    sub = h.add_subparsers(dest="human_command", required=True)
    ls = sub.add_parser("ls", help="pending human tasks (--all: every task)")
    ls.add_argument("--json", action="store_true", help="one JSON list of tasks")
    ls.add_argument("--all", action="store_true", help="answered, expired and withdrawn too")
    an = sub.add_parser("answer", help="answer a task: a value, approve or reject")
    an.add_argument("task_id", metavar="TASK_ID")
    how = an.add_mutually_exclusive_group(required=True)
    how.add_argument("--value", metavar="JSON", help="the value the function returns")
    how.add_argument("--approve", action="store_true",
                     help="accept the output proposed by the last failed tier")
    how.add_argument("--reject", action="store_true", help="the invocation fails")
    an.add_argument("--who", default=None, help="who answers (default: your login)")
    an.add_argument("--why", default="", help="why (recorded with the answer)")
    wd = sub.add_parser("withdraw", help="cancel a pending task (its invocation fails as aborted)")
    wd.add_argument("task_id", metavar="TASK_ID")
    wd.add_argument("--why", default="withdrawn by hand", help="why (recorded with the task)")
    return h


def _desk(fx: Any) -> Any:
    desk = getattr(fx, "human", None)
    if desk is not None:
        return desk
    from .cascade.human import HumanDesk
    from .storage.tasks import TaskQueue

    return HumanDesk(TaskQueue(fx.store))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args: argparse.Namespace, fx_factory: Callable[[argparse.Namespace], Any]) -> int:
    """Run ``func human ...``; ``fx_factory(args)`` gives the ``Functions`` of ``--store``."""
    desk = _desk(fx_factory(args))
    if args.human_command == "ls":
        rows = desk.ls(None if args.all else "pending")
        if args.json:
            print(json.dumps(rows, indent=1, default=repr))
            return 0
        if not rows:
            print("no pending human tasks" if not args.all else "no human tasks")
        for row in rows:
            shown = f"={json.dumps(row['value'])}" if row["decision"] == "value" else ""
            answered = f" {row['decision']}{shown} by {row['who']}" if row["decision"] else ""
            print(f"{row['task_id']}  {row['function']:<16} {row['status']:<9}{answered}  "
                  f"input={json.dumps(row['args'])}  since {row['created_at'][:19]}")
            print("    " + row["question"].replace("\n", "\n    "))
        return 0
    if args.human_command == "withdraw":
        answer = desk.withdraw(args.task_id, args.why)
        print(f"task {answer['task']}: withdrawn ({answer['why']}) at {answer['answered_at']}")
        return 0
    if args.approve:
        answer = desk.approve(args.task_id, who=args.who, why=args.why)
    elif args.reject:
        answer = desk.reject(args.task_id, args.why, who=args.who)
    else:
        answer = desk.answer(args.task_id, _parse_value(args.value), who=args.who, why=args.why)
    value = f" {json.dumps(answer['value'])}" if answer["decision"] == "value" else ""
    print(f"task {answer['task']}: {answer['decision']}{value} by {answer['who']} "
          f"at {answer['answered_at']}")
    return 0
