"""C#, Zig and AssemblyScript have no package registry here: a cell importing a package is
refused before compiling, naming the package, its cell line and what the language offers."""

from __future__ import annotations

import pytest

from functions_nb import Functions
from functions_nb.errors import DependencyError
from functions_nb.languages import get_language

CASES = {
    "csharp": ("using System.Text;\n// using Not.This;\nusing Json = Newtonsoft.Json;\n"
               "public static class F { public static int f(int a) { return a; } }",
               "Newtonsoft.Json", 3, "base class library"),
    "zig": ('// @import("commented_out")\nconst s = "@import(\\"in_a_string\\")";\n'
            'const kf = @import("known_folders");\npub fn f(a: i64) i64 { return a; }',
            "known_folders", 3, "standard library only"),
    "assemblyscript": ('// import x from "commented-out"\nimport { JSON } from "assemblyscript-json";\n'
                       "export function f(a: i32): i32 { return a; }",
                       "assemblyscript-json", 2, "standard library only"),
}
ALLOWED = {
    "csharp": ("using System;\nusing static System.Math;\nusing L = System.Collections.Generic."
               "List<int>;\nnamespace Mine { public static class Helper { public static int Two() "
               "=> 2; } }\npublic static class F { public static double f(int a) { var l = new L "
               "{ a }; return Sqrt(l[0]) * Mine.Helper.Two(); } }"),
    "zig": ('const std = @import("std");\nconst builtin = @import("builtin");\n'
            "pub fn f(a: i64) i64 { return std.math.absInt(a) catch 0; }"),
    "assemblyscript": ('import { Math } from "~lib/math";\n'
                       "export function f(a: i32): i32 { return a; }"),
}


@pytest.fixture(params=list(CASES))
def language(request):
    lang = request.param
    if not get_language(lang).toolchain().usable:
        pytest.skip(f"{lang}: toolchain not usable here")
    return lang


def test_a_package_import_is_refused_naming_it(language, tmp_path):
    source, package, line, offer = CASES[language]
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        with pytest.raises(DependencyError) as info:
            fx.deploy(language, source, name="f")
        err = info.value
        assert repr(package) in str(err) and offer in str(err) and "registry" in str(err)
        assert err.line == line and str(err).startswith(f"cell:{line}: error:")
        assert fx.list() == []  # nothing half-deployed
    finally:
        fx.close()


def test_the_standard_library_and_the_cells_own_names_are_not_packages(language):
    lang = get_language(language)
    module = __import__(type(lang).__module__, fromlist=["packages"])
    assert module.packages(ALLOWED[language]) == []
