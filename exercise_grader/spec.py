"""What an exercise is, as the grader sees it: read from its master notebook with otter's own code.

``otter assign`` turns a master notebook (``solutions/exNN_*.ipynb``) into a learner notebook and
an autograder notebook whose metadata holds every test file, public and hidden. We parse those
test files with otter's ``ExceptionTestFile`` (so points are split exactly as ``grader.check``
splits them) and keep, per test, the source of its function and the names of its arguments.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SOLUTIONS_ENV = "RESNET_BOOK_SOLUTIONS"
#: The first line of the setup cell that `build` puts first in every learner notebook.
SETUP_MARKER = "# Setup for the in-notebook checks"


class SpecError(Exception):
    """A master notebook is missing or cannot be read; the message says what to do."""


@dataclass(frozen=True)
class TestSpec:
    question: str
    name: str  # otter's test case name, e.g. "q1 - 2"
    function: str  # the test function's name
    source: str  # the function's source, decorator removed
    args: tuple[str, ...]  # names the learner's notebook must define
    points: float
    hidden: bool


@dataclass(frozen=True)
class QuestionSpec:
    name: str
    tests: tuple[TestSpec, ...]
    all_or_nothing: bool = False

    @property
    def points(self) -> float:
        return float(sum(t.points for t in self.tests))


@dataclass(frozen=True)
class ExerciseSpec:
    name: str
    master: Path
    questions: tuple[QuestionSpec, ...]
    public_tests: dict  # question -> otter test file with public tests only (learner notebook)
    student_cells: tuple[dict, ...]  # learner notebook cells as otter generated them
    solution_cells: tuple[str, ...]  # code cells of the master with the tests taken out

    @property
    def points(self) -> float:
        return float(sum(q.points for q in self.questions))

    def question(self, name: str) -> QuestionSpec:
        return next(q for q in self.questions if q.name == name)


def default_solutions_dir() -> Path:
    """solutions/ of the repository this grader lives in, or $RESNET_BOOK_SOLUTIONS."""
    if os.environ.get(SOLUTIONS_ENV):
        return Path(os.environ[SOLUTIONS_ENV])
    return Path(__file__).resolve().parents[1] / "solutions"


def masters(solutions_dir: Path | None = None) -> dict[str, Path]:
    """Exercise name -> master notebook, for every ``ex*.ipynb`` in the solutions folder."""
    folder = Path(solutions_dir or default_solutions_dir())
    if not folder.is_dir():
        raise SpecError(
            f"no master notebooks at {folder}: the hidden tests live in the repository's "
            f"solutions/ folder. Run from a clone of the book's repository, or pass "
            f"--solutions DIR (or set {SOLUTIONS_ENV})."
        )
    found = {p.stem: p for p in sorted(folder.glob("ex*.ipynb"))}
    if not found:
        raise SpecError(f"{folder} holds no ex*.ipynb master notebooks")
    return found


def _function_sources(source: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
            if node.args.vararg or node.args.kwarg or node.args.kwonlyargs:
                raise SpecError(f"test {node.name} must take plain positional parameters")
            out[node.name] = (text, tuple(a.arg for a in node.args.args))
    return out


def parse_test_file(question: str, source: str) -> QuestionSpec:
    """One otter exception-format test file -> the question's tests, with otter's points."""
    from otter.test_files.exception_test import ExceptionTestFile

    test_file = ExceptionTestFile.from_string(source, path=f"{question}.py")
    functions = _function_sources(source)
    tests = []
    for case in test_file.test_cases:
        func = case.body.test_func.__name__
        text, args = functions[func]
        tests.append(
            TestSpec(question, case.name, func, text, args, float(case.points), case.hidden)
        )
    return QuestionSpec(question, tuple(tests), bool(test_file.all_or_nothing))


def _run_otter_assign(master: Path, out: Path) -> None:
    from otter.assign import main as otter_assign

    # otter logs every step and chdirs; keep the grader's terminal for the grader's own output.
    logging.getLogger("otter").setLevel(logging.WARNING)
    cwd = os.getcwd()
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            otter_assign(str(master), str(out), no_run_tests=True)
    except Exception as err:  # noqa: BLE001 - surface otter's message with the file name
        raise SpecError(f"otter assign failed on {master}: {err}\n{sink.getvalue()}") from err
    finally:
        os.chdir(cwd)


@cache
def load_exercise(master: Path) -> ExerciseSpec:
    """Run ``otter assign`` on a master notebook and read the exercise from what it produced."""
    master = Path(master).resolve()
    if not master.is_file():
        raise SpecError(f"master notebook {master} not found")
    with tempfile.TemporaryDirectory(prefix="resnet-book-assign-") as tmp:
        _run_otter_assign(master, Path(tmp))
        auto = json.loads((Path(tmp) / "autograder" / master.name).read_text())
        student = json.loads((Path(tmp) / "student" / master.name).read_text())
    name = auto["metadata"]["otter"]["assignment_name"]
    if name != master.stem:
        raise SpecError(f"{master}: ASSIGNMENT CONFIG name {name!r} must equal the file name")
    tests = auto["metadata"]["otter"]["tests"]
    questions = tuple(parse_test_file(q, src) for q, src in tests.items())
    for q in questions:
        if not any(t.hidden for t in q.tests) or not any(not t.hidden for t in q.tests):
            raise SpecError(f"{master.name}: {q.name} needs public and hidden tests")
    solution_cells = tuple("".join(c["source"]) for c in auto["cells"] if c["cell_type"] == "code")
    return ExerciseSpec(
        name=name,
        master=master,
        questions=questions,
        public_tests=dict(student["metadata"]["otter"]["tests"]),
        student_cells=tuple(student["cells"]),
        solution_cells=solution_cells,
    )
