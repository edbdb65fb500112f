"""Prediction into resumable OME-Zarr stores: the plan kept in the store, only the slices not done predicted.

:func:`open_zarr_run` creates (or reopens) the stores of :mod:`napari_unet.ngff` for one input and fixes the tile
plan: the first run records its tile side and batch in the labels store, and every later run of the same job
tiles with exactly those, so a resumed result - or one computed by cluster workers - equals an uninterrupted
single-process run bit for bit (on the same kind of device). :func:`predict_to_zarr` then predicts the slices not
yet done in this process, streaming each slice to the stores; the cluster runner (:mod:`napari_unet.cluster`) does
the same with tasks on workers.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import parse_auto_int
from ..device import describe_device, select_device
from ..dtypes import labels_dtype
from ..generators import drain
from ..model import UNet
from ..ngff import OutputSpec, ZarrOutputs
from ._records import PredictProgress, PredictResult
from ._source import SliceSource
from ._stack import TilePlan, predict_stack

__all__ = [
    "ZarrRun",
    "finished_result",
    "link_objects",
    "model_digest",
    "open_zarr_run",
    "predict_to_zarr",
    "predict_to_zarr_sync",
    "resume_record",
]


def model_digest(model: UNet) -> str:
    """SHA-256 of a model's constructor arguments and weights: which model a store's slices came from."""
    digest = hashlib.sha256(repr(sorted(model.kwargs.items())).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class ZarrRun:
    """An opened job: its stores, the tile plan every slice uses, the device, and the slices still to do."""

    outputs: ZarrOutputs
    tile: int
    batch: int
    device: torch.device
    todo: list[int]
    source: str
    spec: OutputSpec | None = None
    record: dict = field(default_factory=dict)

    @property
    def plan(self) -> dict:
        """``tile`` and ``batch_size`` as :func:`napari_unet.predict.predict_stack` takes them."""
        return {"tile": self.tile, "batch_size": self.batch}


def open_zarr_run(
    image: Any,
    model: UNet,
    meta: dict | None,
    labels_path: str | os.PathLike,
    probabilities_path: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike = "",
    scale: tuple[float, ...] | None = None,
    units: Any = None,
    tile: int | str = "auto",
    batch_size: int | str = "auto",
    device: str | torch.device = "auto",
    tta: bool = False,
    amp: bool = True,
    overwrite: bool = False,
) -> ZarrRun:
    """Create or resume the OME-Zarr stores of one prediction and fix its tile plan.

    Parameters
    ----------
    image : array-like
        ``(Z, Y, X)`` or ``(Y, X)`` input (single-channel models only).
    model, meta
        The checkpoint (``label_values`` and ``class_names`` name the classes in the stores).
    labels_path, probabilities_path : path
        ``.zarr`` stores to write (see :class:`napari_unet.ngff.ZarrOutputs`).
    source : path
        The input file, recorded so that a store is resumed only by a run on the same input.
    scale, units
        Voxel size and units per spatial axis, written as the stores' coordinate transformations.
    tile, batch_size, device, tta, amp
        As for :func:`napari_unet.predict.predict_stack`; ``"auto"`` is decided once, by the first run.
    overwrite : bool
        Replace finished or foreign stores (an unfinished store of the same run is resumed either way).

    Raises
    ------
    napari_unet.ngff.ZarrOutputError
        When a store exists and may not be replaced or resumed.
    ValueError
        For a multi-channel model or an image that is not 2D / 3D.
    """
    if model.in_channels != 1 or len(image.shape) not in (2, 3):
        raise ValueError(
            f"OME-Zarr output takes a (Y, X) or (Z, Y, X) image and a 1-channel model, got shape "
            f"{tuple(image.shape)} for a {model.in_channels}-channel model"
        )
    meta = meta or {}
    values = [int(v) for v in (meta.get("label_values") or range(model.n_classes))]
    names = list(meta.get("class_names") or [f"class {i}" for i in range(model.n_classes)])
    shape = tuple(int(n) for n in image.shape)
    units = tuple(units) if isinstance(units, (list, tuple)) else (units or "",) * len(shape)
    spec = OutputSpec(
        shape, image.dtype, labels_dtype(max(values)), values, names, tuple(scale or (1.0,) * len(shape)),
        units, Path(source).stem if source else "image",
    )  # fmt: skip
    run = {
        "input": str(Path(source).resolve()) if source else "",
        "shape": list(shape),
        "dtype": str(image.dtype),
        "model": model_digest(model),
        "tta": bool(tta),
        "tile": str(tile),
        "batch_size": str(batch_size),
        "probabilities": probabilities_path is not None,
    }
    outputs = ZarrOutputs.open(labels_path, probabilities_path, spec, run, overwrite=overwrite)
    dev = select_device(device)
    plan = outputs.plan
    if plan is None:
        made = TilePlan.create(
            model,
            shape[-2:],
            dev,
            tile=parse_auto_int(tile, "tile"),
            batch=parse_auto_int(batch_size, "batch_size"),
            amp=bool(amp) and dev.type == "cuda",
            notes=[],
        )
        plan = {"tile": made.max_tile, "batch_size": made.batch}
        outputs.record_plan(plan)
    tile, batch = int(plan["tile"]), int(plan["batch_size"])
    return ZarrRun(outputs, tile, batch, dev, outputs.pending(), str(source), spec, run)


def predict_to_zarr(
    image: Any,
    model: UNet,
    meta: dict | None,
    run: ZarrRun,
    *,
    tta: bool = False,
    amp: bool = True,
    objects: Any = None,
) -> Generator[PredictProgress, None, PredictResult]:
    """Predict the slices ``run`` has still to do, in this process, into its stores; then mark them complete.

    Yields the :class:`PredictProgress` of :func:`napari_unet.predict.predict_stack` (``n_slices`` counts the
    slices of this run, not those done before), after one record saying how many were already done.
    ``objects`` (a :class:`napari_unet.instances.StreamedObjects`, whose ``prepare`` gave ``run.todo``) cuts each
    slice's objects right after it is predicted and links them before the stores are marked complete.

    Returns
    -------
    PredictResult
        ``labels`` and ``probabilities`` are the stores' zarr arrays (``(K, Z, Y, X)`` for the probabilities).
    """
    t0 = time.perf_counter()
    outputs = run.outputs
    yield resume_record(run)
    source = SliceSource(image)
    is_stack = source.ndim == 3
    notes: tuple[str, ...] = ()
    if run.todo:
        probabilities = outputs.probabilities
        if objects is not None:
            probabilities = objects.slices.tapped(probabilities, model.n_classes)

        def written(z: int) -> None:
            if objects is not None:  # its objects first: a slice recorded as done has them
                objects.written(z)
            outputs.slice_done(z, source[z] if is_stack else source[...])

        result = yield from predict_stack(
            source,
            model,
            meta,
            labels_out=outputs.labels,
            probabilities_out=probabilities,
            slices=run.todo,
            device=run.device,
            tta=tta,
            amp=amp,
            on_written=written,
            **run.plan,
        )
        notes = result.notes
    yield from link_objects(objects, run)
    return finished_result(run, time.perf_counter() - t0, describe_device(run.device), notes)


def link_objects(objects: Any, run: ZarrRun) -> Generator[PredictProgress, None, None]:
    """Complete ``objects`` (link, measure; nothing when None), as records of a finished prediction."""
    if objects is None:
        return
    n = len(run.todo)
    for rec in objects.complete():
        message = f"objects: {rec.done}/{rec.total} slice(s) linked, {rec.n_objects} so far"
        yield PredictProgress(n, n, 0, 0, message, rec.done - 1)


def resume_record(run: ZarrRun) -> PredictProgress:
    """The first record of a run into stores: how many slices an earlier run did, how many are left."""
    done, total = run.outputs.done_before, run.outputs.n_slices
    if done:
        message = f"resuming {run.outputs.labels_path}: {done} of {total} slice(s) already done, {len(run.todo)} to go"
    else:
        message = f"writing {total} slice(s) to {run.outputs.labels_path}"
    return PredictProgress(0, len(run.todo), 0, 0, message, run.todo[0] if run.todo else 0)


def finished_result(run: ZarrRun, seconds: float, device: str, notes: tuple[str, ...] = ()) -> PredictResult:
    """Mark ``run``'s stores complete (they must be: every slice done) and describe them as a result.

    Raises
    ------
    RuntimeError
        When a slice is still not recorded as done (the stores stay incomplete, to be resumed).
    """
    outputs = run.outputs
    if not outputs.finish():
        missing = outputs.pending()
        raise RuntimeError(
            f"{len(missing)} slice(s) of {outputs.labels_path} are not done (first z={missing[0]}); "
            "run the same command again to finish them"
        )
    probs = outputs.probabilities
    return PredictResult(
        labels=outputs.labels,
        probabilities=getattr(probs, "array", probs),
        device=device,
        tile=run.tile,
        batch_size=run.batch,
        seconds=seconds,
        n_slices=len(run.todo),
        notes=tuple(notes)
        + ((f"resumed: {outputs.done_before} slice(s) were already done",) if outputs.done_before else ()),
    )


def predict_to_zarr_sync(
    image: Any, model: UNet, meta: dict | None, run: ZarrRun, **kwargs: Any
) -> PredictResult:
    """Synchronous twin of :func:`predict_to_zarr`."""
    return drain(predict_to_zarr(image, model, meta, run, **kwargs))
