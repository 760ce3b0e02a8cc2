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
