"""Residual connections in other domains (Chapter 11): transformers, RNNs and graph networks.

Each module here keeps the residual form ``x + F(x)`` of He et al. (2016a) and, with
``residual=False``, computes the same layers without the ``x +``, so that the two can be compared
like the plain and residual CNNs of the earlier chapters.

- :class:`TransformerBlock`: pre-LN ``x + Attn(LN(x)); x + MLP(LN(x))`` or post-LN
  ``LN(x + Attn(x)); LN(x + MLP(x))`` (Vaswani et al., 2017; Xiong et al., 2020).
- :class:`TinyTransformer`: token embedding, ``depth`` blocks, a final LN and a linear read-out.
- :class:`RecurrentNet`: plain ``h_t = tanh(W h_{t-1} + U x_t)`` or residual
  ``h_t = h_{t-1} + tanh(W h_{t-1} + U x_t)``.
- :func:`train_steps`, :func:`train_reverse`: their small training loops (Adam).
- :func:`reverse_task`, :func:`recall_task`, :func:`adding_problem`, :func:`stochastic_block_graph`:
  generated toy tasks.
- :class:`GCN`: ``H' = relu(A_hat H W)`` or residual ``H' = H + relu(A_hat H W)``
  (Kipf and Welling, 2017; Li et al., 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("pre", "post", None)


class TransformerBlock(nn.Module):
    """One transformer layer on (batch, tokens, dim) with a choice of residual and LN placement.

    - ``norm="pre"`` (Xiong et al., 2020): ``x = x + Attn(LN(x)); x = x + MLP(LN(x))``.
    - ``norm="post"`` (Vaswani et al., 2017): ``x = LN(x + Attn(x)); x = LN(x + MLP(x))``.
    - ``norm=None``: ``x = x + Attn(x); x = x + MLP(x)``.

    ``residual=False`` drops the ``x +`` and keeps every layer, e.g. pre-LN becomes
    ``x = Attn(LN(x)); x = MLP(LN(x))``. ``causal=True`` lets token i attend to tokens <= i only.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 2.0,
        *,
        residual: bool = True,
        norm: str | None = "pre",
        dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.dim, self.residual, self.norm, self.causal = dim, residual, norm, causal
        self.ln1 = nn.LayerNorm(dim) if norm else nn.Identity()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(dim) if norm else nn.Identity()
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def attend(self, x: Tensor) -> Tensor:
        """Self-attention of ``x`` (no norm, no residual): the ``Attn`` of the formulas."""
        mask = None
        if self.causal:
            n = x.shape[1]
            mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
        return self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]

    def add(self, x: Tensor, fx: Tensor) -> Tensor:
        """``x + F(x)`` with residuals, ``F(x)`` without."""
        return x + fx if self.residual else fx

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens(x, self.dim, "TransformerBlock")
        if self.norm == "post":
            x = self.ln1(self.add(x, self.attend(x)))
            return self.ln2(self.add(x, self.mlp(x)))
        x = self.add(x, self.attend(self.ln1(x)))
        return self.add(x, self.mlp(self.ln2(x)))

    def extra_repr(self) -> str:
        return f"residual={self.residual}, norm={self.norm!r}, causal={self.causal}"


def _check_tokens(x: Tensor, dim: int, name: str) -> None:
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(
            f"{name} takes (batch, tokens, {dim}) tensors, got shape {tuple(x.shape)}; "
            f"embed the tokens to width {dim} first (batch_first)"
        )


class TinyTransformer(nn.Module):
    """Token and position embeddings, ``depth`` :class:`TransformerBlock` s, a linear read-out.

    Maps (batch, length) integer tokens to (batch, length, vocab) logits, one prediction per
    position. With ``norm="pre"`` a final LayerNorm precedes the read-out, as in pre-LN
    transformers (Xiong et al., 2020, Fig. 1); post-LN blocks already end in one.
    """

    def __init__(
        self,
        depth: int,
        *,
        vocab: int,
        length: int,
        dim: int = 32,
        heads: int = 2,
        mlp_ratio: float = 2.0,
        residual: bool = True,
        norm: str | None = "pre",
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(length, dim))
        self.blocks = nn.Sequential(
            *[
                TransformerBlock(dim, heads, mlp_ratio, residual=residual, norm=norm)
                for _ in range(depth)
            ]
        )
        self.ln = nn.LayerNorm(dim) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > len(self.position):
            raise ValueError(
                f"TinyTransformer takes (batch, length) integer tokens with length at most "
                f"{len(self.position)} (its position embeddings), got shape {tuple(tokens.shape)}"
            )
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.ln(self.blocks(x)))


