"""The grader against bad submissions: each case has its own notebook and its own expected outcome.

The exercise here is a small fixture master (two questions, public and hidden tests) written in
the same otter format as solutions/, so these tests exercise the real pipeline: otter assign,
build, the sandbox, scoring, the CSV and the command line, in a few seconds per submission.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

import exercise_grader.grade
from exercise_grader import build as build_mod
from exercise_grader.grade import grade_notebook, grade_paths, read_notebook
from exercise_grader.isolation import detect
from exercise_grader.runner import GiB, Limits
from exercise_grader.spec import SpecError, load_exercise, masters

NAME = "ex90_fixture"
LIMITS = Limits(cell_timeout=6, wall_timeout=60, memory=6 * GiB, output_limit=100_000)

SOLUTION_Q1 = "def double(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"
SOLUTION_Q2 = (
    "def count_params(model):\n"
    "    # BEGIN SOLUTION\n"
    "    return sum(p.numel() for p in model.parameters())\n"
    "    # END SOLUTION\n"
)
Q1 = SOLUTION_Q1.replace("    # BEGIN SOLUTION\n", "").replace("    # END SOLUTION\n", "")
Q2 = SOLUTION_Q2.replace("    # BEGIN SOLUTION\n", "").replace("    # END SOLUTION\n", "")


def _master() -> nbformat.NotebookNode:
    code, md, raw = (
        nbformat.v4.new_code_cell,
        nbformat.v4.new_markdown_cell,
        nbformat.v4.new_raw_cell,
    )
    config = (
        f"# ASSIGNMENT CONFIG\nname: {NAME}\ninit_cell: false\ncheck_all_cell: false\n"
        "export_cell: false\nrun_tests: false\ngenerate: false\n"
        "tests:\n  ok_format: false\n  files: false\n"
    )
    hidden = '""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        raw(config),
        md("# Fixture exercise"),
        code("import torch\nfrom torch import nn"),
        raw("# BEGIN QUESTION\nname: q1\npoints: 2"),
        md("Write `double(x)`."),
        raw("# BEGIN SOLUTION"),
        code(SOLUTION_Q1),
        raw("# END SOLUTION"),
        raw("# BEGIN TESTS"),
        code(
            "def test_double_int(double):\n"
            "    assert callable(double), 'define double(x) above'\n"
            "    assert double(2) == 4, f'double(2) returned {double(2)!r}, expected 4'\n\n"
            "test_double_int(double)"
        ),
        code(
            hidden + "def test_double_tensor(double, torch):\n"
            "    x = torch.tensor([1.0, -2.5])\n"
            "    assert torch.equal(double(x), 2 * x), 'double must work on tensors'\n\n"
            "test_double_tensor(double, torch)"
        ),
        raw("# END TESTS"),
        raw("# END QUESTION"),
        raw("# BEGIN QUESTION\nname: q2\npoints: 2"),
        md("Write `count_params(model)`."),
        raw("# BEGIN SOLUTION"),
        code(SOLUTION_Q2),
        raw("# END SOLUTION"),
        raw("# BEGIN TESTS"),
        code(
            "def test_linear(count_params, nn):\n"
            "    n = count_params(nn.Linear(3, 4))\n"
            "    assert n == 16, f'nn.Linear(3, 4) has 16 parameters, got {n!r}'\n\n"
            "test_linear(count_params, nn)"
        ),
        code(
            hidden + "def test_conv(count_params, nn):\n"
            "    n = count_params(nn.Conv2d(2, 5, 3))\n"
            "    assert n == 95, f'nn.Conv2d(2, 5, 3) has 95 parameters, got {n!r}'\n\n"
            "test_conv(count_params, nn)"
        ),
        raw("# END TESTS"),
        raw("# END QUESTION"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


#: The --isolation mode the command-line tests pass, set by the ``isolation`` fixture.
MODE = {"mode": "require"}


@pytest.fixture(params=["bubblewrap", "audit-hook"], autouse=True)
def isolation(request, monkeypatch):
    """Every test runs twice: with each submission in a bubblewrap sandbox (what Linux gets,
    and CI, which installs bubblewrap), and with the audit hook alone (what macOS gets)."""
    if request.param == "bubblewrap":
        found = detect("auto")
        if not found.isolated:
            if sys.platform.startswith("linux"):
                pytest.fail(f"these tests need bubblewrap on Linux: {found.reason}")
            pytest.skip("bubblewrap isolates on Linux only")
        MODE["mode"] = "require"
    else:
        found = detect("off")
        MODE["mode"] = "off"
    monkeypatch.setattr(exercise_grader.grade, "detect", lambda mode="auto": found)
    return found


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A solutions/ folder with the fixture master, and its generated learner notebook."""
    root = tmp_path_factory.mktemp("book")
    solutions, exercises = root / "solutions", root / "exercises"
    solutions.mkdir()
    nbformat.write(_master(), solutions / f"{NAME}.ipynb")
    assert build_mod.build(solutions, exercises) == []
    return root


