"""The training loop: schedules, convergence on a tiny problem, reproducibility, the CLI."""

import functools
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
    config = train.TrainConfig(
        epochs=5, batch_size=32, max_steps=10, schedule="step", milestones=(5,), warmup_steps=0
    )
    h = train.fit(model, _toy(), None, config, "cpu", progress=False)
    assert h.steps == 10 and h.epoch == [1, 2] and h.test_acc == []
    assert h.lr[-1] == pytest.approx(0.01)


def test_divergence_raises_a_clear_error():
    model = cifar_resnet(8, num_classes=2, widths=(4, 4, 4), in_channels=1)
    config = train.TrainConfig(
        epochs=1, batch_size=32, lr=1e12, warmup_steps=0, schedule="constant"
    )
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
    train.main(
        [
            "--model",
            "resnet8",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--widths",
            "4",
            "4",
            "4",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
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
    config = train.TrainConfig(
        epochs=1, batch_size=32, lr=0.05, warmup_steps=0, schedule="constant"
    )
    wild = {"wild": builders["wild"]}
    with pytest.raises(FloatingPointError):
        train.compare(
            wild,
            data,
            train.TrainConfig(
                epochs=1, batch_size=32, lr=1e12, warmup_steps=0, schedule="constant"
            ),
            device="cpu",
            progress=False,
        )
    runs = train.compare(
        builders, data, config, seeds=(0,), device="cpu", progress=False, diverged="record"
    )
    assert all(isinstance(h, train.History) for h in runs["tame"] + runs["wild"])
    runs = train.compare(
        wild,
        data,
        train.TrainConfig(epochs=1, batch_size=32, lr=1e12, warmup_steps=0, schedule="constant"),
        seeds=(0, 1),
        device="cpu",
        progress=False,
        diverged="record",
    )
    assert [(h.diverged, h.epoch, h.train_loss) for h in runs["wild"]] == [(True, [], [])] * 2
    assert capsys.readouterr().out.count("diverged") == 2
    with pytest.raises(ValueError, match="'raise' or 'record'"):
        train.compare(wild, data, config, device="cpu", diverged="ignore")


def _toy_splits():
    from resnet_lib.data import DataSplits

    return DataSplits("toy", _toy(n=128), _toy(1, n=64), num_classes=2, in_channels=1, image_size=8)


def test_diverged_run_keeps_its_history_up_to_the_divergence():
    # lr 1.0 without warm-up trains a few steps, then the loss overflows: the epochs completed
    # before that are kept, the epoch in which it happened is not.
    data = _toy_splits()
    build = functools.partial(cifar_resnet, 8, num_classes=2, widths=(4, 4, 4), in_channels=1)
    config = train.TrainConfig(
        epochs=50, batch_size=32, lr=1e5, warmup_steps=200, schedule="constant"
    )  # the rate grows 500x per epoch
    runs = train.compare(
        {"net": build}, data, config, device="cpu", progress=False, diverged="record"
    )
    (h,) = runs["net"]
    assert h.diverged and 0 < len(h.epoch) < 50
    assert h.epoch == list(range(1, len(h.epoch) + 1)) and len(h.train_loss) == len(h.epoch)
    assert h.steps > 4 * len(h.epoch)  # it diverged during the epoch after the last recorded


def _tiny_builders():
    return {
        depth_name: functools.partial(
            cifar_resnet, depth, num_classes=2, widths=(4, 4, 4), in_channels=1, residual=residual
        )
        for depth_name, depth, residual in [("plain-8", 8, False), ("ResNet-14", 14, True)]
    }


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what each of two workers on two CPUs gets
    yield
    torch.set_num_threads(before)


def test_worker_processes_give_the_same_histories_as_one_process(monkeypatch, one_thread):
    monkeypatch.setattr(train, "usable_cpus", lambda: 2)
    data, builders = _toy_splits(), _tiny_builders()
    config = train.TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_steps=2)
    here = train.compare(builders, data, config, seeds=(3, 4), device="cpu", progress=False)
    there = train.compare(
        builders, data, config, seeds=(3, 4), device="cpu", progress=False, processes=2
    )
    assert list(there) == list(here) == ["plain-8", "ResNet-14"]
    for name in here:
        for a, b in zip(here[name], there[name], strict=True):
            assert len(a.train_loss) == 2 and a.steps == 8
            assert {**a.to_dict(), "seconds": []} == {**b.to_dict(), "seconds": []}
    # the seeds made a difference, so equality above is not a constant
    assert here["ResNet-14"][0].train_loss != here["ResNet-14"][1].train_loss


def test_workers_fork_from_a_server_that_has_imported_torch():
    """Where the system has a fork server, workers fork from it (not from this process, whose
    OpenMP pool a child could hang in), and it has imported what a worker's first optimizer
    would otherwise import in every worker."""
    import multiprocessing

    context = train._worker_context()
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert context.get_start_method() == "forkserver"
        from multiprocessing import forkserver

        assert {"resnet_lib", "torch._dynamo"} <= set(forkserver._forkserver._preload_modules)
    else:
        assert context.get_start_method() == "spawn"


def test_start_workers_starts_the_server_only_for_several_cpus(monkeypatch):
    from multiprocessing import forkserver

    started = []
    monkeypatch.setattr(forkserver, "ensure_running", lambda: started.append(True))
    monkeypatch.setattr(train, "usable_cpus", lambda: 1)
    train.start_workers("cpu")
    monkeypatch.setattr(train, "usable_cpus", lambda: 2)
    train.start_workers(torch.device("cuda"))  # one process on a GPU: nothing to start
    assert started == []
    train.start_workers("cpu")
    uses_server = train._worker_context().get_start_method() == "forkserver"
    assert started == ([True] if uses_server else [])


def test_one_usable_cpu_trains_in_this_process(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("no worker process should start")

    monkeypatch.setattr(train, "usable_cpus", lambda: 1)
    monkeypatch.setattr(train, "ProcessPoolExecutor", no_pool)
    config = train.TrainConfig(epochs=1, batch_size=64, warmup_steps=1)
    runs = train.compare(
        _tiny_builders(),
        _toy_splits(),
        config,
        seeds=(0,),
        device="cpu",
        progress=False,
        processes=None,
    )
    assert [len(h) for h in runs.values()] == [1, 1]


def test_process_count():
    builders, cpu = _tiny_builders(), torch.device("cpu")
    assert train._process_count(4, cpu, builders, runs=3) == 3  # no idle workers
    assert train._process_count(None, torch.device("cuda"), builders, runs=8) == 1
    with pytest.raises(ValueError, match="one process"):
        train._process_count(2, torch.device("cuda"), builders, runs=8)
    lambdas = {"net": lambda: cifar_resnet(8, num_classes=2)}
    with pytest.raises(TypeError, match="functools.partial"):
        train._process_count(2, cpu, lambdas, runs=8)


def test_auto_processes_fall_back_for_lambdas(monkeypatch, capsys):
    monkeypatch.setattr(train, "usable_cpus", lambda: 2)
    lambdas = {"net": lambda: cifar_resnet(8, num_classes=2)}
    assert train._process_count(None, torch.device("cpu"), lambdas, runs=8) == 1
    assert "functools.partial" in capsys.readouterr().out
    assert train._process_count(None, torch.device("cpu"), _tiny_builders(), runs=8) == 2
