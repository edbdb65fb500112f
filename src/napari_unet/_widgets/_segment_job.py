"""The Segment widget's worker side, without Qt: what one run needs, the job, and the arrays it writes into.

The widget (:mod:`napari_unet._widgets.segment`) reads its controls into a :class:`SegmentRequest` in the GUI
thread; :func:`segment_job` runs in the runner's worker thread, loads the model and drives
:func:`napari_unet.predict.predict_stack`, yielding its ``PredictProgress`` records, and returns a
:class:`SegmentOutput`. No Qt, no napari, and no torch at import (the engine is imported inside the job).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.dtypes import labels_dtype

from ._jobs import Step

__all__ = [
    "SegmentOutput",
    "SegmentRequest",
    "describe_progress",
    "label_dtype",
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


@dataclass(frozen=True)
class SegmentOutput:
    """What a run hands back to the GUI thread."""

    labels: Any  # (Z, Y, X) / (Y, X), or (1, Y, X) for one slice
    probabilities: Any | None  # as predict_stack returns it: (Z, K, Y, X) / (K, Y, X)
    z: int | None
    meta: dict
    result: Any  # napari_unet.predict.PredictResult


def segment_job(req: SegmentRequest) -> Generator[Any, Any, SegmentOutput]:
    """Generator run in the worker thread: load the model, predict, return a :class:`SegmentOutput`.

    Raises
    ------
    ValueError
        When the model expects more than one channel per pixel (the widget's images have one), in words.
    """
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack

    model, meta = load_checkpoint(req.model_path)
    in_channels = int(meta.get("model_kwargs", {}).get("in_channels", 1))
    if in_channels != 1:
        raise ValueError(
            f"This model was trained on images with {in_channels} channels per pixel, but the chosen image has one. "
            "Choose a model trained on single-channel (grayscale) images."
        )
    labels_out = probs_out = None
    if req.z is None and req.disk_folder is not None:
        labels_out = new_output(req.full_shape, label_dtype(meta["label_values"]), req.disk_folder, "labels")
        if req.probabilities:
            n_classes = len(meta["label_values"])
            shape = req.full_shape[:-2] + (n_classes,) + req.full_shape[-2:]
            probs_out = new_output(shape, np.dtype(np.float32), req.disk_folder, "probabilities")
    result = yield from predict_stack(
        req.image,
        model,
        meta,
        labels_out=labels_out,
        probabilities_out=probs_out,
        want_probabilities=req.probabilities,
        tile=req.tile,
        batch_size=req.batch_size,
        device=req.device,
        tta=req.tta,
    )
    return SegmentOutput(
        labels=result.labels, probabilities=result.probabilities, z=req.z, meta=meta, result=result
    )


def describe_progress(record: Any, z: int | None = None) -> Step | None:
    """Activity-dock progress for a ``PredictProgress`` record: tiles over the whole run.

    ``z`` names the slice when the run sees a one-slice view of a stack (the record's own ``z`` is then 0).
    """
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
