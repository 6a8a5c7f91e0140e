"""npm packages in TypeScript/JavaScript functions (issue 18): bare imports and the
``// @dependencies`` header declare them, the real npm registry resolves them, the lock pins
them, no install script runs, and a second machine builds and runs them from the store alone."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from functions_nb import CompileError, Functions
from functions_nb.dependencies import npm
from functions_nb.errors import DependencyError
from functions_nb.languages import base, get_language

#: A registry address nothing answers at (the discard port on this machine).
NO_REGISTRY = "http://127.0.0.1:9/"

ZOD_TS = """// @dependencies zod@3.23.8 @types/lodash-es
import { z } from "zod";
import chunk from "lodash-es/chunk";

const Point = z.object({ x: z.number(), y: z.number() });

export function shape(value: unknown, size: number): { ok: boolean, parts: number[][] } {
  const parsed = Point.safeParse(value);
  return { ok: parsed.success, parts: chunk([1, 2, 3, 4, 5], size) };
}
"""

#: core-js has a postinstall script (``node -e "try{require('./postinstall')}catch(e){}"``).
CORE_JS = """import groupBy from "core-js/actual/object/group-by";

function parity(xs) {
  const g = groupBy(xs, (x) => (x % 2 ? "odd" : "even"));
  return { odd: g.odd ?? [], even: g.even ?? [] };
}
"""


@pytest.fixture(scope="module", autouse=True)
def usable():
    if not get_language("typescript").toolchain().usable:
        pytest.skip("typescript toolchain not usable here")
    if shutil.which("npm") is None:
        pytest.skip("npm not installed")


@pytest.fixture
def fx(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache"))
    f = Functions(store=str(tmp_path / "store"), history=False)
    yield f
    f.close()


def declared(source: str, language: str = "typescript") -> tuple[str, ...]:
    return get_language(language).declared_dependencies(source, {})


# -- declarations (no registry) ------------------------------------------------------------------

def test_bare_imports_and_the_header_are_the_declarations():
    source = textwrap.dedent("""\
        // @dependencies zod@3.23.8, @types/lodash-es
        import { z } from "zod";
        import chunk from 'lodash-es/chunk';
        import type { Foo } from "@scope/pkg/deep/path";
        export * from "re-exported";
        import "side-effect-only";
        const cjs = require("cjs-pkg/sub");
        const lazy = await import("lazy-pkg");
        import fs from "node:fs";
        import path from "path";
        import { readFile } from "fs/promises";
        import local from "./local.js";
        // import commented from "commented-out";
        /* import blocked from "block-commented"; */
        const text = "import inString from 'in-a-string'";
        const viaMethod = loader.require("a-method-call");
        export function f(): number { return 1 }
        """)
    assert declared(source) == ("@scope/pkg", "@types/lodash-es", "cjs-pkg", "lazy-pkg",
                                "lodash-es", "re-exported", "side-effect-only", "zod@3.23.8")
    assert declared(source, "javascript") == declared(source)
    # no import, no header: nothing to resolve (the cell deploys as before)
    assert declared("export function f(a: number): number { return a }") == ()
    # a header line inside a string literal is not a header
    assert declared('const s = `\n// @dependencies zod\n`;\nfunction f() { return s }') == ()


def test_a_header_version_pins_an_imported_package_and_can_name_an_npm_builtin_lookalike():
    assert declared('// @dependencies buffer@6.0.3\nimport { Buffer } from "buffer";\n'
                    "function f() { return 1 }", "javascript") == ("buffer@6.0.3",)
    assert declared('import { Buffer } from "buffer";\nfunction f() { return 1 }',
                    "javascript") == ()  # Node's built-in: not a package


@pytest.mark.parametrize(("source", "line", "words"), [
    ('// @dependencies zod@git+https://example.invalid/z.git\nfunction f() {}', 1,
     "not a registry version or range"),
    ("// @dependencies zod@file:../../etc\nfunction f() {}", 1, "not a registry version"),
    ("// @dependencies zod@npm:evil@1\nfunction f() {}", 1, "not a registry version"),
    ("\n// @dependencies ../../etc/passwd\nfunction f() {}", 2, "not a valid npm package name"),
    ("// @dependencies zod@1 zod@2\nfunction f() {}", 1, "names zod twice"),
    ('function f() {}\nimport x from "Bad Name";', 2, "not a valid npm package name"),
    ('import x from "@scope/";\nfunction f() {}', 1, "not a valid npm package name"),
    (f'import x from "{"a" * 215}";\nfunction f() {{}}', 1, "not a valid npm package name"),
])
def test_invalid_declarations_are_refused_naming_them(source, line, words):
    with pytest.raises(DependencyError) as info:
        declared(source, "javascript")
    assert words in str(info.value) and info.value.line == line
    assert str(info.value).startswith(f"cell:{line}: error:")


def test_integrity_check():
    data = b"tarball bytes"
    good = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert npm.check_integrity(data, good) == good
    assert npm.check_integrity(data + b"!", good) is None
    assert npm.check_integrity(data, "md5-abc") is None  # no hash known here: not checked
    weak = "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324
    assert npm.check_integrity(data, f"{weak} sha512-AAAA") is None  # the strongest decides


# -- the real registry ---------------------------------------------------------------------------

def test_deploy_invoke_and_the_lock(fx, tmp_path, monkeypatch):
    info = fx.deploy("typescript", ZOD_TS, name="shape")
    assert fx.invoke("shape", {"x": 1, "y": 2}, 2) == {"ok": True, "parts": [[1, 2], [3, 4], [5]]}
    assert fx.invoke("shape", {"x": "1"}, 3) == {"ok": False, "parts": [[1, 2, 3], [4, 5]]}

    lock = fx.info("shape").dependencies
    assert lock == info.dependencies and lock["ecosystem"] == "npm"
    assert lock["declared"] == ["@types/lodash-es", "lodash-es", "zod@3.23.8"]
    packages = {p["name"]: p for p in lock["packages"]}
    # the header's pin, the latest of the rest, and what they need (@types/lodash-es -> @types/lodash)
    assert packages["zod"]["version"] == "3.23.8" and packages["zod"]["file"] == "zod-3.23.8.tgz"
    assert {"lodash-es", "@types/lodash-es", "@types/lodash"} <= set(packages)
    for pkg in lock["packages"]:  # every file: its blob in the store, checked by npm's integrity
        blob = fx.store.get_blob(pkg["sha256"])
        assert pkg["registry_hash"].startswith("sha512-")
        assert npm.check_integrity(blob, pkg["registry_hash"]) == pkg["registry_hash"]
    layout = json.loads(lock["extra"])
    assert layout["node_modules/zod"] == "zod@3.23.8"
    rows = fx.versions("shape", detail=True)
    assert {(d["name"], d["version"]) for d in rows[0]["dependencies"]} == \
        {(p["name"], p["version"]) for p in lock["packages"]}

    # a redeploy with the same declarations keeps the lock and asks no registry
    monkeypatch.setenv("npm_config_registry", NO_REGISTRY)
    again = fx.deploy("typescript", ZOD_TS.replace("[1, 2, 3, 4, 5]", "[5, 4, 3, 2, 1]"),
                      name="shape")
    assert again.version == 2 and again.dependencies == lock
    # both builds used one unpacked tree of the lock (made once on this machine)
    assert len(list((tmp_path / "cache" / "npm").glob("*/.complete"))) == 1
    assert fx.invoke("shape", {"x": 0, "y": 0}, 4) == {"ok": True, "parts": [[5, 4, 3, 2], [1]]}
    # a new declaration needs the registry: refused naming it, and the last version stays
    with pytest.raises(DependencyError, match="127.0.0.1:9"):
        fx.deploy("typescript", '// @dependencies left-pad@1.3.0\n' + ZOD_TS, name="shape")
    assert fx.versions("shape") == [1, 2]


@pytest.mark.skipif(not base.build_layers()["bwrap"], reason="bubblewrap does not work here")
def test_builds_read_the_unpacked_packages_read_only(fx, tmp_path):
    """The tree a build links as node_modules is bound read-only in its sandbox, as
    ``_bundle`` binds it for esbuild and tsc."""
    fx.deploy("javascript", 'import { z } from "zod";\nfunction ro(x) { return z.string()'
              ".safeParse(x).success }", name="ro")
    (tree,) = [p.parent for p in (tmp_path / "cache" / "npm").glob("*/.complete")]
    manifest = (tree / "node_modules/zod/package.json").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    (work / "node_modules").symlink_to(tree / "node_modules")
    proc = base.run_tool(["/bin/sh", "-c", "head -c 1 node_modules/zod/package.json && echo "
                          "read; echo x > node_modules/zod/package.json && echo wrote"],
                         cwd=work, sandbox_=base.BuildSandbox(tools=("/bin/sh", "/usr/bin/head"),
                                                              read=(str(tree),)))
    assert "read" in proc.stdout and "wrote" not in proc.stdout, (proc.stdout, proc.stderr)
    assert (tree / "node_modules/zod/package.json").read_bytes() == manifest


def test_no_install_script_runs(fx, tmp_path, monkeypatch):
    """core-js has a postinstall; deploying it never starts it. Every node process started
    from here (npm itself included) goes through a logging ``node`` first on PATH: the log
    shows npm ran and that nothing ran core-js's script."""
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "node-calls.log"
    real = shutil.which("node")
    (shim / "node").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    (shim / "node").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")

    info = fx.deploy("javascript", CORE_JS, name="parity")
    assert fx.invoke("parity", [1, 2, 3, 4, 5]) == {"odd": [1, 3, 5], "even": [2, 4]}

    (pkg,) = info.dependencies["packages"]
    assert pkg["name"] == "core-js"
    with tarfile.open(fileobj=io.BytesIO(fx.store.get_blob(pkg["sha256"]))) as tar:
        manifest = json.load(tar.extractfile("package/package.json"))
    assert "postinstall" in manifest["scripts"]  # the package does have one
    calls = log.read_text().splitlines()
    assert any("npm-cli.js" in c or "/npm" in c for c in calls), calls  # the shim saw npm
    assert not [c for c in calls if "postinstall" in c or "require('./postinstall')" in c], calls


