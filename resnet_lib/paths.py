"""Paths through a residual network, and how signals and gradients travel along them.

A stack of L residual blocks ``x_i = x_{i-1} + F_i(x_{i-1})`` has, by the chain rule, the Jacobian

    dx_L / dx_0 = (I + J_L)(I + J_{L-1}) ... (I + J_1),    J_i = dF_i / dx_{i-1},

so that ``dL/dx_0 = dL/dx_L (I + J_L) ... (I + J_1)`` (He et al. 2016b, Eq. 4-5, for one block:
``dL/dx = dL/dy (I + dF/dx)``). Multiplying out the product gives 2^L terms, one for every subset
of blocks: the *paths* of Veit et al. (2016). A path that enters k residual branches and takes the
shortcut around the other L - k has length k; there are C(L, k) of them, so the lengths of all
paths follow the binomial distribution Binomial(L, 1/2).

In a real network the backward pass can be restricted to one path: every block passes the
gradient back through its residual branch only, or through its shortcut only (Veit et al. 2016,
Sec. 5). The gradients of all 2^L paths add up to the network's gradient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from .analysis import blocks_of, per_example_norm


def path_length_counts(num_blocks: int) -> list[int]:
    """How many paths of each length k = 0, 1, ..., L run through ``num_blocks`` = L residual
    blocks: ``C(L, k)``, which add up to 2^L (Veit et al. 2016, Sec. 3)."""
    if num_blocks < 0:
        raise ValueError(f"num_blocks must be >= 0; got {num_blocks}")
    return [math.comb(num_blocks, k) for k in range(num_blocks + 1)]


def path_length_distribution(num_blocks: int) -> np.ndarray:
    """The share of paths of each length k = 0..L: ``C(L, k) / 2^L``, Binomial(L, 1/2)."""
    total = 2**num_blocks
    return np.array([c / total for c in path_length_counts(num_blocks)])  # exact int division


def path_sums(jacobians: Sequence[Tensor]) -> list[Tensor]:
    """``[S_0, S_1, ..., S_L]`` where ``S_k`` is the sum, over the C(L, k) paths of length k, of
    the product of the Jacobians the path passes through, in forward order:

        S_k = sum_{i_1 < ... < i_k} J_{i_k} ... J_{i_2} J_{i_1},   sum_k S_k = prod_i (I + J_i).

    ``jacobians[i]`` is J_{i+1}, square and of one size. The 2^L terms are never formed: after
    block i every ``S_k`` gains ``J_i S_{k-1}`` (k >= 1), which takes O(L^2) matrix products."""
    if not jacobians:
        raise ValueError("need at least one Jacobian")
    size = jacobians[0].shape[0]
    if any(j.shape != (size, size) for j in jacobians):
        raise ValueError("every Jacobian must be square and of the same size")
    sums = [torch.eye(size, dtype=jacobians[0].dtype, device=jacobians[0].device)]
    for jac in jacobians:
        sums = (
            [sums[0]]
            + [sums[k] + jac @ sums[k - 1] for k in range(1, len(sums))]
            + [jac @ sums[-1]]
        )
    return sums


def block_output_rms(model: nn.Module, x: Tensor) -> dict[str, float]:
    """The root mean square of each block's output, ``sqrt(mean(x_l^2))``, for the batch ``x``:
    how large the forward signal is after every block. The model's mode is kept, so batch norm
    in training mode normalises with the batch statistics (and updates its running averages)."""
    rms: dict[str, float] = {}
    handles = []
    for name, block in blocks_of(model):

        def hook(mod: nn.Module, inputs, output: Tensor, name: str = name) -> None:
            rms[name] = output.pow(2).mean().sqrt().item()

        handles.append(block.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return rms


class _OnePath(nn.Module):
    """A residual block whose forward pass is unchanged but whose backward pass takes one route:
    through the residual branch (``enter=True``) or through the shortcut only. ``detach`` cuts
    the other route out of the gradient, not out of the sum."""

    def __init__(self, block: nn.Module, enter: bool) -> None:
        super().__init__()
        self.block, self.enter = block, enter

    def forward(self, x: Tensor) -> Tensor:
        branch, shortcut = self.block.residual_branch(x), self.block.shortcut(x)
        if self.enter:
            return self.block.relu(branch + shortcut.detach())
        return self.block.relu(branch.detach() + shortcut)


@contextmanager
def _one_path(model: nn.Module, path: Sequence[bool]):
    blocks = blocks_of(model)
    if len(path) != len(blocks):
        raise ValueError(f"the path must say enter or skip for each of {len(blocks)} blocks")
    if not all(getattr(block, "residual", False) and hasattr(block, "relu") for _, block in blocks):
        raise ValueError(
            "paths need residual blocks with a ReLU after the addition (BasicBlock, Bottleneck)"
        )
    parents = [
        (model.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2], block)
        for name, block in blocks
    ]
    gated = [
        _OnePath(block, bool(enter)) for (_, _, block), enter in zip(parents, path, strict=True)
    ]
    for (parent, child, _), block in zip(parents, gated, strict=True):
        setattr(parent, child, block)
    try:
        yield gated
    finally:
        for parent, child, block in parents:
            setattr(parent, child, block)


def path_gradient(model: nn.Module, x: Tensor, y: Tensor, path: Sequence[bool]) -> Tensor:
    """The gradient of the cross-entropy with respect to the *input of the first block*, along
    one path only: ``path[i]`` says whether the path enters block i's residual branch (else it
    takes the shortcut). Scaled by the batch size, as :func:`~resnet_lib.analysis.input_gradients`.
    Summed over all 2^L paths, these give the full gradient. The model's mode is kept."""
    inputs = []

    def keep_input(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        x0 = args[0] if args[0].requires_grad else args[0].detach().requires_grad_(True)
        inputs.append(x0)
        return (x0,)

    with _one_path(model, path) as blocks:
        blocks[0].register_forward_pre_hook(keep_input)
        loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, inputs[0])
    return grad * len(x)


