"""Training throughput of resnet_lib's ImageNet ResNets against torchvision's.

One training step = forward, cross-entropy loss, backward, SGD (momentum) update, on a fixed random
batch. For each (model, image size) both implementations get the same weights; measurements are
paired and interleaved (ours then theirs, theirs then ours, ...) so that both share the machine's
noise. We report the median images per second of each and the median of the paired ratios
ours / torchvision, with their range.

    python benchmarks/throughput.py                     # defaults: ~2 minutes on 2 CPU cores
    python benchmarks/throughput.py --check             # exit 1 if a ratio is outside 1 +- 2%
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torchvision
import torchvision.models as tvm
from torch import nn

import resnet_lib as rl


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Cost on 2 CPU cores (quiet machine, measured): a batch-32 training step of "
        "ResNet-18/50 takes about 0.16/0.45 s at 64x64 and 1.5/5.2 s at 224x224. The "
        "defaults time 1 step per measurement, 20 paired measurements at 64x64 and 5 at "
        "224x224 (rounds=0: max(5, round(20 * (64/size)^2))), plus 1 warm-up step each: "
        "about 2 minutes in all, longer on a busy machine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--batch", type=int, default=32, help="images per training step")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224], help="image sizes (square)")
    p.add_argument(
        "--models",
        nargs="+",
        default=["resnet18", "resnet50"],
        help="constructor names present in both resnet_lib and torchvision.models",
    )
    p.add_argument("--steps", type=int, default=1, help="training steps per timed measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per model and config")
    p.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="paired measurements per config (median taken); 0 = auto, see below",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads; 0 = leave PyTorch's default"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="a ratio within 1 +- tolerance counts as 'same speed'",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 if any ratio is outside the tolerance",
    )
    return p.parse_args(argv)


def make_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device
) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def timed(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def bench(name: str, size: int, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    theirs = getattr(tvm, name)().to(device).train()  # random weights; nothing is downloaded
    ours = getattr(rl, name)().to(device).train()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(args.batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    steps = args.steps
    rounds = args.rounds or max(5, round(20 * (64 / size) ** 2))
    run = {"ours": make_step(ours, x, y, device), "torchvision": make_step(theirs, x, y, device)}
    for step in run.values():
        for _ in range(args.warmup):
            step()
    rates: dict[str, list[float]] = {"ours": [], "torchvision": []}
    for r in range(rounds):
        order = ["ours", "torchvision"] if r % 2 == 0 else ["torchvision", "ours"]
        for key in order:
            rates[key].append(args.batch * steps / timed(run[key], steps))
    ratios = [a / b for a, b in zip(rates["ours"], rates["torchvision"], strict=True)]
    return {
        "model": name,
        "size": size,
        "rounds": rounds,
        "ours": statistics.median(rates["ours"]),
        "torchvision": statistics.median(rates["torchvision"]),
        "ratio": statistics.median(ratios),
        "spread": (min(ratios), max(ratios)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"device {device}, threads {torch.get_num_threads()}, batch {args.batch}, "
        f"steps per measurement {args.steps}, warmup {args.warmup}"
    )
    print(
        f"{'model':<10} {'size':>5} {'pairs':>5} {'ours img/s':>11} {'tv img/s':>9} "
        f"{'ours/tv':>8} {'range':>13}  within {args.tolerance:.0%}"
    )
    ok = True
    for size in args.sizes:
        for name in args.models:
            r = bench(name, size, args, device)
            within = abs(r["ratio"] - 1) <= args.tolerance
            ok &= within
            lo, hi = r["spread"]
            print(
                f"{name:<10} {size:>5} {r['rounds']:>5} {r['ours']:>11.1f} "
                f"{r['torchvision']:>9.1f} {r['ratio']:>8.3f} {lo:>6.3f}-{hi:<6.3f}  "
                f"{'yes' if within else 'NO'}",
                flush=True,
            )
    print("all ratios within tolerance" if ok else "some ratios outside tolerance")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
