"""Building blocks of residual networks.

Every block computes ``y = F(x, {W_i}) + shortcut(x)`` (He et al., 2016a, Eq. 1-2), or, with
``residual=False``, the *plain* ``y = F(x, {W_i})`` from exactly the same layers.
The layout and attribute names follow torchvision's ``models/resnet.py`` so that its state_dicts
load into ours unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]
SHORTCUT_OPTIONS = ("A", "B", "C")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding, no bias (a BatchNorm follows)."""
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias: changes the number of channels (and, with stride, the size)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Option A: the parameter-free shortcut of He et al. (2016a), Sec. 4.2 (CIFAR-10).

    Spatial size is reduced by taking every ``stride``-th pixel, and the missing channels are
    zeros: ``shortcut(x) = [x[:, :, ::s, ::s], 0, ..., 0]``.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(
                f"option A can only add channels (got {in_planes} -> {out_planes}); "
                "use option 'B' or 'C' to reduce them"
            )
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_planes - self.in_planes))

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


def projection(
    in_planes: int, out_planes: int, stride: int, norm_layer: NormLayer = nn.BatchNorm2d
) -> nn.Sequential:
    """The projection shortcut ``W_s x`` (Eq. 2): a strided 1x1 convolution and BatchNorm."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), norm_layer(out_planes))


def make_shortcut(
    option: str,
    in_planes: int,
    out_planes: int,
    stride: int,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> nn.Module | None:
    """The shortcut of one block, passed to it as ``downsample``; ``None`` means the identity.

    He et al. (2016a), Sec. 4.1, compare three options:
    A: identity, and a parameter-free zero-padding shortcut where the shape changes;
    B: identity, and a projection where the shape changes;
    C: a projection in every block.
    ``norm_layer`` follows the projection's convolution (``nn.Identity``: a bare convolution).
    """
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; choose one of 'A', 'B', 'C'")
    shape_changes = stride != 1 or in_planes != out_planes
    if option == "C" or (option == "B" and shape_changes):
        return projection(in_planes, out_planes, stride, norm_layer)
    if option == "A" and shape_changes:
        return ShortcutA(in_planes, out_planes, stride)
    return None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions: ``y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))``.

    He et al. (2016a), Fig. 2 and Fig. 5 (left). ``residual=False`` drops the addition:
    the same layers then form a block of a *plain* network.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        groups: int = 1,
        base_width: int = 64,
        norm_layer: NormLayer | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        _check_plain(residual, downsample)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def residual_branch(self, x: Tensor) -> Tensor:
        """F(x): conv-BN-ReLU-conv-BN."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual_branch(x)
        if self.residual:
            out = out + self.shortcut(x)
        return self.relu(out)

    @property
    def branch_end(self) -> nn.Module:
        """The last layer of F with a weight: zeroing it makes F(x) = 0."""
        return _last_weighted(self.conv2, self.bn2)


class FixupBasicBlock(BasicBlock):
    """The basic block without normalisation, with Fixup's scalars (Zhang et al., 2019, rule 3):
    a bias before each convolution and each activation, and a multiplier on the branch:

        y = ReLU(s * conv2(ReLU(conv1(x + a) + b) + c) + d + shortcut(x + a)),

    ``a, b, c, d`` starting at 0 and ``s`` at 1. The initialisation (rules 1 and 2) is
    :func:`resnet_lib.init.fixup`'s."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{**kwargs, "norm_layer": nn.Identity})
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (
            nn.Parameter(torch.zeros(1)) for _ in range(4)
        )
        self.scale = nn.Parameter(torch.ones(1))

    def residual_branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.conv1(x + self.bias1a) + self.bias1b)
        return self.scale * self.conv2(out + self.bias2a) + self.bias2b

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual_branch(x)
        if self.residual:
            out = out + self.shortcut(x + self.bias1a)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand by 4): He et al. (2016a), Fig. 5 (right).

    The stride sits on the 3x3 convolution, as in torchvision ("ResNet v1.5"); the paper put it
    on the first 1x1. ``groups`` and ``base_width`` give ResNeXt's grouped 3x3 and wide ResNets.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        groups: int = 1,
        base_width: int = 64,
        norm_layer: NormLayer | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check_plain(residual, downsample)
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def residual_branch(self, x: Tensor) -> Tensor:
        """F(x): conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: Tensor) -> Tensor:
        out = self.residual_branch(x)
        if self.residual:
            out = out + self.shortcut(x)
        return self.relu(out)

    @property
    def branch_end(self) -> nn.Module:
        """The last layer of F with a weight: zeroing it makes F(x) = 0."""
        return _last_weighted(self.conv3, self.bn3)


