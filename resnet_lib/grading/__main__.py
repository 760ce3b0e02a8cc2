"""``python -m resnet_lib.grading`` is now ``python -m exercise_grader``: forward, with a notice."""

import sys

from exercise_grader.__main__ import main

if __name__ == "__main__":
    print(
        "note: `python -m resnet_lib.grading` has moved to `python -m exercise_grader`; "
        "this forwarding will be removed in a later version",
        file=sys.stderr,
    )
    sys.exit(main())
