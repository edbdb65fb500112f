"""``napari-unet predict``: labels (and probabilities, objects, measurements) of one or many stacks."""

from __future__ import annotations

import argparse
import sys

from .._console import predict_batch_with_progress
from ..ngff import is_zarr_path
from ._common import CLIError, _check_input, _command, _int_at_least, _load_image


def _load(path):
    """The input as ``(data, scale, units)``: a Zarr / OME-Zarr store lazily, a TIFF as the other commands read it."""
    if is_zarr_path(path):
        from ..ngff import read_zarr_image

        return read_zarr_image(path)
    return _load_image(path)


def cmd_predict(args: argparse.Namespace) -> int:
    from .._batch import BatchPlanError, plan_batch
    from ..checkpoint import load_checkpoint

    objects = _objects_request(args)
    distributed = args.workers is not None or args.scheduler is not None
    if args.workers is not None and args.scheduler is not None:
        raise CLIError(
            "--workers starts a cluster on this machine, --scheduler uses a running one: give one of them"
        )
    try:
        jobs = plan_batch(
            args.image,
            args.output,
            args.probabilities,
            args.overwrite,
            instances=args.instances,
            measurements=args.measurements,
            instance_mode=args.instances_3d,
        )
    except BatchPlanError as err:
        raise CLIError(str(err)) from None
    zarr_jobs = [job for job in jobs if is_zarr_path(job.labels)]
    if objects is not None:
        _refuse_3d_objects(zarr_jobs, objects)
    if distributed and len(zarr_jobs) != len(jobs):
        raise CLIError(
            "--workers / --scheduler: the workers write into OME-Zarr stores; give -o LABELS.zarr "
            "(and --probabilities PROB.zarr)"
        )
    model, meta = load_checkpoint(_check_input(args.model))  # once for the whole batch
    for folder in {job.labels.parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    if objects is not None and objects.value not in (meta.get("label_values") or []):
        raise CLIError(
            f"--instance-of {objects.value}: not a label value of the model (its values: {meta.get('label_values')})"
        )
    options = {"tile": args.tile, "batch_size": args.batch, "device": args.device, "tta": args.tta}
    run = {
        "load": _load,
        "overwrite": args.overwrite,
        "keep_going": len(jobs) > 1,
        "objects": objects,
        **options,
    }
    try:
        if distributed:
            from ..cluster import open_client

            with open_client(workers=args.workers, scheduler=args.scheduler, threads=args.threads) as (
                client,
                info,
            ):
                print(info.describe(), file=sys.stderr)
                result = predict_batch_with_progress(jobs, model, meta, client=client, **run)
        else:
            result = predict_batch_with_progress(jobs, model, meta, **run)
    except KeyboardInterrupt:
        if zarr_jobs:
            print(
                f"napari-unet predict: {zarr_jobs[0].labels} is not finished (it is not marked complete); run the "
                "same command again to resume it",
                file=sys.stderr,
            )
        raise
    if len(jobs) > 1 or not result.ok:
        if not result.ok:
            print(f"napari-unet predict: error: {result.summary()}", file=sys.stderr)
            return 1
        print(f"{result.summary()} to {jobs[0].labels.parent}")
    return 0


def _refuse_3d_objects(zarr_jobs, objects) -> None:
    """``--instances-3d auto`` choosing 3D from an input's voxel size, refused before the model loads."""
    from ..instances import refuse_3d

    for job in zarr_jobs:
        data, scale, units = _load(job.image)  # lazily: the header and a few slices
        try:
            refuse_3d(objects, scale, units, len(data.shape))
        except ValueError as err:
            raise CLIError(f"{job.image}: {err}") from None


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
    from ..instances import ObjectsRequest

    return ObjectsRequest(
        int(args.instance_of),
        mode=args.instances_3d,
        preset=args.instance_preset,
        measure=args.measurements is not None,
        min_size=args.instance_min_size,
    )


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
        "napari-unet predict stacks/ --model m.pt -o out/ --instances --instance-of 2 --measurements\n"
        "napari-unet predict big.tif --model m.pt -o big.zarr --probabilities prob.zarr   # resumable OME-Zarr\n"
        "napari-unet predict big.zarr --model m.pt -o labels.zarr --workers 2 --threads 1\n"
        "napari-unet predict big.tif --model m.pt -o labels.zarr --scheduler tcp://10.0.0.5:8786",
        parents=[shared],
    )
    p.add_argument(
        "image",
        nargs="+",
        metavar="IMAGE",
        help="image TIFF(s) or Zarr / OME-Zarr stores (NAME.zarr) to segment, (Y, X) or (Z, Y, X), or folders: "
        "a folder means its *.tif and *.tiff files, sorted by name, not recursive",
    )
    p.add_argument("--model", required=True, metavar="MODEL.pt", help="a model saved by napari-unet")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="one input file: the labels TIFF to write, or an OME-Zarr store LABELS.zarr (labels under its "
        "labels/ group, streamed slice by slice, resumable: the same command continues an interrupted run), or an "
        "existing folder; several inputs or a folder: the output folder (created if missing), one "
        "NAME_labels.tif per input",
    )
    p.add_argument(
        "--probabilities",
        nargs="?",
        const=True,
        metavar="PROB.tif",
        help="also write per-class probabilities (float32): to PROB.tif (PROB.zarr with -o LABELS.zarr), or "
        "with no file name (the only form with several inputs; put it after the inputs) next to each labels "
        "file as NAME_probabilities.tif (.zarr)",
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
    cluster = p.add_argument_group("dask.distributed (with -o LABELS.zarr)")
    cluster.add_argument(
        "--workers",
        type=_int_at_least("workers", 1),
        metavar="N",
        help="start a dask LocalCluster of N worker processes on this machine (--threads: threads per worker, "
        "default the cores shared among them); each worker reads its slices and writes their chunks itself",
    )
    cluster.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="use a running dask scheduler and its workers (dask scheduler / dask worker, dask-jobqueue on "
        "SLURM); the labels equal a single-process run's",
    )
    objects = p.add_argument_group("objects (instance segmentation of one class)")
    objects.add_argument(
        "--instances",
        nargs="?",
        const=True,
        metavar="INSTANCES.tif",
        help="also write the objects of the class --instance-of as uint32 ids unique over the stack: to "
        "INSTANCES.tif, or with no file name (the only form with several inputs) as NAME_instances.tif next to "
        "each labels file; with -o LABELS.zarr into LABELS.zarr/labels/instances (or the store INSTANCES.zarr), "
        "cut slice by slice where each slice is predicted (--workers / --scheduler too) and linked, resumable "
        "(2D + link only)",
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
