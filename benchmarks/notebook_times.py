"""Execute each chapter notebook in a fresh kernel and print how long it took.

    python benchmarks/notebook_times.py                      # every chapter, current profile
    python benchmarks/notebook_times.py --profile quick chapters/01_degradation.ipynb
    python benchmarks/notebook_times.py --save-dir /tmp/executed   # keep the executed notebooks

The quick profile's budget is one minute per notebook on a 2-core CPU (--budget), and eight
minutes for the whole book, all chapters one after the other (--book-budget; the total line says
whether the notebooks run met it). Times include
starting the kernel and importing torch. Run it on a quiet machine: other work on the same cores
slows the notebooks several times over. Exit status 1 if a notebook fails (not if it is slow).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import prompt_replies  # noqa: E402

prompt_replies.install()  # as in the book build: no wait for a reply that has arrived


def first_output(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                return out["text"].splitlines()[0]
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, default=sorted((ROOT / "chapters").glob("*.ipynb"))
    )
    parser.add_argument(
        "--profile",
        choices=["quick", "gpu", "full"],
        default=None,
        help="RESNET_BOOK_PROFILE for the kernels (default: leave as is)",
    )
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per notebook")
    parser.add_argument(
        "--book-budget", type=float, default=480.0, help="seconds for all the notebooks run"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--save-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["RESNET_BOOK_PROFILE"] = args.profile
    failed = False
    rows = []
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            timeout=args.timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        start = time.perf_counter()
        try:
            client.execute()
            status = "ok"
        except Exception as err:  # report and go on with the next notebook
            status, failed = f"FAILED: {type(err).__name__}", True
        seconds = time.perf_counter() - start
        if args.save_dir:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, args.save_dir / path.name)
        within = "yes" if seconds <= args.budget else "NO"
        rows.append((path.name, seconds, within, status, first_output(nb)))
        print(
            f"{path.name:32s} {seconds:7.1f} s  within {args.budget:.0f} s: {within:3s}  "
            f"{status}  [{first_output(nb)}]",
            flush=True,
        )
    total = sum(r[1] for r in rows)
    within = "yes" if total <= args.book_budget else "NO"
    print(
        f"{'total':32s} {total:7.1f} s for {len(rows)} notebooks  "
        f"within {args.book_budget:.0f} s: {within}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
