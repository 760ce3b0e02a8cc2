"""Gradient-norm hooks and the lesion study, checked against autograd and hand-built networks."""

import pytest
import torch
from torch import nn

import resnet_lib as rl
from resnet_lib.analysis import (
    block_grad_norms,
    blocks_of,
    can_lesion,
    lesion_study,
    weight_grad_norms,
)


def _net_and_batch(residual=True, seed=0):
    torch.manual_seed(seed)
    model = rl.cifar_resnet(14, residual=residual, widths=(4, 8, 8), in_channels=1)
    x, y = torch.randn(6, 1, 12, 12), torch.randint(0, 10, (6,))
    return model, x, y


@pytest.mark.parametrize("residual", [True, False])
def test_block_grad_norms_match_autograd(residual):
    model, x, y = _net_and_batch(residual)
    outputs = {}
    handles = [b.register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o))
               for n, b in blocks_of(model)]
    loss = nn.functional.cross_entropy(model(x), y)
    for h in handles:
        h.remove()
    names = list(outputs)
    grads = torch.autograd.grad(loss, [outputs[n] for n in names])
    expected = {n: (g.flatten(1).norm(dim=1) * len(x)).mean().item()
                for n, g in zip(names, grads, strict=True)}
    measured = block_grad_norms(model, x, y)
    assert list(measured) == names == [n for n, _ in blocks_of(model)]
    for n in names:
        assert measured[n] == pytest.approx(expected[n], rel=1e-5)
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_weight_grad_norms_match_autograd():
    model, x, y = _net_and_batch()
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, [m.weight for _, m in convs])
    measured = weight_grad_norms(model, x, y)
    assert list(measured) == [n for n, _ in convs]
    for (n, _), g in zip(convs, grads, strict=True):
        assert measured[n] == pytest.approx(g.norm().item(), rel=1e-5)


def test_lesion_of_a_residual_block_keeps_only_its_shortcut():
    model, x, _ = _net_and_batch()
    model.eval()
    results = dict(lesion_study(model, lambda m: m(x)))
    assert list(results) == [n for n, _ in blocks_of(model)]  # every residual block
    # by hand: the network with layer2.0 replaced by its (option A) shortcut
    with torch.no_grad():
        h = model.layer1(model.relu(model.bn1(model.conv1(x))))
        h = model.layer2[0].downsample(h)
        h = model.layer3(model.layer2[1:](h))
        expected = model.fc(model.avgpool(h).flatten(1))
        assert torch.allclose(results["layer2.0"], expected, atol=1e-6)
        assert not torch.allclose(results["layer2.0"], model(x))
        assert torch.equal(model(x), model(x))  # the model is restored
    assert isinstance(model.layer2[0], rl.BasicBlock)


def test_plain_network_lesions_skip_blocks_that_change_shape():
    model, x, _ = _net_and_batch(residual=False)
    names = [n for n, _ in lesion_study(model.eval(), lambda m: m(x))]
    assert "layer2.0" not in names and "layer3.0" not in names
    assert len(names) == len(blocks_of(model)) - 2
    assert not can_lesion(model.layer2[0]) and can_lesion(model.layer2[1])


def test_markdown_table():
    table = rl.markdown_table(["name", "count"], [["a", 1234567], ["b", 2]])
    assert table.splitlines() == ["| name | count |", "|:---|---:|", "| a | 1,234,567 |",
                                  "| b | 2 |"]
