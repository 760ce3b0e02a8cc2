"""Exercises that grade themselves: building them from the master notebooks, and grading.

- ``python -m exercise_grader build`` regenerates ``exercises/`` from ``solutions/``.
- ``python -m exercise_grader grade PATH... [--csv FILE]`` grades notebooks or folders.

This module stays light (no otter, no torch) because every exercise notebook imports it.
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["uses_answer"]


@contextlib.contextmanager
def uses_answer(*questions: str):
    """Run a cell that uses the learner's answers; if it fails, say which question to finish.

    Exercise notebooks run top to bottom before they are filled in. A demonstration cell that
    calls the learner's code is wrapped in ``with uses_answer("q2"):`` so that, until q2 works,
    the cell prints what to do instead of raising. Once the answer works the body runs as usual.
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - any failure of unfinished code is reported, not raised
        names = " and ".join(questions) or "the questions above"
        print(
            f"This cell uses your answer to {names}; it will run once that works "
            f"(check it with grader.check). It stopped with {type(err).__name__}: {err}",
            file=sys.stdout,
        )
