"""Prediction at scale: slices/s and peak memory against stack size, one process vs dask.distributed workers.

For each stack size (MB of uint8 input, ``(Z, 1024, 1024)`` slices of ISBI 2012 texture, an uncompressed TIFF so
it is memory-mapped as a big stack is), each configuration runs ``napari-unet predict STACK -o L.zarr
--probabilities P.zarr`` as a fresh process, with the same total number of threads:

* ``single``: one process, ``--threads T``;
* ``local-1``: ``--workers 1 --threads T`` (a LocalCluster of one worker process);
* ``local-2``: ``--workers 2 --threads T/2``;
* ``scheduler``: ``--scheduler ADDRESS`` when ``--scheduler`` is given (e.g. ``dask scheduler`` and two
  ``dask worker --nthreads 1`` started by hand: the workers' memory is not measured then).

Measured: slices/s of the prediction itself (the CLI's ``predicted ... in S s``: cluster start-up excluded), the
wall time of the command (start-up included), the peak RSS of the command's process tree (client + LocalCluster
workers, sampled every 0.1 s with psutil) and of its largest process. Labels are compared with the single-process
run's (bit for bit). The model is a tiny U-Net (depth 2, 4 features, untrained: its speed is what matters).
Outputs are deleted after each run::

    python benchmarks/bench_scale.py --sizes 64 256 --threads 2
    python benchmarks/bench_scale.py --sizes 2048 --configs single          # the 2 GiB memory check
    python benchmarks/bench_scale.py --sizes 256 --configs single scheduler --scheduler tcp://127.0.0.1:8786
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ISBI = Path("/work/shared/data/isbi2012/isbi2012_train_images.tif")
SIDE = 1024


def make_stack(path: Path, megabytes: int) -> int:
    """An uncompressed ``(Z, 1024, 1024)`` uint8 TIFF of ``megabytes`` MiB, 2 x 2 ISBI slices per slice."""
    import tifffile

    source = (
        tifffile.imread(ISBI) if ISBI.exists() else np.random.default_rng(0).integers(0, 256, (30, 512, 512))
    )
    n = max(1, megabytes * (1 << 20) // (SIDE * SIDE))
    out = tifffile.memmap(
        path, shape=(n, SIDE, SIDE), dtype=np.uint8, photometric="minisblack", imagej=True,
        resolution=(0.25, 0.25), metadata={"axes": "ZYX", "spacing": 50, "unit": "nm"},
    )  # fmt: skip
    for z in range(n):
        a, b, c, d = (source[(z + 7 * k) % len(source)].astype(np.uint8) for k in range(4))
        out[z] = np.block([[a, b], [c, d]])
    out.flush()
    del out
    return n


def make_model(path: Path) -> None:
    import torch

    from napari_unet.checkpoint import save_checkpoint
    from napari_unet.model import UNet

    torch.manual_seed(7)
    model = UNet(in_channels=1, n_classes=2, depth=2, features=4)
    norm = {"mode": "percentile", "low": 0.0, "high": 255.0}
    save_checkpoint(path, model, normalization=norm, label_values=[0, 255], class_names=["membrane", "cell"])


def _tree_rss(proc) -> tuple[int, int]:
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    sizes = []
    for p in procs:
        try:
            sizes.append(p.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
    return sum(sizes), max(sizes, default=0)


def run_once(command: list[str]) -> dict:
    """Run ``command``, sampling its process tree's RSS; returns wall time, peaks and the predict time."""
    import psutil

    t0 = time.perf_counter()
    popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(popen.pid)
    peak_tree = peak_one = 0
    while popen.poll() is None:
        tree, one = _tree_rss(proc)
        peak_tree, peak_one = max(peak_tree, tree), max(peak_one, one)
        time.sleep(0.1)
    out, err = popen.communicate()
    wall = time.perf_counter() - t0
    if popen.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({popen.returncode}): {err[-2000:]}")
    seconds = float(re.search(r"predicted .* in ([0-9.]+) s", out).group(1))
    return {"wall": wall, "predict": seconds, "peak_tree": peak_tree, "peak_one": peak_one}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="input sizes in MiB")
    parser.add_argument("--threads", type=int, default=2, help="total threads of every configuration")
    parser.add_argument(
        "--configs", nargs="+", default=["single", "local-1", "local-2"],
        choices=["single", "local-1", "local-2", "scheduler"],
    )  # fmt: skip
    parser.add_argument(
        "--scheduler", help="address of a running scheduler, for the 'scheduler' configuration"
    )
    parser.add_argument(
        "--folder", type=Path, help="where stacks and outputs go (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    if "scheduler" in args.configs and not args.scheduler:
        parser.error("the 'scheduler' configuration needs --scheduler tcp://HOST:PORT")
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "tiny.pt"
    make_model(model)
    cli = [sys.executable, "-m", "napari_unet.cli", "predict"]
    options = {
        "single": ["--threads", str(args.threads)],
        "local-1": ["--workers", "1", "--threads", str(args.threads)],
        "local-2": ["--workers", "2", "--threads", str(max(1, args.threads // 2))],
        "scheduler": ["--scheduler", str(args.scheduler)],
    }
    print(
        "| input | slices | config | slices/s | wall s | peak RSS, tree | largest process | labels = single |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        stack = folder / f"stack_{size}.tif"
        n = make_stack(stack, size)
        reference = None
        for index, config in enumerate(
            args.configs
        ):  # a configuration may be listed twice (interleaved rounds)
            labels, probs = folder / f"{index}_{config}.zarr", folder / f"{index}_{config}_p.zarr"
            command = [
                *cli,
                str(stack),
                "--model",
                str(model),
                "-o",
                str(labels),
                "--probabilities",
                str(probs),
            ]
            result = run_once([*command, "--device", "cpu", *options[config]])
            same = _same_labels(labels, reference)
            if reference is None and config == "single":
                reference = labels
            print(
                f"| {size} MiB | {n} | {config} | {n / result['predict']:.2f} | {result['wall']:.0f} | "
                f"{result['peak_tree'] / 2**30:.2f} GiB | {result['peak_one'] / 2**30:.2f} GiB | {same} |",
                flush=True,
            )
            shutil.rmtree(probs)
            if labels != reference:
                shutil.rmtree(labels)
        if reference is not None:
            shutil.rmtree(reference)
        stack.unlink()
    return 0


def _same_labels(labels: Path, reference: Path | None) -> str:
    if reference is None:
        return "-"
    import zarr

    key = "labels/segmentation/0"
    a, b = (zarr.open_group(str(p), mode="r")[key] for p in (labels, reference))
    return "yes" if all(np.array_equal(a[z], b[z]) for z in range(a.shape[0])) else "NO"


if __name__ == "__main__":
    sys.exit(main())
