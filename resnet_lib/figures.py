"""Diagrams of the ideas the chapters explain (blocks, shortcuts, networks, paths), drawn with
matplotlib so that they render wherever a notebook runs: the built book, JupyterLab, and Colab,
where a notebook opened alone has no image files beside it.

Every diagram, and any plot passed to :func:`show`, displays as a PNG with alt text::

    rl.figures.plain_vs_residual()          # last expression of a cell: the diagram
    rl.figures.show(fig, alt="Training loss of ...: the plain net stays above ...")

The diagrams are drawn on a white background with dark ink, so they read in light and dark themes.
"""

from __future__ import annotations

import base64
import html
import io
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch

from .plotting import COLORS

DPI = 144  # 1.5 PNG pixels per CSS pixel: sharp on high-density screens
INK = "#222222"
MUTED = "#666666"
# Fill colours by kind of layer: light tints of the Okabe-Ito palette in resnet_lib.plotting.
FILL = {
    "conv": "#D4E6F5",  # weight layers (COLORS[0], blue)
    "relu": "#F9DCC9",  # non-linearities (COLORS[1], vermillion)
    "proj": "#CDEDE3",  # shortcuts with weights (COLORS[2], green)
    "pool": "#F2DDEA",  # pooling (COLORS[3], purple)
    "fc": "#FBEBCC",  # the classifier (COLORS[4], orange)
    "plain": "#FFFFFF",
    "off": "#F2F2F2",
}
SHORTCUT = COLORS[2]
FONT = 10


@dataclass(frozen=True)
class Diagram:
    """A rendered figure with its alt text; displays as ``<img alt=...>`` (and as a PNG).

    ``width`` is the display width in CSS pixels (the figure's size in inches at 96 per inch)."""

    png: bytes
    alt: str
    width: int | None = None

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        # myst-nb's HTML builder, JupyterLab and Colab all prefer text/html to image/png, and only
        # the HTML keeps the alt text; the PNG is there for front ends that render no HTML.
        data = base64.b64encode(self.png).decode("ascii")
        width = f' width="{self.width}"' if self.width else ""
        img = (
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.alt)}"{width}'
            ' style="max-width: 100%; height: auto; background: white">'
        )
        return {"text/html": img, "image/png": data, "text/plain": self.alt}

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"Diagram(alt={self.alt!r}, {len(self.png)} bytes of PNG)"


def show(fig: Figure, alt: str, dpi: int = DPI) -> Diagram:
    """Render ``fig`` to a PNG with alt text, and close it so that the notebook's inline backend
    does not display it a second time. Make it the last expression of a cell to display it.

    ``alt`` says what the figure shows and what it finds, in words, for readers who cannot see it.
    """
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("show() needs alt text: say in words what the figure shows and finds")
    # An opaque white page, whatever the figure or rcParams say: dark themes would otherwise show
    # dark ink on a dark background.
    fig.patch.set_facecolor("white")
    fig.patch.set_alpha(1.0)
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=dpi,
        bbox_inches="tight",
        pad_inches=0.08,
        facecolor="white",
        transparent=False,
    )
    plt.close(fig)
    png = buffer.getvalue()
    pixels = struct.unpack(">I", png[16:20])[0]  # the IHDR chunk's width
    return Diagram(png=png, alt=alt.strip(), width=round(pixels * 96 / dpi))


# Drawing helpers. One unit of the canvas is one inch, so box sizes and font sizes stay in
# proportion across diagrams.


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _box(
    ax: Axes,
    x: float,
    y: float,
    text: str,
    kind: str = "conv",
    w: float = 1.5,
    h: float = 0.36,
    size: float = FONT,
    **text_kw,
) -> None:
    """A layer: a rounded box centred on (x, y)."""
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            facecolor=FILL[kind],
            edgecolor=INK,
            boxstyle="round,pad=0,rounding_size=0.06",
            lw=1.0,
            zorder=2,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size, color=INK, zorder=3, **text_kw)


def _stack(
    ax: Axes,
    x: float,
    ys: Sequence[float],
    layers: Sequence[tuple[str, str]],
    w: float = 1.5,
    h: float = 0.36,
    **box_kw,
) -> None:
    """A column of layers: a box per ``(text, kind)`` at the heights ``ys``, top to bottom, each
    joined to the next by an arrow."""
    for y, (text, kind) in zip(ys, layers, strict=True):
        _box(ax, x, y, text, kind, w=w, h=h, **box_kw)
    for a, b in zip(ys[:-1], ys[1:], strict=True):
        _arrow(ax, (x, a - h / 2), (x, b + h / 2))


def _arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    color: str = INK,
    lw: float = 1.2,
) -> None:
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        zorder=1,
        arrowprops=dict(
            arrowstyle="-|>,head_length=0.45,head_width=0.22",
            color=color,
            lw=lw,
            shrinkA=0,
            shrinkB=0,
        ),
    )


def _path(ax: Axes, points: list[tuple[float, float]], color: str = INK, lw: float = 1.2) -> None:
    """A polyline with an arrowhead on its last segment (a shortcut around a block)."""
    xs, ys = zip(*points[:-1], strict=True)
    ax.plot(xs, ys, color=color, lw=lw, zorder=1, solid_capstyle="butt")
    _arrow(ax, points[-2], points[-1], color=color, lw=lw)


def _shortcut(
    ax: Axes, x: float, y_from: float, y_add: float, out: float, label: str | None = None
) -> None:
    """The identity shortcut of a block drawn as a column at ``x``: from ``(x, y_from)`` out to
    ``x + out``, down to the addition at ``y_add``, and into its circle; ``label`` (italic)
    beside the vertical part."""
    right = x + out
    _path(ax, [(x, y_from), (right, y_from), (right, y_add), (x + 0.15, y_add)], SHORTCUT, 1.6)
    if label:
        mid = (y_from + y_add) / 2
        _label(ax, right + 0.1, mid, label, color=SHORTCUT, ha="left", style="italic")


