"""The first cell of every notebook, and the one place its repository URL comes from.

A notebook opened alone (on Colab, or in a fresh environment) has no ``resnet_lib``, so its first
cell must install it before anything imports it. That cell is generated: it is the source of
:func:`install_missing` below followed by one call with this book's requirements, written into
the chapters and research notebooks by ``python tools/notebooks.py`` and into the exercises by
``python -m exercise_grader build``. The repository URL in it, like every other copy of it
(launch links, ``pyproject.toml``, links to the published book), derives from ``repository.url``
in ``_config.yml`` (:func:`book_config`); ``tests/test_repository.py`` fails on any copy that
disagrees.
"""

from __future__ import annotations

import inspect
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository, when resnet_lib runs from a clone

#: The first line of every generated first cell (Colab shows it as the collapsed cell's title).
TITLE = "# @title Install what this notebook needs when it is missing (Colab, a new environment)"
MARKER = "# Generated from _config.yml by resnet_lib/bootstrap.py; do not edit this cell by hand."
#: Where otter-grader's in-notebook checks are known to work: 5.7.1 installs beside Colab's
#: ipywidgets 7 (6.0 and later need ipywidgets 8); 7.0.0 is what CI tests with.
OTTER = "otter-grader>=5.7.1,<=7.0.0"


@dataclass(frozen=True)
class BookConfig:
    """What ``_config.yml`` says about where the book lives."""

    repository_url: str  # https://github.com/<owner>/<repo>
    branch: str
    published_url: str  # where GitHub Pages serves the built book, ending in "/"
    pages: frozenset[str] = frozenset()  # the book's documents (_toc.yml), without suffix

    @property
    def owner_repo(self) -> str:
        return re.sub(r"^https://github\.com/", "", self.repository_url).strip("/")

    def install_requirement(self) -> str:
        """pip's requirement for resnet_lib from this repository's branch."""
        return f"resnet_lib @ git+{self.repository_url}@{self.branch}"

    def page(self, notebook: str) -> str:
        """The published page of ``notebook`` (a path such as ``chapters/03_blocks.ipynb``)."""
        return self.published_url + re.sub(r"\.(ipynb|md)$", ".html", notebook)

    def colab(self, notebook: str) -> str:
        return (
            f"https://colab.research.google.com/github/{self.owner_repo}/blob/"
            f"{self.branch}/{notebook}"
        )

    def binder(self, notebook: str) -> str:
        return f"https://mybinder.org/v2/gh/{self.owner_repo}/{self.branch}?labpath={notebook}"

    def github(self, notebook: str) -> str:
        return f"{self.repository_url}/blob/{self.branch}/{notebook}"

    def link(self, target: str) -> str:
        """Where a link to ``target`` (a path from the repository's root, with an optional
        ``#anchor``) should point from a notebook that may be opened alone: the published page
        if the book has one, else the file on GitHub."""
        path, _, anchor = target.partition("#")
        in_book = re.sub(r"\.(ipynb|md)$", "", path) in self.pages
        return (self.page(path) if in_book else self.github(path)) + (f"#{anchor}" * bool(anchor))


def pages_url(repository_url: str) -> str:
    """GitHub Pages' address of a project site: https://<owner>.github.io/<repo>/."""
    owner, repo = re.sub(r"^https://github\.com/", "", repository_url).strip("/").split("/")
    return f"https://{owner.lower()}.github.io/{repo}/"


