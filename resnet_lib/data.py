"""The datasets of the profiles.

- ``digits`` (quick profile): scikit-learn's 1,797 handwritten 8x8 digits, which ship inside
  scikit-learn (no network), upsampled to 16x16, split once with a fixed seed, normalised with the
  training split's mean and standard deviation.
- ``cifar10`` (gpu and full profiles): CIFAR-10 (Krizhevsky, 2009), downloaded on first use (with
  a progress bar) into :func:`data_root` and checked against its published MD5 sums, or
  beforehand with ``python -m resnet_lib.data download cifar10``. The images stay in memory as
  one uint8 tensor; the training set is augmented as in He et al. (2016a): 4-pixel zero padding,
  a random 32x32 crop and a random horizontal flip, one batch at a time.

Nothing here ever switches datasets silently: a missing, unreachable or corrupt CIFAR-10 is an
error that says where it was looked for and how to get it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

from .profiles import Profile, get_profile

DATA_ENV = "RESNET_BOOK_DATA"
URL_ENV = "RESNET_BOOK_CIFAR10_URL"  # a mirror that serves the same archive
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset that must be downloaded is not on disk, cannot be downloaded, or is corrupt."""


@dataclass(frozen=True)
class DataSplits:
    name: str
    train: Dataset  # what training draws from (augmented, where the dataset is)
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    train_eval: Dataset | None = None  # what the training loss is measured on, if not ``train``
    train_plain: Dataset | None = None  # every training image without augmentation, if augmented

    def unaugmented_train(self) -> Dataset:
        """Every training image, without augmentation."""
        return self.train if self.train_plain is None else self.train_plain

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train)} train / {len(self.test)} test images, "
            f"{self.in_channels}x{self.image_size}x{self.image_size}, "
            f"{self.num_classes} classes"
        )


def data_root() -> Path:
    """Where downloaded datasets live: ``$RESNET_BOOK_DATA``, else ``~/.cache/resnet-book``."""
    return Path(os.environ.get(DATA_ENV) or "~/.cache/resnet-book").expanduser()


def digits(image_size: int = 16, train_size: int = 1500, seed: int = 0) -> DataSplits:
    """scikit-learn's digits as normalised ``image_size`` x ``image_size`` tensors."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    if not 0 < train_size < len(images):
        raise ValueError(f"train_size must be between 1 and {len(images) - 1}; got {train_size}")
    x = torch.tensor(images, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.tensor(labels, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, test = order[:train_size], order[train_size:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return DataSplits(
        "digits",
        TensorDataset(x[train], y[train]),
        TensorDataset(x[test], y[test]),
        10,
        1,
        image_size,
    )


# ------------------------------------------------------------------------------------ CIFAR-10


def random_crop_flip(x: Tensor, padding: int = 4) -> Tensor:
    """He et al. (2016a), Sec. 4.2: pad every image of the batch ``x`` (N, C, H, W) with
    ``padding`` zeros on each side, cut a random H x W window out of it, and flip it left to
    right with probability 1/2. Draws from PyTorch's global random generator."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    corners = torch.randint(0, 2 * padding + 1, (n, 2)).tolist()  # top, left of each window
    crops = torch.stack(
        [padded[i, :, top : top + h, left : left + w] for i, (top, left) in enumerate(corners)]
    )
    flip = torch.rand(n) < 0.5
    crops[flip] = crops[flip].flip(3)
    return crops


