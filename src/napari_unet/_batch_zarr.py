"""One batch job whose outputs are OME-Zarr stores: resumable, streamed slice by slice, here or on a cluster.

:func:`predict_batch <napari_unet._batch.predict_batch>` hands a job whose labels path ends in ``.zarr`` to
:func:`predict_zarr_job`, which opens (or resumes) the stores, then predicts in this process
(:func:`napari_unet.predict.predict_to_zarr`) or on the dask.distributed client it was given
(:func:`napari_unet.cluster.predict_on_cluster`). Its progress records count the whole stack, slices already done
by an earlier run included, so a batch progress bar starts where the interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

from .ngff import is_zarr_path

__all__ = ["predict_zarr_job"]


def predict_zarr_job(
    job: Any,
    data: Any,
    scale: Any,
    units: Any,
    model: Any,
    meta: dict | None,
    *,
    overwrite: bool = False,
    client: Any = None,
    tile: int | str = "auto",
    batch_size: int | str = "auto",
    device: str = "auto",
    tta: bool = False,
) -> Generator[Any, None, Any]:
    """Predict ``job`` (``job.labels`` a ``.zarr`` store) into OME-Zarr; yields ``PredictProgress`` over the stack.

    Parameters
    ----------
    job : Job
        Its ``labels`` (and ``probabilities``, when set) are ``.zarr`` stores.
    data, scale, units
        The loaded input (lazy), its voxel size and units.
    model, meta
        The checkpoint.
    overwrite : bool
        Replace finished or foreign stores; an unfinished store of the same run is resumed either way.
    client : distributed.Client, optional
        Predict on this cluster's workers instead of in this process.
    tile, batch_size, device, tta
        As for :func:`napari_unet.predict.predict_stack`.

    Returns
    -------
    PredictResult
        Labels and probabilities are the stores' zarr arrays.
    """
    from .predict import open_zarr_run, predict_to_zarr

    run = open_zarr_run(
        data,
        model,
        meta,
        job.labels,
        job.probabilities,
        source=job.image,
        scale=tuple(scale),
        units=units,
        tile=tile,
        batch_size=batch_size,
        device=device,
        tta=tta,
        overwrite=overwrite,
    )
    if client is None:
        records = predict_to_zarr(data, model, meta, run, tta=tta)
    else:
        from .cluster import predict_on_cluster

        kind = "zarr" if is_zarr_path(job.image) else "tiff"
        records = predict_on_cluster(client, run, model, meta, kind=kind, tta=tta, device=device)
    skipped, total = run.outputs.done_before, run.outputs.n_slices
    try:
        while True:
            try:
                rec = next(records)
            except StopIteration as stop:
                return stop.value
            # the whole stack: slices an earlier run did count as done
            yield dataclasses.replace(rec, slice_index=rec.slice_index + skipped, n_slices=total)
    finally:
        records.close()  # a cancelled run cancels its cluster tasks too
