"""One repository URL: ``repository.url`` in _config.yml. Every other copy agrees with it.

The copies are generated (the notebooks' first cells by tools/notebooks.py, the exercises by the
grader's build, the pages' links by tools/repository_links.py) or written by hand (README,
pyproject.toml); these tests find every address of the forms GitHub, GitHub Pages, Colab, Binder
and pip use, in every file git tracks, and fail on any that names another repository than
_config.yml's (other projects we link to are listed in EXTERNAL).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from resnet_lib.bootstrap import book_config, pages_url

ROOT = Path(__file__).resolve().parents[1]
CONFIG = book_config(ROOT)
OURS = CONFIG.owner_repo
# Repositories of other projects that files here link to on purpose.
EXTERNAL = {"kynan/nbstripout", "astral-sh/ruff-pre-commit"}
# The made-up repository tests/test_bootstrap.py configures to show that every address follows
# _config.yml; allowed only in that file and this one.
EXAMPLE = (
    {"tests/test_bootstrap.py", "tests/test_repository.py"},
    "Some-Org/some.book",
    "https://some-org.github.io/some.book/",
)
REPO = r"([A-Za-z0-9_.-]+/[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*?)(?:\.git)?(?=[/@?#\s\"'`)\]]|$)"
FORMS = {
    "GitHub": re.compile(r"github\.com/" + REPO),
    "Colab": re.compile(r"colab\.research\.google\.com/github/" + REPO),
    "Binder": re.compile(r"mybinder\.org/v2/gh/" + REPO),
}
PAGES = re.compile(r"https?://([a-z0-9-]+)\.github\.io/([A-Za-z0-9_.-]+)")


def tracked_files() -> list[Path]:
    try:
        names = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in names:
        path = ROOT / name
        if path.is_file() and path.suffix not in {".png", ".jpg", ".ico", ".woff", ".woff2"}:
            files.append(path)
    return files


def test_every_copy_of_the_repository_url_agrees_with_config() -> None:
    wrong, found = [], 0
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        example = path.relative_to(ROOT).as_posix() in EXAMPLE[0]
        for form, pattern in FORMS.items():
            for m in pattern.finditer(text):
                found += 1
                if (
                    m.group(1) != OURS
                    and m.group(1) not in EXTERNAL
                    and not (example and m.group(1) == EXAMPLE[1])
                ):
                    wrong.append(f"{path.relative_to(ROOT)}: {form} address of {m.group(1)}")
        for m in PAGES.finditer(text):
            found += 1
            site = f"https://{m.group(1)}.github.io/{m.group(2)}/"
            if site != CONFIG.published_url and not (example and site == EXAMPLE[2]):
                wrong.append(f"{path.relative_to(ROOT)}: published-book address {m.group(0)}")
    assert found > 20, "the scan found almost no addresses: is the pattern still right?"
    assert not wrong, (
        f"these disagree with _config.yml's repository ({CONFIG.repository_url}) "
        f"or its published book ({CONFIG.published_url}):\n" + "\n".join(wrong)
    )


def test_published_book_is_the_repositorys_pages_site() -> None:
    assert CONFIG.published_url == pages_url(CONFIG.repository_url)


def test_pyproject_points_at_the_repository() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Homepage"].rstrip("/") == CONFIG.repository_url


def test_notebooks_first_cells_are_generated_from_config() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import notebooks
    finally:
        sys.path.pop(0)
    stale = notebooks.sync(ROOT, check=True)
    assert not stale, f"out of date (run `python tools/notebooks.py`): {stale}"
    for path in notebooks.notebooks(ROOT):
        assert CONFIG.install_requirement() in path.read_text()


STANDALONE = sorted(ROOT.glob("exercises/*.ipynb")) + sorted(
    ROOT.glob("exercises/research/*.ipynb")
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", STANDALONE, ids=[p.stem for p in STANDALONE])
def test_notebooks_opened_alone_link_to_places_that_exist(path: Path) -> None:
    """Exercises and research notebooks are opened alone (Colab): no relative links, and links
    into the published book name pages the book has."""
    import json

    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for target in LINK.findall("".join(cell["source"])):
            assert re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"), (
                f"{path.name} cell {i}: relative link {target} leads nowhere when the notebook "
                f"is opened alone; link to the published book ({CONFIG.published_url}...)"
            )
            if target.startswith(CONFIG.published_url):
                page = re.sub(r"\.html(#.*)?$", "", target[len(CONFIG.published_url) :])
                assert page in CONFIG.pages, f"{path.name} cell {i}: the book has no page {page}"
