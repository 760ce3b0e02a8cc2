"""Chapter 8's library pieces: Fixup, branch scaling, the learning-rate range test, He et al.'s
low-rate warm-up, and the scale of the residual stream at initialisation."""

import dataclasses
import functools
import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import resnet_lib as rl
from resnet_lib.blocks import FixupBasicBlock
from resnet_lib.init import fixup, initialized, scale_residual_branches


def test_fixup_scaling_follows_the_rules():
    torch.manual_seed(0)
    he = rl.cifar_resnet(20, block=FixupBasicBlock, norm_layer=nn.Identity, widths=(8, 16, 32))
    torch.manual_seed(0)
    model = rl.models.fixup_resnet(20, widths=(8, 16, 32))
    blocks = [m for m in model.modules() if isinstance(m, FixupBasicBlock)]
    assert len(blocks) == 9  # L = 3 stages x 3 blocks
    factor = 9 ** (-1 / (2 * 2 - 2))  # L^(-1/(2m-2)), m = 2 layers per branch
    assert factor == pytest.approx(1 / 3)
    for block, ref in zip(
        blocks, [m for m in he.modules() if isinstance(m, FixupBasicBlock)], strict=True
    ):
        torch.testing.assert_close(block.conv1.weight, ref.conv1.weight * factor)  # rule 2
        assert not block.conv2.weight.any()  # rule 1: the branch's last layer
        assert block.scale.item() == 1 and not any(
            b.item() for b in (block.bias1a, block.bias1b, block.bias2a, block.bias2b)
        )  # rule 3
    assert not model.fc.weight.any() and not model.fc.bias.any()  # rule 1: the classifier
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model.conv1.weight, he.conv1.weight)  # the stem: He only


def test_fixup_block_starts_as_the_identity_and_learns():
    model = rl.models.fixup_resnet(20, widths=(8, 16, 32), in_channels=1)
    block = model.layer1[1]
    x = torch.rand(2, 8, 6, 6)
    torch.testing.assert_close(block(x), x)  # relu(x + 0) for x >= 0
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    nn.functional.cross_entropy(model(x), y).backward()
    assert model.fc.weight.grad.abs().sum() > 0  # the zero classifier still gets a gradient


def test_fixup_needs_fixup_blocks():
    with pytest.raises(ValueError, match="FixupBasicBlock"):
        fixup(rl.cifar_resnet(20))


def test_scale_residual_branches_scales_only_the_branch_end():
    torch.manual_seed(0)
    model = rl.cifar_resnet(20, widths=(8, 16, 32))
    before = {name: p.clone() for name, p in model.named_parameters()}
    scale_residual_branches(model, 0.25)
    for name, p in model.named_parameters():
        expected = before[name] * 0.25 if name.endswith("bn2.weight") else before[name]
        torch.testing.assert_close(p, expected, msg=name)
    plain = rl.cifar_resnet(20, residual=False)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    scale_residual_branches(plain, 0.0)  # plain blocks have no branch to scale
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in state.items())


def test_initialized_is_picklable_and_applies_the_scheme():
    build = functools.partial(
        initialized, functools.partial(rl.cifar_resnet, 20, widths=(8, 16, 32)), "xavier"
    )
    model = pickle.loads(pickle.dumps(build))()
    weight = model.layer2[0].conv1.weight
    fan_in, fan_out = weight[0].numel(), weight.shape[0] * weight[0, 0].numel()
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


def _regression(scale: float = 1.0):
    torch.manual_seed(0)
    n = 256
    x = torch.randn(n, 2) * torch.tensor([1.0, 0.3]) * scale
    y = x @ torch.tensor([[1.0], [-2.0]]) + 0.1 * torch.randn(n, 1)
    lambda_max = torch.linalg.eigvalsh(2 * x.T @ x / n).max().item()  # Hessian of the MSE
    return TensorDataset(x, y), lambda_max


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_range_test_finds_the_stability_limit_of_gradient_descent(scale):
    data, lambda_max = _regression(scale)
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    rates, losses = rl.train.lr_range_test(
        model,
        data,
        lr_min=1e-3,
        lr_max=100.0,
        steps=200,
        batch_size=len(data),  # full batch: plain gradient descent
        momentum=0.0,
        loss_fn=nn.functional.mse_loss,
        device="cpu",
    )
    limit = 2 / lambda_max  # gradient descent on a quadratic diverges above 2 / lambda_max
    assert np.all(np.diff(rates) > 0) and rates[0] == pytest.approx(1e-3)
    below = rates < limit
    assert np.all(np.diff(losses[below]) <= 0)  # below the limit every step lowers the loss
    first_rise = rates[1:][np.diff(losses) > 0][0]
    assert limit < first_rise < 3 * limit  # later than the limit: e_1 must grow back first
    assert len(rates) < 200 and limit < rates[-1] < 4 * limit  # stopped once the loss exploded


