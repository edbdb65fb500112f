"""The Segment widget's worker side, without Qt: what one run needs, the job, and the arrays it writes into.

The widget (:mod:`napari_unet._widgets.segment`) reads its controls into a :class:`SegmentRequest` in the GUI
thread; :func:`segment_job` runs in the runner's worker thread, loads the model and drives
:func:`napari_unet.predict.predict_stack`, yielding its ``PredictProgress`` records, and returns a
:class:`SegmentOutput`. When asked, it then cuts one class into objects
(:func:`napari_unet.instances.objects_of_prediction`, yielding its ``InstanceProgress``) and measures them, and
maps the model's uncertainty (:func:`napari_unet.uncertainty.entropy`, an :class:`UncertaintyProgress` per
slice), both from the same prediction's probabilities. No Qt, no napari, and no torch at import (the engine is
imported inside the job).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.dtypes import labels_dtype
from napari_unet.instances import InstanceProgress, ObjectsRequest, PredictedObjects, objects_of_prediction
from napari_unet.uncertainty import entropy

from ._disk_run import DiskOutputs, DiskRun
from ._jobs import Step

__all__ = [
    "SegmentOutput",
    "SegmentRequest",
    "UncertaintyProgress",
    "describe_progress",
    "label_dtype",
    "load_grayscale_model",
    "new_output",
    "segment_job",
]


def label_dtype(label_values: Sequence[int]) -> np.dtype:
    """The dtype of a Labels layer that holds the model's label values."""
    return labels_dtype(max(label_values, default=0))


def new_output(shape: tuple[int, ...], dtype: np.dtype, folder: Path | None, name: str) -> Any:
    """A zero-filled output array: numpy, or a zarr array in ``folder`` (one chunk per 2D plane) when given."""
    if folder is None:
        return np.zeros(shape, dtype=dtype)
    import zarr

    chunks = (1,) * (len(shape) - 2) + tuple(min(int(s), 2048) for s in shape[-2:])
    return zarr.create_array(
        store=str(folder / f"{name}.zarr"),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        overwrite=True,
    )


@dataclass(frozen=True)
class SegmentRequest:
    """Everything one segmentation run needs, read from the widget in the GUI thread.

    ``image`` is what the model sees: the whole (Z, Y, X) / (Y, X) array, or a one-slice (1, Y, X) view for the
    current-slice scope (``z`` is then that slice's index in the stack).

    ``objects``: cut one class into objects and measure them (``value`` None: the model's last class, e.g. 255 of
    ISBI's [0, 255]); with the current-slice scope the objects are that section's (2D). ``voxel_size``: the
    image's ``(Z, Y, X)`` voxel size, None when unknown (``auto`` then cuts section by section; the table is in
    pixels). ``uncertainty``: also map the normalised entropy of the class probabilities.
    """

    image: Any
    z: int | None
    full_shape: tuple[int, ...]
    model_path: Path
    probabilities: bool
    tile: int | str
    batch_size: int | str
    device: str
    tta: bool
    disk_folder: Path | None  # where whole-stack outputs go when they do not fit in memory
    objects: ObjectsRequest | None = None
    voxel_size: tuple[float, ...] | None = None
    uncertainty: bool = False
    image_key: str = ""  # which image this is (layer and source): an on-disk run resumes only for the same one

    @property
    def needs_probabilities(self) -> bool:
        """Whether the run needs the class probabilities (to show them, or for objects or uncertainty)."""
        return self.probabilities or self.objects is not None or self.uncertainty


@dataclass(frozen=True)
class SegmentOutput:
    """What a run hands back to the GUI thread."""

    labels: Any  # (Z, Y, X) / (Y, X), or (1, Y, X) for one slice
    probabilities: Any | None  # as predict_stack returns it: (Z, K, Y, X) / (K, Y, X); None unless asked for
    z: int | None
    meta: dict
    result: Any  # napari_unet.predict.PredictResult
    objects: PredictedObjects | None = None  # labels shaped like ``labels`` (uint32), table in physical units
    uncertainty: Any | None = None  # float32 in [0, 1], shaped like ``labels``


