"""Chapter 9's library code: a grouped convolution as narrow paths (against the grouped
convolution itself, and a ResNeXt bottleneck as the sum of its paths), the fixed-budget width
solver (against Xie et al.'s Table 2 and real blocks), squeeze-and-excitation's overhead (against
torchvision's SqueezeExcitation and the networks) and its excitations (against the module's own
computation), and DenseNet's parts (against torchvision's densenet121)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resnet_lib as rl
from resnet_lib.blocks import AggregatedPaths, Bottleneck, split_grouped_conv


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics, so that slicing a
    BatchNorm the wrong way shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g))
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model


@pytest.mark.parametrize(
    "in_ch, out_ch, groups, stride, bias",
    [(8, 8, 4, 1, False), (12, 6, 3, 2, True), (32, 64, 32, 1, False), (6, 6, 1, 1, True)],
)
def test_grouped_conv_is_its_narrow_paths_side_by_side(in_ch, out_ch, groups, stride, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, groups=groups, bias=bias)
    x = torch.randn(2, in_ch, 7, 7)
    paths = split_grouped_conv(conv)
    assert len(paths) == groups and all(p.groups == 1 for p in paths)
    slices = x.chunk(groups, dim=1)
    merged = torch.cat([p(s) for p, s in zip(paths, slices, strict=True)], dim=1)
    torch.testing.assert_close(merged, conv(x), rtol=0, atol=1e-5)
    # the weights are the grouped convolution's, not merely equal in number
    assert sum(p.weight.numel() for p in paths) == conv.weight.numel()


def test_split_paths_are_copies():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)
    paths = split_grouped_conv(conv)
    with torch.no_grad():
        paths[0].weight.zero_()
    assert conv.weight.abs().sum() > 0


@pytest.mark.parametrize("groups, width", [(4, 2), (8, 3), (1, 8)])
@pytest.mark.parametrize("training", [False, True])
def test_resnext_bottleneck_equals_the_sum_of_its_paths(groups, width, training):
    torch.manual_seed(0)
    block = _randomise_bn(Bottleneck(32, 8, groups=groups, base_width=64 * width / 8))
    assert block.conv2.groups == groups and block.conv2.in_channels == groups * width
    paths = AggregatedPaths(block)
    assert len(paths.paths) == groups
    block.train(training)
    paths.train(training)
    x = torch.randn(4, 32, 6, 6)
    with torch.no_grad():
        expected = block.residual_branch(x)
        got = paths(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_last_batch_norm_per_path_would_not_be_equivalent():
    """The reason AggregatedPaths applies BN_3 after the sum: its shift, per path, counts C times."""
    torch.manual_seed(0)
    block = _randomise_bn(Bottleneck(32, 8, groups=4, base_width=32)).eval()
    paths = AggregatedPaths(block).eval()
    x = torch.randn(2, 32, 5, 5)
    with torch.no_grad():
        wrong = sum(paths.bn3(p(x)) for p in paths.paths)
        assert (wrong - block.residual_branch(x)).abs().max() > 0.1


# Xie et al. (2017), Table 2: cardinality C and bottleneck width d at ~70k weights (conv2 stage)
TABLE2 = {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}


def test_width_solver_reproduces_the_papers_table():
    assert {c: rl.models.resnext_width(c, 256) for c in TABLE2} == TABLE2
    budget = rl.models.resnext_template_weights(1, 64, 256)
    assert budget == 69_632
    for c, d in TABLE2.items():  # "roughly preserved complexity": within 3% of ResNet's
        assert abs(rl.models.resnext_template_weights(c, d, 256) / budget - 1) < 0.03


@pytest.mark.parametrize("cardinality, width", [(1, 64), (32, 4), (8, 14)])
def test_template_weights_count_a_real_bottleneck(cardinality, width):
    block = Bottleneck(256, 64, groups=cardinality, base_width=width)
    weights = sum(getattr(block, f"conv{i}").weight.numel() for i in (1, 2, 3))
    assert weights == rl.models.resnext_template_weights(cardinality, width, 256)


def test_width_solver_at_other_budgets():
    for c in (1, 3, 16, 64):
        d = rl.models.resnext_width(c, 64, budget=5000)
        best = min(
            range(1, 200), key=lambda w: abs(rl.models.resnext_template_weights(c, w, 64) - 5000)
        )
        assert d == best
    assert rl.models.resnext_width(1024, 64) == 1  # never zero


def test_narrow_resnext_has_the_cardinality_and_width_asked_for():
    model = rl.models.narrow_resnext(20, cardinality=4, width=3, widths=(8, 16, 32))
    grouped = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(grouped) == 6  # two blocks in each of three stages
    assert {(m.groups, m.in_channels) for m in grouped} == {(4, 12), (4, 24), (4, 48)}
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    resnet = rl.cifar_resnet(20, block=Bottleneck, widths=(8, 16, 32), shortcut="B")
    same = rl.models.narrow_resnext(20, cardinality=1, width=8, widths=(8, 16, 32))
    assert rl.count_parameters(same) == rl.count_parameters(resnet)


@pytest.mark.parametrize("channels, reduction", [(64, 16), (256, 16), (8, 4), (8, 16)])
def test_se_parameters_match_torchvision(channels, reduction):
    from torchvision.ops import SqueezeExcitation

    module = SqueezeExcitation(channels, max(1, channels // reduction))
    assert rl.efficiency.se_parameters(channels, reduction) == rl.count_parameters(module)
    weights = sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))
    assert rl.efficiency.se_parameters(channels, reduction, bias=False) == weights


def test_se_overhead_of_the_networks_is_the_closed_form():
    torch.manual_seed(0)
    extra = rl.count_parameters(rl.se_resnet(20, reduction=4)) - rl.count_parameters(
        rl.cifar_resnet(20)
    )
    assert extra == sum(rl.efficiency.se_parameters(c, 4) for c in (16, 32, 64) for _ in range(3))
    with torch.device("meta"):
        extra50 = rl.count_parameters(rl.se_resnet50()) - rl.count_parameters(rl.resnet50())
    stages = ((256, 3), (512, 4), (1024, 6), (2048, 3))
    assert extra50 == sum(n * rl.efficiency.se_parameters(c, 16) for c, n in stages)
    # Hu et al. (2018): about 2.5 million extra weights for SE-ResNet-50 (2/r sum N_s C_s^2)
    weights = sum(n * rl.efficiency.se_parameters(c, 16, bias=False) for c, n in stages)
    assert weights == sum(2 * n * c * c // 16 for c, n in stages)
    assert 2.45e6 < weights < 2.55e6


def test_excitations_are_the_se_modules_channel_weights():
    torch.manual_seed(0)
    model = rl.se_resnet(20, widths=(8, 16, 32), reduction=4, in_channels=1)
    model.train()
    x = torch.randn(5, 1, 8, 8)
    weights = rl.analysis.excitations(model, x)
    names = [n for n, m in model.named_modules() if n.endswith(".se")]
    assert list(weights) == names and len(names) == 9
    assert [w.shape for w in weights.values()] == [(5, c) for c in (8,) * 3 + (16,) * 3 + (32,) * 3]
    assert model.training  # the mode is restored
    # independent: what the module multiplies its input by, computed from its input
    inputs = {}
    se = model.layer3[2].se
    handle = se.register_forward_hook(lambda m, i, o: inputs.update(x=i[0], y=o))
    model.eval()
    with torch.no_grad():
        model(x)
    handle.remove()
    scale = inputs["y"] / inputs["x"]  # y = s * x, s per (image, channel)
    mask = inputs["x"].abs() > 1e-3
    expected = weights["layer3.2.se"][:, :, None, None].expand_as(scale)
    torch.testing.assert_close(scale[mask], expected[mask], rtol=1e-3, atol=1e-4)
    assert all(((w > 0) & (w < 1)).all() for w in weights.values())


def _densenet121_from_our_parts() -> nn.Module:
    """torchvision's densenet121 layout (Huang et al., 2017, Table 1: k = 32, blocks of 6, 12,
    24, 16 bottleneck layers, compression 0.5) built from resnet_lib's DenseBlock and
    Transition."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    channels = 64
    for i, n in enumerate((6, 12, 24, 16)):
        block = rl.DenseBlock(n, channels, 32, bottleneck=True)
        layers.append(block)
        channels = block.out_channels
        if i < 3:
            layers.append(rl.Transition(channels, channels // 2))
            channels //= 2
    layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(channels, 1000))


def test_dense_parts_count_like_torchvision_densenet121():
    models = pytest.importorskip("torchvision.models")
    with torch.device("meta"):
        theirs = models.densenet121(weights=None)
        ours = _densenet121_from_our_parts()
    assert rl.count_parameters(ours) == rl.count_parameters(theirs) == 7_978_856
    # block by block, too
    blocks = [m for m in theirs.features if type(m).__name__ == "_DenseBlock"]
    mine = [m for m in ours if isinstance(m, rl.DenseBlock)]
    assert [rl.count_parameters(m) for m in mine] == [rl.count_parameters(m) for m in blocks]


def test_dense_layer_output_concatenates_its_input():
    torch.manual_seed(0)
    layer = rl.DenseLayer(10, 4).eval()
    x = torch.randn(2, 10, 5, 5)
    with torch.no_grad():
        y = layer(x)
    assert y.shape == (2, 14, 5, 5)
    assert torch.equal(y[:, :10], x)  # concatenation keeps x exactly; addition would not


def test_paths_take_the_blocks_mode():
    block = Bottleneck(16, 4, groups=2, base_width=32).eval()
    assert not any(m.training for m in AggregatedPaths(block).modules())
    assert all(m.training for m in AggregatedPaths(block.train()).modules())


def test_se_resnet50_takes_the_reduction():
    with torch.device("meta"):
        base = rl.count_parameters(rl.resnet50())
        for r in (8, 16):
            stages = ((256, 3), (512, 4), (1024, 6), (2048, 3))
            extra = rl.count_parameters(rl.se_resnet50(reduction=r)) - base
            assert extra == sum(n * rl.efficiency.se_parameters(c, r) for c, n in stages)
