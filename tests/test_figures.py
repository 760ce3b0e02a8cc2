"""The diagrams: each renders a real, non-blank PNG with alt text that names what it shows, and
displays as an <img> whose alt text survives into the HTML that the book and JupyterLab show."""

from __future__ import annotations

import base64
import functools
import html
import io
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from resnet_lib import figures  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]

# Each diagram and words its alt text must contain, to say what it shows.
DIAGRAMS = {
    "plain_vs_residual": [
        "plain",
        "residual",
        "identity shortcut",
        "F(x) + x",
        "ReLU is applied after the addition",
    ],
    "basic_vs_bottleneck": ["basic block", "bottleneck", "1×1", "3×3", "64", "256-d input"],
    "shortcut_options": [
        "Option A",
        "Option B",
        "Option C",
        "zero-pads",
        "projection",
        "16×32×32",
        "32×16×16",
        "stride 2",
    ],
    "cifar_stages": [
        "6n+2 = 20",
        "16 channels",
        "32 channels",
        "64 channels",
        "global average pooling",
        "10-way",
    ],
    "unraveled": ["Veit", "2^3 = 8", "binomial", "skip"],
}


@functools.cache
def _render(name: str) -> figures.Diagram:
    """Each diagram drawn once per session (a Diagram is immutable)."""
    return getattr(figures, name)()


class _ImgAlt(HTMLParser):
    """The alt attribute and src of the first <img>, as a browser would decode them."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "img" and self.attrs is None:
            self.attrs = dict(attrs)


def _img_attrs(markup: str) -> dict[str, str]:
    parser = _ImgAlt()
    parser.feed(markup)
    assert parser.attrs is not None, f"no <img> in {markup[:80]!r}"
    return parser.attrs


def _pixels(png: bytes) -> np.ndarray:
    """The PNG decoded by PIL (an independent decoder), as an RGB array."""
    Image = pytest.importorskip("PIL.Image")
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(autouse=True)
def _no_figures_left_open():
    before = set(plt.get_fignums())
    yield
    leaked = set(plt.get_fignums()) - before
    plt.close("all")
    assert not leaked, f"figures left open: {leaked}"


def test_alt_text_follows_the_arguments():
    assert "6n+2 = 110 (n = 18)" in figures.cifar_stages(18).alt
    alt = figures.unraveled(4).alt
    assert "2^4 = 16" in alt
    assert "1 of length 0, 4 of length 1, 6 of length 2, 4 of length 3, 1 of length 4" in alt


@pytest.mark.parametrize(
    "call",
    [
        lambda: figures.cifar_stages(0),
        lambda: figures.cifar_stages(2.5),
        lambda: figures.unraveled(0),
        lambda: figures.unraveled(5),
    ],
)
def test_out_of_range_arguments_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_show_renders_and_closes_the_figure():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], lw=3)
    assert fig.number in plt.get_fignums()
    diagram = figures.show(fig, alt="A rising line.")
    assert fig.number not in plt.get_fignums()
    rgb = _pixels(diagram.png)
    assert 3 * figures.DPI < rgb.shape[1] <= 4.2 * figures.DPI  # bbox tight trims the margins
    assert (rgb.min(axis=2) < 200).any()


def test_show_draws_on_white_even_for_a_transparent_figure():
    fig = plt.figure(figsize=(3, 2))
    fig.patch.set_alpha(0)
    fig.text(0.5, 0.5, "text")
    png = figures.show(fig, alt="Text.").png
    with pytest.importorskip("PIL.Image").open(io.BytesIO(png)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    assert (rgba[..., 3] == 255).all()
    assert (rgba[0, 0, :3] == 255).all()


@pytest.mark.parametrize("alt", ["", "   ", None])
def test_show_refuses_missing_alt_text(alt):
    fig = plt.figure()
    with pytest.raises(ValueError, match="alt text"):
        figures.show(fig, alt=alt)
    plt.close(fig)


def test_mimebundle_carries_the_png_and_the_alt_text():
    diagram = _render("plain_vs_residual")
    bundle = diagram._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert base64.b64decode(bundle["image/png"]) == diagram.png
    assert bundle["text/plain"] == diagram.alt
    assert html.escape(diagram.alt) in bundle["text/html"]
    attrs = _img_attrs(bundle["text/html"])
    assert attrs["alt"] == diagram.alt
    assert attrs["src"] == "data:image/png;base64," + bundle["image/png"]
    assert attrs["width"] == str(diagram.width)


def test_alt_text_with_markup_is_escaped():
    alt = 'Loss "falls" for <b>x</b> & y\'s <script>alert(1)</script>'
    bundle = figures.show(plt.figure(figsize=(2, 2)), alt=alt)._repr_mimebundle_()
    markup = bundle["text/html"]
    assert "<b>" not in markup and "<script>" not in markup
    assert html.escape(alt) in markup
    assert _img_attrs(markup)["alt"] == alt  # a parser reads back exactly the alt text


def test_ipython_displays_html_and_png():
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(_render("unraveled"))
    assert {"text/html", "image/png", "text/plain"} <= set(data)


def test_the_book_renders_the_html_with_its_alt_text():
    """myst-nb picks one mime type per output for the HTML builder; it must be text/html, since
    the image/png path would drop the alt text."""
    render = pytest.importorskip("myst_nb.core.render")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    overrides = ((config.get("sphinx") or {}).get("config") or {}).get(
        "nb_mime_priority_overrides", []
    )
    priority = render.get_mime_priority("html", overrides)
    bundle = _render("basic_vs_bottleneck")._repr_mimebundle_()
    assert next(m for m in priority if m in bundle) == "text/html"


# ------------------------------------------------------------ Chapter 5: highway networks

DIAGRAMS["highway_vs_residual"] = [
    "highway layer",
    "transform gate",
    "carry gate",
    "1 − T(x)",
    "identity shortcut",
    "F(x) + x",
    "never reaches exactly 0 or 1",
]


def test_highway_vs_residual_draws_both_diagrams():
    """Ink in the left and in the right half: the highway layer and the residual block."""
    rgb = _pixels(_render("highway_vs_residual").png)
    ink = rgb.min(axis=2) < 200
    half = ink.shape[1] // 2
    assert ink[:, :half].mean() > 0.02 and ink[:, half:].mean() > 0.02


# ------------------------------------------------------------ Chapter 6: the ResNet family

DIAGRAMS |= {
    "imagenet_stages": [
        "Table 1",
        "7×7 convolution",
        "max pool",
        "56×56",
        "7×7 with 64, 128, 256 and 512 channels",
        "ResNet-18, basic blocks 2 + 2 + 2 + 2",
        "ResNet-152, bottleneck blocks 3 + 8 + 36 + 3",
        "1000-way",
    ],
    "original_vs_preact": [
        "original",
        "pre-activation",
        "ReLU after the addition",
        "x_(l+1) = ReLU(x_l + F(x_l))",
        "x_(l+1) = x_l + F(x_l)",
        "nothing follows the addition",
    ],
}


@pytest.mark.parametrize("depth", figures.IMAGENET_LAYOUTS)
def test_imagenet_layouts_are_the_models(depth):
    """The diagram's table against the networks themselves (built on the meta device)."""
    import torch

    import resnet_lib as rl

    kind, blocks = figures.IMAGENET_LAYOUTS[depth]
    with torch.device("meta"):
        model = getattr(rl, f"resnet{depth}")()
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert tuple(len(stage) for stage in stages) == blocks
    block = {"basic": rl.BasicBlock, "bottleneck": rl.Bottleneck}[kind]
    assert all(type(b) is block for stage in stages for b in stage)
    layers = sum(
        isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
        for name, m in model.named_modules()
        if "downsample" not in name
    )
    assert layers == depth == 2 + (2 if kind == "basic" else 3) * sum(blocks)


