"""The training loop: schedules, convergence on a tiny problem, reproducibility, the CLI."""

import json
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from resnet_lib import cifar_resnet, train


def test_warmup_cosine_values():
    f = train.warmup_cosine(warmup_steps=4, total_steps=104)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0
    assert f(54) == pytest.approx(0.5)  # halfway through the cosine
    assert f(104) == pytest.approx(0.0, abs=1e-12)
    assert f(500) == pytest.approx(0.0, abs=1e-12)


def test_step_decay_values():
    f = train.step_decay((32_000, 48_000))
    assert f(0) == 1.0 and f(31_999) == 1.0
    assert f(32_000) == pytest.approx(0.1) and f(47_999) == pytest.approx(0.1)
    assert f(48_000) == pytest.approx(0.01) and f(63_999) == pytest.approx(0.01)


def test_paper_recipe():
    c = train.PAPER_CIFAR10
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert c.milestones == (32_000, 48_000) and c.max_steps == 64_000
    assert c.epochs * math.ceil(50_000 / 128) >= 64_000


def test_unknown_schedule():
    with pytest.raises(ValueError, match="cosine"):
        train.lr_factor(train.TrainConfig(schedule="linear"), 10)


def _toy(seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()  # top half vs bottom half
    return TensorDataset(x, y)


def _run(seed=0, epochs=8):
    torch.manual_seed(seed)
    model = cifar_resnet(8, num_classes=2, widths=(4, 8, 8), in_channels=1)
    config = train.TrainConfig(epochs=epochs, batch_size=32, lr=0.05, warmup_steps=4)
    return train.fit(model, _toy(), _toy(1), config, "cpu", seed=seed, progress=False)


def test_loss_decreases_on_a_tiny_problem():
    h = _run()
    assert len(h.train_loss) == 8 and h.steps == 8 * 8
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.train_acc[-1] > 0.9


def test_seeding_reproduces_the_same_numbers():
    a, b = _run(seed=3, epochs=2), _run(seed=3, epochs=2)
    assert a.train_loss == b.train_loss and a.test_acc == b.test_acc
    c = _run(seed=4, epochs=2)
    assert a.train_loss != c.train_loss


def test_max_steps_stops_early():
    model = cifar_resnet(8, num_classes=2, widths=(4, 4, 4), in_channels=1)
    config = train.TrainConfig(epochs=5, batch_size=32, max_steps=10, schedule="step",
                               milestones=(5,), warmup_steps=0)
    h = train.fit(model, _toy(), None, config, "cpu", progress=False)
    assert h.steps == 10 and h.epoch == [1, 2] and h.test_acc == []
    assert h.lr[-1] == pytest.approx(0.01)


def test_divergence_raises_a_clear_error():
    model = cifar_resnet(8, num_classes=2, widths=(4, 4, 4), in_channels=1)
    config = train.TrainConfig(epochs=1, batch_size=32, lr=1e12, warmup_steps=0,
                               schedule="constant")
    with pytest.raises(FloatingPointError, match="learning rate"):
        train.fit(model, _toy(), None, config, "cpu", progress=False)


def test_build_model_names():
    from resnet_lib.data import digits

    d = digits()
    assert train.build_model("plain20", d).layer1[0].residual is False
    assert train.build_model("resnet32", d, widths=(8, 16, 32)).conv1.in_channels == 1
    with pytest.raises(ValueError, match="resnetN or plainN"):
        train.build_model("vgg16", d)
    with pytest.raises(ValueError, match="6n\\+2"):
        train.build_model("resnet21", d)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "h.json"
    train.main(["--model", "resnet8", "--data", "digits", "--epochs", "1", "--widths", "4", "4",
                "4", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "profile:" in printed and "digits" in printed
    saved = json.loads(out.read_text())
    assert saved["model"] == "resnet8" and saved["steps"] == math.ceil(1500 / 128)


def test_command_line_cifar10_without_data_fails_clearly(tmp_path):
    from resnet_lib.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="download cifar10"):
        train.main(["--model", "resnet20", "--data", "cifar10", "--root", str(tmp_path)])


def test_training_set_is_measured_on_train_eval_set_when_given():
    model = cifar_resnet(8, num_classes=2, widths=(4, 4, 4), in_channels=1)
    config = train.TrainConfig(epochs=1, batch_size=32, warmup_steps=2)
    other = _toy(seed=5, n=64)
    h = train.fit(model, _toy(), None, config, "cpu", progress=False, train_eval_set=other)
    loss, acc = train.evaluate(model, torch.utils.data.DataLoader(other, batch_size=64), "cpu")
    assert h.train_loss == [pytest.approx(loss)] and h.train_acc == [acc]


def test_compare_records_diverged_runs_when_asked(capsys):
    from resnet_lib.data import DataSplits

    data = DataSplits("toy", _toy(), _toy(1), num_classes=2, in_channels=1, image_size=8)
    builders = {
        "tame": lambda: cifar_resnet(8, num_classes=2, widths=(4, 4, 4), in_channels=1),
        "wild": lambda: cifar_resnet(8, num_classes=2, widths=(4, 4, 4), in_channels=1),
    }
    config = train.TrainConfig(epochs=1, batch_size=32, lr=0.05, warmup_steps=0,
                               schedule="constant")
    wild = {"wild": builders["wild"]}
    with pytest.raises(FloatingPointError):
        train.compare(wild, data, train.TrainConfig(epochs=1, batch_size=32, lr=1e12,
                                                     warmup_steps=0, schedule="constant"),
                      device="cpu", progress=False)
    runs = train.compare(builders, data, config, seeds=(0,), device="cpu", progress=False,
                         diverged="record")
    assert all(isinstance(h, train.History) for h in runs["tame"] + runs["wild"])
    runs = train.compare(wild, data, train.TrainConfig(epochs=1, batch_size=32, lr=1e12,
                                                        warmup_steps=0, schedule="constant"),
                         seeds=(0, 1), device="cpu", progress=False, diverged="record")
    assert runs == {"wild": [None, None]}
    assert capsys.readouterr().out.count("diverged") == 2
    with pytest.raises(ValueError, match="'raise' or 'record'"):
        train.compare(wild, data, config, device="cpu", diverged="ignore")
