"""The grader's side of the sandbox: start it with limits, send commands, enforce timeouts, kill it.

One :class:`Sandbox` is one Python process (its own session, so its whole process group can be
killed) in the submission's temporary folder, with resource limits on address space, CPU time,
file size and core dumps. Its stdout and stderr are drained by threads that keep only the first
``output_limit`` bytes, so enormous output costs time, never memory.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .isolation import Isolation, detect, python_paths

GiB = 1024**3
WINDOWS = (
    "grading runs submissions with the process and resource controls of Linux and macOS; on "
    "Windows, grade in WSL (Windows Subsystem for Linux), where bubblewrap also isolates them"
)
#: Folders of the system that a submission's Python code may read (the audit hook's list).
SYSTEM_READABLE = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/dev",
    "/sys",
    "/proc",  # another process's entries stay refused (sandbox.py)
    "/System",
    "/Library",
    "/private/etc",
    "/private/var/db/timezone",
)


def readable_paths() -> list[Path]:
    """Where a submission's Python code may open or list files, besides its own folder: the
    system's folders, the Python installation and the book's packages. A master notebook copied
    anywhere else (a backup, another clone, a private solutions folder) is out of reach."""
    return [Path(p) for p in SYSTEM_READABLE if os.path.exists(p)] + python_paths()


@dataclass
class Limits:
    """Per-submission limits. Defaults suit the exercises on a 2-core laptop."""

    cell_timeout: float = 30.0  # seconds one cell (or one test) may run
    wall_timeout: float = 120.0  # seconds for the whole submission, restarts included
    memory: int = 8 * GiB  # address space of the sandbox (RLIMIT_AS)
    output_limit: int = 1_000_000  # bytes of stdout+stderr kept; the rest is counted, dropped
    file_size: int = 100 * 1024**2  # largest file the submission may write (RLIMIT_FSIZE)
    threads: int = 1  # torch/OpenMP threads in the sandbox
    startup_timeout: float = 60.0  # seconds to import torch and be ready


class SandboxDied(Exception):
    """The sandbox process ended (os._exit, a crash, a signal) or broke the protocol."""


class SandboxTimeout(Exception):
    """A command ran past its timeout; the sandbox has been killed."""


@dataclass
class _Output:
    limit: int
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def drain(self, stream) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self.lock:
                self.total += len(chunk)
                room = self.limit - len(self.kept)
                if room > 0:
                    self.kept += chunk[:room]


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant still around."""
    try:
        import psutil

        try:
            procs = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            procs = []
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
    except ImportError:  # psutil comes with ipykernel; without it the group kill still runs
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _parent_death_signal():
    """A function for the child, between fork and exec, that has Linux SIGKILL it when the
    grader's thread that started it ends (the grader killed, or crashed): no sandbox outlives
    its grader. Elsewhere a function that does nothing (the grader still kills the sandbox's
    process group whenever it stops one)."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


class Sandbox:
    """A running sandbox process for one submission."""

    def __init__(
        self,
        workdir: Path,
        protected: list[Path],
        limits: Limits,
        isolation: Isolation | None = None,
    ):
        if sys.platform == "win32":
            raise RuntimeError(WINDOWS)
        import resource

        isolation = isolation if isolation is not None else detect("auto")
        self.workdir = Path(os.path.realpath(workdir))
        self.limits = limits
        self.violations: list[dict] = []
        self.anomalies: list[str] = []
        cmd_read, self._cmd_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(self.workdir / ".matplotlib"),
            "OMP_NUM_THREADS": str(limits.threads),
            "MKL_NUM_THREADS": str(limits.threads),
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "TQDM_DISABLE": "1",
            "LANG": "C.UTF-8",
        }
        args = [
            sys.executable,
            "-m",
            "exercise_grader.sandbox",
            str(cmd_read),
            str(reply_write),
            str(self.workdir),
            json.dumps([str(p) for p in protected]),
            json.dumps([str(p) for p in readable_paths()]),
        ]
        args = isolation.wrap(args, self.workdir, python_paths())
        mem, fsize, cpu = limits.memory, limits.file_size, int(limits.wall_timeout * 2) + 10

        die_with_parent = _parent_death_signal()

        def set_limits() -> None:  # runs in the child between fork and exec
            die_with_parent()
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        self.proc = subprocess.Popen(
            args,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(cmd_read, reply_write),
            start_new_session=True,
            preexec_fn=set_limits,
        )
        os.close(cmd_read)
        os.close(reply_write)
        os.set_blocking(self._cmd_write, False)
        self.output = _Output(limits.output_limit)
        self._drainer = threading.Thread(target=self.output.drain, args=(self.proc.stdout,))
        self._drainer.daemon = True
        self._drainer.start()
        self._buffer = b""
        self._await("ready", limits.startup_timeout)

    # -- protocol ------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxTimeout
            ready, _, _ = select.select([self._reply_read], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self._reply_read, 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise SandboxDied(self._death())
                self._buffer += chunk
            elif self.proc.poll() is not None:
                raise SandboxDied(self._death())
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError
        except ValueError:
            self.anomalies.append("unreadable message on the grading channel")
            return {}
        return message

    def _await(self, request_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._read_message(deadline)
            except SandboxTimeout:
                self.kill()
                raise
            if "violation" in message:
                self.violations.append(message)
                continue
            if message.get("id") == request_id:
                return message
            self.anomalies.append(
                f"unexpected reply on the grading channel (id {str(message.get('id'))[:40]!r})"
            )

    def _death(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "the sandbox closed its grading channel"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the Python process was killed by {name}"
        return f"the Python process exited with status {code} (os._exit or a crash)"

    def request(self, op: str, timeout: float, **fields) -> dict:
        """Send one command and wait for its reply; the id is random so it cannot be guessed."""
        request_id = secrets.token_hex(8)
        data = (json.dumps({"id": request_id, "op": op, **fields}) + "\n").encode()
        self._send(data, time.monotonic() + timeout)
        return self._await(request_id, timeout)

    def _send(self, data: bytes, deadline: float) -> None:
        import select

        view = memoryview(data)
        while view:
            if time.monotonic() > deadline:
                self.kill()
                raise SandboxTimeout
            _, ready, _ = select.select([], [self._cmd_write], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    raise SandboxDied(self._death())
                continue
            try:
                view = view[os.write(self._cmd_write, view[:65536]) :]
            except BlockingIOError:
                continue
            except OSError as err:
                raise SandboxDied(self._death()) from err

    def run_cell(self, code: str, timeout: float) -> dict:
        return self.request("cell", timeout, code=code)

    def run_test(self, source: str, name: str, args: list[str], timeout: float) -> dict:
        return self.request("test", timeout, source=source, name=name, args=args)

    # -- lifetime ------------------------------------------------------------------------------
    def kill(self) -> None:
        kill_tree(self.proc.pid)  # even if it has exited: its group may outlive it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._cmd_write, self._reply_read):
            try:
                os.close(fd)
            except OSError:
                pass
        self._cmd_write = self._reply_read = -1
        self._drainer.join(timeout=5)

    def output_text(self) -> tuple[str, int]:
        with self.output.lock:
            return self.output.kept.decode("utf-8", "replace"), self.output.total
