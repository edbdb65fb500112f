"""Train on ISBI 2012 slices 0-24, segment slices 25-29, report membrane Dice / IoU, pixel and Rand error.

This is the acceptance check of the training engine, run exactly as ``napari-unet train --dense --minutes 10``
would (same :class:`~napari_unet.train.TrainConfig` defaults, automatic validation split inside slices 0-24), then
``napari-unet predict`` on the held-out slices 25-29, which training never sees::

    python benchmarks/bench_train.py --minutes 10            # the acceptance run (Dice >= 0.80, pixel error <= 0.10)
    python benchmarks/bench_train.py --minutes 3 --out r.json
    python benchmarks/bench_train.py --iterations 300 --preset accurate-gpu --device cuda

Writes a small JSON (default ``bench_train.json``) with the configuration, iterations/s, timings, the machine's
load and the metrics. The machine's load average is recorded because a time budget on a shared CPU buys fewer
iterations: compare runs by their iteration counts too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("NAPARI_UNET_ISBI", "/work/shared/data/isbi2012"))
ACCEPT_DICE = 0.80
ACCEPT_PIXEL_ERROR = 0.10


def _slices(text: str) -> slice:
    start, stop = (int(v) for v in text.split(":"))
    return slice(start, stop)


def _plain(value):
    """JSON-safe copy (nan -> None, numpy -> Python, int dict keys -> str)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_argument_group("budget (the first reached ends training)")
    budget.add_argument(
        "--minutes", type=float, help="training time budget (default 10 when no budget is given)"
    )
    budget.add_argument("--iterations", type=int, help="iteration budget")
    parser.add_argument("--preset", choices=["fast-cpu", "accurate-gpu", "paper"], help="start from a preset")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data", type=Path, default=DATA, help=f"folder with the ISBI 2012 TIFFs (default {DATA})"
    )
    parser.add_argument("--train-slices", default="0:25", help="START:STOP slices to train on (default 0:25)")
    parser.add_argument(
        "--eval-slices", default="25:30", help="START:STOP slices to evaluate (default 25:30)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench_train.json"), help="JSON results file")
    parser.add_argument("--save-model", type=Path, help="also copy the trained checkpoint here")
    parser.add_argument("--check", action="store_true", help="exit 1 when the acceptance bar is missed")
    parser.add_argument(
        "--speed",
        action="store_true",
        help="instead: iterations/s of the default sparse training with each CPU speed-up off and on (see speed())",
    )
    parser.add_argument("--speed-iterations", type=int, default=80, help="iterations per variant and round")
    parser.add_argument("--speed-rounds", type=int, default=3, help="rounds (variants interleaved in each)")
    args = parser.parse_args(argv)
    if args.speed:
        return speed(args.speed_iterations, args.speed_rounds, args.out)

    import tifffile
    import torch

    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.generators import drain
    from napari_unet.metrics import evaluate, format_metrics
    from napari_unet.predict import predict_stack_sync
    from napari_unet.train import TrainConfig, train

    train_sl, eval_sl = _slices(args.train_slices), _slices(args.eval_slices)
    overlap = set(range(30)[train_sl]) & set(range(30)[eval_sl])
    if overlap:
        parser.error(f"training and evaluation slices overlap: {sorted(overlap)}")
    images = tifffile.imread(args.data / "isbi2012_train_images.tif")
    labels = tifffile.imread(args.data / "isbi2012_train_labels.tif")

    config = TrainConfig.preset(
        args.preset or "fast-cpu",
        dense=True,
        device=args.device,
        seed=args.seed,
        iterations=args.iterations,
        minutes=args.minutes if (args.minutes or args.iterations) else 10.0,
    )
    print(f"training on slices {args.train_slices} ({config.minutes} min / {config.iterations} iterations)")
    print(f"config: {config}", flush=True)

    load_before = os.getloadavg()
    cpu0 = time.process_time()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        last_print = 0.0

        def show(rec) -> None:
            nonlocal last_print
            now = time.monotonic()
            if rec.val is not None or rec.phase in ("setup", "done") or now - last_print > 30:
                last_print = now
                print(
                    f"[{rec.elapsed:6.0f} s] it {rec.iteration:5d} loss {rec.loss:.4f} {rec.message}",
                    flush=True,
                )

        result = drain(train(images[train_sl], labels[train_sl], config, checkpoint_dir=tmp), show)
        train_seconds = time.monotonic() - t0
        train_cpu = time.process_time() - cpu0
        load_after = os.getloadavg()
        # Predict from the checkpoint file, as the CLI does after training.
        model, meta = load_checkpoint(result.best_path)
        if args.save_model:
            import shutil

            shutil.copyfile(result.best_path, args.save_model)

    t1 = time.monotonic()
    pred = predict_stack_sync(images[eval_sl], model, meta, device=args.device)
    predict_seconds = time.monotonic() - t1
    truth = labels[eval_sl]
    metrics = evaluate(np.asarray(pred.labels), truth, foreground=0)
    history = result.history
    iterations = history["iteration"][-1] if history["iteration"] else 0
    passed = metrics["dice"] >= ACCEPT_DICE and metrics["pixel_error"] <= ACCEPT_PIXEL_ERROR

    print(f"\nevaluation on slices {args.eval_slices} (never trained on):")
    print(format_metrics(metrics))
    print(
        f"\n{iterations} iterations in {train_seconds:.0f} s ({iterations / train_seconds:.2f} it/s, "
        f"process CPU {train_cpu:.0f} s); prediction {predict_seconds:.1f} s on {pred.device}; "
        f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"acceptance (membrane Dice >= {ACCEPT_DICE}, pixel error <= {ACCEPT_PIXEL_ERROR}): "
        f"{'PASS' if passed else 'FAIL'}"
    )
    report = {
        "benchmark": "isbi2012 train 0-24 / evaluate 25-29",
        "train_slices": args.train_slices,
        "eval_slices": args.eval_slices,
        "config": config.to_dict(),
        "patch": result.meta["extra"].get("patch"),
        "validation": result.meta["extra"].get("validation"),
        "model_kwargs": result.meta["model_kwargs"],
        "iterations": iterations,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu,
        "iterations_per_second": iterations / train_seconds if train_seconds else None,
        "best_iteration": history.get("best_iteration"),
        "best_val_mean_dice": history.get("best_val_dice"),
        "predict_seconds": predict_seconds,
        "predict_device": pred.device,
        "metrics": {
            "membrane_dice": metrics["dice"],
            "membrane_iou": metrics["iou"],
            "pixel_error": metrics["pixel_error"],
            "adapted_rand_error": metrics["adapted_rand"],
            "rand_merge_score": metrics["rand_merge_score"],
            "rand_split_score": metrics["rand_split_score"],
            "mean_dice": metrics["mean_dice"],
        },
        "acceptance": {"dice_min": ACCEPT_DICE, "pixel_error_max": ACCEPT_PIXEL_ERROR, "passed": passed},
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
    }
    args.out.write_text(json.dumps(_plain(report), indent=2))
    print(f"wrote {args.out}")
    return 1 if args.check and not passed else 0


