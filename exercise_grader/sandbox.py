"""The process that runs a submission's code: started by the grader, never imported by it.

``python -m exercise_grader.sandbox CMD_FD REPLY_FD WORKDIR PROTECTED READABLE`` reads one JSON
command per line from CMD_FD and writes one JSON reply per line to REPLY_FD:

- ``{"id": ..., "op": "cell", "code": ...}`` runs a notebook cell in an IPython shell (so magics
  work) and replies ``{"id", "status": "ok" | "error", "ename", "evalue"}``;
- ``{"id": ..., "op": "test", "source": ..., "name": ..., "args": [...]}`` defines one test
  function, calls it with the learner's objects named by ``args`` and replies
  ``{"id", "status": "pass" | "fail" | "missing", "ename", "evalue", "line"}``.

The grader, not this process, turns replies into scores. Before any learner code runs, an audit
hook (PEP 578; it cannot be removed) refuses, with a message saying why: reading the protected
paths (the master notebooks, the repository's history), anything outside the workdir, the Python
installation, the book's packages and the system's folders, or other processes' /proc entries,
writing outside the submission's temporary folder, starting processes, sending signals, tracing
or profiling hooks, native libraries, sockets, and, while a test runs, learner code reaching the
test's frames. Each refusal is also reported to the grader. Time, memory and output limits are
set by the grader (resource limits, timeouts, pipes it reads with a cap).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

MAX_TEXT = 2000  # characters of an error message sent back

# Modules imported before the audit hook is installed: they load native libraries (ctypes),
# which the hook refuses afterwards.
PRELOAD = ("numpy", "torch", "torchvision", "matplotlib", "matplotlib.pyplot", "IPython")

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_BLOCKED = {
    "subprocess.Popen": "starting processes",
    "os.system": "starting processes",
    "os.exec": "starting processes",
    "os.fork": "starting processes",
    "os.forkpty": "starting processes",
    "os.posix_spawn": "starting processes",
    "os.spawn": "starting processes",
    "os.startfile": "starting processes",
    "pty.spawn": "starting processes",
    "os.kill": "sending signals",
    "os.killpg": "sending signals",
    "signal.pthread_kill": "sending signals",
    "sys.settrace": "tracing hooks",
    "sys.setprofile": "profiling hooks",
    "threading.settrace": "tracing hooks",
    "ctypes.dlopen": "loading native libraries",
    "ctypes.dlsym": "loading native libraries",
    "ctypes.cdata": "raw memory access",
    "ctypes.addressof": "raw memory access",
    "ctypes.string_at": "raw memory access",
    "ctypes.wstring_at": "raw memory access",
    "ctypes.call_function": "calling native code",
    "socket.connect": "network access",
    "socket.bind": "network access",
}
_PATH_WRITES = {
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.replace",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.link",
    "os.symlink",
    "os.mkdir",
    "os.utime",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}


def _book_packages() -> list:
    """The book's library, imported (with torch) before the hook: its code is trusted like the
    installed packages', wherever the repository lies."""
    try:
        import resnet_lib
    except ImportError:
        return []
    return [resnet_lib]


class SandboxViolation(PermissionError):
    """Raised inside the sandbox when learner code does something grading does not allow."""


_FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}
_GC_INSPECTION = {"gc.get_referrers", "gc.get_referents", "gc.get_objects"}


