"""Series data without loading it: a read-only memory map where the bytes allow, else dask over tifffile's Zarr
store, one image plane per chunk (napari asks for one plane at a time)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = ["dask_from_series", "lower_levels", "memmap_series", "samples_last_order"]

# Planes up to this size become one dask chunk each (napari asks for one plane at a time); bigger planes keep
# tifffile's own tiles as chunks so a zoomed-in view does not decode a whole giant plane.
_MAX_PLANE_CHUNK_BYTES = 64 << 20


def _plane_axes(axes: str) -> str:
    return "YXS" if axes.endswith("YXS") else "YX"


def samples_last_order(ndim: int, source: int) -> tuple[int, ...]:
    """Axis order for ``transpose`` that moves axis ``source`` to the end and keeps the others in order."""
    order = [i for i in range(ndim) if i != source]
    return (*order, source)


def memmap_series(tif: tifffile.TiffFile, series: Any, path: Path) -> np.memmap | None:
    """Read-only memory map of uncompressed contiguous series data in this very file, else None."""
    offset = series.dataoffset
    if offset is None:
        return None
    pages = series.pages
    if any(p is None or p.parent is not tif for p in (pages[0], pages[-1])):
        return None
    dtype = np.dtype(tif.byteorder + series.dtype.char)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=series.shape, order="C")


def dask_from_series(series: Any, level: int = 0) -> Any:
    """Dask array over tifffile's Zarr store; keeps the TiffFile (and its file handle) alive with it."""
    import dask.array as da
    import zarr

    store = series.aszarr(level=level)
    array = zarr.open(store, mode="r")
    axes, shape, itemsize = series.levels[level].axes, array.shape, array.dtype.itemsize
    plane = _plane_axes(axes)
    plane_bytes = itemsize * math.prod(shape[axes.index(a)] for a in plane if a in axes)
    if plane_bytes <= _MAX_PLANE_CHUNK_BYTES and all(a in axes for a in plane):
        chunks = tuple(n if a in plane else 1 for a, n in zip(axes, shape, strict=True))
    else:
        chunks = array.chunks
    return da.from_zarr(array, chunks=chunks)


def lower_levels(series: Any, axes_out: str) -> Iterator[Any]:
    """Dask arrays of the pyramid levels below the full resolution, samples last, with the axes of ``axes_out``."""
    for level in range(1, len(series.levels)):
        array = dask_from_series(series, level=level)
        level_axes = series.levels[level].axes
        if "S" in level_axes and not level_axes.endswith("S"):
            array = array.transpose(samples_last_order(array.ndim, level_axes.index("S")))
        if array.ndim == len(axes_out):
            yield array