def gradient_by_path_length(
    model: nn.Module, x: Tensor, y: Tensor, samples: int = 8, seed: int = 0
) -> np.ndarray:
    """Veit et al. (2016), Fig. 6(a): for each path length k = 0..L, the size of the gradient
    that one path of length k brings to the input of the first block (per-example norm,
    averaged over the batch), averaged over ``samples`` paths drawn at random (every path, where
    there are no more than ``samples``). Multiply by ``path_length_counts`` for Fig. 6(b), the
    total gradient from all paths of each length."""
    num_blocks = len(blocks_of(model))
    generator = np.random.default_rng(seed)
    result = np.zeros(num_blocks + 1)
    for k in range(num_blocks + 1):
        if math.comb(num_blocks, k) <= samples:
            chosen = [set(c) for c in itertools.combinations(range(num_blocks), k)]
        else:
            chosen = [set(generator.choice(num_blocks, k, replace=False)) for _ in range(samples)]
        result[k] = np.mean(
            [
                per_example_norm(
                    path_gradient(model, x, y, [i in entered for i in range(num_blocks)])
                )
                for entered in chosen
            ]
        )
    return result


@torch.no_grad()
def open_identity_path(model: nn.Module, x: Tensor) -> dict[str, list[float]]:
    """How much of the identity path survives the ReLU after each addition (He et al. 2016b,
    Sec. 4): for each stage of original (post-activation) blocks, the share of units (over the
    batch, channels and pixels) where the path from the stage's first block through the next
    k = 1, 2, ... blocks is still open, every ReLU on the way having let it through (its input
    was positive). The first block of a stage, which changes the shape, is left out.
    Pre-activation blocks have no ReLU after the addition: they contribute nothing here, their
    path is open everywhere."""
    from .blocks import BasicBlock, Bottleneck

    still_open: dict[str, Tensor] = {}
    shares: dict[str, list[float]] = {}
    handles = []
    for name, block in blocks_of(model):
        stage, index = name.split(".")
        if index == "0" or not isinstance(block, BasicBlock | Bottleneck):
            continue

        def record(module, inputs, output, stage=stage):
            passed = output > 0  # the ReLU's derivative: 1 where its input was positive
            still_open[stage] = passed & still_open[stage] if stage in still_open else passed
            shares.setdefault(stage, []).append(still_open[stage].float().mean().item())

        handles.append(block.register_forward_hook(record))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shares
