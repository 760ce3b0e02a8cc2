"""count_parameters, trace_shapes and profiles.setup."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from torch import nn

import resnet_lib as rl

ENV = "RESNET_BOOK_PROFILE"


# ---------------------------------------------------------------- count_parameters


@pytest.mark.parametrize(
    "factory,expected",
    [
        (lambda: rl.cifar_resnet(20), 269_722),  # He et al. (2016a), Table 6: 0.27M
        (lambda: rl.resnet18(), 11_689_512),  # torchvision's documented count
        (lambda: nn.Linear(3, 4), 3 * 4 + 4),
        (lambda: nn.Conv2d(3, 8, 3, bias=False), 8 * 3 * 9),
        (lambda: nn.BatchNorm2d(5), 2 * 5),  # running statistics are buffers, not parameters
        (lambda: nn.ReLU(), 0),
    ],
)
def test_count_parameters_against_known_counts(factory, expected):
    assert rl.count_parameters(factory()) == expected


def test_conv_weights_counts_convolutions_only():
    # ResNet-20 (option A): 19 3x3 convolutions; no BN, biases or fc
    convs = 9 * (3 * 16 + 16 * 16 * 6 + 16 * 32 + 32 * 32 * 5 + 32 * 64 + 64 * 64 * 5)
    assert rl.conv_weights(rl.cifar_resnet(20)) == convs
    assert rl.conv_weights(rl.cifar_resnet(20)) == 269_722 - 650 - 2 * (16 * 7 + 32 * 6 + 64 * 6)


def test_count_parameters_counts_shared_weights_once():
    lin = nn.Linear(5, 5)
    assert rl.count_parameters(nn.Sequential(lin, lin)) == 30


# ---------------------------------------------------------------- trace_shapes


def as_tuple(row) -> tuple:
    """Rows are (name, module type, output shape, parameter count), as a tuple or dataclass."""
    return dataclasses.astuple(row) if dataclasses.is_dataclass(row) else tuple(row)


def test_trace_shapes_resnet50():
    torch.manual_seed(0)
    model = rl.resnet50()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = [as_tuple(r) for r in rl.trace_shapes(model, torch.randn(1, 3, 224, 224))]
    names = [r[0] for r in rows]
    assert names == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]
    shapes = {r[0]: tuple(r[2]) for r in rows}
    assert shapes["conv1"] == (1, 64, 112, 112)
    assert shapes["maxpool"] == (1, 64, 56, 56)
    assert shapes["layer1"] == (1, 256, 56, 56)
    assert shapes["layer2"] == (1, 512, 28, 28)
    assert shapes["layer3"] == (1, 1024, 14, 14)
    assert shapes["layer4"] == (1, 2048, 7, 7)
    assert shapes["fc"] == (1, 1000)
    params = {r[0]: r[3] for r in rows}
    assert params["fc"] == 2048 * 1000 + 1000
    assert params["layer1"] == sum(p.numel() for p in model.layer1.parameters())
    assert sum(params.values()) == 25_557_032
    assert "Bottleneck" in str(rows[4][1]) or "Sequential" in str(rows[4][1])
    # tracing is read-only: BN running statistics and the training flag are unchanged
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_trace_shapes_depth_2():
    torch.manual_seed(0)
    rows = [
        as_tuple(r)
        for r in rl.trace_shapes(rl.cifar_resnet(20), torch.randn(2, 3, 32, 32), depth=2)
    ]
    shapes = {r[0]: tuple(r[2]) for r in rows}
    assert shapes["layer1.0"] == (2, 16, 32, 32)
    assert shapes["layer2.0"] == (2, 32, 16, 16)
    assert shapes["layer3.2"] == (2, 64, 8, 8)
    assert "fc" not in shapes and "layer1" not in shapes


# ---------------------------------------------------------------- profiles.setup


def profile_name(s) -> str:
    return s.profile if isinstance(s.profile, str) else s.profile.name


@pytest.mark.parametrize(
    "value,dataset", [("quick", "digits"), ("gpu", "cifar"), ("full", "cifar")]
)
def test_setup_reads_env(monkeypatch, capsys, value, dataset):
    monkeypatch.setenv(ENV, value)
    s = rl.setup(seed=0)
    assert profile_name(s) == value
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    line = lines[0].lower()
    for word in ("profile", value, "device", str(s.device).lower(), "dataset", dataset):
        assert word in line, (word, line)


def test_setup_result_has_dataset_field(monkeypatch):
    # spec: setup(...) -> Setup(profile, device, dataset)
    monkeypatch.setenv(ENV, "quick")
    s = rl.setup()
    assert "digits" in str(s.dataset).lower()
    assert isinstance(s.device, torch.device | str)


def test_setup_profile_argument_overrides_env(monkeypatch):
    monkeypatch.setenv(ENV, "full")
    assert profile_name(rl.setup(profile="quick")) == "quick"


@pytest.mark.parametrize("cuda,expected", [(False, "quick"), (True, "gpu")])
def test_setup_default_depends_on_cuda(monkeypatch, cuda, expected):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert profile_name(rl.setup()) == expected


@pytest.mark.parametrize("bad", ["medium", "QUICK ", "fast"])
def test_setup_rejects_unknown_profile(monkeypatch, bad):
    monkeypatch.setenv(ENV, bad)
    with pytest.raises(ValueError) as err:
        rl.setup()
    assert all(name in str(err.value) for name in ("quick", "gpu", "full"))
    monkeypatch.delenv(ENV)
    with pytest.raises(ValueError, match="quick"):
        rl.setup(profile=bad)


def test_setup_seeds_everything(monkeypatch):
    monkeypatch.setenv(ENV, "quick")

    def draw():
        return torch.randn(5), np.random.rand(5), random.random()

    rl.setup(seed=42)
    a = draw()
    rl.setup(seed=42)
    b = draw()
    rl.setup(seed=43)
    c = draw()
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not torch.equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_multiply_adds_matches_closed_forms():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert rl.multiply_adds(conv, (1, 3, 16, 16)) == 8 * 3 * 9 * 16 * 16
    assert rl.multiply_adds(conv, (2, 3, 16, 16)) == 2 * 8 * 3 * 9 * 16 * 16
    strided = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False)
    assert rl.multiply_adds(strided, (1, 4, 8, 8)) == 4 * 4 * 9 * 4 * 4
    # a whole network: each conv weight once per output pixel, plus the classifier's matrix
    model = rl.cifar_resnet(20, widths=(4, 8, 8), in_channels=1).train()
    expected = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o: expected.append(m.weight.numel() * o.shape[-1] * o.shape[-2])
        )
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    model.eval()(torch.zeros(1, 1, 8, 8))
    for h in hooks:
        h.remove()
    model.train()
    assert rl.multiply_adds(model, (1, 1, 8, 8)) == sum(expected) + 8 * 10
    assert model.training  # mode restored


def test_saved_activation_bytes_counts_what_backward_keeps():
    from resnet_lib.efficiency import saved_activation_bytes

    x = torch.randn(4, 10)
    # a linear layer without bias saves its input (its weight is a parameter, not counted)
    assert saved_activation_bytes(nn.Linear(10, 5, bias=False), x) == 4 * 10 * 4
    # a ReLU after it saves its output (4 x 5 floats), the linear layer its input
    net = nn.Sequential(nn.Linear(10, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False))
    # the second linear layer saves the ReLU's output: the same storage, counted once
    assert saved_activation_bytes(net, x) == (4 * 10 + 4 * 5) * 4
    # twice the batch, twice the activations
    assert saved_activation_bytes(net, torch.randn(8, 10)) == 2 * saved_activation_bytes(net, x)


def test_saved_activation_bytes_grows_with_depth_not_with_width_of_weights():
    from resnet_lib.efficiency import saved_activation_bytes

    x = torch.randn(2, 1, 16, 16)
    small = saved_activation_bytes(rl.cifar_resnet(20, in_channels=1, widths=(8, 16, 32)), x)
    deep = saved_activation_bytes(rl.cifar_resnet(56, in_channels=1, widths=(8, 16, 32)), x)
    assert 2.3 < deep / small < 3.2  # 27 blocks against 9, plus the same stem and head
