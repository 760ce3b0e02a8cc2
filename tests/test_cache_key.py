"""tools/cache_key.py: the execution cache survives exactly while its inputs are unchanged."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cache_key", ROOT / "tools" / "cache_key.py")
cache_key = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cache_key)

FACTS = {"python": "3.11", "profile": "quick on cpu", "package torch": "2.14.1"}
CONFIG = """\
title: A book
execute:
  execute_notebooks: cache    # a comment
  timeout: 300
  allow_errors: false
  run_in_temp: false
parse:
  myst_enable_extensions:
    - dollarmath
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository with the files the key looks at, and some it must ignore."""
    files = {
        "resnet_lib/__init__.py": "from .train import fit\n",
        "resnet_lib/train.py": "def fit():\n    return 1\n",
        "resnet_lib/grading/__init__.py": "from exercise_grader import uses_answer\n",
        "exercise_grader/__init__.py": "def uses_answer():\n    pass\n",
        "exercise_grader/sandbox.py": "LIMIT = 10\n",
        "requirements.txt": "torch==2.14.1\n",
        "pyproject.toml": "[project]\nname = 'resnet_lib'\n",
        "_config.yml": CONFIG,
        "chapters/01_degradation.ipynb": '{"cells": []}\n',
    }
    root = tmp_path / "repo"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def key_of(root: Path, facts: dict[str, str] = FACTS) -> str:
    return cache_key.key(cache_key.inputs(root, facts))


@pytest.mark.parametrize(
    ("path", "old", "new", "changes_key"),
    [
        ("resnet_lib/train.py", "return 1", "return 2", True),
        ("resnet_lib/grading/__init__.py", "uses_answer", "uses_answer as ua", True),
        ("requirements.txt", "2.14.1", "2.14.2", True),
        ("pyproject.toml", "resnet_lib", "resnet-lib", True),
        ("_config.yml", "allow_errors: false", "allow_errors: true", True),
        ("_config.yml", "run_in_temp: false", "run_in_temp: true", True),
        ("exercise_grader/sandbox.py", "10", "20", False),  # the grader runs in no chapter
        ("exercise_grader/__init__.py", "pass", "return None", False),
        ("chapters/01_degradation.ipynb", "[]", '[{"cell_type": "code"}]', False),  # jupyter-cache
        ("_config.yml", "timeout: 300", "timeout: 600", False),
        ("_config.yml", "# a comment", "# another comment", False),
        ("_config.yml", "dollarmath", "amsmath", False),  # not under execute:
    ],
)
def test_key_follows_what_the_outputs_depend_on(
    tree: Path, path: str, old: str, new: str, changes_key: bool
) -> None:
    before = key_of(tree)
    text = (tree / path).read_text()
    assert old in text
    (tree / path).write_text(text.replace(old, new))
    assert (key_of(tree) != before) is changes_key


def test_key_covers_new_library_files_and_the_runtime(tree: Path) -> None:
    before = key_of(tree)
    (tree / "resnet_lib" / "blocks.py").write_text("X = 1\n")
    assert key_of(tree) != before
    before = key_of(tree)
    assert key_of(tree, {**FACTS, "profile": "gpu on cuda"}) != before
    assert key_of(tree, {**FACTS, "package torch": "2.15.0"}) != before


def test_cache_survives_an_unchanged_key_and_is_dropped_on_a_changed_one(
    tree: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "_build" / ".jupyter_cache"
    doctrees = tmp_path / "_build" / ".doctrees"  # Sphinx's environment: the pages' outputs
    assert "new" in cache_key.sync(cache, cache_key.inputs(tree, FACTS), [doctrees])
    executed = cache / "executed" / "abc" / "base.ipynb"  # what jupyter-cache would add
    executed.parent.mkdir(parents=True)
    executed.write_text("{}")
    doctrees.mkdir()

    assert "kept" in cache_key.sync(cache, cache_key.inputs(tree, FACTS), [doctrees])
    assert executed.is_file() and doctrees.is_dir()

    (tree / "resnet_lib" / "train.py").write_text("def fit():\n    return 2\n")
    message = cache_key.sync(cache, cache_key.inputs(tree, FACTS), [doctrees])
    assert "dropped" in message and "resnet_lib/train.py" in message
    assert not executed.exists() and not doctrees.exists()
    assert cache_key.stored(cache) == cache_key.inputs(tree, FACTS)  # the new key is recorded


def test_pages_built_without_a_cache_are_dropped(tree: Path, tmp_path: Path) -> None:
    doctrees = tmp_path / ".doctrees"  # the cache was deleted by hand, the pages were not
    doctrees.mkdir()
    cache_key.sync(tmp_path / ".jupyter_cache", cache_key.inputs(tree, FACTS), [doctrees])
    assert not doctrees.exists()


def test_a_cache_without_a_key_is_dropped(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / ".jupyter_cache"  # as restored from a cache saved before the key existed
    (cache / "executed").mkdir(parents=True)
    (cache / "global.db").write_text("")
    assert "records no key" in cache_key.sync(cache, cache_key.inputs(tree, FACTS))
    assert not (cache / "executed").exists()
    assert (cache / cache_key.KEY_FILE).is_file()


def test_a_folder_that_is_no_cache_is_not_deleted(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="does not look like a jupyter-cache folder"):
        cache_key.sync(tmp_path, cache_key.inputs(tree, FACTS))
    assert (tmp_path / "notes.txt").is_file()


def test_runtime_names_the_profile_the_notebooks_will_use(monkeypatch) -> None:
    monkeypatch.setenv("RESNET_BOOK_PROFILE", "full")
    facts = cache_key.runtime()
    assert facts["profile"].startswith("full on ")
    assert facts["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert {"package torch", "package numpy", "package ipywidgets"} <= facts.keys()
    assert "not installed" not in facts.values()


def test_command_drops_a_stale_cache(tmp_path: Path, capsys) -> None:
    """The command as `make book` runs it, on a restored cache whose library has changed since."""
    cache = tmp_path / ".jupyter_cache"
    stale = {**cache_key.inputs(ROOT, FACTS), "resnet_lib/train.py": "0" * 64}
    (cache / "executed").mkdir(parents=True)
    (cache / cache_key.KEY_FILE).write_text(
        json.dumps({"key": cache_key.key(stale), "inputs": stale})
    )
    cache_key.main([str(cache), "--also-drop", str(tmp_path / ".doctrees")])
    out = capsys.readouterr().out
    assert "execution cache dropped" in out and "resnet_lib/train.py" in out
    assert not (cache / "executed").exists()
    recorded = cache_key.stored(cache)
    assert recorded is not None and recorded["resnet_lib/train.py"] != "0" * 64

    cache_key.main([str(cache)])  # nothing changed since: kept
    assert "execution cache kept" in capsys.readouterr().out
