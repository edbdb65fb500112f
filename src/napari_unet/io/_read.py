"""Reading: every series of a TIFF file as a :class:`TiffImage`, and the first one in the engine's axis order.

Big series (see :func:`~napari_unet.io.lazy_threshold`) are never loaded: uncompressed contiguous data is
memory-mapped read-only, everything else becomes a dask array over tifffile's Zarr store. Contrast limits are
then estimated from a few planes.
"""

from __future__ import annotations

import math
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_unet.io._contrast import estimate_contrast_limits
from napari_unet.io._lazy import dask_from_series, lower_levels, memmap_series, samples_last_order
from napari_unet.io._open import (
    OpenTiff,
    TiffReadError,
    check_extent,
    check_warnings,
    failures_as_read_error,
    is_rgb,
    is_unrequested_planar_rgb,
    open_tiff_series,
    opens_as_labels,
)
from napari_unet.io._paths import SOFTWARE, lazy_threshold, strip_tiff_suffix
from napari_unet.io._voxel import ome_channel_names, voxel_size

__all__ = ["TiffImage", "read_array", "read_tiff"]


@dataclass(frozen=True)
class TiffImage:
    """One series of one TIFF file, as the reader sees it.

    Attributes
    ----------
    data : numpy.ndarray or numpy.memmap or dask.array.Array
        Pixel data, singleton axes squeezed, RGB(A) samples last (axis ``S``).
    axes : str
        tifffile axis letters of ``data``, e.g. ``"ZYX"``, ``"TZCYX"``, ``"YXS"``. ``I`` (a plain page
        sequence) and ``Q`` (unknown) are kept as tifffile reports them.
    scale : tuple of float
        Voxel size per axis of ``data`` (1.0 where unknown or not spatial).
    units : tuple of str
        Unit per axis of ``data`` (``"nm"``, ``"µm"``, ``"s"``...; ``""`` where unknown).
    name : str
        File stem (without ``.ome``), plus ``" [series k]"`` for multi-series files.
    is_labels : bool
        Integer data that is a label image: labels-like file stem or written by napari-unet as labels.
    lazy : bool
        True when ``data`` is a memory map or dask array and no pixels were loaded.
    compression : str
        tifffile compression name, e.g. ``"NONE"``, ``"LZW"``, ``"ADOBE_DEFLATE"``, ``"ZSTD"``, ``"JPEG"``.
    contrast_limits : tuple of float or None
        Estimated from a few planes when lazy (None otherwise, and for labels).
    metadata : dict
        JSON-friendly extras: ``path``, ``series``, ``n_series``, ``axes``, ``units``, ``voxel_size``,
        ``voxel_size_source``, ``kind``, ``is_imagej``, ``is_ome``, ``is_bigtiff``, ``tiled``,
        ``lazy_mode`` (``"memmap"``, ``"dask"`` or None), ``warnings`` (tifffile's complaints).
    levels : tuple
        Lower-resolution pyramid levels (dask arrays, largest first), empty for flat files.
    """

    data: Any
    axes: str
    scale: tuple[float, ...]
    units: tuple[str, ...]
    name: str
    is_labels: bool
    lazy: bool
    compression: str
    contrast_limits: tuple[float, float] | None
    metadata: dict = field(default_factory=dict)
    levels: tuple = ()

    @property
    def rgb(self) -> bool:
        """True when the last axis holds 3 or 4 colour samples (RGB or RGBA)."""
        return self.axes.endswith("S") and self.data.shape[-1] in (3, 4) and bool(self.metadata.get("rgb"))


# ----------------------------------------------------------------------------------------- one series, in steps


def _decoding(path: Path, index: int, page: Any) -> AbstractContextManager[None]:
    """Context in which decoding pixels of series ``index`` fails as a TiffReadError naming file and codec."""
    return failures_as_read_error(
        f"{path}: cannot decode image data of series {index}", f"compression {page.compression.name}: "
    )


def _load(
    tif: tifffile.TiffFile, series: Any, index: int, path: Path, want_lazy: bool
) -> tuple[Any, str | None]:
    """The series data and how it is held: ``"memmap"``, ``"dask"``, or None when loaded into memory."""
    if want_lazy:
        data = memmap_series(tif, series, path)
        if data is not None:
            return data, "memmap"
        return dask_from_series(series), "dask"
    with _decoding(path, index, series.keyframe):
        data = series.asarray()
    return data.reshape(series.shape), None


