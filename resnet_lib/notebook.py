"""Small helpers the chapters share: the numbers the prose quotes, code shown, tables."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

#: The MIME-type prefix under which myst-nb's ``glue(..., display=False)`` records a value.
GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` so that the book's prose can quote it ({glue:text}).

    This writes the output that myst-nb's ``glue`` writes (the test suite checks that it is the
    same), without importing myst-nb, which takes over a second because it loads Sphinx's parts.
    Where myst-nb is not installed (Colab, plain Jupyter) nothing reads the record, and nothing is
    recorded; outside a running IPython there is nowhere to record it."""
    import importlib.util

    if importlib.util.find_spec("myst_nb") is None:
        return
    from IPython import get_ipython
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    if get_ipython() is None:
        return
    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


class Numbers:
    """The numbers a page's prose quotes, recorded where the code computes them.

    The code records each number with the text the prose shows::

        num = Numbers()
        num.add("plain56_loss", history.train_loss[-1], ".3g")
        num.show()

    and the prose (a Markdown cell) quotes it as ``{eval}`num.plain56_loss```. That one line
    reads right wherever the chapter runs:

    - in JupyterLab, locally and on Binder, jupyterlab-myst evaluates ``num.plain56_loss`` in the
      running kernel when the Markdown cell runs: the prose shows the reader's own number;
    - in the built book, the value recorded here under the same name is pasted in
      (``tools/book_numbers.py``; the book's cells ran top to bottom, so it is the same value);
    - where no MyST renders (Colab, VS Code, GitHub's viewer), the role stays raw, and
      :meth:`show` has put the same names and values in a table in the output above it.
    """

    def __init__(self, name: str = "num") -> None:
        self._name = name
        self._text: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._unshown: list[str] = []

    def add(self, key: str, value: Any, fmt: str = "") -> Any:
        """Record ``value`` as ``format(value, fmt)`` (by default: ints with thousands
        separators, floats to 3 significant digits, the rest as ``str``); returns ``value``."""
        if not key.isidentifier() or key.startswith("_"):
            raise ValueError(
                f"{key!r} cannot follow 'num.' in the prose; use a Python name such as plain56_loss"
            )
        if fmt:
            text = format(value, fmt)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            text = str(value)
        else:
            text = f"{value:,}" if isinstance(value, int) else f"{value:.3g}"
        self._text[key], self._values[key] = text, value
        if key not in self._unshown:
            self._unshown.append(key)
        glue(f"{self._name}.{key}", text)
        return value

    def value(self, key: str) -> Any:
        """The value recorded as ``key``, unformatted (for the asserts that check the prose)."""
        return self._values[key]

    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._text[key]
        except KeyError:
            raise AttributeError(
                f"no number {key!r} has been recorded yet; run the cells above "
                "this one (each number is recorded by the code that computes "
                "it)"
            ) from None

    def __dir__(self) -> list[str]:
        return sorted(self._text)

    def __repr__(self) -> str:
        return f"Numbers({len(self._text)} recorded)"

    def table(self, keys: Sequence[str] | None = None) -> str:
        """The names and values of ``keys`` (default: all) as a Markdown table."""
        keys = self._text if keys is None else keys
        return markdown_table(
            ["in the text", "value"], [[f"`{self._name}.{k}`", self._text[k]] for k in keys]
        )

    def show(self) -> None:
        """Display the numbers recorded since the last ``show``, for notebooks shown without
        MyST (the book removes the cell that calls this)."""
        from IPython.display import Markdown, display

        if self._unshown:
            display(
                Markdown("Numbers the text quotes, from this run:\n\n" + self.table(self._unshown))
            )
        self._unshown = []


def show_source(obj: Any) -> None:
    """Display the source code of ``obj`` as it is in resnet_lib: one copy, never two."""
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(obj)}```"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; integers get thousands separators, and columns whose
    first row holds a number align right."""

    def is_number(v: Any) -> bool:
        return isinstance(v, int | float) or (
            isinstance(v, str) and bool(v) and set(v) <= set("0123456789,.%+-() ×e")
        )

    def cell(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    right = [is_number(v) for v in rows[0]] if rows else [False] * len(header)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if r else ":---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def show_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Display :func:`markdown_table` in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(markdown_table(header, rows)))
