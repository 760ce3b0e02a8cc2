"""The numbers the prose quotes are visible wherever a chapter runs.

A chapter quotes the numbers of its own run as ``{eval}`num.key``` (resnet_lib.Numbers). Three
places must show them:

- the built book: tools/book_numbers.py pastes them; a name it cannot find fails the build (-W),
  and ``test_built_pages_show_numbers_not_markup`` checks the HTML;
- JupyterLab (local and Binder): jupyterlab-myst evaluates the expressions in the kernel
  (tests/test_jupyterlab.py runs a chapter there in a browser);
- Colab and other viewers without MyST: the prose stays raw, so every number it quotes must be
  in a visible output above it, the table ``num.show()`` displays. ``test_colab_readers_see_*``
  checks that in the notebooks the book build executed.

The static tests need nothing but the notebooks; the others read the build (``make book``).
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest
from conftest import shown_tables

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
CI = os.environ.get("CI", "").lower() in {"true", "1", "yes"}
NOTEBOOKS = sorted(ROOT.glob("chapters/*.ipynb")) + sorted(ROOT.glob("exercises/research/*.ipynb"))
IN_BOOK = sorted(ROOT.glob("chapters/*.ipynb"))
EVAL = re.compile(r"\{eval\}`([^`]*)`")
NAME = re.compile(r"num\.([A-Za-z][A-Za-z0-9_]*)")
RAW_ROLE = re.compile(r"\{(glue|eval)(:\w+)?\}`")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# ------------------------------------------------------------------- static: the notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_prose_quotes_numbers_only_as_num_names(path: Path) -> None:
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] != "markdown":
            continue
        text = source(cell)
        assert "{glue" not in text, (
            f"{path.name} cell {i}: a {{glue}} role shows as raw markup in JupyterLab and on "
            f"Colab; record the number with num.add and quote it as {{eval}}`num.<name>`"
        )
        for expression in EVAL.findall(text):
            assert NAME.fullmatch(expression), (
                f"{path.name} cell {i}: {{eval}}`{expression}`: quote recorded numbers only, "
                f"as num.<name>; the book cannot evaluate other expressions"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_committed_notebooks_carry_no_run(path: Path) -> None:
    """No outputs, and none of the values jupyterlab-myst stores beside the prose: a reader
    would see someone else's numbers in the text before running anything."""
    for i, cell in enumerate(cells(path)):
        assert not cell.get("outputs"), f"{path.name} cell {i} has outputs"
        assert "user_expressions" not in cell["metadata"], (
            f"{path.name} cell {i} stores a run's {{eval}} values; strip them (nbstripout)"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_cells_that_show_numbers_are_hidden_in_the_book(path: Path) -> None:
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] == "code" and "num.show()" in source(cell):
            assert "remove-cell" in cell["metadata"].get("tags", []), (
                f"{path.name} cell {i} shows the numbers table for notebooks without MyST; the "
                f"book quotes them in the prose, so tag the cell remove-cell"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_numbers_are_recorded_and_shown_before_they_are_quoted(path: Path) -> None:
    """In source order: a name is quoted only after a cell recorded it and called num.show()."""
    shown: set[str] = set()
    for i, cell in enumerate(cells(path)):
        text = source(cell)
        if cell["cell_type"] == "code":
            if "num.show()" in text:
                shown |= set(re.findall(r"num\.add\(\s*[\"']([^\"']+)[\"']", text))
                # names built with f-strings (their prefix) or held in variables (anything):
                # checked in full on the executed notebooks below
                shown |= {p + "*" for p in re.findall(r"num\.add\(\s*f[\"']([^\"'{]*)\{", text)}
                if re.search(r"num\.add\(\s*(?![\"']|f[\"'])", text):
                    shown.add("*")
            continue
        for expression in EVAL.findall(text):
            key = NAME.fullmatch(expression)
            if key and key.group(1) not in shown:
                assert any(p.endswith("*") and key.group(1).startswith(p[:-1]) for p in shown), (
                    f"{path.name} cell {i} quotes {expression} before any cell records it and "
                    f"calls num.show()"
                )


# ------------------------------------------------------------- the executed notebooks (build)


def executed(path: Path) -> Path:
    """The copy of ``path`` that the book build executed (myst-nb writes it there)."""
    copy = BUILD / "jupyter_execute" / path.relative_to(ROOT)
    if not copy.is_file():
        message = f"{copy.relative_to(ROOT)} is missing: build the book first with `make book`"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return copy


def recorded(path: Path) -> dict[str, str]:
    """Every number ``path``'s run recorded with Numbers.add, by name: myst-nb moves the glued
    outputs out of the executed notebook into ``<name>.glue.json`` beside it."""
    glue = executed(path).with_suffix(".glue.json")
    values = {}
    for name, out in json.loads(glue.read_text()).items():
        if name.startswith("num."):
            plain = out["data"]["text/plain"]
            values[name] = ast.literal_eval("".join(plain) if isinstance(plain, list) else plain)
    return values


@pytest.mark.parametrize("path", IN_BOOK, ids=ids(IN_BOOK))
def test_colab_readers_see_every_quoted_number_above_the_prose(path: Path) -> None:
    """Colab renders no MyST: {eval}`num.x` stays raw, so its value must be in an output above."""
    nb_cells = cells(executed(path))
    values = recorded(path)
    seen: dict[str, str] = {}
    for i, cell in enumerate(nb_cells):
        if cell["cell_type"] == "code":
            seen.update(shown_tables(cell))
            continue
        for expression in EVAL.findall(source(cell)):
            assert expression in values, f"{path.name} cell {i}: {expression} was never recorded"
            assert expression in seen, (
                f"{path.name} cell {i} quotes {expression}, but no output above it shows it: "
                f"call num.show() in the cell that records it"
            )
            assert seen[expression] == values[expression].replace("|", "\\|"), expression


@pytest.mark.parametrize("path", IN_BOOK, ids=ids(IN_BOOK))
def test_built_pages_show_numbers_not_markup(path: Path) -> None:
    page = BUILD / "html" / path.relative_to(ROOT).with_suffix(".html")
    if not page.is_file():
        executed(path)  # skips or fails with the command to run
        pytest.fail(f"{page} is missing although the notebook was executed")
    html = page.read_text(encoding="utf-8")
    values = recorded(path)
    assert not RAW_ROLE.search(html), f"{page.name} shows a raw {{glue}} or {{eval}} role"
    assert "Numbers the text quotes" not in html, f"{page.name} shows a num.show() table"
    pasted = re.findall(r'<span class="pasted-text">([^<]*)</span>', html)
    quoted = [
        e for c in cells(path) if c["cell_type"] == "markdown" for e in EVAL.findall(source(c))
    ]
    assert len(pasted) >= len(quoted), (len(pasted), len(quoted))
    for expression in set(quoted):
        text = values[expression].replace("'", "’")  # Sphinx's smart quotes
        assert text in pasted or values[expression] in pasted, (expression, values[expression])
