"""How long does grading take? One submission (budget 15 s) and a folder of 20 (budget 5 min).

    python benchmarks/grading.py                 # 20 submissions: solved and unfilled notebooks
    python benchmarks/grading.py --count 7 --jobs 1
    python benchmarks/grading.py --isolation off   # the audit hook alone, for comparison

The folder mixes, in turn for each exercise, its master (a fully correct submission, the slowest
case since every test runs to the end) and its unfilled learner notebook. Prints each
submission's time, the slowest, the folder's wall time and both against their budgets.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from exercise_grader.grade import grade_paths
    from exercise_grader.isolation import MODES, detect
    from exercise_grader.runner import Limits
    from exercise_grader.spec import masters

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--per-submission", type=float, default=15.0, help="budget, seconds")
    parser.add_argument("--folder", type=float, default=300.0, help="budget, seconds")
    parser.add_argument("--isolation", choices=MODES, default="auto", help="as grade's option")
    args = parser.parse_args()

    names = sorted(masters(ROOT / "solutions"))
    sources = [
        p
        for n in names
        for p in (ROOT / "solutions" / f"{n}.ipynb", ROOT / "exercises" / f"{n}.ipynb")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.count):
            src = sources[i % len(sources)]
            kind = "solved" if src.parent.name == "solutions" else "unfilled"
            shutil.copy(src, folder / f"student{i:02d}_{src.stem}_{kind}.ipynb")
        threads = 1 if args.jobs > 1 else 2
        start = time.perf_counter()
        isolation = detect(args.isolation)
        results = grade_paths(
            [folder], ROOT / "solutions", Limits(threads=threads), args.jobs, isolation=isolation
        )
        wall = time.perf_counter() - start
    for r in results:
        print(f"{r.path.name:58s} {r.status:8s} {r.total:5g}/{r.possible:<4g} {r.seconds:6.1f} s")
    print(f"isolation: {isolation.describe()}")
    slowest = max(r.seconds for r in results)
    print(
        f"\nslowest submission  {slowest:6.1f} s   budget {args.per_submission:g} s   "
        f"ratio {slowest / args.per_submission:.2f}"
    )
    print(
        f"folder of {len(results):2d}        {wall:6.1f} s   budget {args.folder:g} s   "
        f"ratio {wall / args.folder:.2f}   (--jobs {args.jobs})"
    )
    return 0 if all(r.graded for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
