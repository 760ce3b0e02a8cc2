"""Cost of a network: parameters and multiply-adds (later chapters add memory, folding,
quantisation and pruning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (a weight shared by two layers counts once)."""
    return sum(p.numel() for p in model.parameters())


def conv_weights(model: nn.Module) -> int:
    """Convolution weights only: no BatchNorm, biases or fully connected layers."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


def multiply_adds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass in eval mode on an input of ``input_shape`` (batch
    included), counted by PyTorch's ``FlopCounterMode`` (which counts 2 FLOPs per multiply-add,
    for convolutions and matrix products only). The model's mode is restored afterwards."""
    from torch.utils.flop_counter import FlopCounterMode  # it imports triton: only when used

    was_training = model.training
    device = next(model.parameters()).device
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.eval()(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def cost_on_meta(build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(parameters, multiply-adds)`` of the network ``build()`` returns, for one forward pass
    on an input of ``input_shape``, without allocating a weight or computing a convolution.

    The network is built on PyTorch's *meta* device, whose tensors have a shape and no data;
    :func:`count_parameters` needs only the shapes, and ``FlopCounterMode`` counts from the
    shapes of each operation. The counts are those of the real network (the tests compare them),
    at a small fraction of the time: ResNet-152's 60 million weights are never initialised."""
    with torch.device("meta"):
        model = build()
    return count_parameters(model), multiply_adds(model, input_shape)
