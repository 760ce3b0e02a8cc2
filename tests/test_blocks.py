"""Property tests for resnet_lib.blocks, checked against torchvision's blocks and hand-written
functional references (torch.nn.functional with the block's own weights)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.models.resnet as tvr
from conftest import n_params, randomize_bn
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.ops import SqueezeExcitation

import resnet_lib as rl

HYP = settings(max_examples=25, deadline=None)

widths = st.integers(min_value=1, max_value=16)
strides = st.sampled_from([1, 2])
sizes = st.integers(min_value=1, max_value=17)
batches = st.integers(min_value=1, max_value=3)
seeds = st.integers(min_value=0, max_value=2**16)


def bn_eval(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def conv(x: torch.Tensor, c: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)


def expected_shape(n, planes, expansion, h, w, stride):
    return (n, planes * expansion, math.ceil(h / stride), math.ceil(w / stride))


def shortcut_options(inplanes: int, out_planes: int) -> list[str]:
    # Option A can only pad channels, never drop them.
    return ["A", "B", "C"] if out_planes >= inplanes else ["B", "C"]


# ---------------------------------------------------------------- shortcuts


@given(
    inplanes=widths,
    extra=st.integers(0, 16),
    stride=strides,
    h=sizes,
    w=sizes,
    n=batches,
    seed=seeds,
)
@HYP
def test_shortcut_a_is_subsample_and_zero_pad(inplanes, extra, stride, h, w, n, seed):
    torch.manual_seed(seed)
    out_planes = inplanes + extra
    sc = rl.ShortcutA(inplanes, out_planes, stride)
    assert sum(p.numel() for p in sc.parameters()) == 0
    x = torch.randn(n, inplanes, h, w) + 3.0  # no exact zeros in x
    y = sc(x)
    kept = x[:, :, ::stride, ::stride]
    assert y.shape == (n, out_planes, math.ceil(h / stride), math.ceil(w / stride))
    # the kept channels are one contiguous run (padding may be at the end or on both sides)
    nonzero = [c for c in range(out_planes) if y[:, c].abs().sum() > 0]
    assert len(nonzero) == inplanes
    lo = nonzero[0]
    assert nonzero == list(range(lo, lo + inplanes))
    assert torch.equal(y[:, lo : lo + inplanes], kept)
    assert torch.count_nonzero(y[:, :lo]) == 0 and torch.count_nonzero(y[:, lo + inplanes :]) == 0


@given(inplanes=widths, out_planes=widths, stride=strides)
@HYP
def test_make_shortcut_options(inplanes, out_planes, stride):
    changes = stride != 1 or inplanes != out_planes
    b = rl.make_shortcut("B", inplanes, out_planes, stride)
    c = rl.make_shortcut("C", inplanes, out_planes, stride)
    if changes:
        assert b is not None
    else:
        assert b is None
    for proj in [p for p in (b, c) if p is not None]:
        convs = [m for m in proj.modules() if isinstance(m, nn.Conv2d)]
        bns = [m for m in proj.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(convs) == 1 and len(bns) == 1
        assert convs[0].kernel_size == (1, 1) and convs[0].stride == (stride, stride)
        assert convs[0].in_channels == inplanes and convs[0].out_channels == out_planes
        assert convs[0].bias is None
        assert sum(p.numel() for p in proj.parameters()) == inplanes * out_planes + 2 * out_planes
    assert c is not None
    if out_planes >= inplanes:
        a = rl.make_shortcut("A", inplanes, out_planes, stride)
        if changes:
            assert isinstance(a, rl.ShortcutA)
        else:
            assert a is None


@pytest.mark.parametrize("option", ["D", "a", "", None, "identity"])
def test_make_shortcut_rejects_unknown_option(option):
    with pytest.raises(ValueError):
        rl.make_shortcut(option, 4, 8, 2)


# ---------------------------------------------------------------- basic / bottleneck blocks


@given(
    data=st.data(),
    block_name=st.sampled_from(["BasicBlock", "Bottleneck"]),
    inplanes=widths,
    planes=widths,
    stride=strides,
    h=sizes,
    w=sizes,
    n=batches,
    seed=seeds,
)
@HYP
def test_block_shape_and_matches_torchvision(
    data, block_name, inplanes, planes, stride, h, w, n, seed
):
    """Our block == torchvision's block with the same weights and the same shortcut module."""
    torch.manual_seed(seed)
    ours_cls, tv_cls = getattr(rl, block_name), getattr(tvr, block_name)
    exp = ours_cls.expansion
    assert exp == tv_cls.expansion
    option = data.draw(st.sampled_from(shortcut_options(inplanes, planes * exp)), label="option")
    shortcut = rl.make_shortcut(option, inplanes, planes * exp, stride)
    ours = ours_cls(inplanes, planes, stride, downsample=shortcut)
    randomize_bn(ours, seed)
    ours.eval()
    tv = tv_cls(inplanes, planes, stride, downsample=shortcut).eval()
    tv.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(n, inplanes, h, w)
    with torch.no_grad():
        y = ours(x)
        ref = tv(x)
    assert y.shape == expected_shape(n, planes, exp, h, w, stride)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


