"""Checks of what a user hands napari-unet, before any work starts: one place for the CLI and both widgets.

Pure functions over arrays, paths and numbers (numpy only: no torch, no napari, no Qt). Each raises
:class:`InputError`, a ``ValueError`` whose message is one sentence saying what is wrong and what to do; the CLI
prints it as ``napari-unet CMD: error: ...`` (exit 2, no traceback) and the widgets show it as a notification.
Nothing here changes a file.

Odd but legitimate inputs pass: NaN pixels in a float image (prediction and training fill them, see
:func:`napari_unet.normalize.apply_normalization`), a 10 x 10 image (tiles are mirror-padded), label values
1 and 1000.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MAX_LABEL_VALUE",
    "MIN_PATCH",
    "InputError",
    "check_device_name",
    "check_image",
    "check_input_file",
    "check_label_dtype",
    "check_labels",
    "check_output",
    "check_patch",
    "check_positive",
    "check_same_shape",
    "check_slices",
    "check_tile",
    "check_training_inputs",
]

MAX_LABEL_VALUE = 65535  # predictions are written as uint8 / uint16
MAX_CLASSES = 64  # more distinct values almost always means instance labels
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class InputError(ValueError):
    """Bad input found before any work started; the message is one sentence meant for the user."""


def _shape(data: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in data.shape)


# ------------------------------------------------------------------------------------------------- files


def check_input_file(path: str | os.PathLike, what: str = "image") -> Path:
    """An existing, non-empty file (the reader then says whether it is a readable TIFF).

    Raises
    ------
    InputError
        Missing, a folder, or 0 bytes.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the {what} path")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the {what} file itself")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); it was not saved completely, save it again")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike] = (),
    suffixes: Sequence[str] = (),
    what: str = "output",
) -> Path:
    """A file napari-unet may write: not an input, not an existing file (without ``overwrite``), in a folder that
    exists and is writable, with a name of a format napari-unet writes.

    Parameters
    ----------
    path : path-like
        The output file.
    overwrite : bool
        Whether an existing file may be replaced.
    inputs : iterable of path-like
        The command's input files: an output is never one of them, ``overwrite`` or not.
    suffixes : sequence of str
        Accepted endings (lower case, e.g. ``(".tif", ".tiff")``); empty: any name.
    what : str
        What the file is, for the message ("model", "labels").

    Raises
    ------
    InputError
        With the reason and what to do.
    """
    path = Path(path)
    for source in inputs:
        source = Path(source)
        if _same_file(path, source) or path.absolute() == source.absolute():
            raise InputError(
                f"the {what} {path} is the input file {source}; writing it would destroy the input, choose "
                "another name"
            )
    if suffixes and not path.name.lower().endswith(tuple(suffixes)):
        raise InputError(
            f"{path}: napari-unet writes the {what} as {' or '.join(suffixes)}; choose a name ending in "
            f"{suffixes[0]}"
        )
    if path.is_dir():
        raise InputError(
            f"{path} is a folder; give the {what} file name (e.g. {path / ('out' + (suffixes or ('.tif',))[0])})"
        )
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; pass --overwrite to replace it, or choose another name")
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise InputError(f"the folder {folder} does not exist; create it first or choose another {what} path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"the folder {folder} is not writable; choose a {what} path in a folder you can write"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{path} is read-only; choose another name or make it writable")
    return path


# ------------------------------------------------------------------------------------------------ arrays