def test_a_native_addon_is_refused_naming_it(fx):
    with pytest.raises(DependencyError) as info:
        fx.deploy("javascript", 'import b from "bufferutil";\nfunction f(x) { return x }',
                  name="f")
    assert "bufferutil@" in str(info.value) and "native addon" in str(info.value)
    assert fx.list() == []


def test_unknown_package_and_version_are_refused_naming_them(fx):
    with pytest.raises(DependencyError, match=r"fnb-no-such-package-9f3c: no such package"):
        fx.deploy("javascript", 'import x from "fnb-no-such-package-9f3c";\nfunction f() {}',
                  name="f")
    with pytest.raises(DependencyError, match=r"zod: no version matches 99\.99\.99"):
        fx.deploy("javascript", '// @dependencies zod@99.99.99\nimport { z } from "zod";\n'
                  "function f() {}", name="f")


def test_node_builtins_stay_refused(fx):
    with pytest.raises(CompileError) as info:
        fx.deploy("javascript", 'import { z } from "zod";\nimport fs from "node:fs";\n'
                  "function f() { return fs.readFileSync('/etc/hostname') }", name="f")
    assert 'Could not resolve "node:fs"' in str(info.value)
    assert "without Node" in str(info.value)


def test_a_package_with_a_node_build_and_a_browser_build_gets_the_browser_one(fx):
    """debug's main build requires Node's tty and util; its browser build needs neither."""
    info = fx.deploy("javascript", 'import createDebug from "debug";\nfunction dbg(ns) {\n'
                     '  const d = createDebug(ns);\n  d("quiet");\n  return d.namespace;\n}',
                     name="dbg")
    assert fx.invoke("dbg", "app:x") == "app:x"
    assert {"debug", "ms"} <= {p["name"] for p in info.dependencies["packages"]}


