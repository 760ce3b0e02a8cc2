"""What theory says about residual networks, in code (Chapter 7).

Two constructions between plain and residual networks of fully connected ReLU layers, and the
tools of a loss-landscape study:

- :func:`residual_from_plain` rewrites a plain ReLU network (:class:`MLP`) as a residual network
  of standard blocks ``y = x + V ReLU(W x + c)`` (:class:`ResidualMLP`) that computes the same
  function, at three times the width inside each block; :func:`plain_from_residual` goes back,
  at the cost of carrying the stream through every ReLU as ``[ReLU(s); ReLU(-s)]``.
- :func:`filter_normalized_direction`, :func:`loss_slice` and :func:`loss_surface` follow Li et
  al. (2018, "Visualizing the loss landscape of neural nets"); :func:`hessian_top_eigenvalue`
  measures sharpness by power iteration on Hessian-vector products.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

Direction = dict[str, Tensor]  # parameter name -> a tensor of that parameter's shape


class MLP(nn.Module):
    """A plain ReLU network: ``h_i = ReLU(A_i h_{i-1} + a_i)`` for the hidden layers, and a last
    linear layer ``A_L h_{L-1} + a_L`` without ReLU. ``widths`` = (inputs, hidden..., outputs)."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        widths = list(widths)
        if len(widths) < 2 or any(int(w) != w or w < 1 for w in widths):
            raise ValueError(
                f"widths must be two or more positive integers (inputs, hidden..., outputs), "
                f"not {widths}"
            )
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    @classmethod
    def from_layers(cls, layers: Sequence[nn.Linear]) -> MLP:
        """The plain network made of these linear layers (ReLU between them), which must chain:
        each layer takes as many inputs as the one before gives outputs."""
        layers = list(layers)
        if not layers or not all(isinstance(layer, nn.Linear) for layer in layers):
            raise ValueError("from_layers needs one or more nn.Linear layers")
        for i, (a, b) in enumerate(zip(layers[:-1], layers[1:], strict=True), start=1):
            if b.in_features != a.out_features:
                raise ValueError(
                    f"the layers do not chain: layer {i + 1} takes {b.in_features} inputs but "
                    f"layer {i} gives {a.out_features} outputs"
                )
        widths = [layers[0].in_features] + [layer.out_features for layer in layers]
        model = cls(widths)
        model.layers = nn.ModuleList(layers)
        return model

    @property
    def widths(self) -> list[int]:
        return [self.layers[0].in_features] + [layer.out_features for layer in self.layers]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class ResidualUnit(nn.Module):
    """The standard residual block of fully connected layers: ``y = x + V ReLU(W x + c)``."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, hidden)  # W, c
        self.outer = nn.Linear(hidden, width, bias=False)  # V

    def forward(self, x: Tensor) -> Tensor:
        return x + self.outer(torch.relu(self.inner(x)))


class ResidualMLP(nn.Module):
    """A residual network of :class:`ResidualUnit` blocks on a stream of ``width`` units: a linear
    input layer (the stem), the blocks, and a linear output layer."""

    def __init__(self, inputs: int, width: int, hidden: Sequence[int], outputs: int) -> None:
        super().__init__()
        if min(inputs, width, outputs, *hidden, 1) < 1:
            raise ValueError("inputs, width, hidden widths and outputs must be positive")
        self.stem = nn.Linear(inputs, width)
        self.blocks = nn.ModuleList(ResidualUnit(width, h) for h in hidden)
        self.head = nn.Linear(width, outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _pad(matrix: Tensor, rows: int, cols: int) -> Tensor:
    out = matrix.new_zeros(rows, cols)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


@torch.no_grad()
def residual_from_plain(plain: MLP) -> ResidualMLP:
    """A residual network of standard blocks that computes exactly what ``plain`` computes.

    The stream has D = the widest of the input and the hidden layers; h_{i-1} sits in it padded
    with zeros. Block i sets W = [A_i; I; -I], c = [a_i; 0; 0], V = [I, -I, I] (hidden width
    3D), so that ``V ReLU(W s + c) = ReLU(A_i s + a_i) - ReLU(s) + ReLU(-s) = h_i - s`` and the
    block outputs h_i. The stem pads the input, the head is the last layer ``A_L``."""
    if not isinstance(plain, MLP):
        raise TypeError(f"residual_from_plain takes an MLP, not {type(plain).__name__}")
    linears = list(plain.layers)
    hidden_layers, last = linears[:-1], linears[-1]
    d = max([linears[0].in_features] + [layer.out_features for layer in hidden_layers])
    eye = torch.eye(d, dtype=last.weight.dtype, device=last.weight.device)
    res = ResidualMLP(linears[0].in_features, d, [3 * d] * len(hidden_layers), last.out_features)
    res.to(device=eye.device, dtype=eye.dtype)
    res.stem.weight.copy_(eye[:, : linears[0].in_features])
    res.stem.bias.zero_()
    for block, layer in zip(res.blocks, hidden_layers, strict=True):
        block.inner.weight.copy_(torch.cat([_pad(layer.weight, d, d), eye, -eye]))
        block.inner.bias.copy_(_pad(layer.bias[None], 1, 3 * d)[0])  # c = [a_i; 0; 0]
        block.outer.weight.copy_(torch.cat([eye, -eye, eye], dim=1))
    res.head.weight.copy_(_pad(last.weight, last.out_features, d))
    res.head.bias.copy_(last.bias)
    return res


@torch.no_grad()
def plain_from_residual(res: ResidualMLP) -> MLP:
    """A plain ReLU network that computes exactly what ``res`` computes, one hidden layer per block.

    A ReLU layer cannot pass the stream s through unchanged, but it can pass
    ``[ReLU(s); ReLU(-s)]``, from which s = ReLU(s) - ReLU(-s) is linear. Hidden layer k holds
    ``z_k = [ReLU(W_k s_{k-1} + c_k); ReLU(s_{k-1}); ReLU(-s_{k-1})]`` (width h_k + 2d), so that
    ``s_k = L_k z_k`` with ``L_k = [V_k, I, -I]``; the next layer's weights are ``[W L; L; -L]``."""
    if not isinstance(res, ResidualMLP):
        raise TypeError(f"plain_from_residual takes a ResidualMLP, not {type(res).__name__}")
    d = res.stem.out_features
    like = dict(dtype=res.stem.weight.dtype, device=res.stem.weight.device)
    eye = torch.eye(d, **like)
    # The stream before the first block is the affine map s_0 = P x + p; later, s = L z.
    L, offset = res.stem.weight.clone(), res.stem.bias.clone()
    layers = []
    for block in res.blocks:
        W, c, V = block.inner.weight, block.inner.bias, block.outer.weight
        layer = nn.Linear(L.shape[1], W.shape[0] + 2 * d).to(**like)
        layer.weight.copy_(torch.cat([W @ L, L, -L]))
        layer.bias.copy_(torch.cat([W @ offset + c, offset, -offset]))
        layers.append(layer)
        L, offset = torch.cat([V, eye, -eye], dim=1), torch.zeros(d, **like)
    head = nn.Linear(L.shape[1], res.head.out_features).to(**like)
    head.weight.copy_(res.head.weight @ L)
    head.bias.copy_(res.head.weight @ offset + res.head.bias)
    return MLP.from_layers([*layers, head])


