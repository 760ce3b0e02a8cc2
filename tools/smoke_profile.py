"""Run notebooks in the gpu or full profile on a machine without CIFAR-10 (or without a GPU).

    python tools/smoke_profile.py chapters/01_degradation.ipynb          # gpu profile
    python tools/smoke_profile.py --profile full --max-steps 20 chapters/04_gradient_flow.ipynb

This checks that a notebook's code runs in a CIFAR-10 profile, not what it finds: the kernels
read a stand-in archive in CIFAR-10's exact format (scikit-learn's digits, upsampled to 32x32
and copied into three channels: 1,500 training and 297 test images), so every number and every
assert about an experiment's outcome is meaningless. The stand-in replaces only the archive's
description (resnet_lib.data.cifar10_archive) through a sitecustomize module on the kernels'
PYTHONPATH; the loader, the training loop and the notebook are the real ones. A failing assert
about an outcome is reported as such; any other error is a bug in the notebook's CIFAR-10 path.

--max-steps caps every training run (for the full profile, whose schedule is 64k steps).
--keep-going runs the cells after a failing one too and lists every failing cell; with stand-in
data an AssertionError there is expected, any other error (a NameError after one is a
consequence of it) is worth a look.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SITECUSTOMIZE = """
import os
from resnet_lib import data, train

_archive = data.Archive({url!r}, {md5!r}, {files!r})
data.cifar10_archive = lambda: _archive
_max = os.environ.get("SMOKE_MAX_STEPS")
if _max:
    _fit = train.fit
    def _capped(model, train_set, test_set=None, config=train.TrainConfig(), *args, **kwargs):
        from dataclasses import replace
        steps = min(config.max_steps or int(_max), int(_max))
        return _fit(model, train_set, test_set, replace(config, max_steps=steps), *args, **kwargs)
    train.fit = _capped
"""


def stand_in_archive(folder: Path) -> tuple[Path, str, dict[str, str]]:
    """Write scikit-learn's digits as a CIFAR-10-format .tar.gz into ``folder``."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (x * 255).round().clamp(0, 255).to(torch.uint8).view(len(x), -1).numpy()
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1500], order[1500:]
    files = {}
    for k in range(5):
        part = train[k * 300 : (k + 1) * 300]
        files[f"data_batch_{k + 1}"] = pickle.dumps(
            {"data": x[part], "labels": labels[part].tolist()}
        )
    files["test_batch"] = pickle.dumps({"data": x[test], "labels": labels[test].tolist()})
    files["batches.meta"] = pickle.dumps({"label_names": [str(i) for i in range(10)]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path = folder / "cifar-10-python.tar.gz"
    path.write_bytes(buffer.getvalue())
    md5 = {name: hashlib.md5(blob).hexdigest() for name, blob in files.items()}
    return path, hashlib.md5(buffer.getvalue()).hexdigest(), md5


def main(argv: list[str] | None = None) -> int:
    import nbformat
    from nbclient import NotebookClient
    from prompt_replies import install

    install()  # as in the book build: no wait for a reply that has arrived
    from nbclient.exceptions import CellExecutionError

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", default="gpu", choices=["gpu", "full"])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--save-dir", type=Path, default=None, help="keep executed notebooks")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every cell even after one fails, and list each failing cell: the code after "
        "an outcome assert gets checked too",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="smoke-"))
    (work / "cache").mkdir()
    archive, md5, files = stand_in_archive(work / "cache")
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(
        SITECUSTOMIZE.format(url=f"file://{archive}", md5=md5, files=files)
    )
    os.environ.update(
        RESNET_BOOK_PROFILE=args.profile,
        RESNET_BOOK_DATA=str(work / "cache"),
        PYTHONPATH=os.pathsep.join(
            [str(work / "site"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),
    )
    if args.max_steps:
        os.environ["SMOKE_MAX_STEPS"] = str(args.max_steps)
    failed = False
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            timeout=1800,
            kernel_name="python3",
            allow_errors=args.keep_going,
            resources={"metadata": {"path": str(path.parent)}},
        )
        start = time.perf_counter()
        try:
            client.execute()
            status = "ran to the end"
        except CellExecutionError as err:
            kind = (
                "an assert about the outcome (expected on stand-in data)"
                if err.ename == "AssertionError"
                else "AN ERROR"
            )
            status = f"stopped at {kind}: {err.ename}: {str(err.evalue)[:200]}"
            failed |= err.ename != "AssertionError"
        if args.keep_going:
            errors = [
                (index, out.ename, out.evalue)
                for index, cell in enumerate(nb.cells)
                for out in cell.get("outputs", [])
                if out.get("output_type") == "error"
            ]
            status = (
                "; ".join(
                    f"cell {index}: {ename}: {str(evalue)[:120]}" for index, ename, evalue in errors
                )
                or "ran to the end"
            )
            failed |= any(ename != "AssertionError" for _, ename, _ in errors)
        if args.save_dir:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, args.save_dir / path.name)
        print(
            f"{path}: {status} ({time.perf_counter() - start:.0f} s, profile {args.profile})",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
