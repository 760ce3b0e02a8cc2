"""Pre-activation, wide, ResNeXt, DenseNet, SE, VGG and highway networks: parameter counts from
our own closed forms, checked against the papers' tables at the precision the papers print."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import n_params
from torch import nn
from torchvision.ops import SqueezeExcitation

import resnet_lib as rl


def agrees_with_paper(count: int, millions: float, decimals: int) -> bool:
    """The paper's figure, in millions with ``decimals`` digits, is our count rounded or truncated
    to that precision (papers do both)."""
    unit = 10 ** (6 - decimals)
    paper = round(millions * 10**decimals)
    return round(count / unit) == paper or count // unit == paper


# ---------------------------------------------------------------- closed forms


def preact_count(
    n: int,
    bottleneck: bool,
    widths=(16, 32, 64),
    stem: int = 16,
    in_channels: int = 3,
    num_classes: int = 10,
) -> int:
    """He et al. (2016b) as in the authors' code: 3x3 stem conv; blocks BN-ReLU-conv (BN before
    every conv); a bare 1x1 projection (no BN) where the shape changes; final BN, fc."""
    exp = 4 if bottleneck else 1
    total, inp = 9 * in_channels * stem, stem
    for s, w in enumerate(widths):
        out = w * exp
        for j in range(n):
            cin = inp if j == 0 else out
            if bottleneck:  # BN(cin) 1x1 BN(w) 3x3 BN(w) 1x1
                total += 2 * cin + cin * w + 2 * w + 9 * w * w + 2 * w + w * out
            else:  # BN(cin) 3x3 BN(w) 3x3
                total += 2 * cin + 9 * cin * w + 2 * w + 9 * w * out
            if cin != out or (s > 0 and j == 0):
                total += cin * out
        inp = out
    return total + 2 * inp + inp * num_classes + num_classes


def wrn_count(depth: int, k: int, num_classes: int = 10) -> int:
    """WRN-d-k (Zagoruyko and Komodakis 2016): pre-activation basic blocks, widths 16k/32k/64k."""
    return preact_count((depth - 4) // 6, False, (16 * k, 32 * k, 64 * k), 16, 3, num_classes)


def resnext_count(depth: int, cardinality: int, width: int, num_classes: int = 10) -> int:
    """Xie et al. (2017), CIFAR: 64-channel 3x3 stem + BN; stage s has 3x3 grouped convs of
    D = cardinality * width * 2^s channels and outputs 256 * 2^s; projection = 1x1 conv + BN."""
    n = (depth - 2) // 9
    total, inp = 9 * 3 * 64 + 2 * 64, 64
    for s in range(3):
        d, out = cardinality * width * 2**s, 256 * 2**s
        for j in range(n):
            cin = inp if j == 0 else out
            total += cin * d + 2 * d + 9 * d * d // cardinality + 2 * d + d * out + 2 * out
            if j == 0:
                total += cin * out + 2 * out
        inp = out
    return total + inp * num_classes + num_classes


def densenet_count(
    depth: int, k: int, bottleneck: bool, compression: float, num_classes: int = 10
) -> int:
    """Huang et al. (2017), CIFAR: stem 3x3 conv to 16 (2k for BC) channels; three dense blocks;
    layer = BN-ReLU-3x3 conv to k (BC: BN-ReLU-1x1 to 4k first); transition BN + 1x1 conv."""
    n = (depth - 4) // (6 if bottleneck else 3)
    c = 2 * k if bottleneck else 16
    total = 9 * 3 * c
    for block in range(3):
        for _ in range(n):
            if bottleneck:
                total += 2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k
            else:
                total += 2 * c + 9 * c * k
            c += k
        if block < 2:
            out = int(c * compression)
            total += 2 * c + c * out
            c = out
    return total + 2 * c + c * num_classes + num_classes


def se_params(channels: int, reduction: int = 16) -> int:
    s = channels // reduction
    return channels * s + s + s * channels + channels  # two 1x1 convs with bias


# ---------------------------------------------------------------- counts vs papers


@pytest.mark.parametrize("depth,bottleneck,blocks", [(110, False, 18), (164, True, 18)])
def test_preact_resnet_counts(depth, bottleneck, blocks):
    # He et al. (2016b), Table 3 (CIFAR-10): ResNet-110 and ResNet-164 (pre-act): 1.7M each.
    torch.manual_seed(0)
    model = rl.preact_resnet(depth)
    count = n_params(model)
    assert agrees_with_paper(count, 1.7, 1)
    assert count == preact_count(blocks, bottleneck)
    kind = rl.PreActBottleneck if bottleneck else rl.PreActBasicBlock
    assert sum(isinstance(m, kind) for m in model.modules()) == 3 * blocks


@pytest.mark.parametrize("depth", [29, 47])
def test_preact_depth_valid_only_as_9n_plus_2_picks_bottlenecks(depth):
    # Spec: bottleneck=None means basic blocks unless the depth is only 9n+2-valid.
    model = rl.preact_resnet(depth)
    assert any(isinstance(m, rl.PreActBottleneck) for m in model.modules())
    assert n_params(model) == preact_count((depth - 2) // 9, True)


@pytest.mark.parametrize("depth,k,paper", [(28, 10, 36.5), (16, 8, 11.0)])
def test_wide_resnet_counts(depth, k, paper):
    # Zagoruyko and Komodakis (2016), CIFAR results tables: WRN-28-10 36.5M, WRN-16-8 11.0M.
    count = n_params(rl.wide_resnet(depth, k))
    assert agrees_with_paper(count, paper, 1)
    assert count == wrn_count(depth, k)


def test_wide_resnet_dropout_sits_in_the_block():
    model = rl.wide_resnet(16, 2, dropout=0.3)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 6 and all(d.p == 0.3 for d in drops)
    assert n_params(model) == wrn_count(16, 2)


@pytest.mark.parametrize("cardinality,paper", [(8, 34.4), (16, 68.1)])
def test_cifar_resnext_counts(cardinality, paper):
    # Xie et al. (2017), Table 7: ResNeXt-29, 8x64d 34.4M and 16x64d 68.1M.
    count = n_params(rl.cifar_resnext(29, cardinality=cardinality, bottleneck_width=64))
    assert agrees_with_paper(count, paper, 1)
    assert count == resnext_count(29, cardinality, 64)


@pytest.mark.parametrize(
    "depth,k,bottleneck,compression,paper", [(40, 12, False, 1.0, 1.0), (100, 12, True, 0.5, 0.8)]
)
def test_cifar_densenet_counts(depth, k, bottleneck, compression, paper):
    # Huang et al. (2017), Table 2: DenseNet (L=40, k=12) 1.0M; DenseNet-BC (L=100, k=12) 0.8M.
    count = n_params(
        rl.cifar_densenet(depth, growth_rate=k, bottleneck=bottleneck, compression=compression)
    )
    assert agrees_with_paper(count, paper, 1)
    assert count == densenet_count(depth, k, bottleneck, compression)


def test_se_resnet50_count_and_modules():
    # Hu et al. (2018), Table 2: SE-ResNet-50 28.09M (ResNet-50: 25.56M).
    torch.manual_seed(0)
    model = rl.se_resnet50()
    count = n_params(model)
    assert agrees_with_paper(count, 28.09, 2)
    outs = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert count == 25_557_032 + sum(se_params(c) for c in outs)
    se = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    assert [m.fc1.in_channels for m in se] == outs
    assert [m.fc1.out_channels for m in se] == [c // 16 for c in outs]


def test_se_module_semantics_match_torchvision():
    """The SE module in our blocks computes torchvision.ops.SqueezeExcitation's function."""
    torch.manual_seed(0)
    model = rl.se_resnet(20).eval()
    se = next(m for m in model.modules() if isinstance(m, SqueezeExcitation))
    ref = SqueezeExcitation(se.fc1.in_channels, se.fc1.out_channels)
    ref.load_state_dict(se.state_dict(), strict=True)
    z = torch.randn(2, se.fc1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(se(z), ref(z), rtol=0, atol=0)
        s = torch.sigmoid(
            F.conv2d(
                F.relu(F.conv2d(z.mean((2, 3), keepdim=True), se.fc1.weight, se.fc1.bias)),
                se.fc2.weight,
                se.fc2.bias,
            )
        )
        torch.testing.assert_close(se(z), z * s, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- every model runs


SMALL_MODELS = {
    "cifar_resnet(20)": lambda k: rl.cifar_resnet(20, num_classes=k),
    "cifar_resnet(20, plain)": lambda k: rl.cifar_resnet(20, num_classes=k, residual=False),
    "preact_resnet(20)": lambda k: rl.preact_resnet(20, num_classes=k),
    "preact_resnet(20, bottleneck)": lambda k: rl.preact_resnet(20, num_classes=k, bottleneck=True),
    "wide_resnet(10, 2)": lambda k: rl.wide_resnet(10, 2, num_classes=k, dropout=0.1),
    "cifar_resnext(11, 2x4d)": lambda k: rl.cifar_resnext(
        11, cardinality=2, bottleneck_width=4, num_classes=k
    ),
    "se_resnet(20)": lambda k: rl.se_resnet(20, num_classes=k),
    "cifar_densenet(10, k=4)": lambda k: rl.cifar_densenet(10, growth_rate=4, num_classes=k),
    "cifar_densenet(16, k=4, BC)": lambda k: rl.cifar_densenet(
        16, growth_rate=4, bottleneck=True, compression=0.5, num_classes=k
    ),
    "VGG(11, x0.25)": lambda k: rl.VGG(11, num_classes=k, width_scale=0.25),
    "VGG(16)": lambda k: rl.VGG(16, num_classes=k),
    "VGG(16, no BN)": lambda k: rl.VGG(16, num_classes=k, batch_norm=False),
    "highway": lambda k: rl.HighwayNetwork(4, in_features=3 * 32 * 32, width=32, num_classes=k),
    "resnet18": lambda k: rl.resnet18(num_classes=k),
    "se_resnet50": lambda k: rl.se_resnet50(num_classes=k),
}


@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_forward_and_backward(name):
    torch.manual_seed(0)
    model = SMALL_MODELS[name](7)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 6])
    out = model(x)
    assert out.shape == (2, 7)
    F.cross_entropy(out, y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 7)