# Chapter 7: the nested function classes (containment up to width, never strictness).
DIAGRAMS |= {
    "nested_classes": [
        "plain ReLU networks",
        "residual networks",
        "hidden width is 3D",
        "width h + 2d",
        "residual_from_plain",
        "plain_from_residual",
        "neither inclusion, nor a strict one, is shown",
    ]
}


# Chapter 9's diagram of the three blocks beyond the basic one.
DIAGRAMS |= {
    "beyond_basic_blocks": [
        "ResNeXt",
        "32 paths",
        "32 groups",
        "squeeze-and-excitation",
        "global average",
        "sigmoid",
        "dense block",
        "concatenation, not addition",
        "k₀ + 3k channels",
    ]
}


# Chapter 11's three residual forms outside image classification.
DIAGRAMS |= {
    "residual_forms": [
        "pre-LN transformer layer",
        "x + Attn(LN(x))",
        "h_t = h_(t-1) + F(h_(t-1), x_t)",
        "H^(l+1) = H^(l) + σ(Â H^(l) W^(l))",
        "normalised adjacency",
        "shortcut in green",
    ]
}


# Chapter 12's bottleneck against the mobile inverted bottleneck.
DIAGRAMS |= {
    "bottleneck_vs_mbconv": [
        "256-d input",
        "40-d input",
        "240 channels",
        "depthwise",
        "squeeze-and-excitation",
        "inverted bottleneck",
    ]
}


# ------------------------------------------------------------ every diagram above
# (parametrised here, after the chapters' sections have added their diagrams to DIAGRAMS)


@pytest.mark.parametrize("name", DIAGRAMS)
def test_diagram_renders_a_png_with_content(name):
    diagram = _render(name)
    assert isinstance(diagram, figures.Diagram)
    assert diagram.png.startswith(PNG_SIGNATURE)
    rgb = _pixels(diagram.png)
    height, width, _ = rgb.shape
    # About 6-9 inches wide at the module's resolution, and not a sliver.
    assert 5.5 * figures.DPI <= width <= 9.8 * figures.DPI, width
    assert height >= 2 * figures.DPI, height
    ink = (rgb.min(axis=2) < 200).mean()  # pixels that are not (near-)white
    assert 0.02 < ink < 0.5, f"{name}: {ink:.1%} of the pixels carry ink"
    assert (rgb[0, :] > 250).all() and (rgb[-1, :] > 250).all(), "opaque white margin expected"
    assert diagram.width == round(width * 96 / figures.DPI)


@pytest.mark.parametrize("name, words", DIAGRAMS.items())
def test_diagram_alt_text_names_what_it_shows(name, words):
    alt = _render(name).alt
    assert len(alt) > 150
    missing = [w for w in words if w.lower() not in alt.lower()]
    assert not missing, f"{name}'s alt text lacks {missing}: {alt}"
