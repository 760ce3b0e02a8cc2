"""The book's exercises: in sync with their masters, solutions score full marks, unfilled zero.

Grading runs every master notebook in solutions/ and every learner notebook in exercises/
through the same sandboxed grader learners and instructors use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exercise_grader.build import build
from exercise_grader.grade import grade_paths
from exercise_grader.runner import Limits
from exercise_grader.spec import load_exercise, masters

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
EXPECTED = [
    "ex01_gradient_flow_equations",
    "ex02_plain_to_residual",
    "ex03_hessian_conditioning",
    "ex04_resnet_from_scratch",
    "ex05_gradient_flow_tool",
    "ex06_skip_ablation",
    "ex07_preactivation_blocks",
]
LIMITS = Limits(threads=1)


def test_every_exercise_has_a_master():
    assert sorted(masters(SOLUTIONS)) == EXPECTED


def test_exercises_are_in_sync_with_solutions():
    assert build(SOLUTIONS, EXERCISES, check=True) == [], "run: python -m exercise_grader build"


@pytest.mark.parametrize("name", EXPECTED)
def test_every_question_has_public_and_hidden_tests(name):
    spec = load_exercise(SOLUTIONS / f"{name}.ipynb")
    assert spec.questions
    for q in spec.questions:
        assert any(t.hidden for t in q.tests) and any(not t.hidden for t in q.tests), q.name
        assert q.points > 0


def test_solutions_score_full_marks():
    results = grade_paths([SOLUTIONS], limits=LIMITS, jobs=2)
    assert len(results) == len(EXPECTED)
    report = {
        r.path.name: (r.status, r.total, r.possible, r.problems, r.cell_errors) for r in results
    }
    for r in results:
        assert r.status == "ok" and r.total == r.possible > 0, report[r.path.name]


def test_unfilled_exercises_score_zero_and_run_cleanly():
    results = grade_paths([EXERCISES], limits=LIMITS, jobs=2)
    assert len(results) == len(EXPECTED)
    for r in results:
        assert r.total == 0 and r.possible > 0, (r.path.name, r.total)
        # an unfilled notebook runs top to bottom: nothing outside the checks raises
        assert r.status == "ok" and not r.cell_errors, (r.path.name, r.cell_errors)
        failed = [t for q in r.questions for t in q.tests if t.status not in ("fail",)]
        assert not failed, [(t.test.name, t.status, t.message) for t in failed]
