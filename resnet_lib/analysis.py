"""Looking inside networks: tensor shapes (and, in later chapters, gradients and lesions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .efficiency import count_parameters


@dataclass(frozen=True)
class ShapeRow:
    name: str
    module: str
    shape: tuple[int, ...]
    parameters: int


def trace_shapes(model: nn.Module, x: Tensor, depth: int = 1) -> list[ShapeRow]:
    """Run ``x`` through ``model`` and record the output shape of every submodule ``depth``
    levels down (``depth=1``: conv1, bn1, ..., layer1, ..., fc), in the order they ran."""
    rows: list[ShapeRow] = []
    handles = []
    for name, module in model.named_modules():
        if name and name.count(".") == depth - 1:
            def hook(mod: nn.Module, inputs, output, name: str = name) -> None:
                rows.append(ShapeRow(name, type(mod).__name__, tuple(output.shape),
                                     count_parameters(mod)))
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()  # BatchNorm in training mode would update its running statistics
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The residual (or plain) blocks of ``model``, in forward order, with their names."""
    from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck

    kinds = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


def weight_grad_norms(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """||dL/dW|| of every convolution's weight after one forward and backward pass of the
    cross-entropy loss on ``(x, y)``, in forward order. The model's own mode is kept (BN in
    training mode uses the batch statistics, as during training)."""
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    norms = {name: m.weight.grad.norm().item() for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.weight.grad is not None}
    model.zero_grad(set_to_none=True)
    return norms


def block_grad_norms(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """||dL/dx_l||, the gradient of the loss with respect to each block's *output*, collected with
    backward hooks (one forward and backward pass, cross-entropy on ``(x, y)``). Per-example
    norm, averaged over the batch."""
    norms: dict[str, float] = {}
    handles = []
    for name, block in blocks_of(model):
        def hook(mod: nn.Module, grad_input, grad_output, name: str = name) -> None:
            g = grad_output[0]
            # The loss is a batch mean; multiply by the batch size for per-example gradients.
            norms[name] = (g.flatten(1).norm(dim=1) * g.shape[0]).mean().item()
        handles.append(block.register_full_backward_hook(hook))
    try:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    order = [name for name, _ in blocks_of(model)]
    return {name: norms[name] for name in order if name in norms}


class _Lesioned(nn.Module):
    """A deleted block: residual blocks keep only their shortcut, plain blocks become y = x."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        if getattr(self.block, "residual", False) and getattr(self.block, "downsample", None):
            return self.block.downsample(x)
        return x


def can_lesion(block: nn.Module) -> bool:
    """A block can be deleted if something carries its input on: a shortcut, or equal shapes."""
    if getattr(block, "residual", False):
        return True
    conv1, last = block.conv1, [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]
    return conv1.stride == (1, 1) and conv1.in_channels == last.out_channels


def lesion_study(model: nn.Module, evaluate_fn) -> list[tuple[str, float]]:
    """Delete each block of ``model`` in turn (Veit et al., 2016) and call ``evaluate_fn(model)``
    (which returns, e.g., test accuracy). Blocks that change the shape of a *plain* network
    cannot be deleted and are skipped. Returns ``[(block name, score), ...]``; the model is left
    as it was."""
    results = []
    for name, block in blocks_of(model):
        if not can_lesion(block):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, _Lesioned(block))
        try:
            results.append((name, evaluate_fn(model)))
        finally:
            setattr(parent, child, block)
    return results
