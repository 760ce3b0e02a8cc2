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
    return nn.Sequential(nn.Conv2d(C_IN, C_OUT, K, bias=False), nn.BatchNorm2d(C_OUT), nn.ReLU(),
                         nn.Flatten(), nn.Linear(1024, 512))


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


def test_default_equals_reset_parameters():
    def make():
        torch.manual_seed(123)
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                             rl.BasicBlock(8, 8), nn.Flatten(), nn.Linear(8, 4))

    ours, ref = make(), make()
    perturb(ours)
    perturb(ref)
    torch.manual_seed(7)
    rl.initialize(ours, "default")
    torch.manual_seed(7)
    for m in ref.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # and it did re-initialise: PyTorch's default for conv is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert ours[0].weight.abs().max() <= 1 / math.sqrt(3 * 9)


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "default"])
@pytest.mark.parametrize("factory,last", [
    (lambda: rl.cifar_resnet(20), "bn2"),
    (lambda: rl.ResNet(rl.Bottleneck, [1, 1, 1, 1], num_classes=10), "bn3"),
])
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
