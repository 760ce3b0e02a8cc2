"""The environments readers run the book in agree with the one CI tests.

- requirements.txt pins what the notebooks import; binder/requirements.txt pins the same
  versions (Binder's torch is the CPU build of the same release);
- the test environment has exactly those versions (so CI tested what Binder installs);
- JupyterLab loads jupyterlab-myst, which renders {eval}`num.x` in Markdown cells (a JupyterLab
  release with another @jupyter/ydoc marks it incompatible and renders raw markup).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s#;]+)", re.M)


def pins(path: Path) -> dict[str, str]:
    return {
        name.lower().replace("_", "-"): version.split("+")[0]
        for name, version in PIN.findall(path.read_text())
    }


def test_binder_pins_the_versions_ci_tests() -> None:
    main, binder = pins(ROOT / "requirements.txt"), pins(ROOT / "binder" / "requirements.txt")
    for needed in (
        "torch",
        "torchvision",
        "numpy",
        "matplotlib",
        "scikit-learn",
        "ipywidgets",
        "jupyterlab",
        "jupyterlab-myst",
        "otter-grader",
    ):
        assert needed in binder, f"binder/requirements.txt does not pin {needed}"
    different = {k: (v, main.get(k)) for k, v in binder.items() if main.get(k) != v}
    assert not different, f"binder/requirements.txt vs requirements.txt: {different}"


def test_installed_versions_are_the_pinned_ones() -> None:
    wrong = {}
    for name, version in pins(ROOT / "requirements.txt").items():
        installed = metadata.version(name).split("+")[0]
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"pinned vs installed (run `make venv`): {wrong}"


def test_jupyterlab_loads_the_myst_renderer() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = listing.stdout + listing.stderr
    line = next((ln for ln in text.splitlines() if "jupyterlab-myst" in ln), "")
    assert "enabled" in line and "OK" in line, text
    assert "is not compatible" not in text, text