def _samples_last(data: Any, axes: str, lazy_mode: str | None) -> tuple[Any, str]:
    """Planar (separate) samples go last like chunky RGB, as napari expects; other data passes unchanged."""
    if "S" not in axes or axes.endswith("S"):
        return data, axes
    source = axes.index("S")
    if lazy_mode == "dask":
        data = data.transpose(samples_last_order(len(axes), source))
    else:
        data = np.moveaxis(data, source, -1)
    return data, axes.replace("S", "") + "S"


def _metadata(
    opened: OpenTiff,
    series: Any,
    index: int,
    axes: str,
    voxel: dict[str, tuple[float, str]],
    source: str,
    lazy_mode: str | None,
) -> dict:
    """The JSON-friendly ``TiffImage.metadata`` of one series."""
    tif, page = opened.tif, series.keyframe
    software = str(page.software or "")
    metadata = {
        "path": str(opened.path),
        "series": index,
        "n_series": len(opened.series),
        "axes": axes,
        "units": [voxel[a][1] if a in voxel else "" for a in axes],
        "voxel_size": {a: [voxel[a][0], voxel[a][1]] for a in axes if a in voxel},
        "voxel_size_source": source,
        "kind": series.kind,
        "rgb": is_rgb(series),
        "is_imagej": bool(tif.is_imagej),
        "is_ome": bool(tif.is_ome),
        "is_bigtiff": bool(tif.is_bigtiff),
        "tiled": bool(page.is_tiled),
        "written_by_napari_unet": software.startswith(SOFTWARE),
        "lazy_mode": lazy_mode,
        "warnings": list(opened.warnings),
    }
    if tif.is_ome:
        channel_names = ome_channel_names(tif, index)
        if channel_names:
            metadata["channel_names"] = channel_names
    return metadata


def _series_image(
    opened: OpenTiff, series: Any, index: int, *, lazy: bool | None, threshold: int
) -> tuple[TiffImage, bool]:
    """Build the TiffImage of one series; the bool says whether it needs the TiffFile kept open."""
    tif, path, page = opened.tif, opened.path, series.keyframe
    nbytes = math.prod(series.shape) * series.dtype.itemsize
    is_labels = opens_as_labels(series, path)
    want_lazy = bool(lazy) if lazy is not None else nbytes > threshold

    data, lazy_mode = _load(tif, series, index, path, want_lazy)
    if is_unrequested_planar_rgb(series):
        data, axes = data, "Q" + series.axes[1:]  # the sample planes are the slices of a stack (see _open)
    else:
        data, axes = _samples_last(data, series.axes, lazy_mode)
    if series.dtype == np.bool_ and is_labels:
        data = data.view(np.uint8) if isinstance(data, np.ndarray) else data.astype(np.uint8)
    voxel, source = voxel_size(tif, series, index)
    levels = tuple(lower_levels(series, axes)) if len(series.levels) > 1 else ()

    contrast = None
    if not is_labels and (want_lazy or levels):
        # a small pyramid level shows the whole range cheaply; else sample planes of the full data
        sample = levels[-1] if levels else data
        # the first pixels decoded from a lazy file: a damaged chunk shows up here
        with _decoding(path, index, page):
            contrast = estimate_contrast_limits(sample, plane_ndim=3 if axes.endswith("S") else 2)

    image = TiffImage(
        data=data,
        axes=axes,
        scale=tuple(voxel[a][0] if a in voxel else 1.0 for a in axes),
        units=tuple(voxel[a][1] if a in voxel else "" for a in axes),
        name=strip_tiff_suffix(path.name) + (f" [series {index}]" if len(opened.series) > 1 else ""),
        is_labels=is_labels,
        lazy=want_lazy,
        compression=page.compression.name,
        contrast_limits=contrast,
        metadata=_metadata(opened, series, index, axes, voxel, source, lazy_mode),
        levels=levels,
    )
    return image, lazy_mode == "dask" or len(series.levels) > 1


# ---------------------------------------------------------------------------------------------------- the API


