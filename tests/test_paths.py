"""resnet_lib.paths against brute-force enumeration of the 2^L paths and against autograd."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import resnet_lib as rl
from resnet_lib.analysis import blocks_of, per_example_norm
from resnet_lib.paths import (
    block_output_rms,
    gradient_by_path_length,
    path_gradient,
    path_length_counts,
    path_length_distribution,
    path_sums,
)


def enumerate_paths(num_blocks: int) -> list[tuple[int, ...]]:
    """Every path as the tuple of blocks whose residual branch it enters (0 = skip, 1 = enter)."""
    return list(itertools.product((0, 1), repeat=num_blocks))


@pytest.mark.parametrize("num_blocks", range(11))
def test_path_lengths_match_enumeration(num_blocks):
    paths = enumerate_paths(num_blocks)
    assert len(paths) == 2**num_blocks
    by_length = [sum(1 for p in paths if sum(p) == k) for k in range(num_blocks + 1)]
    assert path_length_counts(num_blocks) == by_length
    assert np.allclose(
        path_length_distribution(num_blocks), np.array(by_length) / len(paths), rtol=1e-15, atol=0
    )


@given(st.integers(min_value=0, max_value=2000))
def test_distribution_is_binomial_half(num_blocks):
    probs = path_length_distribution(num_blocks)  # no overflow even where 2^L > 1e308
    k = np.arange(num_blocks + 1)
    assert probs.sum() == pytest.approx(1.0, rel=1e-12)
    assert (probs * k).sum() == pytest.approx(num_blocks / 2, rel=1e-9, abs=1e-12)  # mean L/2
    variance = (probs * (k - num_blocks / 2) ** 2).sum()
    assert variance == pytest.approx(num_blocks / 4, rel=1e-9, abs=1e-12)  # variance L/4
    assert np.array_equal(probs, probs[::-1])  # C(L, k) = C(L, L - k)


def test_resnet110_has_54_blocks_and_2_to_the_54_paths():
    model = rl.cifar_resnet(110)
    num_blocks = len(blocks_of(model))
    assert num_blocks == 54
    assert sum(path_length_counts(num_blocks)) == 2**54
    assert int(np.argmax(path_length_distribution(num_blocks))) == 27


def random_jacobians(num_blocks, size=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(size, size, generator=g, dtype=torch.float64) / size**0.5
        for _ in range(num_blocks)
    ]


@pytest.mark.parametrize("num_blocks", [1, 2, 3, 6, 8])
def test_path_sums_match_enumerated_paths_and_the_product(num_blocks):
    jacs = random_jacobians(num_blocks, seed=num_blocks)
    eye = torch.eye(5, dtype=torch.float64)
    expected = [torch.zeros(5, 5, dtype=torch.float64) for _ in range(num_blocks + 1)]
    for path in enumerate_paths(num_blocks):
        term = eye
        for jac, enters in zip(jacs, path, strict=True):  # forward order: J_1 acts first
            if enters:
                term = jac @ term
        expected[sum(path)] += term
    sums = path_sums(jacs)
    assert len(sums) == num_blocks + 1
    for got, want in zip(sums, expected, strict=True):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    product = eye
    for jac in jacs:
        product = (eye + jac) @ product
    assert torch.allclose(sum(sums), product, rtol=1e-10, atol=1e-12)


def test_path_sums_order_matters():
    """Non-commuting Jacobians: a path of length 2 is J_2 J_1, not J_1 J_2."""
    j1 = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    j2 = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert torch.equal(path_sums([j1, j2])[2], j2 @ j1)
    assert not torch.equal(j2 @ j1, j1 @ j2)


def test_path_sums_add_up_to_the_autograd_jacobian_of_a_residual_stack():
    """x_i = x_{i-1} + tanh(W_i x_{i-1}): the J_i at the forward points, summed over all paths,
    give the Jacobian that autograd computes for the whole stack."""
    torch.manual_seed(0)
    weights = [torch.randn(6, 6, dtype=torch.float64) for _ in range(7)]

    def stack(x):
        for w in weights:
            x = x + torch.tanh(w @ x)
        return x

    x0 = torch.randn(6, dtype=torch.float64)
    jacs, x = [], x0
    for w in weights:
        jacs.append(torch.autograd.functional.jacobian(lambda v, w=w: torch.tanh(w @ v), x))
        x = x + torch.tanh(w @ x)
    full = torch.autograd.functional.jacobian(stack, x0)
    assert torch.allclose(sum(path_sums(jacs)), full, rtol=1e-10, atol=1e-10)
    # the identity path (length 0) alone is not the answer: the branches matter
    assert not torch.allclose(path_sums(jacs)[0], full, atol=1e-3)


def test_path_sums_reject_bad_shapes():
    with pytest.raises(ValueError):
        path_sums([])
    with pytest.raises(ValueError):
        path_sums([torch.zeros(3, 3), torch.zeros(3, 2)])
    with pytest.raises(ValueError):
        path_length_counts(-1)


@pytest.mark.parametrize("residual", [True, False])
def test_block_output_rms_matches_a_hand_run_forward_pass(residual):
    torch.manual_seed(0)
    model = rl.cifar_resnet(14, residual=residual, widths=(4, 8, 8), in_channels=1).eval()
    x = torch.randn(6, 1, 12, 12)
    rms = block_output_rms(model, x)
    with torch.no_grad():
        h = model.relu(model.bn1(model.conv1(x)))
        expected = {}
        for name, block in blocks_of(model):
            h = block(h)
            expected[name] = math.sqrt(h.pow(2).mean().item())
    assert list(rms) == list(expected)
    for name in expected:
        assert rms[name] == pytest.approx(expected[name], rel=1e-6)
    assert not model.training  # the mode is kept
    model.train()
    block_output_rms(model, x)
    assert model.training


def _residual_stack(channels=4, blocks=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        *[rl.BasicBlock(channels, channels) for _ in range(blocks)],
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(channels, 3),
    )


def _first_block_input_gradient(model, x, y):
    """The reference: the full gradient at the first block's input, by autograd."""
    inputs = []
    handle = blocks_of(model)[0][1].register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    handle.remove()
    return torch.autograd.grad(loss, inputs[0])[0] * len(x)


