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
file (the only form with several inputs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .generators import relay
from .io._open import collect_tifffile_warnings
from .io._paths import is_tiff_path, strip_tiff_suffix
from .ngff import is_zarr_path, store_state

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

FOLDER_SUFFIXES = (".tif", ".tiff")
"""File endings taken from a folder given as input (compared case-insensitively; not recursive)."""

_LIST_AT_MOST = 5  # paths named in one error message


class BatchPlanError(ValueError):
    """An input / output combination refused before any work; the message is one sentence for the user."""


@dataclass(frozen=True)
class Job:
    """One input file and the files its prediction goes to.

    Attributes
    ----------
    image : Path
        The input TIFF, as given (or found in a folder).
    labels : Path
        Where the labels go.
    probabilities : Path or None
        Where the per-class probabilities go; None when they are not wanted.
    """

    image: Path
    labels: Path
    probabilities: Path | None = None
    instances: Path | None = None
    measurements: Path | None = None

    @property
    def outputs(self) -> tuple[Path, ...]:
        """The files this job writes."""
        extra = (self.probabilities, self.instances, self.measurements)
        return (self.labels, *(p for p in extra if p is not None))


# --------------------------------------------------------------------------------------------------- the plan
def _folder_tiffs(folder: Path) -> list[Path]:
    # hidden files are left out: macOS writes "._name.tif" resource forks beside the real files
    found = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES and not p.name.startswith(".")
    ]
    if not found:
        raise BatchPlanError(f"{folder}: the folder has no .tif or .tiff files")
    return sorted(found)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The TIFF files that ``inputs`` name: files as given, folders as their ``*.tif``/``*.tiff`` files.

    Parameters
    ----------
    inputs : sequence of path
        Files and folders, in the order the user gave them.

    Returns
    -------
    list of Path
        Files in the order given; a folder's files sorted by name (not recursive, hidden files left out).

    Raises
    ------
    BatchPlanError
        When an input does not exist or a folder holds no TIFF file.
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise BatchPlanError(f"{item}: no such file")
        files.extend(_folder_tiffs(item) if item.is_dir() and not is_zarr_path(item) else [item])
    return files


def is_folder_layout(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> bool:
    """True when ``output`` is a folder of ``NAME_labels.tif`` files rather than one labels file.

    That is the case with several inputs, with a folder among them, or when ``output`` is an existing folder
    (or is written with a trailing slash).
    """
    text = os.fspath(output)
    return (
        len(inputs) > 1
        or any(Path(item).is_dir() and not is_zarr_path(item) for item in inputs)
        or (Path(text).is_dir() and not is_zarr_path(text))
        or (text.endswith(("/", os.sep)) and not is_zarr_path(text))
    )


def sibling_path(labels: Path, kind: str, suffix: str = ".tif") -> Path:
    """A file next to ``labels`` named after it: ``x_labels.tif`` -> ``x_<kind><suffix>``, ``x.tif`` ->
    ``x_<kind><suffix>``."""
    stem = labels.name[: -len(".zarr")] if is_zarr_path(labels) else strip_tiff_suffix(labels.name)
    if stem.lower().endswith("_labels"):
        stem = stem[: -len("_labels")]
    return labels.with_name(f"{stem}_{kind}{suffix}")


def probabilities_path(labels: Path) -> Path:
    """The probabilities file next to ``labels``: ``x_labels.tif`` -> ``x_probabilities.tif``, ``x.tif`` ->
    ``x_probabilities.tif``."""
    return sibling_path(labels, "probabilities")


_OBJECT_FILES = {"instances": ("instances", ".tif"), "measurements": ("objects", ".csv")}


def _listed(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_LIST_AT_MOST])
    return shown + (f" and {len(paths) - _LIST_AT_MOST} more" if len(paths) > _LIST_AT_MOST else "")


