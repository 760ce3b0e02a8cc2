"""Drop the book's execution cache when anything the notebooks' outputs depend on has changed.

The book executes its notebooks through jupyter-cache (``execute_notebooks: cache`` in
``_config.yml``), which keys each notebook on its own code cells only. What the cells import
and where they run changes their outputs too, so ``make book`` runs this first:

    python tools/cache_key.py [CACHE] [--also-drop FOLDER]   # CACHE: _build/.jupyter_cache
    python tools/cache_key.py --show     # what the key is made of; changes nothing

It hashes those inputs (:func:`inputs`) into one key and stores it inside the cache folder, in
``book-inputs.json``, so that the key travels with the cache: GitHub Actions restores the folder
into a fresh clone, where time stamps say nothing. A folder whose stored key differs, or that
has none, is deleted (the inputs that changed are named); an unchanged one is kept.

Whenever the cache is not kept, the ``--also-drop`` folders go with it: ``make book`` names
Sphinx's environment (``_build/.doctrees``), which holds every page's outputs. myst-nb does not
mark a page outdated when its cache entry goes, so without this Sphinx would not re-read the
notebooks whose files did not change, and their pages would keep the old outputs.

Standard library only, but run it with the book's interpreter (``.venv/bin/python``): part of
the key is what is installed there and which profile and device ``resnet_lib`` picks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
KEY_FILE = "book-inputs.json"  # inside the cache folder; jupyter-cache ignores it
#: Imported by the notebooks but not required by resnet_lib: the kernel, and the widgets whose
#: state the book embeds.
KERNEL_PACKAGES = ("ipykernel", "ipywidgets")


def source_files(root: Path) -> list[Path]:
    """The repository's files the notebooks' outputs depend on besides their own code: every
    module of ``resnet_lib`` (not the grader, ``exercise_grader/``, which runs in no chapter),
    and what the environment is installed from."""
    modules = list((root / "resnet_lib").rglob("*.py"))
    return sorted(modules) + [root / "requirements.txt", root / "pyproject.toml"]


def execute_settings(config: str) -> str:
    """The settings under ``execute:`` in ``_config.yml`` (the text of the file), without
    comments and without ``timeout``: a timeout decides whether a run finishes, not what a
    finished run printed, while ``allow_errors: true`` would cache a failed cell's traceback and
    ``run_in_temp`` changes the folder the cells run in."""
    settings, inside = [], False
    for line in config.splitlines():
        text = line.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        if not text[0].isspace():  # a top-level key opens or closes the block
            inside = text == "execute:"
        elif inside and not text.strip().startswith("timeout:"):
            settings.append(" ".join(text.split()))
    return "\n".join(settings)


def runtime() -> dict[str, str]:
    """What the notebooks run with: Python, the versions of the packages they import (the
    requirements of resnet_lib and :data:`KERNEL_PACKAGES`), and the profile and device
    ``resnet_lib`` picks (``RESNET_BOOK_PROFILE``, else by whether CUDA is available)."""
    from importlib import metadata

    try:
        from resnet_lib.profiles import get_profile, pick_device  # imports torch: seconds

        requires = metadata.requires("resnet_lib") or []
    except (ImportError, metadata.PackageNotFoundError) as err:
        sys.exit(
            f"error: {err}. Run this with the book's interpreter, where resnet_lib and its "
            "requirements are installed: .venv/bin/python tools/cache_key.py"
        )
    names = [re.match(r"[A-Za-z0-9._-]+", req).group() for req in requires if "extra ==" not in req]
    facts = {
        "python": ".".join(map(str, sys.version_info[:2])),
        "profile": f"{get_profile().name} on {pick_device()}",
    }
    for name in [*names, *KERNEL_PACKAGES]:
        try:
            facts[f"package {name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            facts[f"package {name}"] = "not installed"
    return facts


def inputs(root: Path, facts: dict[str, str]) -> dict[str, str]:
    """Everything the key covers, by name: each file of :func:`source_files` with the SHA-256
    of its bytes, the execute settings of ``_config.yml`` and the facts of :func:`runtime`."""
    found = {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "missing"
        for path in source_files(root)
    }
    config = root / "_config.yml"
    found["_config.yml execute"] = execute_settings(config.read_text() if config.is_file() else "")
    return {**found, **facts}


def key(found: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


def stored(cache: Path) -> dict[str, str] | None:
    """The inputs recorded in ``cache`` when it was created; None if it records none."""
    try:
        record = json.loads((cache / KEY_FILE).read_text())
        return record["inputs"] if record["key"] == key(record["inputs"]) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def sync(cache: Path, found: dict[str, str], also_drop: Sequence[Path] = ()) -> str:
    """Keep ``cache`` if it was built with the inputs ``found``, else delete it and the folders
    ``also_drop``; then make sure it exists and records them. Returns what happened."""
    current = key(found)
    if cache.is_dir():
        old = stored(cache)
        if old is not None and key(old) == current:
            return f"execution cache kept: {cache} (key {current[:12]})"
        # jupyter-cache creates global.db first: refuse to delete a folder that is no cache.
        if old is None and any(cache.iterdir()) and not (cache / "global.db").exists():
            sys.exit(f"error: {cache} does not look like a jupyter-cache folder; not deleting it")
        shutil.rmtree(cache)
        if old is None:
            why = f"it records no key: {KEY_FILE} is missing or unreadable"
        else:
            changed = changes(old, found)
            why = "changed since it was built: " + ", ".join(changed[:8])
            why += f" and {len(changed) - 8} more" if len(changed) > 8 else ""
        message = f"execution cache dropped: {cache}; {why}"
    else:
        message = f"execution cache new: {cache}"
    for folder in also_drop:
        if folder.exists():
            shutil.rmtree(folder)
            message += f"; dropped {folder} too"
    cache.mkdir(parents=True)
    record = {"key": current, "inputs": found}
    (cache / KEY_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return f"{message} (key {current[:12]})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "cache",
        nargs="?",
        type=Path,
        default=CACHE,
        help=f"the execution cache folder (default: {CACHE.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--also-drop",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="a folder built from the cached outputs, dropped with the cache",
    )
    parser.add_argument(
        "--show", action="store_true", help="print the inputs and the key; keep or drop nothing"
    )
    args = parser.parse_args(argv)
    found = inputs(ROOT, runtime())
    if args.show:
        for name, value in sorted(found.items()):
            print(f"{name}: {value}".replace("\n", "; "))
        print(f"key: {key(found)}")
    else:
        print(sync(args.cache, found, args.also_drop))


if __name__ == "__main__":
    main()
