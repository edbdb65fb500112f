"""One batch job whose outputs are OME-Zarr stores: resumable, streamed slice by slice, here or on a cluster.

:func:`predict_batch <napari_unet._batch.predict_batch>` hands a job whose labels path ends in ``.zarr`` to
:func:`predict_zarr_job`, which opens (or resumes) the stores, then predicts in this process
(:func:`napari_unet.predict.predict_to_zarr`) or on the dask.distributed client it was given
(:func:`napari_unet.cluster.predict_on_cluster`). Its progress records count the whole stack, slices already done
by an earlier run included, so a batch progress bar starts where the interrupted run stopped.

With objects asked for, the job's instance store is opened with the others
(:class:`napari_unet.instances.StreamedObjects`): each slice's objects are cut where the slice is predicted, and
linked into stack-wide ids before the stores are marked complete.
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
    objects: Any = None,
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
    objects : ObjectsRequest, optional
        Also the objects of one class, into ``job.instances`` (and ``job.measurements``); 2D + link only.

    Returns
    -------
    (PredictResult, PredictedObjects or None)
        Labels and probabilities are the stores' zarr arrays; the objects' ids are the instance store's.

    Raises
    ------
    ValueError
        For 3D objects, before any store is opened.
    """
    from .predict import open_zarr_run, predict_to_zarr

    if objects is not None:
        from .instances import refuse_3d

        refuse_3d(objects, scale, units, len(data.shape))
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
    streamed = _open_objects(job, run, objects, overwrite) if objects is not None else None
    if client is None:
        records = predict_to_zarr(data, model, meta, run, tta=tta, objects=streamed)
    else:
        from .cluster import predict_on_cluster

        kind = "zarr" if is_zarr_path(job.image) else "tiff"
        records = predict_on_cluster(
            client, run, model, meta, kind=kind, tta=tta, device=device, objects=streamed
        )
    total = run.outputs.n_slices
    skipped = total - len(run.todo)
    try:
        while True:
            try:
                rec = next(records)
            except StopIteration as stop:
                return stop.value, None if streamed is None else streamed.found
            # the whole stack: slices an earlier run did count as done
            yield dataclasses.replace(rec, slice_index=rec.slice_index + skipped, n_slices=total)
    finally:
        records.close()  # a cancelled run cancels its cluster tasks too


def _open_objects(job: Any, run: Any, request: Any, overwrite: bool) -> Any:
    """The job's :class:`~napari_unet.instances.StreamedObjects`; ``run.todo`` gains the slices they need."""
    from .instances import StreamedObjects
    from .ngff import instances_group

    streamed = StreamedObjects.open(
        job.instances or instances_group(job.labels),
        request,
        run.spec.label_values,
        shape=run.spec.shape,
        scale=run.spec.scale,
        units=run.spec.units,
        run=run.record,
        resume=not run.outputs.created,
        overwrite=overwrite,
        measurements=job.measurements,
    )
    run.todo = streamed.prepare(run.todo)
    return streamed
