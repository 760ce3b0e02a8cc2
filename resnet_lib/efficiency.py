"""Cost of a network: parameters, multiply-adds and the memory of a training step; and the
tools of Chapter 10 that change it: checkpointing, BN folding, int8 quantisation, pruning."""

from __future__ import annotations

import copy
import io
import itertools
import time
import warnings
import weakref
from collections.abc import Callable, Iterable

import torch
import torch.fx
from torch import nn
from torch.nn.utils import prune
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import checkpoint


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


def se_parameters(channels: int, reduction: int, bias: bool = True) -> int:
    """Parameters of one squeeze-and-excitation module on ``channels`` channels (Hu et al.,
    2018): two fully connected layers, C -> C/r -> C, so ``2 C^2 / r`` weights, plus ``C/r + C``
    biases where they have them (torchvision's ``SqueezeExcitation`` does). The hidden width is
    ``max(1, C // r)``, as in :class:`~resnet_lib.blocks.SEBasicBlock`."""
    hidden = max(1, channels // reduction)
    return 2 * channels * hidden + (hidden + channels if bias else 0)


def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors that one forward pass of ``model`` on ``x`` keeps for the backward
    pass: the activation memory of a training step, on any device (CPU included).

    Autograd saves what each operation's backward needs (a convolution its input, a ReLU its
    output, a BatchNorm its input and statistics); ``torch.autograd.graph.saved_tensors_hooks``
    sees each of them. A tensor saved by several operations, or saved as a view of another,
    counts once (by its storage), and the model's parameters and buffers do not count: they are
    memory that inference needs too. The model is left in the mode it is in (``model.train()``
    for a training step); the forward pass runs with gradients on and its graph is dropped."""
    own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(storages.values())


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of the tensors that operations create, while they live, and the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size and key not in self._sizes and key not in inputs:  # new: no view, no in-place
                self._sizes[key] = size
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key)
        return out


def peak_training_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of the tensors that one training step's forward and backward pass of
    ``model`` on ``x`` (loss: the sum of the outputs) hold at once, on any device.

    A ``TorchDispatchMode`` sees every tensor an operation creates (activations, what autograd
    saves, gradients, the tensors a checkpointed segment recomputes) and a finalizer sees it
    freed; the peak of their sum is the step's memory beyond the parameters and the input. On
    CUDA, ``torch.cuda.max_memory_allocated`` measures the same peak plus the allocator's
    rounding. Gradients are accumulated into the parameters' ``.grad``; set them to None after."""
    tracker = _LiveBytes()
    with tracker:
        model(x).sum().backward()
    return tracker.peak


