"""resnet_lib's notebook installer (``resnet_lib/bootstrap.py``), loaded without ``resnet_lib``.

``build`` puts the same first cell in every learner notebook as every chapter has; that code lives
in ``resnet_lib/bootstrap.py``, which needs only the standard library. Importing it as
``resnet_lib.bootstrap`` would run ``resnet_lib/__init__.py`` and import torch (seconds, and a
dependency the grader does not otherwise have), so the file is found without importing the
package and loaded on its own.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "_resnet_lib_bootstrap"


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    package = importlib.util.find_spec("resnet_lib")  # finds the package without importing it
    if package is None or not package.submodule_search_locations:
        raise ImportError(
            "building the exercises needs resnet_lib's files (resnet_lib/bootstrap.py): run it "
            "from a clone of the book's repository after `pip install -e .`"
        )
    path = Path(list(package.submodule_search_locations)[0]) / "bootstrap.py"
    spec = importlib.util.spec_from_file_location(_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


_module = _load()
BookConfig = _module.BookConfig
book_config = _module.book_config
install_source = _module.install_source
