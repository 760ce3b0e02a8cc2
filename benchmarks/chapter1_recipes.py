"""Chapter 1's eight quick-profile runs under other image sizes, epochs and training-set samples.

    python benchmarks/chapter1_recipes.py 16,10,0 8,10,0 8,10,500 8,8,0

Each argument is ``image_size,epochs,train_eval_images`` (0: measure the whole training set).
For each it trains plain-20/56 and ResNet-20/56 from seeds 0 and 1 as Chapter 1 does
(``rl.compare(..., processes=None)``: one single-threaded worker per usable CPU) and prints the
training wall time and each run's final training and test error. Time it on a quiet machine.
The worker processes' one-time start is timed first, on its own line, and not in the runs.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from torch.utils.data import Subset

import resnet_lib as rl


def run(image_size: int, epochs: int, train_eval_images: int) -> None:
    profile = rl.profiles.get_profile("quick")
    data = rl.data.digits(image_size=image_size)
    if train_eval_images:
        keep = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
        sample = Subset(data.unaugmented_train(), keep[:train_eval_images].tolist())
        data = dataclasses.replace(data, train_eval=sample)
    builders = {
        f"{family}-{depth}": functools.partial(
            rl.cifar_resnet,
            depth,
            num_classes=10,
            residual=residual,
            widths=profile.widths,
            in_channels=1,
        )
        for family, residual in [("plain", False), ("ResNet", True)]
        for depth in (20, 56)
    }
    config = dataclasses.replace(rl.config_for(profile), epochs=epochs)
    start = time.perf_counter()
    runs = rl.compare(builders, data, config, (0, 1), torch.device("cpu"), processes=None)
    seconds = time.perf_counter() - start
    train = {k: [f"{1 - h.train_acc[-1]:.1%}" for h in v] for k, v in runs.items()}
    test = {k: [f"{1 - h.test_acc[-1]:.1%}" for h in v] for k, v in runs.items()}
    print(
        f"{image_size}x{image_size}, {epochs} epochs, training set measured on "
        f"{train_eval_images or 'all'}: {seconds:.1f} s\n  training error {train}\n"
        f"  test error {test}",
        flush=True,
    )


def main(argv: list[str]) -> None:
    # The workers' fork server imports torch once per process; time that apart from the runs.
    start = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=rl.train._worker_context()) as pool:
        pool.submit(int).result()
    print(f"worker processes ready (once per process) in {time.perf_counter() - start:.1f} s")
    for arg in argv or ["16,10,0", "8,10,0"]:
        run(*map(int, arg.split(",")))


if __name__ == "__main__":
    main(sys.argv[1:])
