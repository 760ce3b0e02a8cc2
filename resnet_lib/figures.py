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
    _path(
        ax,
        [(x, top - 0.05), (x + 1.25, top - 0.05), (x + 1.25, y_add), (x + 0.15, y_add)],
        color=SHORTCUT,
        lw=1.6,
    )
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
        for y, (text, kind) in zip(ys, layers, strict=True):
            _box(ax, x, y, text, kind)
        for a, b in zip(ys[:-1], ys[1:], strict=True):
            _arrow(ax, (x, a - 0.18), (x, b + 0.18))
        y_add = ys[-1] - 0.5
        y_relu = y_add - 0.5
        _arrow(ax, (x, ys[-1] - 0.18), (x, y_add + 0.15))
        _add(ax, x, y_add)
        _path(
            ax,
            [(x, top), (x + 1.2, top), (x + 1.2, y_add), (x + 0.15, y_add)],
            color=SHORTCUT,
            lw=1.6,
        )
        _label(
            ax, x + 1.3, (top + y_add) / 2, "identity", color=SHORTCUT, ha="left", style="italic"
        )
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


def _sub(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _sup(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
