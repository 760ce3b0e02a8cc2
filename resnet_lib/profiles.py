"""The three profiles of the book, and the one call at the top of every notebook.

``RESNET_BOOK_PROFILE=quick|gpu|full`` chooses; unset, it is ``gpu`` when CUDA is available and
``quick`` otherwise. ``full`` (the papers' recipes, hours per chapter) is only ever chosen by
name. Everything a profile changes lives in :data:`PROFILES`.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

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
    # How many training images the per-epoch training loss is measured on (None: all of them).
    # A fixed sample keeps that measurement to a fraction of an epoch's cost on CIFAR-10.
    train_eval_images: int | None = None


PROFILES = {
    # On 2 CPU cores plain-56 stays far behind the others after 15 epochs. Chapter 1 trains its
    # four networks from two seeds for 10 epochs, in one single-threaded worker process per core
    # (rl.compare(..., processes=None)); its time is in benchmarks/README.md.
    "quick": Profile(
        "quick",
        "digits",
        "scikit-learn's 8x8 digits upsampled to 16x16, shipped with the package",
        16,
        1,
        (8, 16, 32),
        epochs=15,
        schedule="cosine",
        warmup_steps=12,
        seeds=(0,),
    ),
    # One free-tier GPU (T4 class): the paper's networks and data, the paper's optimiser, and a
    # schedule shortened to 5 epochs (warm-up over the first of them, then cosine) so that the
    # heaviest chapter, Chapter 1's four networks, stays within about 5 minutes. The numbers
    # behind that choice, and how to re-measure them, are in benchmarks/README.md (gpu_profile.py).
    "gpu": Profile(
        "gpu",
        "cifar10",
        "CIFAR-10, 32x32 colour images (downloaded on first use, about 170 MB)",
        32,
        3,
        (16, 32, 64),
        epochs=5,
        schedule="cosine",
        warmup_steps=391,
        seeds=(0,),
        train_eval_images=10_000,
    ),
    # He et al. (2016a), Sec. 4.2: 64k iterations of batch 128, lr 0.1 divided by 10 at 32k and
    # 48k (164 epochs of CIFAR-10's 50k images). Opt-in only: hours per chapter on one GPU.
    "full": Profile(
        "full",
        "cifar10",
        "CIFAR-10, 32x32 colour images (downloaded on first use, about 170 MB)",
        32,
        3,
        (16, 32, 64),
        epochs=164,
        schedule="step",
        warmup_steps=0,
        milestones=(32_000, 48_000),
        max_steps=64_000,
        seeds=(0,),
    ),
}


@dataclass(frozen=True)
class Setup:
    profile: Profile
    device: torch.device
    seed: int
    dataset: str | None  # None: the notebook uses no dataset
    threads: int = 0  # PyTorch's CPU threads (torch.get_num_threads())

    def describe(self) -> str:
        data = self.dataset or "none (this chapter generates its own inputs)"
        threads = f" ({self.threads} CPU threads)" if self.device.type == "cpu" else ""
        return f"profile: {self.profile.name} | device: {self.device}{threads} | dataset: {data}"


def default_profile() -> str:
    """``gpu`` when CUDA is available, else ``quick``; never ``full``."""
    return "gpu" if torch.cuda.is_available() else "quick"


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else the one ``RESNET_BOOK_PROFILE`` names, else the default."""
    name = name or os.environ.get(ENV_VAR) or default_profile()
    if name not in PROFILES:
        raise ValueError(
            f"{ENV_VAR}={name!r} is not a profile; use one of "
            f"{', '.join(PROFILES)} (or leave it unset for the default)"
        )
    return PROFILES[name]


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a run prints the same numbers.

    On CUDA, cuDNN is also told to pick deterministic algorithms (and not to benchmark several
    and keep the fastest, which can differ from run to run)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def cgroup_cpu_limit(
    proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The CPU quota of this process's control group, in CPUs (e.g. 1.0 on Binder), or None.

    cgroup v2 writes ``"<quota> <period>"`` (or ``"max <period>"``) to ``cpu.max``; v1 writes the
    two to ``cpu.cfs_quota_us`` (-1: none) and ``cpu.cfs_period_us``. Every ancestor of the
    group can set its own limit, so the smallest one applies."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            base, files = root, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own hierarchy
            base, files = root / controllers, ("cpu.cfs_quota_us", "cpu.cfs_period_us")
            if not base.is_dir():
                base = root / "cpu"
        else:
            continue
        parts = [p for p in Path(path).parts if p != "/"]
        for depth in range(len(parts), -1, -1):  # the group itself, then each ancestor
            folder = base.joinpath(*parts[:depth])
            try:
                values = [(folder / f).read_text().split() for f in files]
            except OSError:
                continue
            quota, period = values[0] if len(files) == 1 else [values[0][0], values[1][0]]
            if quota not in ("max", "-1") and float(period) > 0:
                limits.append(float(quota) / float(period))
    return min(limits) if limits else None


def usable_cpus(proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int:
    """How many CPUs this process may actually keep busy: the CPUs it may run on (affinity),
    capped by its control group's quota, rounded up, at least 1. ``os.cpu_count()`` counts the
    node's CPUs instead, e.g. 64 on a Binder node whose quota is one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(proc, root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def size_threads() -> int:
    """Set PyTorch's CPU threads to :func:`usable_cpus` unless ``OMP_NUM_THREADS`` says otherwise.

    PyTorch starts one thread per core of the machine; under a quota of one CPU, those threads
    take turns on it and every operation waits for the slowest."""
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(usable_cpus())
    return torch.get_num_threads()


def setup(seed: int = 0, profile: str | None = None, uses_data: bool = True) -> Setup:
    """Seed everything, size the CPU threads, choose the profile and device, and print them
    with the dataset."""
    seed_everything(seed)
    threads = size_threads()
    chosen = get_profile(profile)
    result = Setup(chosen, pick_device(), seed, chosen.dataset if uses_data else None, threads)
    print(result.describe())
    return result