def filter_normalized_direction(
    model: nn.Module, generator: torch.Generator | None = None
) -> Direction:
    """A random direction in ``model``'s weight space, normalised filter by filter (Li et al. 2018,
    Sec. 4): a Gaussian tensor for every weight of two or more dimensions, each filter (slice
    along the first dimension: a convolution's output channel, a linear layer's output unit)
    rescaled to the norm of the same filter of the weights. Biases and batch-norm parameters
    (one dimension) get zero, as in the authors' "ignore biasbn" setting; buffers such as batch
    normalisation's running statistics are not part of the direction."""
    direction = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            direction[name] = torch.zeros_like(p)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        dims = tuple(range(1, p.dim()))
        norm = torch.linalg.vector_norm
        scale = norm(p.detach(), dim=dims, keepdim=True) / norm(d, dim=dims, keepdim=True)
        direction[name] = d * scale
    return direction


def cross_entropy_on(x: Tensor, y: Tensor) -> Callable[[nn.Module], float]:
    """``loss(model)``: the mean cross-entropy of ``model`` on (x, y), in evaluation mode (batch
    normalisation uses its running statistics) and without gradients."""

    @torch.no_grad()
    def loss(model: nn.Module) -> float:
        model.eval()
        return nn.functional.cross_entropy(model(x), y).item()

    return loss


