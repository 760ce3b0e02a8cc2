"""CIFAR ResNets (He et al. 2016a, Sec. 4.2) against closed forms and the paper's Table 6,
shortcut options A/B/C, plain twins, and gradients checked by torch.autograd.gradcheck."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from conftest import n_params, randomize_bn
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import resnet_lib as rl

# He et al. (2016a), Table 6 gives 0.27M/0.46M/0.66M/0.85M/1.7M/19.4M; the exact option-A counts
# are those of akamaster's reference implementation.
PAPER_COUNTS = {
    20: 269_722,
    32: 464_154,
    44: 658_586,
    56: 853_018,
    110: 1_727_962,
    1202: 19_421_274,
}


def closed_form(
    n: int, widths=(16, 32, 64), in_channels: int = 3, num_classes: int = 10, option: str = "A"
) -> int:
    """Parameters of a 6n+2 CIFAR ResNet, stage by stage (w_0 := w_1, the stem's width).

    stem: 9 c w_1 + 2 w_1; stage s: first block 9 w_{s-1} w_s + 9 w_s^2 + 4 w_s, each of the other
    n-1 blocks 18 w_s^2 + 4 w_s; fc: w_3 k + k. Projections (1x1 conv + BN, a w_in w_out + 2 w_out):
    option B where the shape changes, option C in every block; option A adds none.
    """
    w = [widths[0], *widths]
    total = 9 * in_channels * w[0] + 2 * w[0] + w[-1] * num_classes + num_classes
    for s in range(1, len(w)):
        first = 9 * w[s - 1] * w[s] + 9 * w[s] ** 2 + 4 * w[s]
        total += first + (n - 1) * (18 * w[s] ** 2 + 4 * w[s])
    return total + projection_params(n, widths, option)


def projection_params(n: int, widths=(16, 32, 64), option: str = "A") -> int:
    w = [widths[0], *widths]
    extra = 0
    for s in range(1, len(w)):
        first_changes = s > 1 or w[s - 1] != w[s]  # stages 2, 3 halve the size
        if option == "C" or (option == "B" and first_changes):
            extra += w[s - 1] * w[s] + 2 * w[s]
        if option == "C":
            extra += (n - 1) * (w[s] ** 2 + 2 * w[s])
    return extra


def all_blocks(model: nn.Module) -> list[nn.Module]:
    return [b for stage in (model.layer1, model.layer2, model.layer3) for b in stage]


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
def test_option_a_counts_match_paper(depth):
    # 1202 has 600 blocks and 19.4M parameters: it builds in well under a second here.
    torch.manual_seed(0)
    model = rl.cifar_resnet(depth)
    n = (depth - 2) // 6
    assert n_params(model) == PAPER_COUNTS[depth] == closed_form(n)
    assert len(all_blocks(model)) == 3 * n


@given(
    n=st.integers(1, 6),
    widths=st.tuples(*[st.integers(1, 12)] * 3),
    in_channels=st.integers(1, 3),
    num_classes=st.integers(1, 12),
    option=st.sampled_from(["A", "B", "C"]),
)
@settings(max_examples=30, deadline=None)
def test_counts_match_closed_form_for_any_n(n, widths, in_channels, num_classes, option):
    if option == "A" and not widths[0] <= widths[1] <= widths[2]:
        option = "B"  # option A can only add channels
    model = rl.cifar_resnet(
        6 * n + 2, num_classes=num_classes, shortcut=option, widths=widths, in_channels=in_channels
    )
    assert n_params(model) == closed_form(n, widths, in_channels, num_classes, option)


@pytest.mark.parametrize("depth", [21, 0, -4, 2, 8.0, 33, 100, "20"])
def test_invalid_depth_raises_helpful_error(depth):
    with pytest.raises(ValueError) as err:
        rl.cifar_resnet(depth)
    msg = str(err.value)
    assert re.search(r"6\s*\*?\s*n\s*\+\s*2", msg), msg  # says what a valid depth looks like
    assert repr(depth) in msg or str(depth) in msg, msg  # and which value was wrong


# ---------------------------------------------------------------- shapes and layout


def test_module_names_and_stage_shapes():
    torch.manual_seed(0)
    model = rl.cifar_resnet(20).eval()
    names = [name for name, _ in model.named_children()]
    for expected in ("conv1", "bn1", "layer1", "layer2", "layer3", "fc"):
        assert expected in names
    shapes = {}
    for name in ("layer1", "layer2", "layer3"):
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))
        )
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # feature maps 32, 16, 8 with 16, 32, 64 filters (He et al. 2016a, Sec. 4.2)
    assert shapes == {"layer1": (2, 16, 32, 32), "layer2": (2, 32, 16, 16), "layer3": (2, 64, 8, 8)}


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_quick_profile_shapes(residual, shortcut):
    torch.manual_seed(0)
    model = rl.cifar_resnet(
        20, num_classes=10, shortcut=shortcut, residual=residual, widths=(8, 16, 32), in_channels=1
    )
    assert model.conv1.in_channels == 1
    out = model(torch.randn(3, 1, 16, 16))
    assert out.shape == (3, 10)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 16, 16)).shape == (1, 10)


# ---------------------------------------------------------------- shortcut options


def test_option_a_is_parameter_free_subsample_and_pad():
    torch.manual_seed(0)
    model = rl.cifar_resnet(20, shortcut="A")
    shortcuts = [b.downsample for b in all_blocks(model) if b.downsample is not None]
    assert len(shortcuts) == 2 and all(isinstance(s, rl.ShortcutA) for s in shortcuts)
    assert all(n_params(s) == 0 for s in shortcuts)
    x = torch.rand(2, 16, 32, 32) + 1.0
    y = shortcuts[0](x)
    assert y.shape == (2, 32, 16, 16)
    kept = x[:, :, ::2, ::2]
    nonzero = [c for c in range(32) if torch.count_nonzero(y[:, c]) > 0]
    lo = nonzero[0]
    assert nonzero == list(range(lo, lo + 16))
    assert torch.equal(y[:, lo : lo + 16], kept)
    assert torch.count_nonzero(y) == kept.numel()  # every extra channel is exactly zero


def test_option_b_projects_only_at_the_two_transitions():
    torch.manual_seed(0)
    model = rl.cifar_resnet(32, shortcut="B")
    with_proj = [b for b in all_blocks(model) if b.downsample is not None]
    assert with_proj == [model.layer2[0], model.layer3[0]]
    for b in with_proj:
        convs = [m for m in b.downsample.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 1 and convs[0].kernel_size == (1, 1) and convs[0].stride == (2, 2)
    diff = n_params(model) - n_params(rl.cifar_resnet(32, shortcut="A"))
    assert diff == projection_params(5, option="B") == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


@pytest.mark.parametrize("depth", [20, 56])
def test_option_c_projects_in_every_block(depth):
    torch.manual_seed(0)
    n = (depth - 2) // 6
    model = rl.cifar_resnet(depth, shortcut="C")
    projections = [
        b.downsample
        for b in all_blocks(model)
        if b.downsample is not None and n_params(b.downsample) > 0
    ]
    assert len(projections) == 3 * n
    diff = n_params(model) - n_params(rl.cifar_resnet(depth, shortcut="A"))
    assert diff == projection_params(n, option="C")
    # 1x1 convs w_in*w_out + BN 2*w_out, in every one of the 3n blocks
    assert diff == sum(
        a * b + 2 * b
        for a, b in [(16, 16)] * n
        + [(16, 32)]
        + [(32, 32)] * (n - 1)
        + [(32, 64)]
        + [(64, 64)] * (n - 1)
    )


# ---------------------------------------------------------------- plain twins


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_twin_same_layers(depth):
    torch.manual_seed(0)
    res, plain = rl.cifar_resnet(depth), rl.cifar_resnet(depth, residual=False)
    assert n_params(plain) == n_params(res) == PAPER_COUNTS[depth]
    assert list(plain.state_dict()) == list(res.state_dict())
    for k, v in res.state_dict().items():
        assert plain.state_dict()[k].shape == v.shape
    assert all(b.downsample is None for b in all_blocks(plain))
    assert not any(isinstance(m, rl.ShortcutA) for m in plain.modules())


def silence_residual_branches(model: nn.Module) -> None:
    """Last BN of every block to weight 0, bias 0: F(x) = 0 exactly."""
    with torch.no_grad():
        for b in all_blocks(model):
            b.bn2.weight.zero_()
            b.bn2.bias.zero_()


@pytest.mark.parametrize("inplanes,planes,stride", [(16, 16, 1), (16, 32, 2)])
def test_block_with_silenced_branch(inplanes, planes, stride):
    """F(x) = 0: the residual block returns ReLU(shortcut(x)), the plain block ReLU(0) = 0."""
    torch.manual_seed(0)
    shortcut = rl.make_shortcut("A", inplanes, planes, stride)
    res = rl.BasicBlock(inplanes, planes, stride, downsample=shortcut)
    plain = rl.BasicBlock(inplanes, planes, stride, residual=False)
    plain.load_state_dict(res.state_dict())
    for block in (res, plain):
        with torch.no_grad():
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
    x = torch.randn(4, inplanes, 8, 8)
    expected = F.relu(x if shortcut is None else shortcut(x))
    assert torch.count_nonzero(expected) > 0
    torch.testing.assert_close(res(x), expected, rtol=0, atol=0)
    assert torch.count_nonzero(plain(x)) == 0


def test_model_with_silenced_branches():
    """At model level: the plain twin's features become exactly 0 (its logits = fc.bias, whatever
    the input), while the residual net still carries the stem's features to the classifier."""
    torch.manual_seed(0)
    res, plain = rl.cifar_resnet(20), rl.cifar_resnet(20, residual=False)
    plain.load_state_dict(res.state_dict())
    silence_residual_branches(res)
    silence_residual_branches(plain)
    res.eval()
    plain.eval()
    x1, x2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        p1, p2 = plain(x1), plain(x2)
        r1, r2 = res(x1), res(x2)
        torch.testing.assert_close(p1, plain.fc.bias.expand(2, -1), rtol=0, atol=0)
        torch.testing.assert_close(p2, p1, rtol=0, atol=0)
        assert (r1 - r2).abs().max() > 1e-3
        # residual: every block is the identity (inputs are >= 0 after the stem's ReLU) or,
        # at a transition, option A; so layer3's output is two option-A shortcuts of the stem's
        stem = F.relu(res.bn1(res.conv1(x1)))
        expected = rl.ShortcutA(32, 64, 2)(rl.ShortcutA(16, 32, 2)(stem))
        torch.testing.assert_close(
            res.layer3(res.layer2(res.layer1(stem))), expected, rtol=0, atol=0
        )
        torch.testing.assert_close(r1, res.fc(expected.mean(dim=(2, 3))), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- gradients


GRADCHECK_CASES = {
    "basic-identity": lambda: rl.BasicBlock(3, 3),
    "basic-B": lambda: rl.BasicBlock(3, 4, 2, downsample=rl.make_shortcut("B", 3, 4, 2)),
    "basic-A": lambda: rl.BasicBlock(3, 5, 2, downsample=rl.make_shortcut("A", 3, 5, 2)),
    "bottleneck-B": lambda: rl.Bottleneck(4, 2, 2, downsample=rl.make_shortcut("B", 4, 8, 2)),
    "preact-basic": lambda: rl.PreActBasicBlock(
        3, 4, 2, downsample=rl.make_shortcut("B", 3, 4, 2, nn.Identity)
    ),
    "preact-bottleneck": lambda: rl.PreActBottleneck(
        4, 2, 1, downsample=rl.make_shortcut("B", 4, 8, 1, nn.Identity)
    ),
    "shortcut-A": lambda: rl.ShortcutA(3, 6, 2),
}


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_gradcheck(case, train):
    """Autograd's analytic gradient (input and every parameter) vs finite differences, float64.
    Train mode uses batch statistics (a differentiable function of the whole batch)."""
    torch.manual_seed(0)
    block = GRADCHECK_CASES[case]().double()
    randomize_bn(block, 1)
    block.train(train)
    x = torch.randn(3, block_in_channels(block), 4, 4, dtype=torch.float64, requires_grad=True)
    params = [p for p in block.parameters()]
    names = [k for k, _ in block.named_parameters()]

    def fn(x, *ps):
        return torch.func.functional_call(block, dict(zip(names, ps, strict=True)), (x,))

    # fast_mode compares random directional derivatives (see gradcheck docs): far cheaper
    assert torch.autograd.gradcheck(
        fn, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True
    )


def block_in_channels(block: nn.Module) -> int:
    if isinstance(block, rl.ShortcutA):
        return block.in_planes
    first = block.bn1 if isinstance(block, rl.PreActBasicBlock | rl.PreActBottleneck) else None
    return first.num_features if first is not None else block.conv1.in_channels


@pytest.mark.parametrize("residual", [True, False])
def test_every_parameter_gets_a_finite_gradient(residual):
    torch.manual_seed(0)
    model = rl.cifar_resnet(20, residual=residual)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    F.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_norm_layer_identity_removes_every_batchnorm():
    model = rl.cifar_resnet(20, norm_layer=nn.Identity)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # 19 convolutions + fc remain; option A adds nothing
    convs = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    assert rl.count_parameters(model) == convs + 64 * 10 + 10
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
