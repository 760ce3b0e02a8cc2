"""ImageNet ResNets against torchvision, the independent reference: parameter counts, state_dict
interface (keys, shapes, strict loading both ways), numerics, plain twins and zero-init."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from conftest import n_params
from torch import nn

import resnet_lib as rl

# Parameter counts of torchvision's models (also in torchvision's documentation tables).
EXPECTED = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "wide_resnet50_2": 68_883_240,
}
ARCHS = list(EXPECTED)
SIZE = 64  # small inputs keep every test fast; 64 -> 2x2 after layer4


def bns(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def calibrate_bn(model: nn.Module, seed: int) -> None:
    """Random BN affine parameters, then running statistics set to the batch statistics of one
    random batch (momentum=None: cumulative average), so eval-mode BN is far from the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in bns(model):
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        model(torch.randn(2, 3, SIZE, SIZE, generator=gen))
    for bn in bns(model):
        bn.momentum = 0.1
    model.eval()


def blocks(model: nn.Module) -> list[nn.Module]:
    return [
        m for name, m in model.named_modules() if name.count(".") == 1 and name.startswith("layer")
    ]


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    """(arch, ours, torchvision's), built once per architecture (tests are grouped by it)."""
    arch = request.param
    torch.manual_seed(0)
    ours = getattr(rl, arch)()
    torch.manual_seed(1)
    theirs = getattr(tvm, arch)()  # random init, never pretrained weights (no network)
    return arch, ours, theirs


def test_parameter_count(pair):
    arch, ours, theirs = pair
    assert n_params(ours) == EXPECTED[arch]
    assert n_params(theirs) == EXPECTED[arch]


def test_state_dict_keys_and_shapes(pair):
    _, ours, theirs = pair
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)  # same names, same order (what checkpoints and readers see)
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert a[k].dtype == b[k].dtype, k


def test_strict_loading_both_ways(pair):
    _, ours, theirs = pair
    ours_copy = getattr(rl, pair[0])()
    theirs_copy = getattr(tvm, pair[0])()
    ours_copy.load_state_dict(theirs.state_dict(), strict=True)
    theirs_copy.load_state_dict(ours.state_dict(), strict=True)
    for k, v in theirs.state_dict().items():
        assert torch.equal(ours_copy.state_dict()[k], v), k


def test_eval_outputs_match_torchvision(pair):
    """Same weights and non-trivial BN statistics -> same logits.

    Tolerance: atol = 1e-5 * max(1, max|reference logit|), i.e. 1e-5 relative to the output scale
    (the two models run the same kernels in the same order, so they usually agree bit for bit)."""
    arch, _, theirs = pair
    calibrate_bn(theirs, seed=2)
    assert any(
        not torch.allclose(bn.running_var, torch.ones_like(bn.running_var)) for bn in bns(theirs)
    )
    ours = getattr(rl, arch)()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = theirs(x)
        out = ours(x)
    assert out.shape == ref.shape == (2, 1000)
    assert ref.std() > 1e-3  # the comparison is not between two constants
    tol = 1e-5 * max(1.0, ref.abs().max().item())
    torch.testing.assert_close(out, ref, rtol=0, atol=tol)


def test_plain_twin(pair):
    arch, ours, _ = pair
    torch.manual_seed(4)
    plain = getattr(rl, arch)(residual=False)
    # no shortcut modules at all
    for name, _ in plain.named_modules():
        assert "downsample" not in name, name
    for b in blocks(plain):
        assert getattr(b, "downsample", None) is None
    # main path identical: keys and shapes = residual model's minus the projections
    res_sd = ours.state_dict()
    main = {k: v for k, v in res_sd.items() if ".downsample." not in k}
    assert len(main) < len(res_sd)  # the residual model did have projections
    plain_sd = plain.state_dict()
    assert list(plain_sd) == list(main)
    for k in main:
        assert plain_sd[k].shape == main[k].shape, k
    projections = sum(p.numel() for k, p in ours.named_parameters() if ".downsample." in k)
    assert n_params(plain) == EXPECTED[arch] - projections
    # same main-path weights, different function: the shortcut really is gone
    residual = getattr(rl, arch)()
    residual.load_state_dict(res_sd)
    calibrate_bn(residual, seed=5)
    plain.load_state_dict(
        {k: v for k, v in residual.state_dict().items() if ".downsample." not in k}, strict=True
    )
    plain.eval()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    # Without its shortcuts the net's activations shrink through 150 layers into subnormal floats,
    # which are ~100x slower on CPU; flushing them to zero keeps this test fast.
    torch.set_flush_denormal(True)
    try:
        with torch.no_grad():
            a, b = residual(x), plain(x)
    finally:
        torch.set_flush_denormal(False)  # PyTorch's default
    assert (a - b).abs().max() > 1e-2 * max(1.0, a.abs().max().item())


@pytest.mark.parametrize(
    "arch,num_classes", [("resnet18", 7), ("resnet50", 3), ("resnext50_32x4d", 1)]
)
def test_num_classes_changes_fc(arch, num_classes):
    torch.manual_seed(0)
    ours = getattr(rl, arch)(num_classes=num_classes)
    theirs = getattr(tvm, arch)(num_classes=num_classes)
    assert ours.fc.out_features == num_classes
    assert n_params(ours) == n_params(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        assert ours.eval()(torch.randn(2, 3, SIZE, SIZE)).shape == (2, num_classes)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_zero_init_residual_like_torchvision(arch):
    torch.manual_seed(0)
    ours = getattr(rl, arch)(zero_init_residual=True)
    theirs = getattr(tvm, arch)(zero_init_residual=True)

    def zero_bn_weights(model):
        return {
            k
            for k, v in model.state_dict().items()
            if k.endswith("weight") and v.ndim == 1 and torch.count_nonzero(v) == 0
        }

    last = "bn2" if arch in ("resnet18", "resnet34") else "bn3"
    expected = {
        f"{name}.{last}.weight"
        for name, _ in ours.named_modules()
        if name.startswith("layer") and name.count(".") == 1
    }
    assert len(expected) == len(blocks(ours)) > 0
    assert zero_bn_weights(ours) == expected == zero_bn_weights(theirs)
    # without the flag nothing is zero
    assert zero_bn_weights(getattr(rl, arch)()) == set()
    # and the zero-initialised weights compute the same function in both libraries
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        ours.eval()
        theirs.load_state_dict(ours.state_dict())
        torch.testing.assert_close(ours(x), theirs.eval()(x), rtol=0, atol=1e-5)


def test_in_channels():
    torch.manual_seed(0)
    m = rl.resnet18(in_channels=1, num_classes=5).eval()
    assert m.conv1.in_channels == 1
    with torch.no_grad():
        assert m(torch.randn(2, 1, SIZE, SIZE)).shape == (2, 5)