def test_a_function_without_the_import_cannot_use_the_package(fx):
    fx.deploy("javascript", 'import { z } from "zod";\nfunction has(x) { return z.string()'
              ".safeParse(x).success }", name="has")
    assert fx.invoke("has", "text") is True
    # the package is not in another function's build, even by a path into node_modules ...
    with pytest.raises(CompileError, match="Could not resolve"):
        fx.deploy("javascript", 'import { z } from "./node_modules/zod/lib/index.mjs";\n'
                  "function hasnt(x) { return z.string().safeParse(x).success }", name="hasnt")
    # ... nor at run time (no module loader in V8), nor as a global
    fx.deploy("javascript", "async function hasnt(n) {\n  try { await import(n); return 'imported' }"
              "\n  catch (e) { return String(e) }\n}", name="hasnt")
    assert fx.invoke("hasnt", "zod") == "Error: Not supported"
    fx.deploy("javascript", "function noz() { return typeof z + ' ' + typeof Zod }", name="noz")
    assert fx.invoke("noz") == "undefined undefined"
    assert fx.info("noz").dependencies is None


def test_a_second_machine_builds_and_runs_from_the_store_alone(fx, tmp_path, monkeypatch):
    first = fx.deploy("typescript", ZOD_TS, name="shape")
    lock = first.dependencies

    # another machine: its own empty cache, and no npm registry
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache-b"))
    monkeypatch.setenv("npm_config_registry", NO_REGISTRY)
    other = Functions(store=str(tmp_path / "store"), history=False)
    try:
        assert other.invoke("shape", {"x": 1, "y": 1}, 5) == {"ok": True, "parts": [[1, 2, 3, 4, 5]]}
        rebuilt = other.deploy("typescript", ZOD_TS, name="shape", force=True)  # a real build
        assert rebuilt.version == 2 and rebuilt.dependencies == lock
        assert other.invoke("shape", {"y": 1}, 4) == {"ok": False, "parts": [[1, 2, 3, 4], [5]]}
        files = sorted(p.name for p in (tmp_path / "cache-b" / "deps").glob("*/*"))
        assert files == sorted(p["file"] for p in lock["packages"])  # from the store's blobs
        with pytest.raises(DependencyError, match="did not answer|127.0.0.1:9"):
            other.deploy("javascript", 'import pad from "left-pad";\nfunction pad2(s) { return s }',
                         name="pad2")  # the registry really is out of reach
    finally:
        other.close()

    # a fresh process, registry unreachable, empty cache: loads and runs it from the store
    script = textwrap.dedent(f"""\
        from functions_nb import Functions
        fx = Functions(store={str(tmp_path / "store")!r}, history=False)
        print(fx.invoke("shape", {{"x": 2, "y": 3}}, 2)["parts"])
        print(fx.info("shape").dependencies == {lock!r})
        fx.close()
        """)
    env = {**os.environ, "FUNCTIONS_NB_CACHE": str(tmp_path / "cache-c"),
           "npm_config_registry": NO_REGISTRY}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[[1, 2], [3, 4], [5]]", "True"]


