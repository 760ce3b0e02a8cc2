"""The networks the book discusses, each a small ``nn.Module`` built from ``resnet_lib.blocks``.

ImageNet ResNets keep torchvision's constructor names and state_dict keys, so torchvision's
weights load into them with ``strict=True``. The CIFAR family follows He et al. (2016a), Sec. 4.2.
Every residual network takes ``residual=False`` for its *plain twin*: the same layers, no shortcuts.
Constructors take the depth (and the block layout) by position and every option by keyword:
``cifar_resnet(56, residual=False)``, ``ResNet(Bottleneck, [3, 4, 6, 3], num_classes=10)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from .blocks import (
    BasicBlock,
    Bottleneck,
    DenseBlock,
    FixupBasicBlock,
    HighwayLayer,
    MBConv,
    NormLayer,
    PreActBasicBlock,
    PreActBottleneck,
    SEBasicBlock,
    SEBottleneck,
    Transition,
    conv3x3,
    conv_bn_act,
    make_shortcut,
)
from .init import fixup, initialize

Block = type[BasicBlock] | type[Bottleneck] | type[PreActBasicBlock] | type[PreActBottleneck]


def _make_stage(
    block: Block,
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int,
    *,
    shortcut: str,
    residual: bool,
    norm_layer: NormLayer | None = None,
    shortcut_norm: NormLayer | None = None,
    **block_kwargs,
) -> nn.Sequential:
    """``blocks`` blocks; the first changes stride and width, so only it may need a projection.

    A projection shortcut ends in ``shortcut_norm`` (default: the blocks' ``norm_layer``)."""
    layers = []
    for i in range(blocks):
        block_in = inplanes if i == 0 else planes * block.expansion
        block_stride = stride if i == 0 else 1
        downsample = (
            make_shortcut(
                shortcut,
                block_in,
                planes * block.expansion,
                block_stride,
                shortcut_norm or norm_layer or nn.BatchNorm2d,
            )
            if residual
            else None
        )
        layers.append(
            block(
                block_in,
                planes,
                block_stride,
                downsample,
                norm_layer=norm_layer,
                residual=residual,
                **block_kwargs,
            )
        )
    return nn.Sequential(*layers)


def _add_stages(
    model: nn.Module,
    block: Block,
    inplanes: int,
    widths: Sequence[int],
    blocks_per_stage: int,
    **stage_kwargs,
) -> int:
    """Add the CIFAR networks' stages as ``model.layer1``, ``layer2``, ...: one per width, the
    first at stride 1 and the others at stride 2. Sets ``model.num_stages``; returns the
    channels that leave the last stage."""
    for i, width in enumerate(widths):
        stage = _make_stage(
            block, inplanes, width, blocks_per_stage, 1 if i == 0 else 2, **stage_kwargs
        )
        model.add_module(f"layer{i + 1}", stage)
        inplanes = width * block.expansion
    model.num_stages = len(widths)
    return inplanes


class ResNet(nn.Module):
    """The ImageNet ResNet of He et al. (2016a), Table 1, in torchvision's layout.

    stem (7x7/2 conv, 3x3/2 max-pool) -> four stages at 1/4, 1/8, 1/16, 1/32 of the input size
    with 64, 128, 256, 512 x expansion channels -> global average pool -> fully connected.
    """

    def __init__(
        self,
        block: Block,
        layers: list[int],
        *,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        norm_layer: NormLayer | None = None,
        shortcut: str = "B",
        residual: bool = True,
        in_channels: int = 3,
        **block_kwargs,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stage = dict(
            shortcut=shortcut,
            residual=residual,
            norm_layer=norm_layer,
            groups=groups,
            base_width=width_per_group,
            **block_kwargs,  # e.g. the reduction of SE blocks
        )
        self.layer1 = _make_stage(block, 64, 64, layers[0], 1, **stage)
        self.layer2 = _make_stage(block, 64 * block.expansion, 128, layers[1], 2, **stage)
        self.layer3 = _make_stage(block, 128 * block.expansion, 256, layers[2], 2, **stage)
        self.layer4 = _make_stage(block, 256 * block.expansion, 512, layers[3], 2, **stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        initialize(self, "kaiming", zero_init_residual=zero_init_residual)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11,689,512 parameters."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: bottlenecks [3, 4, 6, 3], 25,557,032 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: bottlenecks [3, 4, 23, 3], 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152: bottlenecks [3, 8, 36, 3], 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d), Xie et al. (2017): 32 groups of width 4 in the first stage's 3x3."""
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2 (torchvision's): bottlenecks whose inner width is doubled."""
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=64 * 2, **kwargs)


def se_resnet50(**kwargs) -> ResNet:
    """SE-ResNet-50, Hu et al. (2018): ResNet-50 with squeeze-and-excitation (``reduction``
    r = 16 unless given)."""
    return ResNet(SEBottleneck, [3, 4, 6, 3], **kwargs)


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNet of He et al. (2016a), Sec. 4.2: depth 6n+2.

    3x3 conv -> three stages of n blocks at 32x32, 16x16, 8x8 with 16, 32, 64 channels
    (``widths``) -> global average pool -> fully connected. The book's quick profile uses the same
    network with widths (8, 16, 32) on 16x16 single-channel digits. ``norm_layer=nn.Identity``
    removes every BatchNorm (for the experiments on networks without normalisation).
    """

    def __init__(
        self,
        block: Block,
        blocks_per_stage: int,
        *,
        num_classes: int = 10,
        widths: tuple[int, ...] = (16, 32, 64),
        shortcut: str = "A",
        residual: bool = True,
        in_channels: int = 3,
        stem_width: int | None = None,
        zero_init_residual: bool = False,
        norm_layer: NormLayer | None = None,
        **block_kwargs,
    ) -> None:
        super().__init__()
        stem_width = stem_width or widths[0]
        self.conv1 = conv3x3(in_channels, stem_width)
        self.bn1 = (norm_layer or nn.BatchNorm2d)(stem_width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = _add_stages(
            self,
            block,
            stem_width,
            widths,
            blocks_per_stage,
            shortcut=shortcut,
            residual=residual,
            norm_layer=norm_layer,
            **block_kwargs,
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        initialize(self, "kaiming", zero_init_residual=zero_init_residual)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages():
            x = stage(x)
        return self.fc(self.avgpool(x).flatten(1))


def _blocks_per_stage(
    depth: int, layers_per_block: int, stages: int = 3, extra: int = 2, examples: str = ""
) -> int:
    """Solve depth = stages * layers_per_block * n + extra for n >= 1, or explain the error."""
    step = stages * layers_per_block
    if (
        not isinstance(depth, int)
        or isinstance(depth, bool)
        or depth < step + extra
        or (depth - extra) % step
    ):
        raise ValueError(f"depth must be {step}n+{extra} with n >= 1 {examples}; got {depth!r}")
    return (depth - extra) // step


def cifar_resnet(
    depth: int,
    *,
    num_classes: int = 10,
    shortcut: str = "A",
    residual: bool = True,
    widths: tuple[int, ...] = (16, 32, 64),
    in_channels: int = 3,
    block: Block = BasicBlock,
    **kwargs,
) -> CifarResNet:
    """ResNet-``depth`` for CIFAR (He et al. 2016a, Table 6); ``residual=False``: plain-``depth``.

    With basic blocks the depth is 6n+2 (20, 32, 44, 56, 110, 1202); with bottlenecks, 9n+2.
    Option A (the default) has 0.27M, 0.46M, 0.66M, 0.85M, 1.7M and 19.4M parameters.
    """
    layers_per_block = 3 if issubclass(block, Bottleneck) else 2
    n = _blocks_per_stage(
        depth,
        layers_per_block,
        len(widths),
        examples="(e.g. 20, 32, 44, 56, 110)" if layers_per_block == 2 else "",
    )
    return CifarResNet(
        block,
        n,
        num_classes=num_classes,
        widths=widths,
        shortcut=shortcut,
        residual=residual,
        in_channels=in_channels,
        **kwargs,
    )


def se_resnet(depth: int, **kwargs) -> CifarResNet:
    """A CIFAR ResNet whose basic blocks have squeeze-and-excitation (Hu et al., 2018); the
    options are :func:`cifar_resnet`'s."""
    return cifar_resnet(depth, block=SEBasicBlock, **kwargs)


def fixup_resnet(depth: int, **kwargs) -> CifarResNet:
    """A CIFAR ResNet without normalisation, with Fixup's blocks and initialisation (Zhang et
    al., 2019): :class:`~resnet_lib.blocks.FixupBasicBlock` and :func:`resnet_lib.init.fixup`.
    The stem's BatchNorm goes too; the options are :func:`cifar_resnet`'s."""
    return fixup(cifar_resnet(depth, block=FixupBasicBlock, norm_layer=nn.Identity, **kwargs))


def cifar_resnext(
    depth: int = 29,
    *,
    cardinality: int = 8,
    bottleneck_width: int = 64,
    num_classes: int = 10,
    in_channels: int = 3,
) -> CifarResNet:
    """ResNeXt-``depth`` (``cardinality`` x ``bottleneck_width``d) for CIFAR, Xie et al. (2017).

    Depth 9n+2; a 64-channel 3x3 stem, then three stages of bottlenecks whose 3x3 convolution has
    ``cardinality`` groups of ``bottleneck_width`` x 2^stage channels, and outputs 256, 512, 1024.
    ResNeXt-29 8x64d has 34.4M parameters and 16x64d 68.1M (their Table 7).
    """
    n = _blocks_per_stage(depth, 3, examples="(e.g. 29)")
    return CifarResNet(
        Bottleneck,
        n,
        num_classes=num_classes,
        widths=(64, 128, 256),
        shortcut="B",
        in_channels=in_channels,
        stem_width=64,
        groups=cardinality,
        base_width=bottleneck_width,
    )


def resnext_template_weights(cardinality: int, width: int, channels: int = 256) -> int:
    """Weights of one ResNeXt bottleneck template, Xie et al. (2017), Sec. 3.3 and Table 2:
    ``C * (channels*d + 3*3*d*d + d*channels)`` for C paths of 1x1 (channels -> d), 3x3 (d -> d)
    and 1x1 (d -> channels); batch normalisation and the shortcut are not counted.
    ``(1, 64)`` is ResNet-50's first-stage bottleneck (69,632 weights), ``(32, 4)`` ResNeXt's."""
    return cardinality * (2 * channels * width + 9 * width * width)


def resnext_width(cardinality: int, channels: int = 256, budget: int | None = None) -> int:
    """The bottleneck width d that brings the template of :func:`resnext_template_weights`
    closest to ``budget`` weights (default: the ResNet bottleneck's, C = 1 and d = channels/4):
    the integer next to the positive root of ``9C d^2 + 2C channels d = budget``, at least 1.
    For C = 1, 2, 4, 8, 32 and 256 channels it gives Xie et al.'s d = 64, 40, 24, 14, 4."""
    if budget is None:
        budget = resnext_template_weights(1, channels // 4, channels)
    a, b = 9 * cardinality, 2 * cardinality * channels
    root = (-b + (b * b + 4 * a * budget) ** 0.5) / (2 * a)
    candidates = {max(1, int(root)), max(1, int(root) + 1)}
    return min(
        sorted(candidates),
        key=lambda d: abs(resnext_template_weights(cardinality, d, channels) - budget),
    )


def narrow_resnext(
    depth: int,
    *,
    cardinality: int = 1,
    width: int,
    widths: tuple[int, ...] = (16, 32, 64),
    **kwargs,
) -> CifarResNet:
    """A CIFAR network of ResNeXt bottlenecks at a chosen cardinality C and width d: depth 9n+2,
    stage s has outputs ``4 * widths[s]`` and a grouped 3x3 convolution of C groups of
    ``d * widths[s] / widths[0]`` channels (d in the first stage, doubling as the widths do).
    ``cardinality=1`` is a ResNet of bottlenecks. Projection shortcuts (option B) as in
    :func:`cifar_resnext`; the other options are :func:`cifar_resnet`'s."""
    kwargs.setdefault("shortcut", "B")
    return cifar_resnet(
        depth,
        block=Bottleneck,
        widths=widths,
        groups=cardinality,
        base_width=64 * width / widths[0],
        **kwargs,
    )


class PreActResNet(nn.Module):
    """Pre-activation ResNet for CIFAR (He et al., 2016b): conv -> stages -> BN-ReLU -> pool -> fc.

    The stages are built as :class:`CifarResNet`'s, but a projection shortcut is a bare 1x1
    convolution, as in the authors' code: its input, ``ReLU(BN(x))``, is normalised already.
    Also the wide ResNet WRN-d-k (Zagoruyko and Komodakis, 2016), with widths (16k, 32k, 64k)
    and a 16-channel stem.
    """

    def __init__(
        self,
        block: type[PreActBasicBlock] | type[PreActBottleneck],
        blocks_per_stage: int,
        *,
        num_classes: int = 10,
        widths: tuple[int, ...] = (16, 32, 64),
        in_channels: int = 3,
        stem_width: int = 16,
        shortcut: str = "B",
        residual: bool = True,
        norm_layer: NormLayer | None = None,
        **block_kwargs,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, stem_width)
        inplanes = _add_stages(
            self,
            block,
            stem_width,
            widths,
            blocks_per_stage,
            shortcut=shortcut,
            residual=residual,
            norm_layer=norm_layer,
            shortcut_norm=nn.Identity,
            **block_kwargs,
        )
        self.bn = (norm_layer or nn.BatchNorm2d)(inplanes)
        self.relu = nn.ReLU()  # not in place: with no norm it would overwrite a block's output
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        initialize(self, "kaiming")

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for stage in self.stages():
            x = stage(x)
        x = self.relu(self.bn(x))
        return self.fc(self.avgpool(x).flatten(1))


def preact_resnet(
    depth: int,
    *,
    num_classes: int = 10,
    bottleneck: bool | None = None,
    widths: tuple[int, ...] = (16, 32, 64),
    in_channels: int = 3,
    shortcut: str = "B",
    residual: bool = True,
    norm_layer: NormLayer | None = None,
) -> PreActResNet:
    """Pre-activation ResNet-``depth`` (He et al. 2016b): basic blocks (6n+2, e.g. ResNet-110) or
    bottlenecks (9n+2, e.g. ResNet-164 and ResNet-1001).

    ``bottleneck=None`` follows the paper's naming: bottlenecks from depth 164 up and for depths
    that only 9n+2 fits (29, 47, ...), else basic blocks.
    """
    if bottleneck is None:
        bottleneck = isinstance(depth, int) and (depth >= 164 or (depth - 2) % 6 != 0)
    if bottleneck:
        n = _blocks_per_stage(depth, 3, len(widths), examples="(e.g. 164, 1001)")
        block: type[PreActBasicBlock] | type[PreActBottleneck] = PreActBottleneck
    else:
        n = _blocks_per_stage(depth, 2, len(widths), examples="(e.g. 20, 56, 110)")
        block = PreActBasicBlock
    return PreActResNet(
        block,
        n,
        num_classes=num_classes,
        widths=widths,
        in_channels=in_channels,
        stem_width=widths[0],
        shortcut=shortcut,
        residual=residual,
        norm_layer=norm_layer,
    )


def wide_resnet(
    depth: int,
    widen_factor: int,
    *,
    num_classes: int = 10,
    dropout: float = 0.0,
    in_channels: int = 3,
) -> PreActResNet:
    """WRN-``depth``-``widen_factor`` (Zagoruyko and Komodakis, 2016): depth 6n+4 as the paper
    counts it (n blocks per stage), widths 16k, 32k, 64k, pre-activation
    basic blocks with optional dropout between the convolutions. WRN-28-10 is reported as 36.5M.
    """
    n = _blocks_per_stage(depth, 2, extra=4, examples="(e.g. 16, 28, 40)")
    k = widen_factor
    return PreActResNet(
        PreActBasicBlock,
        n,
        num_classes=num_classes,
        widths=(16 * k, 32 * k, 64 * k),
        in_channels=in_channels,
        stem_width=16,
        shortcut="B",
        dropout=dropout,
    )


class HighwayNetwork(nn.Module):
    """A fully connected highway network (Srivastava et al., 2015): a linear layer from
    ``in_features`` to ``width``, ``depth`` highway layers, and a linear classifier. Inputs are
    flattened first. ``kind="residual"`` or ``"plain"`` builds its residual or plain twin, with
    the same depth, width and parameters and no gates (see
    :class:`~resnet_lib.blocks.HighwayLayer`)."""

    def __init__(
        self,
        depth: int,
        *,
        in_features: int,
        width: int,
        num_classes: int = 10,
        gate_bias: float = -2.0,
        kind: str = "highway",
    ) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU())
        self.layers = nn.Sequential(
            *[HighwayLayer(width, gate_bias, kind=kind) for _ in range(depth)]
        )
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.layers(self.embed(x)))


class DenseNet(nn.Module):
    """A CIFAR DenseNet (Huang et al., 2017): conv -> [dense block -> transition] x 2 -> dense
    block -> BN-ReLU -> pool -> fc."""

    def __init__(
        self,
        layers_per_block: int,
        *,
        growth_rate: int = 12,
        bottleneck: bool = False,
        compression: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        channels = 2 * growth_rate if bottleneck else 16
        stages: list[nn.Module] = [conv3x3(in_channels, channels)]
        for i in range(3):
            block = DenseBlock(layers_per_block, channels, growth_rate, bottleneck)
            stages.append(block)
            channels = block.out_channels
            if i < 2:
                out = int(channels * compression)
                stages.append(Transition(channels, out))
                channels = out
        self.features = nn.Sequential(*stages, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        initialize(self, "kaiming")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.features(x)).flatten(1))


def cifar_densenet(
    depth: int = 40,
    *,
    growth_rate: int = 12,
    bottleneck: bool = False,
    compression: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
) -> DenseNet:
    """DenseNet-``depth`` for CIFAR: depth 3n+4 (or 6n+4 with bottlenecks, DenseNet-BC).
    DenseNet (40, k=12) has 1.0M parameters, DenseNet-BC (100, k=12) 0.8M (Huang et al., Table 2).
    """
    n = _blocks_per_stage(
        depth,
        2 if bottleneck else 1,
        extra=4,
        examples="(e.g. 100 for DenseNet-BC)" if bottleneck else "(e.g. 40)",
    )
    return DenseNet(
        n,
        growth_rate=growth_rate,
        bottleneck=bottleneck,
        compression=compression,
        num_classes=num_classes,
        in_channels=in_channels,
    )


VGG_STAGES = {  # convolutions per stage, widths 64, 128, 256, 512, 512 (Simonyan & Zisserman)
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}


class VGG(nn.Module):
    """VGG-``depth``, a plain network (Simonyan and Zisserman, 2015) for small images: five
    stages of 3x3 conv-BN-ReLU layers (11, 13, 16 or 19 weight layers in all, as in the original),
    each followed by 2x2 max-pooling, then global pooling and one fully connected layer in place
    of the original three, as is usual for CIFAR. It is the plain baseline of He et al. (2016a),
    Fig. 3."""

    def __init__(
        self,
        depth: int = 16,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        batch_norm: bool = True,
        width_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if depth not in VGG_STAGES:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_STAGES)}; got {depth!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for convs, width in zip(VGG_STAGES[depth], (64, 128, 256, 512, 512), strict=True):
            width = max(1, round(width * width_scale))
            for _ in range(convs):
                layers.append(nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: 16x16 inputs still work
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        initialize(self, "kaiming")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.features(x)).flatten(1))


#: EfficientNet-B0's stages (Tan and Le, 2019, Table 1): (expansion t, kernel k, stride of the
#: first block, input channels, output channels, blocks). A 3x3 stride-2 stem with 32 channels
#: comes before them; a 1x1 convolution to 1280 channels, pooling and the classifier after.
EFFICIENTNET_B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

#: (width multiplier, depth multiplier, resolution, dropout) of the released EfficientNets, as in
#: the authors' code and torchvision; not exactly 1.1^phi, 1.2^phi, 1.15^phi (Chapter 12).
EFFICIENTNET_COEFFICIENTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


def scale_width(channels: int, width_mult: float, divisor: int = 8) -> int:
    """``channels * width_mult`` rounded to the nearest multiple of ``divisor`` (and never more
    than 10% below it): the rounding of the authors' code and torchvision's ``_make_divisible``."""
    scaled = channels * width_mult
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scale_depth(blocks: int, depth_mult: float) -> int:
    """``ceil(blocks * depth_mult)``: the blocks of a stage after depth scaling."""
    return math.ceil(blocks * depth_mult)


class EfficientNet(nn.Module):
    """EfficientNet (Tan and Le, 2019): a stride-2 stem, stages of
    :class:`~resnet_lib.blocks.MBConv` scaled by ``width_mult`` (channels) and ``depth_mult``
    (blocks per stage), a 1x1 head convolution, pooling, dropout and a linear classifier. Layers
    and state_dict keys (``features.*``, ``classifier.1``) are torchvision's ``efficientnet_b*``.
    Stochastic depth grows linearly from 0 at the first block towards ``stochastic_depth_prob``.
    ``resolution`` is the input size the network is scaled for; it changes no layer."""

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        resolution: int = 224,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
        residual: bool = True,
        stages: Sequence[tuple[int, int, int, int, int, int]] = EFFICIENTNET_B0,
    ) -> None:
        super().__init__()
        if width_mult <= 0 or depth_mult <= 0 or resolution <= 0:
            raise ValueError(
                f"width_mult, depth_mult and resolution must be positive, got {width_mult}, "
                f"{depth_mult}, {resolution} (B0 is 1.0, 1.0, 224)"
            )
        self.resolution = resolution
        widths = [(scale_width(s[3], width_mult), scale_width(s[4], width_mult)) for s in stages]
        layers: list[nn.Module] = [conv_bn_act(in_channels, widths[0][0], 3, stride=2)]
        total = sum(scale_depth(s[5], depth_mult) for s in stages)
        index = 0
        for (expand, kernel, stride, *_, blocks), (c_in, c_out) in zip(stages, widths, strict=True):
            stage = []
            for i in range(scale_depth(blocks, depth_mult)):
                mbconv = MBConv(
                    c_in if i == 0 else c_out,
                    c_out,
                    expand_ratio=expand,
                    kernel_size=kernel,
                    stride=stride if i == 0 else 1,
                    stochastic_depth_prob=stochastic_depth_prob * index / total,
                    residual=residual,
                )
                stage.append(mbconv)
                index += 1
            layers.append(nn.Sequential(*stage))
        head = 4 * widths[-1][1]
        layers.append(conv_bn_act(widths[-1][1], head, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout, inplace=True), nn.Linear(head, num_classes)
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def efficientnet(
    width_mult: float = 1.0, depth_mult: float = 1.0, resolution: int = 224, **kwargs
) -> EfficientNet:
    """EfficientNet with compound-scaling coefficients ``width_mult``, ``depth_mult`` and
    ``resolution``: ``efficientnet(1.0, 1.0, 224)`` is B0, and
    ``efficientnet(*EFFICIENTNET_COEFFICIENTS["b3"][:3], dropout=0.3)`` is B3. Options as
    :class:`EfficientNet`'s."""
    return EfficientNet(width_mult, depth_mult, resolution, **kwargs)