@torch.no_grad()
def loss_surface(
    model: nn.Module,
    loss: Callable[[nn.Module], float],
    directions: Sequence[Direction],
    coordinates: Sequence[Sequence[float]],
) -> np.ndarray:
    """The loss at ``theta + sum_k a_k d_k`` for every combination of the coordinates: one
    sequence of steps per direction. Returns an array of shape ``[len(c) for c in coordinates]``.
    The model's weights are restored afterwards, also when ``loss`` raises."""
    if len(directions) != len(coordinates) or not directions:
        raise ValueError("give one sequence of coordinates per direction, and one or more")
    params = dict(model.named_parameters())
    for k, direction in enumerate(directions):
        if direction.keys() != params.keys():
            raise ValueError(f"direction {k} does not have the model's parameter names")
    saved = {name: p.detach().clone() for name, p in params.items()}
    grids = np.meshgrid(*[np.asarray(c, dtype=float) for c in coordinates], indexing="ij")
    out = np.empty(grids[0].shape)
    try:
        for index in np.ndindex(out.shape):
            steps = [float(g[index]) for g in grids]
            for name, p in params.items():
                p.copy_(saved[name])
                for step, direction in zip(steps, directions, strict=True):
                    p.add_(direction[name], alpha=step)
            out[index] = loss(model)
    finally:
        for name, p in params.items():
            p.copy_(saved[name])
    return out


def loss_slice(
    model: nn.Module,
    loss: Callable[[nn.Module], float],
    direction: Direction,
    alphas: Sequence[float],
) -> np.ndarray:
    """The loss at ``theta + alpha d`` for each alpha: a 1-D slice (:func:`loss_surface`)."""
    return loss_surface(model, loss, [direction], [alphas])


@dataclass(frozen=True)
class TopEigenvalue:
    """The result of :func:`hessian_top_eigenvalue`."""

    value: float
    history: list[float]  # the Rayleigh quotient v^T H v after each iteration
    converged: bool


def hessian_top_eigenvalue(
    loss: Callable[[], Tensor],
    params: Sequence[Tensor],
    iterations: int = 100,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
) -> TopEigenvalue:
    """The eigenvalue of largest magnitude of the Hessian of ``loss()`` with respect to
    ``params``, by power iteration on Hessian-vector products (double backward): v <- Hv/|Hv|.

    ``loss()`` is evaluated once; each iteration differentiates the gradient again along v, which
    costs about one more backward pass and never forms the Hessian. Stops when the estimate moves
    by less than ``tol`` (relative) between iterations. Near a minimum the largest eigenvalue is
    positive and this is the "sharpness"; where a negative eigenvalue is larger in magnitude, that
    is what power iteration finds (the value's sign says which)."""
    params = list(params)
    if not params:
        raise ValueError("hessian_top_eigenvalue needs one or more parameters")
    if iterations < 1:
        raise ValueError(f"iterations must be 1 or more, not {iterations}")
    value = loss()
    if value.dim() != 0:
        raise ValueError(f"loss() must return a scalar, not a tensor of shape {tuple(value.shape)}")
    grads = torch.autograd.grad(value, params, create_graph=True)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((u * u).sum() for u in v))
    v = [u / norm for u in v]
    history: list[float] = []
    converged = False
    for _ in range(iterations):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        estimate = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        norm = torch.sqrt(sum((u * u).sum() for u in hv))
        if norm == 0:  # the Hessian is zero along v (and power iteration cannot go on)
            history.append(estimate)
            converged = True
            break
        v = [u.detach() / norm for u in hv]
        if history and abs(estimate - history[-1]) <= tol * abs(estimate):
            history.append(estimate)
            converged = True
            break
        history.append(estimate)
    return TopEigenvalue(history[-1], history, converged)
