"""Prediction on a dask.distributed cluster: one task per slab of slices, results written by the workers.

The client fixes everything that decides the result before any task runs (the stores, the tile plan:
:func:`napari_unet.predict.open_zarr_run`), ships the model to every worker once (``client.scatter`` with
``broadcast=True``), then submits one task per slab of slices not yet done. Tasks read their slices from the input
file and write their chunks and done flags into the stores; only a few numbers per task come back through the
scheduler. The same stores, plan and done flags as :func:`napari_unet.predict.predict_to_zarr`, so a job may be
started on a laptop, killed, and finished on a cluster (or the other way round), with the same result.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ._tasks import model_payload, predict_slab

__all__ = ["predict_on_cluster", "slabs"]

_MAX_TASKS = 4000


def slabs(zs: list[int], n_workers: int, size: int | None = None) -> list[list[int]]:
    """Split ``zs`` into consecutive slabs: ``size`` slices each, or by default one slice per task (fine-grained
    balance and progress) unless that gives more than 4000 tasks."""
    if not zs:
        return []
    size = size or max(1, math.ceil(len(zs) / _MAX_TASKS))
    return [zs[i : i + size] for i in range(0, len(zs), size)]


def predict_on_cluster(
    client: Any,
    run: Any,
    model: Any,
    meta: dict | None,
    *,
    kind: str,
    tta: bool = False,
    amp: bool = True,
    device: str = "auto",
    slab: int | None = None,
    objects: Any = None,
) -> Generator[Any, None, Any]:
    """Predict ``run``'s slices not done on the workers of ``client``; a generator like ``predict_to_zarr``.

    Parameters
    ----------
    client : distributed.Client
    run : ZarrRun
        From :func:`napari_unet.predict.open_zarr_run` (its ``source`` is the input file the workers read).
    model, meta
        The checkpoint; shipped to each worker once.
    kind : str
        ``"tiff"`` or ``"zarr"``: how the workers open ``run.source``.
    tta, amp
        As for :func:`napari_unet.predict.predict_stack`.
    device : str
        Each worker's device: ``"auto"`` spreads the workers over the GPUs of their machine.
    slab : int, optional
        Slices per task (default: see :func:`slabs`).
    objects : StreamedObjects, optional
        Each task also cuts its slices' objects (:meth:`napari_unet.instances.SliceObjects.job`); the slices the
        ``auto`` preset samples run first, then the preset is chosen here, then the rest; this process links the
        objects at the end, before the stores are marked complete.

    Yields
    ------
    PredictProgress
        One record saying what is resumed, then one per finished task. Closing the generator cancels the
        tasks not finished (slices already written stay done).

    Returns
    -------
    PredictResult
    """
    from ..predict import model_digest
    from ..predict._to_zarr import finished_result, link_objects, resume_record

    t0 = time.perf_counter()
    yield resume_record(run)
    n_workers = len(client.scheduler_info()["workers"])
    payload = model_payload(model, meta, model_digest(model))
    [shipped] = client.scatter([payload], broadcast=True, hash=False)
    job = {
        "input": str(run.source),
        "kind": kind,
        "labels": str(run.outputs.labels_path),
        "probabilities": None
        if run.outputs.probabilities_path is None
        else str(run.outputs.probabilities_path),
        "tta": bool(tta),
        "amp": bool(amp),
        "device": str(device),
        **run.plan,
    }
    # the auto preset's sampled slices go first, alone: the preset is chosen from them before the rest is cut
    first = [z for z in run.todo if objects is not None and z in objects.waiting]
    waves = [first, [z for z in run.todo if z not in first]]
    progress = _Progress(len(run.todo), n_workers)
    for zs in waves:
        if objects is not None:
            job["objects"] = objects.slices.job()
        yield from _wave(client, shipped, job, slabs(zs, n_workers, slab), progress)
        if objects is not None and zs is first and first:
            objects.choose()
    yield from link_objects(objects, run)
    where = ", ".join(sorted(progress.devices)) or "no worker needed"
    return finished_result(run, time.perf_counter() - t0, f"{n_workers} dask worker(s): {where}")


@dataclass
class _Progress:
    """Slices done over the waves of one run, and the devices that did them."""

    total: int
    n_workers: int
    done: int = 0
    devices: set = field(default_factory=set)


def _wave(client: Any, shipped: Any, job: dict, parts: list[list[int]], progress: _Progress):
    """Submit one task per slab of ``parts`` and yield a record per finished task; cancel the rest on close."""
    from distributed import as_completed

    from ..predict import PredictProgress

    tag = uuid.uuid4().hex[:8]
    futures = [
        client.submit(predict_slab, shipped, job, zs, key=f"napari-unet-slab-{tag}-{zs[0]}", pure=False)
        for zs in parts
    ]
    try:
        for future in as_completed(futures):
            report = future.result()
            progress.done += len(report["zs"])
            progress.devices.add(report["device"])
            yield PredictProgress(
                progress.done,
                progress.total,
                0,
                0,
                f"{progress.done}/{progress.total} slices on {progress.n_workers} worker(s)",
                report["zs"][-1],
            )
    finally:
        client.cancel([f for f in futures if not f.done()])
