"""Code runs as people write it: Go files with their package line, Go variadics, C# with the
implicit global usings, default parameter values and keyword arguments by name (issue 15)."""

from __future__ import annotations

import pytest

from functions_nb import BadArguments, CompileError, languages
from functions_nb.models import Param, Signature


def usable(lang: str) -> bool:
    return lang in languages.names() and languages.get_language(lang).toolchain().usable


needs_go = pytest.mark.skipif(not usable("go"), reason="Go is not installed")
needs_csharp = pytest.mark.skipif(not usable("csharp"), reason="Mono is not installed")
needs_python = pytest.mark.skipif(not usable("python"), reason="Pyodide is not installed")

SUM_MULTIPLES_GO = """package summultiples

// SumMultiples adds the numbers below limit that some divisor divides.
func SumMultiples(limit int, divisors ...int) int {
	sum := 0
	for n := 1; n < limit; n++ {
		for _, d := range divisors {
			if d != 0 && n%d == 0 {
				sum += n
				break
			}
		}
	}
	return sum
}
"""


@needs_go
def test_go_file_with_its_package_line_and_a_variadic_runs_as_written(fx):
    info = fx.deploy("go", SUM_MULTIPLES_GO, "SumMultiples")
    assert info.signature.params[-1].variadic
    assert fx.invoke("SumMultiples", 20, 3, 5) == 78
    assert fx.invoke("SumMultiples", 20) == 0  # no divisors: an empty slice
    assert fx.invoke("SumMultiples", limit=10, divisors=[3, 5]) == 23
    assert fx.map("SumMultiples", [(10, 3, 5), (20, 3, 5), (10,)]) == [23, 78, 0]
    with pytest.raises(BadArguments, match=r"argument 'divisors\[1\]' expects int"):
        fx.invoke("SumMultiples", 20, 3, "5")
    with pytest.raises(BadArguments, match="out of range"):
        fx.invoke("SumMultiples", 20, 2**63)


@needs_go
def test_go_variadic_of_strings_crosses_as_the_slice(fx):
    fx.deploy("go", 'package join\n\nimport "strings"\n\n'
              'func Join(sep string, parts ...string) string {\n'
              '\treturn strings.Join(parts, sep)\n}\n', "Join")
    assert fx.invoke("Join", "-", "a", "é", "c") == "a-é-c"
    with pytest.raises(BadArguments, match=r"argument 'parts\[0\]' expects string"):
        fx.invoke("Join", "-", 1)


def test_bind_maps_names_to_positions_and_refuses_what_does_not_fit():
    sig = Signature("greet", (Param("greeting", "str", "str"),
                              Param("name", "str", "str", has_default=True),
                              Param("times", "i32", "int", has_default=True)), "str", "str")
    assert sig.bind(("hi",)) == ("hi",)  # the guest applies both defaults
    assert sig.bind((), {"greeting": "hi", "name": "Bob"}) == ("hi", "Bob")
    assert sig.bind(("hi",), {"times": 2, "name": "Al"}) == ("hi", "Al", 2)
    with pytest.raises(BadArguments, match=r"greet\(greeting: str.*no parameter named 'nme'"):
        sig.bind(("hi",), {"nme": "Bob"})
    with pytest.raises(BadArguments, match="'greeting' is given by position and by name"):
        sig.bind(("hi",), {"greeting": "yo"})
    with pytest.raises(BadArguments, match="missing argument 'greeting'"):
        sig.bind((), {"name": "Bob"})
    with pytest.raises(BadArguments, match="'name' must be given too"):
        sig.bind(("hi",), {"times": 2})
    with pytest.raises(BadArguments, match="takes 1 to 3 arguments, got 4"):
        sig.bind(("a", "b", 1, 2))
    assert Signature.from_dict(sig.to_dict()) == sig


TWO_FER_PY = '''def two_fer(name: str = "you", punct: bytes = b"."):
    return f"One for {name}, one for me" + punct.decode()
'''


@needs_python
def test_python_defaults_apply_in_the_guest_and_names_are_keywords(fx):
    info = fx.deploy("python", TWO_FER_PY, "two_fer")
    assert [p.has_default for p in info.signature.params] == [True, True]
    assert fx.invoke("two_fer") == "One for you, one for me."
    assert fx.invoke("two_fer", "Alice") == "One for Alice, one for me."
    assert fx.invoke("two_fer", name="Bob", punct=b"!") == "One for Bob, one for me!"
    assert fx.run("two_fer", name="Zoë").value == "One for Zoë, one for me."
    ex = fx.run("two_fer", nme="Bob")  # run never raises: the mistake is its error
    assert isinstance(ex.error, BadArguments) and "no parameter named 'nme'" in str(ex.error)
    with pytest.raises(BadArguments, match="takes 0 to 2 arguments, got 3"):
        fx.invoke("two_fer", "a", b"b", "c")


@needs_python
def test_invoke_magic_passes_keyword_arguments_by_name(ip, capsys):
    r = ip.run_cell("%%function python two_fer --quiet\n" + TWO_FER_PY)
    assert r.success, r.error_in_exec
    ip.user_ns["who"] = "Bob"
    r = ip.run_cell('%invoke --quiet two_fer name=who')
    assert r.success and r.result == "One for Bob, one for me."
    r = ip.run_cell('%invoke --quiet two_fer "Al", punct=b"?"')
    assert r.result == "One for Al, one for me?"
    r = ip.run_cell('%invoke --quiet two_fer name="a" "b"')
    assert not r.success and "positional argument" in str(r.error_in_exec)


# Written for a current .NET project: no usings (System.Linq, System.Collections.Generic and
# System are implicit there), a default value; the compile error is on cell line 4, column 9.
TWO_FER_CS = """public static string TwoFer(string name = "you") =>
    $"One for {name}, one for me.";

public static int Sum(List<int> xs) => xs.Where(x => x > 0).Sum();
"""


@needs_csharp
def test_csharp_implicit_usings_and_defaults(fx):
    info = fx.deploy("csharp", TWO_FER_CS, "TwoFer")
    assert info.signature.params[0].has_default
    assert "CS0105" not in info.warnings  # no duplicate using
    assert fx.invoke("TwoFer") == "One for you, one for me."
    assert fx.invoke("TwoFer", "Alice") == "One for Alice, one for me."
    assert fx.invoke("TwoFer", name="Bob") == "One for Bob, one for me."
    fx.deploy("csharp", "using System.Linq;\nusing System;\n" + TWO_FER_CS, "Sum")
    assert fx.invoke("Sum", [3, -1, 4]) == 7
    bad = "using System;\n\n\nstatic int Broken() { return Undefined; }\n"
    with pytest.raises(CompileError) as err:
        fx.deploy("csharp", bad.replace("static", "public static"), "Broken")
    assert err.value.line == 4 and "cell(4,37)" in str(err.value)
    line1 = "public static int One() { return Missing; }\n"
    with pytest.raises(CompileError, match=r"cell\(1,34\)"):
        fx.deploy("csharp", line1, "One")
    with pytest.raises(CompileError, match=r"cell\(2,34\)"):  # usings after #define
        fx.deploy("csharp", "#define FAST\n" + line1, "One")