def read_tiff(
    path: str | os.PathLike, *, lazy: bool | None = None, lazy_threshold_bytes: int | None = None
) -> list[TiffImage]:
    """Read every series of a TIFF file.

    Parameters
    ----------
    path : str or os.PathLike
        The file. It is opened read-only and never modified.
    lazy : bool, optional
        True: never load pixels (memory map or dask); False: load everything; None (default): lazy for
        series bigger than ``lazy_threshold_bytes``.
    lazy_threshold_bytes : int, optional
        Size above which a series opens lazily; default :func:`lazy_threshold` (1 GiB or a quarter of RAM,
        configurable with the ``NAPARI_UNET_LAZY_BYTES`` / ``NAPARI_UNET_LAZY_RAM_FRACTION`` variables).

    Returns
    -------
    list of TiffImage
        One per series, in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    TiffReadError
        If the file is not a TIFF, is truncated or damaged, or its data cannot be decoded; the message
        names the file and the problem.
    """
    path = Path(os.fspath(path))
    threshold = lazy_threshold() if lazy_threshold_bytes is None else int(lazy_threshold_bytes)
    with open_tiff_series(path) as opened:
        check_warnings(opened.warnings, path, opened.file_size)
        for index, series in enumerate(opened.series):
            check_extent(series, index, path, opened.file_size)
        images = []
        for index, series in enumerate(opened.series):
            image, keep = _series_image(opened, series, index, lazy=lazy, threshold=threshold)
            images.append(image)
            opened.keep_open |= keep
    return images


# the engine's axis convention: (Z, C, Y, X) subsets; these letters count as the slice axis when Z is absent
_STACK_LIKE = "IQT"


def read_array(path: str | os.PathLike, *, with_units: bool = False) -> tuple:
    """Read the first series of a TIFF file in the engine's axis order, for the CLI and scripts.

    Parameters
    ----------
    path : str or os.PathLike
        TIFF file.
    with_units : bool
        Also return the unit per axis (so a result written with :func:`write_tiff` keeps them).

    Returns
    -------
    data : numpy.ndarray or numpy.memmap or dask.array.Array
        ``(Y, X)``, ``(Z, Y, X)``, ``(C, Y, X)`` or ``(Z, C, Y, X)``; lazy when the series is big (see
        :func:`read_tiff`). A page sequence (``I``), unknown axis (``Q``) or time (``T``) is taken as Z
        when the file has no Z axis; RGB(A) samples become the C axis. Boolean data becomes uint8.
    scale : tuple of float
        Voxel size per axis of ``data`` (1.0 for C and where unknown), in the file's units.
    units : tuple of str
        Only with ``with_units=True``: unit per axis of ``data`` (``""`` where unknown).

    Raises
    ------
    TiffReadError
        If the file cannot be read, or its axes cannot be put in this order (for example both T and Z,
        or an axis tifffile could not name besides the stack axis); the message names the axes.
    """
    image = read_tiff(path)[0]
    data, axes, scale, units = image.data, image.axes, list(image.scale), list(image.units)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if "S" in axes:
        if "C" in axes:
            raise TiffReadError(f"{path}: axes {axes!r} hold both channels (C) and colour samples (S)")
        axes = axes.replace("S", "C")
    if "Z" not in axes:
        stack = [a for a in axes if a in _STACK_LIKE]
        if len(stack) > 1:
            raise TiffReadError(
                f"{path}: axes {image.axes!r} have more than one stack axis ({''.join(stack)}); "
                "napari-unet needs (Z, C, Y, X) data"
            )
        if stack:
            axes = axes.replace(stack[0], "Z")
    extra = [a for a in axes if a not in "ZCYX"]
    if extra:
        raise TiffReadError(
            f"{path}: axes {image.axes!r} include {''.join(extra)} besides Z, C, Y, X; "
            "napari-unet segments (Z, C, Y, X) stacks - save one time point / position per file"
        )
    order = [axes.index(a) for a in "ZCYX" if a in axes]
    if order != list(range(len(axes))):
        data = data.transpose(order)
        scale = [scale[i] for i in order]
        units = [units[i] for i in order]
    if with_units:
        return data, tuple(float(s) for s in scale), tuple(units)
    return data, tuple(float(s) for s in scale)
