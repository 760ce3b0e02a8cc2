"""Looking inside networks: tensor shapes, gradients at every block and at the input, and the
lesion study."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from .efficiency import count_parameters


@dataclass(frozen=True)
class ShapeRow:
    name: str
    module: str
    shape: tuple[int, ...]
    parameters: int


def _observe(model: nn.Module, x: Tensor, handles: list) -> None:
    """One forward pass of ``x`` for the forward hooks in ``handles`` to record, in eval mode
    (BatchNorm in training mode would update its running statistics) and without gradients;
    afterwards the hooks are removed and the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def trace_shapes(model: nn.Module, x: Tensor, depth: int = 1) -> list[ShapeRow]:
    """Run ``x`` through ``model`` and record the output shape of every submodule ``depth``
    levels down (``depth=1``: conv1, bn1, ..., layer1, ..., fc), in the order they ran."""
    rows: list[ShapeRow] = []
    handles = []
    for name, module in model.named_modules():
        if name and name.count(".") == depth - 1:

            def hook(mod: nn.Module, inputs, output, name: str = name) -> None:
                rows.append(
                    ShapeRow(name, type(mod).__name__, tuple(output.shape), count_parameters(mod))
                )

            handles.append(module.register_forward_hook(hook))
    _observe(model, x, handles)
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
    norms = {
        name: m.weight.grad.norm().item()
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.weight.grad is not None
    }
    model.zero_grad(set_to_none=True)
    return norms


def stream_rms(blocks: nn.Module, x: Tensor) -> np.ndarray:
    """The root mean square of the residual stream ``x_0, x_1, ..., x_L`` when ``x = x_0`` runs
    through the ``L`` modules of ``blocks`` (an ``nn.Sequential``) one after the other, without
    gradients. The modules' own mode is kept: BatchNorm in training mode normalises with the
    batch's statistics, as at the first training step (in eval mode, right after initialisation,
    it would divide by a running variance of 1 and change nothing)."""
    rms = [x.pow(2).mean().sqrt().item()]
    with torch.no_grad():
        for block in blocks:
            x = block(x)
            rms.append(x.pow(2).mean().sqrt().item())
    return np.array(rms)


def per_example_norm(grad: Tensor) -> float:
    """The size of one example's gradient, averaged over the batch, from the gradient of a
    *batch-mean* loss: that gradient is 1/batch of each example's own, so it is scaled back up."""
    return (grad.flatten(1).norm(dim=1) * grad.shape[0]).mean().item()


