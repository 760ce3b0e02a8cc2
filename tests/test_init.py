"""resnet_lib.initialize against the formulas of He et al. (2015) and Glorot and Bengio (2010),
and against PyTorch's own reset_parameters."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import resnet_lib as rl

# A conv with many weights (64*512*9 = 294,912): the sample std is within ~0.2% of the true one,
# so 2% tolerances are >10 standard errors wide. fan_in (576) != fan_out (4608), so a mix-up of the
# two shows as a 2.8x error.
C_IN, C_OUT, K = 64, 512, 3
FAN_IN, FAN_OUT = C_IN * K * K, C_OUT * K * K


def big_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(C_IN, C_OUT, K, bias=False),
        nn.BatchNorm2d(C_OUT),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(1024, 512),
    )


def perturb(model: nn.Module) -> None:
    """Fill every parameter with junk, so that an initialiser that does nothing is caught."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)


def kurtosis(w: torch.Tensor) -> float:
    z = (w - w.mean()) / w.std()
    return (z**4).mean().item()


def test_kaiming_is_fan_out_normal_like_torchvision():
    torch.manual_seed(0)
    net = big_net()
    perturb(net)
    assert rl.initialize(net, "kaiming") is net
    w = net[0].weight
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(math.sqrt(2 / FAN_OUT), rel=0.02)
    assert abs(kurtosis(w) - 3.0) < 0.1  # normal (3), not uniform (1.8): torchvision's choice
    # BatchNorm: scale 1, shift 0
    assert torch.equal(net[1].weight, torch.ones(C_OUT))
    assert torch.equal(net[1].bias, torch.zeros(C_OUT))


def test_kaiming_matches_torchvision_resnet_convs():
    """Same rule as torchvision's ResNet constructor: kaiming_normal_(fan_out, relu)."""
    torch.manual_seed(0)
    model = rl.initialize(rl.resnet18(), "kaiming")
    conv = model.layer4[0].conv2  # 512x512x3x3
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.02)


def test_xavier_std():
    torch.manual_seed(0)
    net = big_net()
    perturb(net)
    rl.initialize(net, "xavier")
    w = net[0].weight
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(math.sqrt(2 / (FAN_IN + FAN_OUT)), rel=0.02)
    lin = net[4].weight  # 1024 -> 512
    assert lin.std().item() == pytest.approx(math.sqrt(2 / (1024 + 512)), rel=0.02)
    assert torch.equal(net[1].weight, torch.ones(C_OUT))
    assert torch.equal(net[1].bias, torch.zeros(C_OUT))


def test_default_is_pytorchs_uniform_with_a_sixth_of_hes_variance():
    """PyTorch's documented default for Conv2d and Linear: U(-b, b), b = 1/sqrt(fan_in), so the
    variance is 1/(3 fan_in), a sixth of He's 2/fan_in (what the module docstring states)."""
    torch.manual_seed(0)
    net = big_net()
    perturb(net)
    with torch.no_grad():
        net[1].running_mean.fill_(3.0)
    rl.initialize(net, "default")
    w, bound = net[0].weight, 1 / math.sqrt(FAN_IN)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert w.var().item() == pytest.approx(1 / (3 * FAN_IN), rel=0.02)
    assert w.var().item() == pytest.approx((2 / FAN_IN) / 6, rel=0.02)
    assert abs(kurtosis(w) - 1.8) < 0.05  # uniform, not normal
    lin = net[4]
    assert lin.weight.abs().max() <= 1 / math.sqrt(1024)
    assert lin.bias.abs().max() <= 1 / math.sqrt(1024) and lin.bias.abs().max() > 0
    # BatchNorm: scale 1, shift 0 and its running statistics reset
    assert torch.equal(net[1].weight, torch.ones(C_OUT))
    assert torch.equal(net[1].bias, torch.zeros(C_OUT))
    assert torch.equal(net[1].running_mean, torch.zeros(C_OUT))


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "default"])
@pytest.mark.parametrize(
    "factory,last",
    [
        (lambda: rl.cifar_resnet(20), "bn2"),
        (lambda: rl.ResNet(rl.Bottleneck, [1, 1, 1, 1], num_classes=10), "bn3"),
    ],
)
def test_zero_init_residual(scheme, factory, last):
    torch.manual_seed(0)
    model = factory()
    rl.initialize(model, scheme, zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, rl.BasicBlock | rl.Bottleneck)]
    assert blocks
    zeroed = {id(getattr(b, last).weight) for b in blocks}
    for b in blocks:
        assert torch.count_nonzero(getattr(b, last).weight) == 0
    for m in model.modules():  # every other BN keeps a non-zero scale
        if isinstance(m, nn.BatchNorm2d) and id(m.weight) not in zeroed:
            assert torch.count_nonzero(m.weight) == m.num_features
    # and without the flag nothing is zeroed
    rl.initialize(model, scheme)
    assert all(torch.count_nonzero(getattr(b, last).weight) > 0 for b in blocks)


