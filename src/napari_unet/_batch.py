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
appended (``seg.tif`` -> ``seg_probabilities.tif``).
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

    @property
    def outputs(self) -> tuple[Path, ...]:
        """The files this job writes."""
        return (self.labels,) if self.probabilities is None else (self.labels, self.probabilities)


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
        files.extend(_folder_tiffs(item) if item.is_dir() else [item])
    return files


def is_folder_layout(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> bool:
    """True when ``output`` is a folder of ``NAME_labels.tif`` files rather than one labels file.

    That is the case with several inputs, with a folder among them, or when ``output`` is an existing folder
    (or is written with a trailing slash).
    """
    text = os.fspath(output)
    return (
        len(inputs) > 1
        or any(Path(item).is_dir() for item in inputs)
        or Path(text).is_dir()
        or text.endswith(("/", os.sep))
    )


def probabilities_path(labels: Path) -> Path:
    """The probabilities file next to ``labels``: ``x_labels.tif`` -> ``x_probabilities.tif``, ``x.tif`` ->
    ``x_probabilities.tif``."""
    stem = strip_tiff_suffix(labels.name)
    if stem.lower().endswith("_labels"):
        stem = stem[: -len("_labels")]
    return labels.with_name(f"{stem}_probabilities.tif")


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


def _folder_jobs(files: list[Path], output: Path, probabilities: bool) -> list[Job]:
    """One job per file in ``output``; refuses two files with the same name stem (their outputs would clash)."""
    _check_output_folder(output)
    seen: dict[str, Path] = {}
    jobs = []
    for path in files:
        stem = strip_tiff_suffix(path.name)
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
        jobs.append(Job(path, labels, probabilities_path(labels) if probabilities else None))
    return jobs


def _single_job(image: Path, output: Path, probabilities: bool | str | os.PathLike | None) -> Job:
    if probabilities is True:
        prob = probabilities_path(output)
    else:
        prob = Path(probabilities) if probabilities else None
    for path in (output, prob):
        if path is not None and path.parent != Path() and not path.parent.is_dir():
            raise BatchPlanError(f"the folder {path.parent} does not exist")
    if prob is not None and prob.resolve() == output.resolve():
        raise BatchPlanError(f"the labels and the probabilities would both go to {output}")
    return Job(image, output, prob)


def _check_against_disk(jobs: list[Job], overwrite: bool) -> None:
    inputs = {job.image.resolve() for job in jobs}
    over_inputs = [p for job in jobs for p in job.outputs if p.resolve() in inputs]
    if over_inputs:
        raise BatchPlanError(f"the output {_listed(over_inputs)} would replace an input; choose another -o")
    existing = [p for job in jobs for p in job.outputs if p.exists()]
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
    if is_folder_layout(inputs, output):
        if probabilities not in (None, False, True):
            raise BatchPlanError(
                f"--probabilities {probabilities}: with several inputs (or a folder) --probabilities takes no "
                "file name; each input's probabilities go to OUT/NAME_probabilities.tif"
            )
        jobs = _folder_jobs(files, output, bool(probabilities))
    else:
        jobs = [_single_job(files[0], output, probabilities)]
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
                f"slice {rec.slice_index + 1}/{rec.n_slices}",
            )

        try:
            data, scale, units = load(job.image)
            counts[index] = data.shape[0] if data.ndim == 3 else 1
            want = job.probabilities is not None
            run = predict_stack(data, model, meta, want_probabilities=want, **options)
            result = yield from relay(run, record)
            write_outputs(job, result, scale, units, overwrite=overwrite)
        except Exception as err:  # one bad file must not cost the others (GeneratorExit is not caught)
            if not keep_going:
                raise
            failed.append((job, _reason(err, job.image)))
            kind, result, error = "failed", None, failed[-1][1]
        else:
            written.append(job)
            kind, error = "written", ""
        done += counts[index]
        yield BatchProgress(kind, index, len(jobs), job, done, sum(counts), result=result, error=error)
    return BatchResult(tuple(written), tuple(failed))