def _add(ax: Axes, x: float, y: float, r: float = 0.15) -> None:
    """The element-wise addition of a residual block."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, lw=1.2, zorder=2))
    ax.plot([x - r * 0.6, x + r * 0.6], [y, y], color=INK, lw=1.2, zorder=3)
    ax.plot([x, x], [y - r * 0.6, y + r * 0.6], color=INK, lw=1.2, zorder=3)


def _dot(ax: Axes, x: float, y: float) -> None:
    ax.add_patch(Circle((x, y), 0.04, color=INK, zorder=3))


def _label(
    ax: Axes, x: float, y: float, text: str, size: float = FONT, color: str = INK, **kw
) -> None:
    ax.text(
        x, y, text, fontsize=size, color=color, zorder=3, **{"ha": "center", "va": "center", **kw}
    )


# The diagrams.


def plain_vs_residual() -> Diagram:
    """A plain stack of two weight layers next to the residual block of He et al. (2016, Fig. 2)."""
    fig, ax = _canvas(7.0, 4.5)
    top, step = 3.75, 0.6
    for x, title in (
        (1.6, "plain: two layers fit H(x)"),
        (5.0, "residual block: the layers fit F(x) = H(x) − x"),
    ):
        _label(ax, x, 4.3, title, weight="bold")
        _label(ax, x, top + 0.2, "x", style="italic", size=FONT + 1)
    # Plain: x -> weight -> ReLU -> weight -> ReLU -> H(x)
    ys = [top - step * i for i in range(5)]
    x = 1.6
    _arrow(ax, (x, top + 0.05), (x, ys[1] + 0.18))
    for y, (text, kind) in zip(
        ys[1:],
        [("weight layer", "conv"), ("ReLU", "relu"), ("weight layer", "conv"), ("ReLU", "relu")],
        strict=True,
    ):
        _box(ax, x, y, text, kind)
    for a, b in zip(ys[1:-1], ys[2:], strict=True):
        _arrow(ax, (x, a - 0.18), (x, b + 0.18))
    _arrow(ax, (x, ys[-1] - 0.18), (x, ys[-1] - 0.5))
    _label(ax, x, ys[-1] - 0.65, "H(x)", style="italic", size=FONT + 1)
    # Residual: x -> weight -> ReLU -> weight = F(x); (+) with the identity; ReLU.
    x = 5.0
    y_add = ys[3] - 0.55
    y_relu = y_add - 0.55
    _dot(ax, x, top - 0.05)
    _arrow(ax, (x, top + 0.05), (x, ys[1] + 0.18))
    for y, (text, kind) in zip(
        ys[1:4], [("weight layer", "conv"), ("ReLU", "relu"), ("weight layer", "conv")], strict=True
    ):
        _box(ax, x, y, text, kind)
    for a, b in zip(ys[1:3], ys[2:4], strict=True):
        _arrow(ax, (x, a - 0.18), (x, b + 0.18))
    _arrow(ax, (x, ys[3] - 0.18), (x, y_add + 0.15))
    _label(ax, x - 0.2, (ys[3] - 0.18 + y_add + 0.15) / 2, "F(x)", style="italic", ha="right")
    _add(ax, x, y_add)
    _shortcut(ax, x, top - 0.05, y_add, 1.25)
    _label(
        ax, x + 1.35, (top + y_add) / 2, "x\nidentity", color=SHORTCUT, ha="left", style="italic"
    )
    _arrow(ax, (x, y_add - 0.15), (x, y_relu + 0.18))
    _label(ax, x - 0.2, (y_add + y_relu) / 2, "F(x) + x", style="italic", ha="right")
    _box(ax, x, y_relu, "ReLU", "relu")
    _arrow(ax, (x, y_relu - 0.18), (x, y_relu - 0.5))
    _label(ax, x, y_relu - 0.65, "ReLU(F(x) + x)", style="italic", size=FONT + 1)
    ax.set_ylim(y_relu - 0.85, 4.5)
    return show(
        fig,
        alt=(
            "Two diagrams side by side. Left, a plain stack: x goes through a weight layer, ReLU, a "
            "weight layer and ReLU, and the two layers must fit the wanted mapping H(x) directly. "
            "Right, the residual block of He et al. (2016, Fig. 2): x goes through a weight layer, "
            "ReLU and a weight layer, giving F(x); an identity shortcut carries x around both layers "
            "to an addition node, and ReLU is applied after the addition to F(x) + x. The layers "
            "now fit the residual F(x) = H(x) − x."
        ),
    )


def basic_vs_bottleneck() -> Diagram:
    """The basic block (ResNet-18/34) next to the bottleneck block (ResNet-50/101/152), with the
    widths of He et al. (2016, Fig. 5)."""
    basic = [("3×3 conv, 64", "conv"), ("ReLU", "relu"), ("3×3 conv, 64", "conv")]
    bottleneck = [
        ("1×1 conv, 64", "conv"),
        ("ReLU", "relu"),
        ("3×3 conv, 64", "conv"),
        ("ReLU", "relu"),
        ("1×1 conv, 256", "conv"),
    ]
    weights = {"basic": 2 * 3 * 3 * 64 * 64, "bottleneck": 256 * 64 + 3 * 3 * 64 * 64 + 64 * 256}
    fig, ax = _canvas(7.0, 5.4)
    top, step = 4.55, 0.55
    for x, layers, d, title, key in (
        (1.7, basic, 64, "basic block (ResNet-18/34)", "basic"),
        (5.1, bottleneck, 256, "bottleneck block (ResNet-50/101/152)", "bottleneck"),
    ):
        _label(ax, x, 5.15, title, weight="bold")
        _label(ax, x, top + 0.22, f"{d}-d input", style="italic")
        _dot(ax, x, top)
        ys = [top - 0.45 - step * i for i in range(len(layers))]
        _arrow(ax, (x, top + 0.08), (x, ys[0] + 0.18))
        _stack(ax, x, ys, layers)
        y_add = ys[-1] - 0.5
        y_relu = y_add - 0.5
        _arrow(ax, (x, ys[-1] - 0.18), (x, y_add + 0.15))
        _add(ax, x, y_add)
        _shortcut(ax, x, top, y_add, 1.2, "identity")
        _arrow(ax, (x, y_add - 0.15), (x, y_relu + 0.18))
        _box(ax, x, y_relu, "ReLU", "relu")
        _arrow(ax, (x, y_relu - 0.18), (x, y_relu - 0.45))
        _label(ax, x, y_relu - 0.6, f"{d}-d output", style="italic")
        _label(ax, x, y_relu - 0.95, f"{weights[key]:,} conv weights", color=MUTED)
    ax.set_ylim(y_relu - 1.15, 5.4)
    return show(
        fig,
        alt=(
            "Two residual blocks side by side, after He et al. (2016, Fig. 5). Left, the basic block "
            "of ResNet-18 and 34 on a 64-d input: a 3×3 convolution with 64 channels, ReLU, a second "
            "3×3 convolution with 64 channels, plus the identity shortcut, then ReLU after the "
            f"addition; {weights['basic']:,} weights. Right, the bottleneck block of ResNet-50, 101 "
            "and 152 on a 256-d input: a 1×1 convolution reduces to 64 channels, a 3×3 convolution "
            "works at 64 channels, a 1×1 convolution restores 256 channels, plus the identity "
            f"shortcut, then ReLU; {weights['bottleneck']:,} weights, about the same as the basic "
            "block although it is four times wider at its input and output."
        ),
    )


def shortcut_options() -> Diagram:
    """The three shortcut options A, B and C of He et al. (2016) in the CIFAR network: at the
    boundary between stage 1 and stage 2 (stride 2, 16 to 32 channels) and in the next block."""
    # Shortcut weights of the whole ResNet-20 (n = 3) under each option: 1x1 convolutions
    # c_in * c_out, at the two stage boundaries (B) or on all nine blocks (C).
    boundaries = 16 * 32 + 32 * 64
    every = sum(
        c_in * c
        for c_in, c in (
            (16, 16),
            (16, 16),
            (16, 16),
            (16, 32),
            (32, 32),
            (32, 32),
            (32, 64),
            (64, 64),
            (64, 64),
        )
    )
    options = {
        "A": (
            "parameter-free",
            "x[:, :, ::2, ::2]\n+ 16 zero channels",
            "plain",
            "identity",
            "no shortcut weights",
        ),
        "B": (
            "projection where the shape changes",
            "1×1 conv, 32, /2",
            "proj",
            "identity",
            f"ResNet-20: {boundaries:,} shortcut weights",
        ),
        "C": (
            "projection on every shortcut",
            "1×1 conv, 32, /2",
            "proj",
            "1×1 conv, 32",
            f"ResNet-20: {every:,} shortcut weights",
        ),
    }
    fig, ax = _canvas(9.0, 6.0)
    col = 3.0
    for i, (name, (title, boundary, kind, other, cost)) in enumerate(options.items()):
        x0 = i * col
        xc = x0 + col / 2  # the block's main line
        xb, xs = xc - 0.72, xc + 0.72  # the residual branch and the shortcut
        _label(ax, xc, 5.8, f"option {name}", weight="bold", size=FONT + 1)
        _label(ax, xc, 5.52, title, size=FONT - 0.5)
        for top, shape_in, branch, short, short_kind, heading in (
            (
                5.1,
                "16×32×32",
                "3×3 conv, 32, /2\nReLU\n3×3 conv, 32",
                boundary,
                kind,
                "first block of stage 2",
            ),
            (
                2.3,
                "32×16×16",
                "3×3 conv, 32\nReLU\n3×3 conv, 32",
                other,
                "proj" if other != "identity" else None,
                "the other blocks of stage 2",
            ),
        ):
            _label(ax, xc, top, heading, color=MUTED, size=FONT - 1)
            _label(ax, xc, top - 0.27, f"x: {shape_in}", style="italic", size=FONT - 1)
            y_split = top - 0.47
            ax.plot([xc, xc], [top - 0.4, y_split], color=INK, lw=1.2, zorder=1)
            ax.plot([xb, xc], [y_split, y_split], color=INK, lw=1.2, zorder=1)
            ax.plot([xc, xs], [y_split, y_split], color=SHORTCUT, lw=1.6, zorder=1)
            _dot(ax, xc, y_split)
            y_box, y_add = y_split - 0.62, y_split - 1.3
            _arrow(ax, (xb, y_split), (xb, y_box + 0.33))
            _box(ax, xb, y_box, branch, "conv", w=1.3, h=0.66, size=FONT - 1.5)
            _path(ax, [(xb, y_box - 0.33), (xb, y_add), (xc - 0.15, y_add)])
            if short_kind is None:  # the identity: a bare line
                _path(ax, [(xs, y_split), (xs, y_add), (xc + 0.15, y_add)], color=SHORTCUT, lw=1.6)
                _label(
                    ax,
                    xs + 0.1,
                    y_box,
                    "identity",
                    color=SHORTCUT,
                    ha="left",
                    size=FONT - 1.5,
                    style="italic",
                    rotation=90,
                )
            else:
                _arrow(ax, (xs, y_split), (xs, y_box + 0.33), color=SHORTCUT, lw=1.6)
                ax.add_patch(
                    FancyBboxPatch(
                        (xs - 0.64, y_box - 0.33),
                        1.28,
                        0.66,
                        boxstyle="round,pad=0,rounding_size=0.06",
                        facecolor=FILL[short_kind],
                        edgecolor=SHORTCUT,
                        lw=1.6,
                        zorder=2,
                    )
                )
                _label(ax, xs, y_box, short, size=FONT - (2 if "\n" in short else 1.5))
                _path(
                    ax,
                    [(xs, y_box - 0.33), (xs, y_add), (xc + 0.15, y_add)],
                    color=SHORTCUT,
                    lw=1.6,
                )
            _add(ax, xc, y_add)
            _arrow(ax, (xc, y_add - 0.15), (xc, y_add - 0.42))
            _label(ax, xc, y_add - 0.56, "ReLU → 32×16×16", size=FONT - 1)
        _label(ax, xc, -0.36, cost, color=MUTED, size=FONT - 1)
    ax.plot([0.15, 3 * col - 0.15], [2.56, 2.56], color=MUTED, lw=0.6, ls=":")
    ax.set_ylim(-0.5, 6.0)
    return show(
        fig,
        alt=(
            "The three shortcut options of He et al. (2016) in the CIFAR network, drawn for the first "
            "block of stage 2, where the residual branch's first 3×3 convolution has stride 2 (/2) and "
            "the input of shape 16×32×32 (channels × height × width) becomes 32×16×16, and for the "
            "other blocks of the stage, where the shape stays 32×16×16. Option A is parameter-free: "
            "at the boundary the shortcut subsamples every other pixel (x[:, :, ::2, ::2]) and "
            "zero-pads 16 new channels; elsewhere it is the identity. Option B uses a 1×1 "
            "convolution with stride 2 (a projection) only where the shape changes, and the identity "
            "elsewhere. Option C uses a 1×1 convolution projection on every shortcut, also where the "
            f"shape does not change. Shortcut weights in ResNet-20: none with A, {boundaries:,} with "
            f"B, {every:,} with C."
        ),
    )


def cifar_stages(n: int = 3) -> Diagram:
    """The 6n+2-layer CIFAR ResNet of He et al. (2016, Sec. 4.2): a 3×3 conv with 16 channels,
    three stages of n basic blocks (16, 32, 64 channels on 32×32, 16×16, 8×8 maps), global average
    pooling and a 10-way fully connected layer. ``n=3`` gives ResNet-20."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (depth 6n+2), got {n!r}")
    depth = 6 * n + 2
    fig, ax = _canvas(8.9, 2.9)
    y, y_note = 1.65, 0.82
    _label(ax, 0.35, y, "image\n3×32×32", size=FONT - 1)
    _arrow(ax, (0.68, y), (0.8, y))
    _box(ax, 1.2, y, "3×3 conv\n16", "conv", w=0.8, h=0.6, size=FONT - 1)
    _label(ax, 1.2, y_note, "1 layer", size=FONT - 1.5)
    x, stage_w = 1.6, 1.8
    shown = list(range(n)) if n <= 4 else [0, 1, None, n - 1]
    for s, (channels, size) in enumerate(((16, 32), (32, 16), (64, 8))):
        _arrow(ax, (x, y), (x + 0.15, y))
        x += 0.15
        ax.add_patch(
            FancyBboxPatch(
                (x, y - 0.6),
                stage_w,
                1.2,
                boxstyle="round,pad=0,rounding_size=0.08",
                facecolor="white",
                edgecolor=MUTED,
                lw=1.0,
                ls="--",
                zorder=1,
            )
        )
        _label(
            ax,
            x + stage_w / 2,
            y + 0.42,
            f"stage {s + 1}: {channels} channels",
            size=FONT - 1,
            weight="bold",
        )
        step = (stage_w - 0.16) / len(shown)
        bw = step - 0.12
        for j, b in enumerate(shown):
            bx = x + 0.08 + step * (j + 0.5)
            if b is None:
                _label(ax, bx, y - 0.08, "…")
                continue
            down = s > 0 and b == 0
            _box(
                ax,
                bx,
                y - 0.08,
                f"{b + 1}\n/2" if down else f"{b + 1}",
                "conv",
                w=bw,
                h=0.5,
                size=FONT - 1.5,
            )
            ax.annotate(
                "",
                xy=(bx + bw / 2 - 0.02, y + 0.19),
                xytext=(bx - bw / 2 + 0.02, y + 0.19),
                arrowprops=dict(
                    arrowstyle="-|>,head_length=0.3,head_width=0.15",
                    color=SHORTCUT,
                    lw=1.0,
                    connectionstyle="arc3,rad=-0.5",
                ),
                zorder=3,
            )
        _label(
            ax,
            x + stage_w / 2,
            y_note,
            f"{size}×{size} maps\n{n} blocks = {2 * n} layers",
            size=FONT - 1.5,
        )
        x += stage_w
    _arrow(ax, (x, y), (x + 0.15, y))
    _box(ax, x + 0.5, y, "global\navg pool", "pool", w=0.7, h=0.6, size=FONT - 1.5)
    _arrow(ax, (x + 0.85, y), (x + 1.0, y))
    _box(ax, x + 1.3, y, "fc\n10", "fc", w=0.6, h=0.6, size=FONT - 1)
    _label(ax, x + 1.3, y_note, "1 layer", size=FONT - 1.5)
    _label(ax, x + 0.5, y_note, "8×8 → 1×1", size=FONT - 1.5)
    _label(
        ax,
        x / 2 + 0.8,
        2.7,
        f"depth 6n+2 = {depth} (n = {n}): 1 conv + 3 stages × {n} blocks × 2 convs + 1 fc",
        weight="bold",
    )
    _label(
        ax,
        x / 2 + 0.8,
        0.3,
        "numbered boxes: basic blocks of two 3×3 convs;  green arcs: "
        "shortcuts;  /2: the first conv has stride 2, the channels double",
        size=FONT - 1.5,
        color=MUTED,
    )
    ax.set_xlim(0, x + 1.65)
    ax.set_ylim(0.15, 2.9)
    return show(
        fig,
        alt=(
            f"The CIFAR ResNet with depth 6n+2 = {depth} (n = {n}) of He et al. (2016, Sec. 4.2), "
            "left to right: a 32×32 colour image, a 3×3 convolution with 16 channels, then three "
            f"stages of {n} basic blocks each ({2 * n} convolution layers per stage): stage 1 with "
            "16 channels on 32×32 maps, stage 2 with 32 channels on 16×16 maps, stage 3 with 64 "
            "channels on 8×8 maps. The first block of stages 2 and 3 downsamples with a stride-2 "
            "convolution and doubles the channels; every block has a shortcut. Then global average "
            "pooling and a 10-way fully connected layer."
        ),
    )


