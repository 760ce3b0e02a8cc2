"""One training loop for every experiment in the book, and its command line.

SGD with momentum and weight decay; the learning rate follows a schedule given per *step*:
linear warm-up then cosine decay (the quick profile), or step decay by 10x at fixed iterations
(He et al. 2016a, Sec. 4.2: lr 0.1, divided by 10 at 32k and 48k iterations, stop at 64k).

    python -m resnet_lib.train --model resnet56 --profile full        # the paper's recipe
    python -m resnet_lib.train --model resnet56 --profile gpu         # its 5-epoch version
    python -m resnet_lib.train --model plain20 --data digits --epochs 15

Data-parallel training (PyTorch's DistributedDataParallel): torchrun starts N processes, each
with a replica of the network; ``--distributed`` makes every one of them train on its own shard
of each batch and average the gradients with the others before every step. ``--batch-size`` is
the GLOBAL batch: each process takes batch/N examples per step, so the steps are those of one
process with the whole batch. Two CPU processes (backend gloo) on this machine:

    torchrun --standalone --nproc_per_node=2 -m resnet_lib.train --distributed \\
        --model resnet20 --iterations 40 --batch-size 128 --out history.json

(``python -m torch.distributed.run`` is the same as ``torchrun``.) Four GPUs of one machine
(backend nccl, one process per GPU, process k on cuda:k; --sync-bn: BatchNorm over the whole
batch):

    torchrun --standalone --nproc_per_node=4 -m resnet_lib.train --distributed \\
        --model resnet56 --profile gpu --sync-bn --out history.json

Two machines with four GPUs each: the same command on both, naming one of them (HOST) as the
meeting point; the job id is any name both use:

    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_id=resnet56 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29400 -m resnet_lib.train --distributed --model resnet56 ...

(With ``--master_addr=HOST --master_port=29400`` instead of the rdzv options, torchrun's static
rendezvous, each machine also needs ``--node_rank=0`` or ``1``.) Every process evaluates its
share of the images and the sums are added up; process 0 prints and writes ``--out``, the others
write nothing. The processes draw their batches from one permutation per epoch (PyTorch's
DistributedSampler), which is not the order of a run without ``--distributed``: to compare step
by step, run the same command with ``--nproc_per_node=1``. BatchNorm: without --sync-bn each
process normalises with the statistics of its own shard (batch/N examples), so a run with BN is
close to, not equal to, the one-process run (``--norm none``: equal up to rounding); PyTorch's
SyncBatchNorm works on GPUs only.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import math
import multiprocessing
import os
import pickle
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from . import data as data_lib
from .efficiency import count_parameters
from .models import cifar_resnet
from .profiles import (
    PROFILES,
    Profile,
    get_profile,
    pick_device,
    seed_everything,
    usable_cpus,
)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" (with warm-up), "step" or "constant"
    warmup_steps: int = 12
    milestones: tuple[int, ...] = ()  # steps where "step" divides the rate by 10
    max_steps: int | None = None  # stop after this many steps (the paper counts iterations)
    eval_train: bool = True  # measure loss/accuracy on the whole training set after each epoch
    num_workers: int = 0
    # He et al. (2016a), Sec. 4.2, for ResNet-110: "we use 0.01 to warm up the training until the
    # training error is below 80% (about 400 iterations), and then go back to 0.1". With
    # low_lr set, every step uses it until the running training error (over the last
    # LOW_LR_WINDOW batches) falls below low_lr_until_error; then the schedule takes over.
    low_lr: float | None = None
    low_lr_until_error: float = 0.8


def config_for(profile: Profile) -> TrainConfig:
    """The training recipe of ``profile``'s experiments."""
    return TrainConfig(
        epochs=profile.epochs,
        batch_size=profile.batch_size,
        lr=profile.lr,
        schedule=profile.schedule,
        warmup_steps=profile.warmup_steps,
        milestones=profile.milestones,
        max_steps=profile.max_steps,
    )