@dataclass(frozen=True)
class UncertaintyProgress:
    """The uncertainty map of ``done`` of ``total`` slices is written."""

    done: int
    total: int


def segment_job(req: SegmentRequest) -> Generator[Any, Any, SegmentOutput]:
    """Generator run in the worker thread: load the model, predict, return a :class:`SegmentOutput`.

    Raises
    ------
    ValueError
        When the model expects more than one channel per pixel (the widget's images have one), in words.
    """
    from napari_unet.checks import check_image
    from napari_unet.predict import predict_stack

    check_image(req.image, "the image")  # the CLI's check, before any work: a sentence, not a failed prediction
    model, meta = load_grayscale_model(req.model_path)
    if req.z is None and req.disk_folder is not None and len(req.full_shape) == 3:
        result = yield from _predict_on_disk(req, model, meta)
    else:
        labels_out = probs_out = None
        if req.z is None and req.disk_folder is not None:  # one big 2D image: on disk, in one go
            values = meta["label_values"]
            labels_out = new_output(req.full_shape, label_dtype(values), req.disk_folder, "labels")
            if req.needs_probabilities:
                shape = (len(values), *req.full_shape)
                probs_out = new_output(shape, np.dtype(np.float32), req.disk_folder, "probabilities")
        result = yield from predict_stack(
            req.image,
            model,
            meta,
            labels_out=labels_out,
            probabilities_out=probs_out,
            want_probabilities=req.needs_probabilities,
            tile=req.tile,
            batch_size=req.batch_size,
            device=req.device,
            tta=req.tta,
        )
    objects = yield from _objects(req, result.probabilities, meta)
    uncertainty = yield from _uncertainty(req, result.probabilities)
    return SegmentOutput(
        labels=result.labels,
        probabilities=result.probabilities if req.probabilities else None,
        z=req.z,
        meta=meta,
        result=result,
        objects=objects,
        uncertainty=uncertainty,
    )


def _predict_on_disk(req: SegmentRequest, model: Any, meta: dict) -> Generator[Any, Any, Any]:
    """A stack too big for memory: into the resumable store of :mod:`._disk_run`, only the slices not done yet.

    Yields a :class:`DiskOutputs` first (the widget shows the labels filling in), then ``predict_stack``'s records.
    """
    from napari_unet.config import parse_auto_int
    from napari_unet.device import select_device
    from napari_unet.predict import model_digest, predict_stack
    from napari_unet.predict._stack import TilePlan

    values = [int(v) for v in meta["label_values"]]
    run = {
        "image": req.image_key,
        "shape": list(req.full_shape),
        "dtype": str(req.image.dtype),
        "model": model_digest(model),
        "tile": str(req.tile),
        "batch_size": str(req.batch_size),
        "device": req.device,
        "tta": bool(req.tta),
        "probabilities": bool(req.needs_probabilities),
    }
    store = DiskRun.open(
        req.disk_folder,
        run,
        req.full_shape,
        label_dtype(values),
        len(values) if req.needs_probabilities else None,
    )
    device = select_device(req.device)
    if store.plan is None:
        made = TilePlan.create(
            model,
            req.full_shape[-2:],
            device,
            tile=parse_auto_int(req.tile, "tile"),
            batch=parse_auto_int(req.batch_size, "batch_size"),
            amp=device.type == "cuda",
            notes=[],
        )
        store.record_plan(made.max_tile, made.batch)
    plan = store.plan
    yield DiskOutputs(store, store.labels, store.done_before, store.total)
    result = yield from predict_stack(
        req.image,
        model,
        meta,
        labels_out=store.labels,
        probabilities_out=store.probabilities,
        want_probabilities=req.needs_probabilities,
        slices=store.pending(),
        tile=plan["tile"],
        batch_size=plan["batch_size"],
        device=device,
        tta=req.tta,
        on_written=store.mark_done,
    )
    store.finish()
    notes = result.notes
    if store.done_before:
        notes += (f"resumed: {store.done_before} of {store.total} slices were already done",)
    return dataclasses.replace(result, notes=notes, n_slices=store.total)


