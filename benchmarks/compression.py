"""Chapter 10's speed and memory figures, as ratios: BN folding and int8 speed-ups, int8
prediction agreement, and the checkpointing memory/time trade-off.

    python benchmarks/compression.py                  # about a minute on 2 CPU cores
    python benchmarks/compression.py --rounds 15 --threads 1

Speed: a forward pass of the CIFAR ResNet-20 of He et al. (2016a) at the paper's widths
(16, 32, 64) on a batch of 32x32 colour images, in eval mode on the CPU, float against BN-folded
against int8 and against 90% magnitude-pruned (resnet_lib.efficiency.fold_batchnorm,
quantize_int8, prune_magnitude); resnet_lib.efficiency.paired_speedups times them in turn, in a
rotating order, so that all share the machine's noise, and the median of the per-round ratios is
printed with its range. Speed does not depend on
the weights' values (denormals are flushed), so these networks are untrained.

Agreement: a ResNet-20 at the quick profile's widths trained on the digits (--epochs), quantised
with four calibration batches of training images, against its float self on the test images.

Checkpointing: peak bytes of a training step (resnet_lib.efficiency.peak_training_bytes) and
the median step time of a CIFAR ResNet-56 on the digits' shape, without and with its 27 blocks
in k checkpointed segments (resnet_lib.efficiency.checkpointed).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from torch import nn

import resnet_lib as rl
from resnet_lib import efficiency as eff

GOALS = {"fold": 1.15, "int8": 2.0, "agreement": 0.99}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=64, help="images per forward pass (speed)")
    p.add_argument("--rounds", type=int, default=9, help="paired speed measurements")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0: default")
    p.add_argument("--epochs", type=int, default=10, help="training epochs for the agreement")
    p.add_argument("--segments", type=int, nargs="+", default=[3, 5, 9, 27])
    return p.parse_args(argv)


def speed(args: argparse.Namespace) -> dict[str, list[float]]:
    torch.manual_seed(0)
    model = rl.cifar_resnet(20)
    x = torch.randn(args.batch, 3, 32, 32)
    with torch.no_grad():
        model.train()(x)  # running statistics other than the initial 0 and 1
    model.eval()
    variants = {
        "float": model,
        "fold": eff.fold_batchnorm(model),
        "int8": eff.quantize_int8(model, [x]),
        "pruned": eff.prune_magnitude(model, 0.9),
    }
    ratios = eff.paired_speedups(variants, x, args.rounds)
    ratios["size"] = [eff.serialized_bytes(model) / eff.serialized_bytes(variants["int8"])]
    return ratios


def agreement(args: argparse.Namespace) -> tuple[float, int]:
    profile = rl.get_profile("quick")
    data = rl.data.for_profile(profile)
    config = dataclasses.replace(rl.config_for(profile), epochs=args.epochs, eval_train=False)
    model = rl.cifar_resnet(
        20, num_classes=data.num_classes, in_channels=data.in_channels, widths=profile.widths
    )
    rl.train.fit(model, data.train, data.test, config, "cpu", seed=0, progress=False)
    model.eval()
    loader = torch.utils.data.DataLoader(data.unaugmented_train(), batch_size=128, shuffle=True)
    quantized = eff.quantize_int8(model, [x for x, _ in list(loader)[:4]])
    test_x = torch.stack([x for x, _ in data.test])
    with torch.no_grad():
        same = model(test_x).argmax(1) == quantized(test_x).argmax(1)
    return same.float().mean().item(), len(same)


def checkpointing(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    model = rl.cifar_resnet(56, widths=(8, 16, 32), in_channels=1).train()
    x = torch.randn(128, 1, 16, 16)
    variants = {"none": model} | {
        f"{k} segments": eff.checkpointed(model, k) for k in args.segments
    }

    def step_seconds(net: nn.Module) -> float:
        times = []
        for _ in range(4):
            start = time.perf_counter()
            net(x).sum().backward()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    peak = {name: eff.peak_training_bytes(net, x) for name, net in variants.items()}
    seconds = {name: step_seconds(net) for name, net in variants.items()}
    return [(name, peak[name] / peak["none"], seconds[name] / seconds["none"]) for name in variants]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, quantised engine "
        f"{torch.backends.quantized.engine}"
    )
    ratios = speed(args)
    print(f"\nCIFAR ResNet-20 forward pass, batch {args.batch}, 32x32, {args.rounds} paired rounds")
    print(f"{'ratio':28} {'median':>7} {'range':>13} {'goal':>6}  reached")
    for key, label in (("fold", "BN folding speed-up"), ("int8", "int8 speed-up")):
        r = ratios[key]
        print(
            f"{label:28} {statistics.median(r):7.2f} {min(r):6.2f}-{max(r):<6.2f} "
            f"{GOALS[key]:6.2f}  {'yes' if statistics.median(r) >= GOALS[key] else 'no'}"
        )
    r = ratios["pruned"]
    print(
        f"{'90% pruned (dense kernels)':28} {statistics.median(r):7.2f} {min(r):6.2f}-{max(r):<6.2f}"
    )
    print(f"{'int8 size reduction':28} {ratios['size'][0]:7.2f}")
    agree, n = agreement(args)
    print(
        f"{'int8 prediction agreement':28} {agree:7.1%} {'(' + str(n) + ' test images)':>13} "
        f"{GOALS['agreement']:6.0%}  {'yes' if agree >= GOALS['agreement'] else 'no'}"
    )
    print("\nCheckpointing, ResNet-56 (27 blocks), widths 8/16/32, batch 128 of 16x16")
    print(f"{'segments':12} {'peak memory ÷ none':>19} {'step time ÷ none':>17}")
    for name, memory, seconds in checkpointing(args):
        print(f"{name:12} {memory:19.2f} {seconds:17.2f}")


if __name__ == "__main__":
    main()
