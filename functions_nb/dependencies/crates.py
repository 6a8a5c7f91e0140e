"""crates.io for Rust cells: cargo locks the cell's ``[dependencies]`` and fetches every crate.

Resolution runs outside the build sandbox, with cargo itself (the toolchain's, see
:mod:`functions_nb.languages.rust`) and its own configuration: ``CARGO_HOME`` and its
``config.toml`` (source replacement, mirrors, proxies, ``net.retry``), cargo's ``CARGO_*``
variables. ``cargo fetch`` on a package made of the cell's declarations (plus the glue's
serde/serde_json, optional) writes its ``Cargo.lock`` and downloads every crate the lock
names, for every platform (the offline build needs them all to accept the lock). Each
``.crate`` is then read from cargo's download cache and checked against the lock's
``checksum`` (crates.io's sha256 of the file): those files are the lock's packages, the
``Cargo.lock`` its ``extra`` text.

When the declarations change, the function's previous ``Cargo.lock`` is in the package before
``cargo fetch``: as in any cargo project with its lock present, every crate keeps its locked
version where the new requirements allow it; cargo resolves only what is new or no longer
satisfied (a requirement the cell changed to exclude its locked version moves that crate).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import tomllib
from pathlib import Path

from ..config import cache_dir
from ..errors import DependencyError
from . import Fetched, Lock, Package, sha256

#: Seconds cargo has to lock and fetch the crates of one cell.
TIMEOUT = 600.0


def cargo_home() -> Path:
    """Where cargo keeps its configuration and downloads (``CARGO_HOME``, else ``~/.cargo``)."""
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")


class CratesResolver:
    """Locks and fetches a Rust cell's crates with cargo."""

    ecosystem = "crates"

    def resolve(self, declared: tuple[str, ...], *, language: str, name: str,
                previous: Lock | None = None) -> tuple[list[Fetched], str]:
        from ..languages.rust import CARGO, RUSTC, cargo_manifest, compiler_env

        manifest = cargo_manifest(declared)  # checks the declarations again
        env = dict(os.environ)
        # cargo reads the compiler's version for its MSRV-aware resolution: this toolchain's
        env["RUSTC"] = RUSTC
        libs = compiler_env().get("LD_LIBRARY_PATH")
        if libs:
            env["LD_LIBRARY_PATH"] = ":".join(filter(None, [libs, env.get("LD_LIBRARY_PATH")]))
        # in the cache, not /tmp: cargo reads the configuration of every folder above it
        (cache_dir() / "tmp").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="crates-", dir=cache_dir() / "tmp") as tmp:
            root = Path(tmp)
            (root / "Cargo.toml").write_text(manifest)
            (root / "lib.rs").write_text("")
            if previous is not None and previous.extra:
                (root / "Cargo.lock").write_text(previous.extra)  # cargo keeps what it locks
            try:
                proc = subprocess.run([CARGO, "fetch", "--manifest-path", str(root / "Cargo.toml")],
                                      cwd=root, env=env, capture_output=True, text=True,
                                      timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
            except subprocess.TimeoutExpired:
                raise DependencyError(f"crates.io: cargo did not lock and fetch {_names(declared)} "
                                      f"within {TIMEOUT:g} s", language=language, name=name
                                      ) from None
            except OSError as exc:
                raise DependencyError(f"cargo ({CARGO}) does not run: {exc}", language=language,
                                      name=name) from None
            if proc.returncode != 0:
                raise DependencyError(_cargo_error(proc.stderr, root, declared),
                                      language=language, name=name)
            lock_text = (root / "Cargo.lock").read_text()
        return [self._fetched(p, language, name) for p in _locked(lock_text)], lock_text

    @staticmethod
    def _fetched(package: Package, language: str, name: str) -> Fetched:
        """``package``'s ``.crate`` from cargo's download cache, checked by the lock's sha256."""
        for path in sorted((cargo_home() / "registry" / "cache").glob(f"*/{package.file}")):
            data = path.read_bytes()
            if sha256(data) == package.sha256:
                return Fetched(package, data)
        raise DependencyError(
            f"crate {package.name} {package.version}: no {package.file} with the lock's sha256 "
            f"{package.sha256[:12]}… in {cargo_home() / 'registry' / 'cache'} after cargo fetched "
            "it (a source replacement to a local directory in cargo's configuration keeps no "
            ".crate files)", language=language, name=name)


def _locked(lock_text: str) -> list[Package]:
    """The registry packages of a Cargo.lock (the cell's own package has no source)."""
    out = []
    for entry in tomllib.loads(lock_text).get("package", []):
        source = entry.get("source")
        if source is None:
            continue
        crate, version = entry["name"], entry["version"]
        if not source.startswith(("registry+", "sparse+")) or "checksum" not in entry:
            raise DependencyError(f"crate {crate} {version}: locked from {source}, not a "
                                  "registry with checksums")
        checksum = entry["checksum"]
        if not re.fullmatch(r"[0-9a-f]{64}", checksum):
            raise DependencyError(f"crate {crate} {version}: checksum {checksum!r} is not a sha256")
        out.append(Package(crate, version, f"{crate}-{version}.crate", checksum, checksum))
    return out


def _names(declared: tuple[str, ...]) -> str:
    return ", ".join(line.partition(" = ")[0] for line in declared) or "the glue's crates"


def _cargo_error(stderr: str, root: Path, declared: tuple[str, ...]) -> str:
    """cargo's error (from its first ``error:`` line), its temporary package called the cell."""
    at = stderr.find("error:")
    text = (stderr[at:] if at != -1 else stderr).strip()
    text = text.replace(str(root / "Cargo.toml"), "the cell's front matter")
    text = re.sub(rf"`fnb_cell v0\.1\.0 \({re.escape(str(root))}\)`", "the cell", text)
    text = text.replace(str(root), "<the cell>")
    return f"crates.io: cargo could not lock {_names(declared)}:\n{text[-4000:]}"


def resolver() -> CratesResolver:
    return CratesResolver()


__all__ = ["CratesResolver", "cargo_home", "resolver"]