def test_vgg16_layers_and_shape():
    torch.manual_seed(0)
    model = rl.VGG(16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # 13 conv layers with 64, 128, 256, 512, 512 filters (Simonyan and Zisserman, config D)
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert len(linears) >= 1 and linears[-1].out_features == 10
    assert not any(isinstance(m, rl.BasicBlock | rl.Bottleneck) for m in model.modules())
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        m1 = rl.VGG(16, in_channels=1).eval()
        assert m1(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_highway_network_starts_near_carry():
    torch.manual_seed(0)
    net = rl.HighwayNetwork(10, in_features=64, width=16, num_classes=5, gate_bias=-3.0)
    layers = [m for m in net.modules() if isinstance(m, rl.HighwayLayer)]
    assert len(layers) == 10 and all(torch.all(m.gate.bias == -3.0) for m in layers)
    # 64 -> 16, ten highway layers of two 16x16 linear maps, 16 -> 5
    assert n_params(net) == (64 * 16 + 16) + 10 * 2 * (16 * 16 + 16) + (16 * 5 + 5)
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 5)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: rl.preact_resnet(21),
        lambda: rl.wide_resnet(27, 10),
        lambda: rl.cifar_resnext(30),
        lambda: rl.VGG(17),
        lambda: rl.cifar_densenet(41),
    ],
)
def test_invalid_depths_raise(factory):
    with pytest.raises(ValueError):
        factory()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: rl.cifar_resnet(20, 10),
        lambda: rl.preact_resnet(20, 10),
        lambda: rl.cifar_resnext(29, 8),
        lambda: rl.cifar_densenet(40, 12),
        lambda: rl.VGG(16, 10),
        lambda: rl.ResNet(rl.BasicBlock, [1, 1, 1, 1], 10),
        lambda: rl.CifarResNet(rl.BasicBlock, 3, 10),
        lambda: rl.wide_resnet(16, 2, 10),
    ],
)
def test_options_are_keyword_only(factory):
    """An option passed by position (here num_classes or cardinality) is refused: a reader sees
    every option's name at the call site."""
    with pytest.raises(TypeError, match="positional"):
        factory()


