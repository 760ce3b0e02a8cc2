"""Sphinx extension (loaded from _config.yml): keep the pages' JavaScript local and working.

- ``_config.yml`` points ``mathjax_path`` and ``nb_ipywidgets_js`` at copies under ``_vendor/``
  that ``tools/vendor_assets.py`` puts there. A build without them fails clearly (MathJax) or
  falls back to the CDN with a message (widgets, when npm was missing).
- With Thebe off, the scripts sphinx-thebe adds to every page anyway are dropped: Jupyter Book
  always loads sphinx-thebe, whose configuration snippet (``const THEBE_JS_URL = ...``) lands
  twice in each page and throws "Identifier 'THEBE_JS_URL' has already been declared".
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError
from sphinx.util import logging

logger = logging.getLogger(__name__)

VENDOR = "_vendor"
HINT = "run `python tools/vendor_assets.py` (or `make book`) before building"


def check_assets(app: Sphinx, config: Config) -> None:
    src = Path(app.srcdir)
    if (src / "_static").is_dir():
        # Jupyter Book 1 then adds every .js/.css under *every* html_static_path entry,
        # _vendor included, to every page (jupyter_book/config.py): megabytes per page.
        raise ConfigError(
            "found _static/: Jupyter Book would inject all of _vendor/ into every page; "
            "put custom CSS/JS elsewhere and list it in html_css_files/html_js_files"
        )
    mathjax = src / VENDOR / config.mathjax_path
    if not config.mathjax_path.startswith(("http:", "https:")) and not mathjax.is_file():
        raise ConfigError(f"MathJax not found at {mathjax}: {HINT}")
    missing = [js for js in config.nb_ipywidgets_js if not (src / VENDOR / js).is_file()]
    if missing:
        from myst_nb.core.config import ipywidgets_js_factory

        logger.info(
            f"offline_assets: {', '.join(missing)} missing from {VENDOR}/, so pages with "
            f"widgets load the widget manager from the CDN; to serve it from the book, install "
            f"npm and {HINT}"
        )
        config.nb_ipywidgets_js = ipywidgets_js_factory()


def thebe_enabled(app: Sphinx) -> bool:
    return bool(app.config.html_theme_options.get("launch_buttons", {}).get("thebe"))


def drop_thebe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if thebe_enabled(app) or "script_files" not in context:
        return
    context["script_files"] = [
        js
        for js in context["script_files"]
        if "sphinx-thebe" not in str(getattr(js, "filename", js))
        and "THEBE_JS_URL" not in getattr(js, "attributes", {}).get("body", "")
    ]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", check_assets)
    app.connect("html-page-context", drop_thebe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
