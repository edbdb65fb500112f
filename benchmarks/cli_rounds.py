"""Scribbles, then correction rounds, through the command line only: what a user of `napari-unet` would type.

On the Lucchi FIB-SEM volume (``../shared/data/lucchi``, a derived copy): short scribbles in some mitochondria
(label 2) and in the background (label 1) on slices 10, 35, 60, 85, 110 of the training part 0-129 (as
``bench_corrections.py`` paints them), then::

    napari-unet train stack.tif strokes.tif -o round0.pt --minutes 0.33          # a new model: the default start
    napari-unet predict held_out.tif --model round0.pt -o held_out_pred.tif      # slices 135-164, never painted
    napari-unet predict painted.tif --model round0.pt -o painted_pred.tif        # the user looks at the mistakes,
    ... paints short strokes of the true class over the 6 largest mistakes per painted slice ...
    napari-unet train stack.tif strokes.tif -o round1.pt --minutes 0.33 --init round0.pt
    ...

and prints the mitochondria IoU on the held-out slices 135-164 after every round::

    python benchmarks/cli_rounds.py                          # ~5 min on 2 CPU cores
    python benchmarks/cli_rounds.py --seconds 20 --rounds 3 --from-scratch
    NAPARI_UNET_PRETRAINED=membrane_only.pt python benchmarks/cli_rounds.py   # a body that never saw Lucchi

The shipped pretrained body read the labels of Lucchi slices 0-129 (never 130-164): with it, the figures are held
out but the stack is not unseen. A body made by ``scripts/pretrain_em.py --tasks membrane`` never read Lucchi.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_corrections import DATA, MITO, PAINTED, corrections, iou, scribbles  # noqa: E402

HELD_OUT = range(135, 165)


def napari_unet(*args: str) -> None:
    """Run the installed ``napari-unet`` command (its output shown); stop on failure."""
    exe = shutil.which("napari-unet")
    cmd = [exe] if exe else [sys.executable, "-m", "napari_unet.cli"]
    print("$ napari-unet " + " ".join(args), flush=True)
    subprocess.run([*cmd, *args], check=True)


def fix_slices(where: str, round_index: int) -> list[int]:
    """The slices the simulated user looks at after round ``round_index`` (all in the training part 0-129).

    ``painted``: the scribbled slices. ``more``: those, and every slice looked at in earlier rounds, and 5 new ones
    between them (8, 16, 24 slices further on), as a user scrolling through the stack for mistakes would.
    """
    looked = list(PAINTED)
    if where == "more":
        for r in range(round_index + 1):
            looked += [(z + 8 * (r + 1)) % 130 for z in PAINTED]
    return sorted(set(looked))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="training time of each round (default 20)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--from-scratch", action="store_true", help="round 0 from random weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--fix-on",
        choices=["painted", "more"],
        default="painted",
        help="where the simulated user paints corrections: the 5 scribbled slices only (painted), or those and 5 "
        "more slices of the training part each round, as a user scrolling the stack would (more)",
    )
    parser.add_argument(
        "--iterations", type=int, help="an iteration budget per round instead of --seconds (A/B at equal work)"
    )
    parser.add_argument(
        "--train-args", default="", help="more options for every `napari-unet train`, e.g. '--val-fraction 0'"
    )
    parser.add_argument(
        "--fine-tune-args", default="", help="more options for the correction rounds' `train --init` only"
    )
    args = parser.parse_args(argv)
    import tifffile

    images = tifffile.imread(args.data / "lucchi_train_images.tif")
    truth = tifffile.imread(args.data / "lucchi_train_labels.tif")
    rng = np.random.default_rng(args.seed)
    strokes = np.zeros(images[:130].shape, np.uint8)
    for z in PAINTED:
        strokes[z] = scribbles(truth[z], rng)
    share = (strokes == MITO).sum() / (truth[list(PAINTED)] > 0).sum()
    print(f"scribbles on slices {PAINTED}: {share:.1%} of their mitochondria pixels; held out: 135-164")
    minutes = f"{args.seconds / 60:.4f}"
    common = ["--device", "cpu", "--overwrite"]
    scores = []
    with tempfile.TemporaryDirectory(prefix="cli-rounds-") as tmp:
        d = Path(tmp)
        tifffile.imwrite(d / "stack.tif", images[:130], metadata={"axes": "ZYX"})
        tifffile.imwrite(d / "held_out.tif", images[HELD_OUT.start : HELD_OUT.stop], metadata={"axes": "ZYX"})
        fix_rng = np.random.default_rng(args.seed + 1)
        t0 = time.monotonic()
        for r in range(args.rounds + 1):
            tifffile.imwrite(d / "strokes.tif", strokes, metadata={"axes": "ZYX"})
            model = d / f"round{r}.pt"
            start = (
                ["--init", str(d / f"round{r - 1}.pt")]
                if r
                else (["--from-scratch"] if args.from_scratch else [])
            )
            napari_unet(
                "train",
                str(d / "stack.tif"),
                str(d / "strokes.tif"),
                "-o",
                str(model),
                *(["--iterations", str(args.iterations)] if args.iterations else ["--minutes", minutes]),
                *args.train_args.split(),
                *(args.fine_tune_args.split() if r else []),
                "--seed",
                str(args.seed + r),
                *start,
                *common,
            )
            napari_unet(
                "predict", str(d / "held_out.tif"), "--model", str(model), "-o", str(d / "held.tif"), *common
            )
            scores.append(iou(tifffile.imread(d / "held.tif"), truth[HELD_OUT.start : HELD_OUT.stop]))
            print(f"round {r}: mitochondria IoU on slices 135-164 = {scores[-1]:.3f}", flush=True)
            if r == args.rounds:
                break
            looked_at = fix_slices(args.fix_on, r)
            tifffile.imwrite(d / "looked.tif", images[looked_at], metadata={"axes": "ZYX"})
            napari_unet(
                "predict", str(d / "looked.tif"), "--model", str(model), "-o", str(d / "pp.tif"), *common
            )
            pred = tifffile.imread(d / "pp.tif")
            for i, z in enumerate(looked_at):
                fix = corrections(pred[i], truth[z], fix_rng)
                strokes[z] = np.where(fix > 0, fix, strokes[z])
    body = os.environ.get("NAPARI_UNET_PRETRAINED") or (
        "none (from scratch)" if args.from_scratch else "shipped"
    )
    print(
        f"\npretrained body: {body}; {f'{args.iterations} iterations' if args.iterations else f'{args.seconds:g} s'} "
        f"of training a round {args.train_args} (corrections: {args.fine_tune_args}); corrections on {args.fix_on} slices; "
        f"{time.monotonic() - t0:.0f} s in all"
    )
    print("| round | " + " | ".join(str(r) for r in range(len(scores))) + " |")
    print("|---|" + "---:|" * len(scores))
    print("| mito IoU, slices 135-164 | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
