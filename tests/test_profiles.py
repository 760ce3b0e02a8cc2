"""The profiles: which one runs where, what each trains, and PyTorch's threads under a CPU quota.

The thread tests build fake /proc/self/cgroup files and cgroup trees (v1 and v2) in a temporary
folder and point the functions at them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

import resnet_lib as rl
from resnet_lib import profiles, train

ENV = profiles.ENV_VAR


def test_gpu_profile_is_the_papers_networks_on_cifar10_with_a_short_schedule():
    gpu, full = rl.PROFILES["gpu"], rl.PROFILES["full"]
    assert (
        (gpu.dataset, gpu.widths, gpu.image_size, gpu.in_channels)
        == (full.dataset, full.widths, full.image_size, full.in_channels)
        == ("cifar10", (16, 32, 64), 32, 3)
    )
    assert (gpu.lr, gpu.batch_size) == (full.lr, full.batch_size) == (0.1, 128)
    steps_per_epoch = math.ceil(50_000 / gpu.batch_size)
    assert gpu.epochs * steps_per_epoch < full.max_steps / 10  # far shorter than the paper's
    assert gpu.warmup_steps <= steps_per_epoch
    assert train.config_for(gpu).schedule == "cosine"


def test_full_profile_is_the_papers_recipe():
    c = train.config_for(rl.PROFILES["full"])
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size) == (0.1, 0.9, 1e-4, 128)
    assert (c.schedule, c.milestones, c.max_steps) == ("step", (32_000, 48_000), 64_000)


@pytest.mark.parametrize(
    "cuda,env,expected",
    [
        (False, None, "quick"),
        (True, None, "gpu"),  # the defaults
        (True, "quick", "quick"),
        (False, "gpu", "gpu"),  # the variable wins
        (True, "full", "full"),
        (False, "full", "full"),  # full only when named
    ],
)
def test_profile_choice(monkeypatch, cuda, env, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if env is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, env)
    assert rl.get_profile().name == expected
    assert rl.get_profile("quick").name == "quick"  # an argument beats both


def test_full_is_never_a_default(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    for cuda in (False, True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        assert profiles.default_profile() != "full"


# -------------------------------------------------------------------------------- threads


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "0::/user.slice/binder\n")
    root = tmp_path / "sys"
    write(root / "user.slice" / "binder" / "cpu.max", "100000 100000\n")  # 1 CPU
    write(root / "user.slice" / "cpu.max", "400000 100000\n")  # its parent allows 4
    write(root / "cpu.max", "max 100000\n")
    assert profiles.cgroup_cpu_limit(proc, root) == 1.0


def test_cgroup_v2_parent_limit_applies(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "0::/a/b\n")
    root = tmp_path / "sys"
    write(root / "a" / "b" / "cpu.max", "max 100000\n")
    write(root / "a" / "cpu.max", "150000 100000\n")  # 1.5 CPUs
    assert profiles.cgroup_cpu_limit(proc, root) == 1.5
    assert profiles.usable_cpus(proc, root) == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v1_quota(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n")
    root = tmp_path / "sys"
    group = root / "cpu,cpuacct" / "docker" / "x"
    write(group / "cpu.cfs_quota_us", "50000\n")
    write(group / "cpu.cfs_period_us", "100000\n")
    assert profiles.cgroup_cpu_limit(proc, root) == 0.5
    assert profiles.usable_cpus(proc, root) == 1  # at least one


def test_no_quota(tmp_path):
    proc = tmp_path / "cgroup"
    write(proc, "0::/\n")
    write(tmp_path / "sys" / "cpu.max", "max 100000\n")
    assert profiles.cgroup_cpu_limit(proc, tmp_path / "sys") is None
    assert profiles.cgroup_cpu_limit(tmp_path / "missing", tmp_path / "sys") is None
    assert profiles.usable_cpus(proc, tmp_path / "sys") == len(os.sched_getaffinity(0))


def test_setup_sizes_threads_to_the_quota(monkeypatch, capsys):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(profiles, "usable_cpus", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    try:
        s = rl.setup(profile="quick")
        assert torch.get_num_threads() == 1 and s.threads == 1
        assert "1 CPU threads" in capsys.readouterr().out
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the reader's own setting is kept
        torch.set_num_threads(2)
        assert rl.setup(profile="quick").threads == 2
    finally:
        torch.set_num_threads(before)
