"""Go modules per function: imports of module paths (and ``// require`` header pins) resolved
from the Go module proxy, pinned by go.sum, stored with the version, built offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid as pyuuid
from pathlib import Path

import pytest

from functions_nb import CompileError, FunctionNotFound, Functions, InvocationError
from functions_nb.config import cache_dir
from functions_nb.dependencies import Lock, Resolved, gomod, materialize
from functions_nb.errors import DependencyError
from functions_nb.languages import get_language

#: A proxy that does not answer.
NO_PROXY = "http://127.0.0.1:9/"

UUID_GO = """import (
	"github.com/google/uuid"
)

type Info struct {
	UUID    string `json:"uuid"`
	Version int    `json:"version"`
	URN     string `json:"urn"`
	Named   string `json:"named"`
}

func uuid_info(s string, name string) (Info, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return Info{}, err
	}
	named := uuid.NewSHA1(uuid.NameSpaceDNS, []byte(name))
	return Info{UUID: u.String(), Version: int(u.Version()), URN: u.URN(), Named: named.String()}, nil
}
"""

UUID_IN = "{F47AC10B-58CC-4372-A567-0E02B2C3D479}"


DECLARING = """\
// Tools for ids.
// require github.com/google/uuid v1.6.0
// require (
//     github.com/pkg/errors v0.9.1 // a comment
// )
package main

import (
	"fmt"
	u "github.com/google/uuid" // aliased
	/* "github.com/commented/out" */
	_ `golang.org/x/text/cases`
)
import "strings"

var doc = `
import "github.com/inside/a-string"
`

// require github.com/not/header v1.0.0
func f(s string) string { return fmt.Sprint(u.MustParse(s), strings.ToUpper(doc)) }
"""


def expected(s: str, name: str) -> dict:
    """What Python's own uuid module says (an independent implementation)."""
    u = pyuuid.UUID(s)
    return {"uuid": str(u), "version": u.version, "urn": u.urn,
            "named": str(pyuuid.uuid5(pyuuid.NAMESPACE_DNS, name))}


def declared(source: str) -> tuple[str, ...]:
    return get_language("go").declared_dependencies(source, {})


@pytest.fixture(scope="module", autouse=True)
def usable():
    if not get_language("go").toolchain().usable:
        pytest.skip("go toolchain not usable here")


@pytest.fixture
def fx(tmp_path, monkeypatch):
    monkeypatch.delenv("GOPROXY", raising=False)
    monkeypatch.delenv("GOSUMDB", raising=False)
    f = Functions(store=str(tmp_path / "store"), history=False)
    yield f
    f.close()


# -- declarations (no registry) ------------------------------------------------------------------

def test_module_imports_and_header_pins_are_the_declarations():
    source = DECLARING
    assert declared(source) == ("github.com/google/uuid", "golang.org/x/text/cases",
                                "github.com/google/uuid@v1.6.0", "github.com/pkg/errors@v0.9.1")
    # standard-library imports only: nothing declared, the build is as it always was
    assert declared('import (\n\t"fmt"\n\t"encoding/json"\n)\nfunc f() {}\n') == ()


@pytest.mark.parametrize(("source", "line", "words"), [
    ('import "../escape"\n', 1, "is a local path"),
    ('import (\n\t"fmt"\n\t"github.com/a/../../etc"\n)\n', 3, "element '..' is not allowed"),
    ('import "Github.com/x/y"\n', 1, "lower-case domain"),
    ('import "github.com/x/y z"\n', 1, "is not allowed"),
    ('// require github.com/google/uuid latest\nimport "github.com/google/uuid"\n', 1,
     "'latest' is not a semantic version"),
    ('// require github.com/google/uuid master\n', 1, "not a semantic version"),
    ('// require the input to be sorted\nfunc f() {}\n', 1, "takes a module path and a version"),
    ('// require file:///etc/passwd v1.0.0\n', 1, "takes a module path and a version"),
    ('// require /etc/passwd v1.0.0\n', 1, "a local path"),
    ('// require github.com/google/uuid v1.6.0\n// require github.com/google/uuid v1.5.0\n', 2,
     "twice"),
    ('// require (\n//   github.com/google/uuid v1.6.0\nfunc f() {}\n', 1, "no closing"),
])
def test_invalid_declarations_are_refused_before_any_registry(fx, monkeypatch, source, line,
                                                              words):
    monkeypatch.setenv("GOPROXY", NO_PROXY)  # refused here, not by a registry
    with pytest.raises(DependencyError) as info:
        fx.deploy("go", source + "\nfunc g() int32 { return 1 }\n", name="g")
    err = info.value
    assert words in str(err) and err.line == line
    assert str(err).startswith(f"cell:{line}: error:")
    assert fx.list() == []