class Checkpointed(nn.Module):
    """A CIFAR ResNet whose residual blocks run in ``segments`` checkpointed groups.

    Inside a group nothing is kept for the backward pass but the group's input; the backward
    pass recomputes the group's forward to get the rest (Chen et al. 2016,
    ``torch.utils.checkpoint.checkpoint`` with ``use_reentrant=False``). The stem and the head
    run as usual. The parameters are the wrapped network's own (shared, not copied)."""

    def __init__(self, model: nn.Module, segments: int) -> None:
        super().__init__()
        blocks = [block for stage in model.stages() for block in stage]
        if not isinstance(segments, int) or not 1 <= segments <= len(blocks):
            raise ValueError(f"segments must be an int in 1..{len(blocks)}, got {segments!r}")
        self.model = model
        bounds = [round(i * len(blocks) / segments) for i in range(segments + 1)]
        self.groups = nn.ModuleList(
            nn.Sequential(*blocks[a:b]) for a, b in itertools.pairwise(bounds)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.relu(m.bn1(m.conv1(x)))
        for group in self.groups:
            x = checkpoint(group, x, use_reentrant=False) if torch.is_grad_enabled() else group(x)
        return m.fc(m.avgpool(x).flatten(1))


def checkpointed(model: nn.Module, segments: int) -> Checkpointed:
    """``model`` (a network with ``stages()``, like :class:`~resnet_lib.models.CifarResNet`)
    with its blocks split into ``segments`` consecutive groups of near-equal size, each run
    under activation checkpointing: see :class:`Checkpointed`. One segment per stage is
    ``segments=len(model.stages())`` for networks with equal stages."""
    return Checkpointed(model, segments)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode in which every BatchNorm that directly follows a
    convolution is folded into it: ``BN(conv(x)) = (gamma / s) (W * x + b - mu) + beta`` with
    ``s = sqrt(var + eps)`` is one convolution with weight ``gamma W / s`` and bias
    ``beta + gamma (b - mu) / s`` (torch's ``torch.nn.utils.fusion.fuse_conv_bn_eval``); the
    BatchNorm becomes ``nn.Identity``. The pairs are found in the traced data flow
    (``torch.fx``), not by the order of the modules. Only for inference: the folded weights use
    the running statistics, so training the copy would not train the same network."""
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    for node in torch.fx.symbolic_trace(folded).graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if (
            source.op == "call_module"
            and isinstance(modules[source.target], nn.Conv2d)
            and len(source.users) == 1  # the convolution's output is used by the BN only
        ):
            conv, bn = modules[source.target], modules[node.target]
            _replace(folded, source.target, fuse_conv_bn_eval(conv, bn))
            _replace(folded, node.target, nn.Identity())
    return folded


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def quantize_int8(
    model: nn.Module, calibration_batches: Iterable[torch.Tensor], backend: str = "x86"
) -> nn.Module:
    """An int8 copy of ``model`` for CPU inference, by post-training static quantisation.

    PyTorch's FX graph mode (``torch.ao.quantization.quantize_fx``) traces the network, folds
    each BatchNorm into its convolution, fuses convolution + ReLU, and inserts observers; the
    ``calibration_batches`` (a few batches of training images) run through it to record the
    range of every activation; ``convert_fx`` then replaces each convolution by an int8 one
    with per-channel weight scales (``backend``'s default qconfig: "x86", or "qnnpack" on ARM).
    The residual addition ``out + shortcut(x)`` followed by ReLU becomes one quantised
    ``add_relu`` with its own output scale: the two inputs arrive with different scales, and
    the quantised add rescales both. Operations without an int8 kernel (option A's subsampling
    and zero padding) run in float between a dequantise and a quantise. torch 2.14 marks these
    APIs deprecated in favour of torchao's; the warning is silenced here (see Chapter 10)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    batches = list(calibration_batches)
    if not batches:
        raise ValueError("quantize_int8 needs at least one calibration batch")
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(f"backend {backend!r} not in {torch.backends.quantized.supported_engines}")
    torch.backends.quantized.engine = backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")  # see the docstring
        qconfig = get_default_qconfig_mapping(backend)
        prepared = prepare_fx(copy.deepcopy(model).eval(), qconfig, (batches[0],))
        with torch.no_grad():
            for batch in batches:
                prepared(batch)
        return convert_fx(prepared)


def prune_magnitude(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` with the fraction ``amount`` of its convolution weights set to zero:
    those of smallest magnitude over all convolutions together (global unstructured pruning,
    ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured``), made permanent with
    ``prune.remove``. Exactly ``round(amount * conv_weights(model))`` weights are zeroed. The
    tensors stay dense: zeros are stored and multiplied like any other weight."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be a fraction in [0, 1], got {amount!r}")
    pruned = copy.deepcopy(model)
    convs = [(m, "weight") for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    prune.global_unstructured(convs, pruning_method=prune.L1Unstructured, amount=float(amount))
    for module, name in convs:
        prune.remove(module, name)
    return pruned


def conv_sparsity(model: nn.Module) -> float:
    """Fraction of the convolution weights that are exactly zero."""
    zeros = sum(int((m.weight == 0).sum()) for m in model.modules() if isinstance(m, nn.Conv2d))
    return zeros / conv_weights(model)


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s state_dict saved with ``torch.save``: its size on disk."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def paired_speedups(
    models: dict[str, nn.Module], x: torch.Tensor, rounds: int = 5
) -> dict[str, list[float]]:
    """Speed-ups of each of ``models`` over the first one, forward passes on ``x`` without
    gradients: ``{name: [t(first) / t(name) in each round]}``.

    After one untimed pass each, every round times one pass of every model, in an order that
    rotates from round to round, so that all of them share the machine's noise; a ratio within
    a round is steadier than a ratio of separate medians on a busy machine. On CUDA each pass
    is synchronised."""
    if not models or rounds < 1:
        raise ValueError("paired_speedups needs at least one model and one round")
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    names = list(models)
    ratios: dict[str, list[float]] = {name: [] for name in names}
    with torch.no_grad():
        for model in models.values():
            model(x)
        for r in range(rounds):
            seconds = {}
            for name in names[r % len(names) :] + names[: r % len(names)]:
                sync()
                start = time.perf_counter()
                models[name](x)
                sync()
                seconds[name] = time.perf_counter() - start
            for name in names:
                ratios[name].append(seconds[names[0]] / seconds[name])
    return ratios
