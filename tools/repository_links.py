"""Sphinx extension (loaded from _config.yml): links into the book's repository, from one place.

The repository's address is written once, as ``repository.url`` in ``_config.yml`` (Jupyter Book
hands it to the theme as ``html_theme_options["repository_url"]``). Pages link into it with
roles instead of typing it again:

- ``{notebook-links}`exercises/ex01_gradient_flow_equations.ipynb``` gives "open on GitHub ·
  open in Colab · open in Binder" for that notebook (the file must exist: a missing one is a
  build error);
- ``{repository}`the repository``` links the text to the repository.

The addresses are built by ``resnet_lib.bootstrap.BookConfig``, the same code that writes the
notebooks' first cells, so every copy agrees with ``_config.yml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxRole

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_lib.bootstrap import BookConfig, book_config  # noqa: E402


def _config(role: SphinxRole) -> BookConfig:
    return book_config(Path(role.env.srcdir))


def _link(text: str, url: str) -> nodes.reference:
    return nodes.reference(text, text, refuri=url)


class NotebookLinks(SphinxRole):
    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        path = self.text.strip()
        if not (Path(self.env.srcdir) / path).is_file():
            message = self.inliner.reporter.error(
                f"{{notebook-links}}`{path}`: no such notebook in the repository", line=self.lineno
            )
            return [], [message]
        config = _config(self)
        links = [
            _link("open on GitHub", config.github(path)),
            nodes.Text(" · "),
            _link("open in Colab", config.colab(path)),
            nodes.Text(" · "),
            _link("open in Binder", config.binder(path)),
        ]
        return links, []


class RepositoryLink(SphinxRole):
    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        return [_link(self.text, _config(self).repository_url)], []


def setup(app: Sphinx) -> dict:
    app.add_role("notebook-links", NotebookLinks())
    app.add_role("repository", RepositoryLink())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
