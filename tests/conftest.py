"""What several test files share: CI's strictness, a headless Chromium, and reading the
tables that ``resnet_lib.Numbers.show`` leaves in a notebook's outputs."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() in {"true", "1", "yes"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where the environment is supposed to be complete."""
    if CI:
        pytest.fail(reason + " (CI=true: this must not be missing)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Python playwright (no browser download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Python package playwright is missing: pip install -r requirements.txt")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def shown_tables(cell: dict) -> dict[str, str]:
    """The ``num.name`` -> value rows of the num.show() tables among ``cell``'s outputs."""
    rows = {}
    for out in cell.get("outputs", []):
        text = out.get("data", {}).get("text/markdown", "")
        text = "".join(text) if isinstance(text, list) else text
        rows.update(dict(re.findall(r"^\| `(num\.\w+)` \| (.*?) \|$", text, re.M)))
    return rows