def book_config(root: Path = ROOT) -> BookConfig:
    """Read ``_config.yml`` and ``_toc.yml`` of the repository at ``root`` (needs PyYAML, which
    the book's tools install; resnet_lib itself does not)."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(
            f"_config.yml: repository.url must be https://github.com/<owner>/<repo>; got {url!r}"
        )
    published = (config.get("html") or {}).get("baseurl") or pages_url(url)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return BookConfig(
        url, config["repository"].get("branch", "main"), published.rstrip("/") + "/", toc_pages(toc)
    )


def install_missing(packages: dict[str, str], help_url: str) -> None:
    """Install the ``packages`` ({module: pip requirement}) whose module cannot be imported.

    Every distribution already installed is kept at its version (pip gets them as constraints),
    so that the install adds packages beside Colab's own instead of replacing them. If that
    cannot be satisfied, pip may replace some; if it replaced one this session has already
    imported, the kernel must restart before the new version can load, and this says so and
    stops. pip's messages that matter (what it installed, its errors) are shown; a failure
    raises with what to do."""
    import importlib
    import importlib.metadata as metadata
    import importlib.util
    import subprocess
    import sys
    import tempfile

    missing = [req for module, req in packages.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return
    installed = {
        d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]
    }
    top_level = metadata.packages_distributions()
    imported = {dist for module in list(sys.modules) for dist in top_level.get(module, [])}
    before = {name: version for name, version in installed.items() if name in imported}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as keep:
        keep.write("\n".join(f"{name}=={version}" for name, version in installed.items()))
    print(f"Installing {', '.join(missing)} (about a minute) ...", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, "--constraint", keep.name, *missing], capture_output=True, text=True
    )
    if result.returncode != 0:  # what is installed cannot stay as it is: let pip change it
        result = subprocess.run([*pip, *missing], capture_output=True, text=True)
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith(("Successfully installed", "ERROR", "error:")) or "conflict" in line:
            print(line)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise RuntimeError(
            f"pip could not install {', '.join(missing)}:\n{tail}\n\nCheck the "
            f"network connection and run this cell again; to install by hand, "
            f"run: pip install {' '.join(repr(r) for r in missing)}\n"
            f"(see {help_url})"
        )
    importlib.invalidate_caches()
    still = [module for module in packages if importlib.util.find_spec(module) is None]
    if still:
        raise ModuleNotFoundError(
            f"pip reported success, but {', '.join(still)} still cannot "
            f"be imported by {sys.executable}; restart the kernel and run "
            f"this cell again (see {help_url})"
        )
    changed = {}
    for name, version in before.items():
        try:
            now = metadata.version(name)
        except metadata.PackageNotFoundError:
            now = "removed"
        if now != version:
            changed[name] = f"{version} -> {now}"
    if changed:
        raise RuntimeError(
            "pip replaced packages that this session had already imported: "
            + ", ".join(f"{k} {v}" for k, v in sorted(changed.items()))
            + ".\nRestart the kernel (on Colab: Runtime > Restart session), then "
            "run the notebook again from the top: this cell will find everything "
            "installed and go on."
        )


def install_source(config: BookConfig, otter: bool = False) -> str:
    """:func:`install_missing`'s source and its call with this book's requirements (and
    otter-grader's, for the exercises)."""
    packages = {"resnet_lib": config.install_requirement()}
    if otter:
        packages["otter"] = OTTER
    # Written as `ruff format` writes it (double quotes, two blank lines), so that formatting
    # the notebooks leaves the generated cell as tools/notebooks.py --check expects it.
    entries = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in packages.items())
    call = (
        f"install_missing(\n    {{{entries}}},\n"
        f"    help_url={json.dumps(config.repository_url + '#readme')},\n)"
    )
    return "\n\n".join([textwrap.dedent(inspect.getsource(install_missing)), call])


def first_cell_source(config: BookConfig) -> str:
    """The source of the generated first cell of a chapter or research notebook."""
    return "\n".join([TITLE, MARKER, install_source(config)])


def toc_pages(toc: dict) -> frozenset[str]:
    """Every document a Jupyter Book ``_toc.yml`` lists, as a path without suffix."""
    found = {toc["root"]}

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                found.add(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk([toc])
    return frozenset(re.sub(r"\.(ipynb|md)$", "", f) for f in found)


def first_cell(config: BookConfig) -> dict:
    """The generated first cell as an nbformat cell: hidden in the book (``remove-cell``),
    collapsed in JupyterLab and shown as its title on Colab."""
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {
            "cellView": "form",
            "jupyter": {"source_hidden": True},
            "tags": ["remove-cell", "bootstrap"],
        },
        "outputs": [],
        "source": first_cell_source(config),
    }
