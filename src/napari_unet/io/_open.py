"""Opening a TIFF file and checking it before any pixel is read.

tifffile logs instead of raising for many damaged files and silently drops what it cannot reach; the checks
here turn that into a :class:`TiffReadError` naming the file, so a truncated stack never shows up partial.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_unet.io._paths import is_labels_name, written_as_labels

__all__ = [
    "OpenTiff",
    "TiffReadError",
    "check_extent",
    "check_warnings",
    "collect_tifffile_warnings",
    "failures_as_read_error",
    "is_rgb",
    "is_unrequested_planar_rgb",
    "open_tiff",
    "open_tiff_series",
    "opens_as_labels",
    "series_list",
]


class TiffReadError(ValueError):
    """A file with a TIFF name could not be read; the message names the file and what is wrong."""


@contextmanager
def failures_as_read_error(what: str, detail: str = "") -> Iterator[None]:
    """Re-raise any error of the ``with`` body as ``TiffReadError(f"{what} ({detail}{type}: {message})")``.

    Running out of memory and Ctrl-C pass through unchanged.
    """
    try:
        yield
    except (MemoryError, KeyboardInterrupt):  # pragma: no cover
        raise
    except Exception as exc:
        raise TiffReadError(f"{what} ({detail}{type(exc).__name__}: {exc})") from exc


@contextmanager
def collect_tifffile_warnings() -> Iterator[list[str]]:
    """Collect what tifffile logs while parsing (it logs instead of raising for damaged files)."""
    messages: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Handler(level=logging.WARNING)
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def open_tiff(path: Path) -> tifffile.TiffFile:
    """Open ``path`` with tifffile; FileNotFoundError or TiffReadError with the reason when it cannot."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise TiffReadError(f"{path}: is a directory, not a TIFF file")
    size = path.stat().st_size
    if size < 8:
        raise TiffReadError(f"{path}: not a TIFF file (only {size} bytes)")
    try:
        return tifffile.TiffFile(path, mode="rb")
    except tifffile.TiffFileError as exc:
        with open(path, "rb") as fh:
            head = fh.read(8)
        raise TiffReadError(f"{path}: not a valid TIFF file ({exc}; file starts with {head!r})") from exc
    except (MemoryError, KeyboardInterrupt):  # pragma: no cover
        raise
    except Exception as exc:
        raise TiffReadError(f"{path}: cannot parse TIFF structure ({type(exc).__name__}: {exc})") from exc


def series_list(tif: tifffile.TiffFile, path: Path) -> list[Any]:
    """The non-empty series of ``tif``; TiffReadError when there is none or they cannot be parsed."""
    with failures_as_read_error(f"{path}: cannot parse TIFF series"):
        series = [s for s in tif.series if s is not None and s.size > 0]
    if not series:
        size = path.stat().st_size
        raise TiffReadError(
            f"{path}: the TIFF file contains no image data ({size} bytes; truncated or empty?)"
        )
    return series


@dataclass
class OpenTiff:
    """An open TIFF file with its series, as :func:`open_tiff_series` hands it out.

    Set ``keep_open`` when arrays that read through the file's handle outlive the ``with`` block.
    """

    path: Path
    tif: tifffile.TiffFile
    series: list[Any]
    file_size: int
    warnings: list[str]
    keep_open: bool = False


@contextmanager
def open_tiff_series(path: Path) -> Iterator[OpenTiff]:
    """Open ``path``, list its series and collect tifffile's warnings while the ``with`` body runs.

    The file is closed at the end unless the body set ``keep_open``: dask arrays read through the TiffFile's
    handle for as long as they live; they hold the only reference to it, so it is closed when the last layer
    using it goes away.
    """
    with collect_tifffile_warnings() as warnings:
        tif = open_tiff(path)
        opened = None
        try:
            all_series = series_list(tif, path)
            opened = OpenTiff(path, tif, all_series, path.stat().st_size, warnings)
            yield opened
        finally:
            if opened is None or not opened.keep_open:
                tif.close()


_OFFSET_WARNING = re.compile(r"invalid (page|value) offset (\d+)")


def check_warnings(warnings: list[str], path: Path, file_size: int) -> None:
    """Raise TiffReadError for what tifffile only logs: IFDs or tag values outside the file.

    tifffile logs these (offset beyond the end, or before the header) and drops the pages or tags, which
    would silently show a partial stack or lose the voxel size.
    """
    for message in warnings:
        match = _OFFSET_WARNING.search(message)
        if match:
            what = "the next page" if match.group(1) == "page" else "a tag value (metadata)"
            raise TiffReadError(
                f"{path}: file is truncated or damaged: {what} at byte {match.group(2)} "
                f"lies outside the file ({file_size} bytes)"
            )


def check_extent(series: Any, index: int, path: Path, file_size: int) -> None:
    """Raise TiffReadError when the series points at bytes beyond the end of the file (truncated file)."""
    own = series.keyframe.parent.filehandle
    offset = series.dataoffset
    if offset is not None:
        end = offset + series.nbytes
    else:
        end = 0
        for page in series.pages:
            if page is None:
                raise TiffReadError(f"{path}: a page of series {index} is missing (damaged file?)")
            if page.parent.filehandle is not own:
                continue  # multi-file OME: that file is checked when it is read
            offsets, counts = page.dataoffsets, page.databytecounts
            if len(offsets) == 0:
                raise TiffReadError(f"{path}: a page of series {index} has no image data")
            end = max(end, int(np.max(np.add(offsets, counts, dtype=np.int64))))
    if end > file_size:
        raise TiffReadError(
            f"{path}: file is truncated: image data of series {index} needs {end} bytes "
            f"but the file holds {file_size}"
        )


def is_unrequested_planar_rgb(series: Any) -> bool:
    """True for a 3- or 4-slice stack that ``tifffile.imwrite`` stored as planar RGB(A) only because no
    photometric tag was requested: a tifffile "shaped" file whose JSON shape starts with the 3 or 4 sample planes.

    tifffile (up to at least 2026.3) writes any ``(3, Y, X)`` / ``(4, Y, X)`` array that way by default, a very
    common way EM stacks get saved from Python; napari's built-in reader opens them as Z stacks (the last axis is
    not 3 or 4), and so do we. A file that asked for RGB keeps chunky samples or another writer's tags.
    """
    axes, shape = series.axes, series.shape
    if axes != "SYX" or shape[0] not in (3, 4) or series.kind != "shaped":
        return False
    page = series.keyframe
    software = str(page.software or "")
    planar = int(getattr(page, "planarconfig", 1) or 1) == 2
    return planar and software.startswith("tifffile") and len(series.pages) == 1


def is_rgb(series: Any) -> bool:
    """True when the series has 3 or 4 samples per pixel that are RGB (or YCbCr, decoded to RGB), unless it is a
    stack tifffile stored as planar RGB by default (:func:`is_unrequested_planar_rgb`)."""
    axes, shape = series.axes, series.shape
    if "S" not in axes or shape[axes.index("S")] not in (3, 4) or is_unrequested_planar_rgb(series):
        return False
    photometric = getattr(series.keyframe, "photometric", None)
    return int(photometric) in (2, 6) if photometric is not None else False  # RGB, YCBCR (decoded to RGB)


def opens_as_labels(series: Any, path: Path) -> bool:
    """True for integer, non-RGB data with a labels-like file name or written by napari-unet as labels."""
    software = str(series.keyframe.software or "")
    integer = series.dtype.kind in "iub"
    return integer and not is_rgb(series) and (is_labels_name(path) or written_as_labels(software))