def unraveled(blocks: int = 3) -> Diagram:
    """Veit et al. (2016, Fig. 1): a residual network of ``blocks`` blocks, and the same network
    unraveled into its 2**blocks paths, one per subset of the blocks."""
    if not isinstance(blocks, int) or not 1 <= blocks <= 4:
        raise ValueError(f"blocks must be 1 to 4 (2**blocks paths are drawn), got {blocks!r}")
    n = blocks
    paths = [c for k in range(n + 1) for c in combinations(range(n), k)]
    row = 0.34
    height = 1.9 + row * len(paths) + 0.4
    fig, ax = _canvas(8.0, height)
    # (a) the network as built: x0 -> f1 -> (+) -> f2 -> (+) ... with skips.
    y = height - 0.85
    _label(ax, 0.1, height - 0.25, "(a) residual network as built", weight="bold", ha="left")
    _label(ax, 0.3, y, "x₀", style="italic")
    x = 0.5
    gap = (7.2 - 0.5) / n
    for i in range(n):
        xs = x
        _dot(ax, xs, y)
        _arrow(ax, (xs, y), (xs + 0.35, y))
        _box(ax, xs + 0.8, y, f"f{i + 1}", "conv", w=0.9, h=0.36)
        _arrow(ax, (xs + 1.25, y), (xs + gap - 0.3, y))
        _add(ax, xs + gap - 0.15, y)
        _path(
            ax,
            [(xs, y), (xs, y + 0.4), (xs + gap - 0.15, y + 0.4), (xs + gap - 0.15, y + 0.15)],
            color=SHORTCUT,
            lw=1.4,
        )
        x = xs + gap
        _label(ax, x, y - 0.3, f"x{_sub(i + 1)}", style="italic")
    _arrow(ax, (x, y), (x + 0.3, y))
    # (b) the unraveled view: one row per path, fanning out of x0 and summed into x_n.
    top = height - 1.75
    _label(
        ax,
        0.1,
        top + 0.25,
        f"(b) unraveled: 2{_sup(n)} = {2**n} paths from x₀ to x{_sub(n)}",
        weight="bold",
        ha="left",
    )
    yb = top - 0.15 - row * (len(paths) - 1) / 2
    start, end, x_sum = 0.9, 0.95 + 0.8 * n + 0.75, 0.95 + 0.8 * n + 1.2
    xcol = [start + 0.45 + 0.8 * i for i in range(n)]
    _label(ax, 0.2, yb, "x₀", style="italic")
    _dot(ax, 0.4, yb)
    for r, path in enumerate(paths):
        yr = top - 0.15 - row * r
        ax.plot([0.4, start, end, x_sum - 0.15], [yb, yr, yr, yb], color=MUTED, lw=0.8, zorder=1)
        for i in path:
            _box(ax, xcol[i], yr, f"f{i + 1}", "conv", w=0.5, h=0.24, size=FONT - 1.5)
        _label(
            ax,
            end - 0.3,
            yr + 0.02,
            f"{len(path)}",
            size=FONT - 2,
            color=MUTED,
            bbox=dict(facecolor="white", edgecolor="none", pad=1.0),
        )
    _label(ax, end - 0.3, top + 0.02, "length", size=FONT - 2, color=MUTED)
    ax.add_patch(Circle((x_sum, yb), 0.15, facecolor="white", edgecolor=INK, lw=1.2, zorder=2))
    _label(ax, x_sum, yb, "Σ", size=FONT)
    _arrow(ax, (x_sum + 0.15, yb), (x_sum + 0.45, yb))
    _label(ax, x_sum + 0.62, yb, f"x{_sub(n)}", style="italic")
    # (c) how many paths have each length: the binomial coefficients.
    counts = [math.comb(n, k) for k in range(n + 1)]
    left = (x_sum + 1.3) / 8.0
    inset = fig.add_axes((left, 0.1 / height, 0.97 - left, (top - 0.55) / height))
    inset.bar(range(n + 1), counts, color=COLORS[0], width=0.6)
    inset.set_xticks(range(n + 1))
    inset.set_xlabel("path length (blocks on the path)", fontsize=FONT - 2)
    inset.set_ylabel("number of paths", fontsize=FONT - 2)
    inset.set_yticks(range(0, max(counts) + 1))
    inset.tick_params(labelsize=FONT - 2)
    for k, c in enumerate(counts):
        inset.text(k, c, str(c), ha="center", va="bottom", fontsize=FONT - 2)
    inset.set_ylim(0, max(counts) * 1.25)
    inset.spines[["top", "right"]].set_visible(False)
    _label(
        ax,
        (x_sum + 1.0 + 7.9) / 2,
        top + 0.25,
        f"(c) path lengths: Binomial({n}, 1/2)",
        weight="bold",
    )
    lengths = ", ".join(f"{c} of length {k}" for k, c in enumerate(counts))
    return show(
        fig,
        alt=(
            f"After Veit et al. (2016, Fig. 1). (a) A residual network of {n} blocks f1 to f{n} in "
            "sequence, each with a skip connection around it to an addition node. (b) The same "
            f"network unraveled: because every block adds its output to its input, the output is a "
            f"sum over 2^{n} = {2**n} paths from input to output, one per subset of the blocks, "
            "each path passing through its subset of blocks and skipping the rest. (c) Path lengths "
            f"follow a binomial distribution: {lengths}; with 2^n paths in an n-block network, most "
            "paths have about n/2 blocks."
        ),
    )


