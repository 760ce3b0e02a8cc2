"""resnet_lib: the code behind "Residual Networks, an interactive textbook".

Each idea lives once, in a small module named after its topic; the chapters show this code
rather than copying it. Use it as ``import resnet_lib as rl``.

``__all__`` holds what is exported here: the topic modules, each an attribute of the package
(``rl.paths.path_sums``, ``rl.data.for_profile``): analysis, blocks, data, domains, efficiency,
figures, identity, init, models, modern, notebook, paths, plotting, profiles, theory, train; and, from
these modules, the names the chapters use most (``rl.cifar_resnet(20, residual=False)``):

- blocks: conv3x3, conv1x1, ShortcutA, projection, make_shortcut, BasicBlock, Bottleneck,
  SEBasicBlock, SEBottleneck, PreActBasicBlock, PreActBottleneck, HighwayLayer, DenseLayer,
  DenseBlock, Transition, FixupBasicBlock, MBConv
- models: ResNet, resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d,
  wide_resnet50_2, se_resnet50, CifarResNet, cifar_resnet, se_resnet, cifar_resnext,
  PreActResNet, preact_resnet, wide_resnet, HighwayNetwork, DenseNet, cifar_densenet, VGG,
  fixup_resnet, EfficientNet, efficientnet
- init: initialize, zero_init_last, fixup
- efficiency: count_parameters, conv_weights, multiply_adds
- analysis: ShapeRow, trace_shapes
- data: DataSplits, DatasetNotFoundError
- profiles: PROFILES, Profile, Setup, setup, get_profile, pick_device, seed_everything
- train: TrainConfig, History, fit, compare, config_for, lr_range_test
- plotting: plot_curves
- notebook: Numbers, glue, show_source, show_table, markdown_table

The exercises' grader is its own package, ``exercise_grader`` (the exercise notebooks import
``from exercise_grader import uses_answer``); ``resnet_lib.grading`` only forwards to it.
"""

from . import (
    analysis,
    blocks,
    data,
    domains,
    efficiency,
    identity,
    init,
    models,
    modern,
    notebook,
    paths,
    profiles,
    theory,
)
from .analysis import ShapeRow, trace_shapes
from .blocks import (
    BasicBlock,
    Bottleneck,
    DenseBlock,
    DenseLayer,
    FixupBasicBlock,
    HighwayLayer,
    MBConv,
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
from .init import fixup, initialize, zero_init_last
from .models import (
    VGG,
    CifarResNet,
    DenseNet,
    EfficientNet,
    HighwayNetwork,
    PreActResNet,
    ResNet,
    cifar_densenet,
    cifar_resnet,
    cifar_resnext,
    efficientnet,
    fixup_resnet,
    preact_resnet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    se_resnet,
    se_resnet50,
    wide_resnet,
    wide_resnet50_2,
)
from .notebook import Numbers, glue, markdown_table, show_source, show_table
from .profiles import PROFILES, Profile, Setup, get_profile, pick_device, seed_everything, setup

__version__ = "0.1.0"

__all__ = [
    # topic modules
    "analysis",
    "blocks",
    "data",
    "domains",
    "efficiency",
    "figures",
    "identity",
    "init",
    "models",
    "modern",
    "notebook",
    "paths",
    "plotting",
    "profiles",
    "theory",
    "train",
    # blocks
    "conv3x3",
    "conv1x1",
    "ShortcutA",
    "projection",
    "make_shortcut",
    "BasicBlock",
    "Bottleneck",
    "SEBasicBlock",
    "SEBottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "HighwayLayer",
    "DenseLayer",
    "DenseBlock",
    "Transition",
    "FixupBasicBlock",
    "MBConv",
    # models
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "se_resnet50",
    "CifarResNet",
    "cifar_resnet",
    "se_resnet",
    "cifar_resnext",
    "PreActResNet",
    "preact_resnet",
    "wide_resnet",
    "HighwayNetwork",
    "DenseNet",
    "cifar_densenet",
    "VGG",
    "fixup_resnet",
    "EfficientNet",
    "efficientnet",
    # init
    "initialize",
    "zero_init_last",
    "fixup",
    # efficiency
    "count_parameters",
    "conv_weights",
    "multiply_adds",
    # analysis
    "ShapeRow",
    "trace_shapes",
    # data
    "DataSplits",
    "DatasetNotFoundError",
    # profiles
    "PROFILES",
    "Profile",
    "Setup",
    "setup",
    "get_profile",
    "pick_device",
    "seed_everything",
    # train
    "TrainConfig",
    "History",
    "fit",
    "compare",
    "config_for",
    "lr_range_test",
    # plotting
    "plot_curves",
    # notebook
    "Numbers",
    "glue",
    "show_source",
    "show_table",
    "markdown_table",
]

# These load on first use (PEP 562), so that ``rl.figures``, ``rl.plot_curves``, ``rl.fit`` ...
# work as if imported above. The drawing modules import matplotlib (half a second), which a
# training worker process or a test that only builds networks does not need. ``train`` is lazy so
# that ``python -m resnet_lib.train`` (and torchrun's ``-m resnet_lib.train``) runs the module
# once, as ``__main__``, without runpy's "found in sys.modules" warning: importing the package
# first must not import that module.
_LAZY = {
    "figures": None,
    "plotting": None,
    "plot_curves": "plotting",
    "train": None,
    **dict.fromkeys(
        ("History", "TrainConfig", "compare", "config_for", "fit", "lr_range_test"), "train"
    ),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