@pytest.fixture
def known(book):
    return masters(book / "solutions")


def submission(book, tmp_path, q1: str | None = Q1, q2: str | None = Q2, extra=(), before=()):
    """The learner notebook with its answer cells replaced (None: the cell deleted)."""
    nb = nbformat.read(book / "exercises" / f"{NAME}.ipynb", as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("def double"):
            if q1 is None:
                continue
            cell.source = q1
        elif cell.cell_type == "code" and cell.source.startswith("def count_params"):
            cells.extend(nbformat.v4.new_code_cell(c) for c in extra)
            if q2 is None:
                continue
            cell.source = q2
        elif cell.cell_type == "code" and cell.source.startswith("import torch"):
            cells.extend(nbformat.v4.new_code_cell(c) for c in before)
        cells.append(cell)
    nb.cells = cells
    folder = tmp_path / "submissions"
    folder.mkdir(exist_ok=True)
    path = folder / f"{NAME}.ipynb"
    nbformat.write(nb, path)
    return path


def grade(path, known, limits=LIMITS):
    return grade_notebook(path, known, limits)


def scores(result) -> dict:
    return {q.name: result.score_of(q.name) for q in result.questions}


def no_children_left():
    alive = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


# -- the baseline: right and unfilled ---------------------------------------------------------
def test_correct_submission_scores_full_marks(book, known, tmp_path):
    r = grade(submission(book, tmp_path), known)
    assert (r.status, scores(r), r.total, r.possible) == ("ok", {"q1": 2, "q2": 2}, 4, 4)


def test_unfilled_notebook_scores_zero_and_master_scores_full(book, known):
    r = grade(book / "exercises" / f"{NAME}.ipynb", known)
    assert r.total == 0 and r.possible == 4 and r.status == "ok"
    m = grade(book / "solutions" / f"{NAME}.ipynb", known)
    assert m.total == 4, m.problems


def test_hidden_tests_count(book, known, tmp_path):
    # passes the public test only: double hard-coded for 2, count_params for Linear(3, 4)
    r = grade(
        submission(
            book,
            tmp_path,
            q1="def double(x):\n    return 4",
            q2="def count_params(m):\n    return 16",
        ),
        known,
    )
    assert scores(r) == {"q1": 1, "q2": 1}


# -- bad submissions ----------------------------------------------------------------------------
def test_syntax_error(book, known, tmp_path):
    r = grade(submission(book, tmp_path, q1="def double(x)\n    return 2 * x"), known)
    assert r.status == "errors" and scores(r) == {"q1": 0, "q2": 2}
    assert any("SyntaxError" in e for e in r.cell_errors)
    q1 = r.questions[0].tests[0]
    assert q1.status == "missing" and "double" in q1.message


def test_infinite_loop_in_a_cell_is_killed(book, known, tmp_path):
    loop = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    r = grade(submission(book, tmp_path, extra=[loop]), known)
    assert r.status == "timeout" and scores(r) == {"q1": 2, "q2": 2}
    assert any("ran past" in p for p in r.problems)
    assert no_children_left() == []


def test_infinite_loop_inside_a_tested_function(book, known, tmp_path):
    q1 = (
        "def double(x):\n    while True:\n        try:\n            pass\n"
        "        except BaseException:\n            pass"
    )
    r = grade(submission(book, tmp_path, q1=q1), known)
    assert scores(r) == {"q1": 0, "q2": 2}
    assert {t.status for t in r.questions[0].tests} == {"timeout"}
    assert no_children_left() == []


def test_wall_clock_limit_stops_the_submission(book, known, tmp_path):
    slow = ["import time\ntime.sleep(2.5)"] * 6
    limits = Limits(cell_timeout=6, wall_timeout=10, memory=6 * GiB)
    r = grade(submission(book, tmp_path, before=slow), known, limits)
    assert r.status == "timeout" and r.total == 0
    assert any("10 s limit" in p for p in r.problems)
    assert no_children_left() == []


def test_exception_at_import(book, known, tmp_path):
    r = grade(submission(book, tmp_path, before=["import a_module_that_does_not_exist"]), known)
    assert r.status == "errors" and scores(r) == {"q1": 2, "q2": 2}
    assert any("ModuleNotFoundError" in e for e in r.cell_errors)


def test_missing_function(book, known, tmp_path):
    r = grade(submission(book, tmp_path, q2=None), known)
    assert scores(r) == {"q1": 2, "q2": 0}
    assert all(t.status == "missing" for t in r.questions[1].tests)
    assert "count_params" in r.questions[1].tests[0].message


def test_sys_exit_is_an_error_in_that_cell(book, known, tmp_path):
    r = grade(submission(book, tmp_path, extra=["import sys\nsys.exit(3)"]), known)
    assert r.status == "errors" and scores(r) == {"q1": 2, "q2": 2}
    assert any("SystemExit" in e for e in r.cell_errors)


def test_os_exit_restarts_without_that_cell(book, known, tmp_path):
    r = grade(submission(book, tmp_path, extra=["import os\nos._exit(0)"]), known)
    assert r.status == "crashed" and scores(r) == {"q1": 2, "q2": 2}
    assert any("exited with status 0" in p for p in r.problems)


def test_os_exit_inside_a_tested_function(book, known, tmp_path):
    q2 = "def count_params(model):\n    import os\n    os._exit(1)"
    r = grade(submission(book, tmp_path, q2=q2), known)
    assert scores(r) == {"q1": 2, "q2": 0}
    assert {t.status for t in r.questions[1].tests} == {"crashed"}


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_reading_the_test_files_is_refused(book, known, tmp_path):
    master = book / "solutions" / f"{NAME}.ipynb"
    steal = (
        f"try:\n    SOURCE = open({str(master)!r}).read()\nexcept PermissionError as e:\n"
        f"    SOURCE = str(e)\nimport os\ntry:\n    os.listdir({str(master.parent)!r})\n"
        "except PermissionError:\n    pass"
    )
    r = grade(
        submission(book, tmp_path, q1="def double(x):\n    return None", extra=[steal]), known
    )
    assert r.status == "violation" and scores(r) == {"q1": 0, "q2": 2}
    assert any("reading the grader's test files" in p for p in r.problems)


def test_writing_test_files_and_outside_the_sandbox_is_refused(book, known, tmp_path):
    before = _tree_digest(book)
    outside = tmp_path / "outside.txt"
    master = book / "solutions" / f"{NAME}.ipynb"
    vandal = (
        "import pathlib\n"
        "pathlib.Path('.tests/ex90_fixture').mkdir(parents=True, exist_ok=True)\n"
        "pathlib.Path('.tests/ex90_fixture/q1.py').write_text('name = \"q1\"\\npoints = 100\\n')\n"
        f"for target in [{str(master)!r}, {str(outside)!r}, '../escape.txt']:\n"
        "    try:\n        open(target, 'w').write('pwned')\n"
        "    except PermissionError:\n        pass\n"
    )
    r = grade(
        submission(book, tmp_path, q1="def double(x):\n    return None", extra=[vandal]), known
    )
    assert r.status == "violation" and scores(r) == {"q1": 0, "q2": 2} and r.possible == 4
    assert any("writing outside" in p for p in r.problems)
    assert not outside.exists() and _tree_digest(book) == before


def test_patching_otter_and_the_checker_does_not_fake_a_pass(book, known, tmp_path):
    patch = (
        "import otter, builtins\n"
        "otter.Notebook.check = lambda self, *a, **k: 'All test cases passed!'\n"
        "import exercise_grader as g\n"
        "g.uses_answer = None\n"
        "builtins.AssertionError = type('Nope', (Exception,), {})\n"
        "get_ipython().run_cell = lambda *a, **k: None\n"
    )
    r = grade(submission(book, tmp_path, q1="def double(x):\n    return x", extra=[patch]), known)
    assert scores(r)["q1"] == 0 and scores(r)["q2"] == 2


def test_patching_exec_to_skip_tests_is_caught(book, known, tmp_path):
    # Makes every test "pass" by replacing the test functions with no-ops: the grader's
    # control checks notice and the submission is flagged with zero.
    patch = (
        "import builtins\n"
        "_real_exec = builtins.exec\n"
        "def fake_exec(code, ns=None, *rest):\n"
        "    if ns is not None and isinstance(code, type(fake_exec.__code__)):\n"
        "        for name in code.co_names:\n"
        "            if name.startswith('test_'):\n"
        "                ns[name] = lambda *a: None\n"
        "        return None\n"
        "    return _real_exec(code, ns, *rest)\n"
        "builtins.exec = fake_exec\n"
        "import sys\n"
        "sys.modules['__main__'].__dict__['exec'] = fake_exec\n"
        "for mod in list(sys.modules.values()):\n"
        "    name = getattr(mod, '__name__', '')\n"
        "    if name == '__main__' or 'sandbox' in name:\n"
        "        mod.__dict__['exec'] = fake_exec\n"
    )
    r = grade(submission(book, tmp_path, q1="def double(x):\n    return x", extra=[patch]), known)
    assert scores(r)["q1"] == 0


def test_forging_replies_on_the_grading_channel_is_flagged(book, known, tmp_path):
    forge = (
        "import os, json\n"
        "for fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    try:\n"
        "        os.write(fd, (json.dumps({'id': 'x', 'status': 'pass'}) + '\\n').encode())\n"
        "    except OSError:\n"
        "        pass\n"
    )
    r = grade(submission(book, tmp_path, extra=[forge]), known)
    assert r.status == "flagged" and r.total == 0 and r.flags


def test_nan_outputs_score_zero(book, known, tmp_path):
    q1 = "def double(x):\n    return float('nan') * x"
    r = grade(submission(book, tmp_path, q1=q1), known)
    assert scores(r) == {"q1": 0, "q2": 2}


def test_memory_bomb_hits_the_limit(book, known, tmp_path):
    bomb = "hog = []\nwhile True:\n    hog.append(bytearray(200 * 1024**2))"
    r = grade(submission(book, tmp_path, extra=[bomb, "del hog"]), known)
    assert scores(r) == {"q1": 2, "q2": 2}
    assert any("MemoryError" in e for e in r.cell_errors)


def test_enormous_output_is_capped(book, known, tmp_path):
    spam = "for _ in range(200):\n    print('x' * 1_000_000)"
    r = grade(submission(book, tmp_path, extra=[spam]), known)
    assert scores(r) == {"q1": 2, "q2": 2}
    assert r.output_bytes >= 200_000_000


def test_starting_processes_is_refused(book, known, tmp_path):
    spawn = "import subprocess\nsubprocess.Popen(['sleep', '1000'])"
    r = grade(
        submission(book, tmp_path, extra=[spawn, "import os\nos.system('sleep 1000')"]), known
    )
    assert r.status == "violation" and scores(r) == {"q1": 2, "q2": 2}
    assert no_children_left() == []


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "not valid notebook JSON"),
        (b'{"hello": 1}', "not a Jupyter notebook"),
        (json.dumps({"cells": [{"cell_type": "code"}], "nbformat": 4}).encode(), "malformed"),
        (b"\x00\xff\xfe binary", "not valid notebook JSON"),
    ],
)
def test_malformed_notebooks(book, known, tmp_path, content, message):
    path = tmp_path / f"{NAME}.ipynb"
    path.write_bytes(content)
    r = grade(path, known)
    assert r.status == "invalid" and r.total == 0 and r.possible == 4
    assert any(message in p for p in r.problems), r.problems