def _mul(ax: Axes, x: float, y: float, r: float = 0.15) -> None:
    """An element-wise multiplication (a gate applied to a signal)."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, lw=1.2, zorder=2))
    d = r * 0.45
    ax.plot([x - d, x + d], [y - d, y + d], color=INK, lw=1.2, zorder=3)
    ax.plot([x - d, x + d], [y + d, y - d], color=INK, lw=1.2, zorder=3)


def highway_vs_residual() -> Diagram:
    """A highway layer (Srivastava et al., 2015) next to the residual block of He et al. (2016a):
    a learned gate T splits each unit between the transform H and the carried input, where the
    residual block adds its input back with a fixed factor of one."""
    fig, ax = _canvas(7.6, 4.9)
    y_in, y_split, y_box, y_mul, y_add = 4.15, 3.85, 3.25, 2.0, 1.15
    # Highway layer: x -> H and T; T gates H, 1 - T gates the carried x; the two are added.
    xh, xt, xc = 0.75, 2.2, 3.55
    _label(ax, xt, 4.65, "highway layer", weight="bold")
    _label(ax, xt, y_in, "x", style="italic", size=FONT + 1)
    _dot(ax, xt, y_split)
    ax.plot([xh, xt], [y_split, y_split], color=INK, lw=1.2, zorder=1)
    ax.plot([xt, xc], [y_split, y_split], color=SHORTCUT, lw=1.6, zorder=1)
    ax.plot([xt, xt], [y_in - 0.12, y_split], color=INK, lw=1.2, zorder=1)
    _arrow(ax, (xh, y_split), (xh, y_box + 0.2))
    _arrow(ax, (xt, y_split), (xt, y_box + 0.2))
    small = dict(h=0.46, size=FONT - 2.5)
    _box(ax, xh, y_box, "transform\n$H = \\mathrm{ReLU}(W_H x + b_H)$", "conv", w=1.35, **small)
    _box(ax, xt, y_box, "transform gate\n$T = \\sigma(W_T x + b_T)$", "pool", w=1.3, **small)
    _box(ax, 2.95, 2.55, "carry gate\n$C = 1 - T$", "pool", w=0.85, h=0.42, size=FONT - 2.5)
    _arrow(ax, (xh, y_box - 0.23), (xh, y_mul + 0.15))
    _arrow(ax, (xt - 0.15, y_box - 0.23), (xh + 0.12, y_mul + 0.09))
    _label(ax, 1.6, 2.3, "T", style="italic", size=FONT - 1)
    _arrow(ax, (xt + 0.2, y_box - 0.23), (2.8, 2.76))
    _arrow(ax, (3.15, 2.34), (xc - 0.12, y_mul + 0.09))
    _arrow(ax, (xc, y_split), (xc, y_mul + 0.15), color=SHORTCUT, lw=1.6)
    _label(ax, xc + 0.1, 3.4, "x\ncarried", color=SHORTCUT, style="italic", ha="left")
    _mul(ax, xh, y_mul)
    _mul(ax, xc, y_mul)
    _path(ax, [(xh, y_mul - 0.15), (xh, y_add), (xt - 0.15, y_add)])
    _path(ax, [(xc, y_mul - 0.15), (xc, y_add), (xt + 0.15, y_add)], color=SHORTCUT, lw=1.6)
    _label(ax, xh - 0.1, 1.55, "H(x)·T(x)", style="italic", ha="right", size=FONT - 1)
    _label(ax, xc + 0.1, 1.55, "x·C(x)", style="italic", ha="left", size=FONT - 1)
    _add(ax, xt, y_add)
    _arrow(ax, (xt, y_add - 0.15), (xt, 0.6))
    _label(ax, xt, 0.45, "y = H(x)·T(x) + x·(1 − T(x))", style="italic", size=FONT)
    # Residual block: x -> weight, ReLU, weight = F(x); (+) with the identity; ReLU.
    xr = 5.9
    _label(ax, xr, 4.65, "residual block", weight="bold")
    _label(ax, xr, y_in, "x", style="italic", size=FONT + 1)
    _dot(ax, xr, y_split)
    ax.plot([xr, xr], [y_in - 0.12, y_split], color=INK, lw=1.2, zorder=1)
    ys = (3.25, 2.7, 2.15)
    _arrow(ax, (xr, y_split), (xr, ys[0] + 0.18))
    _stack(
        ax, xr, ys, [("weight layer", "conv"), ("ReLU", "relu"), ("weight layer", "conv")], w=1.3
    )
    y_radd = 1.55
    _arrow(ax, (xr, ys[-1] - 0.18), (xr, y_radd + 0.15))
    _label(ax, xr - 0.2, 1.8, "F(x)", style="italic", ha="right")
    _add(ax, xr, y_radd)
    _shortcut(ax, xr, y_split, y_radd, 1.15)
    _label(ax, xr + 1.25, 2.7, "x\nidentity\n(factor 1)", color=SHORTCUT, style="italic", ha="left")
    _arrow(ax, (xr, y_radd - 0.15), (xr, 1.0 + 0.18))
    _box(ax, xr, 1.0, "ReLU", "relu", w=1.3)
    _arrow(ax, (xr, 1.0 - 0.18), (xr, 0.6))
    _label(ax, xr, 0.45, "y = ReLU(F(x) + x)", style="italic", size=FONT)
    _label(
        ax,
        3.8,
        0.05,
        "a sigmoid gate never reaches T = 0 or 1, so the highway layer always scales x by C < 1;"
        "\nthe residual block carries x with no parameters and never closes the path",
        size=FONT - 2,
        color=MUTED,
    )
    ax.set_ylim(-0.2, 4.9)
    return show(
        fig,
        alt=(
            "Two diagrams side by side. Left, a highway layer (Srivastava et al., 2015): the input x "
            "feeds three paths. The transform H(x) = ReLU(W_H x + b_H); the transform gate "
            "T(x) = σ(W_T x + b_T), a sigmoid with values between 0 and 1, which multiplies H(x); "
            "and the carried input x, multiplied by the carry gate C(x) = 1 − T(x). The two "
            "products are added: y = H(x)·T(x) + x·(1 − T(x)). Right, the residual block of He et "
            "al. (2016): x goes through a weight layer, ReLU and a weight layer, giving F(x); an "
            "identity shortcut carries x around them with a fixed factor of 1 and no parameters "
            "to an addition node, and ReLU follows: y = ReLU(F(x) + x). A note below says that a "
            "sigmoid gate never reaches exactly 0 or 1, so the highway layer always scales x by a "
            "carry factor below 1, while the residual block never closes its identity path."
        ),
    )


#: The ImageNet ResNets of He et al. (2016a), Table 1: blocks per stage, and the block.
IMAGENET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def imagenet_stages() -> Diagram:
    """The five ImageNet ResNets of He et al. (2016a, Table 1) on one layout: the stem, four
    stages that halve the resolution and double the channels, pooling and the classifier; below
    it, how many blocks each network puts in each stage, and of which kind."""
    fig, ax = _canvas(9.4, 4.5)
    y, h = 3.85, 0.62
    _label(ax, 0.42, y, "image\n3×224×224", size=FONT - 1.5)
    columns = [(1.45, 0.95, "7×7 conv\n64, /2", "conv", "112×112")]
    columns.append((2.55, 0.85, "3×3 max\npool, /2", "pool", "56×56"))
    for s, (channels, size) in enumerate(((64, 56), (128, 28), (256, 14), (512, 7))):
        down = ", /2" if s else ""
        text = f"stage {s + 1}\n{channels} or {4 * channels} ch."
        columns.append((3.8 + 1.2 * s, 1.08, text, "plain", f"{size}×{size}{down}"))
    columns.append((8.75, 0.9, "avg pool\nfc, 1000", "fc", "1×1"))
    previous = 0.8
    for x, w, text, kind, note in columns:
        _arrow(ax, (previous, y), (x - w / 2, y))
        _box(ax, x, y, text, kind, w=w, h=h, size=FONT - 1.5)
        _label(ax, x, y - h / 2 - 0.17, note, size=FONT - 2, color=MUTED)
        previous = x + w / 2
    ax.plot([0.1, 9.3], [3.12, 3.12], color=MUTED, lw=0.6, ls=":")
    _label(ax, 0.1, 2.88, "blocks per stage", ha="left", weight="bold", size=FONT - 1)
    _label(ax, 2.0, 2.88, "block", weight="bold", size=FONT - 1)
    _label(ax, 8.75, 2.88, "layers", weight="bold", size=FONT - 1)
    for r, (depth, (kind, blocks)) in enumerate(IMAGENET_LAYOUTS.items()):
        yr = 2.52 - 0.37 * r
        _label(ax, 0.1, yr, f"ResNet-{depth}", ha="left", size=FONT - 1)
        _label(ax, 2.0, yr, kind, size=FONT - 1.5, style="italic")
        for s, n in enumerate(blocks):
            fill = "conv" if kind == "basic" else "proj"
            _box(ax, 3.8 + 1.2 * s, yr, f"× {n}", fill, w=0.62, h=0.28, size=FONT - 1.5)
        convs = (2 if kind == "basic" else 3) * sum(blocks)
        _label(ax, 8.75, yr, f"1 + {convs} + 1 = {depth}", size=FONT - 2)
    _label(
        ax,
        4.7,
        0.42,
        "basic block: 3×3 conv, c → 3×3 conv, c (out: c);   bottleneck: 1×1 conv, c → 3×3 conv, c "
        "→ 1×1 conv, 4c (out: 4c)\nc = 64, 128, 256, 512 in stages 1-4;  /2: stride 2, in the "
        "first block of stages 2-4 (torchvision: in a bottleneck's 3×3 conv)",
        size=FONT - 2,
        color=MUTED,
    )
    ax.set_ylim(0.15, 4.5)
    rows = "; ".join(
        f"ResNet-{d}, {kind} blocks {' + '.join(map(str, b))}"
        for d, (kind, b) in IMAGENET_LAYOUTS.items()
    )
    return show(
        fig,
        alt=(
            "The ImageNet ResNets of He et al. (2016a, Table 1), left to right: a 224×224 colour "
            "image, a 7×7 convolution with 64 channels and stride 2 (112×112), a 3×3 max pool with "
            "stride 2 (56×56), then four stages at 56×56, 28×28, 14×14 and 7×7 with 64, 128, 256 "
            "and 512 channels (four times as many at the output of bottleneck blocks), each after "
            "the first starting with a stride-2 block; then global average pooling and a "
            f"1000-way fully connected layer. Blocks per stage: {rows}. Depth counts the stem "
            "convolution, two layers per basic block or three per bottleneck, and the fully "
            "connected layer."
        ),
    )


def original_vs_preact() -> Diagram:
    """The original residual block (He et al. 2016a) next to the pre-activation block of He et
    al. (2016b, Fig. 1 and 4(e)): BN and ReLU move in front of each weight layer, and nothing
    follows the addition."""
    fig, ax = _canvas(7.2, 5.6)
    top, step = 4.75, 0.5
    original = [
        ("weight", "conv"),
        ("BN", "plain"),
        ("ReLU", "relu"),
        ("weight", "conv"),
        ("BN", "plain"),
    ]
    preact = [
        ("BN", "plain"),
        ("ReLU", "relu"),
        ("weight", "conv"),
        ("BN", "plain"),
        ("ReLU", "relu"),
        ("weight", "conv"),
    ]
    bottom = top - 0.45 - step * len(preact)  # both additions on one line
    y_add = bottom - 0.3
    for x, layers, title, after in (
        (1.75, original, "(a) original (He et al. 2016a)", True),
        (5.35, preact, "(b) pre-activation (He et al. 2016b)", False),
    ):
        _label(ax, x, 5.4, title, weight="bold")
        _label(ax, x, top + 0.22, "xₗ", style="italic", size=FONT + 1)
        _dot(ax, x, top)
        ys = [top - 0.45 - step * i for i in range(len(layers))]
        _arrow(ax, (x, top + 0.08), (x, ys[0] + 0.17))
        _stack(ax, x, ys, layers, w=1.3, h=0.34)
        _arrow(ax, (x, ys[-1] - 0.17), (x, y_add + 0.15))
        _add(ax, x, y_add)
        _shortcut(ax, x, top, y_add, 1.15, "identity")
        if after:
            y_relu = y_add - 0.55
            _arrow(ax, (x, y_add - 0.15), (x, y_relu + 0.17))
            _box(ax, x, y_relu, "ReLU", "relu", w=1.3, h=0.34)
            _label(
                ax,
                x + 0.8,
                y_relu,
                "on the shortcut's\npath too",
                size=FONT - 2,
                color=MUTED,
                ha="left",
            )
            end = y_relu - 0.17
            formula = "xₗ₊₁ = ReLU(xₗ + F(xₗ))"
        else:
            end = y_add - 0.15
            formula = "xₗ₊₁ = xₗ + F(xₗ)"
        _arrow(ax, (x, end), (x, bottom - 1.25))
        _label(ax, x, bottom - 1.42, formula, style="italic", size=FONT + 0.5)
    ax.set_ylim(bottom - 1.65, 5.6)
    return show(
        fig,
        alt=(
            "Two residual blocks side by side. (a) The original block of He et al. (2016a): x_l "
            "goes through a weight layer, BN, ReLU, a weight layer and BN, giving F(x_l); the "
            "identity shortcut adds x_l, and a ReLU after the addition acts on the sum, so on "
            "the shortcut's path too: x_(l+1) = ReLU(x_l + F(x_l)). (b) The pre-activation block "
            "of He et al. (2016b): BN and ReLU come before each of the two weight layers, and "
            "nothing follows the addition: x_(l+1) = x_l + F(x_l), so the identity shortcut "
            "passes x_l on unchanged."
        ),
    )


def nested_classes() -> Diagram:
    """Which function classes contain which (Chapter 7): plain ReLU networks inside residual
    networks with three times the width per block, and residual networks inside plain networks
    with 2d more units per layer; at equal depth and width, no inclusion either way is shown."""
    from matplotlib.patches import Ellipse

    fig, ax = _canvas(8.4, 4.3)
    panels = (
        (
            2.1,
            "plain ⊂ residual (residual_from_plain)",
            ("residual networks, K blocks", "y = x + V ReLU(Wx + c),", "hidden width 3D"),
            ("plain ReLU networks", "K hidden layers,", "widths ≤ D"),
            ("proj", "conv"),
        ),
        (
            6.3,
            "residual ⊂ plain (plain_from_residual)",
            ("plain ReLU networks", "K hidden layers,", "widths h + 2d"),
            ("residual networks", "K blocks, stream d,", "hidden width h"),
            ("conv", "proj"),
        ),
    )
    for x, title, outer, inner, (outer_kind, inner_kind) in panels:
        ax.add_patch(
            Ellipse((x, 2.15), 3.9, 3.1, facecolor=FILL[outer_kind], edgecolor=INK, lw=1.2)
        )
        ax.add_patch(
            Ellipse((x, 1.75), 2.3, 1.45, facecolor=FILL[inner_kind], edgecolor=INK, lw=1.2)
        )
        for i, line in enumerate(outer):
            _label(ax, x, 3.25 - 0.22 * i, line, weight="bold" if i == 0 else "normal")
        for i, line in enumerate(inner):
            _label(ax, x, 2.0 - 0.22 * i, line, weight="bold" if i == 0 else "normal")
        _label(ax, x, 3.95, title, style="italic", color=MUTED)
    _label(
        ax,
        4.2,
        0.3,
        "Each class lies inside the other one's class of greater width, with as many ReLU layers.\n"
        "At equal depth and equal width neither inclusion, nor a strict one, is shown.",
        size=FONT - 0.5,
    )
    ax.set_ylim(0.0, 4.2)
    return show(
        fig,
        alt=(
            "Two diagrams of nested sets. Left: the class of plain ReLU networks with K hidden "
            "layers of widths at most D lies inside the class of residual networks of K standard "
            "blocks y = x + V ReLU(Wx + c) whose hidden width is 3D (residual_from_plain builds "
            "one computing the same function). Right: the class of residual networks with K "
            "blocks, a stream of width d and hidden width h lies inside the class of plain ReLU "
            "networks with K hidden layers of width h + 2d (plain_from_residual). Each inclusion "
            "needs more width; at equal depth and equal width neither inclusion, nor a strict "
            "one, is shown."
        ),
    )


def _cat(ax: Axes, x: float, y: float, r: float = 0.15) -> None:
    """A concatenation along the channels (DenseNet's merge)."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, lw=1.2, zorder=2))
    _label(ax, x, y, "C", size=FONT - 2, weight="bold")


def beyond_basic_blocks() -> Diagram:
    """Three blocks side by side: ResNeXt's aggregated paths (Xie et al., 2017, Fig. 1 right and
    Fig. 3), the squeeze-and-excitation residual block (Hu et al., 2018, Fig. 3), and a dense
    block (Huang et al., 2017, Fig. 1), where each layer sees the concatenation of all before it."""
    fig, ax = _canvas(11.4, 5.5)
    small = dict(size=FONT - 2.5, h=0.34)
    top, split = 4.85, 4.55
    # ResNeXt: 32 paths of 1x1 (256 -> 4), 3x3 (4 -> 4), 1x1 (4 -> 256), summed with the shortcut.
    cols, xa = (0.55, 1.35, 2.55), 1.55
    _label(ax, xa, 5.3, "ResNeXt block (C = 32 paths)", weight="bold")
    _label(ax, xa, top + 0.1, "x, 256 channels", style="italic")
    ax.plot([cols[0], 3.3], [split, split], color=INK, lw=1.2, zorder=1)
    ax.plot([xa, xa], [top - 0.08, split], color=INK, lw=1.2, zorder=1)
    y_sum = 1.55
    for i, x in enumerate(cols):
        ys = (3.9, 3.25, 2.6)
        _arrow(ax, (x, split), (x, ys[0] + 0.17))
        layers = [(text, "conv") for text in ("1×1, 256→4", "3×3, 4→4", "1×1, 4→256")]
        _stack(ax, x, ys, layers, w=0.74, **small)
        _label(ax, x, 4.3, f"path {(1, 2, 32)[i]}", size=FONT - 2.5, color=MUTED)
        _arrow(ax, (x, ys[-1] - 0.17), (xa + (x - xa) * 0.1, y_sum + 0.15))
    _label(ax, 1.95, 3.25, "···", size=FONT + 2)
    _path(ax, [(3.3, split), (3.3, y_sum), (xa + 0.15, y_sum)], color=SHORTCUT, lw=1.6)
    _label(ax, 3.38, 3.0, "x", color=SHORTCUT, style="italic", ha="left")
    _add(ax, xa, y_sum)
    _arrow(ax, (xa, y_sum - 0.15), (xa, 1.05))
    _label(ax, xa, 0.85, "y = ReLU(x + Σᵢ Tᵢ(x))", style="italic")
    _label(
        ax,
        xa,
        0.3,
        "the same as 1×1, 256→128 · 3×3 conv with 32 groups,\n128→128 · 1×1, 128→256 "
        "(Fig. 3(c); BN after each conv)",
        size=FONT - 2.5,
        color=MUTED,
    )
    # Squeeze-and-excitation: F(x) is rescaled channel by channel by s, computed from F(x).
    xm, xs = 5.15, 6.45
    _label(ax, 5.6, 5.3, "squeeze-and-excitation block", weight="bold")
    _label(ax, xm, top + 0.1, "x, C channels", style="italic")
    ax.plot([xm, xm], [top - 0.08, split], color=INK, lw=1.2, zorder=1)
    _dot(ax, xm, split)
    _arrow(ax, (xm, split), (xm, 4.07))
    _box(ax, xm, 3.9, "residual branch F(x)", w=1.5, **small)
    y_u = 3.4
    _dot(ax, xm, y_u)
    _label(ax, xm - 0.1, 3.6, "U = F(x)", style="italic", ha="right", size=FONT - 2)
    ax.plot([xm, xs], [y_u, y_u], color=INK, lw=1.2, zorder=1)
    side = (
        ("squeeze: global avg pool\nC×H×W → C", "pool"),
        ("FC C → C/r, ReLU", "conv"),
        ("FC C/r → C, sigmoid", "conv"),
    )
    ys = (3.0, 2.4, 1.9)
    _arrow(ax, (xs, y_u), (xs, ys[0] + 0.22))
    _box(ax, xs, ys[0], side[0][0], side[0][1], w=1.55, h=0.44, size=FONT - 2.5)
    _box(ax, xs, ys[1], side[1][0], side[1][1], w=1.55, **small)
    _box(ax, xs, ys[2], side[2][0], side[2][1], w=1.55, **small)
    _arrow(ax, (xs, ys[0] - 0.22), (xs, ys[1] + 0.17))
    _arrow(ax, (xs, ys[1] - 0.17), (xs, ys[2] + 0.17))
    y_mul, y_add = 1.45, 0.95
    _path(ax, [(xs, ys[2] - 0.17), (xs, y_mul), (xm + 0.15, y_mul)])
    _label(ax, xs + 0.1, 1.6, "s ∈ (0, 1)ᶜ", style="italic", ha="left", size=FONT - 2)
    _arrow(ax, (xm, y_u), (xm, y_mul + 0.15))
    _mul(ax, xm, y_mul)
    _label(ax, xm + 0.1, 1.18, "scale: s·U", style="italic", ha="left", size=FONT - 2)
    _arrow(ax, (xm, y_mul - 0.15), (xm, y_add + 0.15))
    _add(ax, xm, y_add)
    _path(ax, [(xm, split), (4.3, split), (4.3, y_add), (xm - 0.15, y_add)], color=SHORTCUT, lw=1.6)
    _label(ax, 4.22, 2.7, "x", color=SHORTCUT, style="italic", ha="right")
    _arrow(ax, (xm, y_add - 0.15), (xm, 0.55))
    _label(ax, 5.6, 0.35, "y = ReLU(x + s(U)·U)", style="italic")
    # Dense block: each layer H_l gets the concatenation of x_0 ... x_{l-1}, and adds k channels.
    xd, buses = 10.3, (8.55, 8.8, 9.05, 9.3)
    _label(ax, 9.55, 5.3, "dense block (growth rate k)", weight="bold")
    _label(ax, buses[0], top + 0.1, "x₀, k₀ channels", style="italic")
    y_h = (3.9, 2.85, 1.8)
    y_end = 0.95
    ax.plot([buses[0], buses[0]], [top - 0.08, y_end], color=INK, lw=1.2, zorder=1)
    for layer, y in enumerate(y_h, start=1):
        y_cat = y + 0.5
        for bus in buses[:layer]:
            ax.plot([bus, xd - 0.15], [y_cat, y_cat], color=INK, lw=1.0, zorder=1)
            _dot(ax, bus, y_cat)
        _cat(ax, xd, y_cat)
        _arrow(ax, (xd, y_cat - 0.15), (xd, y + 0.17))
        _box(ax, xd, y, f"H{_sub(layer)}: BN-ReLU-3×3 conv, k", w=1.7, **small)
        y_out, bus = y - 0.32, buses[layer]
        ax.plot([xd, xd], [y - 0.17, y_out], color=INK, lw=1.2, zorder=1)
        ax.plot([bus, xd], [y_out, y_out], color=INK, lw=1.2, zorder=1)
        ax.plot([bus, bus], [y_out, y_end], color=INK, lw=1.2, zorder=1)
        _label(
            ax, xd + 0.1, y_out - 0.06, f"x{_sub(layer)}", style="italic", ha="left", size=FONT - 2
        )
    for bus in buses:
        ax.plot([bus, xd - 0.15], [y_end, y_end], color=INK, lw=1.0, zorder=1)
        _dot(ax, bus, y_end)
    _cat(ax, xd, y_end)
    _arrow(ax, (xd, y_end - 0.15), (xd, 0.55))
    _label(ax, 9.8, 0.35, "[x₀, x₁, x₂, x₃]: k₀ + 3k channels", style="italic")
    scale = 9.5 / 11.4  # drawn on an 11.4-inch canvas, shown at the width of the other diagrams
    fig.set_size_inches(9.5, 5.5 * scale)
    for text in ax.texts:
        text.set_fontsize(text.get_fontsize() * scale)
    return show(
        fig,
        alt=(
            "Three blocks side by side. Left, a ResNeXt block (Xie et al., 2017): the 256-channel "
            "input x is split into 32 paths, each a 1×1 convolution to 4 channels, a 3×3 "
            "convolution on 4 channels and a 1×1 convolution back to 256; the paths' outputs are "
            "summed with the identity shortcut x, and ReLU follows. A note says this equals a 1×1 "
            "convolution to 128 channels, a 3×3 convolution with 32 groups, and a 1×1 convolution "
            "to 256. Middle, a squeeze-and-excitation block (Hu et al., 2018): the residual "
            "branch's output U = F(x) goes to a side path that squeezes it by global average "
            "pooling to one number per channel, then a fully connected layer to C/r units with "
            "ReLU and one back to C with a sigmoid; the resulting channel weights s, between 0 "
            "and 1, scale U channel by channel, and the identity shortcut x is added: y = ReLU(x "
            "+ s(U)·U). Right, a dense block (Huang et al., 2017) with three layers: each layer "
            "H_l (BN, ReLU, 3×3 convolution producing k channels) receives the concatenation of "
            "the block's input x₀ and the outputs of all earlier layers, and the block outputs "
            "the concatenation of all of them, k₀ + 3k channels: concatenation, not addition."
        ),
    )


def residual_forms() -> Diagram:
    """Chapter 11's three residual forms side by side: a pre-LN transformer layer (Xiong et al.,
    2020), a residual recurrent cell unrolled over one time step, and a residual graph
    convolution (Li et al., 2019). Each adds its input to the output of a branch."""
    fig, ax = _canvas(9.0, 5.0)
    top = 4.55
    # Panel 1: pre-LN transformer layer, two sublayers with their own shortcut each.
    x1 = 1.45
    _label(ax, x1, 4.85, "transformer layer (pre-LN)", weight="bold")
    _label(ax, x1, top, "x", style="italic", size=FONT + 1)
    small = dict(w=1.3, h=0.32, size=FONT - 1.5)
    for y0, name in ((4.25, "multi-head\nattention"), (2.35, "MLP")):
        _dot(ax, x1, y0)
        _arrow(ax, (x1, y0), (x1, y0 - 0.3))
        _box(ax, x1, y0 - 0.47, "LayerNorm", "pool", **small)
        _arrow(ax, (x1, y0 - 0.63), (x1, y0 - 0.85))
        _box(ax, x1, y0 - 1.07, name, "conv", w=1.3, h=0.42, size=FONT - 1.5)
        _arrow(ax, (x1, y0 - 1.28), (x1, y0 - 1.5))
        _add(ax, x1, y0 - 1.65)
        _shortcut(ax, x1, y0, y0 - 1.65, 0.95)
    ax.plot([x1, x1], [top - 0.12, 4.25], color=INK, lw=1.2, zorder=1)
    ax.plot([x1, x1], [4.25 - 1.8, 2.35], color=INK, lw=1.2, zorder=1)
    _arrow(ax, (x1, 2.35 - 1.8), (x1, 0.35))
    _label(ax, x1, 0.15, "x + Attn(LN(x)), then + MLP(LN(·))", style="italic", size=FONT - 1.5)
    # Panel 2: residual RNN cell, h_{t-1} -> F(h_{t-1}, x_t) -> (+) -> h_t.
    x2 = 4.5
    _label(ax, x2, 4.85, "recurrent cell (residual in time)", weight="bold")
    _label(ax, x2, top, "h$_{t-1}$", style="italic", size=FONT + 1)
    _dot(ax, x2, 4.15)
    ax.plot([x2, x2], [top - 0.15, 4.15], color=INK, lw=1.2, zorder=1)
    _arrow(ax, (x2, 4.15), (x2, 3.2 + 0.25))
    _label(ax, x2 - 1.05, 3.2, "x$_t$", style="italic", size=FONT + 1)
    _arrow(ax, (x2 - 0.9, 3.2), (x2 - 0.65, 3.2))
    _box(
        ax, x2, 3.2, "F = tanh(W h$_{t-1}$\n + U x$_t$ + b)", "conv", w=1.3, h=0.5, size=FONT - 1.5
    )
    _arrow(ax, (x2, 3.2 - 0.25), (x2, 2.0 + 0.15))
    _add(ax, x2, 2.0)
    _shortcut(ax, x2, 4.15, 2.0, 0.95)
    _label(ax, x2 + 1.0, 3.2, "h$_{t-1}$", color=SHORTCUT, style="italic", ha="left", size=FONT - 1)
    _arrow(ax, (x2, 2.0 - 0.15), (x2, 1.1))
    _label(ax, x2, 0.95, "h$_t$ (to step t + 1)", style="italic", size=FONT)
    _label(ax, x2, 0.15, "h$_t$ = h$_{t-1}$ + F(h$_{t-1}$, x$_t$)", style="italic", size=FONT - 1.5)
    # Panel 3: residual graph convolution.
    x3 = 7.5
    _label(ax, x3, 4.85, "graph convolution (ResGCN)", weight="bold")
    _label(ax, x3, top, "H$^{(l)}$", style="italic", size=FONT + 1)
    _dot(ax, x3, 4.15)
    ax.plot([x3, x3], [top - 0.15, 4.15], color=INK, lw=1.2, zorder=1)
    _stack(
        ax,
        x3,
        (3.55, 2.95, 2.35),
        [("H W$^{(l)}$", "conv"), ("Â · (mix neighbours)", "proj"), ("σ = ReLU", "relu")],
        w=1.3,
        h=0.34,
        size=FONT - 1.5,
    )
    _arrow(ax, (x3, 4.15), (x3, 3.55 + 0.17))
    _arrow(ax, (x3, 2.35 - 0.17), (x3, 1.75 + 0.15))
    _add(ax, x3, 1.75)
    _shortcut(ax, x3, 4.15, 1.75, 0.95)
    _arrow(ax, (x3, 1.75 - 0.15), (x3, 1.1))
    _label(ax, x3, 0.95, "H$^{(l+1)}$", style="italic", size=FONT)
    _label(
        ax,
        x3,
        0.15,
        "H$^{(l+1)}$ = H$^{(l)}$ + σ(Â H$^{(l)}$ W$^{(l)}$)",
        style="italic",
        size=FONT - 1.5,
    )
    ax.set_ylim(-0.1, 5.05)
    return show(
        fig,
        alt=(
            "Three residual forms side by side, each with its shortcut in green. Left, a pre-LN "
            "transformer layer: x goes through LayerNorm and multi-head attention and is added "
            "back, x + Attn(LN(x)); the result goes through LayerNorm and an MLP and is added "
            "back again. Middle, a recurrent cell that is residual in time: the previous state "
            "h_(t-1) and the input x_t feed F = tanh(W h_(t-1) + U x_t + b), and the shortcut "
            "adds h_(t-1), so h_t = h_(t-1) + F(h_(t-1), x_t) is passed to the next time step. "
            "Right, a residual graph convolution: the node features H^(l) are multiplied by the "
            "weights W^(l), mixed over each node's neighbours by the normalised adjacency Â, "
            "passed through ReLU and added to H^(l): H^(l+1) = H^(l) + σ(Â H^(l) W^(l))."
        ),
    )


def _sub(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _sup(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def bottleneck_vs_mbconv() -> Diagram:
    """ResNet-50's bottleneck (wide stream, narrow inside) next to EfficientNet's MBConv (thin
    stream, six times wider inside: the *inverted* bottleneck of Sandler et al., 2018), each box
    as wide as its number of channels."""

    def width(channels: int) -> float:
        return 1.75 + 1.3 * channels / 256

    bottleneck = [(64, "1×1 conv, 64 · ReLU", "conv"), (64, "3×3 conv, 64 · ReLU", "conv")]
    bottleneck.append((256, "1×1 conv, 256", "conv"))
    mbconv = [
        (240, "1×1 conv, 240 · SiLU", "conv"),
        (240, "5×5 depthwise, 240 · SiLU", "conv"),
        (240, "SE: 240 → 10 → 240", "relu"),
        (40, "1×1 conv, 40 (linear)", "conv"),
    ]
    fig, ax = _canvas(8.6, 4.6)
    top, step = 3.85, 0.6
    for x, layers, d, title in (
        (1.8, bottleneck, 256, "bottleneck (ResNet-50)"),
        (5.8, mbconv, 40, "MBConv (EfficientNet-B0)"),
    ):
        _label(ax, x, 4.45, title, weight="bold")
        _label(ax, x, top + 0.22, f"{d}-d input", style="italic")
        _dot(ax, x, top)
        ys = [top - 0.5 - step * i for i in range(len(layers))]
        _arrow(ax, (x, top + 0.08), (x, ys[0] + 0.18))
        for y, (channels, text, kind) in zip(ys, layers, strict=True):
            _box(ax, x, y, text, kind, w=width(channels), size=FONT - 1)
        for a, b in zip(ys[:-1], ys[1:], strict=True):
            _arrow(ax, (x, a - 0.18), (x, b + 0.18))
        y_add = ys[-1] - 0.5
        _arrow(ax, (x, ys[-1] - 0.18), (x, y_add + 0.15))
        _add(ax, x, y_add)
        _shortcut(ax, x, top, y_add, 1.7)
        _label(ax, x + 1.8, (top + y_add) / 2, "identity", color=SHORTCUT, ha="left")
        y_out = y_add - 0.45
        if d == 256:  # the bottleneck applies ReLU after the addition, MBConv nothing
            _arrow(ax, (x, y_add - 0.15), (x, y_add - 0.37))
            _box(ax, x, y_add - 0.55, "ReLU", "relu", w=1.0, size=FONT - 1)
            y_out = y_add - 0.73
        else:
            _arrow(ax, (x, y_add - 0.15), (x, y_out))
        _label(ax, x, y_out - 0.15, f"{d}-d output", style="italic")
    ax.set_ylim(y_add - 0.8, 4.7)
    return show(
        fig,
        alt=(
            "Two residual blocks drawn with each layer as wide as its number of channels. Left, "
            "ResNet-50's bottleneck on a 256-d input: a 1×1 convolution narrows it to 64 channels "
            "with ReLU, a 3×3 convolution works at 64 channels, a 1×1 convolution widens back to "
            "256, and the identity shortcut adds the input: wide, narrow, wide. Right, "
            "EfficientNet-B0's MBConv on a 40-d input: a 1×1 convolution expands it six times to "
            "240 channels with SiLU, a 5×5 depthwise convolution filters each of the 240 "
            "channels, squeeze-and-excitation rescales them (240 to 10 to 240), a 1×1 convolution "
            "without activation projects back to 40, and the identity shortcut adds the input: "
            "narrow, wide, narrow, the inverted bottleneck."
        ),
    )
