"""Chapter 10's tools: BN folding, int8 quantisation, magnitude pruning, checkpointing and the
peak memory of a training step (resnet_lib.efficiency)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resnet_lib as rl
from resnet_lib import efficiency as eff

SMALL = dict(widths=(8, 16, 32), in_channels=1)


def trained_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics, scales and shifts."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 16, 16) * 2 + 0.3)
    return model.eval()


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_folding_equal_outputs_and_removes_every_bn(shortcut):
    model = trained_statistics(rl.cifar_resnet(20, shortcut=shortcut, **SMALL))
    folded = eff.fold_batchnorm(model)
    x = torch.randn(8, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is kept
    assert model.bn1.weight.data_ptr() != folded.conv1.weight.data_ptr()


def test_folding_matches_the_formula_on_one_layer():
    conv, bn = nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        bn.weight.copy_(torch.tensor([2.0, 1.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, 3.0]))
    folded = eff.fold_batchnorm(nn.Sequential(conv, bn))
    s = torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded[0].weight, conv.weight * (bn.weight / s).view(-1, 1, 1, 1))
    torch.testing.assert_close(folded[0].bias, bn.bias - bn.weight * bn.running_mean / s)
    assert isinstance(folded[1], nn.Identity)


def test_folding_leaves_a_bn_that_does_not_follow_a_convolution():
    model = trained_statistics(rl.preact_resnet(20, **SMALL))  # BN-ReLU-conv: BN comes first
    folded = eff.fold_batchnorm(model)
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_quantized_model_is_int8_and_agrees_with_the_float_model():
    model = trained_statistics(rl.cifar_resnet(20, **SMALL))
    torch.manual_seed(1)
    calibration = [torch.randn(32, 1, 16, 16) * 2 + 0.3 for _ in range(4)]
    quantized = eff.quantize_int8(model, calibration)
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert any(k.startswith("torch.ao.nn.quantized") for k in kinds)
    x = torch.randn(256, 1, 16, 16) * 2 + 0.3
    with torch.no_grad():
        ref, out = model(x), quantized(x)
    assert (ref - out).norm() / ref.norm() < 0.1  # int8 rounding, not a different network
    assert (ref.argmax(1) == out.argmax(1)).float().mean() > 0.85
    assert eff.serialized_bytes(quantized) < eff.serialized_bytes(model) / 2.5


def test_quantize_rejects_no_calibration_and_unknown_backends():
    model = rl.cifar_resnet(20, **SMALL).eval()
    with pytest.raises(ValueError, match="calibration"):
        eff.quantize_int8(model, [])
    with pytest.raises(ValueError, match="backend"):
        eff.quantize_int8(model, [torch.zeros(2, 1, 16, 16)], backend="tpu")


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_pruning_zeroes_exactly_the_smallest_weights(amount):
    model = rl.cifar_resnet(20, **SMALL)
    pruned = eff.prune_magnitude(model, amount)
    total = eff.conv_weights(model)
    assert eff.conv_sparsity(pruned) == round(amount * total) / total
    before = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    after = torch.cat([m.weight.flatten() for m in pruned.modules() if isinstance(m, nn.Conv2d)])
    kept = after != 0
    torch.testing.assert_close(after[kept], before[kept])  # survivors unchanged
    if 0 < kept.sum() < total:  # every survivor at least as large as every pruned weight
        assert before[kept].abs().min() >= before[~kept].abs().max()
    assert eff.conv_sparsity(model) == 0  # the original is untouched
    assert not any(name.endswith("_orig") for name, _ in pruned.named_parameters())


@pytest.mark.parametrize("amount", [-0.1, 1.5])
def test_pruning_rejects_amounts_outside_0_1(amount):
    with pytest.raises(ValueError, match="amount"):
        eff.prune_magnitude(rl.cifar_resnet(20, **SMALL), amount)


@pytest.mark.parametrize("segments", [1, 3, 4, 9])
def test_checkpointing_gives_equal_gradients_and_uses_less_memory(segments):
    torch.manual_seed(0)
    model = rl.cifar_resnet(20, **SMALL).train()
    x = torch.randn(32, 1, 16, 16)

    def grads(net: nn.Module) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads(model)
    wrapped = eff.checkpointed(model, segments)
    assert sum(len(g) for g in wrapped.groups) == 9
    for a, b in zip(plain, grads(wrapped), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    model.zero_grad(set_to_none=True)
    full = eff.peak_training_bytes(model, x)
    model.zero_grad(set_to_none=True)
    peak = eff.peak_training_bytes(wrapped, x)
    # one segment keeps only its input, but the backward pass recomputes all of it at once
    assert peak < full if segments > 1 else peak <= full * 1.05


def test_checkpointing_rejects_bad_segments():
    model = rl.cifar_resnet(20, **SMALL)
    for bad in (0, 10, 2.5):
        with pytest.raises(ValueError, match="segments"):
            eff.checkpointed(model, bad)


def test_peak_training_bytes_counts_what_autograd_saves():
    model = rl.cifar_resnet(20, **SMALL).train()
    x = torch.randn(16, 1, 16, 16)
    saved = eff.saved_activation_bytes(model, x)
    peak = eff.peak_training_bytes(model, x)
    assert saved <= peak < 2 * saved
    deeper = eff.peak_training_bytes(rl.cifar_resnet(56, **SMALL).train(), x)
    assert 2 * peak < deeper  # 27 blocks against 9


def test_peak_training_bytes_of_one_linear_layer():
    layer = nn.Linear(1000, 1000, bias=False)  # 4 MB of weight, not counted: it exists before
    x = torch.randn(100, 1000, requires_grad=False)
    peak = eff.peak_training_bytes(layer, x)
    # output (400 kB), its sum, the loss's gradient expanded, and the weight's gradient (4 MB)
    assert 4_000_000 <= peak <= 4_000_000 + 3 * 400_000 + 64


def test_paired_speedups_times_every_model_once_per_round_in_rotating_order():
    calls: list[str] = []

    class Named(nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(self.name)
            return x

    models = {name: Named(name) for name in "abc"}
    ratios = eff.paired_speedups(models, torch.zeros(1), rounds=4)
    assert calls[:3] == list("abc")  # one untimed pass each
    rounds = [calls[3 + 3 * r : 6 + 3 * r] for r in range(4)]
    assert rounds == [list("abc"), list("bca"), list("cab"), list("abc")]
    assert ratios["a"] == [1.0] * 4  # the reference against itself
    assert all(len(r) == 4 and min(r) > 0 for r in ratios.values())
    with pytest.raises(ValueError):
        eff.paired_speedups({}, torch.zeros(1))
