"""resnet_lib.theory: the plain <-> residual constructions, filter-normalised directions, loss
slices and the Hessian's top eigenvalue, against independent references."""

import pytest
import torch
from torch import nn

from resnet_lib import theory


def _inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("widths", [[5, 7, 3, 6, 2], [4, 4, 4], [3, 9, 1], [6, 2]])
def test_residual_from_plain_computes_the_same_function(widths):
    torch.manual_seed(0)
    plain = theory.MLP(widths).double()
    res = theory.residual_from_plain(plain)
    x = _inputs(200, widths[0])
    assert isinstance(res, theory.ResidualMLP)
    assert len(res.blocks) == len(widths) - 2  # one standard block per hidden layer
    d = max(widths[:-1])
    assert all(b.inner.out_features == 3 * d for b in res.blocks)  # W = [A; I; -I]
    torch.testing.assert_close(res(x), plain(x), rtol=0, atol=1e-12)
    # Every block really is y = x + V ReLU(W x + c), the only form the module has
    assert all(type(b) is theory.ResidualUnit for b in res.blocks)


def test_negative_inputs_need_the_relu_of_minus_x():
    """Without the ReLU(-x) part the stream would lose the negative inputs: the test can fail."""
    torch.manual_seed(1)
    plain = theory.MLP([3, 5, 5, 2]).double()
    res = theory.residual_from_plain(plain)
    x = -_inputs(50, 3).abs()
    torch.testing.assert_close(res(x), plain(x), rtol=0, atol=1e-12)
    with torch.no_grad():
        res.blocks[0].outer.weight[:, 2 * 5] = 0  # V = [I, -I, I]: drop ReLU(-x_0)
    assert (res(x) - plain(x)).abs().max() > 1e-3


@pytest.mark.parametrize("hidden", [[6, 3], [1], [], [8, 8, 8]])
def test_plain_from_residual_computes_the_same_function(hidden):
    torch.manual_seed(2)
    res = theory.ResidualMLP(5, 4, hidden, 3).double()
    plain = theory.plain_from_residual(res)
    x = _inputs(200, 5)
    assert plain.widths == [5, *[h + 2 * 4 for h in hidden], 3]  # width h + 2d per layer
    torch.testing.assert_close(plain(x), res(x), rtol=0, atol=1e-12)


def test_round_trip_and_float32():
    torch.manual_seed(3)
    plain = theory.MLP([8, 16, 16, 4])
    back = theory.plain_from_residual(theory.residual_from_plain(plain))
    x = torch.randn(100, 8)
    assert back.widths == [8, 5 * 16, 5 * 16, 4]  # 3D inside the block, then + 2D
    torch.testing.assert_close(back(x), plain(x), rtol=1e-5, atol=1e-5)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="do not chain: layer 2 takes 4 inputs but layer 1"):
        theory.MLP.from_layers([nn.Linear(3, 5), nn.Linear(4, 2)])
    with pytest.raises(ValueError, match="two or more positive integers"):
        theory.MLP([3])
    with pytest.raises(ValueError, match="two or more positive integers"):
        theory.MLP([3, 0, 2])
    with pytest.raises(TypeError, match="takes an MLP"):
        theory.residual_from_plain(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="takes a ResidualMLP"):
        theory.plain_from_residual(theory.MLP([2, 2]))


def test_filter_normalisation_preserves_per_filter_norms():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(6 * 4, 5))
    with torch.no_grad():  # filters of very different sizes
        model[0].weight.mul_(torch.arange(1, 7, dtype=torch.float32)[:, None, None, None])
    direction = theory.filter_normalized_direction(model, torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    assert direction.keys() == params.keys()
    for name, p in params.items():
        d = direction[name]
        if p.dim() == 1:  # biases and batch norm: "ignore biasbn"
            assert torch.count_nonzero(d) == 0
            continue
        for theta_i, d_i in zip(p.detach(), d, strict=True):
            torch.testing.assert_close(d_i.norm(), theta_i.norm())
        assert not torch.allclose(d / d.norm(), p.detach() / p.detach().norm())  # random, not p


def test_loss_slice_and_surface_against_a_direct_computation():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    loss = theory.cross_entropy_on(x, y)
    gen = torch.Generator().manual_seed(0)
    d1, d2 = (theory.filter_normalized_direction(model, gen) for _ in range(2))
    before = [p.detach().clone() for p in model.parameters()]
    surface = theory.loss_surface(model, loss, [d1, d2], [[-0.5, 0.0, 1.0], [0.25, 2.0]])
    assert surface.shape == (3, 2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    a, b = 1.0, 2.0  # by hand: a copy of the model moved to theta + a d1 + b d2
    moved = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    moved.load_state_dict(
        {name: p.detach() + a * d1[name] + b * d2[name] for name, p in model.named_parameters()}
    )
    expected = nn.functional.cross_entropy(moved(x), y).item()
    assert surface[2, 1] == pytest.approx(expected, rel=1e-6)
    line = theory.loss_slice(model, loss, d1, [0.0])
    assert line[0] == pytest.approx(nn.functional.cross_entropy(model(x), y).item(), rel=1e-6)
    with pytest.raises(ValueError, match="one sequence of coordinates per direction"):
        theory.loss_surface(model, loss, [d1], [[0.0], [1.0]])


def test_weights_are_restored_when_the_loss_raises():
    model = nn.Linear(2, 2)
    before = model.weight.detach().clone()
    direction = theory.filter_normalized_direction(model)

    def failing(m: nn.Module) -> float:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        theory.loss_slice(model, failing, direction, [1.0])
    assert torch.equal(model.weight, before)


def test_top_eigenvalue_of_a_quadratic():
    """f(x) = x^T A x / 2 has Hessian A: its eigenvalue of largest magnitude, known exactly."""
    eigenvalues = torch.tensor([5.0, 3.0, 1.0, -0.5, -2.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(_inputs(5, 5, seed=1))
    a = q @ torch.diag(eigenvalues) @ q.T
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    top = theory.hessian_top_eigenvalue(
        lambda: 0.5 * x @ a @ x, [x], iterations=500, tol=1e-10, generator=None
    )
    assert top.converged
    assert top.value == pytest.approx(5.0, rel=1e-6)
    assert top.history[-1] == top.value and len(top.history) > 2


def test_top_eigenvalue_of_a_network_against_the_full_hessian():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = _inputs(20, 3), torch.randint(0, 2, (20,))
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(flat_params: torch.Tensor) -> torch.Tensor:
        chunks, i = [], 0
        for shape in shapes:
            n = shape.numel()
            chunks.append(flat_params[i : i + n].reshape(shape))
            i += n
        out = torch.func.functional_call(
            model, dict(zip([n for n, _ in model.named_parameters()], chunks, strict=True)), x
        )
        return nn.functional.cross_entropy(out, y)

    eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    largest = eig[eig.abs().argmax()].item()
    top = theory.hessian_top_eigenvalue(
        lambda: nn.functional.cross_entropy(model(x), y),
        params,
        iterations=2000,
        tol=1e-10,
        generator=torch.Generator().manual_seed(0),
    )
    assert top.value == pytest.approx(largest, rel=1e-4)


def test_top_eigenvalue_rejects_bad_input():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        theory.hessian_top_eigenvalue(lambda: x * 2, [x])
    with pytest.raises(ValueError, match="one or more parameters"):
        theory.hessian_top_eigenvalue(lambda: x.sum(), [])