def check_image(
    data: Any, name: str = "image", *, allow_channels: bool = False, for_training: bool = False
) -> None:
    """A single-channel ``(Y, X)`` or ``(Z, Y, X)`` image of numbers with at least one finite pixel.

    Parameters
    ----------
    data : array-like
        numpy, memmap, dask or zarr; only a few slices are read (the first, the middle and the last).
    name : str
        How the message names it (usually the file).
    allow_channels : bool
        Accept ``(C, Y, X)`` / ``(Z, C, Y, X)`` with up to 4 channels (multi-channel models).
    for_training : bool
        Also refuse a constant image (nothing to learn from).

    Raises
    ------
    InputError
        Wrong number of axes, colour samples last, non-numeric dtype, empty, no finite pixel, or constant.
    """
    shape = _shape(data)
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "iufb":
        raise InputError(
            f"{name} holds {dtype} values; napari-unet needs grayscale numbers (integer or float)"
        )
    if len(shape) >= 3 and shape[-1] in (3, 4) and min(shape[-3:-1]) > 4:
        raise InputError(
            f"{name} has shape {shape}, which looks like RGB(A) colour; napari-unet segments single-channel "
            "images: save one channel (or a grayscale conversion) per file"
        )
    ndims = (2, 3, 4) if allow_channels else (2, 3)
    if len(shape) not in ndims:
        raise InputError(
            f"{name} is {len(shape)}-D {shape}; napari-unet needs a 2-D (Y, X) image or a (Z, Y, X) stack: "
            "save one time point / channel / position per file"
        )
    if min(shape) == 0:
        raise InputError(f"{name} is empty (shape {shape}); check that the right file or layer was chosen")
    planes = _sample_planes(data, shape)
    finite = [p[np.isfinite(p)] if p.dtype.kind == "f" else p for p in planes]
    if all(f.size == 0 for f in finite):
        raise InputError(
            f"{name} holds no finite pixel (all NaN or infinite in the slices read); check how it was exported"
        )
    values = np.concatenate([f.ravel() for f in finite])
    if for_training and values.size and values.min() == values.max():
        raise InputError(
            f"{name} is constant (every pixel read is {values.flat[0]}); there is nothing to learn from it, choose "
            "the image itself"
        )


