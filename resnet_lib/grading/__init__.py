"""Moved: the grader is its own package, ``exercise_grader``, in the same distribution.

Kept so that exercise notebooks saved before the move, which say
``from resnet_lib.grading import uses_answer``, still run; ``python -m resnet_lib.grading``
forwards to ``python -m exercise_grader`` with a notice.
"""

from exercise_grader import uses_answer

__all__ = ["uses_answer"]
