"""Gradient-norm hooks, input gradients and the lesion study, checked against autograd, closed
forms and hand-built networks."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import resnet_lib as rl
from resnet_lib.analysis import (
    BlockGradientLog,
    block_grad_norms,
    blocks_of,
    can_lesion,
    gradient_correlation,
    input_gradients,
    lesion_study,
    weight_grad_norms,
)


def _net_and_batch(residual=True, seed=0):
    torch.manual_seed(seed)
    model = rl.cifar_resnet(14, residual=residual, widths=(4, 8, 8), in_channels=1)
    x, y = torch.randn(6, 1, 12, 12), torch.randint(0, 10, (6,))
    return model, x, y


def autograd_block_norms(model, x, y):
    """The reference: dL/dx_l at every block's output by torch.autograd.grad, per example."""
    outputs = {}
    handles = [
        b.register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o))
        for n, b in blocks_of(model)
    ]
    loss = nn.functional.cross_entropy(model(x), y)
    for h in handles:
        h.remove()
    grads = torch.autograd.grad(loss, list(outputs.values()))
    return {
        n: (g.flatten(1).norm(dim=1) * len(x)).mean().item()
        for n, g in zip(outputs, grads, strict=True)
    }


@pytest.mark.parametrize("residual", [True, False])
def test_block_grad_norms_match_autograd(residual):
    model, x, y = _net_and_batch(residual)
    expected = autograd_block_norms(model, x, y)
    measured = block_grad_norms(model, x, y)
    assert list(measured) == list(expected) == [n for n, _ in blocks_of(model)]
    for n in expected:
        assert measured[n] == pytest.approx(expected[n], rel=1e-5)
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_block_gradient_log_records_every_backward_pass_until_removed():
    model, _, _ = _net_and_batch()
    twin = copy.deepcopy(model)  # trained alongside, without the log, for the reference
    batches = [(torch.randn(5, 1, 12, 12), torch.randint(0, 10, (5,))) for _ in range(3)]
    log = BlockGradientLog(model)
    expected = []
    for net in (model, twin):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        for x, y in batches:  # three SGD steps: the profile changes from step to step
            if net is twin:
                expected.append(list(autograd_block_norms(twin, x, y).values()))
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    log.remove()
    nn.functional.cross_entropy(model(x), y).backward()  # after remove(): nothing recorded
    assert list(log.norms) == [n for n, _ in blocks_of(model)]
    assert all(len(values) == 3 for values in log.norms.values())
    for step in range(3):
        assert np.allclose(log.at(step), expected[step], rtol=1e-5)
    assert not np.allclose(log.at(0), log.at(2), rtol=1e-2)


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
    assert table.splitlines() == [
        "| name | count |",
        "|:---|---:|",
        "| a | 1,234,567 |",
        "| b | 2 |",
    ]


def test_lesioned_preactivation_transition_block_is_its_shortcut_as_the_block_computes_it():
    """A pre-activation block projects ReLU(BN(x)), not x: a deleted block must do the same.
    The reference needs no knowledge of the shortcut: with its last convolution zeroed, the
    residual branch is 0 and the block's output *is* its shortcut."""
    torch.manual_seed(0)
    model = rl.preact_resnet(14, widths=(4, 8, 8), in_channels=1).eval()
    x = torch.randn(6, 1, 12, 12)
    with torch.no_grad():  # BN statistics that are not 0 and 1, so that ReLU(BN(x)) != x
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    name, block = next((n, b) for n, b in blocks_of(model) if b.downsample is not None)
    reference = copy.deepcopy(model)
    nn.init.zeros_(reference.get_submodule(name).conv2.weight)
    results = dict(lesion_study(model, lambda m: m(x)))
    with torch.no_grad():
        assert torch.allclose(results[name], reference(x), atol=1e-5)
        assert not torch.allclose(results[name], model(x), atol=1e-3)
        # the bug this guards against: the projection applied to the raw input
        raw = copy.deepcopy(model)
        raw.get_submodule(name).bn1 = nn.Identity()
        nn.init.zeros_(raw.get_submodule(name).conv2.weight)
        assert not torch.allclose(results[name], raw(x), atol=1e-3)


def test_input_gradients_are_each_examples_own_gradient():
    model, x, y = _net_and_batch()
    model.eval()  # in eval mode the examples of a batch do not interact
    grads = input_gradients(model, x, y)
    for i in range(len(x)):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(nn.functional.cross_entropy(model(xi), y[i : i + 1]), xi)
        assert torch.allclose(grads[i : i + 1], expected, rtol=1e-4, atol=1e-7)


def test_gradient_correlation_of_a_linear_classifier_matches_the_closed_form():
    """Softmax regression: dL/dx = W^T (softmax(W x + b) - onehot(y)), computed with numpy."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).double()
    x, y = torch.randn(7, 3, 4, dtype=torch.float64), torch.randint(0, 4, (7,))
    u = torch.randn(7, 3, 4, dtype=torch.float64)
    w, b = (p.detach().numpy() for p in model[1].parameters())

    def grad(inputs):
        logits = inputs.reshape(7, 12) @ w.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return (p - np.eye(4)[y.numpy()]) @ w

    xn, un = x.numpy(), u.numpy().reshape(7, 12)
    un = un / np.linalg.norm(un, axis=1, keepdims=True)
    distances = [0.0, 0.1, 1.0, 10.0]
    measured = gradient_correlation(model, x, y, distances, directions=u)
    for d in distances:
        moved = xn.reshape(7, 12) + d * np.linalg.norm(xn.reshape(7, 12), axis=1)[:, None] * un
        g0, g1 = grad(xn), grad(moved)
        cosine = (g0 * g1).sum(1) / np.linalg.norm(g0, axis=1) / np.linalg.norm(g1, axis=1)
        assert measured[d] == pytest.approx(cosine.mean(), rel=1e-9)
    assert measured[0.0] == pytest.approx(1.0) and measured[10.0] < 0.99
    # random directions: reproducible from the seed, different for another seed
    again = gradient_correlation(model, x, y, [1.0], seed=3)
    assert again == gradient_correlation(model, x, y, [1.0], seed=3)
    assert again != gradient_correlation(model, x, y, [1.0], seed=4)
