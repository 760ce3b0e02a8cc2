"""How long the gpu and full profiles' training takes here: epoch times on CIFAR-shaped data.

    python benchmarks/gpu_profile.py                    # on CUDA if present, else the CPU
    python benchmarks/gpu_profile.py --steps 5          # quicker, noisier (e.g. on a CPU)

For each CIFAR network the chapters train (ResNet-20/56/110; a plain twin costs the same), it
times ``--steps`` SGD steps of batch 128 on random 3x32x32 images, after warm-up steps, in
training mode, and evaluation passes of batch 512, synchronising the device around each timing.
It prints images per second and the seconds one epoch costs in the gpu profile: 50,000 training
images plus the per-epoch measurements (the training loss on the profile's sample of
``train_eval_images`` images and the 10,000 test images). Then it projects Chapter 1, the
heaviest chapter (plain-20, plain-56, ResNet-20, ResNet-56, one seed), in the gpu and full
profiles. Data loading is not included: the CIFAR-10 tensors are in memory and augmented a batch
at a time (resnet_lib.data.ImageTensors), which this measures separately (--no-data to skip).

Run it on the GPU you size for (a T4 for the gpu profile's 5-minute budget); on another GPU,
scale by the two GPUs' measured throughput, not their data sheets: these small convolutions
(16 to 64 channels) are limited more by memory traffic and kernel launches than by peak FLOPS.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import resnet_lib as rl
from resnet_lib.data import CIFAR10_MEAN, CIFAR10_STD, ImageTensors

TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(model: nn.Module, device: torch.device, steps: int, warmup: int) -> float:
    """Training images per second (forward, loss, backward, SGD step) at batch 128."""
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(128, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (128,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * 128 / (time.perf_counter() - start)


@torch.no_grad()
def eval_rate(model: nn.Module, device: torch.device, steps: int) -> float:
    model.to(device).eval()
    x = torch.randn(512, 3, 32, 32, device=device)
    model(x)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model(x)
    sync(device)
    return steps * 512 / (time.perf_counter() - start)


def data_rate(batches: int = 50) -> float:
    """Images per second that ImageTensors delivers, augmented, at batch 128 (on the CPU)."""
    images = torch.randint(0, 256, (TRAIN_IMAGES, 3, 32, 32), dtype=torch.uint8)
    ds = ImageTensors(
        images, torch.zeros(TRAIN_IMAGES, dtype=torch.long), CIFAR10_MEAN, CIFAR10_STD, augment=True
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True)
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * 128 / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per network")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    parser.add_argument("--no-data", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else rl.pick_device()
    rl.seed_everything(0)  # also makes cuDNN deterministic, as in the notebooks
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    gpu, full = rl.PROFILES["gpu"], rl.PROFILES["full"]
    gpu_measured = (gpu.train_eval_images or TRAIN_IMAGES) + TEST_IMAGES
    full_measured = TRAIN_IMAGES + TEST_IMAGES  # full measures the whole training set

    def epoch_seconds(depth: int, measured: int) -> float:
        return TRAIN_IMAGES / rates[depth][0] + measured / rates[depth][1]

    print(f"device: {device} ({name}); torch {torch.__version__}; batch 128, 3x32x32, fp32")
    print(f"{'network':12s} {'train img/s':>12s} {'eval img/s':>11s} {'s/epoch, gpu profile':>21s}")
    rates = {}
    for depth in args.depths:
        model = rl.cifar_resnet(depth)
        rates[depth] = (
            train_rate(model, device, args.steps, args.warmup),
            eval_rate(model, device, max(3, args.steps // 3)),
        )
        print(
            f"ResNet-{depth:<5d} {rates[depth][0]:12,.0f} {rates[depth][1]:11,.0f} "
            f"{epoch_seconds(depth, gpu_measured):21.1f}"
        )
    if not args.no_data:
        print(
            f"data: ImageTensors delivers {data_rate():,.0f} augmented img/s on the CPU "
            f"(enough if above the fastest network's training rate)"
        )
    if {20, 56} <= rates.keys():  # Chapter 1: plain twins cost what the ResNets cost
        gpu_epoch = 2 * (epoch_seconds(20, gpu_measured) + epoch_seconds(56, gpu_measured))
        full_epoch = 2 * (epoch_seconds(20, full_measured) + epoch_seconds(56, full_measured))
        full_epochs = full.max_steps / math.ceil(TRAIN_IMAGES / full.batch_size)
        print(
            f"Chapter 1, four networks, one seed: gpu profile ({gpu.epochs} epochs) "
            f"{gpu.epochs * gpu_epoch / 60:.1f} min of training; full profile "
            f"({full.max_steps:,} steps, {full_epochs:.0f} epochs) "
            f"{full_epochs * full_epoch / 3600:.1f} h"
        )


if __name__ == "__main__":
    main()
