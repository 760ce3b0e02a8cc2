"""Chapter 11's library, resnet_lib.domains: transformer blocks against PyTorch's own
TransformerEncoderLayer, the recurrent and graph networks against their formulas written out,
the toy tasks' labels, and the gradient measurement on cases with a known answer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lib import domains as dom
from resnet_lib import train as rl_train

DIM, HEADS = 16, 2


def _encoder_layer_like(
    block: dom.TransformerBlock, norm_first: bool
) -> nn.TransformerEncoderLayer:
    """PyTorch's TransformerEncoderLayer with ``block``'s weights: an independent reference."""
    ref = nn.TransformerEncoderLayer(
        DIM,
        HEADS,
        dim_feedforward=block.mlp[0].out_features,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=norm_first,
    )
    ref.self_attn.load_state_dict(block.attn.state_dict())
    ref.linear1.load_state_dict(block.mlp[0].state_dict())
    ref.linear2.load_state_dict(block.mlp[2].state_dict())
    ref.norm1.load_state_dict(block.ln1.state_dict())
    ref.norm2.load_state_dict(block.ln2.state_dict())
    return ref.eval()


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_transformer_block_matches_pytorch_encoder_layer(norm):
    torch.manual_seed(0)
    block = dom.TransformerBlock(DIM, HEADS, 2.0, norm=norm).eval()
    with torch.no_grad():  # LayerNorm weights away from (1, 0), so a swapped norm would show
        for ln in (block.ln1, block.ln2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.5, 0.5)
    ref = _encoder_layer_like(block, norm_first=norm == "pre")
    x = torch.randn(3, 5, DIM)
    with torch.no_grad():
        torch.testing.assert_close(block(x), ref(x), rtol=1e-5, atol=1e-5)


def test_pre_and_post_ln_differ():
    torch.manual_seed(0)
    pre = dom.TransformerBlock(DIM, HEADS, norm="pre")
    post = dom.TransformerBlock(DIM, HEADS, norm="post")
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 4, DIM) * 3
    assert not torch.allclose(pre(x), post(x), atol=1e-3)
    # post-LN ends in a LayerNorm with weight 1, bias 0: every token has mean 0, variance 1
    out = post(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(2, 4), atol=1e-3, rtol=0)


@pytest.mark.parametrize("norm", ["pre", "post", None])
def test_residual_off_drops_exactly_the_x_plus(norm):
    torch.manual_seed(1)
    res = dom.TransformerBlock(DIM, HEADS, norm=norm, residual=True)
    plain = dom.TransformerBlock(DIM, HEADS, norm=norm, residual=False)
    plain.load_state_dict(res.state_dict())
    x = torch.randn(2, 6, DIM)
    ln1, ln2 = (res.ln1, res.ln2) if norm else (nn.Identity(), nn.Identity())

    def attn(z):
        return F.multi_head_attention_forward(
            z.transpose(0, 1), z.transpose(0, 1), z.transpose(0, 1), DIM, HEADS,
            res.attn.in_proj_weight, res.attn.in_proj_bias, None, None, False, 0.0,
            res.attn.out_proj.weight, res.attn.out_proj.bias, need_weights=False,
        )[0].transpose(0, 1)  # fmt: skip

    mlp = res.mlp
    if norm == "post":
        h = ln1(x + attn(x))
        want_res = ln2(h + mlp(h))
        h = ln1(attn(x))
        want_plain = ln2(mlp(h))
    else:
        h = x + attn(ln1(x))
        want_res = h + mlp(ln2(h))
        h = attn(ln1(x))
        want_plain = mlp(ln2(h))
    torch.testing.assert_close(res(x), want_res, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain(x), want_plain, rtol=1e-5, atol=1e-5)


def test_transformer_block_rejects_unknown_norm_and_keeps_shape():
    with pytest.raises(ValueError):
        dom.TransformerBlock(DIM, HEADS, norm="middle")
    block = dom.TransformerBlock(DIM, HEADS, mlp_ratio=4.0, dropout=0.1, residual=False, norm=None)
    assert block(torch.randn(7, 3, DIM)).shape == (7, 3, DIM)
    assert block.mlp[0].out_features == 4 * DIM


def test_causal_block_ignores_later_tokens():
    torch.manual_seed(0)
    block = dom.TransformerBlock(DIM, HEADS, causal=True).eval()
    x = torch.randn(1, 5, DIM)
    y = x.clone()
    y[:, 3:] += 1.0  # change the last two tokens
    torch.testing.assert_close(block(x)[:, :3], block(y)[:, :3])
    assert not torch.allclose(block(x)[:, 3:], block(y)[:, 3:])


@pytest.mark.parametrize("norm", ["pre", "post", None])
def test_tiny_transformer_shapes_and_final_norm(norm):
    model = dom.TinyTransformer(3, vocab=5, length=7, dim=DIM, heads=HEADS, norm=norm)
    tokens = torch.randint(5, (4, 7))
    assert model(tokens).shape == (4, 7, 5)
    assert len(model.blocks) == 3
    assert isinstance(model.ln, nn.LayerNorm) == (norm == "pre")


def test_reverse_task_labels():
    g = torch.Generator().manual_seed(0)
    x, y = dom.reverse_task(50, 6, 4, g)
    assert x.shape == y.shape == (50, 6) and x.dtype == torch.long
    for i in range(6):
        assert torch.equal(y[:, i], x[:, 5 - i])
    assert int(x.min()) >= 0 and int(x.max()) <= 3


def test_recall_task_labels():
    g = torch.Generator().manual_seed(0)
    x, y = dom.recall_task(100, 7, 4, g)
    assert x.shape == (100, 7, 5) and y.shape == (100,)
    torch.testing.assert_close(x[:, 0, :4].argmax(1), y)
    assert torch.equal(x[:, 0, :4].sum(1), torch.ones(100))
    assert x[:, 1:, :4].abs().sum() == 0  # later steps carry no symbol
    assert -1 <= float(x[..., 4].min()) and float(x[..., 4].max()) <= 1


def test_recurrent_net_follows_its_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2)
    for residual in (False, True):
        net = dom.RecurrentNet(2, 4, 1, residual=residual)
        c = net.cell
        h = torch.zeros(3, 4)
        states = []
        for t in range(5):
            f = torch.tanh(h @ c.weight_hh.T + c.bias_hh + x[:, t] @ c.weight_ih.T + c.bias_ih)
            h = h + f if residual else f
            states.append(h)
        out, got = net(x, return_states=True)
        assert len(got) == 5
        for a, b in zip(got, states, strict=True):
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(out, net.readout(h))
        torch.testing.assert_close(net(x), out)


def test_adding_problem_labels():
    g = torch.Generator().manual_seed(0)
    x, y = dom.adding_problem(200, 10, g)
    assert x.shape == (200, 10, 2) and y.shape == (200, 1)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((200,), 2.0))
    assert torch.equal(markers[:, :5].sum(1), torch.ones(200))  # one in each half
    first, second = markers[:, :5].argmax(1), 5 + markers[:, 5:].argmax(1)
    want = x[torch.arange(200), first, 0] + x[torch.arange(200), second, 0]
    torch.testing.assert_close(y[:, 0], want)
    assert 0 <= float(x[..., 0].min()) and float(x[..., 0].max()) <= 1


def test_gradient_norms_known_answers():
    """With zero input weights and zero biases every state stays 0, where tanh' = 1, so the
    Jacobian dh_t/dh_(t-1) is W (plain) or I + W (residual): a W = a·I gives exact powers."""
    T, a = 6, 0.5
    x = torch.randn(2, T, 3)
    for residual, factor in ((False, a), (True, 1 + a)):
        net = dom.RecurrentNet(3, 4, 1, residual=residual)
        with torch.no_grad():
            net.cell.weight_ih.zero_()
            net.cell.bias_ih.zero_()
            net.cell.bias_hh.zero_()
            net.cell.weight_hh.copy_(a * torch.eye(4))
        out, states = net(x, return_states=True)
        norms = dom.hidden_gradient_norms(states, out.sum())
        last = net.readout.weight.norm()  # each example's gradient is the readout row
        want = torch.stack([last * factor ** (T - 1 - t) for t in range(T)]).detach()
        torch.testing.assert_close(norms, want, rtol=1e-5, atol=0)


def test_normalized_adjacency():
    a = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.float)
    a_hat = dom.normalized_adjacency(a)
    torch.testing.assert_close(a_hat, a_hat.T)
    degree = a.sum(1) + 1  # with the self-loop
    for i in range(4):
        for j in range(4):
            want = (a[i, j] + (i == j)) / math.sqrt(degree[i] * degree[j])
            assert math.isclose(float(a_hat[i, j]), float(want), rel_tol=1e-6)
    # its largest eigenvalue is 1, with eigenvector sqrt(degree) (Kipf and Welling's renormalisation)
    torch.testing.assert_close(a_hat @ degree.sqrt(), degree.sqrt())
    assert math.isclose(float(torch.linalg.eigvalsh(a_hat).max()), 1.0, rel_tol=1e-6)


def test_gcn_follows_its_formula():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    adjacency, x, labels = dom.stochastic_block_graph((5, 5), 0.8, 0.1, 3, generator=g)
    a_hat = dom.normalized_adjacency(adjacency)
    for residual in (False, True):
        net = dom.GCN(3, 4, 2, 3, residual=residual)
        h = net.input(x)
        for layer in net.layers:
            f = torch.relu(a_hat @ h @ layer.weight.T)
            h = h + f if residual else f
        torch.testing.assert_close(net.features(x, a_hat), h)
        every = net.features(x, a_hat, every_layer=True)
        assert len(every) == 4
        torch.testing.assert_close(every[0], net.input(x))
        torch.testing.assert_close(every[-1], h)
        assert net(x, a_hat).shape == (10, 2)
    shallow = dom.GCN(3, 4, 2, 0)
    torch.testing.assert_close(shallow.features(x, a_hat), shallow.input(x))


def test_stochastic_block_graph():
    g = torch.Generator().manual_seed(0)
    adjacency, x, labels = dom.stochastic_block_graph((150, 150), 0.3, 0.05, 4, generator=g)
    assert torch.equal(adjacency, adjacency.T) and adjacency.diagonal().abs().sum() == 0
    assert set(adjacency.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(labels, torch.tensor([0] * 150 + [1] * 150)) and x.shape == (300, 4)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(300, dtype=torch.bool)
    assert abs(float(adjacency[same & off_diagonal].mean()) - 0.3) < 0.01
    assert abs(float(adjacency[~same].mean()) - 0.05) < 0.01


def test_mean_pairwise_distance():
    assert dom.mean_pairwise_distance(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-6)
    two = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert dom.mean_pairwise_distance(two) == pytest.approx(math.sqrt(2))
    h = torch.randn(6, 4)
    assert dom.mean_pairwise_distance(3 * h) == pytest.approx(dom.mean_pairwise_distance(h))


def test_train_steps_learns_and_stops_at_non_finite_loss():
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    x = torch.randn(64, 1)
    losses = dom.train_steps(model, lambda step: (x, 3 * x), F.mse_loss, 200, lr=0.05)
    assert len(losses) == 200 and losses[-1] < 0.01 * losses[0]  # it learns y = 3x
    before = [p.clone() for p in model.parameters()]
    losses = dom.train_steps(model, lambda step: (x, x * float("inf")), F.mse_loss, 4)
    assert len(losses) == 4 and all(math.isnan(v) for v in losses)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_train_steps_warmup_schedule(monkeypatch):
    seen = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    x = torch.randn(8, 1)
    dom.train_steps(nn.Linear(1, 1), lambda s: (x, x), F.mse_loss, 6, lr=0.4, warmup=4)
    assert seen == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_train_steps_passes_tuple_inputs():
    g = torch.Generator().manual_seed(0)
    adjacency, x, labels = dom.stochastic_block_graph((6, 6), 0.9, 0.0, 2, generator=g)
    a_hat = dom.normalized_adjacency(adjacency)
    net = dom.GCN(2, 4, 2, 2, residual=True)
    losses = dom.train_steps(net, lambda s: ((x, a_hat), labels), F.cross_entropy, 3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)


def test_train_reverse_and_map_in_workers():
    result = dom.train_reverse(1, steps=3, batch=4, length=4, vocab=3)
    assert len(result["losses"]) == 3 and 0.0 <= result["accuracy"] <= 1.0
    again = dom.train_reverse(1, steps=3, batch=4, length=4, vocab=3)
    assert again == result  # the seed fixes the weights and the data
    jobs = [{"a": 1}, {"b": 2}, {"c": 3}]
    assert rl_train.map_in_workers(dict, jobs, processes=1) == jobs
    assert rl_train.map_in_workers(dict, jobs, processes=2) == jobs  # in worker processes, in order
    with pytest.raises(TypeError, match="Pass processes=1"):
        rl_train.map_in_workers(lambda **kw: kw, jobs, processes=2)


def test_bad_inputs_get_clear_errors():
    block = dom.TransformerBlock(8, 2)
    with pytest.raises(ValueError, match=r"\(batch, tokens, 8\)"):
        block(torch.randn(3, 5, 6))  # wrong width
    with pytest.raises(ValueError, match="norm must be one of"):
        dom.TransformerBlock(8, 2, norm="middle")
    model = dom.TinyTransformer(1, vocab=4, length=5)
    with pytest.raises(ValueError, match="length at most 5"):
        model(torch.zeros(2, 6, dtype=torch.long))
    net = dom.RecurrentNet(3, 4, 2)
    with pytest.raises(ValueError, match=r"\(batch, time, 3\)"):
        net(torch.randn(2, 3))  # no time axis
    with pytest.raises(ValueError, match="square"):
        dom.normalized_adjacency(torch.ones(2, 3))
    with pytest.raises(ValueError, match="symmetric"):
        dom.normalized_adjacency(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="self-loops"):
        dom.normalized_adjacency(torch.eye(3))
    gcn = dom.GCN(2, 4, 2, 2)
    with pytest.raises(ValueError, match="normalized_adjacency"):
        gcn(torch.randn(5, 2), torch.eye(4))