#: The paper's CIFAR-10 recipe (He et al. 2016a, Sec. 4.2), the full profile's.
PAPER_CIFAR10 = config_for(PROFILES["full"])

#: Batches over which TrainConfig.low_lr's running training error is averaged.
LOW_LR_WINDOW = 10


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base rate at ``step``: ``(step+1)/warmup`` for the first ``warmup_steps``,
    then ``(1 + cos(pi * t)) / 2`` where t goes from 0 to 1 over the remaining steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return factor


def step_decay(
    milestones: Sequence[int], gamma: float = 0.1, warmup_steps: int = 0
) -> Callable[[int], float]:
    """Multiplier ``gamma ** (number of milestones passed)``, after an optional linear warm-up."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return gamma ** sum(step >= m for m in milestones)

    return factor


def lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    if config.schedule == "cosine":
        return warmup_cosine(config.warmup_steps, total_steps)
    if config.schedule == "step":
        return step_decay(config.milestones, warmup_steps=config.warmup_steps)
    if config.schedule == "constant":
        return step_decay((), warmup_steps=config.warmup_steps)
    raise ValueError(f"unknown schedule {config.schedule!r}; use 'cosine', 'step' or 'constant'")


@dataclass
class History:
    """Per-epoch measurements of one run."""

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # whole training set, eval mode
    train_acc: list[float] = field(default_factory=list)
    running_loss: list[float] = field(default_factory=list)  # mean over the epoch's batches
    step_loss: list[float] = field(default_factory=list)  # every step's batch (global batch)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    steps: int = 0
    diverged: bool = False  # the loss stopped being finite; the lists end at the last full epoch
    low_lr_steps: int = 0  # steps trained at TrainConfig.low_lr before the schedule took over

    def to_dict(self) -> dict:
        return asdict(self)


class Diverged(FloatingPointError):
    """The loss stopped being finite; ``history`` holds the epochs completed before that."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history

    def __reduce__(self):  # so that a worker process can send it back
        return type(self), (str(self), self.history)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    sum_over_processes: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) over ``loader``.

    With ``sum_over_processes``, every process of a torch.distributed group calls this with its
    own share of the images; the sums are added up over the processes before dividing, so every
    process gets the measurement over all of them."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    model.train(was_training)
    if sum_over_processes:
        sums = torch.tensor([loss_sum, correct, count], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        loss_sum, correct, count = sums.tolist()
    return loss_sum / count, correct / count


def process_group() -> tuple[int, int] | None:
    """``(rank, world size)`` of this process in the initialised torch.distributed process
    group (torchrun's processes, after ``init_process_group``), else None."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def _loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int,
    device: torch.device,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """Batches of ``dataset``; with ``shard = (rank, world)``, process ``rank``'s share of every
    batch of ``batch_size``: ``batch_size / world`` examples. Training shards go through a
    DistributedSampler: each epoch (``set_epoch``) one permutation seeded by ``seed + epoch``,
    the same in every process, which process r reads from position r in steps of ``world``, so
    the shards of a step together are a batch of the permutation. Evaluation shards
    (``shuffle=False``) are every ``world``-th image, so that each is measured exactly once."""
    sampler = None
    if shard is not None:
        rank, world = shard
        if shuffle:
            sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=seed)
        else:
            dataset = Subset(dataset, range(rank, len(dataset), world))
        batch_size //= world
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
    )


def _mean_over_processes(values: torch.Tensor, group: tuple[int, int] | None) -> torch.Tensor:
    """The mean of ``values`` over the processes of the group (``values`` without one). Each
    process holds the mean over its shard of the batch, and the shards are equal in size, so
    this is the mean over the global batch, the number a single process would log."""
    if group is None:
        return values
    values = values.clone()
    dist.all_reduce(values)  # the sum: gloo has no average
    return values / group[1]


def _copy_buffers_from_first_process(model: nn.Module) -> None:
    """Give every process process 0's buffers (BatchNorm's running statistics). DDP sends them
    at the start of each forward pass, so after the last step each process still holds the
    statistics of its own last shard; this makes the replicas equal for evaluation."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def state_checksum(model: nn.Module) -> str:
    """SHA-256 of ``model``'s state_dict (every name, and every parameter's and buffer's
    bytes): equal for two replicas exactly when they hold the same numbers."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def fit(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset | None = None,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "",
    train_eval_set: Dataset | None = None,
) -> History:
    """Train ``model`` in place with SGD and ``config``'s schedule; return its :class:`History`.

    After each epoch the loss and accuracy are measured in eval mode on the whole training set
    (``train_eval_set`` if given: the same images without augmentation) and on ``test_set``.

    In a process of an initialised torch.distributed group (see :func:`main`'s
    ``--distributed``), every process of the group calls this with the same arguments and trains
    a replica: the model is wrapped in DistributedDataParallel (which copies process 0's weights
    to all and averages the gradients before each step), each process takes its
    ``batch_size / world`` examples of every batch (:func:`_loader`), and the logged loss is
    averaged over the processes. The evaluation is sharded and summed the same way, so every
    process returns the same History."""
    device = torch.device(device) if device is not None else pick_device()
    group = process_group()
    rank, world = group or (0, 1)
    if config.batch_size % world:
        raise ValueError(
            f"batch_size {config.batch_size} is the global batch and must be divisible by the "
            f"{world} processes; e.g. {config.batch_size // world * world or world}"
        )
    if group is not None and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # the process's own GPU
    seed_everything(seed + rank)  # each process its own augmentation; DDP copies the weights
    model.to(device).train()
    net = model
    if group is not None:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    loader = _loader(train_set, config.batch_size, True, seed, config.num_workers, device, group)
    eval_batch = max(config.batch_size, 512)
    train_eval = _loader(train_eval_set or train_set, eval_batch, False, seed, 0, device, group)
    test_eval = _loader(test_set, eval_batch, False, seed, 0, device, group) if test_set else None
    total = len(loader) * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, total))
    history = History()
    bar = _progress(total, desc, progress)
    low = config.low_lr is not None  # He et al.'s warm-up: see TrainConfig.low_lr
    recent_errors: collections.deque[float] = collections.deque(maxlen=LOW_LR_WINDOW)
    for epoch in range(1, config.epochs + 1):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)  # a new permutation, the same in every process
        start, loss_sum, batches = time.perf_counter(), 0.0, 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = net(x)
            loss = nn.functional.cross_entropy(logits, y)
            error = (logits.argmax(1) != y).float().mean()
            # the global batch's loss and error, so that every process decides alike below
            batch_loss, batch_error = _mean_over_processes(
                torch.stack([loss.detach(), error]), group
            ).tolist()
            if low:
                for param_group in optimizer.param_groups:
                    param_group["lr"] = config.low_lr
                recent_errors.append(batch_error)
                history.low_lr_steps += 1
                low = statistics.fmean(recent_errors) >= config.low_lr_until_error
            if not math.isfinite(batch_loss):
                bar.close()
                history.diverged = True
                raise Diverged(
                    f"loss became {batch_loss} at step {history.steps}; "
                    "lower the learning rate or add warm-up",
                    history,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # with DDP, this also averages the gradients over the processes
            optimizer.step()
            scheduler.step()
            history.step_loss.append(batch_loss)
            loss_sum, batches = loss_sum + batch_loss, batches + 1
            history.steps += 1
            bar.update(1)
            if history.steps >= total:
                break
        history.epoch.append(epoch)
        history.lr.append(optimizer.param_groups[0]["lr"])
        history.running_loss.append(loss_sum / batches)
        if group is not None:
            _copy_buffers_from_first_process(model)
        if config.eval_train:
            loss_, acc = evaluate(model, train_eval, device, group is not None)
            history.train_loss.append(loss_)
            history.train_acc.append(acc)
        if test_eval is not None:
            loss_, acc = evaluate(model, test_eval, device, group is not None)
            history.test_loss.append(loss_)
            history.test_acc.append(acc)
        history.seconds.append(time.perf_counter() - start)
        bar.set_postfix(loss=f"{history.running_loss[-1]:.3f}")
        if history.steps >= total:
            break
    bar.close()
    return history


def lr_range_test(
    model: nn.Module,
    train_set: Dataset,
    *,
    lr_min: float = 1e-3,
    lr_max: float = 10.0,
    steps: int = 100,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    stop_factor: float = 4.0,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The learning-rate range test of Smith (2017, Sec. 3.3): train ``model`` (in place) with
    SGD for up to ``steps`` steps while the rate grows from ``lr_min`` to ``lr_max``, and record
    the loss of every step's batch before the step. Smith grew the rate linearly; here it grows
    geometrically, ``lr_min * (lr_max / lr_min) ** (step / (steps - 1))``, so that the rates are
    evenly spaced on a log axis. The test stops early when the loss is not finite or exceeds
    ``stop_factor`` times the lowest loss so far. Returns ``(rates, losses)`` of the steps taken."""
    device = torch.device(device) if device is not None else pick_device()
    seed_everything(seed)
    model.to(device).train()
    loader = _loader(train_set, batch_size, True, seed, 0, device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr_min, momentum=momentum, weight_decay=weight_decay
    )
    rates, losses = [], []
    batches = iter(loader)
    for step in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:  # another pass over the (reshuffled) training set
            batches = iter(loader)
            x, y = next(batches)
        lr = lr_min * (lr_max / lr_min) ** (step / max(1, steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_fn(model(x.to(device)), y.to(device))
        rates.append(lr)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > stop_factor * min(losses):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return np.array(rates), np.array(losses)


def compare(
    builders: Mapping[str, Callable[[], nn.Module]],
    data: data_lib.DataSplits,
    config: TrainConfig,
    seeds: Sequence[int] = (0,),
    device: torch.device | str | None = None,
    progress: bool = True,
    diverged: str = "raise",
    processes: int | None = 1,
) -> dict[str, list[History]]:
    """Train a fresh ``builders[name]()`` for every name and seed with the same ``config`` (the
    same budget); one progress bar over all runs. Returns ``{name: [history per seed]}``.

    A run whose loss stops being finite raises ``FloatingPointError``; with
    ``diverged="record"`` it is reported on one line and its history is kept up to the last
    complete epoch with ``diverged=True``, so that a comparison of risky settings (large learning
    rates, no normalisation) still finishes.

    ``processes`` > 1 trains the runs in that many worker processes, each with an equal share of
    the CPU threads; ``None`` takes one per usable CPU on a CPU and 1 on a GPU. Small networks
    train faster so than with the threads of one process. Each worker gets ``data`` and the
    builders by pickling, so the builders must be picklable, e.g.
    ``functools.partial(rl.cifar_resnet, 20, residual=False)`` (a lambda is not). A run's numbers
    depend on its seed and its thread count only, not on which process trains it. The workers
    take a few seconds to get ready the first time; :func:`start_workers` starts that earlier.
    In a script, call this under ``if __name__ == "__main__":`` (each worker imports the script)."""
    if diverged not in ("raise", "record"):
        raise ValueError(f"diverged must be 'raise' or 'record', not {diverged!r}")
    device = torch.device(device) if device is not None else pick_device()
    runs = [(name, seed) for seed in seeds for name in builders]
    processes = _process_count(processes, device, builders, len(runs))
    results: dict[str, list[History | None]] = {name: [None] * len(seeds) for name in builders}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(runs), desc="runs", unit="run", disable=not progress, leave=False)
    if processes == 1:
        outcomes = (
            train_run(builders[name], name, seed, data, config, device) for name, seed in runs
        )
    else:
        outcomes = _in_workers(builders, runs, data, config, device, processes)
    for name, seed, history, error in outcomes:
        if error is not None:
            if diverged == "raise":
                raise error
            print(f"{name}, seed {seed}: diverged ({error})")
        results[name][list(seeds).index(seed)] = history
        bar.update(1)
    bar.close()
    return results


@dataclass(frozen=True)
class SweepRow:
    """One trained network of :func:`depth_sweep`: the last epoch's measurements of one seed."""

    name: str  # "ResNet-56": the family and the depth
    family: str
    depth: int
    seed: int
    parameters: int
    train_loss: float  # NaN where the run diverged (or the training set was not measured)
    train_err: float  # 1 - training accuracy
    test_err: float  # 1 - test accuracy
    seconds_per_epoch: float  # median over the epochs, evaluations included
    diverged: bool
    history: History


def depth_sweep(
    depths: Sequence[int] | Mapping[str, Sequence[int]],
    families: Mapping[str, Callable[[int], nn.Module]],
    data: data_lib.DataSplits,
    config: TrainConfig,
    seeds: Sequence[int] = (0,),
    device: torch.device | str | None = None,
    **compare_kwargs,
) -> list[SweepRow]:
    """Train each family of networks at each depth with one recipe and budget: one call of
    :func:`compare` (so one progress bar, and one pool of worker processes on a CPU) for all.

    ``families[family](depth)`` builds a network, e.g. ``{"plain":
    functools.partial(rl.cifar_resnet, residual=False, widths=(8, 16, 32))}``; for worker
    processes the builders must be picklable (``functools.partial``, not a lambda). ``depths``
    applies to every family, or maps each family to its own depths. The remaining keyword
    arguments go to :func:`compare` (``processes``, ``diverged``, ``progress``).

    Returns a :class:`SweepRow` per network and seed, in the order of ``families``, then
    ``depths``, then ``seeds``."""
    if not families:
        raise ValueError("families is empty: give at least one {name: builder(depth)}")
    if isinstance(depths, Mapping):
        missing = [family for family in families if family not in depths]
        if missing:
            raise ValueError(f"depths gives no depths for {missing}; it has {list(depths)}")
        per_family = {family: tuple(depths[family]) for family in families}
    else:
        per_family = {family: tuple(depths) for family in families}
    builders = {
        f"{family}-{depth}": functools.partial(families[family], depth)
        for family in families
        for depth in per_family[family]
    }
    runs = compare(builders, data, config, seeds, device, **compare_kwargs)
    rows = []
    for family, family_depths in per_family.items():
        for depth in family_depths:
            name = f"{family}-{depth}"
            with torch.device("meta"):  # only the shapes: no weights allocated or initialised
                parameters = count_parameters(builders[name]())
            for seed, history in zip(seeds, runs[name], strict=True):
                rows.append(_sweep_row(name, family, depth, seed, parameters, history))
    return rows


def _sweep_row(
    name: str, family: str, depth: int, seed: int, parameters: int, history: History
) -> SweepRow:
    def last(values: list[float]) -> float:
        return math.nan if history.diverged or not values else values[-1]

    return SweepRow(
        name=name,
        family=family,
        depth=depth,
        seed=seed,
        parameters=parameters,
        train_loss=last(history.train_loss),
        train_err=1 - last(history.train_acc),
        test_err=1 - last(history.test_acc),
        seconds_per_epoch=statistics.median(history.seconds) if history.seconds else math.nan,
        diverged=history.diverged,
        history=history,
    )


def train_run(
    build: Callable[[], nn.Module],
    name: str,
    seed: int,
    data: data_lib.DataSplits,
    config: TrainConfig,
    device: torch.device,
) -> tuple[str, int, History, Diverged | None]:
    """One run of :func:`compare`: a fresh ``build()`` trained with ``seed``; returns the name, the
    seed, the history, and the :class:`Diverged` error if the loss stopped being finite."""
    seed_everything(seed)  # the initial weights depend on the seed too
    model = build()
    try:
        history = fit(
            model,
            data.train,
            data.test,
            config,
            device,
            seed,
            progress=False,
            desc=f"{name}, seed {seed}",
            train_eval_set=data.train_eval,
        )
    except Diverged as err:
        return name, seed, err.history, err
    return name, seed, history, None


def _process_count(
    processes: int | None,
    device: torch.device,
    builders: Mapping[str, Callable[[], nn.Module]],
    runs: int,
) -> int:
    if processes is None:
        processes = usable_cpus() if device.type == "cpu" else 1
        if processes > 1 and not _picklable(builders):
            print(
                "training in this process: the builders cannot be pickled for worker "
                "processes (use functools.partial instead of a lambda)"
            )
            return 1
    if processes > 1 and device.type != "cpu":
        raise ValueError(f"processes={processes} is for the CPU; on {device} use one process")
    if processes > 1 and not _picklable(builders):
        raise TypeError(
            "worker processes need builders that can be pickled, such as "
            "functools.partial(rl.cifar_resnet, 20, residual=False); a lambda or a "
            "function defined in a notebook cannot be. Pass processes=1."
        )
    return max(1, min(processes, runs))


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:  # lambdas, local functions and their closures raise several kinds
        return False
    return True


def _in_workers(
    builders: Mapping[str, Callable[[], nn.Module]],
    runs: list[tuple[str, int]],
    data: data_lib.DataSplits,
    config: TrainConfig,
    device: torch.device,
    processes: int,
):
    """Yield ``train_run``'s results from ``processes`` worker processes, as they finish. The
    largest networks start first, so that the workers finish at about the same time."""
    sizes = {name: sum(p.numel() for p in build().parameters()) for name, build in builders.items()}
    threads = max(1, usable_cpus() // processes)
    context = _worker_context()
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        futures = [
            pool.submit(train_run, builders[name], name, seed, data, config, device)
            for name, seed in sorted(runs, key=lambda run: -sizes[run[0]])
        ]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:  # stopped early (an error, or the caller raised): start no further run
            pool.shutdown(cancel_futures=True)


def start_workers(device: torch.device | str | None = None) -> None:
    """Start getting :func:`compare`'s worker processes ready now, in the background, so that
    the imports they need overlap with the cells that run before the training. Optional: without
    it the first ``compare(..., processes>1)`` waits for them (a few seconds). Does nothing on a
    GPU, on one CPU, or where workers are spawned rather than forked from a server."""
    device = torch.device(device) if device is not None else pick_device()
    if device.type != "cpu" or usable_cpus() < 2:
        return
    if _worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def map_in_workers(function: Callable, jobs: Sequence[dict], processes: int | None = None) -> list:
    """``[function(**kwargs) for kwargs in jobs]``, in worker processes on the CPU: the pool of
    :func:`compare` for work that is not one of its training runs (Chapter 11's transformers).

    ``processes=None`` uses one process per usable CPU (at most one per job); 1 runs here. The
    results come back in the order of ``jobs``. ``function`` must be importable from a module
    (a worker process cannot unpickle a function defined in a notebook); it sets its own number
    of threads if it cares."""
    processes = min(len(jobs), processes or usable_cpus())
    if processes <= 1:
        return [function(**kwargs) for kwargs in jobs]
    if getattr(function, "__module__", None) == "__main__" or not _picklable(function):
        raise TypeError(
            f"worker processes need a function they can import, such as one from resnet_lib; "
            f"{function!r} cannot be pickled. Pass processes=1 to run it here."
        )
    with ProcessPoolExecutor(processes, mp_context=_worker_context()) as pool:
        return list(pool.map(_call_with_kwargs, [(function, kwargs) for kwargs in jobs]))


def _call_with_kwargs(job: tuple[Callable, dict]):
    function, kwargs = job
    return function(**kwargs)


def _worker_context() -> multiprocessing.context.BaseContext:
    """How worker processes start. Not by forking this process: a child forked from a process
    that has used OpenMP threads can hang in that pool. Where the system has it, a fork server: a
    fresh process that imports what a worker needs once and then forks every worker, so a worker
    starts in milliseconds instead of importing it all itself. That is resnet_lib with torch, this
    module (which importing the package leaves for later), and torch._dynamo, which torch imports the first time a process creates an optimizer (2.4 s on
    one core of our 2-core CI machine, more than torch itself). The server lives as long as this
    process and keeps the resnet_lib it imported: after editing resnet_lib, restart the kernel.
    Elsewhere (Windows) workers are spawned."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["resnet_lib", "resnet_lib.train", "torch._dynamo"])
    return context


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, leave=False)


def build_model(
    name: str,
    data: data_lib.DataSplits,
    widths: tuple[int, ...] = (16, 32, 64),
    shortcut: str = "A",
    norm: str = "batch",
) -> nn.Module:
    """``resnetN`` or ``plainN`` (the CIFAR family, depth N = 6n+2) for ``data``'s images;
    ``norm="none"`` leaves out every BatchNorm."""
    if norm not in ("batch", "none"):
        raise ValueError(f"norm must be 'batch' or 'none', not {norm!r}")
    for prefix, residual in (("resnet", True), ("plain", False)):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return cifar_resnet(
                int(name[len(prefix) :]),
                num_classes=data.num_classes,
                shortcut=shortcut,
                residual=residual,
                widths=widths,
                in_channels=data.in_channels,
                norm_layer=nn.Identity if norm == "none" else None,
            )
    raise ValueError(f"unknown model {name!r}; use resnetN or plainN with N = 6n+2 (e.g. resnet56)")


def main(argv: list[str] | None = None) -> History:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_lib.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="resnet20", help="resnetN or plainN, N = 6n+2")
    parser.add_argument(
        "--data",
        choices=list(data_lib.DATASETS),
        default=None,
        help="default: the profile's dataset",
    )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help="whose recipe and data (default: $RESNET_BOOK_PROFILE, else gpu "
        "with CUDA and quick without)",
    )
    parser.add_argument("--shortcut", choices=["A", "B", "C"], default="A")
    parser.add_argument("--widths", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--schedule", choices=["cosine", "step", "constant"], default=None)
    parser.add_argument(
        "--milestones",
        type=int,
        nargs="*",
        default=None,
        help="steps at which 'step' divides the rate by 10",
    )
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--root", default=None, help="dataset folder (cifar10)")
    parser.add_argument("--out", default=None, help="write the history as JSON here")
    parser.add_argument(
        "--norm",
        choices=["batch", "none"],
        default="batch",
        help="none: no BatchNorm (a network whose distributed run equals the one-process run)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training in each process torchrun starts (see the examples above)",
    )
    parser.add_argument(
        "--backend", choices=["gloo", "nccl"], default=None, help="default: nccl on CUDA, else gloo"
    )
    parser.add_argument(
        "--sync-bn",
        action="store_true",
        help="with --distributed on GPUs: BatchNorm statistics over the global batch",
    )
    parser.add_argument(
        "--replica-checksums",
        metavar="DIR",
        default=None,
        help="every process writes the SHA-256 of its final weights and buffers to "
        "DIR/rank<R>.sha256 (equal files: equal replicas)",
    )
    args = parser.parse_args(argv)
    launch = _check_launch(parser, args, sys.argv[1:] if argv is None else argv)

    profile = get_profile(args.profile)
    name = args.data or profile.dataset
    splits = data_lib.cifar10(args.root) if name == "cifar10" else data_lib.load(name)
    if profile.dataset != name:  # --data names another dataset: use the recipe made for it
        profile = PROFILES["full"] if name == "cifar10" else PROFILES["quick"]
    config = config_for(profile)
    overrides = {
        "epochs": args.epochs,
        "max_steps": args.iterations,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "schedule": args.schedule,
        "warmup_steps": args.warmup_steps,
        "milestones": tuple(args.milestones) if args.milestones is not None else None,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.iterations and args.epochs is None:
        config = replace(
            config,
            epochs=math.ceil(args.iterations / math.ceil(len(splits.train) / config.batch_size)),
        )
    widths = tuple(args.widths or (profile.widths if name == "digits" else (16, 32, 64)))
    device = torch.device(args.device) if args.device else pick_device()
    rank, world = 0, 1
    if launch is not None:
        rank, world, local_rank = launch
        if config.batch_size % world:
            parser.error(
                f"--batch-size {config.batch_size} is the global batch, shared by the {world} "
                f"processes: it must be divisible by {world} "
                f"(e.g. {config.batch_size // world * world or world})"
            )
        device = _process_device(parser, args, device, local_rank)
    seed_everything(args.seed)
    model = build_model(args.model, splits, widths, args.shortcut, args.norm)
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if rank == 0:
        print(f"profile: {profile.name} | device: {device} | dataset: {splits.describe()}")
        print(f"model: {args.model} (widths {widths}, shortcut {args.shortcut}) | {config}")
    if launch is not None:
        backend = args.backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
        if rank == 0:
            print(
                f"distributed: {world} processes ({backend}), {config.batch_size // world} "
                f"examples each per step, BatchNorm {_bn_mode(args)}"
            )
    try:
        history = fit(
            model,
            splits.train,
            splits.test,
            config,
            device,
            args.seed,
            progress=rank == 0,
            desc=args.model,
            train_eval_set=splits.train_eval,
        )
        if args.replica_checksums:
            os.makedirs(args.replica_checksums, exist_ok=True)
            path = os.path.join(args.replica_checksums, f"rank{rank}.sha256")
            with open(path, "w") as f:
                f.write(state_checksum(model) + "\n")
    finally:
        if launch is not None:
            dist.destroy_process_group()
    if rank == 0:
        last = {
            k: v[-1]
            for k, v in history.to_dict().items()
            if isinstance(v, list) and v and k != "step_loss"
        }
        print(json.dumps({"steps": history.steps, **last}, indent=1))
        if args.out:
            with open(args.out, "w") as f:
                record = {"model": args.model, "config": asdict(config), **history.to_dict()}
                json.dump({**record, "processes": world}, f)
    return history


#: What torchrun sets in every process it starts (with MASTER_ADDR and MASTER_PORT).
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


def _check_launch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]
) -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` from torchrun's environment with ``--distributed``,
    None without; a usage error for a distributed run that torchrun did not start."""
    if args.sync_bn and not args.distributed:
        parser.error("--sync-bn is for --distributed runs")
    if args.backend and not args.distributed:
        parser.error("--backend is for --distributed runs")
    if not args.distributed:
        return None
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        parser.error(
            f"--distributed needs {', '.join(missing)}, which torchrun sets in every process "
            "it starts; launch it with torchrun, e.g. for 2 processes on this machine:\n  "
            "torchrun --standalone --nproc_per_node=2 -m resnet_lib.train " + shlex.join(argv)
        )
    return tuple(int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def _process_device(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    device: torch.device,
    local_rank: int,
) -> torch.device:
    """The device of a distributed process: GPU number LOCAL_RANK on CUDA, else the CPU."""
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            parser.error(
                f"process {local_rank} of this machine has no GPU: it has "
                f"{torch.cuda.device_count()}; start at most that many (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        parser.error(f"--distributed runs on CUDA GPUs or CPUs, not on {device}; add --device cpu")
    if args.sync_bn and device.type != "cuda":
        parser.error(
            "--sync-bn needs CUDA: PyTorch's SyncBatchNorm works on GPUs only "
            "(DistributedDataParallel refuses it on a CPU: 'SyncBatchNorm layers only work with "
            "GPU modules'). Without it each process normalises with the statistics of its own "
            "shard of the batch."
        )
    return device


def _bn_mode(args: argparse.Namespace) -> str:
    if args.norm == "none":
        return "none (--norm none)"
    if args.sync_bn:
        return "synchronised over the processes (--sync-bn)"
    return "per process, over its own shard"


if __name__ == "__main__":
    main()
