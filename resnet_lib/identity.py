"""Learning the identity: plain and residual stacks of fully connected layers (Chapter 2).

He et al. (2016a), Sec. 3.1: if an identity mapping were optimal, a residual block could reach it
by driving its branch F to zero, while a stack of nonlinear layers has to fit H(x) = x. The two
networks here have the same layers and the same initialisation, with and without the shortcut;
:func:`fit_identity` trains either of them to reproduce its input, ``y = x``.

Inputs are standard normal, so half of every input's entries are negative: a ReLU stack can pass
them on only by shifting them into the ReLUs' positive range (or by splitting each number into
``ReLU(x)`` and ``ReLU(-x)``, which needs twice the width).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def he_linear(width: int, scale: float = 1.0) -> nn.Linear:
    """A ``width`` x ``width`` layer with He et al.'s (2015) initialisation, ``W ~ N(0, 2/width)``
    (fan-in, so that the mean square of a ReLU layer's output matches its input's), times
    ``scale``; the bias is zero."""
    layer = nn.Linear(width, width)
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    with torch.no_grad():
        layer.weight.mul_(scale)
    nn.init.zeros_(layer.bias)
    return layer


def _check(width: int, depth: int, min_depth: int) -> None:
    if width < 1:
        raise ValueError(f"width must be at least 1; got {width}")
    if depth < min_depth:
        raise ValueError(f"depth must be at least {min_depth}; got {depth}")


class PlainStack(nn.Module):
    """``depth`` fully connected layers of ``width`` units, a ReLU after each but the last:

        h_0 = x,   h_l = ReLU(W_l h_{l-1} + b_l)  (l = 1, ..., L-1),   y = W_L h_{L-1} + b_L.

    The last layer is linear so that ``y`` can be negative, as the identity needs. Every ``W_l``
    is drawn as in :func:`he_linear`.
    """

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        _check(width, depth, 1)
        self.width, self.depth = width, depth
        self.layers = nn.ModuleList(he_linear(width) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class ResidualStack(nn.Module):
    """``depth`` fully connected layers of ``width`` units as ``depth / 2`` residual blocks:

        h_0 = x,   h_k = h_{k-1} + F_k(h_{k-1})  (k = 1, ..., L/2),   y = h_{L/2},
        F_k(h) = W_{k,2} ReLU(W_{k,1} h + b_{k,1}) + b_{k,2}.

    The identity path carries no ReLU (as in He et al. 2016b), so ``y`` can be negative.
    ``W_{k,1}`` is drawn as in :func:`he_linear`, ``W_{k,2}`` too, times ``branch_scale``: with
    ``branch_scale=0`` every ``F_k`` is zero and the stack is exactly the identity. Averaged over
    the random weights, for any input and with ``s = branch_scale``,

        E|y - x|^2 = ((1 + 2 s^2)^(L/2) - 1) |x|^2,

    since each block adds a branch output of mean square ``2 s^2 |h|^2``, uncorrelated with ``h``.
    """

    def __init__(self, width: int, depth: int, branch_scale: float = 1.0) -> None:
        super().__init__()
        _check(width, depth, 2)
        if depth % 2:
            raise ValueError(f"a residual block has 2 layers, so depth must be even; got {depth}")
        self.width, self.depth, self.branch_scale = width, depth, branch_scale
        self.branches = nn.ModuleList(
            nn.Sequential(he_linear(width), nn.ReLU(), he_linear(width, branch_scale))
            for _ in range(depth // 2)
        )

    def forward(self, x: Tensor) -> Tensor:
        for branch in self.branches:
            x = x + branch(x)
        return x


def deepen(model: PlainStack | ResidualStack, depth: int) -> PlainStack | ResidualStack:
    """A ``depth``-layer network that computes exactly the function of the shallower ``model``.

    He et al.'s (2016a, Sec. 1) construction: "the added layers are identity mapping, and the
    other layers are copied from the learned shallower model". A residual stack gets new blocks
    whose branch is zero (``F = 0``). A plain stack gets layers ``h <- ReLU(I h + 0)`` inserted
    before its last, linear, layer: they pass ``h`` on unchanged only because ``h`` is the output
    of a ReLU there, hence non-negative, so a plain ``model`` needs at least 2 layers.
    """
    if depth < model.depth:
        raise ValueError(f"depth {depth} is less than the model's {model.depth}")
    if isinstance(model, ResidualStack):
        deeper = ResidualStack(model.width, depth, branch_scale=0.0)
        for old, new in zip(model.branches, deeper.branches, strict=False):
            new.load_state_dict(old.state_dict())
        return deeper
    if model.depth < 2:
        raise ValueError(
            "a 1-layer plain stack has no ReLU whose output the identity layers "
            "could pass on: its input may be negative"
        )
    deeper = PlainStack(model.width, depth)
    for old, new in zip(model.layers[:-1], deeper.layers, strict=False):
        new.load_state_dict(old.state_dict())
    with torch.no_grad():
        for layer in deeper.layers[model.depth - 1 : -1]:
            layer.weight.copy_(torch.eye(model.width))
            layer.bias.zero_()
    deeper.layers[-1].load_state_dict(model.layers[-1].state_dict())
    return deeper


def identity_inputs(
    n: int, width: int, generator: torch.Generator, nonnegative: bool = False
) -> Tensor:
    """``n`` inputs drawn from N(0, I) (``nonnegative``: their absolute values)."""
    x = torch.randn(n, width, generator=generator)
    return x.abs() if nonnegative else x


@torch.no_grad()
def identity_mse(
    model: nn.Module, samples: int = 4096, seed: int = 0, nonnegative: bool = False
) -> float:
    """Mean of ``(model(x) - x)^2`` over ``samples`` fresh inputs and all coordinates."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x = identity_inputs(samples, model.width, generator, nonnegative).to(device)
    return nn.functional.mse_loss(model(x), x).item()


def fit_identity(
    model: nn.Module,
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 1e-2,
    seed: int = 0,
    nonnegative: bool = False,
) -> list[float]:
    """Train ``model`` (anything with a ``width``) in place to reproduce its input with Adam.

    Each step draws a fresh batch from :func:`identity_inputs` (seeded by ``seed``, so a run is
    reproducible) and minimises the mean squared error ``mean((model(x) - x)^2)``. Returns the
    batch's error *before* each step: element 0 is the error of the initial weights.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1; got {steps}, {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr}")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        x = identity_inputs(batch_size, model.width, generator, nonnegative).to(device)
        loss = nn.functional.mse_loss(model(x), x)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {len(losses)}; lower the learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