def test_h1_is_go_s_hash():
    """The h1: hash recomputed here is the go command's (dirhash.Hash1), checked against a
    go.sum line of the module proxy's checksum database for a go.mod file."""
    mod = b"module github.com/google/uuid\n"
    assert gomod.h1_of("v1.6.0.mod", mod) == "h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo="
    assert gomod.escape("github.com/BurntSushi/toml") == "github.com/!burnt!sushi/toml"


# -- the registry ---------------------------------------------------------------------------------

def test_deploy_invoke_and_the_lock(fx, monkeypatch):
    info = fx.deploy("go", UUID_GO, name="uuid_info")
    assert fx.invoke("uuid_info", UUID_IN, "example.com") == expected(UUID_IN, "example.com")
    with pytest.raises(InvocationError, match="invalid UUID"):
        fx.invoke("uuid_info", "not-a-uuid", "x")

    lock = Lock.from_dict(fx.info("uuid_info").dependencies)
    assert lock == Lock.from_dict(info.dependencies)
    assert lock.ecosystem == "go" and lock.declared == ("github.com/google/uuid",)
    files = gomod.lock_files(lock.extra)
    sums = gomod.parse_sum(files["go.sum"])
    version = next(p.version for p in lock.packages if p.file.endswith(".zip"))
    assert f"require github.com/google/uuid {version}" in files["go.mod"]
    assert {(p.name, p.file) for p in lock.packages} == {
        ("github.com/google/uuid", f"{version}.zip"), ("github.com/google/uuid", f"{version}.mod")}
    for p in lock.packages:  # each stored blob is the file go.sum (the checksum database) names
        data = fx.store.get_blob(p.sha256)
        key = p.version if p.file.endswith(".zip") else f"{p.version}/go.mod"
        assert p.registry_hash == sums[(p.name, key)] == gomod.h1_of(p.file, data)

    rows = fx.versions("uuid_info", detail=True)
    assert {(d["name"], d["version"], d["file"]) for d in rows[0]["dependencies"]} == {
        (p.name, p.version, p.file) for p in lock.packages}

    # a redeploy with the same imports keeps the lock: no proxy asked
    monkeypatch.setenv("GOPROXY", NO_PROXY)
    again = fx.deploy("go", UUID_GO.replace("u.URN()", "u.URN() + \"\""), name="uuid_info")
    assert again.version == 2 and again.dependencies == info.dependencies


def test_a_header_pin_is_honoured(fx):
    source = "// require github.com/google/uuid v1.5.0\n" + UUID_GO
    info = fx.deploy("go", source, name="uuid_info")
    assert {p["version"] for p in info.dependencies["packages"]} == {"v1.5.0"}
    assert info.dependencies["declared"] == ["github.com/google/uuid",
                                             "github.com/google/uuid@v1.5.0"]
    assert fx.invoke("uuid_info", UUID_IN, "a.b") == expected(UUID_IN, "a.b")


def requirements(info) -> dict[str, str]:
    """The module versions of a version's lock (its go.mod), each also in its packages."""
    lock = Lock.from_dict(info.dependencies)
    required = gomod.parse_requires(gomod.lock_files(lock.extra)["go.mod"])
    assert {(p.name, p.version) for p in lock.packages} == set(required.items())
    return required


def test_a_changed_declaration_keeps_the_locked_versions(fx):
    """A redeploy whose declarations changed keeps every module of the previous lock the new
    declarations allow at its locked version (a pin it no longer writes included), adds what is
    new, drops what is no longer imported; a header pin moves its module."""
    old = fx.deploy("go", "// require github.com/google/uuid v1.5.0\n" + UUID_GO,
                    name="uuid_info")
    assert requirements(old) == {"github.com/google/uuid": "v1.5.0"}
    fresh = gomod.resolver().resolve(("github.com/google/uuid",), language="go", name="x")
    assert {f.package.version for f in fresh[0]} != {"v1.5.0"}  # no lock: the proxy's latest

    with_errors = UUID_GO.replace("import (\n", 'import (\n\t"github.com/pkg/errors"\n').replace(
        "return Info{}, err", 'return Info{}, errors.Wrap(err, "parse")')
    added = fx.deploy("go", with_errors, name="uuid_info")  # pin gone, a new import
    got = requirements(added)
    assert got["github.com/google/uuid"] == "v1.5.0" and set(got) == {
        "github.com/google/uuid", "github.com/pkg/errors"}
    assert added.dependencies["declared"] == ["github.com/google/uuid", "github.com/pkg/errors"]
    assert fx.invoke("uuid_info", UUID_IN, "a.b") == expected(UUID_IN, "a.b")
    with pytest.raises(InvocationError, match="parse: invalid UUID"):
        fx.invoke("uuid_info", "nope", "a.b")

    # a pin that excludes the locked version moves the module; the others stay
    moved = fx.deploy("go", "// require github.com/google/uuid v1.6.0\n" + with_errors,
                      name="uuid_info")
    assert requirements(moved) == {**got, "github.com/google/uuid": "v1.6.0"}
    assert fx.invoke("uuid_info", UUID_IN, "c.d") == expected(UUID_IN, "c.d")

    # an import removed: its module leaves the lock, the other keeps its locked version
    older = fx.deploy("go", "// require github.com/google/uuid v1.4.0\n" + with_errors,
                      name="uuid_info")
    assert requirements(older) == {**got, "github.com/google/uuid": "v1.4.0"}
    dropped = fx.deploy("go", UUID_GO, name="uuid_info")
    assert requirements(dropped) == {"github.com/google/uuid": "v1.4.0"}
    assert fx.invoke("uuid_info", UUID_IN, "e.f") == expected(UUID_IN, "e.f")