def reverse_task(
    n: int, length: int, vocab: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` random token sequences (batch, length) and their reversals: ``y[:, i] = x[:, -1-i]``.

    Every output position must read another position of the input, so a model without
    attention cannot beat chance (``1 / vocab``) except in the middle of odd lengths."""
    x = torch.randint(vocab, (n, length), generator=generator)
    return x, x.flip(1)


class RecurrentNet(nn.Module):
    """A one-layer recurrent network with a linear read-out of the last state.

    - plain (Elman): ``h_t = tanh(W h_{t-1} + U x_t + b)``;
    - ``residual=True``: ``h_t = h_{t-1} + tanh(W h_{t-1} + U x_t + b)``,
      the residual form ``h + F(h, x)`` applied across time steps.

    ``h_0 = 0``. ``forward(x, return_states=True)`` also returns the list of states
    ``[h_1, ..., h_T]`` (graph kept), for measuring ``dL/dh_t``.
    """

    def __init__(
        self, input_size: int, hidden: int, output_size: int, *, residual: bool = False
    ) -> None:
        super().__init__()
        self.residual, self.hidden = residual, hidden
        self.cell = nn.RNNCell(input_size, hidden, nonlinearity="tanh")  # tanh(W h + U x + b)
        self.readout = nn.Linear(hidden, output_size)

    def forward(
        self, x: Tensor, return_states: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        if x.dim() != 3 or x.shape[2] != self.cell.input_size:
            raise ValueError(
                f"RecurrentNet takes (batch, time, {self.cell.input_size}) inputs, "
                f"got shape {tuple(x.shape)}"
            )
        h = x.new_zeros(x.shape[0], self.hidden)
        states = []
        for t in range(x.shape[1]):  # x: (batch, time, features)
            f = self.cell(x[:, t], h)
            h = h + f if self.residual else f
            states.append(h)
        out = self.readout(h)
        return (out, states) if return_states else out

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


def adding_problem(
    n: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter and Schmidhuber, 1997, Experiment 4; Le et al., 2015).

    Each sequence has ``length`` steps of two features: a value drawn uniformly from [0, 1] and a
    marker that is 1 at exactly two steps, one in the first half and one in the second, 0
    elsewhere. The target (shape (n, 1)) is the sum of the two marked values. Predicting the
    mean, 1, gives a mean squared error of 1/6."""
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(half, (n,), generator=generator)
    second = half + torch.randint(length - half, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = (values * markers).sum(1, keepdim=True)
    return torch.stack([values, markers], dim=2), target


def recall_task(
    n: int, length: int, symbols: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Remember the first symbol: ``n`` sequences of ``length`` steps and their labels.

    Features (``symbols + 1`` per step): step 0 carries the one-hot code of a random symbol,
    which is the label; every step carries a distractor, uniform in [-1, 1], in the last
    feature. Only a network that keeps step 0 in its state for ``length - 1`` steps beats
    chance, ``1 / symbols``."""
    labels = torch.randint(symbols, (n,), generator=generator)
    x = torch.zeros(n, length, symbols + 1)
    x[torch.arange(n), 0, labels] = 1.0
    x[:, :, symbols] = 2 * torch.rand(n, length, generator=generator) - 1
    return x, labels


def hidden_gradient_norms(states: list[Tensor], loss: Tensor) -> Tensor:
    """``||dL/dh_t||`` for each state ``h_t`` of ``states`` (averaged over the batch), shape (T,).

    ``loss`` must depend on the states through the graph that produced them; ``torch.autograd.grad``
    computes all T gradients in one backward pass, without touching any ``.grad``."""
    grads = torch.autograd.grad(loss, states, retain_graph=True)
    return torch.stack([g.norm(dim=1).mean() for g in grads]).detach()


def normalized_adjacency(adjacency: Tensor) -> Tensor:
    """``A_hat = D^-1/2 (A + I) D^-1/2`` with ``D`` the degrees of ``A + I``: the propagation
    matrix of a graph convolutional network (Kipf and Welling, 2017, Eq. 2).

    ``adjacency``: square, symmetric (an undirected graph), non-negative, and without
    self-loops (this adds them; a diagonal already set would count twice)."""
    if adjacency.dim() != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"the adjacency must be a square matrix, got {tuple(adjacency.shape)}")
    if not torch.equal(adjacency, adjacency.T) or (adjacency < 0).any():
        raise ValueError("the adjacency must be symmetric and non-negative (an undirected graph)")
    if adjacency.diagonal().any():
        raise ValueError(
            "the adjacency has self-loops on its diagonal; pass it without them "
            "(normalized_adjacency adds the identity itself)"
        )
    a = adjacency + torch.eye(adjacency.shape[0], dtype=adjacency.dtype)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class GCN(nn.Module):
    """A deep graph convolutional network, full batch, in plain torch.

    ``H_0 = X W_in``; then ``depth`` layers ``H_{l+1} = relu(A_hat H_l W_l)`` (plain) or
    ``H_{l+1} = H_l + relu(A_hat H_l W_l)`` (``residual=True``, the ResGCN of Li et al., 2019,
    Sec. 3.2); then a linear read-out per node. ``features(x, a_hat)`` returns ``H_depth``."""

    def __init__(
        self, in_features: int, hidden: int, classes: int, depth: int, *, residual: bool = False
    ) -> None:
        super().__init__()
        self.residual = residual
        self.input = nn.Linear(in_features, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(depth))
        self.readout = nn.Linear(hidden, classes)

    def features(
        self, x: Tensor, a_hat: Tensor, every_layer: bool = False
    ) -> Tensor | list[Tensor]:
        """``H_depth``, or with ``every_layer=True`` the list ``[H_0, ..., H_depth]``."""
        if a_hat.shape != (len(x), len(x)):
            raise ValueError(
                f"a_hat must be ({len(x)}, {len(x)}) for {len(x)} nodes (rows of x), "
                f"got {tuple(a_hat.shape)}: pass normalized_adjacency(adjacency)"
            )
        h = self.input(x)
        hs = [h]
        for layer in self.layers:
            f = F.relu(a_hat @ layer(h))
            h = h + f if self.residual else f
            hs.append(h)
        return hs if every_layer else h

    def forward(self, x: Tensor, a_hat: Tensor) -> Tensor:
        return self.readout(self.features(x, a_hat))

    def extra_repr(self) -> str:
        return f"depth={len(self.layers)}, residual={self.residual}"


def stochastic_block_graph(
    sizes: tuple[int, ...],
    p_in: float,
    p_out: float,
    features: int,
    noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """A stochastic block model: ``(adjacency, x, labels)``.

    Nodes of the same block are joined with probability ``p_in``, of different blocks with
    ``p_out`` (symmetric, no self-loops). Each node's features are its block's random mean
    (a standard normal vector, one per block) plus Gaussian noise of standard deviation
    ``noise``, so the features alone classify the nodes imperfectly and the edges help."""
    labels = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    p = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    upper = (torch.rand(n, n, generator=generator) < p).triu(1).float()
    adjacency = upper + upper.T
    means = torch.randn(len(sizes), features, generator=generator)
    x = means[labels] + noise * torch.randn(n, features, generator=generator)
    return adjacency, x, labels


def mean_pairwise_distance(h: Tensor) -> float:
    """Mean Euclidean distance between the rows of ``h`` after scaling each to unit length.

    0 when every node's feature vector points the same way (over-smoothing); the scaling
    makes it blind to the overall size of the features, which a residual stream lets grow."""
    u = F.normalize(h, dim=1)
    n = len(u)
    return float(torch.cdist(u, u).sum() / (n * (n - 1)))


def train_steps(
    model: nn.Module,
    batch: Callable[[int], tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    steps: int,
    lr: float = 1e-3,
    clip: float | None = 1.0,
    warmup: int = 0,
) -> list[float]:
    """Train ``model`` for ``steps`` Adam steps on ``batch(step) -> (inputs, targets)`` and return
    the loss of each step. ``inputs`` is a tensor, or a tuple of the model's arguments.

    The learning rate rises linearly from ``lr / warmup`` to ``lr`` over the first ``warmup``
    steps and then stays at ``lr`` (``warmup=0``: constant from the start).
    Gradients are clipped to norm ``clip`` (None: not clipped). A non-finite loss ends the run;
    the remaining steps are recorded as ``nan``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )
    losses = []
    for step in range(steps):
        inputs, targets = batch(step)
        outputs = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
        loss = loss_fn(outputs, targets)
        if not torch.isfinite(loss):
            return losses + [math.nan] * (steps - step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def train_reverse(
    depth: int,
    *,
    residual: bool = True,
    norm: str | None = "pre",
    steps: int = 80,
    lr: float = 3e-3,
    warmup: int = 0,
    seed: int = 0,
    batch: int = 32,
    length: int = 8,
    vocab: int = 8,
) -> dict:
    """Train a :class:`TinyTransformer` on :func:`reverse_task` on the CPU, one thread.

    Returns ``{"losses": [loss per step], "accuracy": per-token accuracy on 512 held-out
    sequences}``. ``seed`` sets the initial weights and the training sequences."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    model = TinyTransformer(depth, vocab=vocab, length=length, residual=residual, norm=norm)
    g = torch.Generator().manual_seed(seed)
    losses = train_steps(
        model,
        lambda step: reverse_task(batch, length, vocab, g),
        lambda logits, y: F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)),
        steps,
        lr=lr,
        warmup=warmup,
    )
    x, y = reverse_task(512, length, vocab, torch.Generator().manual_seed(10_000 + seed))
    with torch.no_grad():
        accuracy = (model(x).argmax(-1) == y).float().mean().item()
    return {"losses": losses, "accuracy": accuracy}
