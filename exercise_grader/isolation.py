"""Isolation by the operating system: each submission runs in a bubblewrap sandbox.

The audit hook in :mod:`exercise_grader.sandbox` refuses what Python code asks for, but native
code does not ask (``numpy.fromfile`` reads any file without an audit event), so on its own it
cannot keep a submission from finding a copy of a master notebook somewhere on the machine. On
Linux the grader therefore starts each sandbox inside bubblewrap (``bwrap``), the unprivileged
sandbox behind Flatpak, packaged by every major distribution. It builds the submission a new, empty root file system from user namespaces,
without a setuid helper or a daemon, and mounts into it only what grading needs:

- read-only: the system's programs and libraries (``/usr`` and the links into it), a few files of
  ``/etc`` that the dynamic linker and the C library read, the Python installation, and the book's
  two packages (``resnet_lib`` and ``exercise_grader``, wherever they are installed);
- writable: the submission's own temporary folder, and nothing else;
- not at all: the rest of the machine, so also ``solutions/``, the repository's history, any other
  copy of a master, other submissions, and the home folder.

It also gets its own process, IPC, UTS and network namespaces (no network, not even the host's
loopback), drops every capability, and dies with the grader (``--die-with-parent``). We chose
bubblewrap over calling ``unshare``/``mount`` ourselves because setting up a root file system
correctly (bind mounts in the right order, ``/proc`` for the new PID namespace, ``/dev``) is what
it exists for, and over containers (Docker, podman) because those need a daemon or an image.

Where bubblewrap cannot run (macOS, Windows' WSL without it, a container without user
namespaces) grading falls back to the audit hook alone and the report says so;
``--isolation require`` makes the grader refuse to grade instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "require", "off")

#: Files of /etc that the dynamic linker, the C library and Python read; mounted when present.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
)
#: Top-level system folders: mounted read-only (or, where they are links into /usr, linked).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class IsolationUnavailable(RuntimeError):
    """Isolation was required (``--isolation require``) but cannot be had on this machine."""


@dataclass(frozen=True)
class Isolation:
    """How submissions are isolated on this machine: ``bwrap`` is the program's path, or None
    when grading relies on the audit hook alone (``reason`` says why)."""

    bwrap: str | None
    reason: str = ""

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def describe(self) -> str:
        if self.isolated:
            return "bubblewrap (file system, processes and network isolated by the kernel)"
        return f"audit hook only, not isolated by the operating system: {self.reason}"

    def wrap(self, command: list[str], workdir: Path, read_only: list[Path]) -> list[str]:
        """``command`` run inside the sandbox, in ``workdir`` (its only writable folder), seeing
        the system's libraries, ``read_only`` and nothing else of the machine."""
        if not self.isolated:
            return command
        return [self.bwrap, *sandbox_arguments(workdir, read_only), "--", *command]


def sandbox_arguments(workdir: Path, read_only: list[Path]) -> list[str]:
    """bwrap's options for one submission (see the module docstring)."""
    args = [
        "--unshare-all",  # user (where possible), IPC, PID, network, UTS and cgroup namespaces
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for name in ETC_FILES:
        args += ["--ro-bind-try", name, name]
    present = [p for p in read_only if p and os.path.exists(p)]
    for real in _outermost({os.path.realpath(p) for p in present}):
        args += ["--ro-bind", real, real]
    workdir_real = os.path.realpath(workdir)
    args += ["--bind", workdir_real, workdir_real]
    # a path reached through a link (a linked virtual environment, macOS-style /tmp): the same
    # link inside, so that the paths the interpreter and its modules know still lead somewhere
    for link in sorted(
        {os.path.abspath(p) for p in present} - {os.path.realpath(p) for p in present}
    ):
        args += ["--symlink", os.path.realpath(link), link]
    return [*args, "--chdir", workdir_real]


def _outermost(paths: set[str]) -> list[str]:
    """``paths`` without those inside another one of them (mounted with their folder)."""
    out: list[str] = []
    for path in sorted(paths):
        if not any(path.startswith(o.rstrip("/") + "/") for o in out):
            out.append(path)
    return out


def python_paths() -> list[Path]:
    """What a sandboxed interpreter must read: its installation (as reached and as resolved),
    its virtual environment, and the book's two packages wherever they are installed (for an
    editable install, their folders in the repository, and not the rest of it)."""
    import importlib.util

    paths = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths.add(Path(sys.executable).parent.parent)
    for name in ("resnet_lib", "exercise_grader"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            paths.update(Path(p) for p in spec.submodule_search_locations)
    return sorted(paths)


@functools.cache
def _probe(bwrap: str) -> str:
    """'' if bwrap can build a sandbox here, else what went wrong."""
    command = [bwrap, *sandbox_arguments(Path("/tmp"), []), "--", "/bin/true"]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return "" if run.returncode == 0 else (run.stderr.strip() or f"exit status {run.returncode}")


def detect(mode: str = "auto") -> Isolation:
    """The isolation to grade with: bubblewrap where it works, else the audit hook alone
    (``mode="auto"``); ``"require"`` raises :class:`IsolationUnavailable` instead of falling
    back; ``"off"`` uses the audit hook alone."""
    if mode not in MODES:
        raise ValueError(f"isolation must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return Isolation(None, "turned off (--isolation off)")
    bwrap = shutil.which("bwrap")
    if not sys.platform.startswith("linux"):
        reason = f"bubblewrap isolates on Linux only, and this is {sys.platform}"
    elif bwrap is None:
        reason = (
            "bubblewrap is not installed (Debian and Ubuntu: `sudo apt install bubblewrap`; "
            "Fedora: `sudo dnf install bubblewrap`)"
        )
    else:
        problem = _probe(bwrap)
        reason = (
            f"bubblewrap cannot create its namespaces here ({problem[:300]})" if problem else ""
        )
    if not reason:
        return Isolation(bwrap)
    if mode == "require":
        raise IsolationUnavailable(
            f"isolation is required (--isolation require) but {reason}. Grade on Linux with "
            "bubblewrap installed, or run without --isolation require to grade with the audit "
            "hook alone."
        )
    return Isolation(None, reason)
