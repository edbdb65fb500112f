"""The ``napari-unet`` command line: the engine without a GUI.

Sub-commands: ``info``, ``train``, ``predict``, ``evaluate`` and ``demo``. Heavy modules (torch, the engine) are
imported inside the sub-command that needs them, so ``napari-unet --version`` and ``napari-unet info`` stay fast.
Every failure ends with a one-line message on stderr and a non-zero exit code; nothing is overwritten without
``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from ._console import predict_batch_with_progress, train_to_file
from ._openmp import calm_openmp
from .config import DEFAULT_MINUTES, PRESETS, TrainConfig, parse_auto_int


class CLIError(Exception):
    """An error whose message is shown to the user as is (no traceback)."""


# --------------------------------------------------------------------------------------------------- helpers
def _check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise CLIError(f"{path} already exists; pass --overwrite to replace it")
    if path.parent and not path.parent.exists():
        raise CLIError(f"the folder {path.parent} does not exist")
    return path


def _check_input(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path} is a folder, expected a TIFF file")
    return path


def _parse_slices(text: str | None, option: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise CLIError(f"{option} expects START:STOP (e.g. 20:25), got {text!r}") from None
    if not 0 <= start < stop:
        raise CLIError(f"{option} {text}: need 0 <= START < STOP")
    return start, stop


def _int_at_least(name: str, minimum: int, *, auto: bool = False) -> Callable[[str], int | str]:
    """argparse type: an integer of at least ``minimum`` (or, with ``auto``, the word 'auto').

    A thin adapter around :func:`napari_unet.config.parse_auto_int` that turns its ValueError into the
    ArgumentTypeError argparse reports as a usage error.
    """

    def parse(text: str) -> int | str:
        try:
            value = parse_auto_int(text, name, minimum=minimum)
        except ValueError as err:
            if auto:
                raise argparse.ArgumentTypeError(str(err)) from None
            value = None
        if value is None and not auto:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number of at least {minimum}, got {text!r}"
            )
        return "auto" if value is None else value

    return parse


def _load_image(path: Path):
    """First series of a TIFF as ``(Y, X)`` or ``(Z, Y, X)`` (lazy when big), its voxel size and units."""
    from .io import read_array, read_tiff

    first = read_tiff(path)[0]
    if first.rgb or "C" in first.axes or "S" in first.axes:
        raise CLIError(
            f"{path}: has colour channels (axes {first.axes}, shape {tuple(first.data.shape)}); the command line "
            "works on single-channel (Z, Y, X) stacks: save one channel per file first"
        )
    data, scale, units = read_array(path, with_units=True)
    if data.ndim not in (2, 3):
        raise CLIError(
            f"{path}: expected a 2D image or a (Z, Y, X) stack, got shape {tuple(data.shape)}; "
            "split time points into separate files first"
        )
    return data, scale, units


# --------------------------------------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    from .io import describe_tiff

    for path in args.files:
        print(describe_tiff(_check_input(path)))
    return 0


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
        "start": "scratch" if args.from_scratch else None,
    }
    config = TrainConfig.preset(
        args.preset or "fast-cpu", **{key: value for key, value in options.items() if value is not None}
    )
    if config.iterations is None and config.minutes is None:
        config = dataclasses.replace(config, minutes=DEFAULT_MINUTES)
    return config


def cmd_train(args: argparse.Namespace) -> int:
    out = _check_output(args.output, args.overwrite)
    image, scale, _ = _load_image(_check_input(args.image))
    labels, _, _ = _load_image(_check_input(args.labels))
    if tuple(image.shape) != tuple(labels.shape):
        raise CLIError(
            f"image {tuple(image.shape)} and labels {tuple(labels.shape)} must have the same shape"
        )
    result = train_to_file(image, labels, _train_config(args), out, init=args.init, voxel_size=scale)
    if result is None:  # interrupted; train_to_file said what it kept
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


def cmd_predict(args: argparse.Namespace) -> int:
    from ._batch import BatchPlanError, plan_batch
    from .checkpoint import load_checkpoint

    objects = _objects_request(args)
    try:
        jobs = plan_batch(
            args.image,
            args.output,
            args.probabilities,
            args.overwrite,
            instances=args.instances,
            measurements=args.measurements,
        )
    except BatchPlanError as err:
        raise CLIError(str(err)) from None
    model, meta = load_checkpoint(_check_input(args.model))  # once for the whole batch
    for folder in {job.labels.parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    if objects is not None and objects.value not in (meta.get("label_values") or []):
        raise CLIError(
            f"--instance-of {objects.value}: not a label value of the model (its values: {meta.get('label_values')})"
        )
    options = {"tile": args.tile, "batch_size": args.batch, "device": args.device, "tta": args.tta}
    result = predict_batch_with_progress(
        jobs,
        model,
        meta,
        load=_load_image,
        overwrite=args.overwrite,
        keep_going=len(jobs) > 1,
        objects=objects,
        **options,
    )
    if len(jobs) > 1 or not result.ok:
        if not result.ok:
            print(f"napari-unet predict: error: {result.summary()}", file=sys.stderr)
            return 1
        print(f"{result.summary()} to {jobs[0].labels.parent}")
    return 0


def _objects_request(args: argparse.Namespace):
    """The :class:`~napari_unet.instances.ObjectsRequest` of ``predict --instances / --measurements``, or None."""
    wanted = args.instances is not None or args.measurements is not None
    if args.instance_of is None:
        if wanted:
            raise CLIError(
                "--instances / --measurements need --instance-of VALUE (the label value of the objects)"
            )
        return None
    if not wanted:
        raise CLIError(
            "--instance-of needs --instances (and / or --measurements): where should the objects go?"
        )
    from .instances import ObjectsRequest

    return ObjectsRequest(
        int(args.instance_of),
        mode=args.instances_3d,
        preset=args.instance_preset,
        measure=args.measurements is not None,
        min_size=args.instance_min_size,
    )


def _instance_arrays(pred, gt, value: int | None, per_slice: bool):
    """Prediction and truth as instance ids for ``evaluate``, a line saying how each was read, and whether both
    files were semantic labels (then the semantic scores are printed too).

    A labels file whose values are all values of the truth's classes is semantic: its objects are the
    connected components of ``value``; anything else (many ids) is taken as instance labels as they are.
    """
    import numpy as np

    from .metrics import instances_of

    gt_values = set(np.unique(gt).tolist())
    semantic_gt = value is not None and value in gt_values and len(gt_values) <= 16
    notes = []
    if semantic_gt:
        gt_inst = instances_of(gt, value, per_slice=per_slice)
        notes.append(f"truth objects: connected components of label {value}")
    else:
        gt_inst = gt
        notes.append("truth objects: the ground truth's ids (instance labels)")
    pred_values = set(np.unique(pred).tolist())
    if value is not None and pred_values <= (gt_values if semantic_gt else {0, value}):
        pred_inst = instances_of(pred, value, per_slice=per_slice)
        notes.append(f"predicted objects: connected components of label {value} (semantic labels)")
        semantic = semantic_gt
    else:
        pred_inst = pred
        notes.append("predicted objects: the prediction's ids (instance labels)")
        semantic = False
    return pred_inst, gt_inst, "; ".join(notes), semantic


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from .metrics import evaluate, format_metrics

    pred, _, _ = _load_image(_check_input(args.prediction))
    gt, _, _ = _load_image(_check_input(args.ground_truth))
    if tuple(pred.shape) != tuple(gt.shape):
        raise CLIError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    pred, gt = np.asarray(pred), np.asarray(gt)
    if args.slices:
        start, stop = _parse_slices(args.slices, "--slices")
        pred, gt = pred[start:stop], gt[start:stop]
    ignore = None
    if not (pred == 0).any() and (gt == 0).any():
        # a model trained on strokes never predicts 0: the ground truth's 0 can only mean "not annotated"
        ignore = 0
        print(
            "the prediction has no 0: ground-truth pixels of value 0 are taken as not annotated and not scored"
        )
    instances = args.instance_of is not None or args.instances
    if instances and ignore is None:
        from .metrics import evaluate_instances, format_instance_metrics

        per_slice = not args.instances_3d
        pred_inst, gt_inst, how, semantic = _instance_arrays(pred, gt, args.instance_of, per_slice)
        print(how)
        print(format_instance_metrics(evaluate_instances(pred_inst, gt_inst, per_slice=per_slice)))
        if semantic and not args.instances:  # semantic scores only when both files are semantic labels
            print(format_metrics(evaluate(pred, gt, foreground=args.foreground)))
        return 0
    print(format_metrics(evaluate(pred, gt, foreground=args.foreground, ignore=ignore)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        out_dir=Path(args.out),
        minutes=args.minutes,
        iterations=args.iterations,
        device=args.device,
        overwrite=args.overwrite,
    )


# --------------------------------------------------------------------------------------------------- parser
def _shared_options() -> argparse.ArgumentParser:
    """The parent parser of the sub-commands that run the engine (train, predict, demo)."""
    parent = argparse.ArgumentParser(add_help=False)
    # a group of their own: the help lists them after each command's own options
    shared = parent.add_argument_group("common options")
    shared.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    shared.add_argument("--overwrite", action="store_true", help="replace existing output files")
    shared.add_argument(
        "--threads",
        type=_int_at_least("threads", 1),
        help="CPU threads for torch (default: torch's choice, all cores)",
    )
    return parent


def _command(
    sub, name: str, summary: str, description: str, examples: str, parents=()
) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` shows what it does and examples to copy."""
    return sub.add_parser(
        name,
        parents=list(parents),
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. {description}",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_info(sub) -> None:
    p = _command(
        sub,
        "info",
        "describe TIFF files as the napari-unet reader sees them",
        "Prints series, axes, shape, dtype, voxel size, compression and whether the file would be read lazily.",
        "napari-unet info stack.tif\nnapari-unet info *.tif",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="TIFF files to describe")
    p.set_defaults(func=cmd_info)


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
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=float, help=f"time budget (default {DEFAULT_MINUTES:g} when no budget is given)"
    )
    budget.add_argument("--iterations", type=int, help="iteration budget")
    p.add_argument(
        "--preset", choices=list(PRESETS), help="start from a preset configuration (default fast-cpu)"
    )
    p.add_argument("--depth", type=int, help="resolution levels of the U-Net")
    p.add_argument("--features", type=int, help="feature maps at the first level")
    p.add_argument("--padding", choices=["valid", "same"], help="convolution padding")
    p.add_argument("--patch", type=int, help="training patch side in pixels")
    p.add_argument("--batch", type=int, help="patches per iteration")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--seed", type=int, help="random seed")
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


