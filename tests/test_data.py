"""The datasets: shapes, a deterministic split, augmentation, and CIFAR-10's download path.

The CIFAR-10 tests write a small archive in CIFAR-10's own format (pickled batches in
``cifar-10-batches-py/`` inside a .tar.gz) and serve it over HTTP from 127.0.0.1; the loader
downloads, checks, unpacks and reads it exactly as it would the real one. Nothing is mocked but
the archive's size and checksums, which the loader takes as an :class:`Archive`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from resnet_lib import data
from resnet_lib.data import Archive, DatasetNotFoundError

# ------------------------------------------------------------------------------------ digits


def test_digits_shapes_and_normalisation():
    d = data.digits()
    x, y = d.train.tensors
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 16)
    assert x.shape == (1500, 1, 16, 16) and len(d.test) == 1797 - 1500
    assert y.dtype == torch.long and set(y.tolist()) == set(range(10))
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-5
    assert d.unaugmented_train() is d.train


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


def test_unknown_dataset():
    with pytest.raises(ValueError, match="digits, cifar10"):
        data.load("mnist")


# ------------------------------------------------------------------------------ augmentation


def test_random_crop_flip_is_a_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = data.random_crop_flip(x, padding=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(len(x)):
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        candidates = windows + [w.flip(2) for w in windows]
        assert any(torch.equal(out[i], w) for w in candidates), f"image {i} is not a crop"


def test_random_crop_flip_varies_and_follows_the_seed():
    x = torch.randn(256, 3, 8, 8)
    torch.manual_seed(1)
    a = data.random_crop_flip(x)
    torch.manual_seed(1)
    b = data.random_crop_flip(x)
    assert torch.equal(a, b)
    unchanged = sum(torch.equal(a[i], x[i]) for i in range(len(x)))
    # the identity window without a flip has probability 1/81 * 1/2 per image
    assert unchanged < 20, unchanged
    flipped = sum(torch.equal(a[i], x[i].flip(2)) for i in range(len(x)))
    assert flipped < 20


def test_image_tensors_batches_equal_single_reads():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    labels = torch.arange(10)
    ds = data.ImageTensors(images, labels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, 4, 4) and y.tolist() == [0, 1, 2, 3]
    assert torch.allclose(x[2], ds[2][0]) and torch.allclose(
        ds[2][0], (images[2] / 255 - 0.5) / 0.25
    )
    with pytest.raises(ValueError, match="uint8"):
        data.ImageTensors(images.float(), labels, (0.5,), (0.5,))


# --------------------------------------------------------------------------------- CIFAR-10


def _md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


def make_archive(per_batch: int = 20, seed: int = 0) -> tuple[bytes, Archive, dict[str, bytes]]:
    """A .tar.gz in CIFAR-10's format: five training batches and a test batch of
    ``per_batch`` images each, and batches.meta. Returns the bytes, its Archive (with a URL to be
    filled in) and the member files."""
    gen = torch.Generator().manual_seed(seed)
    files = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        images = torch.randint(0, 256, (per_batch, 3072), generator=gen, dtype=torch.uint8)
        labels = [(k + i) % 10 for i in range(per_batch)]
        files[name] = pickle.dumps(
            {
                "batch_label": name,
                "labels": labels,
                "data": images.numpy(),
                "filenames": [""] * per_batch,
            }
        )
    files["batches.meta"] = pickle.dumps({"label_names": [str(i) for i in range(10)]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    blob = buffer.getvalue()
    return blob, Archive("", _md5(blob), {n: _md5(b) for n, b in files.items()}), files


class Server:
    """Serves ``folder`` over HTTP on 127.0.0.1; counts the requests."""

    def __init__(self, folder: Path) -> None:
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path):
    """A small CIFAR-10 archive served from 127.0.0.1, and its Archive pointing there."""
    blob, archive, files = make_archive()
    site = tmp_path / "site"
    site.mkdir()
    (site / "cifar-10-python.tar.gz").write_bytes(blob)
    server = Server(site)
    archive = Archive(f"{server.url}/cifar-10-python.tar.gz", archive.md5, archive.files)
    yield server, archive, files, site
    server.close()


def test_cifar10_downloads_on_first_use_then_reads_from_disk(served, tmp_path, capsys):
    server, archive, files, _ = served
    root = tmp_path / "cache"
    splits = data.cifar10(root, archive=archive)
    assert server.requests == 1
    assert "downloading cifar-10-python.tar.gz" in capsys.readouterr().err  # the progress bar
    assert (root / "cifar-10-batches-py" / "test_batch").read_bytes() == files["test_batch"]
    assert not list(root.glob("*.part"))
    assert (len(splits.train), len(splits.test)) == (100, 20)
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 3, 32)

    # The images are the archive's, in (C, H, W) order, normalised with CIFAR-10's statistics.
    raw = pickle.loads(files["data_batch_1"])
    first = torch.as_tensor(raw["data"][0], dtype=torch.float32).view(3, 32, 32) / 255
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (data.CIFAR10_MEAN, data.CIFAR10_STD))
    x, y = splits.unaugmented_train()[0]
    assert torch.allclose(x, (first - mean) / std, atol=1e-6) and y.item() == raw["labels"][0]
    test_x, _ = splits.test[0]
    test_raw = pickle.loads(files["test_batch"])["data"][0]
    assert torch.allclose(
        test_x,
        (torch.as_tensor(test_raw, dtype=torch.float32).view(3, 32, 32) / 255 - mean) / std,
        atol=1e-6,
    )
    # The training set is augmented, the measuring copy is not.
    torch.manual_seed(0)
    augmented = torch.stack([splits.train[i][0] for i in range(20)])
    plain = torch.stack([splits.unaugmented_train()[i][0] for i in range(20)])
    assert not torch.equal(augmented, plain)

    again = data.cifar10(root, archive=archive)  # second use: from disk, no request
    assert server.requests == 1 and len(again.train) == 100


def test_cifar10_uses_an_archive_put_there_by_hand(served, tmp_path):
    server, archive, _, site = served
    root = tmp_path / "cache"
    root.mkdir()
    (root / archive.filename).write_bytes((site / "cifar-10-python.tar.gz").read_bytes())
    assert len(data.cifar10(root, archive=archive, download=False).test) == 20
    assert server.requests == 0


def test_cifar10_corrupt_download_is_deleted_and_explained(served, tmp_path):
    server, archive, _, site = served
    (site / "cifar-10-python.tar.gz").write_bytes(b"<html>a proxy's error page</html>")
    root = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError) as err:
        data.cifar10(root, archive=archive)
    message = str(err.value)
    assert "corrupt" in message and archive.md5 in message and "Run the notebook again" in message
    assert not (root / archive.filename).exists() and not list(root.glob("*.part"))


def test_cifar10_corrupt_files_on_disk_are_detected(served, tmp_path):
    _, archive, _, _ = served
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in archive.files:
        (folder / name).write_bytes(b"not the real file")
    with pytest.raises(DatasetNotFoundError, match="missing or corrupt"):
        data.cifar10(tmp_path, archive=archive, download=False)


def test_cifar10_offline_error_says_how_to_get_it(tmp_path):
    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    archive = Archive(f"http://127.0.0.1:{port}/cifar-10-python.tar.gz", "0" * 32, {"x": "0"})
    with pytest.raises(DatasetNotFoundError) as err:
        data.cifar10(tmp_path, archive=archive)
    message = str(err.value)
    for needed in (
        str(tmp_path),
        "python -m resnet_lib.data download cifar10",
        archive.url,
        "RESNET_BOOK_PROFILE=quick",
        str(tmp_path / "cifar-10-python.tar.gz"),
    ):
        assert needed in message, needed
    assert not list(tmp_path.glob("*.part"))


def test_cifar10_without_download_names_folder_and_command(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        data.cifar10(tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path) in message and "python -m resnet_lib.data download cifar10" in message


# CIFAR-10 as published (https://www.cs.toronto.edu/~kriz/cifar.html): the archive's MD5 is on
# that page; the files' MD5s are those of the archive's contents.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


def test_real_archive_is_cifar10_as_published(monkeypatch):
    monkeypatch.delenv(data.URL_ENV, raising=False)
    archive = data.cifar10_archive()
    assert (archive.url, archive.md5, archive.files) == (CIFAR10_URL, CIFAR10_MD5, CIFAR10_FILES)
    assert archive.folder == "cifar-10-batches-py" and archive.filename == CIFAR10_URL[-22:]
    monkeypatch.setenv(data.URL_ENV, "http://mirror.example/cifar-10-python.tar.gz")
    assert data.cifar10_archive().url == "http://mirror.example/cifar-10-python.tar.gz"
    assert data.cifar10_archive().md5 == CIFAR10_MD5  # a mirror serves the same file


def test_data_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.data_root() == tmp_path


def test_for_profile_measures_training_loss_on_a_fixed_sample(served, tmp_path, monkeypatch):
    _, archive, _, _ = served
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setattr(data, "cifar10_archive", lambda: archive)
    profile = data.get_profile("gpu")
    sample = 30
    from dataclasses import replace

    a = data.for_profile(replace(profile, train_eval_images=sample))
    b = data.for_profile(replace(profile, train_eval_images=sample))
    assert len(a.train_eval) == sample and a.train_eval.indices == b.train_eval.indices
    assert len(a.train) == 100 and len(set(a.train_eval.indices)) == sample


def test_cli_downloads(served, tmp_path, monkeypatch, capsys):
    _, archive, _, _ = served
    monkeypatch.setattr(data, "cifar10_archive", lambda: archive)
    data.main(["download", "cifar10", "--root", str(tmp_path)])
    assert "CIFAR-10 is ready in" in capsys.readouterr().out
    assert (tmp_path / "cifar-10-batches-py" / "batches.meta").is_file()
