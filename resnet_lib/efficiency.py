"""Cost of a network: parameters and multiply-adds (later chapters add memory, folding,
quantisation and pruning)."""

from __future__ import annotations

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
