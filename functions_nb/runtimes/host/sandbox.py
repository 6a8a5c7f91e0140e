"""One sandbox-profile builder for every process that runs or builds user code: bubblewrap
(namespaces, a file system of only what is bound in), seccomp (no new processes), rlimits
(``prlimit``) and a clean environment. A layer that does not work on this machine is left out
and reported (``func doctor``), never faked."""

from __future__ import annotations

import errno
import functools
import os
import platform
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: (AUDIT_ARCH, execve, execveat, clone, clone3, fork, vfork) per machine (-1: no such call).
SYSCALLS = {"x86_64": (0xC000003E, 59, 322, 56, 435, 57, 58),
            "aarch64": (0xC00000B7, 221, 281, 220, 435, -1, -1)}
#: The seccomp(2) syscall number per machine (for a host that installs the filter itself).
SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}
CLONE_THREAD = 0x10000
NOBODY = 65534


@dataclass
class SandboxProfile:
    """What a sandboxed process may see and do.

    ``binds``: paths bound read-only (a path, or ``(source, destination)``); ``writable``:
    the same, bound read-write (a build directory, a compiler's cache); ``root_ro``:
    instead of ``binds`` alone, the whole file system read-only (``hide`` then lists folders
    replaced by empty ones); ``tmpfs``: writable private folders ``{path: size in MB}``;
    ``env``: the whole environment; ``rlimits``: ``prlimit`` options (``{"cpu": 3600,
    "as": bytes, "nofile": 256, "fsize": bytes, "nproc": 64, "core": 0}``, see
    :func:`rlimits`); ``no_processes``: a seccomp filter refuses fork/vfork/clone of processes
    (threads still work); ``deny_exec`` (with a filter the program installs itself, after its
    own exec) also refuses execve; ``proc``: True mounts a /proc of the sandbox's own
    processes, a path makes a /proc holding only ``self/exe`` -> that path (for a program that
    finds its install through it), False none;
    ``devices``: None for bubblewrap's /dev (null, zero, full, random, urandom, tty), else
    only these nodes (``("null",)``: nothing endless to read).
    """

    name: str
    binds: list[str | tuple[str, str]] = field(default_factory=list)
    writable: list[str | tuple[str, str]] = field(default_factory=list)
    root_ro: bool = False
    hide: list[str] = field(default_factory=list)
    symlinks: list[tuple[str, str]] = field(default_factory=list)
    tmpfs: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=lambda: {"LC_ALL": "C.UTF-8"})
    rlimits: dict[str, int] = field(default_factory=dict)
    no_processes: bool = True
    nobody: bool = True
    chdir: str = "/"
    proc: bool | str = True
    devices: tuple[str, ...] | None = None

    def bwrap_args(self, userns: bool) -> list[str]:
        """bubblewrap's arguments (up to and including ``--``)."""
        args = [shutil.which("bwrap") or "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
                "--die-with-parent", "--new-session", "--clearenv"]
        if userns:
            args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
                     "--disable-userns", "--cap-drop", "ALL"] if self.nobody else ["--unshare-user"]
        if self.root_ro:
            args += ["--ro-bind", "/", "/"]
        for target, link in self.symlinks:
            args += ["--symlink", target, link]
        # empty folders first, then what is bound in: a bind below a private /tmp (a checkout
        # or a virtualenv under /tmp) lands on top of it instead of being hidden by it
        for hidden in self.hide:
            args += ["--tmpfs", hidden]
        for path, size_mb in self.tmpfs.items():
            args += ["--size", str(size_mb << 20), "--tmpfs", path]
        if self.proc is True:
            args += ["--proc", "/proc"]
        elif self.proc:
            args += ["--tmpfs", "/proc", "--symlink", self.proc, "/proc/self/exe"]
        if self.devices is None:
            args += ["--dev", "/dev"]
        else:
            args += ["--tmpfs", "/dev"]
            for node in self.devices:
                args += ["--dev-bind", f"/dev/{node}", f"/dev/{node}"]
        for option, binds in (("--ro-bind", self.binds), ("--bind", self.writable)):
            for bind in binds:
                source, dest = bind if isinstance(bind, tuple) else (os.path.realpath(bind), bind)
                args += [option, source, dest]
        for key, value in self.env.items():
            args += ["--setenv", key, value]
        return [*args, "--chdir", self.chdir]

    def prlimit_args(self) -> list[str]:
        if not self.rlimits or not shutil.which("prlimit"):
            return []
        return ["prlimit", *(f"--{key}={value}" for key, value in self.rlimits.items()), "--"]