@pytest.mark.parametrize("scheme", ["he", "Kaiming", "", "orthogonal", None])
def test_unknown_scheme_raises(scheme):
    with pytest.raises(ValueError, match="kaiming"):
        rl.initialize(nn.Linear(2, 2), scheme)


def block_inputs_and_outputs(model: nn.Module, x: torch.Tensor):
    """(block, its input, its output) for every residual block of ``model`` on the batch ``x``."""
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
        for m in model.modules()
        if isinstance(m, BLOCKS)
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


BLOCKS = (rl.BasicBlock, rl.Bottleneck, rl.PreActBasicBlock, rl.PreActBottleneck)
NORMS = {"BatchNorm": None, "no norm": nn.Identity}
ZERO_INIT_MODELS = {
    "cifar_resnet(20)": lambda norm: rl.cifar_resnet(20, norm_layer=norm),
    "cifar_resnet(20, B)": lambda norm: rl.cifar_resnet(20, shortcut="B", norm_layer=norm),
    "bottleneck ResNet": lambda norm: rl.ResNet(
        rl.Bottleneck, [1, 1, 1, 1], num_classes=10, norm_layer=norm
    ),
    "se_resnet(8)": lambda norm: rl.se_resnet(8, norm_layer=norm),
    "preact_resnet(20)": lambda norm: rl.preact_resnet(20, norm_layer=norm),
    "preact_resnet(29)": lambda norm: rl.preact_resnet(29, norm_layer=norm),
}


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("name", list(ZERO_INIT_MODELS))
def test_zero_init_makes_every_block_its_shortcut(name, norm):
    """After zero_init_last, F(x) = 0 in every block, with or without normalisation (regression:
    with norm_layer=nn.Identity there is no BN scale, and the last convolution must be zeroed),
    so each block returns its shortcut: y = x + 0 (pre-activation), y = ReLU(shortcut(x))."""
    torch.manual_seed(0)
    model = ZERO_INIT_MODELS[name](NORMS[norm])
    rl.zero_init_last(model)
    x = torch.randn(2, 3, 32, 32)
    seen = block_inputs_and_outputs(model, x)
    assert len(seen) >= 3
    for block, inp, out in seen:
        expected = block.shortcut(inp)
        if not isinstance(block, rl.PreActBasicBlock | rl.PreActBottleneck):
            expected = torch.relu(expected)
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # and the network is not dead: the stem's features still reach the classifier
    assert (model(x)[0] - model(x)[1]).abs().max() > 0


@pytest.mark.parametrize("name", list(ZERO_INIT_MODELS))
def test_zero_init_zeroes_one_layer_per_block(name):
    """Only the end of each branch is zeroed: the last norm's scale where there is one, else the
    last convolution; every other weight keeps its He initialisation."""
    torch.manual_seed(0)
    for norm in NORMS.values():
        model = ZERO_INIT_MODELS[name](norm)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rl.zero_init_last(model)
        zeroed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        blocks = [m for m in model.modules() if isinstance(m, BLOCKS)]
        assert len(zeroed) == len(blocks)
        for k in zeroed:
            assert torch.count_nonzero(model.state_dict()[k]) == 0
            last = k.split(".")[-2]
            kind = "conv" if "preact" in name or norm is nn.Identity else "bn"
            third = "bottleneck" in name or "29" in name  # bottlenecks end in their 3rd layer
            assert last == kind + ("3" if third else "2"), k


def test_zero_init_leaves_plain_blocks_alone():
    """A plain block with a zero branch outputs ReLU(0) = 0, not its input: nothing to zero."""
    torch.manual_seed(0)
    plain = rl.cifar_resnet(20, residual=False)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    rl.zero_init_last(plain)
    assert all(torch.equal(v, before[k]) for k, v in plain.state_dict().items())