@pytest.mark.parametrize("train", [True, False])
def test_the_gradients_of_all_paths_add_up_to_the_full_gradient(train):
    torch.manual_seed(0)  # a CIFAR ResNet: option A shortcuts where the shape changes
    model = rl.cifar_resnet(14, widths=(3, 4, 6), in_channels=1).double().train(train)
    x, y = torch.randn(5, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (5,))
    paths = enumerate_paths(len(blocks_of(model)))  # 2^6 = 64
    total = sum(path_gradient(model, x, y, path) for path in paths)
    full = _first_block_input_gradient(model, x, y)
    assert torch.allclose(total, full, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(path_gradient(model, x, y, paths[0]), full, atol=1e-3)
    assert isinstance(model.layer2[0], rl.BasicBlock)  # the blocks are put back


def test_the_shortcut_path_is_the_product_of_the_relu_masks():
    """Skipping every branch, the gradient at x_L reaches x_0 through the identities, masked
    by each block's final ReLU: g_0 = g_L * 1[x_L > 0] * ... * 1[x_1 > 0]."""
    model = _residual_stack().double().eval()
    x, y = torch.randn(4, 4, 6, 6, dtype=torch.float64), torch.randint(0, 3, (4,))
    with torch.no_grad():
        outputs = [x]
        for block in model[:3]:
            outputs.append(block(outputs[-1]))
    last = outputs[-1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model[3:](last), y), last)
    expected = g * len(x)
    for out in outputs[:0:-1]:
        expected = expected * (out > 0)
    assert torch.allclose(path_gradient(model, x, y, [False] * 3), expected, atol=1e-12)


def test_gradient_by_path_length_averages_paths_of_each_length():
    model = _residual_stack(blocks=4).eval()
    x, y = torch.randn(4, 4, 6, 6), torch.randint(0, 3, (4,))
    by_length = gradient_by_path_length(model, x, y, samples=6)  # C(4, k) <= 6: every path
    assert by_length.shape == (5,)
    for k in range(5):
        norms = [
            per_example_norm(path_gradient(model, x, y, p))
            for p in enumerate_paths(4)
            if sum(p) == k
        ]
        assert by_length[k] == pytest.approx(np.mean(norms), rel=1e-6)
    few = gradient_by_path_length(model, x, y, samples=2, seed=1)  # sampled for k = 1, 2, 3
    assert few[0] == pytest.approx(by_length[0]) and few[4] == pytest.approx(by_length[4])


def test_paths_need_residual_blocks():
    plain = rl.cifar_resnet(8, residual=False, widths=(2, 2, 2), in_channels=1)
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ValueError):
        path_gradient(plain, x, y, [True] * 3)
    with pytest.raises(ValueError):
        path_gradient(rl.cifar_resnet(8, widths=(2, 2, 2), in_channels=1), x, y, [True])


def _stage_outputs(model, x):
    """Each block's output, by a hand-run forward pass through the stages (no hooks)."""
    out = model.relu(model.bn1(model.conv1(x)))
    outputs = {}
    for stage in ("layer1", "layer2", "layer3"):
        for index, block in enumerate(getattr(model, stage)):
            out = block(out)
            outputs[stage, index] = out
    return outputs


def test_open_identity_path_matches_a_hand_run_product_of_relu_masks():
    torch.manual_seed(0)
    model = rl.cifar_resnet(20, num_classes=10, widths=(4, 8, 16)).eval()
    x = torch.randn(3, 3, 16, 16)
    shares = rl.paths.open_identity_path(model, x)
    outputs = _stage_outputs(model, x)
    assert sorted(shares) == ["layer1", "layer2", "layer3"]
    for stage in shares:
        mask, expected = None, []
        for index in range(1, 3):  # blocks 1 and 2 of 3: the first one is left out
            passed = outputs[stage, index] > 0
            mask = passed if mask is None else mask & passed
            expected.append(mask.float().mean().item())
        assert shares[stage] == pytest.approx(expected)
        assert shares[stage][1] <= shares[stage][0] < 1  # a product of masks only shrinks


def test_open_identity_path_is_closed_by_a_block_whose_output_is_never_positive():
    model = rl.cifar_resnet(20, num_classes=10, widths=(4, 8, 16)).eval()
    block = model.layer2[1]
    with torch.no_grad():  # a huge negative BN shift after the addition's branch: ReLU kills all
        block.bn2.bias.fill_(-1e6)
    shares = rl.paths.open_identity_path(model, torch.randn(2, 3, 16, 16))
    assert shares["layer2"] == [0.0, 0.0] and shares["layer1"][0] > 0


def test_pre_activation_blocks_have_no_relu_to_close_the_path():
    model = rl.preact_resnet(20, num_classes=10, widths=(4, 8, 16))
    assert rl.paths.open_identity_path(model, torch.randn(2, 3, 16, 16)) == {}