def _sample_planes(data: Any, shape: tuple[int, ...]) -> list[np.ndarray]:
    if len(shape) == 2:
        return [np.asarray(data)]
    n = shape[0]
    return [np.asarray(data[z]) for z in sorted({0, n // 2, n - 1})]


def check_same_shape(image: Any, labels: Any, names: tuple[str, str] = ("image", "labels")) -> None:
    """Image and labels cover the same pixels (an image may carry up to 4 channels right before Y)."""
    ishape, lshape = _shape(image), _shape(labels)
    if ishape == lshape:
        return
    if len(ishape) == len(lshape) + 1 and ishape[:-3] + ishape[-2:] == lshape and ishape[-3] <= 4:
        return
    raise InputError(
        f"{names[0]} {ishape} and {names[1]} {lshape} must have the same shape (Z, Y, X); paint the labels on "
        "the image they belong to"
    )


def check_labels(
    labels: Any, name: str = "labels", *, dense: bool = False, fine_tune: bool = False
) -> list[int]:
    """Labels a U-Net can learn from; returns the class values found (0 excluded unless ``dense``).

    Parameters
    ----------
    labels : array-like
        ``(Y, X)`` or ``(Z, Y, X)``; read in full.
    name : str
        How the message names them.
    dense : bool
        Every value is a class (True) or 0 means "not annotated" (False).
    fine_tune : bool
        A model is fine-tuned (it keeps its classes): one painted class is enough.

    Raises
    ------
    InputError
        As :func:`check_label_dtype`; values > 65535, no annotation, one class only, or more than 64 values
        (instance labels).
    """
    array = check_label_dtype(labels, name)
    high = array.max()
    if high > MAX_LABEL_VALUE:
        raise InputError(
            f"{name} hold values up to {high:g}; label values go to {MAX_LABEL_VALUE} (instance ids? paint "
            "class values instead, e.g. 1 = membrane, 2 = cell)"
        )
    values = [int(v) for v in np.unique(array)]
    classes = values if dense else [v for v in values if v != 0]
    if not classes:
        raise InputError(
            f"no annotations: {name} are all 0, and 0 means 'not annotated'; paint at least two classes (e.g. 1 = membrane, "
            "2 = cell) or pass --dense for complete ground truth"
        )
    if len(classes) > MAX_CLASSES:
        raise InputError(
            f"{name} hold {len(classes)} different values; a U-Net learns a few classes (at most "
            f"{MAX_CLASSES}): instance ids? paint class values instead"
        )
    if len(classes) < 2 and not fine_tune:
        hint = "" if dense else " (or pass --dense if 0 is a class too)"
        raise InputError(
            f"{name} hold only one class (value {classes[0]}); a new model needs at least two classes, e.g. "
            f"membrane and cell interior{hint}"
        )
    return classes


def check_label_dtype(labels: Any, name: str = "labels") -> np.ndarray:
    """``(Y, X)`` or ``(Z, Y, X)`` whole numbers >= 0 (an integer dtype, or floats holding whole numbers only);
    returns them as a numpy array (read in full).

    Raises
    ------
    InputError
        Other dimensions, fractional / NaN floats, a non-numeric dtype, empty, or negative values.
    """
    shape = _shape(labels)
    if len(shape) not in (2, 3):
        raise InputError(
            f"{name} are {len(shape)}-D {shape}; labels must be (Y, X) or (Z, Y, X), like the image"
        )
    array = np.asarray(labels)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise InputError(
                f"{name} hold fractional or NaN values ({array.dtype}), which look like probabilities; labels "
                "are whole numbers (0 = not annotated, 1, 2, ... = classes): threshold them first"
            )
    elif array.dtype.kind not in "iu":
        raise InputError(
            f"{name} hold {array.dtype} values; labels are whole numbers (a napari Labels layer)"
        )
    if array.size == 0:
        raise InputError(f"{name} are empty (shape {shape})")
    if array.min() < 0:
        raise InputError(
            f"{name} hold negative values (down to {array.min():g}); label values are whole numbers from 0, "
            "save them as unsigned integers"
        )
    return array


def check_training_inputs(
    image: Any,
    labels: Any,
    *,
    dense: bool = False,
    fine_tune: bool = False,
    live: bool = False,
    val_slices: tuple[int, int] | None = None,
    names: tuple[str, str] = ("image", "labels"),
) -> None:
    """What training needs of its inputs, for the CLI and the Train widget alike: an image to learn from, labels
    of its shape that a U-Net can learn, validation slices inside the stack. ``live`` (painting while training
    runs) accepts labels with nothing painted yet: the engine waits for strokes."""
    check_image(image, names[0], allow_channels=True, for_training=True)
    check_same_shape(image, labels, names)
    if live:
        check_label_dtype(labels, names[1])
    else:
        check_labels(labels, names[1], dense=dense, fine_tune=fine_tune)
    check_slices(val_slices, labels.shape[0] if len(labels.shape) == 3 else 1)


# ------------------------------------------------------------------------------------------------ numbers


def check_positive(value: Any, option: str, *, integer: bool = True, minimum: float = 1) -> None:
    """``value`` is None or a number of at least ``minimum`` (a whole number when ``integer``)."""
    if value is None:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float, np.number))
    if not bad:
        bad = not np.isfinite(value) or value < minimum or (integer and int(value) != value)
    if bad:
        kind = "a whole number" if integer else "a number"
        raise InputError(f"{option} must be {kind} of at least {minimum:g}, got {value!r}")


MIN_PATCH = (
    16  # below this a patch holds hardly any context around its pixels (and --tile has the same floor)
)


def check_patch(patch: int | None, min_size: int, option: str = "--patch") -> None:
    """A training patch side of at least 16 pixels and the U-Net's smallest input (``min_size``); the engine
    rounds it to the nearest size the network takes and says so in its setup line."""
    if patch is None:
        return
    check_positive(patch, option)
    floor = max(int(min_size), MIN_PATCH)
    if patch < floor:
        raise InputError(
            f"{option} {patch} is too small: a training patch needs at least {floor} pixels (this U-Net's smallest "
            f"input is {min_size}); pass {option} {floor} or more, or leave it out for the preset's size"
        )


def check_tile(tile: int | str | None, min_size: int, option: str = "--tile") -> None:
    """A prediction tile side of at least the network's smallest input (``"auto"`` / None pass)."""
    if tile is None or tile == "auto":
        return
    check_positive(tile, option)
    if int(tile) < min_size:
        raise InputError(
            f"{option} {tile} is smaller than the smallest input this U-Net takes ({min_size} pixels); pass "
            f"{option} {min_size} or more, or auto"
        )


def check_slices(slices: tuple[int, int] | None, n_slices: int, option: str = "--val-slices") -> None:
    """``(start, stop)`` lies inside a stack of ``n_slices`` slices and leaves at least one slice outside it."""
    if slices is None:
        return
    start, stop = (int(v) for v in slices)
    if not 0 <= start < stop:
        raise InputError(f"{option} {start}:{stop}: need 0 <= START < STOP")
    if stop > n_slices:
        raise InputError(
            f"{option} {start}:{stop} reaches past the stack's {n_slices} slice(s) (0 to {n_slices - 1}); "
            f"choose slices inside it"
        )


def check_device_name(name: str) -> None:
    """The spelling of a device: auto, cpu, cuda, cuda:N or mps (whether it exists is the engine's check)."""
    if not _DEVICE.match(str(name).strip().lower()):
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N (e.g. cuda:0) or mps")