def test_a_previous_lock_that_is_not_a_cell_s_is_not_used():
    """Only the requirements a cell's resolution writes are taken from a previous lock."""
    text = ("module cell\n\ngo 1.24\n\nrequire github.com/pkg/errors v0.9.1\n\nrequire (\n"
            "\tgithub.com/google/uuid v1.5.0 // indirect\n)\n")
    gosum = "github.com/pkg/errors v0.9.1 h1:x\n"
    lock = Lock("go", ("github.com/pkg/errors",), (), gomod.lock_text(text, gosum))
    assert gomod.previous_requirements(lock) == (
        {"github.com/pkg/errors": "v0.9.1", "github.com/google/uuid": "v1.5.0"}, gosum)
    for hostile in (lock.extra.replace("-- go.sum --", "replace a.b/c => /etc\n-- go.sum --"),
                    lock.extra.replace("v0.9.1\n\n", "master\n\n"),
                    lock.extra.replace("github.com/pkg", "../pkg", 1), "not a lock"):
        assert gomod.previous_requirements(lock._replace(extra=hostile)) == ({}, "")
    assert gomod.previous_requirements(lock._replace(ecosystem="crates")) == ({}, "")
    assert gomod.previous_requirements(None) == ({}, "")


def test_transitive_modules_are_pinned_too(fx):
    source = ('import "github.com/tidwall/gjson"\n\n'
              "func pick(doc string, path string) string {\n"
              "\treturn gjson.Get(doc, path).String()\n}\n")
    info = fx.deploy("go", source, name="pick")
    names = {p["name"] for p in info.dependencies["packages"]}
    assert {"github.com/tidwall/gjson", "github.com/tidwall/match",
            "github.com/tidwall/pretty"} <= names
    assert "// indirect" in gomod.lock_files(info.dependencies["extra"])["go.mod"]
    assert fx.invoke("pick", '{"a": {"b": [1, "two"]}}', "a.b.1") == "two"


def test_unknown_module_and_version_are_refused_naming_them(fx):
    with pytest.raises(DependencyError) as info:
        fx.deploy("go", 'import "github.com/functions-nb-no-such-owner/no-such-module"\n'
                  "func f() int32 { return 1 }\n", name="f")
    text = str(info.value)
    assert text.startswith("github.com/functions-nb-no-such-owner/no-such-module: ")
    assert "proxy.golang.org" in text  # and the proxy's own answer, whichever it gives
    assert re.search(r"not available|not found|Not Found|Gone|Forbidden", text)
    with pytest.raises(DependencyError, match=r"github.com/google/uuid/nosuch.*does not contain"):
        fx.deploy("go", 'import "github.com/google/uuid/nosuch"\nfunc f() int32 { return 1 }\n',
                  name="f")
    with pytest.raises(DependencyError, match=r"(?s)github.com/google/uuid@v1.99.0.*v1.99.0"):
        fx.deploy("go", "// require github.com/google/uuid v1.99.0\n" + UUID_GO, name="f")
    with pytest.raises(FunctionNotFound):
        fx.info("f")


