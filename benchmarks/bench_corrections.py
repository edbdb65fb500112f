"""Corrections that count: scribbles, then rounds of correction strokes with short fine-tuning, on mitochondria.

A simulated user on the Lucchi FIB-SEM volume (``../shared/data/lucchi``; train slices 0-129, evaluated on held-out
slices 135-164, never painted): short scribbles inside some mitochondria (label 2) and in the background (label 1)
on five slices, ``--seconds`` of training of a new model (the default start), then ``--rounds`` rounds in which the user paints short
strokes over the largest mistakes of the current model on the painted slices and fine-tunes it (``init``) for
``--seconds`` again. Each strategy starts from the same first model and gets the same correction strokes policy;
the table gives the mitochondria IoU on the held-out slices after every round::

    python benchmarks/bench_corrections.py                 # ~6 min on 2 CPU cores
    python benchmarks/bench_corrections.py --seconds 20 --rounds 3 --strategies plain focus

Strategies: ``plain`` fine-tunes with ``correction_share=0`` (the default: every stroke counts the same);
``focus`` centres half of the patches on strokes the starting model gets wrong (``correction_share=0.5``).
``--iterations`` gives every round the same work whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("NAPARI_UNET_LUCCHI", "/work/shared/data/lucchi"))
PAINTED = (10, 35, 60, 85, 110)  # inside the training part 0-129
HELD_OUT = tuple(range(135, 165, 5))  # inside the evaluation part 135-164
MITO, BACKGROUND = 2, 1


def _stroke(mask: np.ndarray, rng: np.random.Generator, length: int, erode: int) -> np.ndarray:
    """Pixels of one short straight stroke inside ``mask`` eroded by ``erode`` (empty when it does not fit)."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(mask, iterations=erode) if erode else mask
    ys, xs = np.nonzero(inner)
    if ys.size == 0:
        return np.zeros((0, 2), int)
    i = int(rng.integers(ys.size))
    angle = rng.uniform(0, np.pi)
    t = np.arange(-length // 2, length // 2 + 1)
    py = np.clip(np.round(ys[i] + t * np.sin(angle)).astype(int), 0, mask.shape[0] - 1)
    px = np.clip(np.round(xs[i] + t * np.cos(angle)).astype(int), 0, mask.shape[1] - 1)
    keep = inner[py, px]
    return np.stack([py[keep], px[keep]], 1)


def scribbles(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scribbles on one slice: two strokes (3 px wide) in most mitochondria, and 40 in the background."""
    from scipy import ndimage
    from skimage.measure import label

    out = np.zeros(truth.shape, np.uint8)
    objects = label(truth > 0)
    for obj in range(1, objects.max() + 1):
        if rng.random() < 0.7:
            for _ in range(2):
                p = _stroke(objects == obj, rng, 30, 3)
                out[p[:, 0], p[:, 1]] = MITO
    for _ in range(40):
        p = _stroke(truth == 0, rng, 40, 6)
        out[p[:, 0], p[:, 1]] = BACKGROUND
    # a brush 3 px wide, kept inside the class it was painted in
    wide = ndimage.grey_dilation(out, size=(3, 3))
    inside = np.where(truth > 0, MITO, BACKGROUND)
    return np.where((wide > 0) & (wide == inside), wide, 0).astype(np.uint8)


def corrections(
    pred: np.ndarray, truth: np.ndarray, rng: np.random.Generator, per_slice: int = 6
) -> np.ndarray:
    """Strokes of the true class over the ``per_slice`` largest mistakes (false and missed mitochondria)."""
    from skimage.measure import label

    out = np.zeros(truth.shape, np.uint8)
    true_mito = truth > 0
    errors = label((pred == MITO) != true_mito)
    sizes = np.bincount(errors.ravel())
    sizes[0] = 0
    for obj in np.argsort(sizes)[::-1][:per_slice]:
        if sizes[obj] < 20:
            break
        region = errors == obj
        value = MITO if true_mito[region].mean() > 0.5 else BACKGROUND
        p = _stroke(region, rng, 15, 1)
        out[p[:, 0], p[:, 1]] = value
    return out


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred == MITO, truth > 0
    return float((p & t).sum() / max((p | t).sum(), 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="training time of each round (default 20)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="correction rounds (default 3)")
    parser.add_argument(
        "--iterations",
        type=int,
        help="an iteration budget per round instead of --seconds (strategies then compare at equal work, "
        "whatever else the machine is doing)",
    )
    parser.add_argument("--strategies", nargs="+", default=["plain", "focus"], choices=["plain", "focus"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)

    import tifffile

    from napari_unet.checkpoint import read_checkpoint
    from napari_unet.config import TrainConfig
    from napari_unet.predict import predict_stack_sync
    from napari_unet.train import train_sync

    images = tifffile.imread(args.data / "lucchi_train_images.tif")
    truth = tifffile.imread(args.data / "lucchi_train_labels.tif")
    rng = np.random.default_rng(args.seed)
    stack = images[:130]
    labels = np.zeros(stack.shape, np.uint8)
    for z in PAINTED:
        labels[z] = scribbles(truth[z], rng)
    share = 100 * (labels == MITO).sum() / (truth[list(PAINTED)] > 0).sum()
    print(f"scribbles on slices {PAINTED}: {share:.1f} % of their mitochondria pixels; held out: {HELD_OUT}")

    def held_out_iou(model, meta) -> float:
        pred = predict_stack_sync(images[list(HELD_OUT)], model, meta).labels
        return iou(pred, truth[list(HELD_OUT)])

    budget = {"iterations": args.iterations} if args.iterations else {"minutes": args.seconds / 60}
    unit = f"{args.iterations} iterations" if args.iterations else f"{args.seconds:g} s"
    with tempfile.TemporaryDirectory(prefix="bench-corrections-") as tmp:
        t0 = time.monotonic()
        first = train_sync(stack, labels, TrainConfig(seed=args.seed, **budget), checkpoint_dir=f"{tmp}/r0")
        start = read_checkpoint(first.best_path)
        round0 = f"round 0 ({first.meta['extra']['start']})"
        scores = {round0: {s: held_out_iou(first.model, first.meta) for s in args.strategies}}
        print(
            f"round 0: {first.history['iteration'][-1]} iterations, IoU {held_out_iou(first.model, first.meta):.3f}"
        )
        for strategy in args.strategies:
            ckpt, painted = start, labels.copy()
            model, meta = first.model, first.meta
            fix_rng = np.random.default_rng(args.seed + 1)  # the same correction policy for every strategy
            for r in range(1, args.rounds + 1):
                pred = predict_stack_sync(stack[list(PAINTED)], model, meta).labels
                for i, z in enumerate(PAINTED):
                    fix = corrections(pred[i], truth[z], fix_rng)
                    painted[z] = np.where(fix > 0, fix, painted[z])
                share_ = 0.0 if strategy == "plain" else 0.5
                config = TrainConfig(seed=args.seed + r, correction_share=share_, **budget)
                result = train_sync(stack, painted, config, init=ckpt, checkpoint_dir=f"{tmp}/{strategy}{r}")
                model, meta, ckpt = result.model, result.meta, read_checkpoint(result.best_path)
                score = held_out_iou(model, meta)
                scores.setdefault(f"round {r}", {})[strategy] = score
                extra = result.meta["extra"]
                print(
                    f"{strategy} round {r}: {result.history['iteration'][-1]} iterations, "
                    f"{extra['corrections']} corrected pixels in focus, IoU {score:.3f}",
                    flush=True,
                )
        print(
            f"\nmitochondria IoU on held-out slices {HELD_OUT[0]}-{HELD_OUT[-1]} (every 5th), {unit} a round"
        )
        print("| round | " + " | ".join(args.strategies) + " |")
        print("|---|" + "---:|" * len(args.strategies))
        for name, row in scores.items():
            print(
                f"| {name} | " + " | ".join(f"{row.get(s, float('nan')):.3f}" for s in args.strategies) + " |"
            )
        print(f"total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