def _check_output_folder(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise BatchPlanError(
            f"-o {output} is a file, but with several inputs (or a folder) -o names a folder, created if missing"
        )
    if not output.exists() and is_tiff_path(output):
        raise BatchPlanError(
            f"-o {output} looks like a TIFF file name, but with several inputs (or a folder) -o names a folder, "
            "created if missing"
        )


def _folder_jobs(files: list[Path], output: Path, probabilities: bool, objects: dict) -> list[Job]:
    """One job per file in ``output``; refuses two files with the same name stem (their outputs would clash)."""
    _check_output_folder(output)
    seen: dict[str, Path] = {}
    jobs = []
    for path in files:
        stem = path.name.rstrip("/")[: -len(".zarr")] if is_zarr_path(path) else strip_tiff_suffix(path.name)
        # case-folded: on macOS and Windows x.tif and X.tif would write the same output file
        first = seen.setdefault(stem.casefold(), path)
        if first is not path:
            if first.resolve() == path.resolve():
                raise BatchPlanError(f"{path} is given twice")
            raise BatchPlanError(
                f"{first} and {path} would both write {output / (stem + '_labels.tif')}; "
                "rename one or predict them in separate runs"
            )
        labels = output / f"{stem}_labels.tif"
        extra = {
            key: sibling_path(labels, *_OBJECT_FILES[key]) if wanted else None
            for key, wanted in objects.items()
        }
        jobs.append(Job(path, labels, probabilities_path(labels) if probabilities else None, **extra))
    return jobs


def _check_kinds(output: Path, prob: Path | None, extra: dict) -> None:
    """Output names the writers take (TIFF or ``.zarr``), probabilities of the same kind as the labels."""
    named = {"-o": output, "--probabilities": prob}
    for option, path in named.items():
        if path is not None and path.suffix and not (is_tiff_path(path) or is_zarr_path(path)):
            raise BatchPlanError(f"{option} {path}: write a TIFF (.tif, .tiff) or an OME-Zarr store (.zarr)")
    if prob is not None and is_zarr_path(prob) != is_zarr_path(output):
        raise BatchPlanError(
            f"-o {output} and --probabilities {prob}: give both as .zarr stores or both as TIFF files"
        )
    if is_zarr_path(output) and any(v is not None for v in extra.values()):
        raise BatchPlanError(
            "--instances / --measurements write TIFF / CSV next to TIFF labels; use -o LABELS.tif"
        )


def _single_job(
    image: Path, output: Path, probabilities: bool | str | os.PathLike | None, objects: dict
) -> Job:
    zarr_out = is_zarr_path(output)
    if probabilities is True:
        prob = sibling_path(output, "probabilities", ".zarr") if zarr_out else probabilities_path(output)
    else:
        prob = Path(probabilities) if probabilities else None
    extra = {
        key: sibling_path(output, *_OBJECT_FILES[key]) if value is True else (Path(value) if value else None)
        for key, value in objects.items()
    }
    _check_kinds(output, prob, extra)
    for path in (output, prob, *extra.values()):
        if path is not None and path.parent != Path() and not path.parent.is_dir():
            raise BatchPlanError(f"the folder {path.parent} does not exist")
        if path is not None and not os.access(path.parent, os.W_OK):
            raise BatchPlanError(f"cannot write {path}: the folder {path.parent} is not writable")
    if prob is not None and prob.resolve() == output.resolve():
        raise BatchPlanError(f"the labels and the probabilities would both go to {output}")
    job = Job(image, output, prob, **extra)
    resolved = [p.resolve() for p in job.outputs]
    if len(set(resolved)) != len(resolved):
        raise BatchPlanError(f"two outputs would go to the same file: {_listed(list(job.outputs))}")
    return job


def _check_against_disk(jobs: list[Job], overwrite: bool) -> None:
    inputs = {job.image.resolve() for job in jobs}
    over_inputs = [p for job in jobs for p in job.outputs if p.resolve() in inputs]
    if over_inputs:
        raise BatchPlanError(f"the output {_listed(over_inputs)} would replace an input; choose another -o")
    # an unfinished OME-Zarr store of ours is resumed, not replaced (its run record is checked when it opens)
    existing = [
        p
        for job in jobs
        for p in job.outputs
        if p.exists() and not (is_zarr_path(p) and store_state(p) == "partial")
    ]
    if existing and not overwrite:
        if len(existing) == 1:
            raise BatchPlanError(f"{existing[0]} already exists; pass --overwrite to replace it")
        raise BatchPlanError(
            f"{len(existing)} outputs already exist ({_listed(existing)}); pass --overwrite to replace them"
        )


def plan_batch(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    probabilities: bool | str | os.PathLike | None = None,
    overwrite: bool = False,
    *,
    instances: bool | str | os.PathLike | None = None,
    measurements: bool | str | os.PathLike | None = None,
) -> list[Job]:
    """Decide where each input's prediction goes, and refuse what would fail half-way, before any work.

    Parameters
    ----------
    inputs : sequence of path
        TIFF files and folders (a folder stands for its ``*.tif``/``*.tiff`` files, sorted, not recursive).
    output : path
        The labels file (one input file) or the output folder (see :func:`is_folder_layout`; created by the
        caller, not here).
    probabilities : bool or path, optional
        None/False: no probabilities. True: next to each labels file (:func:`probabilities_path`). A path:
        that file; only with one input file and a labels file as ``output``.
    overwrite : bool
        Allow replacing existing outputs.
    instances, measurements : bool or path, optional
        The objects' TIFF and CSV, as ``probabilities``: True puts them next to each labels file
        (``NAME_instances.tif``, ``NAME_objects.csv``), a path names the file of a single input.

    Returns
    -------
    list of Job
        One per input file, in the order given.

    Raises
    ------
    BatchPlanError
        A missing input, an empty folder, a file where a folder is needed (or the other way round), two inputs
        with the same name stem, an output that is an input, or outputs that exist without ``overwrite``.
    """
    files = expand_inputs(inputs)
    output = Path(output)
    objects = {"instances": instances, "measurements": measurements}
    if is_folder_layout(inputs, output):
        named = {"probabilities": probabilities, **objects}
        for option, value in named.items():
            if value not in (None, False, True):
                kind, suffix = _OBJECT_FILES.get(option, (option, ".tif"))
                raise BatchPlanError(
                    f"--{option} {value}: with several inputs (or a folder) --{option} takes no file name; "
                    f"each input's {option} go to OUT/NAME_{kind}{suffix}"
                )
        jobs = _folder_jobs(files, output, bool(probabilities), {k: bool(v) for k, v in objects.items()})
    else:
        jobs = [_single_job(files[0], output, probabilities, objects)]
    _check_against_disk(jobs, overwrite)
    return jobs


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
    """Write a file's objects: the uint32 instance ids (a Labels TIFF) and / or the per-object CSV."""
    from .instances import write_measurements_csv
    from .io import write_tiff

    if job.instances is not None:
        write_tiff(
            job.instances, objects.result.labels, scale=scale, units=units, labels=True, overwrite=overwrite
        )
    if job.measurements is not None and objects.table is not None:
        unit = units[-1] if isinstance(units, (list, tuple)) and units else units
        write_measurements_csv(job.measurements, objects.table, unit=unit if isinstance(unit, str) else None)


def _objects(
    job: Job, index: int, n_jobs: int, done: int, total: int, result: Any, meta: Any, scale, units, objects
):
    """The objects of one file's prediction, re-yielded as batch progress (``"objects z/n"``)."""
    from .instances import objects_of_prediction

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
    known = any(units) if isinstance(units, (list, tuple)) else bool(units)
    voxel_size = tuple(scale) if known else None
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
            if is_zarr_path(job.labels):  # streamed into resumable stores, here or on the cluster
                from ._batch_zarr import predict_zarr_job

                run = predict_zarr_job(
                    job, data, scale, units, model, meta, overwrite=overwrite, client=client, **options
                )
                result = yield from relay(run, record)
            else:
                want = job.probabilities is not None or objects is not None
                run = predict_stack(data, model, meta, want_probabilities=want, **options)
                result = yield from relay(run, record)
                write_outputs(job, result, scale, units, overwrite=overwrite)
            found = None
            if objects is not None:
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
