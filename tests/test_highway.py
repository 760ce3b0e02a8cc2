"""Highway layers and networks (Chapter 5): the equation of each kind against a computation by
hand from the layer's own weights, the gate's initial bias, the gate statistics against values
worked out with the sigmoid, and the signal and gradient profile against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnet_lib as rl
from resnet_lib.analysis import GateRow, gate_statistics, highway_profile


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


# ------------------------------------------------------------------------------- the layers


@pytest.mark.parametrize("kind", ["residual", "plain"])
def test_twins_compute_their_equation(kind):
    torch.manual_seed(0)
    layer = rl.HighwayLayer(6, kind=kind)
    assert layer.gate is None
    fc1, fc2 = [m for m in layer.modules() if isinstance(m, nn.Linear)]
    x = torch.randn(5, 6)
    f = F.relu(x @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias  # W_2 ReLU(W_1 x + b_1) + b_2
    expected = F.relu(x + f) if kind == "residual" else F.relu(f)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width", [1, 7, 32])
def test_the_three_kinds_have_the_same_parameters(width):
    per_layer = 2 * (width * width + width)  # H and T, or the two linear layers of F
    for kind in rl.blocks.HIGHWAY_KINDS:
        assert rl.count_parameters(rl.HighwayLayer(width, kind=kind)) == per_layer, kind


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="highway, residual, plain"):
        rl.HighwayLayer(4, kind="gated")


@pytest.mark.parametrize("kind", ["highway", "residual", "plain"])
def test_network_shapes_and_layer_kinds(kind):
    torch.manual_seed(0)
    net = rl.HighwayNetwork(3, in_features=64, width=8, num_classes=4, kind=kind)
    layers = [m for m in net.modules() if isinstance(m, rl.HighwayLayer)]
    assert len(layers) == 3 and {m.kind for m in layers} == {kind}
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 4)


@pytest.mark.parametrize("gate_bias", [0.0, -1.0, -3.0])
def test_gate_bias_at_initialisation(gate_bias):
    torch.manual_seed(0)
    net = rl.HighwayNetwork(4, in_features=16, width=8, gate_bias=gate_bias)
    for layer in net.layers:
        assert torch.all(layer.gate.bias == gate_bias)
        assert not torch.all(layer.transform.bias == gate_bias)  # only the gate's bias is set
    # with the gate's weights scaled down, T(x) is sigmoid(b_T) for every input
    with torch.no_grad():
        for layer in net.layers:
            layer.gate.weight.mul_(1e-6)
    rows = gate_statistics(net, torch.randn(32, 16))
    assert [r.mean for r in rows] == pytest.approx([sigmoid(gate_bias)] * 4, abs=1e-4)


# ------------------------------------------------------------------------ gate statistics


def test_gate_statistics_of_a_gate_set_by_hand():
    layer = rl.HighwayLayer(4)
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.bias.copy_(torch.tensor([-5.0, -1.0, 1.0, 5.0]))
    (row,) = gate_statistics(nn.Sequential(layer), torch.randn(10, 4), tol=0.1)
    values = [sigmoid(b) for b in (-5, -1, 1, 5)]  # 0.0067, 0.27, 0.73, 0.9933
    assert isinstance(row, GateRow) and row.name == "0"
    assert row.mean == pytest.approx(sum(values) / 4, rel=1e-6)
    assert row.near_zero == 0.25 and row.near_one == 0.25
    (row,) = gate_statistics(nn.Sequential(layer), torch.randn(10, 4), tol=0.3)
    assert row.near_zero == 0.5 and row.near_one == 0.5  # 0.27 < 0.3 and 0.73 > 0.7


def test_gate_statistics_follow_the_signal_layer_by_layer():
    torch.manual_seed(1)
    net = rl.HighwayNetwork(3, in_features=20, width=6, gate_bias=-1.0)
    x = torch.randn(50, 20)
    rows = gate_statistics(net, x, tol=0.2)
    assert [r.name for r in rows] == ["layers.0", "layers.1", "layers.2"]
    with torch.no_grad():  # the reference: run the layers by hand and apply each gate
        h = net.embed(x)
        for row, layer in zip(rows, net.layers, strict=True):
            t = torch.sigmoid(h @ layer.gate.weight.T + layer.gate.bias)
            assert row.mean == pytest.approx(t.mean().item(), rel=1e-5)
            assert row.near_zero == pytest.approx((t < 0.2).float().mean().item())
            assert row.near_one == pytest.approx((t > 0.8).float().mean().item())
            h = layer(h)


def test_gate_statistics_leave_the_model_as_it_was():
    net = rl.HighwayNetwork(2, in_features=8, width=4).train()
    gate_statistics(net, torch.randn(3, 8))
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    assert not net.layers[0]._forward_hooks


def test_networks_without_gates_have_no_gate_statistics():
    net = rl.HighwayNetwork(3, in_features=8, width=4, kind="residual")
    assert gate_statistics(net, torch.randn(3, 8)) == []
    with pytest.raises(ValueError, match="tol"):
        gate_statistics(net, torch.randn(3, 8), tol=0.5)


# --------------------------------------------------------------- the profile through depth


@pytest.mark.parametrize("gate_bias", [-3.0, -1.0, 0.0])
def test_profile_of_a_pure_carry_stack_is_a_geometric_series(gate_bias):
    """With H = 0 and a constant gate, every layer is y = (1 - s) x, s = sigmoid(b_T): after l
    layers the signal has moved 1 - (1 - s)^l of its size, and the gradient at x_l is the
    gradient at x_L times (1 - s)^(L - l)."""
    torch.manual_seed(0)
    depth = 6
    net = rl.HighwayNetwork(depth, in_features=12, width=5, gate_bias=gate_bias)
    with torch.no_grad():
        for layer in net.layers:
            layer.transform.weight.zero_()
            layer.transform.bias.zero_()
            layer.gate.weight.zero_()
    x, y = torch.randn(8, 12), torch.randint(0, 10, (8,))
    distance, grads = highway_profile(net, x, y)
    carry = 1 - sigmoid(gate_bias)
    levels = np.arange(1, depth + 1)
    np.testing.assert_allclose(distance, 1 - carry**levels, rtol=1e-5)
    np.testing.assert_allclose(grads / grads[-1], carry ** (depth - levels), rtol=1e-4)
    assert all(p.grad is None for p in net.parameters())


def test_profile_gradients_match_autograd():
    torch.manual_seed(2)
    net = rl.HighwayNetwork(4, in_features=10, width=6, kind="plain")
    x, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    _, grads = highway_profile(net, x, y)
    h = net.embed(x)
    outputs = []
    for layer in net.layers:
        h = layer(h)
        outputs.append(h)
    reference = torch.autograd.grad(F.cross_entropy(net.fc(h), y), outputs)
    expected = [(g.norm(dim=1) * len(x)).mean().item() for g in reference]
    np.testing.assert_allclose(grads, expected, rtol=1e-5)


def test_profile_of_a_zero_residual_stack_is_the_identity():
    """A residual layer whose branch outputs 0 passes its (non-negative) input on unchanged."""
    torch.manual_seed(0)
    net = rl.HighwayNetwork(5, in_features=12, width=5, kind="residual")
    with torch.no_grad():
        for layer in net.layers:
            layer.transform[2].weight.zero_()
            layer.transform[2].bias.zero_()
    distance, grads = highway_profile(net, torch.randn(8, 12), torch.randint(0, 10, (8,)))
    np.testing.assert_allclose(distance, 0, atol=1e-7)
    # the ReLU after each addition passes the gradient only where x > 0 (PyTorch's ReLU has
    # slope 0 at 0): the same units in every layer, so every layer below the last sees the
    # same gradient, and the last one (after which no ReLU follows) a larger one
    np.testing.assert_allclose(grads[:-1], grads[0], rtol=1e-6)
    assert grads[0] < grads[-1]


@pytest.mark.parametrize("kind", ["residual", "plain"])
def test_initialize_handles_the_gateless_twins(kind):
    # rl.initialize sets every highway gate's bias; the twins have no gate and must not break it
    net = rl.models.HighwayNetwork(3, in_features=12, width=8, num_classes=4, kind=kind)
    rl.initialize(net)
    assert all(layer.gate is None for layer in net.modules() if isinstance(layer, rl.HighwayLayer))