def install_audit_hook(
    workdir: str, protected: list[str], report_fd: int, readable: list[str] | None = None
) -> dict:
    """Refuse what a submission must not do; tell the grader about each refusal.

    ``readable``, if given, lists the only places Python code may open or list besides the
    workdir (the Python installation, the book's packages, the system's folders): a copy of a
    master notebook anywhere else is out of reach of ``open`` too. Every comparison is between
    resolved paths (``os.path.realpath``), so a path through a link is judged by where it leads.

    Returns the hook's state: the runner sets ``state["test_codes"]`` to the code objects of the
    test it is running, and while that is non-empty, learner code may not reach the test's frames
    (to read its expected values) through ``sys._getframe``, tracebacks, generators or ``gc``.
    """
    workdir = os.path.realpath(workdir)
    protected = [os.path.realpath(p) for p in protected if p]
    allowed_writes = (workdir, "/dev/null")
    own_proc = (f"/proc/{os.getpid()}", "/proc/self", "/proc/thread-self")
    allowed_reads = None
    if readable is not None:
        allowed_reads = tuple({workdir, *own_proc, *(os.path.realpath(p) for p in readable)})
    trusted_code = tuple(
        {os.path.realpath(p) + "/" for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        | {os.path.dirname(os.path.realpath(__file__)) + "/"}
        | {os.path.dirname(os.path.realpath(m.__file__)) + "/" for m in _book_packages()}
    )
    real_names: dict[str, str] = {}  # code file name -> resolved, looked up once each
    import inspect as _inspect
    import traceback as _traceback

    # Frames to look through: this module's (the hook itself) and the modules whose job is to
    # give frames to their caller.
    transparent = {__file__, _inspect.__file__, _traceback.__file__}
    state: dict = {"busy": False, "test_codes": frozenset()}

    def resolve(path) -> str | None:
        if isinstance(path, int):
            return None
        try:
            return os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None

    def inside(path: str, roots) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def refuse(what: str, detail: str) -> None:
        message = f"grading sandbox: {what} is not allowed ({detail})"
        try:
            os.write(report_fd, (json.dumps({"violation": what, "detail": detail}) + "\n").encode())
        except OSError:
            pass
        raise SandboxViolation(message)

    def learner_is_asking() -> bool:
        """While a test runs: did the learner's code itself ask (directly, or through inspect or
        traceback, which hand frames back to their caller)? A library asking for its own
        purposes (torch, logging, typing) is not the learner reaching into the test."""
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if code in state["test_codes"]:
                return False
            name = code.co_filename
            if name not in transparent:
                if name.startswith("<"):  # <frozen ...> is the interpreter's; <ipython-...> not
                    return not name.startswith("<frozen ")
                real = real_names.get(name)
                if real is None:
                    real = real_names[name] = os.path.realpath(name)
                return not real.startswith(trusted_code)
            frame = frame.f_back
        return False

    def check(event: str, args: tuple) -> None:
        if event in _BLOCKED:
            refuse(_BLOCKED[event], event)
        if event == "open":
            path, mode, flags = args
            real = resolve(path)
            if real is None:
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if inside(real, protected):
                refuse("reading the grader's test files", real)
            if writing and not inside(real, allowed_writes):
                refuse("writing outside the submission's temporary folder", real)
            if allowed_reads is not None and not inside(real, allowed_reads):
                refuse("reading files outside the submission's folder and the libraries", real)
            if real.startswith("/proc/") and real.split("/")[2].isdigit():
                if not inside(real, own_proc):
                    refuse("reading another process's memory or files", real)
        elif event in _PATH_WRITES:
            for path in args[:2]:
                real = resolve(path) if isinstance(path, (str, bytes, os.PathLike)) else None
                if real is not None and not inside(real, allowed_writes):
                    refuse("changing files outside the submission's temporary folder", real)
        elif event in ("os.listdir", "os.scandir"):
            real = resolve(args[0]) if args and args[0] is not None else None
            if real is not None and inside(real, protected):
                refuse("reading the grader's test files", real)
            if real is not None and allowed_reads is not None and not inside(real, allowed_reads):
                refuse("reading files outside the submission's folder and the libraries", real)
        elif state["test_codes"]:
            inspecting = (
                event in ("sys._getframe", "sys._current_frames")
                or event in _GC_INSPECTION
                or (event == "object.__getattr__" and args[1] in _FRAME_ATTRIBUTES)
            )
            if inspecting and learner_is_asking():
                refuse("inspecting the test's frames or objects while it runs", event)

    def hook(event: str, args: tuple) -> None:
        if state["busy"]:
            return
        state["busy"] = True
        try:
            check(event, args)
        finally:
            state["busy"] = False

    sys.addaudithook(hook)
    return state


def _code_objects(code) -> frozenset:
    """A compiled test and every function, lambda or comprehension nested in it."""
    found, todo = set(), [code]
    while todo:
        c = todo.pop()
        found.add(c)
        todo.extend(k for k in c.co_consts if isinstance(k, type(code)))
    return frozenset(found)


def _short(err: BaseException) -> tuple[str, str]:
    return type(err).__name__, str(err)[:MAX_TEXT]


def _test_line(err: BaseException, filename: str) -> str:
    """The source line of the test where it failed (e.g. the assert), for the feedback."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == filename:
            return (frame.line or "")[:MAX_TEXT]
    return ""


def main(
    cmd_fd: int, reply_fd: int, workdir: str, protected: list[str], readable: list[str] | None
) -> None:
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module is the submission's problem
            pass
    import matplotlib

    matplotlib.use("Agg")
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.xmode = "Plain"
    shell = InteractiveShell.instance(config=config)

    commands = os.fdopen(cmd_fd, "r", encoding="utf-8")
    # Held as locals before any learner code runs: patching builtins, json or os later does not
    # reach the runner. (Whatever a submission patches to fool it, the canaries catch.)
    write, dumps, loads, _exec, _compile = os.write, json.dumps, json.loads, exec, compile
    base_exception = BaseException
    run_cell, user_ns = shell.run_cell, shell.user_ns

    def reply(message: dict) -> None:
        write(reply_fd, (dumps(message) + "\n").encode())

    guard = install_audit_hook(workdir, protected, reply_fd, readable)
    reply({"id": "ready"})

    for line in commands:
        command = loads(line)
        if command["op"] == "cell":
            result = run_cell(command["code"], store_history=False)
            err = result.error_before_exec or result.error_in_exec
            if err is None:
                reply({"id": command["id"], "status": "ok"})
            else:
                ename, evalue = _short(err)
                reply({"id": command["id"], "status": "error", "ename": ename, "evalue": evalue})
        elif command["op"] == "test":
            filename = f"<test {command['name']}>"
            namespace: dict = {"__name__": "grading_test"}
            missing = [a for a in command["args"] if a not in user_ns]
            if missing:
                reply({"id": command["id"], "status": "missing", "names": missing})
                continue
            try:
                module = _compile(command["source"], filename, "exec")
                _exec(module, namespace)
                guard["test_codes"] = _code_objects(module)
                try:
                    namespace[command["name"]](*(user_ns[a] for a in command["args"]))
                finally:
                    guard["test_codes"] = frozenset()
            except base_exception as err:  # noqa: BLE001 - SystemExit etc. fail the test, no more
                ename, evalue = _short(err)
                reply(
                    {
                        "id": command["id"],
                        "status": "fail",
                        "ename": ename,
                        "evalue": evalue,
                        "line": _test_line(err, filename),
                    }
                )
            else:
                reply({"id": command["id"], "status": "pass"})


if __name__ == "__main__":
    main(
        int(sys.argv[1]),
        int(sys.argv[2]),
        sys.argv[3],
        json.loads(sys.argv[4]),
        json.loads(sys.argv[5]),
    )
