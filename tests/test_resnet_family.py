"""Chapter 6's library code: costs counted on the meta device (against torchvision's documented
parameters and GFLOPS and against real networks), the wide ResNets' parameter counts (against a
closed form and the paper), and the depth sweep (against compare itself)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

import resnet_lib as rl

# torchvision's model documentation (https://docs.pytorch.org/vision/stable/models.html, the
# IMAGENET1K_V1 weights of each model): parameters and GFLOPS at 224x224.
TORCHVISION_DOCS = {
    "resnet18": (11_689_512, 1.81),
    "resnet34": (21_797_672, 3.66),
    "resnet50": (25_557_032, 4.09),
    "resnet101": (44_549_160, 7.80),
    "resnet152": (60_192_808, 11.51),
}


@pytest.mark.parametrize("name", TORCHVISION_DOCS)
def test_imagenet_costs_match_torchvision_docs(name):
    params, macs = rl.efficiency.cost_on_meta(getattr(rl, name), (1, 3, 224, 224))
    doc_params, doc_gflops = TORCHVISION_DOCS[name]
    assert params == doc_params
    assert abs(macs / 1e9 - doc_gflops) / doc_gflops < 0.01, (name, macs)


@pytest.mark.parametrize("name", TORCHVISION_DOCS)
def test_imagenet_costs_match_torchvision_weight_metadata(name):
    """The documentation is generated from the weights' metadata: compare with the installed
    torchvision's too (three decimals of GFLOPS there)."""
    models = pytest.importorskip("torchvision.models")
    weights = getattr(models, name.replace("resnet", "ResNet") + "_Weights").IMAGENET1K_V1
    params, macs = rl.efficiency.cost_on_meta(getattr(rl, name), (1, 3, 224, 224))
    assert params == weights.meta["num_params"]
    assert abs(macs / 1e9 - weights.meta["_ops"]) < 0.001 * weights.meta["_ops"]


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda: rl.cifar_resnet(20), (1, 3, 32, 32)),
        (lambda: rl.preact_resnet(29, widths=(4, 8, 16)), (2, 3, 16, 16)),
        (lambda: rl.VGG(11, in_channels=1, width_scale=0.1), (1, 1, 8, 8)),
        (lambda: rl.resnet18(num_classes=7), (1, 3, 64, 64)),
    ],
)
def test_meta_counts_equal_a_real_network(build, shape):
    torch.manual_seed(0)
    real = build()
    expected = rl.count_parameters(real), rl.multiply_adds(real, shape)
    assert rl.efficiency.cost_on_meta(build, shape) == expected
    assert expected[1] > 0


