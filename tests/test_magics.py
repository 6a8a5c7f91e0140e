"""Magics through a real IPython InteractiveShell."""

from __future__ import annotations

from functions_nb.magics import FunctionsMagics, split_arguments


def test_deploy_and_invoke(ip, capsys):
    r = ip.run_cell("%%function rust add --timeout 5\nfn add(a: i32, b: i32) -> i32 {\n"
                    "    println!(\"adding\");\n    a + b\n}\n")
    assert r.success, r.error_in_exec
    out = capsys.readouterr().out
    assert "deployed rust add@1" in out and "add(a: i32, b: i32) -> i32" in out
    ip.user_ns["y"] = 40
    r = ip.run_cell("x = %invoke add 2 y\nx")
    assert r.success and r.result == 42 and ip.user_ns["x"] == 42
    out = capsys.readouterr().out
    assert "[log] adding" in out and "add@1 · ok" in out and "cold" in out
    r = ip.run_cell("%invoke add 1, 2")
    assert r.result == 3 and "warm" in capsys.readouterr().out
    r = ip.run_cell("%invoke --quiet --timeout 2 add@1 (y + 1) -1")
    assert r.result == 40 and "add@1" not in capsys.readouterr().out
    # unchanged cell: same version, no compile
    r = ip.run_cell("%%function rust add --timeout 5\nfn add(a: i32, b: i32) -> i32 {\n"
                    "    println!(\"adding\");\n    a + b\n}\n")
    assert "add@1 (unchanged, no compile)" in capsys.readouterr().out
    r = ip.run_cell("%fn_sql select count(*) as n from executions")
    assert r.result.n[0] == 3


def test_compile_error_is_shown_with_cell_line(ip, capsys):
    r = ip.run_cell("%%function rust bad\nfn bad(a: i32) -> i32 {\n    let y: i32 = \"s\";\n"
                    "    a\n}\n")
    assert not r.success
    err = r.error_in_exec
    assert err.line == 3  # the %%function line is line 1, as in the notebook editor
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "cell line 3" in text and "--> cell:3:" in text and "mismatched types" in text
    assert "Traceback" not in text and "functions_nb/" not in text


def test_invoke_errors_are_readable(ip, capsys):
    ip.run_cell("%%function zig twice --quiet\nfn twice(x: i32) i32 {\n    return x * 2;\n}\n")
    r = ip.run_cell("%invoke twice 'a'")
    assert not r.success
    text = "".join(capsys.readouterr())
    assert "BadArguments: twice(x: i32) -> i32: argument 'x' expects i32" in text
    assert "Traceback" not in text
    r = ip.run_cell("%invoke missing 1")
    assert "no function named 'missing'" in "".join(capsys.readouterr())


def test_help_comes_from_magic_arguments():
    doc = FunctionsMagics.function.__doc__
    assert "--timeout" in doc and "--memory" in doc and "--force" in doc
    assert "language" in doc and "name" in doc
    doc = FunctionsMagics.invoke.__doc__
    assert "--timeout" in doc and "NAME or NAME@VERSION" in doc


def test_split_arguments():
    assert split_arguments("2 3") == ["2", "3"]
    assert split_arguments("2, 3") == ["2", "3"]
    assert split_arguments('[1, 2] "a b" x') == ["[1, 2]", '"a b"', "x"]
    assert split_arguments("x + 1, f(a, b)") == ["x + 1", "f(a, b)"]
    assert split_arguments("{'k': [1, 2]} -1") == ["{'k': [1, 2]}", "-1"]
    assert split_arguments("") == []


def test_slow_compile_shows_progress(ip, capsys):
    # --force skips every cache; a Zig build with std.json takes well over half a second
    cell = ("%%function zig count --force\nfn count(words: []const []const u8) usize {\n"
            "    return words.len;\n}\n")
    r = ip.run_cell(cell)
    assert r.success, r.error_in_exec
    out = capsys.readouterr().out
    assert "compiling zig function 'count' …" in out and "compiled in" in out
