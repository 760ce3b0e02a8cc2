"""One way in: what resnet_lib's docstring says it exports is what ``__all__`` holds, every name
there imports, and the topic modules are attributes of the package."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import resnet_lib as rl

PACKAGE = Path(rl.__file__).parent


def documented() -> tuple[list[str], dict[str, list[str]]]:
    """The topic modules and the per-module names that the package docstring lists."""
    doc = rl.__doc__
    topics = re.search(
        r"\(``rl\.paths\.path_sums``, ``rl\.data\.for_profile``\): (.*?);", doc, re.S
    )
    assert topics, "the docstring no longer lists the topic modules where this test looks"
    modules = [name.strip() for name in topics.group(1).split(",")]
    names = {}
    for module, listed in re.findall(r"^- (\w+): (.*?)(?=^- |^\s*$)", doc, re.M | re.S):
        names[module] = [n.strip() for n in listed.replace("\n", " ").split(",")]
    return modules, names


def test_every_name_in_all_imports():
    namespace: dict = {}
    exec("from resnet_lib import *", namespace)  # noqa: S102 - what a reader's star import gets
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(rl.__all__)
    assert len(set(rl.__all__)) == len(rl.__all__)


def test_all_is_what_the_docstring_promises():
    modules, names = documented()
    listed = [n for group in names.values() for n in group]
    assert len(listed) == len(set(listed))
    assert sorted(rl.__all__) == sorted(modules + listed)
    for module, group in names.items():
        source = importlib.import_module(f"resnet_lib.{module}")
        for name in group:
            assert getattr(source, name) is getattr(rl, name), (module, name)


def test_topic_modules_are_attributes():
    modules, _ = documented()
    for name in modules:
        assert isinstance(getattr(rl, name), types.ModuleType), name
        assert getattr(rl, name) is sys.modules[f"resnet_lib.{name}"]
    # every module of the package is documented, except the notebooks' first-cell installer
    # (imported by that cell alone) and the grader (its own tool)
    files = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "bootstrap"}
    assert sorted(files) == sorted(modules)


def test_importing_the_library_does_not_import_the_grader():
    code = (
        "import sys, resnet_lib as rl; rl.paths.path_sums; print(sorted(m for m in "
        "sys.modules if m.startswith(('exercise_grader', 'resnet_lib.grading', 'otter'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_running_train_as_a_module_imports_it_once():
    """``python -m resnet_lib.train`` (torchrun's ``-m`` too) must not find the module already
    imported by the package: runpy would warn and run a second copy beside it."""
    code = [sys.executable, "-W", "error::RuntimeWarning", "-m", "resnet_lib.train", "--help"]
    out = subprocess.run(code, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout and "found in sys.modules" not in out.stderr
    lazy = "import sys, resnet_lib; print('resnet_lib.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
