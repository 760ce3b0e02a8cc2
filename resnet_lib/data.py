"""The datasets of the two profiles.

- ``digits`` (quick profile): scikit-learn's 1,797 handwritten 8x8 digits, which ship inside
  scikit-learn (no network), upsampled to 16x16, split once with a fixed seed, normalised with the
  training split's mean and standard deviation.
- ``cifar10`` (full profile): CIFAR-10 (Krizhevsky, 2009) through torchvision, with the
  augmentation of He et al. (2016a): 4-pixel zero padding, a random 32x32 crop and a random
  horizontal flip. It is downloaded once, by ``python -m resnet_lib.data download cifar10``,
  into :func:`data_root`.

Nothing here ever switches datasets silently: a missing or corrupt CIFAR-10 is an error that says
where it was looked for and how to get it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from .profiles import Profile, get_profile

DATA_ENV = "RESNET_BOOK_DATA"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset that must be downloaded first is not on disk (or is corrupt)."""


@dataclass(frozen=True)
class DataSplits:
    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    train_eval: Dataset | None = None  # the training images without augmentation, for measuring

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train)} train / {len(self.test)} test images, "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, "
                f"{self.num_classes} classes")


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
    return DataSplits("digits", TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test]),
                      10, 1, image_size)


def cifar10(root: str | Path | None = None, augment: bool = True) -> DataSplits:
    """CIFAR-10 from ``root`` (default :func:`data_root`); never downloads."""
    from torchvision import datasets, transforms

    root = Path(root) if root is not None else data_root()
    normalize = [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    augmentation = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    train_tf = transforms.Compose((augmentation if augment else []) + normalize)
    plain_tf = transforms.Compose(normalize)
    try:
        train = datasets.CIFAR10(root, train=True, transform=train_tf, download=False)
        train_eval = datasets.CIFAR10(root, train=True, transform=plain_tf, download=False)
        test = datasets.CIFAR10(root, train=False, transform=plain_tf, download=False)
    except RuntimeError as err:  # torchvision checks every file's MD5 here
        raise DatasetNotFoundError(
            f"CIFAR-10 is missing or corrupt in {root / 'cifar-10-batches-py'}. Download it once "
            f"(about 170 MB, needs the network) with:\n"
            f"    python -m resnet_lib.data download cifar10 --root {root}\n"
            f"or set {DATA_ENV} to a folder that holds it, or run offline with "
            f"RESNET_BOOK_PROFILE=quick (the digits ship with scikit-learn)."
        ) from err
    return DataSplits("cifar10", train, test, 10, 3, 32, train_eval)


DATASETS = {"digits": digits, "cifar10": cifar10}


def load(name: str, **kwargs) -> DataSplits:
    """The dataset called ``name`` (``digits`` or ``cifar10``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


def for_profile(profile: Profile | str | None = None) -> DataSplits:
    """The dataset of ``profile`` (a Profile, its name, or None for the current one)."""
    if not isinstance(profile, Profile):
        profile = get_profile(profile)
    if profile.dataset == "digits":
        return digits(image_size=profile.image_size)
    return load(profile.dataset)


def download(name: str, root: str | Path | None = None) -> Path:
    """Fetch ``name`` into ``root`` (only CIFAR-10 needs this) and check it loads."""
    if name != "cifar10":
        raise ValueError(f"only cifar10 is downloaded; {name!r} ships with its package")
    from torchvision import datasets

    root = Path(root) if root is not None else data_root()
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        datasets.CIFAR10(root, train=train, download=True)
    cifar10(root)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m resnet_lib.data",
                                     description="Download the datasets of the full profile.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="download a dataset once into the cache folder")
    get.add_argument("name", choices=["cifar10"])
    get.add_argument("--root", default=None, help=f"folder (default: ${DATA_ENV} or "
                     "~/.cache/resnet-book)")
    args = parser.parse_args(argv)
    print(f"CIFAR-10 is ready in {download(args.name, args.root)}")


if __name__ == "__main__":
    main()