def _objects(
    req: SegmentRequest, probabilities: Any, meta: dict
) -> Generator[Any, Any, PredictedObjects | None]:
    """The objects of ``req.objects``' class, measured: the whole image, or the current slice's section."""
    if req.objects is None:
        return None
    values = [int(v) for v in meta["label_values"]]
    request = dataclasses.replace(req.objects, measure=True)
    if request.value is None:
        request = dataclasses.replace(request, value=values[-1])
    if req.z is None:
        out = None
        if req.disk_folder is not None:
            out = new_output(req.full_shape, np.dtype(np.uint32), req.disk_folder, "objects")
        return (
            yield from objects_of_prediction(
                probabilities, values, request, voxel_size=req.voxel_size, out=out
            )
        )
    # one section of a stack: its objects in 2D, placed at slice z
    yx = None if req.voxel_size is None else req.voxel_size[-2:]
    found = yield from objects_of_prediction(
        probabilities[0], values, dataclasses.replace(request, mode="2d"), voxel_size=yx
    )
    z_step = 1.0 if req.voxel_size is None or len(req.voxel_size) < 3 else float(req.voxel_size[-3])
    table = {}
    for key, column in found.table.items():
        if key == "centroid_y":
            table["centroid_z"] = np.full(len(column), req.z * z_step)
        table[key] = column
    result = dataclasses.replace(found.result, labels=found.result.labels[np.newaxis])
    return PredictedObjects(result, found.preset, table)


def _uncertainty(req: SegmentRequest, probabilities: Any) -> Generator[Any, Any, Any]:
    """The normalised entropy of the class probabilities, slice by slice (a zarr array when the stack is big)."""
    if not req.uncertainty:
        return None
    if probabilities.ndim == 3:  # one 2D image: (K, Y, X)
        yield UncertaintyProgress(0, 1)
        out = entropy(probabilities, axis=0)
        yield UncertaintyProgress(1, 1)
        return out
    shape = (int(probabilities.shape[0]),) + tuple(int(s) for s in probabilities.shape[-2:])
    folder = req.disk_folder if req.z is None else None
    out = new_output(shape, np.dtype(np.float32), folder, "uncertainty")
    for z in range(shape[0]):
        out[z] = entropy(probabilities[z], axis=0)
        yield UncertaintyProgress(z + 1, shape[0])
    return out


def load_grayscale_model(path: Path) -> tuple[Any, dict]:
    """``load_checkpoint(path)`` (in the worker: it imports torch), for the widgets' one-channel images.

    Raises
    ------
    ValueError
        When the model expects more than one channel per pixel, in words.
    """
    from napari_unet.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path)
    in_channels = int(meta.get("model_kwargs", {}).get("in_channels", 1))
    if in_channels != 1:
        raise ValueError(
            f"This model was trained on images with {in_channels} channels per pixel, but the chosen image has one. "
            "Choose a model trained on single-channel (grayscale) images."
        )
    return model, meta


def describe_progress(record: Any, z: int | None = None) -> Step | None:
    """Activity-dock progress for a ``PredictProgress`` record: tiles over the whole run.

    ``z`` names the slice when the run sees a one-slice view of a stack (the record's own ``z`` is then 0). The
    objects' ``InstanceProgress`` and the :class:`UncertaintyProgress` records count slices.
    """
    if isinstance(record, InstanceProgress):
        return Step(
            done=record.done,
            total=record.total,
            text=f"objects ({record.mode.upper()}): {record.n_objects} so far",
        )
    if isinstance(record, UncertaintyProgress):
        return Step(done=record.done, total=record.total, text="uncertainty")
    n_slices = getattr(record, "n_slices", None)
    tiles_total = getattr(record, "tiles_total", None)
    if n_slices is None or tiles_total is None:
        return None
    i, done = int(record.slice_index), int(record.tiles_done)
    if z is not None:
        text = f"slice {z}: tile {done}/{tiles_total}"
    elif i == 0 and done == 0:
        text = "starting"
    else:
        text = record.message
    return Step(done=i * tiles_total + done, total=n_slices * tiles_total, text=text)
