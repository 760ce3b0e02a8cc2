"""Paths through a residual network, and how signals and gradients travel along them.

A stack of L residual blocks ``x_i = x_{i-1} + F_i(x_{i-1})`` has, by the chain rule, the Jacobian

    dx_L / dx_0 = (I + J_L)(I + J_{L-1}) ... (I + J_1),    J_i = dF_i / dx_{i-1},

so that ``dL/dx_0 = dL/dx_L (I + J_L) ... (I + J_1)`` (He et al. 2016b, Eq. 4-5, for one block:
``dL/dx = dL/dy (I + dF/dx)``). Multiplying out the product gives 2^L terms, one for every subset
of blocks: the *paths* of Veit et al. (2016). A path that enters k residual branches and takes the
shortcut around the other L - k has length k; there are C(L, k) of them, so the lengths of all
paths follow the binomial distribution Binomial(L, 1/2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .analysis import blocks_of


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
        sums = ([sums[0]] + [sums[k] + jac @ sums[k - 1] for k in range(1, len(sums))]
                + [jac @ sums[-1]])
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