@given(
    block_name=st.sampled_from(["BasicBlock", "Bottleneck"]),
    inplanes=widths,
    planes=widths,
    stride=strides,
    h=sizes,
    n=batches,
    seed=seeds,
)
@HYP
def test_plain_block_has_no_addition(block_name, inplanes, planes, stride, h, n, seed):
    """residual=False: same layers, and y = ReLU(F(x)) (functional reference)."""
    torch.manual_seed(seed)
    cls = getattr(rl, block_name)
    plain = cls(inplanes, planes, stride, residual=False)
    randomize_bn(plain, seed)
    plain.eval()
    x = torch.randn(n, inplanes, h, h)
    if block_name == "BasicBlock":
        f = F.relu(bn_eval(conv(x, plain.conv1), plain.bn1))
        f = bn_eval(conv(f, plain.conv2), plain.bn2)
    else:
        f = F.relu(bn_eval(conv(x, plain.conv1), plain.bn1))
        f = F.relu(bn_eval(conv(f, plain.conv2), plain.bn2))
        f = bn_eval(conv(f, plain.conv3), plain.bn3)
    with torch.no_grad():
        y = plain(x)
    torch.testing.assert_close(y, F.relu(f), rtol=1e-5, atol=1e-5)
    assert y.shape == expected_shape(n, planes, cls.expansion, h, h, stride)


def test_plain_block_rejects_a_shortcut():
    # Spec: a plain block has no shortcut at all; silently dropping one would hide a bug.
    with pytest.raises(ValueError):
        rl.BasicBlock(4, 8, 2, downsample=rl.make_shortcut("B", 4, 8, 2), residual=False)


# ---------------------------------------------------------------- pre-activation blocks