def rlimits(*, cpu_s: int, memory_mb: int, fsize_mb: int, nproc: int | None = None,
            nofile: int = 1024, memory: str = "as") -> dict[str, int]:
    """The usual rlimit set for a :class:`SandboxProfile`: CPU seconds, memory (``memory``:
    "as", the address space; "data", writable private memory, for programs such as V8 that
    reserve far more address space than they use), the largest file it may write, processes
    (``nproc``; the kernel exempts root), descriptors, no core dumps."""
    limits = {"cpu": cpu_s, memory: memory_mb << 20, "fsize": fsize_mb << 20, "nofile": nofile,
              "core": 0}
    if nproc is not None:
        limits["nproc"] = nproc
    return limits


class Launch:
    """A command ready for ``subprocess.Popen``: ``argv``, ``env``, the descriptors to pass
    (a seccomp program for bubblewrap); ``close()`` after the process started."""

    def __init__(self, argv: list[str], env: dict[str, str], fds: tuple[int, ...] = ()) -> None:
        self.argv, self.env, self.fds = argv, env, fds

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


def launch(profile: SandboxProfile, argv: list[str], *, sandbox: bool | None = None,
           layers: dict[str, Any] | None = None) -> Launch:
    """``argv`` inside every layer of ``profile`` that works here. ``sandbox=False`` leaves
    bubblewrap out (rlimits and the clean environment stay); ``True`` requires it.
    ``layers``: what another profile's :func:`probe` found (for profiles made per use, such
    as one per build directory); default: probe ``profile`` itself."""
    if sandbox is False:
        layers = {"bwrap": False}
    elif layers is None:
        layers = probe(profile)
    if sandbox and not layers["bwrap"]:
        raise OSError(f"bubblewrap does not work here: {layers.get('detail', '')}")
    prefix = profile.prlimit_args()
    if not layers["bwrap"]:
        return Launch([*prefix, *argv], dict(profile.env))
    args = profile.bwrap_args(layers["userns"])
    fds: tuple[int, ...] = ()
    program = seccomp_program(deny_exec=False) if profile.no_processes else None
    if program is not None:
        fd = os.memfd_create("fnb-seccomp", 0)
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
        fds = (fd,)
        args += ["--seccomp", str(fd)]
    return Launch([*prefix, *args, "--", *argv], dict(profile.env), fds)


_probed: dict[str, dict[str, Any]] = {}


