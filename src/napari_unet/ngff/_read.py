"""Zarr and OME-Zarr input: a store's image as a lazy array with its voxel size and units (no pixels read).

An OME-Zarr image group gives its full-resolution level (the first dataset of its first multiscales) with the
scale of its coordinate transformations; singleton time / channel axes are dropped. A plain Zarr array is taken as
it is, with a voxel size of one. Slices are read one at a time by whoever indexes the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._meta import short_unit

__all__ = ["ZarrReadError", "is_zarr_path", "read_zarr_image"]


class ZarrReadError(ValueError):
    """A Zarr store that cannot be read as an image; the message names the store and says why."""


def is_zarr_path(path: str | os.PathLike) -> bool:
    """True for a path whose name ends in ``.zarr`` (a store, existing or to be created)."""
    return os.fspath(path).rstrip("/\\").lower().endswith(".zarr")


def _scale_of(dataset: dict, ndim: int) -> list[float]:
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale" and len(transform.get("scale", [])) == ndim:
            return [float(s) for s in transform["scale"]]
    return [1.0] * ndim


def read_zarr_image(path: str | os.PathLike) -> tuple[Any, tuple[float, ...], tuple[str, ...]]:
    """The image of a Zarr / OME-Zarr store as ``(data, scale, units)``, lazily.

    Parameters
    ----------
    path : path
        A ``.zarr`` store: an OME-Zarr image group (``multiscales``) or a plain array.

    Returns
    -------
    data : zarr.Array or dask.array.Array
        ``(Y, X)`` or ``(Z, Y, X)`` (more axes are refused); a dask view when singleton axes were dropped.
    scale : tuple of float
        Voxel size per axis of ``data``.
    units : tuple of str
        Short unit per axis (``"nm"``, ``""`` where unknown).

    Raises
    ------
    ZarrReadError
        When the path is not a Zarr store, holds no image, or the image is not 2D / 3D once singleton axes go.
    """
    import zarr

    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:
        raise ZarrReadError(f"{path}: not a readable Zarr store ({err})") from None
    if isinstance(node, zarr.Array):
        return _squeezed(
            path, node, [1.0] * node.ndim, [""] * node.ndim, "zyx"[-node.ndim :] if node.ndim <= 3 else ""
        )
    multiscales = node.attrs.get("multiscales")
    if not multiscales:
        raise ZarrReadError(
            f"{path}: a Zarr group without OME-NGFF multiscales metadata; give its image array"
        )
    first = multiscales[0]
    dataset = first["datasets"][0]
    try:
        array = node[dataset["path"]]
    except KeyError:
        raise ZarrReadError(
            f"{path}: its multiscales name the array {dataset['path']!r}, which is missing"
        ) from None
    axes = first.get("axes") or [{"name": n} for n in "tczyx"[-array.ndim :]]
    names = "".join((a["name"] if isinstance(a, dict) else str(a))[0].lower() for a in axes)
    units = [short_unit(a.get("unit")) if isinstance(a, dict) else "" for a in axes]
    return _squeezed(path, array, _scale_of(dataset, array.ndim), units, names)


def _squeezed(path: Path, array: Any, scale: list[float], units: list[str], axes: str):
    keep = [i for i, n in enumerate(array.shape) if n != 1 or (axes and i < len(axes) and axes[i] in "yx")]
    if len(keep) not in (2, 3):
        raise ZarrReadError(
            f"{path}: expected a (Y, X) or (Z, Y, X) image, got shape {tuple(array.shape)} (axes {axes or '?'})"
        )
    if len(keep) == array.ndim:
        return array, tuple(scale), tuple(units)
    import dask.array as da

    index = tuple(slice(None) if i in keep else 0 for i in range(array.ndim))
    data = da.from_zarr(array)[index]
    return data, tuple(scale[i] for i in keep), tuple(units[i] for i in keep)