# --------------------------------------------------------------------------------------------- speed-ups
SPEED_VARIANTS = {
    # name: (TrainConfig fields, torch threads); the first is the engine as it was before these speed-ups
    "before: NCHW, no prefetch": ({"channels_last": False, "prefetch": False}, 2),
    "channels-last": ({"channels_last": True, "prefetch": False}, 2),
    "channels-last + prefetch (default)": ({}, 2),
    "default, 1 thread": ({}, 1),
    "default + torch.compile": ({"compile": True}, 2),
}


def _sample_strokes():
    """The bundled sample with strokes on slices 0 and 5 (as ``bench_interactive.py`` paints them)."""
    import tifffile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_screenshots import paint_strokes

    root = Path(__file__).resolve().parents[1] / "sample_data"
    image = tifffile.imread(root / "isbi2012_crop.tif")
    truth = tifffile.imread(root / "isbi2012_crop_labels.tif")
    strokes = np.zeros_like(truth)
    for z in (0, 5):
        strokes[z] = paint_strokes(truth[z], seed=z)
    return image, strokes


def _iterations_per_second(
    image, strokes, fields: dict, threads: int, iterations: int
) -> tuple[float, float]:
    """Steady iterations/s (after 10 warm-up iterations) and the seconds to the first iteration (setup, compile)."""
    import torch

    from napari_unet.train import TrainConfig, train_sync

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        config = TrainConfig(iterations=iterations + 10, device="cpu", val_fraction=0.0, **fields)
        history = train_sync(image, strokes, config).history
    finally:
        torch.set_num_threads(before)
    elapsed = history["elapsed"]
    return iterations / (elapsed[-1] - elapsed[9]), elapsed[0]


def speed(iterations: int, rounds: int, out: Path) -> int:
    """Iterations/s of the default sparse training (sample, strokes on 2 slices) with each speed-up off and on.

    The variants run interleaved, ``rounds`` times, so that the machine's load falls on all of them alike; the table
    gives the median and the spread, and each variant's ratio to the first (the engine before the speed-ups).
    """
    import torch

    image, strokes = _sample_strokes()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in SPEED_VARIANTS}
    for r in range(rounds):
        for name, (fields, threads) in SPEED_VARIANTS.items():
            runs[name].append(_iterations_per_second(image, strokes, fields, threads, iterations))
            print(f"round {r + 1}: {name}: {runs[name][-1][0]:.2f} it/s", flush=True)
    base = float(np.median([v for v, _ in runs[next(iter(runs))]]))
    print(
        f"\ndefault sparse training on the sample, {iterations} iterations x {rounds} rounds, torch {torch.__version__}"
    )
    print("| variant | it/s (median, min-max) | vs before | first iteration after (s) |")
    print("| --- | --- | --- | --- |")
    report = {}
    for name, values in runs.items():
        its = [v for v, _ in values]
        med = float(np.median(its))
        first = float(np.median([f for _, f in values]))
        print(f"| {name} | {med:.2f} ({min(its):.2f}-{max(its):.2f}) | {med / base:.2f}x | {first:.1f} |")
        report[name] = {"it_per_s": its, "first_iteration_s": [f for _, f in values], "ratio": med / base}
    out.write_text(json.dumps(_plain(report), indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
