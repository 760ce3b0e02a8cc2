"""Write (or check) the generated first cell of every chapter and research notebook.

    python tools/notebooks.py           # rewrite the first cells from _config.yml
    python tools/notebooks.py --check   # exit status 1 and a list if any is out of date

The first cell installs resnet_lib when a notebook runs alone (resnet_lib/bootstrap.py). It is
the cell tagged ``bootstrap``; a notebook without one gets it before its first code cell. The
exercises get theirs from ``python -m exercise_grader build``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resnet_lib.bootstrap import book_config, first_cell  # noqa: E402

NOTEBOOKS = ("chapters/*.ipynb", "exercises/research/*.ipynb")


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for pattern in NOTEBOOKS for p in root.glob(pattern))


def with_first_cell(nb: nbformat.NotebookNode, cell: dict) -> nbformat.NotebookNode:
    """``nb`` with ``cell`` as its bootstrap cell (before the first code cell if it had none)."""
    cells = nb.cells
    index = next(
        (i for i, c in enumerate(cells) if "bootstrap" in c.metadata.get("tags", [])), None
    )
    cell = nbformat.from_dict(dict(cell, id="bootstrap"))
    if index is None:
        index = next(i for i, c in enumerate(cells) if c.cell_type == "code")
        cells.insert(index, cell)
    else:
        cells[index] = cell
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def sync(root: Path = ROOT, check: bool = False) -> list[Path]:
    """Rewrite (or with ``check``, list) the notebooks whose first cell is out of date."""
    cell = first_cell(book_config(root))
    stale = []
    for path in notebooks(root):
        text = path.read_text()
        new = render(with_first_cell(nbformat.reads(text, as_version=4), cell))
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    stale = sync(check=args.check)
    for path in stale:
        state = "out of date" if args.check else "rewritten"
        print(f"{path.relative_to(ROOT)}: first cell {state}")
    if args.check and stale:
        print("run `python tools/notebooks.py` to regenerate them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