def _add_predict(sub, shared: argparse.ArgumentParser) -> None:
    p = _command(
        sub,
        "predict",
        "segment stacks with a trained model (overlap-tile, seam-free)",
        "Slice by slice, each tile with its context halo, so the result equals a whole-slice prediction. The "
        "labels keep the image's shape and voxel size and carry the label values the model was trained on. "
        "Several files or a folder are one batch: the model is loaded once, one progress line covers every "
        "slice, each input NAME.tif gives OUT/NAME_labels.tif (and OUT/NAME_probabilities.tif), and a file "
        "that cannot be read is reported and skipped (exit code 1 and a summary at the end). Name clashes and "
        "existing outputs are refused before any work.",
        "napari-unet predict stack.tif --model model.pt -o stack_labels.tif\n"
        "napari-unet predict stack.tif --model model.pt -o labels.tif --probabilities prob.tif --tta\n"
        "napari-unet predict stacks/ --model model.pt -o labels/            # every stacks/*.tif\n"
        "napari-unet predict a.tif b.tif --model model.pt -o labels/ --probabilities\n"
        "napari-unet predict isbi.tif --model m.pt -o labels.tif --instances cells.tif --instance-of 255\n"
        "napari-unet predict stacks/ --model m.pt -o out/ --instances --instance-of 2 --measurements",
        parents=[shared],
    )
    p.add_argument(
        "image",
        nargs="+",
        metavar="IMAGE",
        help="image TIFF(s) to segment, (Y, X) or (Z, Y, X), or folders: a folder means its *.tif and *.tiff "
        "files, sorted by name, not recursive",
    )
    p.add_argument("--model", required=True, metavar="MODEL.pt", help="a model saved by napari-unet")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="one input file: the labels TIFF to write (or an existing folder); several inputs or a folder: "
        "the output folder (created if missing), one NAME_labels.tif per input",
    )
    p.add_argument(
        "--probabilities",
        nargs="?",
        const=True,
        metavar="PROB.tif",
        help="also write per-class probabilities (float32): to PROB.tif, or with no file name (the only form "
        "with several inputs; put it after the inputs) next to each labels file as NAME_probabilities.tif",
    )
    p.add_argument(
        "--tile",
        type=_int_at_least("tile", 16, auto=True),
        default="auto",
        help="input tile side in pixels, or auto (default)",
    )
    p.add_argument(
        "--batch",
        type=_int_at_least("batch", 1, auto=True),
        default="auto",
        help="tiles per forward pass, or auto (default)",
    )
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average the 8 flips/rotations")
    objects = p.add_argument_group("objects (instance segmentation of one class)")
    objects.add_argument(
        "--instances",
        nargs="?",
        const=True,
        metavar="INSTANCES.tif",
        help="also write the objects of the class --instance-of as uint32 ids unique over the stack: to "
        "INSTANCES.tif, or with no file name (the only form with several inputs) as NAME_instances.tif next to "
        "each labels file",
    )
    objects.add_argument(
        "--instance-of",
        type=int,
        metavar="VALUE",
        help="label value of the object class (255 for ISBI cells, 2 for mitochondria painted as class 2)",
    )
    objects.add_argument(
        "--instances-3d",
        choices=["auto", "yes", "no"],
        default="auto",
        help="3D watershed with the voxel size (yes), or 2D per section linked across sections by overlap (no); "
        "auto (default): 2D + link when the Z step is more than twice the pixel size or the file has no voxel "
        "size, 3D otherwise",
    )
    objects.add_argument(
        "--instance-preset",
        choices=["auto", "cells", "blobs"],
        default="auto",
        help="watershed settings: cells between membranes, or blobs (mitochondria, nuclei); auto (default) "
        "takes cells when the class covers more than 30%% of the predicted pixels",
    )
    objects.add_argument(
        "--instance-min-size",
        type=_int_at_least("instance-min-size", 0),
        metavar="N",
        help="smallest object in pixels (voxels in 3D); default from the preset (cells 30, blobs 1000)",
    )
    objects.add_argument(
        "--measurements",
        nargs="?",
        const=True,
        metavar="FILE.csv",
        help="also write one CSV row per object (label, area/volume and centroid in the voxel size's units, mean "
        "probability, slices spanned): to FILE.csv, or with no file name as NAME_objects.csv next to each labels "
        "file",
    )
    p.set_defaults(func=cmd_predict)