class ImageTensors(Dataset):
    """Images kept as one uint8 tensor (N, C, H, W), normalised per channel when read; with
    ``augment``, :func:`random_crop_flip` too. Reading a whole batch at once (``__getitems__``,
    which PyTorch's DataLoader calls) costs one vectorised operation instead of N small ones."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(
                "images must be a uint8 tensor (N, C, H, W) with one label each; "
                f"got {images.dtype} {tuple(images.shape)} and {len(labels)} labels"
            )
        self.images, self.labels, self.augment = images, labels, augment
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, Tensor]]:
        x = self.images[indices].float().div_(255)
        if self.augment:
            x = random_crop_flip(x)
        x = (x - self.mean) / self.std
        return list(zip(x.unbind(0), self.labels[indices].unbind(0), strict=True))

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.__getitems__([index])[0]


@dataclass(frozen=True)
class Archive:
    """Where CIFAR-10 comes from: the archive's URL and MD5, and the MD5 of every file it holds
    in ``cifar-10-batches-py/``."""

    url: str
    md5: str
    files: dict[str, str] = field(default_factory=dict)
    folder: str = "cifar-10-batches-py"

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def cifar10_archive() -> Archive:
    """The published CIFAR-10 archive, with the checksums torchvision records for it; the URL
    can point at a mirror of the same file with ``$RESNET_BOOK_CIFAR10_URL``."""
    from torchvision.datasets import CIFAR10

    files = dict(CIFAR10.train_list + CIFAR10.test_list)
    files[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    return Archive(
        os.environ.get(URL_ENV) or CIFAR10.url, CIFAR10.tgz_md5, files, CIFAR10.base_folder
    )


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _how_to_get(archive: Archive, root: Path) -> str:
    return (
        f"To get it: on a machine with a network, run\n"
        f"    python -m resnet_lib.data download cifar10 --root {root}\n"
        f"or download {archive.url} by hand and put it at {root / archive.filename} "
        f"(it is unpacked on first use). ${DATA_ENV} chooses another folder. Without "
        f"CIFAR-10, run the notebooks in the quick profile (RESNET_BOOK_PROFILE=quick): its "
        f"data ship with scikit-learn."
    )


def _intact(archive: Archive, folder: Path) -> bool:
    return bool(archive.files) and all(
        (folder / name).is_file() and md5sum(folder / name) == md5
        for name, md5 in archive.files.items()
    )


def _fetch(archive: Archive, root: Path, timeout: float, progress: bool) -> Path:
    """Download the archive into ``root`` (a partial download never looks complete)."""
    from tqdm.auto import tqdm

    target, partial = root / archive.filename, root / f"{archive.filename}.part"
    root.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(archive.url, timeout=timeout) as response,
            open(partial, "wb") as out,
            tqdm(
                total=response.length,
                unit="B",
                unit_scale=True,
                disable=not progress,
                desc=f"downloading {archive.filename}",
            ) as bar,
        ):
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise DatasetNotFoundError(
            f"CIFAR-10 is not in {root / archive.folder}, and downloading it from "
            f"{archive.url} failed ({err}). {_how_to_get(archive, root)}"
        ) from err
    partial.replace(target)
    return target


def ensure_cifar10(
    root: str | Path | None = None,
    download: bool = True,
    archive: Archive | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """The folder that holds CIFAR-10's checked files, downloading and unpacking the archive
    first when they are missing (and ``download``). Raises :class:`DatasetNotFoundError`."""
    archive = archive or cifar10_archive()
    root = Path(root) if root is not None else data_root()
    folder = root / archive.folder
    if _intact(archive, folder):
        return folder
    tarball = root / archive.filename
    if not tarball.is_file():
        if not download:
            raise DatasetNotFoundError(
                f"CIFAR-10 is missing or corrupt in {folder}. {_how_to_get(archive, root)}"
            )
        tarball = _fetch(archive, root, timeout, progress)
    found = md5sum(tarball)
    if found != archive.md5:
        tarball.unlink()
        raise DatasetNotFoundError(
            f"{tarball} is corrupt (MD5 {found}, expected {archive.md5}), so it was deleted; "
            f"an interrupted download or a proxy's error page are the usual causes. Run the "
            f"notebook again to download it anew. {_how_to_get(archive, root)}"
        )
    with tarfile.open(tarball) as tar:
        _extract(tar, root)
    if not _intact(archive, folder):
        raise DatasetNotFoundError(
            f"{tarball} unpacked, but the files in {folder} do not match CIFAR-10's checksums; "
            f"delete {folder} and {tarball} and try again. {_how_to_get(archive, root)}"
        )
    return folder


def _extract(tar: tarfile.TarFile, root: Path) -> None:
    """Unpack ``tar`` into ``root``, refusing members that would land outside it or are links."""
    if hasattr(tarfile, "data_filter"):  # Python 3.11.4+, 3.10.12+
        tar.extractall(root, filter="data")
        return
    for member in tar.getmembers():
        inside = (root / member.name).resolve().is_relative_to(root.resolve())
        if not inside or member.issym() or member.islnk():
            raise DatasetNotFoundError(f"refusing to unpack {member.name!r} from {tar.name}")
    tar.extractall(root)


def _read_batches(folder: Path, names: list[str]) -> tuple[Tensor, Tensor]:
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")  # the format CIFAR-10 is published in
        images.append(torch.as_tensor(batch["data"], dtype=torch.uint8).view(-1, 3, 32, 32))
        labels.append(torch.as_tensor(batch["labels"], dtype=torch.long))
    return torch.cat(images), torch.cat(labels)


def cifar10(
    root: str | Path | None = None,
    augment: bool = True,
    download: bool = True,
    archive: Archive | None = None,
) -> DataSplits:
    """CIFAR-10 from ``root`` (default :func:`data_root`), downloaded there first if missing."""
    archive = archive or cifar10_archive()
    folder = ensure_cifar10(root, download, archive)
    train_names = sorted(n for n in archive.files if n.startswith("data_batch"))
    train_x, train_y = _read_batches(folder, train_names)
    test_x, test_y = _read_batches(folder, ["test_batch"])
    stats = (CIFAR10_MEAN, CIFAR10_STD)
    plain = ImageTensors(train_x, train_y, *stats)
    train = ImageTensors(train_x, train_y, *stats, augment=True) if augment else plain
    return DataSplits(
        "cifar10",
        train,
        ImageTensors(test_x, test_y, *stats),
        10,
        3,
        32,
        train_eval=plain if augment else None,
        train_plain=plain if augment else None,
    )


DATASETS = {"digits": digits, "cifar10": cifar10}


def load(name: str, **kwargs) -> DataSplits:
    """The dataset called ``name`` (``digits`` or ``cifar10``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


def for_profile(profile: Profile | str | None = None) -> DataSplits:
    """The dataset of ``profile`` (a Profile, its name, or None for the current one); where the
    profile says so, the training loss is measured on a fixed sample of the training images."""
    if not isinstance(profile, Profile):
        profile = get_profile(profile)
    if profile.dataset == "digits":
        splits = digits(image_size=profile.image_size)
    else:
        splits = load(profile.dataset)
    sample = profile.train_eval_images
    if sample is not None and sample < len(splits.train):
        keep = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(0))
        splits = replace(
            splits, train_eval=Subset(splits.unaugmented_train(), sorted(keep[:sample].tolist()))
        )
    return splits


def download(name: str, root: str | Path | None = None) -> Path:
    """Fetch ``name`` into ``root`` (only CIFAR-10 needs this) and check it."""
    if name != "cifar10":
        raise ValueError(f"only cifar10 is downloaded; {name!r} ships with its package")
    return ensure_cifar10(root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_lib.data",
        description="Download the datasets of the gpu and full profiles ahead of time.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="download a dataset once into the cache folder")
    get.add_argument("name", choices=["cifar10"])
    get.add_argument(
        "--root", default=None, help=f"folder (default: ${DATA_ENV} or ~/.cache/resnet-book)"
    )
    args = parser.parse_args(argv)
    print(f"CIFAR-10 is ready in {download(args.name, args.root)}")


if __name__ == "__main__":
    main()
