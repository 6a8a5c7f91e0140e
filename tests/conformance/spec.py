"""What a language supplies to the conformance suite: its cells, as a user would write them.

The suite (``test_contract.py``) states the behaviour once; each module in ``cells/`` fills
one :class:`Cells`. A case the language cannot even express is listed in ``not_applicable``
with the reason (the suite records it as a skip naming that reason); a case the language
expresses but that fails today is listed in ``xfail`` (strict: it turns into a failure as soon
as it passes, so the mark is removed with the fix).

Every cell below defines one entry function (``{name}`` in identity templates is replaced by
the deployed name); the contract of each entry is written beside its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Cases a language module may mark ``not_applicable`` or ``xfail``; ``identity[<kind>]`` and
#: ``escape[<attempt>]`` name one parameter of those cases.
CASES = ("identity", "compile_error", "runtime_error", "timeout", "memory_bomb", "escape",
         "console", "lingering", "hoard_memory", "hoard_fds", "isolation")
#: The five escape attempts, each an ``escape(what, arg)`` call.
ATTEMPTS = ("read", "write", "connect", "spawn", "env")


@dataclass(frozen=True)
class Cells:
    language: str
    #: kind -> identity cell template ``{name}(x) -> x``; a kind the language lacks goes in
    #: ``not_applicable`` as ``identity[<kind>]``.
    identity: dict[str, str]
    #: A cell that does not compile, with its entry named ``broken``, and the cell line
    #: (1-based, without the magic's line) the compiler blames.
    compile_error: str
    compile_error_line: int
    #: ``boom(x: int) -> int``: throws/panics/raises a message containing ``bad input <x>``
    #: when ``x > 0``, returns ``x`` otherwise; ``boom_line`` is the cell line of the throw
    #: (None where the language cannot report one: ``boom_no_line`` says why).
    boom: str
    boom_line: int | None
    #: ``spin(n: int) -> int``: returns ``n`` for 0, otherwise loops forever.
    spin: str
    #: ``bomb(mb: int) -> int``: allocates and keeps ``mb`` MB (touched), returns how many.
    bomb: str
    #: ``escape(what: str, arg: str) -> str``: tries what the suite asks (see ATTEMPTS:
    #: read file ``arg``; write file ``arg``; connect to ``arg`` = "127.0.0.1:<port>" and send;
    #: run ``/bin/sh -c arg``; the value of environment variable ``arg`` and the whole
    #: environment) and returns whatever it got, or the error text. Raising is fine too.
    escape: str
    #: ``talk(s: str) -> int``: writes ``out: <s>`` to standard output and ``err: <s>`` to
    #: standard error (or the language's log levels), returns ``len(s)``.
    talk: str
    #: ``linger(op: str) -> int``: ``"start"`` starts work that outlives the call (a timer,
    #: thread, goroutine) incrementing a counter forever, returns the counter; ``"read"``
    #: returns the counter.
    linger: str | None
    #: ``hoard(mb: int) -> int``: adds ``mb`` MB (touched) to a global kept across calls and
    #: returns the MB now held.
    hoard: str
    #: ``hoard_fds(n: int) -> int``: opens ``n`` more files kept open across calls, returns
    #: how many are open; the same cell's ``one_file(x: int) -> int`` writes, reads back and
    #: closes one file and returns ``x``.
    hoard_fds: str | None
    #: ``victim(x: str) -> str`` returns ``"ok:" + x`` computed with the language's standard
    #: library and keeps ``VICTIM_SECRET`` in its globals; ``attacker(s: str) -> str`` tries
    #: to read that secret and to change the victim (its code, its globals, shared builtins)
    #: and returns what it found.
    victim: str | None
    attacker: str | None
    #: Console levels of ``talk``'s two lines.
    console_levels: tuple[str, str] = ("log", "error")
    boom_no_line: str = ""
    #: Values of a kind this language marshals differently (e.g. JSON numbers for an untyped
    #: language): kind -> values, replacing the suite's defaults.
    values: dict[str, tuple] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)


#: The victim's secret: it must never reach the attacker.
VICTIM_SECRET = "victim-secret-5f1c9e"


_INF, _NAN = float("inf"), float("nan")


def default_values() -> dict[str, tuple]:
    """The values each kind's identity function gets (edges of its range; NaN, infinities and
    negative zero where the kind allows)."""
    return {
        "i32": (0, -1, 2**31 - 1, -(2**31)),
        "u32": (0, 2**32 - 1),
        "i64": (0, -1, 2**63 - 1, -(2**63)),
        "u64": (0, 2**64 - 1),
        "f32": (1.5, -0.0, 3.4028234663852886e38, 1.401298464324817e-45, _INF, -_INF, _NAN),
        "f64": (0.1, -0.0, 1.7976931348623157e308, 5e-324, -2.5e-308, _INF, -_INF, _NAN),
        "bool": (True, False),
        "str": ("", 'héllo wörld ✓ 😀 \u2028 "q" \\ \n\t end'),
        "bytes": (b"", bytes(range(256))),
        "list": ([1, -(2**53), "a", None, True, 2.5, {"k": [1, 2]}, []],),
        "dict": ({"a": 1, "b": [1.5, "x"], "c": {"d": None, "e": False}, "": ""},),
        "f64[]": (np.array([0.0, -1.5, _INF, _NAN, 1e300, -0.0]),),
    }


KINDS = tuple(default_values())
