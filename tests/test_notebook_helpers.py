"""resnet_lib.notebook: the numbers a page quotes, and the glue that carries them into the book."""

from __future__ import annotations

import importlib.util

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import resnet_lib as rl


@pytest.fixture
def shell() -> InteractiveShell:
    """A running IPython, as in a kernel, whose displayed outputs ``capture_output`` collects."""
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def outputs(call) -> list[tuple[dict, dict]]:
    with capture_output() as captured:
        call()
    return [(out.data, out.metadata) for out in captured.outputs]


@pytest.mark.parametrize("value", ["1.5%", 42, 0.125, ["a", 1]])
@pytest.mark.parametrize("display", [False, True])
def test_glue_writes_what_myst_nb_glue_writes(shell, value, display) -> None:
    from myst_nb import glue as myst_glue

    ours = outputs(lambda: rl.glue("num.x", value, display=display))
    theirs = outputs(lambda: myst_glue("num.x", value, display=display))
    assert ours == theirs
    assert ours and ours[0][1]["scrapbook"] == {
        "name": "num.x",
        "mime_prefix": "" if display else rl.notebook.GLUE_PREFIX,
    }


def test_glue_does_not_import_myst_nb(shell) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell; "
        "InteractiveShell.instance(); import resnet_lib as rl; rl.glue('a', 1); "
        "print('myst_nb.ext.glue' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_glue_records_nothing_without_myst_nb(shell, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "myst_nb" else real(name, *a)
    )
    assert outputs(lambda: rl.glue("num.x", 1)) == []


def test_glue_outside_ipython_does_nothing() -> None:
    InteractiveShell.clear_instance()
    rl.glue("num.x", 1)  # no shell: no error, nothing to record into


def test_numbers_format_record_and_glue(shell) -> None:
    num = rl.Numbers()
    recorded = outputs(
        lambda: [num.add("a", 1234567), num.add("b", 0.012345), num.add("c", 0.5, ".0%")]
    )
    assert (num.a, num.b, num.c) == ("1,234,567", "0.0123", "50%")
    assert num.value("b") == 0.012345
    assert [meta["scrapbook"]["name"] for _, meta in recorded] == ["num.a", "num.b", "num.c"]
    assert recorded[2][0] == {rl.notebook.GLUE_PREFIX + "text/plain": "'50%'"}


def test_numbers_refuse_names_the_prose_cannot_quote() -> None:
    num = rl.Numbers()
    for bad in ("plain-56", "_hidden", "2x"):
        with pytest.raises(ValueError, match="cannot follow 'num.'"):
            num.add(bad, 1)
    with pytest.raises(AttributeError, match="run the cells above"):
        _ = num.missing
