"""Small helpers the chapters share: record a number for the prose, show code, show a table."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` so that the book's prose can quote it ({glue:text}).

    Inside the book build this is myst-nb's ``glue``; elsewhere (Colab, plain Jupyter) myst-nb may
    be missing and there is nothing to record, so it does nothing."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return
    _glue(name, value, display=display)


def show_source(obj: Any) -> None:
    """Display the source code of ``obj`` as it is in resnet_lib: one copy, never two."""
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(obj)}```"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; integers get thousands separators, and columns whose
    first row holds a number align right."""
    def is_number(v: Any) -> bool:
        return isinstance(v, int | float) or (isinstance(v, str) and bool(v)
                                              and set(v) <= set("0123456789,.%+-() ×e"))

    def cell(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    right = [is_number(v) for v in rows[0]] if rows else [False] * len(header)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def show_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Display :func:`markdown_table` in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(markdown_table(header, rows)))
