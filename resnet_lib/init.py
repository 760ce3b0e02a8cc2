"""Weight initialisation schemes compared in the book.

- ``"kaiming"``: He et al. (2015), ``W ~ N(0, 2 / fan_out)`` for convolutions (torchvision's choice
  for ResNets), BatchNorm scale 1 and shift 0.
- ``"xavier"``: Glorot and Bengio (2010), ``W ~ U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``
  for convolutions and linear layers, biases 0.
- ``"default"``: whatever each PyTorch layer's ``reset_parameters`` does (for ``Conv2d`` and
  ``Linear``, ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)``: variance ``1 / (3 fan_in)``, six times
  smaller than He's ``2 / fan_in``).

``zero_init_residual=True`` also zeroes the last layer with a weight of every residual branch
(each block's ``branch_end``), so that each block starts as the identity: the last BatchNorm scale
(Goyal et al., 2017, as torchvision does), or, in a block without normalisation
(``norm_layer=nn.Identity``) and in pre-activation blocks, whose branch ends in a convolution,
that convolution (as Fixup does; Zhang et al., 2019).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from .blocks import (
    BasicBlock,
    Bottleneck,
    FixupBasicBlock,
    HighwayLayer,
    PreActBasicBlock,
    PreActBottleneck,
)

SCHEMES = ("kaiming", "xavier", "default")
RESIDUAL_BLOCKS = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)


def initialize(
    model: nn.Module, scheme: str = "kaiming", *, zero_init_residual: bool = False
) -> nn.Module:
    """Re-initialise ``model`` in place with ``scheme`` and return it."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    for m in model.modules():
        if scheme == "default":
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        elif isinstance(m, nn.Conv2d | nn.Linear):
            if scheme == "kaiming":
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        # the gate's negative bias is part of the architecture (its residual and plain twins
        # have no gate)
        if isinstance(m, HighwayLayer) and m.gate is not None:
            nn.init.constant_(m.gate.bias, m.gate_bias)
    if zero_init_residual:
        zero_init_last(model)
    return model


def zero_init_last(model: nn.Module) -> None:
    """Zero the last weight of every residual branch, so that each residual block starts as
    ``y = x`` (``y = ReLU(x)`` after a post-activation block, which is ``x`` for the non-negative
    inputs a ReLU before it leaves). With a BatchNorm at the end of the branch its scale is zeroed
    (its shift is zero after initialisation); without one, the branch's last convolution, which has
    no bias. Plain blocks (``residual=False``) are left alone: a zero branch would make them
    output 0, not their input."""
    for weight in _branch_end_weights(model):
        nn.init.zeros_(weight)


def scale_residual_branches(model: nn.Module, alpha: float) -> nn.Module:
    """Multiply the last weight of every residual branch by ``alpha``, so that each block starts
    as ``x + alpha * F(x)`` (before any ReLU after the addition): ``alpha = 0`` is
    :func:`zero_init_last`, ``alpha = 1 / sqrt(L)`` for ``L`` blocks keeps the sum's mean square
    bounded in a network without normalisation, ``(1 + 1/L)^L < e`` (Chapter 8)."""
    with torch.no_grad():
        for weight in _branch_end_weights(model):
            weight.mul_(alpha)
    return model


def _branch_end_weights(model: nn.Module) -> Iterator[nn.Parameter]:
    """The last weight of every residual branch (see :func:`zero_init_last`)."""
    for m in model.modules():
        if isinstance(m, RESIDUAL_BLOCKS) and m.residual:
            yield m.branch_end.weight


def fixup(model: nn.Module) -> nn.Module:
    """Fixup's initialisation (Zhang et al., 2019, Sec. 3), for a network of
    :class:`~resnet_lib.blocks.FixupBasicBlock` already He-initialised (rule 2's "standard
    method"): (1) the classification layer and the last layer of every residual branch start at
    zero; (2) the other weight layers inside the ``L`` branches of ``m = 2`` layers are scaled by
    ``L ** (-1 / (2m - 2))``, i.e. ``L ** -0.5``. Rule 3 (the scalar biases and multiplier) is
    in the block. Returns ``model``, changed in place."""
    blocks = [m for m in model.modules() if isinstance(m, FixupBasicBlock) and m.residual]
    if not blocks:
        raise ValueError("fixup needs a network of residual FixupBasicBlocks")
    layers_per_branch = 2
    factor = len(blocks) ** (-1 / (2 * layers_per_branch - 2))
    with torch.no_grad():
        for block in blocks:
            block.conv1.weight.mul_(factor)
            block.conv2.weight.zero_()
        classifiers = [m for m in model.modules() if isinstance(m, nn.Linear)]
        classifiers[-1].weight.zero_()
        if classifiers[-1].bias is not None:
            classifiers[-1].bias.zero_()
    return model


def initialized(
    build: Callable[[], nn.Module], scheme: str = "kaiming", *, zero_init_residual: bool = False
) -> nn.Module:
    """``build()`` re-initialised with :func:`initialize`. As ``functools.partial(initialized,
    build, "xavier")`` it can be pickled for :func:`resnet_lib.train.compare`'s worker
    processes (a function defined in a notebook cannot)."""
    return initialize(build(), scheme, zero_init_residual=zero_init_residual)
