"""Cost of a network: parameters (and, in later chapters, FLOPs, memory, folding, quantisation)."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters; with ``trainable_only``, only those with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_weights(model: nn.Module) -> int:
    """Convolution weights only: no BatchNorm, biases or fully connected layers."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
