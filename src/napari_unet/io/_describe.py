"""``napari-unet info FILE``: what a TIFF file holds and how the reader would open it, without reading pixels."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from napari_unet.io._open import (
    OpenTiff,
    TiffReadError,
    check_extent,
    check_warnings,
    is_rgb,
    open_tiff_series,
    opens_as_labels,
)
from napari_unet.io._paths import lazy_threshold
from napari_unet.io._voxel import voxel_size

__all__ = ["describe_tiff"]


def _format_size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def _format_number(value: float) -> str:
    return f"{value:.6g}"


def _file_lines(opened: OpenTiff) -> list[str]:
    """The file's name, then size, byte order, pages, series and format flags, then the writing software."""
    tif = opened.tif
    flags = [
        name
        for name, on in (
            ("BigTIFF", tif.is_bigtiff),
            ("ImageJ", tif.is_imagej),
            ("OME", tif.is_ome),
            ("tifffile-shaped", tif.is_shaped and not tif.is_ome),
        )
        if on
    ]
    byteorder = "little-endian" if tif.byteorder == "<" else "big-endian"
    lines = [
        f"{opened.path}",
        f"  {_format_size(opened.file_size)}, {byteorder}, {len(tif.pages)} page(s), {len(opened.series)} series"
        + (f", {', '.join(flags)}" if flags else ""),
    ]
    software = tif.pages.first.software
    if software:
        lines.append(f"  written by: {software}")
    return lines


def _problem(opened: OpenTiff, series: Any, index: int) -> str:
    """What :func:`~napari_unet.io.read_tiff` would refuse this series for, without the file name ("" if fine)."""
    try:
        check_warnings(opened.warnings, opened.path, opened.file_size)
        check_extent(series, index, opened.path, opened.file_size)
    except TiffReadError as exc:
        return str(exc).split(": ", 1)[-1]
    return ""


def _voxel_line(opened: OpenTiff, series: Any, index: int) -> str:
    voxel, source = voxel_size(opened.tif, series, index)
    if not voxel:
        return "    voxel size: unknown (1 pixel per axis)"
    sizes = ", ".join(
        f"{a} {_format_number(voxel[a][0])}{(' ' + voxel[a][1]) if voxel[a][1] else ' (no unit)'}"
        for a in series.axes
        if a in voxel
    )
    return f"    voxel size: {sizes}  [from {source}]"


def _storage_line(series: Any) -> str:
    page = series.keyframe
    layout = (
        f"tiled {page.tilelength}x{page.tilewidth}"
        if page.is_tiled
        else f"strips of {page.rowsperstrip} rows"
    )
    contiguous = series.dataoffset is not None
    return (
        f"    storage: compression {page.compression.name}"
        + (f", predictor {page.predictor.name}" if int(page.predictor) != 1 else "")
        + f", {layout}, {'contiguous (memory-mappable)' if contiguous else 'not contiguous'}"
        + f", photometric {page.photometric.name}"
    )


def _opens_line(opened: OpenTiff, series: Any, nbytes: int, threshold: int, problem: str) -> str:
    lazy = nbytes > threshold
    contiguous = series.dataoffset is not None
    how = (
        ("lazily, memory-mapped" if contiguous else "lazily, dask over tifffile's zarr store")
        if lazy
        else "in memory"
    )
    kind = "labels" if opens_as_labels(series, opened.path) else ("RGB image" if is_rgb(series) else "image")
    return f"    opens: {how}, as {kind} (lazy above {_format_size(threshold)})" + (
        f"  PROBLEM: {problem}" if problem else ""
    )


def _series_lines(opened: OpenTiff, series: Any, index: int, threshold: int) -> list[str]:
    """Lines of one series: shape and dtype, voxel size, storage, pyramid, how it opens (and any problem)."""
    problem = _problem(opened, series, index)
    nbytes = math.prod(series.shape) * series.dtype.itemsize
    title = f"  series {index}" + (f" {series.name!r}" if series.name else "")
    lines = [
        f"{title}: axes {series.axes}, shape {tuple(series.shape)}, {series.dtype}, "
        f"{_format_size(nbytes)} ({series.kind})",
        _voxel_line(opened, series, index),
        _storage_line(series),
    ]
    if len(series.levels) > 1:
        shapes = ", ".join(str(tuple(lv.shape)) for lv in series.levels[1:])
        lines.append(f"    pyramid: {len(series.levels)} levels; lower levels {shapes}")
    lines.append(_opens_line(opened, series, nbytes, threshold, problem))
    return lines


def describe_tiff(path: str | os.PathLike, *, lazy_threshold_bytes: int | None = None) -> str:
    """Describe a TIFF file as ``napari-unet info FILE`` prints it.

    Per series: axes, shape, dtype, voxel size with units (and where it came from), compression, tiled or
    stripped and whether the data is contiguous (memory-mappable), pyramid levels, and how napari-unet
    would open it (in memory or lazily, as image or labels). The file header line gives size and the
    BigTIFF / ImageJ / OME flags. No pixel data is read.

    Parameters
    ----------
    path : str or os.PathLike
        TIFF file.
    lazy_threshold_bytes : int, optional
        As in :func:`read_tiff`.

    Returns
    -------
    str
        Several lines of text, no trailing newline.

    Raises
    ------
    FileNotFoundError, TiffReadError
        As :func:`read_tiff`.
    """
    path = Path(os.fspath(path))
    threshold = lazy_threshold() if lazy_threshold_bytes is None else int(lazy_threshold_bytes)
    with open_tiff_series(path) as opened:
        lines = _file_lines(opened)
        for index, series in enumerate(opened.series):
            lines += _series_lines(opened, series, index, threshold)
        for message in dict.fromkeys(opened.warnings):
            lines.append(f"  tifffile warning: {message}")
    return "\n".join(lines)
