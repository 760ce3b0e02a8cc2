"""Copy the JavaScript the book serves itself into ``_vendor/`` (gitignored).

The built pages must work offline, so MathJax and the ipywidgets embed manager are served
from the build instead of a CDN (see ``_config.yml``):

- ``_vendor/mathjax/``: MathJax 3.2.2's ``es5/`` files, from the PyPI package
  ``django-static-mathjax`` (a requirement of the book; this script fails without it);
- ``_vendor/widgets/``: ``require.js`` and ``@jupyter-widgets/html-manager``'s
  ``embed-amd.js`` (with the fonts it loads), fetched with ``npm pack``, plus our
  ``tools/widgets-setup.js`` (font path, MathJax 3 shim for the widget manager). Without npm
  the script says so and exits 0; the Sphinx extension ``tools/offline_assets.py`` then leaves
  the widget JS on its CDN default, and pages with widgets need the network.

Standard library only. Run it from anywhere: ``python tools/vendor_assets.py``.
Files already in place are kept, so a second run is instant; ``--force`` refetches.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "_vendor"

# The versions myst-nb 1.x loads from its CDN default (myst_nb.core.config.ipywidgets_js_factory);
# html-manager 1.0.x renders the widget state that ipywidgets 8 embeds.
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.6"
REQUIREJS = "requirejs@2.3.8"  # myst-nb's CDN has 2.3.4; 2.3.7 fixed CVE-2024-38999

# The part of MathJax's es5/ that tex-mml-chtml.js (Sphinx's default component) loads:
# the component itself plus the folders it fetches extensions, fonts and a11y tools from.
FONTS = {".woff", ".woff2", ".ttf", ".eot", ".svg"}  # what embed-amd.js's CSS loads beside it

MATHJAX_KEEP = ["tex-mml-chtml.js", "input", "output", "a11y", "ui", "sre", "adaptors"]


def vendor_mathjax(force: bool) -> None:
    target = VENDOR / "mathjax"
    if (target / "tex-mml-chtml.js").is_file() and not force:
        print(f"MathJax: already in {target.relative_to(ROOT)}")
        return
    spec = importlib.util.find_spec("mathjax")
    es5 = None
    if spec is not None and spec.submodule_search_locations:
        es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if es5 is None or not (es5 / "tex-mml-chtml.js").is_file():
        sys.exit(
            "error: MathJax not found. It comes from the PyPI package 'django-static-mathjax' "
            f"(importable as 'mathjax'); install the requirements into {sys.executable}:\n"
            "    python -m pip install -r requirements.txt"
        )
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in MATHJAX_KEEP:
        src = es5 / name
        if src.is_dir():
            shutil.copytree(src, target / name)
        elif src.is_file():
            shutil.copy2(src, target / name)
    shutil.copy2(es5.parent / "LICENSE", target / "LICENSE")
    print(f"MathJax: copied from {es5} to {target.relative_to(ROOT)}")


def npm_pack(spec: str, dest: Path) -> Path:
    """Download one package tarball from the npm registry into dest; return its path."""
    out = subprocess.run(
        ["npm", "pack", spec, "--json"], cwd=dest, check=True, capture_output=True, text=True
    ).stdout
    return dest / json.loads(out)[0]["filename"]


def extract(tarball: Path, members: dict[str, str], target: Path) -> None:
    """Copy members (path in the tarball -> name under target) out of an npm tarball."""
    with tarfile.open(tarball) as tar:
        for member, name in members.items():
            data = tar.extractfile(member)
            if data is None:
                raise SystemExit(f"error: {member} missing from {tarball.name}")
            (target / name).write_bytes(data.read())


def vendor_widgets(force: bool) -> None:
    target = VENDOR / "widgets"
    if (target / "embed-amd.js").is_file() and (target / "require.js").is_file() and not force:
        print(f"widgets: already in {target.relative_to(ROOT)}")
    elif shutil.which("npm") is None:
        print(
            "warning: npm not found, so the ipywidgets embed manager is not vendored; pages "
            "with widgets will load it from the CDN (install npm, e.g. `apt-get install npm`, "
            "and rerun this script to serve it from the build)."
        )
        return
    else:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as tmp:
            tmpdir = Path(tmp)
            manager = npm_pack(HTML_MANAGER, tmpdir)
            with tarfile.open(manager) as tar:
                # embed-amd.js plus the font and image files its CSS refers to, side by side.
                wanted = {
                    m.name: Path(m.name).name
                    for m in tar.getmembers()
                    if m.isfile()
                    and m.name.startswith("package/dist/")
                    and (Path(m.name).name == "embed-amd.js" or Path(m.name).suffix in FONTS)
                }
            wanted["package/LICENSE"] = "LICENSE.html-manager"
            extract(manager, wanted, target)
            extract(npm_pack(REQUIREJS, tmpdir), {"package/require.js": "require.js"}, target)
        print(f"widgets: {HTML_MANAGER} and {REQUIREJS} unpacked into {target.relative_to(ROOT)}")
    shutil.copy2(ROOT / "tools" / "widgets-setup.js", target / "widgets-setup.js")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace what is already there")
    args = parser.parse_args()
    vendor_mathjax(args.force)
    try:
        vendor_widgets(args.force)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(VENDOR / "widgets", ignore_errors=True)
        sys.exit(f"error: `{' '.join(err.cmd)}` failed:\n{err.stderr}")


if __name__ == "__main__":
    main()