@pytest.mark.parametrize("option", ["A", "B", "C"])
def test_preact_resnet_shortcut_options(option):
    """Options A/B/C as in the post-activation CIFAR ResNet (make_shortcut), except that a
    projection is a bare 1x1 convolution (He et al. 2016b's code): so the parameter difference
    between two options is the projections' convolutions alone."""
    torch.manual_seed(0)
    pre = rl.preact_resnet(20, shortcut=option)
    post = rl.cifar_resnet(20, shortcut=option)
    kinds = [type(b.downsample) for b in (*pre.layer1, *pre.layer2, *pre.layer3)]
    assert kinds == [type(b.downsample) for b in (*post.layer1, *post.layer2, *post.layer3)]
    projections = [m for m in pre.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert not any(
        isinstance(m, nn.BatchNorm2d)
        for b in (*pre.layer2, *pre.layer3)
        if b.downsample is not None
        for m in b.downsample.modules()
    )
    assert n_params(pre) - n_params(rl.preact_resnet(20, shortcut="A")) == sum(
        m.weight.numel() for m in projections
    )
    assert len(projections) == {"A": 0, "B": 2, "C": 9}[option]


def test_preact_resnet_without_norm():
    model = rl.preact_resnet(20, norm_layer=nn.Identity)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    assert n_params(model) == convs + 64 * 10 + 10