def test_a_package_without_types_gets_a_hint(fx):
    with pytest.raises(CompileError) as info:
        fx.deploy("typescript", 'import chunk from "lodash-es/chunk";\n'
                  "export function c(n: number): number[][] { return chunk([1, 2, 3], n) }",
                  name="c")
    text = str(info.value)
    assert "TS7016" in text and info.value.line == 1
    assert "// @dependencies @types/lodash-es" in text and "npm i --save-dev" not in text
    assert "/cache/build/" not in text  # the build directory is not shown


# -- installation: what a tarball or a lock may not do ------------------------------------------

def tarball(members: dict[str, bytes | str], links: dict[str, str] | None = None) -> bytes:
    """A real .tgz: files (bytes) and folders ("dir"), plus symbolic links."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def resolved_of(tmp_path: Path, files: dict[str, bytes], layout: dict[str, str]):
    from functions_nb.dependencies import Lock, Package, Resolved, sha256

    packages, paths = [], []
    for key, data in files.items():
        name, version = npm.split(key)
        path = tmp_path / "files" / f"{sha256(data)}.tgz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        packages.append(Package(name, version, path.name, sha256(data)))
        paths.append(path)
    return Resolved(Lock("npm", tuple(files), tuple(packages), json.dumps(layout)), tuple(paths))


def test_install_lays_out_the_lock_and_skips_links(tmp_path):
    a = tarball({"package/package.json": b'{"name":"a"}', "package/lib": "dir",
                 "package/lib/index.js": b"module.exports = 1"},
                links={"package/evil.js": "/etc/passwd"})
    b = tarball({"pkg/index.js": b"export default 2"})  # the first folder need not be package/
    work = tmp_path / "work"
    work.mkdir()
    paths = npm.install(resolved_of(tmp_path, {"a@1.0.0": a, "@s/b@2.0.0": b},
                                    {"node_modules/a": "a@1.0.0",
                                     "node_modules/a/node_modules/@s/b": "@s/b@2.0.0"}), work)
    assert paths == ["node_modules/a", "node_modules/a/node_modules/@s/b"]
    assert (work / "node_modules/a/lib/index.js").read_text() == "module.exports = 1"
    assert (work / "node_modules/a/node_modules/@s/b/index.js").read_text() == "export default 2"
    assert not (work / "node_modules/a/evil.js").exists()
    assert not any(p.is_symlink() for p in work.rglob("*"))


@pytest.mark.parametrize(("member", "layout_path", "words"), [
    ("package/../../escaped.js", "node_modules/a", "unsafe path"),
    ("package/lib/../../../escaped.js", "node_modules/a", "unsafe path"),
    ("package/index.js", "node_modules/../../a", "invalid path"),
    ("package/index.js", "/tmp/a", "invalid path"),
    ("package/index.js", "lib/a", "invalid path"),
])
def test_install_refuses_paths_that_leave_their_folder(tmp_path, member, layout_path, words):
    work = tmp_path / "work"
    work.mkdir()
    resolved = resolved_of(tmp_path, {"a@1.0.0": tarball({member: b"x"})},
                           {layout_path: "a@1.0.0"})
    with pytest.raises(DependencyError, match=words):
        npm.install(resolved, work)
    assert not (tmp_path / "escaped.js").exists() and not Path("/tmp/a").exists()


def test_native_addon_detection_reads_the_tarball():
    assert "binding.gyp" in npm.native_addon(tarball({"package/binding.gyp": b"{}",
                                                      "package/package.json": b"{}"}))
    gyp = json.dumps({"scripts": {"install": "node-gyp rebuild"}}).encode()
    assert "install script runs node-gyp" in npm.native_addon(tarball({"package/package.json": gyp}))
    loader = json.dumps({"dependencies": {"node-gyp-build": "^4"}}).encode()
    assert "node-gyp-build" in npm.native_addon(tarball({"package/package.json": loader}))
    banner = json.dumps({"scripts": {"postinstall": "node -e \"console.log('thanks')\""}}).encode()
    assert npm.native_addon(tarball({"package/package.json": banner})) == ""  # not needed


# -- a changed declaration keeps the locked versions ---------------------------------------------

def test_a_changed_declaration_keeps_the_other_packages_at_their_locked_versions(fx):
    pinned = fx.deploy("javascript", '// @dependencies zod@3.23.8\nimport { z } from "zod";\n'
                       "function ok(x) { return z.string().safeParse(x).success }", name="ok")
    before = {p["name"]: p["version"] for p in pinned.dependencies["packages"]}
    assert before == {"zod": "3.23.8"}

    # zod no longer pinned and a new package: zod stays where the lock had it, left-pad is added
    source = ('import { z } from "zod";\nimport pad from "left-pad";\n'
              "function ok(x) { return pad(String(z.string().safeParse(x).success), 6, '.') }")
    info = fx.deploy("javascript", source, name="ok")
    lock = info.dependencies
    assert lock["declared"] == ["left-pad", "zod"]
    after = {p["name"]: p["version"] for p in lock["packages"]}
    assert after["zod"] == "3.23.8" and set(after) == {"zod", "left-pad"}
    assert json.loads(lock["extra"]) == {"node_modules/zod": "zod@3.23.8",
                                         "node_modules/left-pad": f"left-pad@{after['left-pad']}"}
    assert fx.invoke("ok", "s") == "..true"

    # a pin that excludes the locked version moves zod (and only zod)
    moved = fx.deploy("javascript", "// @dependencies zod@~3.24.1\n" + source, name="ok")
    versions = {p["name"]: p["version"] for p in moved.dependencies["packages"]}
    assert versions["zod"].startswith("3.24.") and versions["zod"] != "3.24.0"
    assert versions["left-pad"] == after["left-pad"]
    assert fx.invoke("ok", 1) == ".false"


def test_npm_keeps_the_transitive_versions_of_the_previous_lock():
    """@types/lodash-es needs ``@types/lodash: *``; a previous lock with an old @types/lodash
    keeps it when a package is added, as npm keeps a package-lock.json's versions. A locked
    version the registry does not have is resolved again."""
    from functions_nb.dependencies import Lock, Package

    def lock(pins: dict[str, str]) -> Lock:
        return Lock("npm", ("@types/lodash-es@4.17.10",),
                    tuple(Package(n, v, f"{n}-{v}.tgz", "0" * 64) for n, v in pins.items()),
                    json.dumps({f"node_modules/{n}": f"{n}@{v}" for n, v in pins.items()}))

    previous = lock({"@types/lodash-es": "4.17.10", "@types/lodash": "4.14.200"})
    resolver = npm.resolver()
    fetched, extra = resolver.resolve(("@types/lodash-es", "left-pad@1.3.0"), language="javascript",
                                      name="t", previous=previous)
    got = {f.package.name: f.package.version for f in fetched}
    assert got == {"@types/lodash-es": "4.17.10", "@types/lodash": "4.14.200", "left-pad": "1.3.0"}
    assert json.loads(extra)["node_modules/@types/lodash"] == "@types/lodash@4.14.200"
    for item in fetched:  # the tarballs of the kept versions, checked as always
        assert npm.check_integrity(item.data, item.package.registry_hash)

    # without the previous lock, npm takes the newest @types/lodash
    fresh = {f.package.name: f.package.version for f in resolver.resolve(
        ("@types/lodash-es@4.17.10",), language="javascript", name="t")[0]}
    assert fresh["@types/lodash"] != "4.14.200"

    # a locked version the registry does not serve: resolved again, the rest kept
    gone = lock({"@types/lodash-es": "4.17.10", "@types/lodash": "4.14.999"})
    again = {f.package.name: f.package.version for f in resolver.resolve(
        ("@types/lodash-es",), language="javascript", name="t", previous=gone)[0]}
    assert again == {"@types/lodash-es": "4.17.10", "@types/lodash": fresh["@types/lodash"]}


def test_an_explicit_tag_or_a_removed_package_is_not_kept():
    from functions_nb.dependencies import Lock, Package

    pins = {"zod": "3.23.8", "left-pad": "1.3.0"}
    previous = Lock("npm", ("left-pad", "zod@3.23.8"),
                    tuple(Package(n, v, f"{n}-{v}.tgz", "0" * 64) for n, v in pins.items()),
                    json.dumps({f"node_modules/{n}": f"{n}@{v}" for n, v in pins.items()}))
    assert npm.previous_lockfile(previous, ("zod",))["dependencies"]["zod"]["version"] == "3.23.8"
    assert "zod" not in npm.previous_lockfile(previous, ("zod@latest",))["dependencies"]
    assert "zod" in npm.previous_lockfile(previous, ("zod@^3",))["dependencies"]
    fetched, extra = npm.resolver().resolve(("zod@latest",), language="javascript", name="t",
                                            previous=previous)
    (zod,) = [f.package for f in fetched]  # left-pad, no longer declared, is gone
    assert zod.name == "zod" and zod.version != "3.23.8"
    assert json.loads(extra) == {"node_modules/zod": f"zod@{zod.version}"}
