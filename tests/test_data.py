"""The datasets: shapes, a deterministic split, and clear errors offline."""

import pytest
import torch

from resnet_lib import data


def test_digits_shapes_and_normalisation():
    d = data.digits()
    x, y = d.train.tensors
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 16)
    assert x.shape == (1500, 1, 16, 16) and len(d.test) == 1797 - 1500
    assert y.dtype == torch.long and set(y.tolist()) == set(range(10))
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-5


def test_digits_split_is_deterministic_and_disjoint():
    a, b, c = data.digits(seed=0), data.digits(seed=0), data.digits(seed=1)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    train = {tuple(v.flatten().tolist()) for v in a.train.tensors[0]}
    test = {tuple(v.flatten().tolist()) for v in a.test.tensors[0]}
    # scikit-learn's digits contain no exact duplicates across the split
    assert not train & test


def test_digits_rejects_bad_split():
    with pytest.raises(ValueError, match="train_size"):
        data.digits(train_size=1797)


def test_cifar10_offline_error_names_folder_and_command(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.cifar10(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "python -m resnet_lib.data download cifar10" in message


def test_cifar10_corrupt_download_is_detected(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not the real file")
    with pytest.raises(data.DatasetNotFoundError, match="missing or corrupt"):
        data.cifar10(tmp_path)


def test_data_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.data_root() == tmp_path
    with pytest.raises(data.DatasetNotFoundError, match=str(tmp_path)):
        data.load("cifar10")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="digits, cifar10"):
        data.load("mnist")