def _add_evaluate(sub) -> None:
    p = _command(
        sub,
        "evaluate",
        "compare a prediction with ground truth (Dice/IoU, pixel and Rand error)",
        "Ground truth may be dense (every value a class) or sparse strokes: when the prediction never contains 0 "
        "(a model trained on strokes), 0 in the ground truth means 'not annotated' and is left out, and the "
        "output says so.",
        "napari-unet evaluate labels.tif truth.tif --foreground 0 --slices 25:30\n"
        "napari-unet evaluate labels.tif strokes.tif\n"
        "napari-unet evaluate cells.tif truth.tif --instance-of 255            # objects: Rand, VOI, F1\n"
        "napari-unet evaluate mito_ids.tif mito_truth_ids.tif --instances --instances-3d",
    )
    p.add_argument("prediction", help="labels TIFF written by napari-unet predict")
    p.add_argument("ground_truth", help="labels TIFF of the same shape")
    p.add_argument(
        "--foreground", type=int, help="label value of the membrane/boundary class (default: guessed)"
    )
    p.add_argument("--slices", metavar="A:B", help="evaluate slices A..B-1 only")
    p.add_argument(
        "--instance-of",
        type=int,
        metavar="VALUE",
        help="also score objects: adapted Rand error, VOI split/merge and object F1 at IoU 0.5, restricted to the "
        "ground truth's foreground; a semantic file's objects are the connected components of VALUE, a file of "
        "many ids (napari-unet predict --instances) is taken as it is",
    )
    p.add_argument(
        "--instances",
        action="store_true",
        help="both files are instance labels (ids; 0 = background): score objects only",
    )
    p.add_argument(
        "--instances-3d",
        action="store_true",
        help="score 3D objects of the stack (default: 2D objects slice by slice, as ISBI 2012 scores)",
    )
    p.set_defaults(func=cmd_evaluate)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-unet",
        description="Train and apply a U-Net on microscopy stacks (TIFF), without the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _shared_options()
    _add_info(sub)
    _add_train(sub, shared)
    _add_predict(sub, shared)
    _add_evaluate(sub)
    _add_demo(sub, shared)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    calm_openmp()  # before torch loads: idle OpenMP threads sleep instead of spinning (see napari_unet._openmp)
    try:
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except CLIError as err:
        print(f"napari-unet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-unet {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        # engine errors carry a sentence meant for the user (shape rules, missing annotations, bad files)
        print(f"napari-unet {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