def preact_reference(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """He et al. (2016b) Eq. 3 by hand: x + F(BN-ReLU-conv ...); projection on the pre-activation
    (as in the authors' code)."""
    pre = F.relu(bn_eval(x, block.bn1))
    if isinstance(block, rl.PreActBottleneck):
        f = conv(pre, block.conv1)
        f = conv(F.relu(bn_eval(f, block.bn2)), block.conv2)
        f = conv(F.relu(bn_eval(f, block.bn3)), block.conv3)
    else:
        f = conv(pre, block.conv1)
        f = conv(F.relu(bn_eval(f, block.bn2)), block.conv2)
    if block.downsample is None:
        return f + x
    return f + block.downsample(pre)


@given(
    data=st.data(),
    block_name=st.sampled_from(["PreActBasicBlock", "PreActBottleneck"]),
    inplanes=widths,
    planes=widths,
    stride=strides,
    h=sizes,
    w=sizes,
    n=batches,
    seed=seeds,
)
@HYP
def test_preact_block_shape_and_equation(data, block_name, inplanes, planes, stride, h, w, n, seed):
    torch.manual_seed(seed)
    cls = getattr(rl, block_name)
    exp = cls.expansion
    option = data.draw(st.sampled_from(shortcut_options(inplanes, planes * exp)), label="option")
    # He et al. (2016b)'s code: the projection is a bare 1x1 convolution (no BN after it)
    shortcut = rl.make_shortcut(option, inplanes, planes * exp, stride, nn.Identity)
    block = cls(inplanes, planes, stride, downsample=shortcut)
    randomize_bn(block, seed)
    block.eval()
    x = torch.randn(n, inplanes, h, w)
    with torch.no_grad():
        y = block(x)
        ref = preact_reference(block, x)
    assert y.shape == expected_shape(n, planes, exp, h, w, stride)
    # the reference has no ReLU after the addition (He et al. 2016b), so this also checks that
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


PAIRS = [("BasicBlock", "PreActBasicBlock"), ("Bottleneck", "PreActBottleneck")]


@pytest.mark.parametrize("post_name,pre_name", PAIRS)
@pytest.mark.parametrize("option", ["A", "B", "C"])
@pytest.mark.parametrize("inplanes,planes,stride", [(8, 8, 1), (8, 16, 2), (16, 16, 2)])
def test_preact_and_postact_blocks_take_the_same_shortcut(
    post_name, pre_name, option, inplanes, planes, stride
):
    """Both kinds take the module make_shortcut builds, keep it as ``downsample`` and add it;
    they differ in what it is applied to: x after a post-activation block's conv, ReLU(BN(x))
    in a pre-activation block."""
    torch.manual_seed(0)
    post_cls, pre_cls = getattr(rl, post_name), getattr(rl, pre_name)
    out = planes * post_cls.expansion
    if option == "A" and out < inplanes:
        pytest.skip("option A cannot drop channels")
    shortcut = rl.make_shortcut(option, inplanes, out, stride)
    post = post_cls(inplanes, planes, stride, downsample=shortcut)
    pre = pre_cls(inplanes, planes, stride, downsample=shortcut)
    assert post.downsample is shortcut and pre.downsample is shortcut
    # the shortcut's keys are the same in both state_dicts
    assert {k for k in post.state_dict() if k.startswith("downsample.")} == {
        k for k in pre.state_dict() if k.startswith("downsample.")
    }
    randomize_bn(pre, 1)
    pre.eval()
    x = torch.randn(2, inplanes, 8, 8)
    with torch.no_grad():
        pre_act = F.relu(bn_eval(x, pre.bn1))
        expected = x if shortcut is None else shortcut(pre_act)
        torch.testing.assert_close(pre.shortcut(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(pre(x), pre.residual_branch(x) + expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(post.shortcut(x), x if shortcut is None else shortcut(x))


@pytest.mark.parametrize(
    "name",
    [
        "BasicBlock",
        "Bottleneck",
        "PreActBasicBlock",
        "PreActBottleneck",
        "SEBasicBlock",
        "SEBottleneck",
    ],
)
def test_norm_layer_is_used_for_every_norm_of_a_block(name):
    """norm_layer=nn.Identity removes every BatchNorm, in every kind of block (what remains are
    the convolutions and the SE module's biases); any other factory makes each of the norms."""
    cls = getattr(rl, name)
    inplanes = 8 * cls.expansion  # the identity shortcut needs equal widths
    block = cls(inplanes, 8, norm_layer=nn.Identity)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    convs = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    se = [m for m in block.modules() if isinstance(m, SqueezeExcitation)]
    assert n_params(block) == convs + sum(p.numel() for m in se for p in (m.fc1.bias, m.fc2.bias))
    made = []

    def norm(c: int) -> nn.Module:
        made.append(c)
        return nn.GroupNorm(1, c)

    block = cls(inplanes, 8, norm_layer=norm)
    assert len(made) == sum(isinstance(m, nn.GroupNorm) for m in block.modules()) >= 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert block(torch.randn(2, inplanes, 5, 5)).shape == (2, inplanes, 5, 5)


def test_preact_plain_block_rejects_a_shortcut():
    with pytest.raises(ValueError):
        rl.PreActBasicBlock(4, 8, 2, downsample=rl.make_shortcut("B", 4, 8, 2), residual=False)


def test_preact_identity_block_is_x_plus_f():
    """With the last conv zeroed, F(x) = 0 and a pre-activation block is exactly the identity."""
    torch.manual_seed(0)
    for block in (rl.PreActBasicBlock(8, 8), rl.PreActBottleneck(32, 8)):
        last = block.conv3 if isinstance(block, rl.PreActBottleneck) else block.conv2
        nn.init.zeros_(last.weight)
        x = torch.randn(2, block.bn1.num_features, 5, 5)
        torch.testing.assert_close(block.eval()(x), x, rtol=0, atol=0)


# ---------------------------------------------------------------- squeeze-and-excitation


def find_se(block: nn.Module) -> SqueezeExcitation:
    se = [m for m in block.modules() if isinstance(m, SqueezeExcitation)]
    assert len(se) == 1, "spec: the SE module is torchvision.ops.SqueezeExcitation"
    return se[0]


def se_reference(se: SqueezeExcitation, z: torch.Tensor) -> torch.Tensor:
    """Hu et al. (2018) Eq. 2-4: z * sigmoid(W2 ReLU(W1 mean(z)))."""
    s = z.mean(dim=(2, 3), keepdim=True)
    s = torch.sigmoid(conv(F.relu(conv(s, se.fc1)), se.fc2))
    return z * s


@given(
    data=st.data(),
    block_name=st.sampled_from(["SEBasicBlock", "SEBottleneck"]),
    inplanes=widths,
    planes=st.integers(1, 40),
    stride=strides,
    h=sizes,
    n=batches,
    seed=seeds,
)
@HYP
def test_se_block_shape_and_equation(data, block_name, inplanes, planes, stride, h, n, seed):
    torch.manual_seed(seed)
    cls = getattr(rl, block_name)
    exp = cls.expansion
    option = data.draw(st.sampled_from(shortcut_options(inplanes, planes * exp)), label="option")
    shortcut = rl.make_shortcut(option, inplanes, planes * exp, stride)
    block = cls(inplanes, planes, stride, downsample=shortcut)
    randomize_bn(block, seed)
    block.eval()
    se = find_se(block)
    assert se.fc1.in_channels == planes * exp
    # reduction 16 (Hu et al. 2018), at least one squeeze channel
    assert se.fc1.out_channels == max(1, planes * exp // 16)
    x = torch.randn(n, inplanes, h, h)
    scales = []
    handle = se.scale_activation.register_forward_hook(lambda m, i, o: scales.append(o))
    with torch.no_grad():
        y = block(x)
    handle.remove()
    assert y.shape == expected_shape(n, planes, exp, h, h, stride)
    assert len(scales) == 1 and ((scales[0] > 0) & (scales[0] < 1)).all()
    # hand reference: ReLU(SE(F(x)) + shortcut(x)), F from the block's own layers
    f = F.relu(bn_eval(conv(x, block.conv1), block.bn1))
    if block_name == "SEBottleneck":
        f = F.relu(bn_eval(conv(f, block.conv2), block.bn2))
        f = bn_eval(conv(f, block.conv3), block.bn3)
    else:
        f = bn_eval(conv(f, block.conv2), block.bn2)
    sc = x if shortcut is None else shortcut(x)
    with torch.no_grad():
        ref = F.relu(se_reference(se, f) + sc)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "se_name,plain_name", [("SEBasicBlock", "BasicBlock"), ("SEBottleneck", "Bottleneck")]
)
def test_se_block_with_gate_forced_open_equals_plain_block(se_name, plain_name):
    """fc2 weight 0 and bias 100 make the SE scale sigmoid(100) == 1.0 in float32."""
    torch.manual_seed(0)
    se_cls, cls = getattr(rl, se_name), getattr(rl, plain_name)
    exp = cls.expansion
    sc = rl.make_shortcut("B", 16, 32 * exp, 2)
    se_block = se_cls(16, 32, 2, downsample=sc)
    randomize_bn(se_block, 1)
    se = find_se(se_block)
    with torch.no_grad():
        se.fc2.weight.zero_()
        se.fc2.bias.fill_(100.0)
    block = cls(16, 32, 2, downsample=rl.make_shortcut("B", 16, 32 * exp, 2))
    se_prefix = next(name for name, m in se_block.named_modules() if m is se) + "."
    sd = se_block.state_dict()
    # the SE block is the plain block plus the SE module's keys, nothing else
    assert {k for k in sd if not k.startswith(se_prefix)} == set(block.state_dict())
    block.load_state_dict({k: v for k, v in sd.items() if not k.startswith(se_prefix)})
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(se_block.eval()(x), block.eval()(x), rtol=0, atol=0)
        # and with a closed gate the residual branch is silenced: y = ReLU(shortcut(x))
        se.fc2.bias.fill_(-100.0)
        torch.testing.assert_close(se_block(x), F.relu(block.downsample(x)), rtol=0, atol=1e-30)


# ---------------------------------------------------------------- highway and dense


@given(features=st.integers(1, 32), n=batches, gate_bias=st.floats(-4.0, -0.5), seed=seeds)
@HYP
def test_highway_layer_equation(features, n, gate_bias, seed):
    torch.manual_seed(seed)
    layer = rl.HighwayLayer(features, gate_bias=gate_bias)
    linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2
    # the gate is the Linear whose bias starts at gate_bias (< 0: mostly carry at init)
    gates = [m for m in linears if torch.all(m.bias == torch.tensor(gate_bias, dtype=m.bias.dtype))]
    assert len(gates) == 1
    gate = gates[0]
    transform = linears[0] if linears[1] is gate else linears[1]
    x = torch.randn(n, features)
    h = F.relu(x @ transform.weight.T + transform.bias)
    t = torch.sigmoid(x @ gate.weight.T + gate.bias)
    with torch.no_grad():
        y = layer(x)
    assert y.shape == (n, features)
    torch.testing.assert_close(y, h * t + x * (1 - t), rtol=1e-5, atol=1e-6)


def test_highway_gate_starts_mostly_carrying():
    torch.manual_seed(0)
    layer = rl.HighwayLayer(64)  # default gate_bias = -2
    gate = [m for m in layer.modules() if isinstance(m, nn.Linear) and (m.bias < 0).all()]
    assert len(gate) == 1 and torch.all(gate[0].bias == -2.0)
    with torch.no_grad():
        gate[0].weight.mul_(1e-3)  # small weights: T(x) ~ sigmoid(b_T)
        x = torch.randn(16, 64)
        t = torch.sigmoid(gate[0](x))
    torch.testing.assert_close(
        t, torch.full_like(t, torch.sigmoid(torch.tensor(-2.0)).item()), atol=1e-2, rtol=0
    )
    assert t.max() < 0.5  # carry gate 1 - T dominates


@given(
    num_layers=st.integers(1, 5),
    in_channels=st.integers(1, 12),
    growth=st.integers(1, 8),
    bottleneck=st.booleans(),
    h=st.integers(1, 9),
    seed=seeds,
)
@HYP
def test_dense_block_concatenates(num_layers, in_channels, growth, bottleneck, h, seed):
    torch.manual_seed(seed)
    block = rl.DenseBlock(num_layers, in_channels, growth, bottleneck=bottleneck).eval()
    x = torch.randn(2, in_channels, h, h)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, in_channels + num_layers * growth, h, h)
    assert torch.equal(y[:, :in_channels], x)  # x_0 passes through unchanged (concatenation)
    # parameters: BN(c)+conv3x3(c->k) per layer, plus BN(c)+conv1x1(c->4k) with bottleneck
    expected = 0
    for i in range(num_layers):
        c = in_channels + i * growth
        if bottleneck:
            expected += 2 * c + c * 4 * growth + 2 * 4 * growth + 9 * 4 * growth * growth
        else:
            expected += 2 * c + 9 * c * growth
    assert sum(p.numel() for p in block.parameters()) == expected


def test_transition_halves_and_compresses():
    t = rl.Transition(24, 12).eval()
    y = t(torch.randn(2, 24, 8, 8))
    assert y.shape == (2, 12, 4, 4)
