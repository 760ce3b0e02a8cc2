"""resnet_lib.identity (Chapter 2): the plain and residual stacks against hand-written equations
and hand-built identity weights, the closed form of their error at initialisation, the training
loop's determinism, and He et al.'s construction of a deeper network from a shallower one."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_lib.identity import (
    PlainStack,
    ResidualStack,
    deepen,
    fit_identity,
    he_linear,
    identity_inputs,
    identity_mse,
)


def signed(n: int = 64, width: int = 8, seed: int = 0) -> torch.Tensor:
    x = torch.randn(n, width, generator=torch.Generator().manual_seed(seed))
    assert (x < 0).any() and (x > 0).any()
    return x


@settings(max_examples=20, deadline=None)
@given(width=st.integers(1, 12), half_depth=st.integers(1, 6), n=st.integers(1, 5))
def test_shapes(width, half_depth, n):
    x = torch.randn(n, width)
    for model in (
        PlainStack(width, 2 * half_depth - 1),
        PlainStack(width, 2 * half_depth),
        ResidualStack(width, 2 * half_depth),
    ):
        assert model(x).shape == (n, width)
    assert len(PlainStack(width, 2 * half_depth).layers) == 2 * half_depth
    assert len(ResidualStack(width, 2 * half_depth).branches) == half_depth


def test_same_layers_and_parameters():
    """Depth counts weight layers in both stacks, so equal depths mean equal parameters."""
    for depth in (2, 8, 32):
        plain, residual = PlainStack(16, depth), ResidualStack(16, depth)
        count = depth * (16 * 16 + 16)
        assert sum(p.numel() for p in plain.parameters()) == count
        assert sum(p.numel() for p in residual.parameters()) == count


def test_forward_matches_the_equations():
    """Both stacks against their docstring equations, written out with matrix products."""
    torch.manual_seed(0)
    x = signed()
    plain = PlainStack(8, 3)
    h = x
    for i, layer in enumerate(plain.layers):
        h = h @ layer.weight.T + layer.bias
        if i < 2:
            h = h.clamp(min=0)
    torch.testing.assert_close(plain(x), h)

    residual = ResidualStack(8, 6)
    h = x
    for branch in residual.branches:
        first, second = branch[0], branch[2]
        h = h + (h @ first.weight.T + first.bias).clamp(min=0) @ second.weight.T + second.bias
    torch.testing.assert_close(residual(x), h)


def test_zero_branch_is_exactly_the_identity():
    torch.manual_seed(0)
    model = ResidualStack(8, 32, branch_scale=0.0)
    x = signed()
    assert torch.equal(model(x), x)
    assert identity_mse(model) == 0.0


def test_hand_built_plain_identity_on_non_negative_inputs():
    """W = I, b = 0 copies non-negative inputs through every ReLU, but zeroes negative ones."""
    model = PlainStack(8, 5)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.copy_(torch.eye(8))
            layer.bias.zero_()
    x = signed()
    assert torch.equal(model(x.abs()), x.abs())
    assert torch.equal(model(x), x.clamp(min=0))


def test_hand_built_plain_identity_by_shifting_into_the_positive_range():
    """A bias c lifts every input above 0, the last layer takes c off: exact for x > -c."""
    c = 10.0
    model = PlainStack(8, 4)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.copy_(torch.eye(8))
            layer.bias.zero_()
        model.layers[0].bias.fill_(c)
        model.layers[-1].bias.fill_(-c)
    x = signed()
    assert x.min() > -c
    torch.testing.assert_close(model(x), x)
    assert model(torch.full((1, 8), -2 * c)).max() == -c  # below -c the ReLU cuts it off


def test_he_initialisation():
    torch.manual_seed(0)
    layer = he_linear(512)
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.02)
    assert torch.equal(layer.bias, torch.zeros(512))
    torch.manual_seed(0)
    assert torch.equal(he_linear(512, 0.1).weight, 0.1 * layer.weight)


@pytest.mark.parametrize("depth, scale", [(2, 1.0), (4, 1.0), (4, 0.5), (6, 0.1)])
def test_error_at_initialisation_matches_closed_form(depth, scale):
    """E|y - x|^2 = ((1 + 2 s^2)^(depth/2) - 1) |x|^2, averaged over random weights."""
    torch.manual_seed(0)
    x = signed(n=16, width=32)
    draws = 400
    errors = torch.stack(
        [((ResidualStack(32, depth, scale)(x) - x) ** 2).sum(1) for _ in range(draws)]
    )
    expected = ((1 + 2 * scale**2) ** (depth // 2) - 1) * (x**2).sum(1)
    mean = errors.mean(0)
    stderr = errors.std(0) / math.sqrt(draws)
    assert ((mean - expected).abs() < 5 * stderr).all()
    assert ((mean / expected - 1).abs() < 0.15).all()


def test_fit_identity_learns_and_is_reproducible():
    torch.manual_seed(0)
    model = ResidualStack(8, 4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = fit_identity(model, steps=60, batch_size=32, seed=3)
    assert len(first) == 60
    assert sum(first[-10:]) / 10 < 0.2 * first[0]
    after = identity_mse(model, seed=1)
    assert after < 0.2 * first[0]

    model.load_state_dict(state)
    assert fit_identity(model, steps=60, batch_size=32, seed=3) == first
    model.load_state_dict(state)
    assert fit_identity(model, steps=60, batch_size=32, seed=4) != first


def test_fit_records_the_error_before_each_step():
    torch.manual_seed(0)
    model = PlainStack(8, 3)
    x = identity_inputs(32, 8, torch.Generator().manual_seed(5))
    before = torch.nn.functional.mse_loss(model(x), x).item()
    assert fit_identity(model, steps=1, batch_size=32, seed=5)[0] == before


def test_zero_branch_stays_the_identity_under_training():
    """At y = x the loss's gradient is exactly zero, so Adam never moves the weights."""
    torch.manual_seed(0)
    model = ResidualStack(8, 8, branch_scale=0.0)
    assert fit_identity(model, steps=5, batch_size=16) == [0.0] * 5
    x = signed()
    assert torch.equal(model(x), x)


def test_non_negative_inputs():
    x = identity_inputs(100, 4, torch.Generator().manual_seed(0), nonnegative=True)
    assert (x >= 0).all()
    y = identity_inputs(100, 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, y.abs())


@pytest.mark.parametrize("build", [lambda: PlainStack(8, 3), lambda: ResidualStack(8, 4)])
def test_deepen_computes_the_same_function(build):
    torch.manual_seed(0)
    model = build()
    fit_identity(model, steps=5, batch_size=16)  # any weights, not only the initial ones
    deeper = deepen(model, 12)
    assert deeper.depth == 12 and type(deeper) is type(model)
    x = signed() * 3
    assert torch.equal(deeper(x), model(x))


def test_validation_errors():
    with pytest.raises(ValueError, match="width"):
        PlainStack(0, 3)
    with pytest.raises(ValueError, match="depth"):
        PlainStack(8, 0)
    with pytest.raises(ValueError, match="even"):
        ResidualStack(8, 3)
    with pytest.raises(ValueError, match="depth"):
        ResidualStack(8, 0)
    with pytest.raises(ValueError, match="width"):
        ResidualStack(-1, 2)
    with pytest.raises(ValueError, match="steps"):
        fit_identity(PlainStack(4, 2), steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit_identity(PlainStack(4, 2), steps=1, lr=0.0)
    with pytest.raises(ValueError, match="less than"):
        deepen(PlainStack(4, 4), 2)
    with pytest.raises(ValueError, match="1-layer"):
        deepen(PlainStack(4, 1), 3)