def _probe(profile: SandboxProfile, check: tuple[str, ...]) -> dict[str, Any]:
    layers: dict[str, Any] = {"bwrap": False, "userns": False, "detail": "",
                              "seccomp": seccomp_program(deny_exec=False) is not None,
                              "prlimit": bool(profile.rlimits and shutil.which("prlimit"))}
    if os.environ.get("FUNCTIONS_NB_SANDBOX", "1") == "0":
        layers["detail"] = "bubblewrap disabled by FUNCTIONS_NB_SANDBOX=0"
        return layers
    if shutil.which("bwrap") is None:
        layers["detail"] = "bubblewrap not installed (apt-get install -y bubblewrap)"
        return layers
    for userns in (True, False):
        try:
            proc = subprocess.run([*profile.bwrap_args(userns), "--", *check], capture_output=True,
                                  text=True, timeout=60, env={}, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            layers["detail"] = f"bubblewrap failed: {exc}"
            continue
        if proc.returncode == 0:
            layers.update(bwrap=True, userns=userns, nobody=userns and profile.nobody, detail="")
            return layers
        layers["detail"] = ("bubblewrap cannot create namespaces here: "
                            + (proc.stderr.strip().splitlines() or ["failed"])[-1][:200])
    return layers


def probe(profile: SandboxProfile, check: list[str] | None = None) -> dict[str, Any]:
    """Which layers hold for ``profile`` on this machine (probed once per profile name):
    ``bwrap`` (no network; own pid/ipc/uts namespaces; only the bound files), ``userns``
    (runs as nobody), ``seccomp``, ``prlimit``; ``detail`` says why a layer is missing.
    ``check`` is a command that must succeed inside (default: ``true``-like)."""
    layers = _probed.get(profile.name)
    if layers is None:
        layers = _probed[profile.name] = _probe(profile, tuple(check or _default_check(profile)))
    return layers


def _default_check(profile: SandboxProfile) -> list[str]:
    if profile.root_ro:
        return ["/bin/sh", "-c", "exit 0"]
    return [str(profile.binds[0] if isinstance(profile.binds[0], str) else profile.binds[0][1]),
            "--version"] if profile.binds else ["/bin/true"]


def isolation(kind: str, layers: dict[str, Any], own: tuple[str, ...] = (),
              limits: tuple[str, ...] = ()) -> Any:
    """What ``func doctor`` shows for a runtime whose host runs under this builder's layers:
    the layers that hold (``own`` first: the runtime's in-process measures), the missing ones."""
    from ..base import Isolation

    held = list(own)
    if layers.get("bwrap"):
        held.append("bubblewrap: no network, own pid/ipc/uts namespaces, only its own files"
                    + (", runs as nobody" if layers.get("nobody") else ""))
        if layers.get("seccomp"):
            held.append("seccomp: no new processes")
    if layers.get("prlimit"):
        held.append("rlimits")
    held.append("clean environment")
    missing = () if layers.get("bwrap") else (
        f"bubblewrap ({layers.get('detail') or 'unavailable'}): the host can read the file "
        "system and use the network",)
    return Isolation(kind, tuple(held), missing, limits)


def seccomp_program(*, deny_exec: bool) -> bytes | None:
    """A classic-BPF seccomp program (None on an unknown machine): fork, vfork and clone
    without CLONE_THREAD fail with EPERM, clone3 with ENOSYS (glibc falls back to clone for
    threads); with ``deny_exec`` execve/execveat fail too; other ABIs (x32) fail."""
    nums = SYSCALLS.get(platform.machine())
    if nums is None:
        return None
    arch, execve, execveat, clone, clone3, fork, vfork = nums
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    denied = [n for n in ((execve, execveat) if deny_exec else ()) + (fork, vfork) if n >= 0]
    # (code, jump-if-true label, jump-if-false label, k); labels resolve to relative offsets
    code: list[tuple[int, str | None, str | None, int]] = [
        (ld, None, None, 4), (jeq, None, "eperm", arch), (ld, None, None, 0),
        (jge, "eperm", None, 0x40000000),
        *((jeq, "eperm", None, nr) for nr in denied),
        (jeq, "enosys", None, clone3), (jeq, "clone", None, clone),
        (ret, None, None, allow)]
    n = len(code)
    labels = {"eperm": n, "enosys": n + 1, "clone": n + 2, "process": n + 5}
    code += [(ret, None, None, eperm), (ret, None, None, enosys),
             (ld, None, None, 16), (jset, None, "process", CLONE_THREAD), (ret, None, None, allow),
             (ret, None, None, eperm)]
    out = []
    for i, (op, jt, jf, k) in enumerate(code):
        out.append(struct.pack("<HBBI", op, labels[jt] - i - 1 if jt else 0,
                               labels[jf] - i - 1 if jf else 0, k))
    return b"".join(out)


@functools.cache
def library_binds(*binaries: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Read-only binds for ``binaries`` and the shared libraries they load (as ``ldd`` lists
    them, each also at its real path), and the top-level symlinks (/lib -> usr/lib) to make."""
    links = [(os.readlink(f"/{name}"), f"/{name}") for name in ("bin", "lib", "lib32", "lib64", "sbin")
             if os.path.islink(f"/{name}")]
    def unlinked(path: str) -> str:  # /bin/sh -> /usr/bin/sh where /bin is a link made here
        for target, link in links:
            if path.startswith(f"{link}/"):
                return os.path.normpath(os.path.join("/", target, path[len(link) + 1:]))
        return path

    binds: dict[str, str] = {}
    for binary in binaries:
        if not os.path.exists(binary):
            continue
        real = os.path.realpath(binary)
        binds[unlinked(binary)] = real
        binds[real] = real
        try:
            out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30,
                                 check=False).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for lib in re.findall(r"(/\S+)\s+\(0x", out):
            real = os.path.realpath(lib)
            binds[real] = real
            binds[unlinked(lib)] = real  # /lib64/ld-linux... -> /usr/lib64/... (itself a link)
    return [(src, dest) for dest, src in sorted(binds.items())], links


def readable(*paths: str | Path) -> list[tuple[str, str]]:
    """Read-only binds of existing paths at their own place (resolved)."""
    out = []
    for p in paths:
        if os.path.exists(p):
            out.append((os.path.realpath(p), str(p)))
    return out
