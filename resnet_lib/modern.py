"""Modern developments (Chapter 12): compound scaling, a tiny Vision Transformer, random search.

- :func:`compound_scaling`: EfficientNet's depth, width and resolution multipliers
  ``alpha^phi, beta^phi, gamma^phi`` (Tan and Le, 2019, Eq. 3); :func:`efficientnet_cost`.
- :class:`TinyViT`: patch embedding, class token, position embeddings and a stack of
  :class:`~resnet_lib.domains.TransformerBlock` (Dosovitskiy et al., 2021, Eq. 1-4).
- :func:`sample_architectures` and :func:`build_candidate`: random search over CIFAR-ResNet-like
  networks (skip type, width, depth), the baseline of Li and Talwalkar (2019) in miniature.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .domains import TransformerBlock
from .efficiency import cost_on_meta
from .models import CifarResNet, cifar_resnet, efficientnet


class Scaling(NamedTuple):
    depth: float  # multiplier of the number of blocks per stage
    width: float  # multiplier of the number of channels
    resolution: int  # input size in pixels


def compound_scaling(
    phi: float,
    alpha: float = 1.2,
    beta: float = 1.1,
    gamma: float = 1.15,
    base_resolution: int = 224,
) -> Scaling:
    """EfficientNet's compound scaling (Tan and Le, 2019, Eq. 3): depth ``alpha^phi``, width
    ``beta^phi``, resolution ``gamma^phi`` times the base (rounded to a pixel). The defaults are
    the paper's grid-searched values for B0 (Sec. 4). The FLOPs of a convolutional network grow
    like depth * width^2 * resolution^2, so by ``(alpha beta^2 gamma^2)^phi``, about ``2^phi``."""
    return Scaling(alpha**phi, beta**phi, round(base_resolution * gamma**phi))


class TinyViT(nn.Module):
    """A small Vision Transformer (Dosovitskiy et al., 2021) for small images:

        z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos                 (Eq. 1)
        z'_l = MSA(LN(z_{l-1})) + z_{l-1},  z_l = MLP(LN(z'_l)) + z'_l   (Eq. 2, 3)
        y = head(LN(z_L^0))                                             (Eq. 4)

    The patch embedding E is a ``patch_size`` x ``patch_size`` convolution with that stride
    (the same as flattening each patch and multiplying by a matrix). ``residual=False`` drops
    the ``+ z`` of Eq. 2 and 3 and keeps every layer."""

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 2,
        *,
        dim: int = 32,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        in_channels: int = 3,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide image_size {image_size}")
        tokens = (image_size // patch_size) ** 2
        self.image_size, self.in_channels = image_size, in_channels
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(
            *[TransformerBlock(dim, heads, mlp_ratio, residual=residual) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"this TinyViT takes (batch, {', '.join(map(str, expected))}) images, got shape "
                f"{tuple(x.shape)}; build it with image_size= and in_channels= of your data"
            )
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)  # (batch, N, dim)
        cls = self.cls_token.expand(len(x), -1, -1)
        z = self.blocks(torch.cat([cls, patches], dim=1) + self.pos_embed)
        return self.head(self.norm(z[:, 0]))


#: The choices random search draws from: the shortcut of every block, the width of the first
#: stage (doubled in each of the next two, as in He et al. 2016a) and the depth (6n+2).
SEARCH_SPACE = {
    "skip": ("none", "identity", "projection"),
    "width": (4, 8, 16),
    "depth": (8, 14, 20, 32),
}

#: skip type -> cifar_resnet options: no shortcut (plain), option A (identity, zero-padded where
#: the width doubles), option C (a 1x1 projection on every shortcut).
SKIP_OPTIONS = {
    "none": {"residual": False},
    "identity": {"shortcut": "A"},
    "projection": {"shortcut": "C"},
}


@dataclass(frozen=True)
class Architecture:
    """One point of :data:`SEARCH_SPACE`."""

    skip: str
    width: int
    depth: int

    def __str__(self) -> str:
        return f"{self.skip}-w{self.width}-d{self.depth}"


def sample_architectures(count: int, seed: int) -> list[Architecture]:
    """``count`` different architectures drawn uniformly at random (without replacement) from
    :data:`SEARCH_SPACE`; the same ``seed`` gives the same list."""
    space = [
        Architecture(skip, width, depth)
        for skip in SEARCH_SPACE["skip"]
        for width in SEARCH_SPACE["width"]
        for depth in SEARCH_SPACE["depth"]
    ]
    if not 0 < count <= len(space):
        raise ValueError(f"count must be in 1..{len(space)}, got {count}")
    return random.Random(seed).sample(space, count)


def build_candidate(arch: Architecture, **kwargs) -> CifarResNet:
    """The CIFAR ResNet (or plain twin) that ``arch`` describes; ``kwargs`` go to
    :func:`~resnet_lib.models.cifar_resnet` (num_classes, in_channels)."""
    widths = (arch.width, 2 * arch.width, 4 * arch.width)
    return cifar_resnet(arch.depth, widths=widths, **SKIP_OPTIONS[arch.skip], **kwargs)


def efficientnet_cost(width_mult: float, depth_mult: float, resolution: int) -> tuple[int, int]:
    """``(parameters, multiply-adds)`` of ``efficientnet(width_mult, depth_mult, resolution)``
    on one ``resolution`` x ``resolution`` RGB image, counted on the meta device
    (:func:`~resnet_lib.efficiency.cost_on_meta`: no weight is allocated)."""
    build = functools.partial(efficientnet, width_mult, depth_mult, resolution)
    return cost_on_meta(build, (1, 3, resolution, resolution))
