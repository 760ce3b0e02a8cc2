"""Figures the chapters share: training curves of several networks over several seeds, alone
or side by side by family (plain and residual)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .train import History

#: Colour-blind-safe colours (Okabe and Ito), readable on light and dark backgrounds.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
LABELS = {
    "train_loss": "training loss (cross-entropy)",
    "train_acc": "training accuracy",
    "test_loss": "test loss (cross-entropy)",
    "test_acc": "test accuracy",
    "running_loss": "training loss, mean over the epoch's batches",
    "train_err": "training error (1 − accuracy)",
    "test_err": "test error (1 − accuracy)",
}


def metric_values(history: History, metric: str) -> list[float]:
    """``history``'s per-epoch ``metric``: a field of :class:`History`, or ``train_err`` and
    ``test_err``, the errors 1 − accuracy."""
    if metric in ("train_err", "test_err"):
        return [1 - a for a in getattr(history, metric.replace("_err", "_acc"))]
    return getattr(history, metric)


def plot_curves(
    runs: Mapping[str, Sequence[History]],
    metric: str = "train_loss",
    ax: Axes | None = None,
    log: bool = False,
    title: str | None = None,
    styles: Mapping[str, dict] | None = None,
) -> Axes:
    """One line per network: the mean of ``metric`` over seeds per epoch, with the range of the
    seeds shaded. ``styles[name]`` can set matplotlib line properties (e.g. ``linestyle``).

    A run that diverged (``History.diverged``, from ``compare(..., diverged="record")``) is left
    out of the mean and drawn on its own, dotted, up to its last complete epoch and ending in a
    cross; the legend says how many of the network's seeds diverged."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for i, (name, histories) in enumerate(runs.items()):
        finished = [h for h in histories if not h.diverged]
        lost = [h for h in histories if h.diverged]
        style = {"color": COLORS[i % len(COLORS)], **(styles or {}).get(name, {})}
        label = name if not lost else f"{name} ({len(lost)} of {len(histories)} diverged)"
        if finished:
            values = np.array([metric_values(h, metric) for h in finished], dtype=float)
            if values.size == 0 or values.shape[1] == 0:
                raise ValueError(f"no {metric!r} recorded for {name!r} (was eval_train off?)")
            epochs = np.asarray(finished[0].epoch)
            ax.plot(epochs, values.mean(0), label=label, **style)
            label = None
            if len(finished) > 1:
                ax.fill_between(
                    epochs, values.min(0), values.max(0), alpha=0.2, lw=0, color=style["color"]
                )
        for h in lost:  # each diverged run as far as it got (perhaps not one epoch)
            values = metric_values(h, metric)
            ax.plot(
                h.epoch[: len(values)],
                values,
                label=label,
                **{**style, "linestyle": ":"},
                marker="x",
                markevery=[len(values) - 1] if values else None,
            )
            label = None
    ax.set_xlabel("epoch")
    ax.set_ylabel(LABELS.get(metric, metric))
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def final(runs: Mapping[str, Sequence[History]], metric: str = "train_loss") -> dict[str, list]:
    """The last epoch's ``metric`` of every seed, per network; NaN for a run that diverged
    (``np.nanmean`` skips those, ``np.mean`` propagates them)."""
    return {
        name: [math.nan if h.diverged else metric_values(h, metric)[-1] for h in histories]
        for name, histories in runs.items()
    }


def plot_families(
    runs: Mapping[str, Sequence[History]],
    families: Mapping[str, Sequence[str]],
    metric: str = "train_loss",
    log: bool = False,
    title: str | None = None,
    panel_width: float = 4.6,
    height: float = 3.8,
) -> tuple[Figure, list[Axes]]:
    """One panel per family of networks, side by side on a shared y-axis.

    ``families`` maps a panel title to the names (keys of ``runs``) drawn in it, e.g.
    ``{"plain": ["plain-20", "plain-56"], "residual": ["ResNet-20", "ResNet-56"]}``; each panel is
    :func:`plot_curves`, so the n-th network of every family gets the same colour (depth 20 in one
    colour, depth 56 in another) and the panels compare at a glance, as in He et al. (2016a),
    Fig. 4 and 6."""
    if not families:
        raise ValueError("families is empty: give at least one panel")
    for panel, names in families.items():
        if not names:
            raise ValueError(f"family {panel!r} has no networks")
        missing = [name for name in names if name not in runs]
        if missing:
            raise ValueError(
                f"family {panel!r} names {missing}, which are not in runs (runs has {list(runs)})"
            )
    fig, axes = plt.subplots(
        1,
        len(families),
        sharey=True,
        squeeze=False,
        facecolor="white",
        figsize=(panel_width * len(families), height),
        layout="constrained",
    )
    axes = list(axes[0])
    for ax, (panel, names) in zip(axes, families.items(), strict=True):
        plot_curves({name: runs[name] for name in names}, metric, ax=ax, log=log, title=panel)
    for ax in axes[1:]:
        ax.set_ylabel("")  # the shared axis is labelled once, on the left
    if title:
        fig.suptitle(title)
    return fig, axes
