"""references.bib and the citations agree: every key cited anywhere is defined once, and every
entry is cited on a page of the book (the bibliography page lists only cited entries, so an
uncited one would vanish without a word)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
ENTRY = re.compile(r"^@\w+\{([^,\s]+),", re.M)


def bib_keys() -> list[str]:
    return ENTRY.findall((ROOT / "references.bib").read_text())


def text(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells)
    return path.read_text()


def cited(paths: list[Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in paths:
        for match in CITE.finditer(text(path)):
            for key in match.group(1).split(","):
                found.setdefault(key.strip(), set()).add(path.relative_to(ROOT).as_posix())
    return found


def book_pages() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    pages = []
    for name in files:
        (path,) = [p for p in (ROOT / f"{name}.md", ROOT / f"{name}.ipynb") if p.exists()]
        pages.append(path)
    return pages


def test_cite_pattern_finds_every_role_form() -> None:
    sample = ROOT / "intro.md"
    assert CITE.findall("{cite}`a,b` {cite:t}`c` {cite:p}`d`") == ["a,b", "c", "d"]
    assert cited([sample]), "intro.md cites nothing any more? then pick another sample page"


def test_every_entry_is_defined_once() -> None:
    keys = bib_keys()
    assert len(keys) > 30
    assert sorted({k for k in keys if keys.count(k) > 1}) == []


def test_every_citation_has_an_entry() -> None:
    sources = book_pages() + sorted(ROOT.glob("exercises/**/*.ipynb"))
    sources += sorted(ROOT.glob("solutions/*.ipynb"))
    missing = {k: sorted(v) for k, v in cited(sources).items() if k not in set(bib_keys())}
    assert missing == {}, f"cited but not in references.bib: {missing}"


def test_every_entry_is_cited_in_the_book() -> None:
    unused = sorted(set(bib_keys()) - set(cited(book_pages())))
    assert unused == [], (
        f"in references.bib but cited on no page of the book: {unused}; cite them or remove them"
    )
