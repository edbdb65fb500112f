"""``napari-unet train``: a model from an image stack and its labels."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .._console import train_to_file
from ..config import DEFAULT_MINUTES, PRESETS, TrainConfig
from ._common import (
    CLIError,
    _check_input,
    _check_output,
    _command,
    _fraction,
    _int_at_least,
    _load_image,
    _parse_slices,
    _positive_float,
)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` that ``napari-unet train`` runs: the preset with the options given on top."""
    options = {
        "dense": args.dense or None,
        "depth": args.depth,
        "features": args.features,
        "patch": args.patch,
        "batch_size": args.batch,
        "lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "padding": args.padding,
        "iterations": args.iterations,
        "minutes": args.minutes,
        "val_slices": _parse_slices(args.val_slices, "--val-slices"),
        "val_fraction": args.val_fraction,
        "start": "scratch" if args.from_scratch else None,
    }
    config = TrainConfig.preset(
        args.preset or "fast-cpu", **{key: value for key, value in options.items() if value is not None}
    )
    if config.iterations is None and config.minutes is None:
        config = dataclasses.replace(config, minutes=DEFAULT_MINUTES)
    return config


def _checked_inputs(args: argparse.Namespace, config: TrainConfig):
    """Image, labels and voxel size of ``napari-unet train``, every check done before any work starts."""
    from ..checks import InputError, check_training_inputs

    image_path = _check_input(args.image, "image")
    labels_path = _check_input(args.labels, "labels")
    _check_output(args.output, args.overwrite, inputs=[image_path, labels_path], what="model")
    if args.init:
        _check_output(args.output, True, inputs=[_check_input(args.init, "--init model")], what="model")
    image, scale, _ = _load_image(image_path)
    labels, _, _ = _load_image(labels_path)
    try:
        check_training_inputs(
            image,
            labels,
            dense=bool(config.dense),
            fine_tune=bool(args.init),
            val_slices=config.val_slices,
            names=(f"image {image_path}", f"labels {labels_path}"),
        )
        _check_geometry(config)
    except InputError as err:
        raise CLIError(str(err)) from None
    return image, labels, scale


def _check_geometry(config: TrainConfig) -> None:
    """The patch against the smallest input of the U-Net being trained (its geometry: depth and padding)."""
    from ..checks import check_patch
    from ..model import UNet

    if config.patch is None:
        return
    geometry = UNet(in_channels=1, n_classes=2, depth=config.depth, features=1, padding=config.padding)
    check_patch(config.patch, geometry.min_input_size)


def cmd_train(args: argparse.Namespace) -> int:
    from ..device import select_device

    try:
        config = _train_config(args)
        config.check()
        select_device(config.device)  # an unknown or absent device is named before the data is read
    except (ValueError, RuntimeError) as err:
        raise CLIError(str(err)) from None
    out = Path(args.output)
    image, labels, scale = _checked_inputs(args, config)
    before = out.stat().st_mtime_ns if out.exists() else None
    result = train_to_file(image, labels, config, out, init=args.init, voxel_size=scale)
    if result is None:  # interrupted; train_to_file said what it kept, if it kept something
        if (out.stat().st_mtime_ns if out.exists() else None) == before:
            kept = f"{out} is unchanged" if before is not None else f"nothing was written to {out}"
            print(f"interrupted before a checkpoint was saved: {kept}", file=sys.stderr)
        return 130
    hist = result.history or {}
    val = hist.get("val_mean_dice") or hist.get("val_dice") or []
    n_it = (hist.get("iteration") or [0])[-1] if hist.get("iteration") else 0
    msg = f"saved {out} ({n_it} iterations"
    if val:
        msg += f", best validation Dice {max(val):.3f}"
        label = (result.meta or {}).get("extra", {}).get("validation_label")
        msg += f" on {label}" if label else ""  # e.g. "on held-out strokes (9 of 68, ...)"
    print(msg + ")")
    return 0


def _add_train(sub, shared: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "train",
        "train a U-Net from an image stack and a labels stack",
        "Labels are sparse strokes by default (0 = not annotated, 1..K = classes); a new model starts from the "
        "EM-pretrained body shipped with napari-unet. Prints the setup (classes, validation split, patch, device, "
        "start), then progress; Ctrl-C keeps the best model so far.",
        f"napari-unet train stack.tif strokes.tif -o model.pt            # {DEFAULT_MINUTES:g} minutes\n"
        "napari-unet train stack.tif truth.tif -o model.pt --dense --minutes 10\n"
        "napari-unet train stack.tif more_strokes.tif -o model2.pt --init model.pt --minutes 0.5",
        parents=[shared],
    )
    p.add_argument("image", help="image TIFF, (Y, X) or (Z, Y, X)")
    p.add_argument("labels", help="labels TIFF of the same shape (0 = not annotated unless --dense)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.pt", help="where to save the best model")
    p.add_argument(
        "--dense", action="store_true", help="every label value is a class (e.g. ground truth 0/255)"
    )
    p.add_argument("--val-slices", metavar="A:B", help="hold out slices A..B-1 for validation")
    p.add_argument(
        "--val-fraction",
        type=_fraction("--val-fraction"),
        metavar="F",
        help="share of the annotated slices (or strokes, on a single slice) held out for validation; 0 trains on "
        "every stroke and keeps the last weights (default: see TrainConfig.val_fraction)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes",
        type=_positive_float("--minutes"),
        help=f"time budget (default {DEFAULT_MINUTES:g} when no budget is given)",
    )
    budget.add_argument("--iterations", type=_int_at_least("--iterations", 1), help="iteration budget")
    p.add_argument(
        "--preset", choices=list(PRESETS), help="start from a preset configuration (default fast-cpu)"
    )
    p.add_argument("--depth", type=_int_at_least("--depth", 1), help="resolution levels of the U-Net")
    p.add_argument("--features", type=_int_at_least("--features", 1), help="feature maps at the first level")
    p.add_argument("--padding", choices=["valid", "same"], help="convolution padding")
    p.add_argument("--patch", type=_int_at_least("--patch", 1), help="training patch side in pixels")
    p.add_argument("--batch", type=_int_at_least("--batch", 1), help="patches per iteration")
    p.add_argument("--lr", type=_positive_float("--lr"), help="peak learning rate")
    p.add_argument("--seed", type=_int_at_least("--seed", 0), help="random seed")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--init", metavar="MODEL.pt", help="fine-tune from this checkpoint (keeps its classes)"
    )
    start.add_argument(
        "--from-scratch",
        action="store_true",
        help="start from random weights instead of the EM-pretrained model (the default start of a new model)",
    )
    p.set_defaults(func=cmd_train)