def test_multiply_adds_of_one_convolution_and_a_linear_layer():
    """The closed form: c_out * c_in * k * k per output position, in * out for a linear layer."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 8 * 8, 5)
    )
    expected = 8 * 3 * 3 * 3 * 8 * 8 + 8 * 8 * 8 * 5
    assert rl.efficiency.cost_on_meta(lambda: model, (1, 3, 16, 16))[1] == expected


def test_cost_on_meta_allocates_no_weights():
    built = []

    def build():
        built.append(rl.resnet50())
        return built[-1]

    rl.efficiency.cost_on_meta(build, (1, 3, 64, 64))
    assert all(p.is_meta for p in built[0].parameters())


# ------------------------------------------------------------------- wide ResNets


def wrn_parameters(depth: int, k: int, num_classes: int = 10) -> int:
    """WRN-depth-k counted by hand: a 3x3 stem with 16 channels, three stages of n = (depth-4)/6
    pre-activation blocks (BN, 3x3 conv, BN, 3x3 conv) with widths 16k, 32k, 64k, a bare 1x1
    projection where the width or stride changes, a final BN and the classifier."""
    n = (depth - 4) // 6
    total, channels = 3 * 9 * 16, 16
    for width in (16 * k, 32 * k, 64 * k):
        for i in range(n):
            block_in = channels if i == 0 else width
            total += 2 * block_in + 9 * block_in * width + 2 * width + 9 * width * width
            stride = 1 if width == 16 * k else 2  # the first block of stages 2 and 3 halves
            if i == 0 and (block_in != width or stride != 1):
                total += block_in * width  # the projection
        channels = width
    return total + 2 * channels + channels * num_classes + num_classes


@pytest.mark.parametrize(
    "depth, k, paper_millions",
    # Zagoruyko and Komodakis (2016): WRN-28-10 36.5M, WRN-16-8 11.0M, WRN-40-4 8.9M
    [(28, 10, 36.5), (16, 8, 11.0), (40, 4, 8.9)],
)
def test_wide_resnet_parameters(depth, k, paper_millions):
    params, _ = rl.efficiency.cost_on_meta(
        functools.partial(rl.wide_resnet, depth, k), (1, 3, 32, 32)
    )
    assert params == wrn_parameters(depth, k)
    assert round(params / 1e6, 1) == paper_millions


def test_wrn_closed_form_can_fail():
    assert wrn_parameters(28, 10) != wrn_parameters(28, 9)
    assert rl.count_parameters(rl.wide_resnet(10, 2)) == wrn_parameters(10, 2)
    assert rl.count_parameters(rl.wide_resnet(10, 1)) == wrn_parameters(10, 1)


# ------------------------------------------------------------------- depth_sweep


@pytest.fixture(scope="module")
def tiny():
    data = rl.data.digits(image_size=8, train_size=200)
    config = rl.TrainConfig(epochs=2, batch_size=64, warmup_steps=2)
    families = {
        "plain": functools.partial(
            rl.cifar_resnet, residual=False, widths=(4, 8, 8), in_channels=1
        ),
        "ResNet": functools.partial(rl.cifar_resnet, widths=(4, 8, 8), in_channels=1),
    }
    return data, config, families


def test_depth_sweep_rows(tiny):
    data, config, families = tiny
    rows = rl.train.depth_sweep(
        (8, 14), families, data, config, seeds=(0, 1), device="cpu", progress=False
    )
    assert [(r.family, r.depth, r.seed) for r in rows] == [
        (f, d, s) for f in ("plain", "ResNet") for d in (8, 14) for s in (0, 1)
    ]
    for row in rows:
        assert row.name == f"{row.family}-{row.depth}"
        assert row.parameters == rl.count_parameters(families[row.family](row.depth))
        assert len(row.history.epoch) == config.epochs and not row.diverged
        assert row.train_loss == row.history.train_loss[-1]
        assert row.train_err == pytest.approx(1 - row.history.train_acc[-1])
        assert row.test_err == pytest.approx(1 - row.history.test_acc[-1])
        assert 0 <= row.train_err <= 1 and 0 <= row.test_err <= 1
        assert 0 < row.seconds_per_epoch < math.inf
    plain, res = rows[0], rows[4]
    assert plain.parameters == res.parameters  # option A: the plain twin has the same weights


def test_depth_sweep_trains_what_compare_trains(tiny):
    data, config, families = tiny
    (row,) = rl.train.depth_sweep(
        {"ResNet": (8,)}, {"ResNet": families["ResNet"]}, data, config, (3,), "cpu", progress=False
    )
    runs = rl.compare(
        {"ResNet-8": functools.partial(families["ResNet"], 8)},
        data,
        config,
        (3,),
        "cpu",
        progress=False,
    )
    assert row.history.train_loss == runs["ResNet-8"][0].train_loss
    assert row.history.test_acc == runs["ResNet-8"][0].test_acc


def test_depth_sweep_per_family_depths(tiny):
    data, config, families = tiny
    config = rl.TrainConfig(epochs=1, batch_size=64, warmup_steps=1)
    rows = rl.train.depth_sweep(
        {"plain": (8,), "ResNet": (14, 8)}, families, data, config, device="cpu", progress=False
    )
    assert [r.name for r in rows] == ["plain-8", "ResNet-14", "ResNet-8"]


def test_depth_sweep_records_a_diverged_run(tiny):
    """No batch normalisation and a learning rate of 1000: the loss stops being finite, and with
    diverged="record" the sweep keeps the run, marked, with NaN for its final measurements."""
    data, _, _ = tiny
    config = rl.TrainConfig(epochs=1, batch_size=64, lr=1e3, warmup_steps=1)
    no_bn = functools.partial(
        rl.cifar_resnet, residual=False, widths=(4, 8, 8), in_channels=1, norm_layer=nn.Identity
    )
    (row,) = rl.train.depth_sweep(
        (8,), {"plain": no_bn}, data, config, device="cpu", progress=False, diverged="record"
    )
    assert row.diverged and row.history.diverged
    assert math.isnan(row.train_loss) and math.isnan(row.train_err) and math.isnan(row.test_err)
    with pytest.raises(FloatingPointError):  # the default: a diverged run stops the sweep
        rl.train.depth_sweep((8,), {"plain": no_bn}, data, config, device="cpu", progress=False)


@pytest.mark.parametrize(
    "depths, families, message",
    [
        ({"plain": (8,)}, {"plain": None, "ResNet": None}, "no depths for"),
        ((8,), {}, "families is empty"),
    ],
)
def test_depth_sweep_refuses_bad_arguments(tiny, depths, families, message):
    data, config, _ = tiny
    with pytest.raises(ValueError, match=message):
        rl.train.depth_sweep(depths, families, data, config, device="cpu", progress=False)
