"""Predicting many TIFF files in one run: which output each input gets, checked before any work, then the run.

``napari-unet predict`` takes one or more TIFF files or folders. :func:`plan_batch` turns them into a list of
:class:`Job` (one input, its labels file, its probabilities file) and refuses, before anything is read or
written, what would go wrong half-way: a missing input, an empty folder, two inputs that would write the same
output, outputs that exist (without ``overwrite``), an output that is one of the inputs, a file name where a
folder is needed. It only looks at names and the disk, so it is tested without torch.

:func:`predict_batch` is the run: a generator over the jobs with one model, yielding a :class:`BatchProgress`
after every tile batch (over the slices of *all* files, so a caller shows one progress bar) and one record per
file written or failed, and returning a :class:`BatchResult`. A file that cannot be read or predicted is
reported and skipped; the files already written stay.

The layout:

- one input file and ``-o LABELS.tif``: that file, as always (``--probabilities PROB.tif`` names the
  probabilities file);
- several inputs, a folder among them, or ``-o`` an existing folder: ``-o`` is a folder (created if missing)
  and the input ``NAME.tif`` gives ``OUT/NAME_labels.tif`` (and ``OUT/NAME_probabilities.tif``).

A bare ``--probabilities`` (``probabilities=True``) puts the probabilities next to each labels file, named after
it: a stem ending in ``_labels`` has it replaced by ``_probabilities``, any other stem gets ``_probabilities``
appended (``seg.tif`` -> ``seg_probabilities.tif``). Objects (``--instances``, ``--measurements``) follow the same
rule: a file name for one input, or bare for ``NAME_instances.tif`` / ``NAME_objects.csv`` next to each labels
file (the only form with several inputs). With ``-o LABELS.zarr`` the objects stream into OME-Zarr with the labels
(bare: ``LABELS.zarr/labels/instances``; ``X.zarr``: a store of their own), see :mod:`napari_unet._batch_zarr`.

The plan lives in :mod:`napari_unet._batch_plan` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._batch_plan import (
    FOLDER_SUFFIXES,
    BatchPlanError,
    Job,
    expand_inputs,
    is_folder_layout,
    plan_batch,
    probabilities_path,
    sibling_path,
)
from .generators import relay
from .io._open import collect_tifffile_warnings
from .ngff import is_zarr_path

__all__ = [
    "FOLDER_SUFFIXES",
    "BatchPlanError",
    "BatchProgress",
    "BatchResult",
    "Job",
    "count_slices",
    "expand_inputs",
    "is_folder_layout",
    "plan_batch",
    "predict_batch",
    "probabilities_path",
    "sibling_path",
    "write_objects",
    "write_outputs",
]


# --------------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class BatchProgress:
    """Progress of :func:`predict_batch`.

    Attributes
    ----------
    kind : str
        ``"slice"`` (after a tile batch), ``"written"`` (a file's outputs are on disk: ``result`` holds its
        ``PredictResult``) or ``"failed"`` (``error`` says why; the batch goes on).
    job_index, n_jobs : int
        Position of the current file in the batch / files in the batch.
    job : Job
        The current file and its outputs.
    slices_done : float
        Slices of the whole batch done so far (fractional within a slice).
    slices_total : int
        Slices of the whole batch (counted from the files' headers, corrected as each file is read).
    message : str
        One line for a status bar, e.g. ``"slice 2/3"``.
    result : PredictResult or None
    error : str
    objects : PredictedObjects or None
        The file's objects (``"written"`` records of a run with ``objects``).
    """

    kind: str
    job_index: int
    n_jobs: int
    job: Job
    slices_done: float
    slices_total: int
    message: str = ""
    result: Any = None
    error: str = ""
    objects: Any = None

    @property
    def fraction(self) -> float:
        """Progress of the whole batch in [0, 1]."""
        return 1.0 if self.slices_total <= 0 else min(1.0, self.slices_done / self.slices_total)


@dataclass(frozen=True)
class BatchResult:
    """What :func:`predict_batch` returns: the jobs written and the jobs that failed, with the reason."""

    written: tuple[Job, ...]
    failed: tuple[tuple[Job, str], ...]

    @property
    def ok(self) -> bool:
        """True when every file was written."""
        return not self.failed

    def summary(self) -> str:
        """One line, e.g. ``"2 of 3 written; failed: c.tif: not a valid TIFF file"``."""
        n = len(self.written) + len(self.failed)
        text = f"{len(self.written)} of {n} written"
        if self.failed:
            text += "; failed: " + "; ".join(f"{job.image.name}: {reason}" for job, reason in self.failed)
        return text


def count_slices(path: Path) -> int:
    """Slices of a TIFF's first series, from its header alone (1 when the header cannot be read).

    A guess for the progress bar: the axes other than Y, X and colour multiplied (Z, or a page sequence). A
    file that cannot be read is counted as one slice and fails, with its reason, when its turn comes.
    """
    import tifffile

    if is_zarr_path(path):
        from .ngff import read_zarr_image

        try:
            shape = read_zarr_image(path)[0].shape
        except Exception:  # its turn reports it
            return 1
        return shape[0] if len(shape) == 3 else 1
    try:
        # tifffile logs what it finds odd in a header: collected here, the file is read again at its turn
        with collect_tifffile_warnings(), tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            sizes = [n for n, axis in zip(series.shape, series.axes, strict=False) if axis not in "YXSC"]
    except Exception:  # a corrupt file: its turn reports it
        return 1
    return max(1, math.prod(sizes))


def write_outputs(job: Job, result: Any, scale: Sequence[float], units: Any, *, overwrite: bool) -> None:
    """Write a ``PredictResult``'s labels (and probabilities, when the job has a file for them).

    The labels keep the image's voxel size and units and re-open as Labels; the probabilities are
    ``(Z, K, Y, X)`` (or ``(K, Y, X)``) float32, one channel per class, with the spatial voxel size.
    """
    from .io import write_tiff

    write_tiff(job.labels, result.labels, scale=scale, units=units, labels=True, overwrite=overwrite)
    if job.probabilities is not None:
        probs = result.probabilities
        pscale = (scale[0], 1.0, *scale[1:]) if probs.ndim == 4 else (1.0, *scale)
        axes = "ZCYX" if probs.ndim == 4 else "CYX"
        write_tiff(job.probabilities, probs, scale=pscale, axes=axes, overwrite=overwrite)


def write_objects(job: Job, objects: Any, scale: Sequence[float], units: Any, *, overwrite: bool) -> None:
    """Write a file's objects: the uint32 instance ids (a Labels TIFF) and / or the per-object CSV.

    OME-Zarr jobs have theirs written as they are made (:mod:`napari_unet._batch_zarr`): nothing to do here.
    """
    from .instances import table_unit, write_measurements_csv
    from .io import write_tiff

    if is_zarr_path(job.labels):
        return
    if job.instances is not None:
        write_tiff(
            job.instances, objects.result.labels, scale=scale, units=units, labels=True, overwrite=overwrite
        )
    if job.measurements is not None and objects.table is not None:
        write_measurements_csv(job.measurements, objects.table, unit=table_unit(units))


def _objects(
    job: Job, index: int, n_jobs: int, done: int, total: int, result: Any, meta: Any, scale, units, objects
):
    """The objects of one file's prediction, re-yielded as batch progress (``"objects z/n"``)."""
    from .instances import objects_of_prediction, objects_voxel_size

    values = (meta or {}).get("label_values") or list(range(result.probabilities.shape[-3]))

    def record(rec: Any) -> BatchProgress:
        return BatchProgress(
            # the file's slices are predicted: the bar stays there while the message counts the object slices
            "slice",
            index,
            n_jobs,
            job,
            done,
            total,
            f"objects {rec.done}/{rec.total}",
        )

    # a file without a voxel size reads as all ones and no units: unknown, so auto takes 2D + link
    voxel_size = objects_voxel_size(scale, units)
    run = objects_of_prediction(result.probabilities, values, objects, voxel_size=voxel_size)
    return (yield from relay(run, record))


def _reason(err: BaseException, path: Path) -> str:
    """The error's message without a leading ``path: `` (the summary names the file itself)."""
    text = str(err) or type(err).__name__
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def predict_batch(
    jobs: Sequence[Job],
    model: Any,
    meta: dict | None,
    *,
    load: Callable[[Path], tuple[Any, Sequence[float], Any]],
    overwrite: bool = False,
    keep_going: bool = True,
    objects: Any = None,
    client: Any = None,
    **options: Any,
) -> Generator[BatchProgress, None, BatchResult]:
    """Predict every job's image with one model and write its outputs; a generator of :class:`BatchProgress`.

    Parameters
    ----------
    jobs : sequence of Job
        From :func:`plan_batch`; the output folders must exist.
    model, meta
        A loaded checkpoint (loaded once for the whole batch).
    load : callable
        ``load(path) -> (data, scale, units)``: the image as ``(Y, X)`` or ``(Z, Y, X)`` with its voxel size
        and units; it raises with a sentence for the user when the file will not do.
    overwrite : bool
        Passed to the writer (the plan has already refused existing outputs without it).
    keep_going : bool
        True: a file that fails is reported (a ``"failed"`` record) and the others still run. False: its
        error propagates (one input: the error is the command's).
    objects : ObjectsRequest, optional
        Also cut one class into objects (:func:`napari_unet.instances.objects_of_prediction`) and write them
        to each job's ``instances`` / ``measurements`` files.
    client : distributed.Client, optional
        Jobs with OME-Zarr outputs run on this cluster's workers (:mod:`napari_unet.cluster`).
    **options
        Passed to :func:`napari_unet.predict.predict_stack` (``tile``, ``batch_size``, ``device``, ``tta``).

    Returns
    -------
    BatchResult
        The jobs written and those that failed. Closing the generator stops after the current tile batch;
        files already written stay.
    """
    from .predict import predict_stack

    counts = [count_slices(job.image) for job in jobs]
    done, written, failed = 0, [], []
    for index, job in enumerate(jobs):

        def record(rec: Any, index: int = index, job: Job = job, before: int = done) -> BatchProgress:
            return BatchProgress(
                "slice",
                index,
                len(jobs),
                job,
                before + rec.fraction * rec.n_slices,
                sum(counts),
                # records without tiles (OME-Zarr resume, cluster tasks) say themselves where the run is
                rec.message if rec.tiles_total == 0 else f"slice {rec.slice_index + 1}/{rec.n_slices}",
            )

        try:
            data, scale, units = load(job.image)
            counts[index] = data.shape[0] if data.ndim == 3 else 1
            found = None
            if is_zarr_path(
                job.labels
            ):  # streamed into resumable stores, objects too, here or on the cluster
                from ._batch_zarr import predict_zarr_job

                run = predict_zarr_job(
                    job, data, scale, units, model, meta, overwrite=overwrite, client=client,
                    objects=objects, **options,
                )  # fmt: skip
                result, found = yield from relay(run, record)
            else:
                want = job.probabilities is not None or objects is not None
                run = predict_stack(data, model, meta, want_probabilities=want, **options)
                result = yield from relay(run, record)
                write_outputs(job, result, scale, units, overwrite=overwrite)
            if objects is not None and not is_zarr_path(job.labels):
                found = yield from _objects(
                    job,
                    index,
                    len(jobs),
                    done + counts[index],
                    sum(counts),
                    result,
                    meta,
                    scale,
                    units,
                    objects,
                )
                write_objects(job, found, scale, units, overwrite=overwrite)
        except Exception as err:  # one bad file must not cost the others (GeneratorExit is not caught)
            if not keep_going:
                raise
            failed.append((job, _reason(err, job.image)))
            kind, result, error, found = "failed", None, failed[-1][1], None
        else:
            written.append(job)
            kind, error = "written", ""
        done += counts[index]
        yield BatchProgress(
            kind, index, len(jobs), job, done, sum(counts), result=result, error=error, objects=found
        )
    return BatchResult(tuple(written), tuple(failed))
