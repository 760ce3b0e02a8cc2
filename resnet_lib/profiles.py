"""The two profiles of the book, and the one call at the top of every notebook.

``RESNET_BOOK_PROFILE=quick|full`` chooses; unset, it is ``full`` when CUDA is available and
``quick`` otherwise. Everything a profile changes lives in :data:`PROFILES`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

ENV_VAR = "RESNET_BOOK_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str  # what the experiments train on
    description: str  # one line for readers
    image_size: int
    in_channels: int
    widths: tuple[int, ...]  # channels of the three CIFAR-ResNet stages
    # The training recipe of the experiments (resnet_lib.train.config_for builds it).
    epochs: int
    schedule: str  # "cosine" (after a linear warm-up) or "step"
    warmup_steps: int
    milestones: tuple[int, ...] = ()  # steps where "step" divides the learning rate by 10
    max_steps: int | None = None
    seeds: tuple[int, ...] = (0,)  # how many times an experiment is repeated
    batch_size: int = 128
    lr: float = 0.1


PROFILES = {
    # On 2 CPU cores plain-56 stays far behind the others after 15 epochs; the four networks of
    # Chapter 1 take about 45 s for one seed, so a second seed would break the one-minute budget.
    "quick": Profile("quick", "digits",
                     "scikit-learn's 8x8 digits upsampled to 16x16, shipped with the package",
                     16, 1, (8, 16, 32), epochs=15, schedule="cosine", warmup_steps=12,
                     seeds=(0,)),
    # He et al. (2016a), Sec. 4.2: 64k iterations of batch 128, lr 0.1 divided by 10 at 32k and
    # 48k (164 epochs of CIFAR-10's 50k images).
    "full": Profile("full", "cifar10", "CIFAR-10, 32x32 colour images (downloaded once)",
                    32, 3, (16, 32, 64), epochs=164, schedule="step", warmup_steps=0,
                    milestones=(32_000, 48_000), max_steps=64_000, seeds=(0,)),
}


@dataclass(frozen=True)
class Setup:
    profile: Profile
    device: torch.device
    seed: int
    dataset: str | None  # None: the notebook uses no dataset

    def describe(self) -> str:
        data = self.dataset or "none (this chapter uses random tensors)"
        return f"profile: {self.profile.name} | device: {self.device} | dataset: {data}"


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else the one ``RESNET_BOOK_PROFILE`` names, else the default."""
    name = name or os.environ.get(ENV_VAR) or ("full" if torch.cuda.is_available() else "quick")
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}={name!r} is not a profile; use one of "
                         f"{', '.join(PROFILES)} (or leave it unset for the default)")
    return PROFILES[name]


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a run prints the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0, profile: str | None = None, uses_data: bool = True) -> Setup:
    """Seed everything, choose the profile and device, and print them with the dataset."""
    seed_everything(seed)
    chosen = get_profile(profile)
    result = Setup(chosen, pick_device(), seed, chosen.dataset if uses_data else None)
    print(result.describe())
    return result
