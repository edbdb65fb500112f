"""``napari-unet demo``: train on the bundled sample, predict, score."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import _command


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(
        out_dir=Path(args.out),
        minutes=args.minutes,
        iterations=args.iterations,
        device=args.device,
        overwrite=args.overwrite,
    )


def _add_demo(sub, shared: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "demo",
        "train on the bundled EM sample, predict, write TIFFs + PNG, print metrics",
        "Trains on 8 slices of the sample (ISBI 2012), predicts all 10 and scores the 2 held-out ones.",
        "napari-unet demo\nnapari-unet demo --out demo --minutes 1",
        parents=[shared],
    )
    p.add_argument("--out", default="napari-unet-demo", help="output folder (default ./napari-unet-demo)")
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    p.add_argument("--iterations", type=int, help="iteration budget instead of minutes")
    p.set_defaults(func=cmd_demo)
