"""``napari-unet evaluate``: a prediction against ground truth, pixels and objects."""

from __future__ import annotations

import argparse

from ._common import CLIError, _check_input, _command, _load_image, _parse_slices


def _instance_arrays(pred, gt, value: int | None, per_slice: bool):
    """Prediction and truth as instance ids for ``evaluate``, a line saying how each was read, and whether both
    files were semantic labels (then the semantic scores are printed too).

    A labels file whose values are all values of the truth's classes is semantic: its objects are the
    connected components of ``value``; anything else (many ids) is taken as instance labels as they are.
    """
    import numpy as np

    from ..metrics import instances_of

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
    from ..checks import InputError, check_label_dtype, check_slices
    from ..metrics import evaluate, format_metrics

    pred_path = _check_input(args.prediction, "prediction")
    gt_path = _check_input(args.ground_truth, "ground truth")
    pred, _, _ = _load_image(pred_path)
    gt, _, _ = _load_image(gt_path)
    if tuple(pred.shape) != tuple(gt.shape):
        raise CLIError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    slices = _parse_slices(args.slices, "--slices")
    try:
        pred = check_label_dtype(pred, f"prediction {pred_path}")
        gt = check_label_dtype(gt, f"ground truth {gt_path}")
        check_slices(slices, pred.shape[0] if pred.ndim == 3 else 1, "--slices")
    except InputError as err:
        raise CLIError(str(err)) from None
    if slices:
        pred, gt = pred[slices[0] : slices[1]], gt[slices[0] : slices[1]]
    ignore = None
    if not (pred == 0).any() and (gt == 0).any():
        # a model trained on strokes never predicts 0: the ground truth's 0 can only mean "not annotated"
        ignore = 0
        print(
            "the prediction has no 0: ground-truth pixels of value 0 are taken as not annotated and not scored"
        )
    instances = args.instance_of is not None or args.instances
    if instances and ignore is None:
        from ..metrics import evaluate_instances, format_instance_metrics

        per_slice = not args.instances_3d
        pred_inst, gt_inst, how, semantic = _instance_arrays(pred, gt, args.instance_of, per_slice)
        print(how)
        print(format_instance_metrics(evaluate_instances(pred_inst, gt_inst, per_slice=per_slice)))
        if semantic and not args.instances:  # semantic scores only when both files are semantic labels
            print(format_metrics(evaluate(pred, gt, foreground=args.foreground)))
        return 0
    print(format_metrics(evaluate(pred, gt, foreground=args.foreground, ignore=ignore)))
    return 0


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
