"""Tests of the built HTML book (`make book` builds it into _build/html).

1. Launch links: every notebook page links to Binder and Colab at the notebook's path in the
   repository named in _config.yml, and that file exists (and is tracked by git, under CI).
2. A headless Chromium (Debian's /usr/bin/chromium, driven by Python playwright) opens every
   page from disk with the network cut off and checks what a reader sees: the title, typeset
   math, code cells, plots that loaded, launch links, and no errors from the book's own scripts.

Outside CI, a missing browser or a missing build skips these tests with the command to run;
with CI=true, both fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from conftest import CI, unavailable

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())

# The repository every launch link must point into, from _config.yml only.
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
OWNER, REPO = urlparse(REPO_URL).path.strip("/").split("/")[:2]
BRANCH = CONFIG["repository"].get("branch", "main")
BOOK_DIR = (CONFIG["repository"].get("path_to_book") or "").strip("/")
LAB = CONFIG["launch_buttons"].get("notebook_interface") == "jupyterlab"


def toc_docnames() -> list[str]:
    """Every document in _toc.yml, in reading order."""
    names = [TOC["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key, []))

    walk(TOC.get("parts", []) + TOC.get("chapters", []))
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in names]


DOCS = toc_docnames()
# Notebook pages: by their source, or by the copy of it the build keeps (so that a notebook
# removed from the repository but still in the build is caught by test_launch_links).
NOTEBOOKS = [
    d
    for d in DOCS
    if (ROOT / f"{d}.ipynb").is_file() or (HTML / "_sources" / f"{d}.ipynb").is_file()
]


def built_page(docname: str) -> Path:
    page = HTML / f"{docname}.html"
    if not page.is_file():
        unavailable(f"{page.relative_to(ROOT)} is missing: build the book first with `make book`")
    return page


class LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "a" and attr.get("href"):
            self.hrefs.append(attr["href"])
        if tag == "script" and attr.get("src"):
            self.scripts.append(attr["src"])


def parse(page: Path) -> LinkParser:
    parser = LinkParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_toc_lists_notebooks() -> None:
    missing = [d for d in DOCS if not any((ROOT / f"{d}{s}").is_file() for s in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists documents that do not exist: {missing}"
    assert NOTEBOOKS, "_toc.yml lists no notebook, so no launch link can be checked"


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_launch_links(docname: str) -> None:
    repo_path = "/".join(p for p in (BOOK_DIR, f"{docname}.ipynb") if p)
    colab = f"https://colab.research.google.com/github/{OWNER}/{REPO}/blob/{BRANCH}/{repo_path}"
    urlpath = ("lab/tree/" if LAB else "tree/") + repo_path
    binder = f"https://mybinder.org/v2/gh/{OWNER}/{REPO}/{BRANCH}?urlpath={urlpath}"

    hrefs = parse(built_page(docname)).hrefs
    assert colab in hrefs, f"no Colab link {colab} in {docname}.html"
    assert binder in hrefs, f"no Binder link {binder} in {docname}.html"

    # Every launch link on the page, whatever its form, must name a file in this repository.
    launch = [h for h in hrefs if "colab.research.google.com" in h or "mybinder.org" in h]
    for href in launch:
        m = re.search(
            rf"/{OWNER}/{REPO}/(?:blob/)?{BRANCH}(?:/|\?urlpath=(?:lab/)?tree/)(.+)$", href
        )
        assert m, f"launch link does not point into {OWNER}/{REPO}@{BRANCH}: {href}"
        target = ROOT / m.group(1)
        assert target.is_file(), f"{href} points at {m.group(1)}, which is not in the repository"
        if CI and (ROOT / ".git").exists():
            tracked = subprocess.run(
                ["git", "ls-files", "--error-unmatch", m.group(1)], cwd=ROOT, capture_output=True
            )
            assert tracked.returncode == 0, f"{m.group(1)} is not committed, so {href} would 404"


def test_no_mathjax_from_cdn() -> None:
    """MathJax is served from the build (_config.yml: mathjax_path), never from a CDN."""
    for docname in DOCS:
        page = built_page(docname)
        scripts = parse(page).scripts
        mathjax = [s for s in scripts if "mathjax" in s.lower()]
        if 'class="math' in page.read_text(encoding="utf-8"):  # Sphinx adds MathJax only there
            assert mathjax, f"{docname}.html has math but loads no MathJax"
        remote = [
            s for s in mathjax if urlparse(s).scheme in {"http", "https"} or s.startswith("//")
        ]
        assert not remote, f"{docname}.html loads MathJax from the network: {remote}"


# ---------------------------------------------------------------------------- browser tests


class Visit:
    """One page opened offline: everything the page requested, logged or threw."""

    def __init__(self, browser, page_file: Path) -> None:
        self.blocked: list[str] = []
        self.console_errors: list[tuple[str, str]] = []  # (text, url of the script or resource)
        self.page_errors: list[str] = []
        self.failed: list[str] = []  # file:// requests that failed (missing files)

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = page = context.new_page()
        page.route("**/*", self._route)
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.page_errors.append(f"{err}\n{err.stack or ''}"))
        page.on("requestfailed", lambda req: self.failed.append(req.url))
        page.goto(page_file.as_uri(), wait_until="load")
        self.has_math = page.locator(".math").count() > 0
        self.mathjax_ready = self.has_math and self._wait_for_mathjax()
        page.wait_for_load_state("networkidle")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.console_errors.append((msg.text, (msg.location or {}).get("url", "")))

    def _wait_for_mathjax(self) -> bool:
        from playwright.sync_api import Error

        try:
            self.page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000
            )
            self.page.evaluate("() => MathJax.startup.promise")
            return True
        except Error:
            return False

    def own_errors(self) -> list[str]:
        """Errors from the book's own files (file://); those of blocked third-party URLs are
        reported by third_party_errors instead."""
        errors = [e for e in self.page_errors if not third_party(e)]
        errors += [f"{text} ({url})" for text, url in self.console_errors if not third_party(url)]
        return errors

    def third_party_errors(self) -> list[str]:
        errors = [e for e in self.page_errors if third_party(e)]
        errors += [f"{text} ({url})" for text, url in self.console_errors if third_party(url)]
        return errors


def third_party(text: str) -> bool:
    """Whether an error comes from a script or resource on another host (a CDN)."""
    return bool(re.search(r"https?://", text)) and "file://" not in text


def allowed_blocked() -> list[str]:
    """Network requests the built pages may make: none, except the widget manager's CDN when
    tools/vendor_assets.py ran without npm (then tools/offline_assets.py falls back to myst-nb's
    CDN default). CI installs npm, so there the list is always empty."""
    if CI or (ROOT / "_vendor" / "widgets" / "embed-amd.js").is_file():
        return []
    from myst_nb.core.config import ipywidgets_js_factory

    return list(ipywidgets_js_factory())


@pytest.fixture(scope="module")
def visits(browser, tmp_path_factory):
    # Full-page screenshots, for a person to look at: into $SCREENSHOTS if set (the Actions
    # workflow keeps them), else a temporary folder; never into the repository.
    screenshots = Path(os.environ.get("SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    cache: dict[str, Visit] = {}

    def visit(docname: str) -> Visit:
        if docname not in cache:
            cache[docname] = Visit(browser, built_page(docname))
            screenshots.mkdir(parents=True, exist_ok=True)
            shot = screenshots / f"{docname.replace('/', '__')}.png"
            cache[docname].page.screenshot(path=str(shot), full_page=True)
        return cache[docname]

    return visit


@pytest.mark.parametrize("docname", DOCS)
def test_page_renders_offline(visits, docname: str) -> None:
    v = visits(docname)
    page = v.page

    h1 = page.locator("article h1").first.inner_text().strip().rstrip("#").strip()
    assert h1, f"{docname}: no title"
    assert h1 in page.title(), f"{docname}: <title> {page.title()!r} lacks the heading {h1!r}"

    missing = [u for u in v.failed if u.startswith("file:")]
    assert not missing, f"{docname}: files the page needs are missing from the build: {missing}"
    allowed = allowed_blocked()
    off_list = [u for u in v.blocked if u.split("?")[0] not in allowed]
    assert not off_list, f"{docname}: the page asks the network for {off_list}; offline it fails"

    if v.has_math:
        assert v.mathjax_ready, f"{docname}: MathJax did not start (check mathjax_path, _vendor/)"
        untypeset = page.evaluate(
            """() => Array.from(document.querySelectorAll('.math'))
                   .filter(el => !el.querySelector('mjx-container'))
                   .map(el => el.textContent.slice(0, 80))"""
        )
        assert not untypeset, f"{docname}: math left as raw TeX: {untypeset[:5]}"
        assert not page.locator("mjx-merror").count(), f"{docname}: MathJax reported TeX errors"
    raw_tex = page.evaluate(
        r"""() => {
            const body = document.querySelector('article').cloneNode(true);
            body.querySelectorAll('pre, code, mjx-container').forEach(el => el.remove());
            return (body.textContent.match(/\\\(|\\\[|\$\$/g) || []).length;
        }"""
    )
    assert raw_tex == 0, f"{docname}: {raw_tex} raw TeX delimiters left in the text"

    broken = page.evaluate(
        """() => Array.from(document.querySelectorAll('article img'))
               .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)"""
    )
    assert not broken, f"{docname}: images that did not load: {broken}"

    # Errors in the book's own scripts (file://, vendored libraries included) fail the test.
    # Errors of third-party scripts, those loaded from another host, can only come from the
    # allowed CDN fallback above (any other request to the network already failed the test):
    # offline, that CDN is unreachable and the widgets stay blank. They are listed as warnings.
    assert not v.own_errors(), f"{docname}: errors in the page's scripts: {v.own_errors()}"
    for error in v.third_party_errors():
        warnings.warn(f"{docname}: third-party error (CDN fallback): {error}", stacklevel=1)


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_notebook_page(visits, docname: str) -> None:
    page = visits(docname).page
    assert page.locator("div.cell div.cell_input").count() > 0, f"{docname}: no code cells"
    assert page.locator(".math mjx-container").count() > 0, f"{docname}: no typeset math"
    plots = page.evaluate(
        """() => Array.from(document.querySelectorAll('div.cell_output img'))
               .filter(img => img.complete && img.naturalWidth > 0).length"""
    )
    assert plots > 0, f"{docname}: no plot image that loaded"
    for host in ("colab.research.google.com", "mybinder.org"):
        assert page.locator(f'a[href*="{host}"]').count() > 0, f"{docname}: no {host} link"
    widgets = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if widgets and allowed_blocked():
        warnings.warn(f"{docname}: no vendored widget manager, widgets unchecked", stacklevel=1)
    elif widgets:
        assert page.locator(".widget-container, .jupyter-widgets").count() > 0, (
            f"{docname}: {widgets} widget views embedded but none rendered"
        )