def test_range_test_runs_through_epochs():
    data, _ = _regression()
    rates, losses = rl.train.lr_range_test(
        nn.Linear(2, 1),
        data,
        lr_min=1e-4,
        lr_max=1e-3,
        steps=10,
        batch_size=64,  # 4 batches per epoch: 10 steps need 3 passes
        loss_fn=nn.functional.mse_loss,
        device="cpu",
    )
    assert len(rates) == len(losses) == 10 and rates[-1] == pytest.approx(1e-3)


def _digits_like(n: int = 256, classes: int = 4):
    torch.manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, 8, 8) * 0.5 + y.view(-1, 1, 1, 1).float()
    return TensorDataset(x, y)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 4))


@pytest.mark.parametrize("threshold", [0.0, 2.0])
def test_low_lr_warmup_never_or_once(threshold):
    data = _digits_like()
    base = rl.TrainConfig(
        epochs=2, batch_size=32, lr=0.5, schedule="constant", warmup_steps=0, eval_train=False
    )
    warm = dataclasses.replace(base, low_lr=0.01, low_lr_until_error=threshold)
    history = rl.train.fit(_tiny(), data, config=warm, device="cpu", progress=False)
    if threshold == 0.0:  # an error below 0 never comes: the whole run at the low rate
        assert history.low_lr_steps == history.steps == 16
        reference = dataclasses.replace(base, lr=0.01)
    else:  # any error is below 2: the first step at the low rate, then the schedule
        assert history.low_lr_steps == 1
        reference = None
    model = _tiny()
    rl.train.fit(model, data, config=warm, device="cpu", progress=False)
    if reference is not None:
        same = _tiny()
        rl.train.fit(same, data, config=reference, device="cpu", progress=False)
        for a, b in zip(model.parameters(), same.parameters(), strict=True):
            torch.testing.assert_close(a, b)


def test_low_lr_warmup_returns_when_the_running_error_drops():
    data = _digits_like()
    config = rl.TrainConfig(
        epochs=3,
        batch_size=32,
        lr=0.5,
        schedule="constant",
        warmup_steps=0,
        eval_train=False,
        low_lr=0.05,
        low_lr_until_error=0.5,
    )
    model = _tiny()
    logits = []
    model.register_forward_hook(lambda module, inputs, output: logits.append(output.detach()))
    history = rl.train.fit(model, data, config=config, device="cpu", progress=False)
    # the same batches as the trainer's: its loader shuffles with a generator seeded by the seed
    loader = torch.utils.data.DataLoader(
        data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    labels = [y for _ in range(config.epochs) for _, y in loader]
    # replay the rule on the logits the trainer saw: the mean error of the last 10 batches
    seen = [(o.argmax(1) != y).float().mean().item() for o, y in zip(logits, labels, strict=True)]
    expected = next(
        i + 1
        for i in range(len(seen))
        if np.mean(seen[max(0, i + 1 - rl.train.LOW_LR_WINDOW) : i + 1]) < 0.5
    )
    assert 1 < history.low_lr_steps == expected < history.steps


def test_stream_rms_grows_as_the_theory_says():
    """x_{l+1} = x_l + alpha F(x_l) with pre-activation branches: without normalisation and He
    init the mean square doubles per block; alpha = 1/sqrt(L) keeps it below e times the input's;
    with BN in the branch it grows by about one per block."""
    torch.manual_seed(0)
    depth, width = 16, 64
    x = torch.randn(64, width, 8, 8)

    def stack(norm, alpha):
        blocks = nn.Sequential(
            *[rl.PreActBasicBlock(width, width, norm_layer=norm) for _ in range(depth)]
        )
        rl.initialize(blocks, "kaiming")
        return scale_residual_branches(blocks, alpha)

    no_bn = rl.analysis.stream_rms(stack(nn.Identity, 1.0), x) ** 2
    ratios = no_bn[1:] / no_bn[:-1]
    assert 1.6 < np.median(ratios) < 2.4
    scaled = rl.analysis.stream_rms(stack(nn.Identity, depth**-0.5), x) ** 2
    assert scaled[-1] / scaled[0] < math.e
    bn = rl.analysis.stream_rms(stack(nn.BatchNorm2d, 1.0), x) ** 2
    steps = np.diff(bn) / bn[0]
    assert np.all(0.5 < steps) and np.all(steps < 1.5)
