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


def n_params(model) -> int:
    """Every scalar parameter of ``model``, counted here rather than by resnet_lib's
    ``count_parameters`` (which has tests of its own)."""
    return sum(p.numel() for p in model.parameters())


def randomize_bn(module, seed: int) -> None:
    """Give every BatchNorm of ``module`` random affine parameters and running statistics (in
    its own dtype), so that a BN in the wrong place changes the output."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c, dtype = m.num_features, m.weight.dtype
                m.weight.copy_(torch.rand(c, generator=gen, dtype=dtype) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen, dtype=dtype) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen, dtype=dtype) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen, dtype=dtype) + 0.5)
