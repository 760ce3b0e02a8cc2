"""Figures: the lines and bands drawn are the histories' numbers, and bad input fails clearly."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from resnet_lib.plotting import COLORS, final, plot_curves, plot_families
from resnet_lib.train import History


def _history(losses, accs=None):
    h = History(epoch=list(range(1, len(losses) + 1)), train_loss=list(losses))
    h.train_acc = list(accs) if accs is not None else [0.5] * len(losses)
    return h


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


RUNS = {
    "plain-20": [_history([2.0, 1.0, 0.5]), _history([3.0, 0.5, 0.25])],
    "plain-56": [_history([4.0, 3.0, 2.0]), _history([2.0, 2.0, 1.0])],
    "ResNet-20": [_history([1.0, 0.1, 0.01])],
    "ResNet-56": [_history([1.0, 0.01, 0.001])],
}
FAMILIES = {"plain": ["plain-20", "plain-56"], "residual": ["ResNet-20", "ResNet-56"]}


def test_lines_are_the_mean_over_seeds_and_bands_their_range():
    ax = plot_curves({k: RUNS[k] for k in FAMILIES["plain"]})
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == FAMILIES["plain"]
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines[0].get_ydata(), [2.5, 0.75, 0.375])
    np.testing.assert_allclose(lines[1].get_ydata(), [3.0, 2.5, 1.5])
    bands = ax.collections
    assert len(bands) == 2
    for band, (low, high) in zip(
        bands,
        [([2.0, 0.5, 0.25], [3.0, 1.0, 0.5]), ([2.0, 2.0, 1.0], [4.0, 3.0, 2.0])],
        strict=True,
    ):
        vertices = band.get_paths()[0].vertices
        for x, lo, hi in zip([1, 2, 3], low, high, strict=True):
            ys = vertices[np.isclose(vertices[:, 0], x), 1]
            assert ys.min() == pytest.approx(lo) and ys.max() == pytest.approx(hi)


def test_one_seed_draws_no_band():
    ax = plot_curves({"ResNet-20": RUNS["ResNet-20"]})
    assert len(ax.collections) == 0
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 0.1, 0.01])


def test_empty_metric_is_an_error():
    with pytest.raises(ValueError, match="test_acc"):
        plot_curves({"plain-20": RUNS["plain-20"]}, metric="test_acc")
    with pytest.raises(ValueError, match="test_acc"):
        plot_families(RUNS, FAMILIES, metric="test_acc")


def test_families_side_by_side_on_a_shared_axis():
    fig, axes = plot_families(RUNS, FAMILIES, log=True, title="finding")
    assert len(axes) == 2 and fig.get_suptitle() == "finding"
    assert [ax.get_title() for ax in axes] == ["plain", "residual"]
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert axes[0].get_ylabel() and not axes[1].get_ylabel()
    for ax, names in zip(axes, FAMILIES.values(), strict=True):
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == names
        # the n-th network of each family has the n-th colour, so depths match across panels
        assert [line.get_color() for line in lines] == list(COLORS[:2])
        for line, name in zip(lines, names, strict=True):
            expected = np.mean([h.train_loss for h in RUNS[name]], axis=0)
            np.testing.assert_allclose(line.get_ydata(), expected)


def test_families_must_name_known_networks():
    with pytest.raises(ValueError, match="ResNet-110"):
        plot_families(RUNS, {"residual": ["ResNet-20", "ResNet-110"]})
    with pytest.raises(ValueError, match="no networks"):
        plot_families(RUNS, {"plain": []})
    with pytest.raises(ValueError, match="empty"):
        plot_families(RUNS, {})


def test_final_is_the_last_epoch_of_every_seed():
    assert final(RUNS) == {
        "plain-20": [0.5, 0.25],
        "plain-56": [2.0, 1.0],
        "ResNet-20": [0.01],
        "ResNet-56": [0.001],
    }
    assert final(RUNS, "train_acc")["plain-20"] == [0.5, 0.5]


def test_diverged_runs_from_compare_are_drawn_and_marked():
    # Regression: compare(..., diverged="record") used to return None for a diverged run,
    # which plot_curves, final and plot_families could not take.
    import functools

    import torch
    from torch.utils.data import TensorDataset

    from resnet_lib import cifar_resnet, train
    from resnet_lib.data import DataSplits

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 2, (64,), generator=g)
    data = DataSplits("toy", TensorDataset(x, y), TensorDataset(x, y), 2, 1, 8)
    build = functools.partial(cifar_resnet, 8, num_classes=2, widths=(4, 4, 4), in_channels=1)
    wild = train.TrainConfig(epochs=30, batch_size=32, lr=1e5, warmup_steps=60, schedule="constant")
    runs = train.compare(
        {"wild": build}, data, wild, seeds=(0, 1), device="cpu", progress=False, diverged="record"
    )
    runs = {"tame": RUNS["ResNet-20"], **runs}
    assert all(np.isnan(final(runs)["wild"])) and final(runs)["tame"] == [0.01]
    fig, (ax,) = plot_families(runs, {"all": ["tame", "wild"]}, "train_loss")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["tame", "wild (2 of 2 diverged)"]
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 2
    for line, h in zip(dotted, runs["wild"], strict=True):  # eval-mode losses may be NaN already
        np.testing.assert_array_equal(line.get_ydata(), h.train_loss)
    assert len(runs["wild"][0].train_loss) > 0  # a partial curve was there to draw


def test_diverged_seed_is_left_out_of_the_mean():
    lost = _history([3.0, 9.0])
    lost.diverged = True
    runs = {"net": [_history([2.0, 1.0, 0.5]), lost, _history([4.0, 3.0, 1.5])]}
    ax = plot_curves(runs, "train_loss")
    mean, partial = ax.get_lines()
    np.testing.assert_allclose(mean.get_ydata(), [3.0, 2.0, 1.0])
    assert list(partial.get_ydata()) == [3.0, 9.0] and partial.get_linestyle() == ":"
    assert ax.get_legend().get_texts()[0].get_text() == "net (1 of 3 diverged)"
    assert np.isnan(final(runs)["net"][1]) and final(runs)["net"][::2] == [0.5, 1.5]


def test_errors_are_one_minus_accuracy():
    runs = {"net": [_history([1.0, 0.5], accs=[0.25, 0.75]), _history([1.0, 0.5], accs=[0.5, 1])]}
    ax = plot_curves(runs, "train_err")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.625, 0.125])
    assert ax.get_ylabel().startswith("training error")
    assert final(runs, "train_err") == {"net": [0.25, 0.0]}
