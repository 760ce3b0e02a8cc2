"""The first cell of every notebook: installing what a notebook opened alone needs.

``install_missing`` runs pip in a subprocess. These tests run it in a fresh Python process whose
``python -m pip`` is a stand-in pip, put first on PYTHONPATH, that behaves as told (installs a
module, replaces an already-imported package, fails): what the cell prints and raises is real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resnet_lib import bootstrap

FAKE_PIP = """
import json, os, pathlib, sys
args = sys.argv[1:]
site = pathlib.Path(os.environ["FAKE_SITE"])
mode = os.environ["FAKE_PIP_MODE"]
log = pathlib.Path(os.environ["FAKE_PIP_LOG"])
with open(log, "a") as f:
    f.write(json.dumps(args) + "\\n")
if mode == "fail" or (mode == "fail-constrained" and "--constraint" in args):
    print("ERROR: Could not find a version that satisfies the requirement newmod", file=sys.stderr)
    sys.exit(1)
(site / "newmod").mkdir()
(site / "newmod" / "__init__.py").write_text("")
if mode == "replace":
    meta = site / "olddist-1.0.dist-info" / "METADATA"
    meta.write_text("Metadata-Version: 2.1\\nName: olddist\\nVersion: 2.0\\n")
print("Successfully installed newmod-0.1")
"""


def run_install(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess, list[list]]:
    pip_dir, site = tmp_path / "pip-stand-in", tmp_path / "site"
    (pip_dir / "pip").mkdir(parents=True)
    (pip_dir / "pip" / "__init__.py").write_text("")
    (pip_dir / "pip" / "__main__.py").write_text(FAKE_PIP)
    dist = site / "olddist-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: olddist\nVersion: 1.0\n")
    (dist / "top_level.txt").write_text("oldmod\n")
    (site / "oldmod.py").write_text("")
    log = tmp_path / "pip-calls.jsonl"
    script = textwrap.dedent("""
        import oldmod  # imported before the install, like Colab's ipywidgets
        from resnet_lib.bootstrap import install_missing
        install_missing({"newmod": "newmod @ git+https://example.org/x", "oldmod": "oldmod"},
                        help_url="https://example.org/help")
        import newmod
        print("IMPORTED newmod")
    """)
    env = {
        "PYTHONPATH": f"{pip_dir}:{site}:{Path(bootstrap.__file__).parents[1]}",
        "FAKE_SITE": str(site),
        "FAKE_PIP_MODE": mode,
        "FAKE_PIP_LOG": str(log),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def test_installs_only_what_is_missing_keeping_what_is_installed(tmp_path):
    result, calls = run_install(tmp_path, "ok")
    assert result.returncode == 0, result.stderr
    assert "IMPORTED newmod" in result.stdout and "Successfully installed newmod" in result.stdout
    assert len(calls) == 1
    args = calls[0]
    assert args[-1] == "newmod @ git+https://example.org/x" and "oldmod" not in args[-1:]
    constraints = Path(args[args.index("--constraint") + 1]).read_text().splitlines()
    assert "olddist==1.0" in constraints  # what is installed stays as it is


def test_says_when_the_kernel_must_restart(tmp_path):
    result, calls = run_install(tmp_path, "replace")
    assert result.returncode != 0 and "IMPORTED" not in result.stdout
    assert "olddist 1.0 -> 2.0" in result.stderr
    assert "Restart the kernel (on Colab: Runtime > Restart session)" in result.stderr


def test_lets_pip_change_packages_when_they_cannot_stay(tmp_path):
    result, calls = run_install(tmp_path, "fail-constrained")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 2 and "--constraint" in calls[0] and "--constraint" not in calls[1]


def test_a_failed_install_says_what_failed_and_what_to_do(tmp_path):
    result, _ = run_install(tmp_path, "fail")
    assert result.returncode != 0
    for needed in (
        "pip could not install newmod @ git+https://example.org/x",
        "Could not find a version",
        "network connection",
        "https://example.org/help",
    ):
        assert needed in result.stderr, needed
    assert "ModuleNotFoundError" not in result.stderr  # not the confusing later error


def test_nothing_to_install_calls_no_pip(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip was called"))
    bootstrap.install_missing({"json": "json", "resnet_lib": "resnet_lib"}, "https://x")


def test_generated_cell_runs_on_its_own():
    """The first cell has nothing but its source: no import of resnet_lib before it runs."""
    config = bootstrap.book_config()
    source = bootstrap.first_cell_source(config)
    assert source.splitlines()[0].startswith("# @title")
    assert "import resnet_lib" not in source and config.install_requirement() in source
    namespace: dict = {}
    exec(compile(source, "<first cell>", "exec"), namespace)  # everything is installed here
    assert "install_missing" in namespace


def test_book_config_derives_everything_from_the_repository_url(tmp_path):
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/Some-Org/some.book/\n  branch: dev\n"
    )
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: chapters/01_a\n"
    )
    c = bootstrap.book_config(tmp_path)
    assert c.published_url == "https://some-org.github.io/some.book/"
    assert c.install_requirement() == "resnet_lib @ git+https://github.com/Some-Org/some.book@dev"
    assert c.colab("chapters/01_a.ipynb") == (
        "https://colab.research.google.com/github/Some-Org/some.book/blob/dev/chapters/01_a.ipynb"
    )
    assert (
        c.link("chapters/01_a.ipynb#sec")
        == "https://some-org.github.io/some.book/chapters/01_a.html#sec"
    )
    assert (
        c.link("exercises/ex1.ipynb")
        == "https://github.com/Some-Org/some.book/blob/dev/exercises/ex1.ipynb"
    )
    (tmp_path / "_config.yml").write_text("repository:\n  url: git@github.com:a/b.git\n")
    with pytest.raises(ValueError, match="https://github.com/<owner>/<repo>"):
        bootstrap.book_config(tmp_path)
