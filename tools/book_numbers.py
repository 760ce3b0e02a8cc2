"""Sphinx extension (loaded from _config.yml): the ``{eval}`num.name``` role in the built book.

The chapters quote the numbers of their own run as ``{eval}`num.plain56_loss```, where ``num``
is the chapter's :class:`resnet_lib.Numbers`. In JupyterLab, jupyterlab-myst evaluates that
expression in the running kernel. myst-nb's own ``eval`` role would do the same, but only when
the book executes notebooks ``inline`` (without the execution cache); with ``cache`` it warns
"This document does not have a running kernel". So here the role pastes what ``Numbers.add``
recorded under the same name with myst-nb's glue (``num.plain56_loss``), which the cached,
executed notebook carries. The book's cells ran top to bottom before the page is rendered, so
it is the value the expression has in a kernel that ran them all.

Anything else inside ``{eval}`` is refused with a warning (the book builds with -W, so the build
fails): an expression the book cannot evaluate must not silently disappear from the page.
"""

from __future__ import annotations

import re

from docutils import nodes
from myst_nb.ext.glue.roles import PasteTextRole
from myst_nb.ext.glue.utils import glue_warning
from sphinx.application import Sphinx

#: What may stand inside {eval}`...` in a chapter: a number recorded on a Numbers named num.
NAME = re.compile(r"num\.[A-Za-z][A-Za-z0-9_]*")


class RecordedNumberRole(PasteTextRole):
    """``{eval}`num.key```: the text recorded as ``num.key`` in this notebook's run."""

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        if not NAME.fullmatch(self.text):
            return [], [
                glue_warning(
                    f"{{eval}}`{self.text}`: the book can only paste numbers recorded with "
                    f"Numbers.add, written as num.<name>",
                    self.document,
                    self.line,
                )
            ]
        return super().run()


def register(app: Sphinx) -> None:
    # After every extension's setup(), so that this replaces myst-nb's eval role.
    app.add_role("eval", RecordedNumberRole(), override=True)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", register)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