class BlockGradientLog:
    """Records ||dL/dx_l||, the gradient of the loss with respect to each block's *output*, on
    every backward pass through ``model`` until :meth:`remove` is called (backward hooks).

    ``norms[name]`` holds one value per backward pass, in order: attached while a network
    trains, it records the gradients SGD used at every step; ``at(step)`` is the profile of
    one step, block by block from the input to the output."""

    def __init__(self, model: nn.Module) -> None:
        self.norms: dict[str, list[float]] = {name: [] for name, _ in blocks_of(model)}
        self._handles = [
            block.register_full_backward_hook(partial(self._record, name))
            for name, block in blocks_of(model)
        ]

    def _record(self, name: str, module: nn.Module, grad_input, grad_output) -> None:
        self.norms[name].append(per_example_norm(grad_output[0]))

    def at(self, step: int) -> np.ndarray:
        return np.array([values[step] for values in self.norms.values()])

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def block_grad_norms(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """||dL/dx_l|| at each block's output after one forward and backward pass of the
    cross-entropy loss on ``(x, y)``: per-example norm, averaged over the batch."""
    log = BlockGradientLog(model)
    try:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
    finally:
        log.remove()
        model.zero_grad(set_to_none=True)
    return {name: values[-1] for name, values in log.norms.items() if values}


def input_gradients(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """dL/dx for every example of the batch ``x`` (cross-entropy on ``y``, scaled by the batch
    size: each example's own gradient, see :func:`per_example_norm`). The model's mode is kept."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), x)
    return grad * len(x)


def gradient_correlation(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    distances: Sequence[float],
    directions: Tensor | None = None,
    seed: int = 0,
) -> dict[float, float]:
    """How alike the input gradients of nearby inputs are (Balduzzi et al. 2017, "shattered
    gradients"): for each distance d, the cosine similarity between ``g(x)`` and
    ``g(x + d |x| u)``, where ``g`` is :func:`input_gradients` and ``u`` a unit direction per
    example (``directions``, normalised; by default random, from ``seed``), averaged over the
    batch. 1 means the gradient did not change; near 0, that it looks like noise."""
    if directions is None:
        generator = torch.Generator().manual_seed(seed)
        directions = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    unit = directions / directions.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
    size = x.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
    here = input_gradients(model, x, y).flatten(1)
    result = {}
    for d in distances:
        there = input_gradients(model, x + d * size * unit, y).flatten(1)
        result[d] = nn.functional.cosine_similarity(here, there, dim=1).mean().item()
    return result


class _Lesioned(nn.Module):
    """A deleted block: a residual block keeps only its shortcut, as the block itself computes
    it (a pre-activation block projects ReLU(BN(x)), not x); a plain block becomes y = x."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return self.block.shortcut(x) if getattr(self.block, "residual", False) else x


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


@dataclass(frozen=True)
class GateRow:
    """The transform gates ``T(x)`` of one highway layer over a batch: all units, all examples."""

    name: str
    mean: float  # mean of T
    near_zero: float  # share of the values T < tol: the unit carries its input
    near_one: float  # share of the values T > 1 - tol: the unit transforms


def gate_statistics(model: nn.Module, x: Tensor, tol: float = 0.1) -> list[GateRow]:
    """The transform gate ``T = sigmoid(W_T x_l + b_T)`` of every gated highway layer of
    ``model``, in forward order, when ``x`` runs through it (in eval mode, without gradients):
    its mean over the batch and the units, and the shares of its values within ``tol`` of 0 and
    of 1 (Srivastava et al. 2015 plot the same per layer). Layers without a gate are skipped."""
    from .blocks import HighwayLayer

    if not 0 < tol < 0.5:
        raise ValueError(f"tol must be between 0 and 0.5; got {tol}")
    rows: list[GateRow] = []
    handles = []
    for name, layer in model.named_modules():
        if isinstance(layer, HighwayLayer) and layer.gate is not None:

            def hook(mod: HighwayLayer, inputs, output, name: str = name) -> None:
                t = torch.sigmoid(mod.gate(inputs[0]))
                rows.append(
                    GateRow(
                        name,
                        t.mean().item(),
                        (t < tol).float().mean().item(),
                        (t > 1 - tol).float().mean().item(),
                    )
                )

            handles.append(layer.register_forward_hook(hook))
    _observe(model, x, handles)
    return rows


def excitations(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """The channel weights ``s = sigmoid(W_2 ReLU(W_1 z))`` that every squeeze-and-excitation
    module of ``model`` (torchvision's ``SqueezeExcitation``, as in
    :class:`~resnet_lib.blocks.SEBasicBlock`) computes for each image of ``x``: ``{name of the
    module: tensor (images, channels)}``, in forward order, from one eval-mode forward pass
    (Hu et al., 2018, Fig. 6 plots their averages over the images of a class)."""
    from torchvision.ops import SqueezeExcitation

    weights: dict[str, Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SqueezeExcitation):

            def hook(mod: nn.Module, inputs, output: Tensor, name: str = name) -> None:
                weights[name] = output.detach().flatten(1)  # (N, C, 1, 1) -> (N, C)

            handles.append(module.scale_activation.register_forward_hook(hook))
    _observe(model, x, handles)
    return weights


def highway_profile(model: nn.Module, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Through the layers of a :class:`~resnet_lib.models.HighwayNetwork` (or any model with
    ``embed``, ``layers`` and ``fc``), for l = 1..L: how far the signal has moved from the
    stack's input, ``||x_l - x_0|| / ||x_0||`` (per example, averaged over the batch), and the
    gradient of the cross-entropy loss on ``(x, y)`` at ``x_l`` (:func:`per_example_norm`).
    A stack that computes the identity gives distances 0 and equal gradients."""
    x0 = model.embed(x)
    outputs, h = [], x0
    for layer in model.layers:
        h = layer(h)
        h.retain_grad()
        outputs.append(h)
    nn.functional.cross_entropy(model.fc(h), y).backward()
    size = x0.detach().flatten(1).norm(dim=1)
    distance = [
        ((o.detach() - x0.detach()).flatten(1).norm(dim=1) / size).mean().item() for o in outputs
    ]
    grads = [per_example_norm(o.grad) for o in outputs]
    model.zero_grad(set_to_none=True)
    return np.array(distance), np.array(grads)
