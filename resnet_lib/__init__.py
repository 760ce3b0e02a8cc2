"""resnet_lib: the code behind "Residual Networks, an interactive textbook".

Each idea lives once, in a small module named after its topic; the chapters show this code
rather than copying it. Everything public is importable from here, e.g. ``resnet_lib.resnet50``.
"""

from .analysis import ShapeRow, trace_shapes
from .blocks import (
    BasicBlock,
    Bottleneck,
    DenseBlock,
    DenseLayer,
    HighwayLayer,
    PreActBasicBlock,
    PreActBottleneck,
    SEBasicBlock,
    SEBottleneck,
    ShortcutA,
    Transition,
    conv1x1,
    conv3x3,
    make_shortcut,
    projection,
)
from .data import DatasetNotFoundError, DataSplits
from .efficiency import conv_weights, count_parameters, multiply_adds
from .grading import uses_answer
from .init import initialize, zero_init_last
from .models import (
    VGG,
    CifarResNet,
    DenseNet,
    HighwayNetwork,
    PreActResNet,
    ResNet,
    cifar_densenet,
    cifar_resnet,
    cifar_resnext,
    preact_resnet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    se_resnet,
    se_resnet50,
    vgg,
    wide_resnet,
    wide_resnet50_2,
)
from .notebook import Numbers, glue, markdown_table, show_source, show_table
from .plotting import plot_curves
from .profiles import PROFILES, Profile, Setup, get_profile, pick_device, seed_everything, setup
from .train import History, TrainConfig, compare, config_for, fit

__version__ = "0.1.0"

__all__ = [
    "uses_answer",
    "ShapeRow",
    "trace_shapes",
    "BasicBlock",
    "Bottleneck",
    "DenseBlock",
    "DenseLayer",
    "HighwayLayer",
    "PreActBasicBlock",
    "PreActBottleneck",
    "SEBasicBlock",
    "SEBottleneck",
    "ShortcutA",
    "Transition",
    "conv1x1",
    "conv3x3",
    "make_shortcut",
    "projection",
    "DataSplits",
    "DatasetNotFoundError",
    "conv_weights",
    "count_parameters",
    "multiply_adds",
    "initialize",
    "zero_init_last",
    "VGG",
    "CifarResNet",
    "DenseNet",
    "HighwayNetwork",
    "PreActResNet",
    "ResNet",
    "cifar_densenet",
    "cifar_resnet",
    "cifar_resnext",
    "preact_resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "se_resnet",
    "se_resnet50",
    "vgg",
    "wide_resnet",
    "wide_resnet50_2",
    "Numbers",
    "glue",
    "markdown_table",
    "show_source",
    "show_table",
    "plot_curves",
    "PROFILES",
    "Profile",
    "Setup",
    "get_profile",
    "pick_device",
    "seed_everything",
    "setup",
    "History",
    "TrainConfig",
    "compare",
    "config_for",
    "fit",
]
