"""Command line: ``python -m exercise_grader {grade,build} ...`` (see --help)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .isolation import MODES, IsolationUnavailable
from .runner import WINDOWS, GiB, Limits
from .spec import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exercise_grader",
        description="Grade exercise notebooks, or regenerate exercises/ from solutions/.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "grade",
        help="grade notebooks or folders of notebooks",
        description="Grade each notebook (a folder gives its *.ipynb files) against the master's "
        "public and hidden tests. Exit status 0 when every submission was graded.",
    )
    g.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    g.add_argument("--csv", type=Path, help="write file,status,total,possible,q1,... here")
    g.add_argument(
        "--feedback",
        type=Path,
        default=Path("feedback"),
        help="folder for one <notebook>.feedback.md per submission (default: ./feedback)",
    )
    g.add_argument(
        "--solutions", type=Path, help="folder of master notebooks (default: the repo's)"
    )
    g.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="submissions graded at once (default: 2, or 1 on one core)",
    )
    g.add_argument(
        "--cell-timeout",
        type=float,
        default=Limits.cell_timeout,
        help="seconds a cell or test may run (default %(default)s)",
    )
    g.add_argument(
        "--wall-timeout",
        type=float,
        default=Limits.wall_timeout,
        help="seconds a whole submission may run (default %(default)s)",
    )
    g.add_argument(
        "--memory-gb",
        type=float,
        default=Limits.memory / GiB,
        help="address-space limit of the sandbox in GiB (default %(default)s)",
    )
    g.add_argument(
        "--isolation",
        choices=MODES,
        default="auto",
        help="auto (default): each submission in a bubblewrap sandbox where bubblewrap works "
        "(Linux), else the audit hook alone, as the report then says; require: refuse to grade "
        "without bubblewrap (use it for summative work); off: the audit hook alone",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="print only the table")
    b = sub.add_parser("build", help="regenerate exercises/ from solutions/")
    b.add_argument("--solutions", type=Path)
    b.add_argument("--out", type=Path, default=None, help="default: exercises/ beside solutions/")
    b.add_argument("--check", action="store_true", help="only report out-of-date files (exit 1)")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            return _build(args)
        return _grade(args)
    except (SpecError, IsolationUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _build(args) -> int:
    from .build import build
    from .spec import default_solutions_dir

    solutions = args.solutions or default_solutions_dir()
    out = args.out or solutions.parent / "exercises"
    problems = build(solutions, out, check=args.check)
    for p in problems:
        print(p, file=sys.stderr)
    if args.check:
        print(
            "exercises/ is up to date" if not problems else "run: python -m exercise_grader build"
        )
    else:
        print(f"wrote the learner notebooks to {out}")
    return 1 if problems else 0


def _grade(args) -> int:
    if sys.platform == "win32":
        print(f"error: {WINDOWS}", file=sys.stderr)
        return 2
    from .grade import grade_paths
    from .isolation import detect
    from .report import feedback, table, write_csv, write_feedback

    isolation = detect(args.isolation)
    print(f"isolation: {isolation.describe()}", file=sys.stderr)

    limits = Limits(
        cell_timeout=args.cell_timeout,
        wall_timeout=args.wall_timeout,
        memory=int(args.memory_gb * GiB),
        threads=1 if args.jobs > 1 else min(2, os.cpu_count() or 1),
    )

    def progress(r) -> None:
        if not args.quiet:
            print(f"graded {r.path} ({r.status}, {r.seconds:.1f} s)", file=sys.stderr)

    results = grade_paths(
        args.paths, args.solutions, limits, jobs=args.jobs, progress=progress, isolation=isolation
    )
    print(table(results))
    if args.csv:
        write_csv(results, args.csv)
        print(f"\nCSV: {args.csv}")
    written = write_feedback(results, args.feedback)
    print(f"feedback: {len(written)} file(s) in {args.feedback}/")
    if len(results) == 1 and not args.quiet:
        print("\n" + feedback(results[0]))
    ungraded = [r for r in results if not r.graded]
    return 1 if ungraded else 0


if __name__ == "__main__":
    sys.exit(main())
