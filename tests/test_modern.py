"""Chapter 12's library code: MBConv and EfficientNet against torchvision, compound scaling, the
tiny ViT's residual formula, and the random-search sampler."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torchvision
from torch import nn

import resnet_lib as rl
from resnet_lib import modern
from resnet_lib.blocks import MBConv
from resnet_lib.models import EFFICIENTNET_COEFFICIENTS, efficientnet, scale_width


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "residual", "shortcut"),
    [
        (16, 16, 1, True, True),
        (16, 16, 1, False, False),
        (16, 24, 1, True, False),  # width changes: no shortcut
        (16, 16, 2, True, False),  # resolution changes: no shortcut
    ],
)
def test_mbconv_shapes_and_shortcut(c_in, c_out, stride, residual, shortcut):
    block = MBConv(c_in, c_out, expand_ratio=6, kernel_size=5, stride=stride, residual=residual)
    block.eval()
    x = torch.randn(2, c_in, 8, 8)
    with torch.no_grad():
        y, branch = block(x), block.block(x)
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    assert block.use_res_connect is shortcut
    expected = x + branch if shortcut else branch
    torch.testing.assert_close(y, expected)
    if shortcut:
        assert not torch.allclose(y, branch)


def test_mbconv_matches_torchvision_block():
    from torchvision.models.efficientnet import MBConv as TorchvisionMBConv
    from torchvision.models.efficientnet import MBConvConfig

    cnf = MBConvConfig(6, 5, 1, 40, 40, 1, 1.0, 1.0)
    theirs = TorchvisionMBConv(cnf, 0.0, nn.BatchNorm2d).eval()
    ours = MBConv(40, 40, expand_ratio=6, kernel_size=5).eval()
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    x = torch.randn(2, 40, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_mbconv_stochastic_depth_drops_whole_branches_in_training():
    block = MBConv(8, 8, expand_ratio=2, stochastic_depth_prob=0.999999).train()
    x = torch.randn(4, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)  # every sample's branch dropped: identity


@pytest.mark.parametrize("name", ["b0", "b1", "b2", "b3"])
def test_efficientnet_counts_equal_torchvision(name):
    width, depth, resolution, dropout = EFFICIENTNET_COEFFICIENTS[name]
    shape = (1, 3, resolution, resolution)
    ours = rl.efficiency.cost_on_meta(
        functools.partial(efficientnet, width, depth, resolution, dropout=dropout), shape
    )
    theirs = rl.efficiency.cost_on_meta(getattr(torchvision.models, f"efficientnet_{name}"), shape)
    assert ours == theirs
    meta = torchvision.models.get_model_weights(f"efficientnet_{name}").IMAGENET1K_V1.meta
    assert ours[0] == meta["num_params"]


def test_efficientnet_b0_loads_torchvision_weights_and_computes_the_same():
    torch.manual_seed(0)
    theirs = torchvision.models.efficientnet_b0().eval()
    ours = efficientnet().eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_efficientnet_residual_false_removes_every_shortcut():
    blocks = [m for m in efficientnet(residual=False).modules() if isinstance(m, MBConv)]
    assert len(blocks) == 16 and not any(b.use_res_connect for b in blocks)
    with_shortcuts = [m for m in efficientnet().modules() if isinstance(m, MBConv)]
    assert sum(b.use_res_connect for b in with_shortcuts) == 16 - 7


def test_scale_width_rounds_like_torchvision():
    from torchvision.models._utils import _make_divisible

    for channels in (16, 24, 32, 40, 80, 112, 192, 320, 1280):
        for mult in (0.5, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0):
            assert scale_width(channels, mult) == _make_divisible(channels * mult, 8)


@pytest.mark.parametrize("phi", [0, 1, 2.5, 7])
def test_compound_scaling_arithmetic(phi):
    s = modern.compound_scaling(phi)
    assert s.depth == pytest.approx(1.2**phi)
    assert s.width == pytest.approx(1.1**phi)
    assert s.resolution == round(224 * 1.15**phi)
    flops = s.depth * s.width**2 * (s.resolution / 224) ** 2
    assert flops == pytest.approx((1.2 * 1.1**2 * 1.15**2) ** phi, rel=0.01)
    assert 1.9 < 1.2 * 1.1**2 * 1.15**2 < 2.0  # the paper's "approximately 2"


def test_compound_scaling_phi_one_is_b2s_layers():
    s = modern.compound_scaling(1)
    built = rl.count_parameters(efficientnet(s.width, s.depth, s.resolution))
    b2 = rl.count_parameters(torchvision.models.efficientnet_b2())
    assert built == b2 and s.resolution == 258


def _reference_vit_block(block, x, residual):
    """ViT's Eq. 2-3 written out with the block's own layers."""
    ln1, ln2 = block.ln1, block.ln2
    attn = block.attn(ln1(x), ln1(x), ln1(x), need_weights=False)[0]
    z = x + attn if residual else attn
    mlp = block.mlp(ln2(z))
    return z + mlp if residual else mlp


@pytest.mark.parametrize("residual", [True, False])
def test_tiny_vit_blocks_follow_the_vit_formula(residual):
    torch.manual_seed(0)
    vit = modern.TinyViT(8, 2, dim=16, depth=2, heads=2, in_channels=1, residual=residual).eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        tokens = vit.patch_embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([vit.cls_token.expand(3, -1, -1), tokens], 1) + vit.pos_embed
        assert z.shape == (3, 17, 16)  # a 4x4 grid of patches and the class token
        for block in vit.blocks:
            z = _reference_vit_block(block, z, residual)
        torch.testing.assert_close(vit(x), vit.head(vit.norm(z[:, 0])))


def test_tiny_vit_residual_changes_the_output_and_patch_must_divide():
    torch.manual_seed(0)
    a = modern.TinyViT(8, 4, dim=16, depth=2, heads=2, in_channels=1)
    b = modern.TinyViT(8, 4, dim=16, depth=2, heads=2, in_channels=1, residual=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 8, 8)
    assert a(x).shape == (2, 10)
    assert not torch.allclose(a(x), b(x))
    with pytest.raises(ValueError, match="must divide"):
        modern.TinyViT(8, 3)
    with pytest.raises(ValueError, match=r"takes \(batch, 1, 8, 8\) images"):
        a(torch.randn(2, 1, 16, 16))  # images of another size: a clear error, not a broadcast


def test_sampler_is_reproducible_distinct_and_valid():
    first = modern.sample_architectures(12, seed=0)
    assert first == modern.sample_architectures(12, seed=0)
    assert first != modern.sample_architectures(12, seed=1)
    assert len(set(first)) == 12
    whole = modern.sample_architectures(36, seed=3)
    assert len(set(whole)) == math.prod(len(v) for v in modern.SEARCH_SPACE.values())
    for arch in first:
        assert arch.skip in modern.SEARCH_SPACE["skip"]
        assert arch.width in modern.SEARCH_SPACE["width"]
        assert (arch.depth - 2) % 6 == 0
    with pytest.raises(ValueError):
        modern.sample_architectures(37, seed=0)


@pytest.mark.parametrize("skip", ["none", "identity", "projection"])
def test_build_candidate_has_the_chosen_skip(skip):
    arch = modern.Architecture(skip, 4, 8)
    model = modern.build_candidate(arch, num_classes=10, in_channels=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    blocks = [b for stage in model.stages() for b in stage]
    assert len(blocks) == 3 and [stage[0].conv1.out_channels for stage in model.stages()] == [
        4,
        8,
        16,
    ]
    projections = [b.downsample for b in blocks if isinstance(b.downsample, nn.Sequential)]
    if skip == "none":
        assert all(not b.residual for b in blocks)
    elif skip == "identity":
        assert all(b.residual for b in blocks) and not projections
    else:
        assert len(projections) == 3  # option C: a projection on every block


def test_efficientnet_cost_counts_the_real_network():
    params, macs = modern.efficientnet_cost(1.0, 1.0, 64)
    real = torchvision.models.efficientnet_b0()
    assert params == rl.count_parameters(real)
    assert macs == rl.efficiency.multiply_adds(real, (1, 3, 64, 64))


def test_efficientnet_refuses_non_positive_coefficients():
    with pytest.raises(ValueError, match="must be positive"):
        rl.models.efficientnet(0.0, 1.0, 224)