def _squeeze_excitation(channels: int, reduction: int) -> nn.Module:
    """torchvision's SqueezeExcitation (Hu et al., 2018) with ``channels // reduction`` hidden
    units; imported here, not at the top, since importing torchvision.ops takes about a second
    that the networks without SE should not pay."""
    from torchvision.ops import SqueezeExcitation

    return SqueezeExcitation(channels, max(1, channels // reduction))


class SEBasicBlock(BasicBlock):
    """BasicBlock with squeeze-and-excitation on F(x) before the addition (Hu et al., 2018).

    ``y = ReLU(s(F(x)) * F(x) + x)`` where ``s = sigmoid(W_2 ReLU(W_1 avgpool(F(x))))`` rescales
    each channel; ``reduction`` is the ratio r of the squeeze (16 in the paper).
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        reduction: int = 16,
        **kwargs,
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample, **kwargs)
        self.se = _squeeze_excitation(planes * self.expansion, reduction)

    def residual_branch(self, x: Tensor) -> Tensor:
        return self.se(super().residual_branch(x))


class SEBottleneck(Bottleneck):
    """Bottleneck with squeeze-and-excitation on F(x) before the addition (Hu et al., 2018)."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        reduction: int = 16,
        **kwargs,
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample, **kwargs)
        self.se = _squeeze_excitation(planes * self.expansion, reduction)

    def residual_branch(self, x: Tensor) -> Tensor:
        return self.se(super().residual_branch(x))


def split_grouped_conv(conv: nn.Conv2d) -> list[nn.Conv2d]:
    """The ``conv.groups`` narrow convolutions that a grouped convolution runs side by side.

    Group ``i`` sees input channels ``[i*n, (i+1)*n)`` (``n = in_channels / groups``) and makes
    output channels ``[i*m, (i+1)*m)``; each returned convolution is an ordinary (ungrouped) one
    with that group's weights, so that ``torch.cat([p(x_i) for ...], dim=1) == conv(x)``, where
    ``x_i`` is the i-th slice of the input channels (Xie et al., 2017, Fig. 3(b) and (c))."""
    n, m = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    paths = []
    for i in range(conv.groups):
        path = nn.Conv2d(
            n, m, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
            bias=conv.bias is not None,
        )  # fmt: skip
        with torch.no_grad():
            path.weight.copy_(conv.weight[i * m : (i + 1) * m])
            if conv.bias is not None:
                path.bias.copy_(conv.bias[i * m : (i + 1) * m])
        paths.append(path)
    return paths


def _bn_slice(bn: nn.BatchNorm2d, start: int, stop: int) -> nn.BatchNorm2d:
    """The channels ``[start, stop)`` of a BatchNorm as a BatchNorm of their own (it normalises
    each channel separately, so the slice computes the same on those channels)."""
    part = nn.BatchNorm2d(stop - start, eps=bn.eps, momentum=bn.momentum)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(part, name).copy_(getattr(bn, name)[start:stop])
    return part


class AggregatedPaths(nn.Module):
    """A ResNeXt bottleneck's branch written as the sum of its paths: Xie et al. (2017), Fig. 3(a).

    ``F(x) = BN_3(sum_i T_i(x))``, where path ``T_i`` is 1x1 conv (in -> d), BN, ReLU, 3x3 conv
    (d -> d), BN, ReLU, 1x1 conv (d -> out), with the weights of group ``i`` of a
    :class:`Bottleneck` with ``groups = C``. It computes what the bottleneck's grouped form
    (Fig. 3(c)) computes, because its first 1x1 convolution is C narrow ones side by side, its
    grouped 3x3 is C narrow ones (:func:`split_grouped_conv`), and a 1x1 convolution of a
    concatenation is the sum of 1x1 convolutions of the parts. The last BN comes after the sum:
    per path, its shift would be added C times."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        groups, d = block.conv2.groups, block.conv2.in_channels // block.conv2.groups
        middle = split_grouped_conv(block.conv2)
        paths = []
        for i in range(groups):
            inward = conv1x1(block.conv1.in_channels, d)
            outward = conv1x1(d, block.conv3.out_channels)
            with torch.no_grad():
                inward.weight.copy_(block.conv1.weight[i * d : (i + 1) * d])
                outward.weight.copy_(block.conv3.weight[:, i * d : (i + 1) * d])
            bn1, bn2 = (_bn_slice(bn, i * d, (i + 1) * d) for bn in (block.bn1, block.bn2))
            paths.append(nn.Sequential(inward, bn1, nn.ReLU(), middle[i], bn2, nn.ReLU(), outward))
        self.paths = nn.ModuleList(paths)
        self.bn3 = block.bn3
        self.train(block.training)  # eval-mode BN in the block: the same in the paths

    def forward(self, x: Tensor) -> Tensor:
        return self.bn3(sum(path(x) for path in self.paths))


class PreActBasicBlock(nn.Module):
    """Pre-activation block: ``y = x + conv(ReLU(BN(conv(ReLU(BN(x))))))``.

    He et al. (2016b), "Identity Mappings in Deep Residual Networks", Fig. 1(b) and Eq. 3: BN and
    ReLU come before each convolution and nothing follows the addition, so the identity path from
    any block to any later one is clean. The shortcut (``downsample``, from :func:`make_shortcut`)
    and ``norm_layer`` are given as to :class:`BasicBlock`; a projection is applied to the
    pre-activated input ``ReLU(BN(x))``, as in the authors' code. ``dropout`` between the two
    convolutions gives the block of wide ResNets (Zagoruyko and Komodakis, 2016).
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        norm_layer: NormLayer | None = None,
        residual: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_plain(residual, downsample)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.bn1 = norm_layer(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def branch(self, pre: Tensor) -> Tensor:
        """F after the pre-activation ``pre = ReLU(BN(x))``: conv-BN-ReLU-conv."""
        return self.conv2(self.dropout(self.relu(self.bn2(self.conv1(pre)))))

    def residual_branch(self, x: Tensor) -> Tensor:
        """F(x) = conv(ReLU(BN(conv(ReLU(BN(x))))))."""
        return self.branch(self.relu(self.bn1(x)))

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(self.relu(self.bn1(x)))

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))  # computed once: the branch and a projection share it
        out = self.branch(pre)
        if not self.residual:
            return out
        return out + (x if self.downsample is None else self.downsample(pre))

    @property
    def branch_end(self) -> nn.Module:
        """The last layer of F with a weight: its last convolution."""
        return self.conv2


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), plus the shortcut.

    He et al. (2016b), used for ResNet-164 and ResNet-1001 on CIFAR.
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        norm_layer: NormLayer | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check_plain(residual, downsample)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.bn1 = norm_layer(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def branch(self, pre: Tensor) -> Tensor:
        """F after the pre-activation: conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1."""
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return self.conv3(self.relu(self.bn3(out)))

    def residual_branch(self, x: Tensor) -> Tensor:
        return self.branch(self.relu(self.bn1(x)))

    def shortcut(self, x: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(self.relu(self.bn1(x)))

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.branch(pre)
        if not self.residual:
            return out
        return out + (x if self.downsample is None else self.downsample(pre))

    @property
    def branch_end(self) -> nn.Module:
        """The last layer of F with a weight: its last convolution."""
        return self.conv3


def _last_weighted(*layers: nn.Module) -> nn.Module:
    """The last of ``layers`` (a residual branch's, in order) that has a weight.

    Zeroing that weight makes ``F(x) = 0``: a norm layer's scale (its shift is zero after
    initialisation; Goyal et al., 2017) or, where the norm layer is ``nn.Identity`` or has no
    affine parameters, the convolution before it (which has no bias; Zhang et al., 2019, Fixup).
    """
    return next(m for m in reversed(layers) if getattr(m, "weight", None) is not None)


def _check_plain(residual: bool, downsample: nn.Module | None) -> None:
    if not residual and downsample is not None:
        raise ValueError("a plain block (residual=False) has no shortcut; pass downsample=None")


HIGHWAY_KINDS = ("highway", "residual", "plain")


class HighwayLayer(nn.Module):
    """A fully connected highway layer (Srivastava, Greff and Schmidhuber, 2015).

    ``y = H(x) * T(x) + x * (1 - T(x))`` with ``H(x) = ReLU(W_H x + b_H)``, the transform gate
    ``T(x) = sigmoid(W_T x + b_T)`` and the carry gate ``C = 1 - T``. ``b_T`` starts at
    ``gate_bias``, negative (the papers suggest -1 to -3), so the layer initially carries its
    input through, which lets very deep highway networks train.

    ``kind="residual"`` and ``kind="plain"`` build its twins with the same parameters and no
    gate: two linear layers ``F(x) = W_2 ReLU(W_1 x + b_1) + b_2`` (in ``transform``) and
    ``y = ReLU(x + F(x))``, the original residual block of He et al. (2016a) without batch
    normalisation, or ``y = ReLU(F(x))``, its plain twin.
    """

    def __init__(self, features: int, gate_bias: float = -2.0, *, kind: str = "highway") -> None:
        super().__init__()
        if kind not in HIGHWAY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(HIGHWAY_KINDS)}; got {kind!r}")
        self.kind = kind
        self.gate_bias = gate_bias
        self.gate: nn.Linear | None = None
        if kind == "highway":
            self.transform: nn.Module = nn.Linear(features, features)  # H
            self.gate = nn.Linear(features, features)  # T
            nn.init.constant_(self.gate.bias, gate_bias)
        else:  # F: the same number of weights as H and T together
            self.transform = nn.Sequential(
                nn.Linear(features, features), nn.ReLU(), nn.Linear(features, features)
            )

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "highway":
            h = torch.relu(self.transform(x))  # H(x)
            t = torch.sigmoid(self.gate(x))  # T(x); the carry gate is C(x) = 1 - T(x)
            return h * t + x * (1 - t)
        f = self.transform(x)  # F(x) = W_2 ReLU(W_1 x + b_1) + b_2
        return torch.relu(x + f) if self.kind == "residual" else torch.relu(f)


class DenseLayer(nn.Module):
    """One layer of a dense block (Huang et al., 2017): ``x_l = H_l([x_0, ..., x_{l-1}])``.

    ``H_l`` is BN-ReLU-conv3x3 producing ``growth_rate`` channels; with ``bottleneck=True``
    (DenseNet-B) a BN-ReLU-conv1x1 to ``4 * growth_rate`` channels comes first.
    """

    def __init__(self, in_channels: int, growth_rate: int, bottleneck: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if bottleneck:
            inner = 4 * growth_rate
            layers += [nn.BatchNorm2d(in_channels), nn.ReLU(), conv1x1(in_channels, inner)]
            in_channels = inner
        layers += [nn.BatchNorm2d(in_channels), nn.ReLU(), conv3x3(in_channels, growth_rate)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class DenseBlock(nn.Sequential):
    """``num_layers`` dense layers; the output has ``in_channels + num_layers * growth_rate``."""

    def __init__(
        self, num_layers: int, in_channels: int, growth_rate: int, bottleneck: bool = False
    ) -> None:
        super().__init__(
            *[
                DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck)
                for i in range(num_layers)
            ]
        )
        self.out_channels = in_channels + num_layers * growth_rate


class Transition(nn.Sequential):
    """Between dense blocks: BN-ReLU-conv1x1 (compresses channels), then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            conv1x1(in_channels, out_channels),
            nn.AvgPool2d(2),
        )


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    activation: bool = True,
) -> nn.Sequential:
    """Conv (no bias), BatchNorm, then SiLU unless ``activation=False``: torchvision's
    ``Conv2dNormActivation`` as EfficientNet uses it (same state_dict keys ``0.weight``, ``1.*``)."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if activation:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck of EfficientNet (Tan and Le, 2019), after MobileNetV2's inverted
    residual (Sandler et al., 2018) with squeeze-and-excitation (Hu et al., 2018):

        expand 1x1 (C -> tC, SiLU), depthwise kxk (stride s, SiLU), SE, project 1x1 (tC -> C', no
        activation: the "linear bottleneck");  y = x + F(x) only if s == 1 and C == C'.

    The branch widens the thin stream t times (the reverse of ResNet's bottleneck, hence
    "inverted"); the shortcut joins the thin ends. In training, stochastic depth (Huang et al.,
    2016) drops the whole branch of a sample with probability ``stochastic_depth_prob``.
    Layers and state_dict keys are torchvision's ``MBConv``; ``residual=False`` drops the shortcut.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expand_ratio: int = 6,
        kernel_size: int = 3,
        stride: int = 1,
        stochastic_depth_prob: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__()
        from torchvision.ops import SqueezeExcitation, StochasticDepth  # see _squeeze_excitation

        expanded = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn_act(in_channels, expanded, 1))
        layers += [
            conv_bn_act(expanded, expanded, kernel_size, stride, groups=expanded),  # depthwise
            SqueezeExcitation(expanded, max(1, in_channels // 4), activation=nn.SiLU),
            conv_bn_act(expanded, out_channels, 1, activation=False),  # linear projection
        ]
        self.block = nn.Sequential(*layers)
        self.use_res_connect = residual and stride == 1 and in_channels == out_channels
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = x + self.stochastic_depth(out)
        return out