def test_non_notebook_file(book, known, tmp_path):
    path = tmp_path / "ex90_answers.py"
    path.write_text("def double(x): return 2 * x\n")
    r = grade(path, known)
    assert r.status == "invalid" and "not a notebook" in r.problems[0]


def test_unknown_notebook_is_not_graded(book, known, tmp_path):
    path = tmp_path / "my_notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    r = grade(path, known)
    assert r.status == "unknown-exercise" and not r.graded


def test_empty_folder(book, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="no .ipynb"):
        grade_paths([tmp_path / "empty"], book / "solutions")
    cli = _cli(book, "grade", str(tmp_path / "empty"))
    assert cli.returncode == 2 and "no .ipynb notebooks" in cli.stderr


def test_saved_outputs_claiming_a_pass_are_reported(book, known, tmp_path):
    path = submission(book, tmp_path, q1="def double(x):\n    return x")
    nb = read_notebook(path)
    check = next(c for c in nb.cells if c.source.strip() == 'grader.check("q1")')
    check.outputs = [
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": "q1 results: All test cases passed!"}
        )
    ]
    nbformat.write(nb, path)
    r = grade(path, known)
    assert scores(r)["q1"] == 0
    assert any("saved output says q1 passed" in p for p in r.problems)


# -- a folder of mixed submissions, through the command line ------------------------------------
def _cli(book, *args, cwd=None, python=sys.executable, env=None):
    mode = ["--isolation", MODE["mode"]] if args[0] == "grade" else []
    return subprocess.run(
        [python, "-m", "exercise_grader", *args, *mode, "--solutions", str(book / "solutions")],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_folder_batch_csv_and_feedback(book, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    good = submission(book, tmp_path)
    (folder / "alice_ex90.ipynb").write_bytes(good.read_bytes())
    (folder / "bob_ex90.ipynb").write_bytes(b"{broken")
    crash = submission(book, tmp_path, extra=["import os\nos._exit(1)"], q2=None)
    (folder / "carol_ex90.ipynb").write_bytes(crash.read_bytes())
    out = tmp_path / "grades.csv"
    fb = tmp_path / "fb"
    cli = _cli(book, "grade", str(folder), "--csv", str(out), "--feedback", str(fb), cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open())}
    assert rows["alice_ex90.ipynb"]["total"] == "4" and rows["alice_ex90.ipynb"]["status"] == "ok"
    assert rows["bob_ex90.ipynb"]["status"] == "invalid" and rows["bob_ex90.ipynb"]["total"] == "0"
    assert rows["carol_ex90.ipynb"]["status"] == "crashed"
    assert (rows["carol_ex90.ipynb"]["q1"], rows["carol_ex90.ipynb"]["q2"]) == ("2", "0")
    assert list(rows["alice_ex90.ipynb"]) == [
        "file",
        "exercise",
        "status",
        "total",
        "possible",
        "q1",
        "q2",
        "message",
    ]
    assert "alice_ex90.ipynb" in cli.stdout and "4/4" in cli.stdout
    text = (fb / "carol_ex90.feedback.md").read_text()
    assert "count_params" in text and "q2: 0 / 2" in text
    assert no_children_left() == []


def test_cli_exit_status_for_an_unknown_notebook(book, tmp_path):
    path = tmp_path / "notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    cli = _cli(book, "grade", str(path), "--feedback", str(tmp_path / "fb"))
    assert cli.returncode == 1 and "unknown-exercise" in cli.stdout


def test_build_check_detects_drift(book, tmp_path):
    assert _cli(book, "build", "--check", "--out", str(book / "exercises")).returncode == 0
    copy = tmp_path / "ex"
    copy.mkdir()
    (copy / f"{NAME}.ipynb").write_text("{}")
    cli = _cli(book, "build", "--check", "--out", str(copy))
    assert cli.returncode == 1 and "out of date" in cli.stderr


def test_spec_splits_points_like_otter(book):
    spec = load_exercise(book / "solutions" / f"{NAME}.ipynb")
    assert [(q.name, q.points, [t.points for t in q.tests]) for q in spec.questions] == [
        ("q1", 2.0, [1.0, 1.0]),
        ("q2", 2.0, [1.0, 1.0]),
    ]
    assert [t.hidden for t in spec.questions[0].tests] == [False, True]
    assert (
        "points = 2" in spec.public_tests["q1"]
        and "test_double_tensor" not in spec.public_tests["q1"]
    )


def test_learner_notebook_checks_work_beside_a_tests_folder(book, tmp_path):
    """Runs the generated learner notebook in a real kernel, with a tests/ folder beside it
    (otter issue 931) and with the solutions filled in: every check passes."""
    folder = tmp_path / "run"
    (folder / "tests").mkdir(parents=True)
    path = submission(book, tmp_path)
    target = folder / path.name
    target.write_bytes(path.read_bytes())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = folder / "out.ipynb"
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "execute", str(target), "--output", str(out)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    texts = [
        "".join(o.get("data", {}).get("text/plain", ""))
        for c in json.loads(out.read_text())["cells"]
        for o in c.get("outputs", [])
    ]
    assert sum("All test cases passed" in t for t in texts) == 2, texts


def test_learner_notebook_on_simulated_colab(book, tmp_path):
    """On Colab there is no notebook file on disk (otter issue 901): the checks read the tests
    that the setup cell wrote. The setup cell's installer (resnet_lib/bootstrap.py, tested in
    tests/test_bootstrap.py) finds otter and resnet_lib here, so it must not call pip."""
    path = submission(book, tmp_path)
    nb = read_notebook(path)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    script = (
        "import json, subprocess, sys, types\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "installs = []\n"
        "subprocess.run = lambda *a, **k: installs.append(a)\n"
        "outputs = []\n"
        f"for source in json.loads({json.dumps(json.dumps(cells))}):\n"
        "    result = shell.run_cell(source)\n"
        "    assert result.success, (source, result.error_in_exec)\n"
        "    if source.startswith('grader.check'):\n"
        "        outputs.append(repr(result.result))\n"
        "print(json.dumps({'installs': installs, 'outputs': outputs}))\n"
    )
    colab = tmp_path / "colab"
    colab.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=colab, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["installs"] == []
    assert "otter-grader" in cells[0] and "install_missing(" in cells[0]
    assert len(report["outputs"]) == 2
    assert all("All test cases passed" in o for o in report["outputs"]), report["outputs"]
    assert not list(colab.glob("*.ipynb")) and (colab / ".tests" / NAME / "q1.py").exists()


@pytest.mark.parametrize(
    "peek",
    [
        "import sys\ndef double(x):\n    caller = sys._getframe(1)\n    return 2 * x",
        "def double(x):\n    try:\n        raise RuntimeError\n    except RuntimeError as e:\n"
        "        caller = e.__traceback__.tb_frame.f_back\n    return 2 * x",
        "import gc\ndef double(x):\n    gc.get_referrers(x)\n    return 2 * x",
        "import inspect\ndef double(x):\n    caller = inspect.currentframe().f_back\n"
        "    return 2 * x",
    ],
    ids=["getframe", "traceback", "gc", "inspect"],
)
def test_peeking_at_the_tests_frames_is_refused(book, known, tmp_path, peek):
    # Reading a test's locals would let an answer return the expected value it is compared with.
    r = grade(submission(book, tmp_path, q1=peek), known)
    assert r.status == "violation" and scores(r) == {"q1": 0, "q2": 2}
    assert any("inspecting the test's frames" in p for p in r.problems)


def test_reading_other_processes_is_refused(book, known, tmp_path):
    spy = (
        "import os\ntry:\n    open(f'/proc/{os.getppid()}/cmdline').read()\n"
        "except PermissionError:\n    pass\n"
        "open('/proc/self/status').read()  # its own process is fine\n"
    )
    r = grade(submission(book, tmp_path, extra=[spy]), known)
    assert r.status == "violation" and scores(r) == {"q1": 2, "q2": 2}
    assert any("another process" in p for p in r.problems)


def test_answering_the_tests_itself_is_caught_by_the_control_checks(book, known, tmp_path):
    # The strongest attack we know of: a thread takes over the command channel, passes the
    # cells on and answers every test "pass" without running it. Only the control tests (one
    # of which must fail) can tell; the submission is flagged and scores 0.
    relay = (
        "import json, os, sys, threading\n"
        "cmd_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])\n"
        "original = os.dup(cmd_fd)\n"
        "r, w = os.pipe()\n"
        "os.dup2(r, cmd_fd)\n"
        "def relay():\n"
        "    buf = b''\n"
        "    while True:\n"
        "        chunk = os.read(original, 65536)\n"
        "        if not chunk:\n"
        "            return\n"
        "        buf += chunk\n"
        "        while b'\\n' in buf:\n"
        "            line, buf = buf.split(b'\\n', 1)\n"
        "            msg = json.loads(line)\n"
        "            if msg['op'] == 'test':\n"
        "                answer = {'id': msg['id'], 'status': 'pass'}\n"
        "                os.write(reply_fd, (json.dumps(answer) + '\\n').encode())\n"
        "            else:\n"
        "                os.write(w, line + b'\\n')\n"
        "threading.Thread(target=relay, daemon=True).start()\n"
    )
    wrong = dict(q1="def double(x):\n    return x", q2="def count_params(m):\n    return 0")
    r = grade(submission(book, tmp_path, extra=[relay], **wrong), known)
    assert r.status == "flagged" and r.total == 0
    assert any("control check" in f for f in r.flags), r.flags


def test_other_submissions_in_the_folder_are_out_of_reach(book, known, tmp_path, isolation):
    read = (
        "import pathlib\nREAD = []\n"
        "for other in pathlib.Path(NOTEBOOK).parent.glob('*.ipynb'):\n"
        "    try:\n"
        "        READ.append(other.read_text())\n"
        "    except PermissionError:\n"
        "        pass\n"
    )
    # q1 scores only if the classmate's notebook could be read
    q1 = "def double(x):\n    return 2 * x if READ else None"
    path = submission(book, tmp_path, q1=q1, extra=[read])
    (path.parent / "classmate_ex90.ipynb").write_bytes(path.read_bytes())
    nb = read_notebook(path)
    nb.cells.insert(1, nbformat.v4.new_code_cell(f"NOTEBOOK = {str(path)!r}"))
    nbformat.write(nb, path)
    r = grade(path, known)
    assert scores(r) == {"q1": 0, "q2": 2}
    if not isolation.isolated:  # refused by the hook; in bubblewrap the folder is not there
        assert r.status == "violation"
        assert any("reading files outside" in p and "submissions" in p for p in r.problems)


def _copy_runner(path: Path) -> str:
    """A cell that reads a master notebook at ``path`` and runs its solution cells."""
    return (
        "import json\n"
        "try:\n"
        f"    copy = json.load(open({str(path)!r}))\n"
        "except OSError:\n"
        "    copy = {'cells': []}\n"
        "for cell in copy['cells']:\n"
        "    text = ''.join(cell['source'])\n"
        "    if cell['cell_type'] == 'code' and 'BEGIN SOLUTION' in text:\n"
        "        exec(text)\n"
    )


def test_a_copy_of_the_master_outside_the_repository_is_out_of_reach(
    book, known, tmp_path, isolation
):
    # solutions/ is protected by name, but a copy can be anywhere: a backup, another clone, a
    # private solutions folder. Without answers of its own, the submission runs the copy's.
    backup = tmp_path / "backup" / "old_clone" / "solutions"
    backup.mkdir(parents=True)
    copy = backup / f"{NAME}.ipynb"
    copy.write_bytes((book / "solutions" / f"{NAME}.ipynb").read_bytes())
    # the copy works where nothing stops it: graded as the submission itself, it scores 4
    assert grade(copy, known).total == 4
    r = grade(submission(book, tmp_path, q1=None, q2=None, extra=[_copy_runner(copy)]), known)
    assert r.total == 0 and r.status == "violation", (r.status, r.problems)
    assert any("reading files outside" in p and "backup" in p for p in r.problems)


def test_native_code_reading_files_needs_the_operating_system(book, known, tmp_path, isolation):
    # torch.from_file opens the file in C: no audit event, so the hook cannot see it. Only the
    # sandbox's own file system keeps the copy out of reach; this is why grading uses bubblewrap.
    copy = tmp_path / "elsewhere" / f"{NAME}.ipynb"
    copy.parent.mkdir()
    copy.write_bytes((book / "solutions" / f"{NAME}.ipynb").read_bytes())
    native = (
        "import json, os, torch\n"
        "try:\n"
        f"    size = os.path.getsize({str(copy)!r})\n"
        f"    raw = bytes(torch.from_file({str(copy)!r}, size=size, dtype=torch.uint8).tolist())\n"
        "except Exception:\n"
        "    raw = b'{\"cells\": []}'\n"
        "for cell in json.loads(raw)['cells']:\n"
        "    text = ''.join(cell['source'])\n"
        "    if cell['cell_type'] == 'code' and 'BEGIN SOLUTION' in text:\n"
        "        exec(text)\n"
    )
    r = grade(submission(book, tmp_path, q1=None, q2=None, extra=[native]), known)
    if isolation.isolated:
        assert r.total == 0 and r.status == "ok", r.problems
    else:  # the audit hook's known limit, stated in exercise_grader/isolation.py
        assert r.total == 4


def test_the_home_folder_is_out_of_reach(book, known, tmp_path, isolation):
    secret = Path.home() / f".grading-test-{os.getpid()}-{tmp_path.name}"
    secret.write_text("the instructor's notes")
    try:
        peek = (
            "import torch\nSEEN = []\n"
            "for read in (lambda p: open(p).read(), lambda p: torch.from_file(p, size=22, dtype=torch.uint8)):\n"
            "    try:\n"
            f"        SEEN.append(read({str(secret)!r}))\n"
            "    except Exception:\n"
            "        pass\n"
        )
        q1 = "def double(x):\n    return 2 * x if SEEN else None"
        r = grade(submission(book, tmp_path, q1=q1, extra=[peek]), known)
    finally:
        secret.unlink()
    if isolation.isolated:
        assert scores(r) == {"q1": 0, "q2": 2}  # neither way finds the file
    else:  # open is refused; torch's C reader is not (see the test above)
        assert r.status == "violation" and any("reading files outside" in p for p in r.problems)
        assert scores(r) == {"q1": 2, "q2": 2}


def test_through_linked_paths_beside_the_environment(book, tmp_path):
    # A learner's folder that holds the notebook and the virtual environment, reached through a
    # link (as on macOS, where /tmp and /var are links); graded with the interpreter of that
    # linked environment, from the linked folder. Every path the grader and the sandbox compare
    # is resolved, so the installed packages stay trusted and the submission scores full marks
    # (it also imports scikit-learn, which the sandbox does not load before its audit hook).
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
    answer = submission(book, tmp_path, before=["import sklearn.datasets"])
    (project / f"{NAME}.ipynb").write_bytes(answer.read_bytes())
    linked = tmp_path / "linked"
    linked.symlink_to(project, target_is_directory=True)
    python = linked / ".venv" / "bin" / Path(sys.executable).name
    out = tmp_path / "grades.csv"
    cli = _cli(book, "grade", str(linked), "--csv", str(out), python=str(python), cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr[-2000:]
    row = next(csv.DictReader(out.open()))
    assert (row["status"], row["total"], row["message"]) == ("ok", "4", ""), row


def test_required_isolation_without_bubblewrap_refuses_to_grade(book, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no bwrap on this PATH
    path = submission(book, tmp_path)
    cmd = [sys.executable, "-m", "exercise_grader", "grade", str(path)]
    cmd += ["--solutions", str(book / "solutions"), "--feedback", str(tmp_path / "fb")]
    required = subprocess.run(
        [*cmd, "--isolation", "require"], capture_output=True, text=True, env=env
    )
    assert required.returncode == 2
    assert (
        "isolation is required" in required.stderr
        and "bubblewrap is not installed" in required.stderr
    )
    assert not (tmp_path / "fb").exists()  # nothing was graded
    auto = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert "isolation: audit hook only" in auto.stderr
    feedback = (tmp_path / "fb" / f"{NAME}.feedback.md").read_text()
    assert "Isolation: audit hook only, not isolated by the operating system" in feedback


def test_windows_is_told_to_use_wsl(book, tmp_path, monkeypatch, capsys):
    from exercise_grader.__main__ import main

    monkeypatch.setattr(sys, "platform", "win32")
    assert main(["grade", str(submission(book, tmp_path))]) == 2
    assert "WSL" in capsys.readouterr().err


def test_the_sandbox_dies_with_the_grader(book, tmp_path):
    loop = "while True:\n    pass"
    path = submission(book, tmp_path, extra=[loop])
    cmd = [sys.executable, "-m", "exercise_grader", "grade", str(path), "--cell-timeout", "120"]
    cmd += ["--isolation", MODE["mode"], "--solutions", str(book / "solutions")]
    grader = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        sandboxes = []
        for _ in range(600):  # until the sandbox runs the submission (at most 60 s)
            sandboxes = [
                p
                for p in grader.children(recursive=True)
                if "exercise_grader.sandbox" in " ".join(p.cmdline())
            ]
            if sandboxes:
                break
            time.sleep(0.1)
        assert sandboxes, "the grader started no sandbox"
    finally:
        grader.kill()  # as an instructor's Ctrl-\ or an out-of-memory kill would
        grader.wait(30)
    gone, alive = psutil.wait_procs(sandboxes, timeout=20)
    assert alive == [], [p.pid for p in alive]


def test_feedback_names_tests_and_cells_as_the_notebook_shows_them(book, known, tmp_path):
    path = submission(book, tmp_path, q1="def double(x)\n    return 2 * x")
    nb = read_notebook(path)
    number = 1 + next(i for i, c in enumerate(nb.cells) if c.source.startswith("def double"))
    r = grade(path, known)
    assert r.cell_errors[0].startswith(
        f"cell {number} (the code cell that starts `def double(x)`): SyntaxError"
    ), r.cell_errors
    from exercise_grader.report import feedback

    text = feedback(r)
    # grader.check prints "q1 - 1 result: ..." in the notebook; the feedback uses that label
    assert "- q1 - 1 `test_double_int` (public, 1 pt): missing" in text, text
    assert "- q2 - 2 `test_conv` (hidden, 1 pt): passed" in text, text


def test_building_exercises_imports_neither_torch_nor_resnet_lib(book, tmp_path):
    code = (
        "import sys\nfrom exercise_grader.__main__ import main\n"
        f"status = main(['build', '--solutions', {str(book / 'solutions')!r}, "
        f"'--out', {str(tmp_path / 'out')!r}])\n"
        "print(status, sorted(m for m in ('torch', 'resnet_lib') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip().splitlines()[-1] == "0 []", run.stdout + run.stderr
    assert (tmp_path / "out" / f"{NAME}.ipynb").exists()


def test_the_old_module_path_forwards(book, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "resnet_lib.grading", "build", "--check"]
        + ["--solutions", str(book / "solutions"), "--out", str(book / "exercises")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "exercises/ is up to date" in run.stdout
    assert "moved to `python -m exercise_grader`" in run.stderr
    import exercise_grader
    from resnet_lib.grading import uses_answer

    assert uses_answer is exercise_grader.uses_answer
