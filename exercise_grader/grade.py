"""Grade notebooks: run each submission in a sandbox, send it the master's tests, score the replies.

The score of a submission is computed here, in the grader's process, from the replies of the
sandbox to tests the grader sends after the submission's own code has run. A submission never
sees the hidden tests before they run, cannot reach the master notebooks, and cannot fake a
reply without it being noticed: every request carries a fresh random id, a reply to anything
else is an anomaly, and two *canary* tests whose outcome the grader knows (one must pass, one
must fail) are mixed in among the real ones. A submission whose sandbox misreports a canary, or
talks out of turn, is flagged and scores zero.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .isolation import Isolation, detect
from .runner import Limits, Sandbox, SandboxDied, SandboxTimeout
from .spec import SETUP_MARKER, ExerciseSpec, SpecError, TestSpec, load_exercise, masters

MAX_NOTEBOOK_BYTES = 50 * 1024**2
MAX_RESTARTS = 3
_CHECK_CELL = re.compile(r"^\s*(grader\.(check|check_all|export)\(.*\)\s*)+$", re.S)
_CLAIMED_PASS = re.compile(r"^(\w+) results: All test cases passed!", re.M)

# Status of a submission, most serious first.
STATUSES = (
    "invalid",  # not a notebook / malformed: zero
    "unknown-exercise",  # a notebook, but not one of ours: not graded
    "flagged",  # the sandbox misreported or broke the protocol: zero
    "violation",  # tried something the sandbox refuses (reading tests, writing files, ...)
    "crashed",  # the Python process died (os._exit, a crash); restarted without that cell
    "timeout",  # a cell or test ran past its time limit, or the submission past the wall limit
    "errors",  # some cells raised
    "ok",
)


@dataclass
class TestResult:
    test: TestSpec
    status: str  # pass | fail | missing | timeout | crashed | not-run
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class QuestionResult:
    name: str
    possible: float
    tests: list[TestResult]
    all_or_nothing: bool = False

    @property
    def score(self) -> float:
        if self.all_or_nothing:
            return self.possible if all(t.passed for t in self.tests) else 0.0
        return float(sum(t.test.points for t in self.tests if t.passed))


@dataclass
class Result:
    path: Path
    exercise: str | None = None
    status: str = "ok"
    questions: list[QuestionResult] = field(default_factory=list)
    possible: float | None = None
    problems: list[str] = field(default_factory=list)  # what went wrong, for the feedback
    flags: list[str] = field(default_factory=list)  # results that do not add up
    cell_errors: list[str] = field(default_factory=list)
    output_bytes: int = 0
    seconds: float = 0.0
    zeroed: bool = False
    isolation: str = ""  # how the submission's code was isolated (Isolation.describe())

    @property
    def total(self) -> float:
        if self.zeroed:
            return 0.0
        return float(sum(q.score for q in self.questions))

    @property
    def graded(self) -> bool:
        return self.status != "unknown-exercise"

    def worsen(self, status: str, problem: str) -> None:
        if STATUSES.index(status) < STATUSES.index(self.status):
            self.status = status
        self.problems.append(problem)

    def score_of(self, question: str) -> float | None:
        for q in self.questions:
            if q.name == question:
                return 0.0 if self.zeroed else q.score
        return None


# -- reading a submission ---------------------------------------------------------------------
def read_notebook(path: Path):
    """Return a validated nbformat v4 notebook, or raise ValueError saying what is wrong."""
    import nbformat

    if path.suffix != ".ipynb":
        raise ValueError(f"not a notebook: {path.name} (expected a .ipynb file)")
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{size / 1e6:.0f} MB is too large for a notebook (limit 50 MB)")
    try:
        raw = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"not valid notebook JSON ({err}); re-download or re-save it") from err
    if not isinstance(raw, dict) or "cells" not in raw:
        raise ValueError("not a Jupyter notebook (no 'cells'); re-download or re-save it")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - nbformat raises several kinds
        raise ValueError(f"malformed notebook: {str(err).splitlines()[0][:300]}") from err
    return nb


def _assignment_name(nb) -> str | None:
    meta = nb.metadata.get("resnet_book", {})
    if isinstance(meta, dict) and isinstance(meta.get("exercise"), str):
        return meta["exercise"]
    otter_meta = nb.metadata.get("otter", {})
    if isinstance(otter_meta, dict) and isinstance(otter_meta.get("assignment_name"), str):
        return otter_meta["assignment_name"]
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("# ASSIGNMENT CONFIG"):
            found = re.search(r"^name:\s*(\S+)", cell.source, re.M)
            return found.group(1) if found else None
    return None


def identify(path: Path, nb, known: dict[str, Path]) -> str | None:
    """The exercise a notebook answers: from its metadata, else from its file name (exNN)."""
    if nb is not None:
        name = _assignment_name(nb)
        if name in known:
            return name
    prefix = re.search(r"(?:^|[^a-z0-9])(ex\d+)", path.name.lower())
    if prefix:
        hits = [n for n in known if n.split("_")[0] == prefix.group(1)]
        if len(hits) == 1:
            return hits[0]
    return None


def cells_to_run(nb) -> list[tuple[str, str]]:
    """The submission's code cells, each with how the feedback names it: its position among all
    the notebook's cells, counted from 1 as a reader counts them from the top, and its first line.
    From a master: its code cells outside BEGIN/END TESTS."""
    cells, in_tests = [], False
    for number, cell in enumerate(nb.cells, start=1):
        text = cell.source.strip()
        if cell.cell_type == "raw":
            if text.startswith("# BEGIN TESTS"):
                in_tests = True
            elif text.startswith("# END TESTS"):
                in_tests = False
            continue
        if cell.cell_type != "code" or in_tests or not text:
            continue
        if _CHECK_CELL.match(text) or text.startswith(SETUP_MARKER):
            continue  # otter's checks and setup: grading runs the tests itself
        first = text.splitlines()[0]
        first = first if len(first) <= 60 else first[:57] + "..."
        cells.append((f"cell {number} (the code cell that starts `{first}`)", cell.source))
    return cells


def claimed_passes(nb) -> set[str]:
    """Questions whose saved grader.check output in the submission says all tests passed."""
    claimed = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = out.get("data", {}).get("text/plain", "") or out.get("text", "")
            if isinstance(text, list):
                text = "".join(text)
            claimed.update(_CLAIMED_PASS.findall(str(text)))
    return claimed


# -- running one submission -------------------------------------------------------------------
def _canaries(rng: random.Random) -> list[tuple[TestSpec, str]]:
    """Two tests the grader knows the outcome of, shaped like every other test."""
    out = []
    for expected in ("pass", "fail"):
        name = f"test_{secrets.token_hex(4)}"
        a = rng.randrange(10**6)
        b = a if expected == "pass" else a + 1 + rng.randrange(10**6)
        source = f"def {name}():\n    value = {a}\n    assert value == {b}, 'value differs'\n"
        out.append((TestSpec("canary", name, name, source, (), 0.0, True), expected))
    return out


class _Session:
    """A sandbox that is restarted (replaying the cells that worked) when it dies or hangs."""

    def __init__(
        self, result: Result, workdir: Path, protected, limits: Limits, deadline, isolation
    ):
        self.result, self.workdir, self.protected = result, workdir, protected
        self.limits, self.deadline, self.isolation = limits, deadline, isolation
        self.good_cells: list[str] = []
        self.restarts = 0
        self.box: Sandbox | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self) -> float:
        left = self.left()
        if left <= 0:
            raise SandboxTimeout
        return min(self.limits.cell_timeout, left)

    def ensure(self) -> Sandbox:
        if self.box is not None:
            return self.box
        if self.restarts > MAX_RESTARTS:
            raise SandboxDied(f"the Python process was restarted {MAX_RESTARTS} times; gave up")
        self.box = Sandbox(self.workdir, self.protected, self.limits, self.isolation)
        for code in self.good_cells:  # replay what worked before the restart
            try:
                self.box.run_cell(code, self.timeout())
            except (SandboxDied, SandboxTimeout):
                self.drop()
                raise
        return self.box

    def drop(self) -> None:
        if self.box is not None:
            self._collect(self.box)
            self.box.kill()
            self.box = None
            self.restarts += 1

    def _collect(self, box: Sandbox) -> None:
        self.result.output_bytes += box.output_text()[1]
        for v in box.violations:
            self.result.worsen(
                "violation", f"grading sandbox refused {v['violation']} ({v['detail'][:200]})"
            )
        box.violations.clear()
        if box.anomalies:
            self.result.flags.extend(box.anomalies)
            box.anomalies.clear()

    def close(self) -> None:
        if self.box is not None:
            self._collect(self.box)
            self.box.kill()
            self.box = None


def _run(
    result: Result,
    spec: ExerciseSpec,
    cells: list[tuple[str, str]],
    limits: Limits,
    protected,
    isolation: Isolation,
):
    workdir = Path(tempfile.mkdtemp(prefix="resnet-grade-"))
    deadline = time.monotonic() + limits.wall_timeout
    session = _Session(result, workdir, protected, limits, deadline, isolation)
    rng = random.Random(secrets.randbits(64))
    outcomes: dict[str, TestResult] = {}
    try:
        # 1. the submission's own cells
        for where, code in cells:
            try:
                reply = session.ensure().run_cell(code, session.timeout())
            except SandboxTimeout:
                session.drop()
                if session.left() <= 0:
                    raise
                result.worsen("timeout", f"{where} ran past {limits.cell_timeout:.0f} s")
                continue
            except SandboxDied as err:
                session.drop()
                result.worsen("crashed", f"{where}: {err}")
                continue
            session.good_cells.append(code)  # after an error, its definitions still count
            if reply.get("status") != "ok":
                result.cell_errors.append(
                    f"{where}: {reply.get('ename')}: {reply.get('evalue', '')[:300]}"
                )
                result.worsen("errors", f"{where} raised {reply.get('ename')}")
        # 2. the master's tests, public and hidden, with two canaries mixed in
        plan: list[tuple[TestSpec, str | None]] = [
            (t, None) for q in spec.questions for t in q.tests
        ]
        for canary in _canaries(rng):
            plan.insert(rng.randrange(len(plan) + 1), canary)
        for test, expected in plan:
            try:
                reply = session.ensure().run_test(
                    test.source, test.function, list(test.args), session.timeout()
                )
            except SandboxTimeout:
                session.drop()
                outcome = TestResult(test, "timeout", f"ran past {limits.cell_timeout:.0f} s")
                if session.left() <= 0:
                    outcomes[test.name] = outcome
                    raise
            except SandboxDied as err:
                session.drop()
                outcome = TestResult(test, "crashed", str(err))
            else:
                outcome = _outcome(test, reply)
            if expected is not None:  # a timeout or crash here says nothing about honesty
                if outcome.status in ("pass", "fail") and outcome.status != expected:
                    result.flags.append(
                        f"a control check the grader knows should {expected} was reported as "
                        f"{outcome.status}: the submission interfered with grading"
                    )
                continue
            outcomes[test.name] = outcome
    except SandboxTimeout:
        result.worsen(
            "timeout", f"the submission ran past the {limits.wall_timeout:.0f} s limit; stopped"
        )
    except SandboxDied as err:
        result.worsen("crashed", str(err))
    finally:
        session.close()
        shutil.rmtree(workdir, ignore_errors=True)
    result.questions = _question_results(spec, outcomes)


def _question_results(spec: ExerciseSpec, outcomes: dict[str, TestResult]) -> list:
    """Every question of the exercise; a test without an outcome was not run (scores 0)."""
    return [
        QuestionResult(
            q.name,
            q.points,
            [outcomes.get(t.name, TestResult(t, "not-run", "not run")) for t in q.tests],
            q.all_or_nothing,
        )
        for q in spec.questions
    ]


def _outcome(test: TestSpec, reply: dict) -> TestResult:
    status = reply.get("status")
    if status == "pass":
        return TestResult(test, "pass")
    if status == "missing":
        names = ", ".join(f"`{n}`" for n in reply.get("names", []))
        return TestResult(test, "missing", f"{names} not defined: run the cell that defines it")
    if status == "fail":
        message = f"{reply.get('ename')}: {reply.get('evalue', '')}".strip()
        if reply.get("line"):
            message += f"\n    at: {reply['line'].strip()}"
        return TestResult(test, "fail", message)
    return TestResult(test, "fail", "no usable reply from the sandbox")


def grade_notebook(
    path: Path,
    known: dict[str, Path],
    limits: Limits | None = None,
    protected: list[Path] | None = None,
    isolation: Isolation | None = None,
) -> Result:
    """Grade one file. Never raises for a bad submission: the result's status says what happened.
    ``isolation``: by default bubblewrap where it works, else the audit hook alone."""
    path = Path(path)
    limits = limits or Limits()
    isolation = isolation if isolation is not None else detect("auto")
    start = time.monotonic()
    result = Result(path, isolation=isolation.describe())
    nb = None
    try:
        nb = read_notebook(path)
    except (ValueError, OSError) as err:
        result.exercise = identify(path, None, known)
        result.status, result.zeroed = "invalid", True
        result.problems.append(str(err))
    if nb is not None:
        result.exercise = identify(path, nb, known)
    if result.exercise is None:
        if result.status != "invalid":
            result.status = "unknown-exercise"
            result.problems.append(
                f"not one of the book's exercises ({', '.join(sorted(known))}); keep the "
                f"exercise's file name or its notebook metadata"
            )
        result.seconds = time.monotonic() - start
        return result
    spec = load_exercise(known[result.exercise])
    result.possible = spec.points
    if nb is None:
        result.questions = _question_results(spec, {})
    else:
        # The masters, and the other notebooks beside this one (other learners' submissions);
        # not the whole folder, which may hold the Python environment itself.
        neighbours = [p for p in path.resolve().parent.glob("*.ipynb") if p != path.resolve()]
        protected = list(protected or []) + [spec.master.parent, *neighbours]
        _run(result, spec, cells_to_run(nb), limits, protected, isolation)
        if result.flags:
            result.zeroed = True
            result.worsen("flagged", "grading results did not add up; every score set to 0")
        for q in claimed_passes(nb):
            graded = next((x for x in result.questions if x.name == q), None)
            if graded and not all(t.passed for t in graded.tests if not t.test.hidden):
                result.problems.append(
                    f"the notebook's saved output says {q} passed its checks, but its public "
                    f"tests fail when regraded (answer changed after checking?)"
                )
    result.seconds = time.monotonic() - start
    return result


def collect(paths: list[Path]) -> list[Path]:
    """Notebooks to grade: files as given; folders give their *.ipynb files (not recursive)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            notebooks = sorted(x for x in p.glob("*.ipynb") if x.is_file())
            if not notebooks:
                raise SpecError(f"{p} holds no .ipynb notebooks to grade")
            found.extend(notebooks)
        elif p.exists():
            found.append(p)
        else:
            raise SpecError(f"{p} does not exist")
    return found


def grade_paths(
    paths: list[Path],
    solutions: Path | None = None,
    limits: Limits | None = None,
    jobs: int = 1,
    progress=None,
    isolation: Isolation | None = None,
) -> list[Result]:
    """Grade every notebook under ``paths`` (``jobs`` sandboxes at a time), in path order.
    ``isolation``: by default bubblewrap where it works, else the audit hook alone."""
    from concurrent.futures import ThreadPoolExecutor

    known = masters(solutions)
    files = collect(paths)
    limits = limits or Limits()
    isolation = isolation if isolation is not None else detect("auto")
    # otter assign chdirs: load the exercises these files need before starting threads.
    for f in files:
        try:
            name = identify(f, read_notebook(f), known)
        except (ValueError, OSError):
            name = identify(f, None, known)
        if name:
            load_exercise(known[name])
    solutions_dir = Path(solutions or known[next(iter(known))].parent).resolve()
    # The masters, and the repository's history, which holds every version of them.
    protected = [solutions_dir, solutions_dir.parent / ".git"]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(grade_notebook, f, known, limits, protected, isolation) for f in files
        ]
        results = []
        for future in futures:
            results.append(future.result())
            if progress:
                progress(results[-1])
    return results
