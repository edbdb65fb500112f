"""The plan of a ``napari-unet predict`` batch: which outputs each input gets, refused before any work if it would fail.

:func:`plan_batch` turns the inputs and the output options into a list of :class:`Job` and refuses, looking only at
names and the disk (no torch, nothing read or written), what would go wrong half-way: a missing input, an empty
folder, two inputs that would write the same output, outputs that exist (without ``overwrite``; an unfinished
OME-Zarr store of ours is resumed instead), an output that is one of the inputs, a file name where a folder is
needed, an output folder that is missing or not writable (:func:`napari_unet.checks.check_output` for every
output), outputs of mixed kinds (TIFF and OME-Zarr), 3D objects on OME-Zarr output. See
:mod:`napari_unet._batch` for the layouts; it re-exports these names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .io._paths import is_tiff_path, strip_tiff_suffix
from .ngff import instances_group, is_zarr_path, store_state

__all__ = [
    "FOLDER_SUFFIXES",
    "BatchPlanError",
    "Job",
    "expand_inputs",
    "is_folder_layout",
    "plan_batch",
    "probabilities_path",
    "sibling_path",
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
    """Output names the writers take (TIFF or ``.zarr``), probabilities and instances of the labels' kind."""
    named = {"-o": output, "--probabilities": prob, "--instances": extra.get("instances")}
    for option, path in named.items():
        if path is not None and path.suffix and not (is_tiff_path(path) or is_zarr_path(path)):
            raise BatchPlanError(f"{option} {path}: write a TIFF (.tif, .tiff) or an OME-Zarr store (.zarr)")
    for option, path in list(named.items())[1:]:
        if path is not None and is_zarr_path(path) != is_zarr_path(output):
            raise BatchPlanError(
                f"-o {output} and {option} {path}: give both as .zarr stores or both as TIFF files"
            )


def _refuse_3d_on_zarr(jobs: list[Job], instance_mode: str) -> None:
    if instance_mode in ("yes", "3d") and any(
        is_zarr_path(job.labels) and (job.instances or job.measurements) for job in jobs
    ):
        raise BatchPlanError(
            "--instances-3d yes on OME-Zarr output would need the whole volume in memory (a block-wise 3D "
            "watershed is not implemented); pass --instances-3d no (2D per section, linked across sections) or "
            "write -o LABELS.tif"
        )


def _single_job(
    image: Path, output: Path, probabilities: bool | str | os.PathLike | None, objects: dict
) -> Job:
    zarr_out = is_zarr_path(output)
    if probabilities is True:
        prob = sibling_path(output, "probabilities", ".zarr") if zarr_out else probabilities_path(output)
    else:
        prob = Path(probabilities) if probabilities else None
    in_store = zarr_out and (
        objects["instances"] is True or (objects["measurements"] and not objects["instances"])
    )
    extra = {
        key: sibling_path(output, *_OBJECT_FILES[key]) if value is True else (Path(value) if value else None)
        for key, value in objects.items()
    }
    if (
        in_store
    ):  # next to the semantic labels in the labels store (the objects stream there for measurements too)
        extra["instances"] = None
    _check_kinds(output, prob, extra)
    if in_store:
        extra["instances"] = instances_group(output)
    if prob is not None and prob.resolve() == output.resolve():
        raise BatchPlanError(f"the labels and the probabilities would both go to {output}")
    job = Job(image, output, prob, **extra)
    resolved = [p.resolve() for p in job.outputs]
    if len(set(resolved)) != len(resolved):
        raise BatchPlanError(f"two outputs would go to the same file: {_listed(list(job.outputs))}")
    return job


def _resumed(job: Job) -> bool:
    """An unfinished OME-Zarr job: its stores are resumed, not replaced (their records are checked as they open)."""
    return is_zarr_path(job.labels) and store_state(job.labels) == "partial"


def _check_against_disk(jobs: list[Job], overwrite: bool) -> None:
    inputs = {job.image.resolve() for job in jobs}
    over_inputs = [p for job in jobs for p in job.outputs if p.resolve() in inputs]
    if over_inputs:
        raise BatchPlanError(f"the output {_listed(over_inputs)} would replace an input; choose another -o")
    # the outputs of a resumed job may exist, finished or not: a run killed after finishing its objects and before
    # its labels store leaves them so
    existing = [
        p
        for job in jobs
        if not _resumed(job)
        for p in job.outputs
        if p.exists() and not (is_zarr_path(p) and store_state(p) == "partial")
    ]
    if existing and not overwrite:
        if len(existing) == 1:
            raise BatchPlanError(f"{existing[0]} already exists; pass --overwrite to replace it")
        raise BatchPlanError(
            f"{len(existing)} outputs already exist ({_listed(existing)}); pass --overwrite to replace them"
        )


_WHAT = ("labels", "probabilities", "instances", "measurements")


def _check_writable(job: Job, creates: Path | None) -> None:
    """Every output of ``job`` can be written (:func:`napari_unet.checks.check_output`), before any work;
    ``creates``: the output folder the run creates when missing (several inputs)."""
    from .checks import InputError, check_output

    for what, path in zip(
        _WHAT, (job.labels, job.probabilities, job.instances, job.measurements), strict=True
    ):
        if path is None or (path != job.labels and path.is_relative_to(job.labels)):
            continue  # inside the labels store: written where the labels are
        folder = path.parent
        if creates is not None and not folder.exists():
            ancestor = next(p for p in folder.parents if p.exists())
            if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
                why = "is a file" if not ancestor.is_dir() else "is not writable"
                raise BatchPlanError(f"cannot create the folder {folder}: {ancestor} {why}")
            continue
        if folder.exists() and not folder.is_dir():
            raise BatchPlanError(f"cannot write {path}: {folder} is a file, not a folder")
        if is_zarr_path(path) and path.is_dir():  # a store resumed or replaced: written inside
            if not os.access(path, os.W_OK | os.X_OK):
                raise BatchPlanError(f"the store {path} is not writable; choose another {what} path")
            continue
        try:  # existing outputs were decided above (overwrite, resume); here: folder, permissions
            check_output(path, overwrite=True, what=what)
        except InputError as err:
            raise BatchPlanError(str(err)) from None


def plan_batch(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    probabilities: bool | str | os.PathLike | None = None,
    overwrite: bool = False,
    *,
    instances: bool | str | os.PathLike | None = None,
    measurements: bool | str | os.PathLike | None = None,
    instance_mode: str = "auto",
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
        (``NAME_instances.tif``, ``NAME_objects.csv``), a path names the file of a single input. With
        ``output`` an OME-Zarr store, a bare ``instances`` (or ``measurements`` alone) puts the instances in it as
        ``OUT.zarr/labels/instances``, and a path names a store of their own (``X.zarr``).
    instance_mode : str
        ``--instances-3d``: ``yes`` is refused on OME-Zarr output (only 2D + link is streamed).

    Returns
    -------
    list of Job
        One per input file, in the order given.

    Raises
    ------
    BatchPlanError
        A missing input, an empty folder, a file where a folder is needed (or the other way round), two inputs
        with the same name stem, an output that is an input, outputs that exist without ``overwrite``, an output
        folder that is missing or not writable, outputs of mixed kinds, 3D objects on OME-Zarr output.
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
    _refuse_3d_on_zarr(jobs, instance_mode)
    _check_against_disk(jobs, overwrite)
    creates = output if is_folder_layout(inputs, output) else None
    for job in jobs:
        _check_writable(job, creates)
    return jobs
