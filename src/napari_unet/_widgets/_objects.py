"""The Segment widget's objects, without Qt: the features table of an objects layer and its CSV.

:func:`napari_unet.instances.measure_objects` measures objects in the image's physical units; this module names the
columns the way a napari features table shows them - the unit in the name (``volume_um3``, ``centroid_x_um``) and
napari's ``index`` column, which maps a label value to its row, so that hovering an object shows its row - and
turns such a table back into :func:`~napari_unet.instances.write_measurements_csv`'s rows. It also reads a layer's
geometry into what the objects need: a voxel size only when the layer says one (napari's default scale of ones
with "pixel" units means unknown, as a TIFF without a voxel size does in the CLI), and a minimum size typed in
physical units as pixels. No Qt, no napari, no torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.instances import resolve_mode, write_measurements_csv

__all__ = [
    "features_of",
    "known_voxel_size",
    "measurements_of",
    "min_size_pixels",
    "unit_of",
    "write_features_csv",
]

_POWER = {"volume": 3, "area": 2}
_ASCII = {"µ": "u", "μ": "u", "Å": "A"}


def unit_of(units: Sequence[Any] | None) -> str | None:
    """The short spelling of a layer's spatial unit (``"µm"``, ``"nm"``), or None for napari's "pixel" / none.

    ``units`` are a napari layer's ``units`` (pint units or strings); the last axis (X) speaks for the image, as
    in the CLI.
    """
    if not units:
        return None
    unit = units[-1]
    try:
        text = f"{unit:~}"  # pint: micrometer -> µm
    except (TypeError, ValueError):
        text = str(unit)
    text = text.strip()
    return None if text in ("", "px", "pixel", "pixels") else text


def known_voxel_size(scale: Sequence[float], units: Sequence[Any] | None) -> tuple[float, ...] | None:
    """The layer's scale as a voxel size, or None when it says nothing (all ones and no unit: unknown).

    An unknown voxel size makes ``mode="auto"`` cut a stack section by section (2D + link), as
    :func:`napari_unet.instances.resolve_mode` explains.
    """
    size = tuple(float(s) for s in scale)
    if unit_of(units) is None and all(s == 1.0 for s in size):
        return None
    return size


def _suffix(unit: str | None) -> str:
    text = unit or "px"
    for a, b in _ASCII.items():
        text = text.replace(a, b)
    return "".join(c for c in text if c.isalnum()) or "px"


def features_of(
    table: dict[str, np.ndarray], unit: str | None = None, translate: Sequence[float] | None = None
) -> dict[str, np.ndarray]:
    """The features table of an objects layer, from :func:`~napari_unet.instances.measure_objects`' table.

    Parameters
    ----------
    table : dict of str -> 1D array
        ``label``, ``volume`` or ``area``, ``centroid_[z]yx``, ``mean_probability``, ``n_slices``.
    unit : str, optional
        The image's unit (``"µm"``); None: the scale's own units, written ``px``.
    translate : sequence of float, optional
        The layer's translate: centroids are then in the viewer's (world) coordinates, where napari shows the
        cursor.

    Returns
    -------
    dict of str -> 1D array
        ``index`` (napari maps label values to rows with it), ``label``, ``volume_um3`` / ``area_um2``,
        ``centroid_z_um`` (stacks), ``centroid_y_um``, ``centroid_x_um``, ``mean_probability``, ``n_slices``.
    """
    suffix = _suffix(unit)
    n_axes = 3 if "centroid_z" in table else 2
    offset = [0.0] * n_axes if translate is None else [float(t) for t in tuple(translate)[-n_axes:]]
    axes = ("z", "y", "x")[-n_axes:]
    out: dict[str, np.ndarray] = {"index": np.asarray(table["label"], np.int64)}
    for key, values in table.items():
        if key in _POWER:
            out[f"{key}_{suffix}{_POWER[key]}"] = np.asarray(values, np.float64)
        elif key.startswith("centroid_"):
            shift = offset[axes.index(key[-1])]
            out[f"{key}_{suffix}"] = np.asarray(values, np.float64) + shift
        else:
            out[key] = np.asarray(values)
    return out


def measurements_of(features: Any) -> dict[str, np.ndarray]:
    """:func:`features_of` undone: the columns of ``measure_objects`` (units dropped from the names).

    ``features`` is a layer's ``features`` (a pandas DataFrame) or a dict of columns; columns it does not know
    (added by the user) are kept as they are.
    """
    table: dict[str, np.ndarray] = {}
    for name in list(features.keys()):
        if name == "index":
            continue
        key = str(name)
        for base in (*_POWER, "centroid_z", "centroid_y", "centroid_x"):
            if key.startswith(base + "_"):
                key = base
                break
        table[key] = np.asarray(features[name])
    return table


def write_features_csv(
    path: str | os.PathLike, features: Any, unit: str | None, *, overwrite: bool = False
) -> Path:
    """Write an objects layer's features as CSV: one row per object, units in the header (``volume (µm^3)``).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False (a file is never replaced silently).
    ValueError
        The table has no objects' columns.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already; choose another name (nothing was written)")
    table = measurements_of(features)
    if "label" not in table:
        raise ValueError("this layer's features table has no 'label' column: it is not an objects table")
    write_measurements_csv(path, table, unit=unit)
    return path


def min_size_pixels(
    value: float, *, physical: bool, voxel_size: Sequence[float] | None, mode: str, ndim: int
) -> int:
    """A smallest object size in pixels (2D: per section) or voxels (3D), from a value in pixels or physical units.

    Parameters
    ----------
    value : float
        In pixels / voxels, or with ``physical`` in the voxel size's units squared (2D) or cubed (3D).
    voxel_size : sequence of float, optional
        ``(Z, Y, X)`` or ``(Y, X)``; None reads as ones.
    mode : str
        ``auto`` / ``2d`` / ``3d``, resolved with :func:`~napari_unet.instances.resolve_mode`: a 2D mode measures
        areas, a 3D one volumes.
    ndim : int
        2 for an image, 3 for a stack.

    Raises
    ------
    ValueError
        A negative value.
    """
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"The minimum size must be 0 or more, got {value}.")
    if not physical:
        return int(math.ceil(value))
    size = np.asarray(voxel_size if voxel_size is not None else (1.0,) * ndim, float)
    used = size[-3:] if resolve_mode(mode, voxel_size, ndim) == "3d" else size[-2:]
    return int(math.ceil(value / float(np.prod(used)) - 1e-9))