def test_a_build_without_the_lock_cannot_use_the_module(fx):
    """The module is in no build but the one given its lock: another build (no dependencies,
    or another lock) finds it nowhere, and nothing of it is left in the shared Go caches."""
    fx.deploy("go", UUID_GO, name="uuid_info")
    go = get_language("go")
    with pytest.raises(CompileError, match=r"(?s)github.com/google/uuid.*GOPROXY=off"):
        go.compile(UUID_GO, "uuid_info", force=True)
    other = fx.deploy("go", 'import "github.com/pkg/errors"\n\nfunc wrap(s string) string '
                      '{ return errors.Wrap(errors.New(s), "ctx").Error() }\n', name="wrap")
    assert fx.invoke("wrap", "x") == "ctx: x"
    lock = Lock.from_dict(other.dependencies)
    with pytest.raises(CompileError, match=r"github.com/google/uuid"):
        go.compile(UUID_GO, "uuid_info", force=True,
                   deps=Resolved(lock, tuple(materialize(lock.packages, fx.store))))
    shared = cache_dir() / "go" / "path"
    assert not list(shared.glob("pkg/mod/github.com/google/uuid*"))
    # a local path into a build's module cache is no way round it
    with pytest.raises(DependencyError, match="local path"):
        fx.deploy("go", 'import uuid "./.modcache/github.com/google/uuid@v1.6.0"\n'
                  + UUID_GO.split(")\n", 1)[1], name="sneaky")


def test_the_build_checks_each_file_against_go_sum(fx):
    """A lock whose go.sum does not match a file, or whose entries are not module files of a
    cell's go.mod, does not build (the store is trusted, and still checked)."""
    info = fx.deploy("go", UUID_GO, name="uuid_info")
    lock = Lock.from_dict(info.dependencies)
    zip_ = next(p for p in lock.packages if p.file.endswith(".zip"))
    forged = lock._replace(extra=lock.extra.replace(zip_.registry_hash, "h1:" + "A" * 43 + "="))
    with pytest.raises(CompileError, match="checksum mismatch|SECURITY ERROR"):
        get_language("go").compile(UUID_GO, "uuid_info", force=True, deps=Resolved(
            forged, tuple(materialize(lock.packages, fx.store))))
    hostile = lock._replace(packages=tuple(p._replace(name="github.com/x/../../../etc")
                                           for p in lock.packages))
    with pytest.raises(DependencyError, match="not allowed"):
        get_language("go").compile(UUID_GO, "uuid_info", force=True, deps=Resolved(
            hostile, tuple(materialize(lock.packages, fx.store))))
    replaced = lock._replace(extra=lock.extra.replace(
        "-- go.sum --", "replace github.com/google/uuid => /etc\n-- go.sum --"))
    with pytest.raises(DependencyError, match="'replace' directive"):
        get_language("go").compile(UUID_GO, "uuid_info", force=True, deps=Resolved(
            replaced, tuple(materialize(lock.packages, fx.store))))


@pytest.mark.slow  # a cold Go build (the standard library too) in the second machine's cache
def test_a_second_machine_builds_and_runs_from_the_store_alone(fx, tmp_path, monkeypatch):
    first = fx.deploy("go", UUID_GO, name="uuid_info")
    lock = first.dependencies

    # another machine: its own empty cache, and no module proxy
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache-b"))
    monkeypatch.setenv("GOPROXY", NO_PROXY)
    other = Functions(store=str(tmp_path / "store"), history=False)
    try:
        assert other.invoke("uuid_info", UUID_IN, "x.y") == expected(UUID_IN, "x.y")
        changed = UUID_GO.replace("u.String()", "strings.ToUpper(u.String())").replace(
            'import (\n', 'import (\n\t"strings"\n')
        rebuilt = other.deploy("go", changed, name="uuid_info")  # a real build, offline
        assert rebuilt.version == 2 and rebuilt.dependencies == lock
        want = expected(UUID_IN, "x.y")
        assert other.invoke("uuid_info", UUID_IN, "x.y") == {**want, "uuid": want["uuid"].upper()}
        files = sorted(p.name for p in (tmp_path / "cache-b" / "deps").glob("*/*"))
        assert files == sorted(p["file"] for p in lock["packages"])  # from the store's blobs
        with pytest.raises(DependencyError, match="127.0.0.1:9"):  # the proxy really is gone
            other.deploy("go", 'import "github.com/pkg/errors"\nfunc e() string '
                         '{ return errors.New("x").Error() }\n', name="e")
    finally:
        other.close()

    # a fresh process, proxy unreachable, empty cache: loads and runs it from the store
    script = textwrap.dedent(f"""\
        from functions_nb import Functions
        fx = Functions(store={str(tmp_path / "store")!r}, history=False)
        print(fx.invoke("uuid_info@1", {UUID_IN!r}, "example.org")["named"])
        print(fx.info("uuid_info").dependencies == {lock!r})
        fx.close()
        """)
    env = {**os.environ, "FUNCTIONS_NB_CACHE": str(tmp_path / "cache-c"), "GOPROXY": NO_PROXY}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == [expected(UUID_IN, "example.org")["named"], "True"]
