"""TIFF in and out for napari-unet: numpy / dask / tifffile only (no torch, no napari, no Qt).

The reader turns every series of a TIFF file into a :class:`TiffImage`: the pixel data with singleton axes
squeezed (RGB(A) samples last), the tifffile axis letters, the voxel size and units per axis, and whether the
series should be shown as a napari Labels layer. Voxel sizes come, in this order of trust, from OME-XML
(``PhysicalSizeX/Y/Z`` with units), ImageJ metadata (``spacing``, ``unit``/``yunit``/``zunit`` and the X/Y
resolution tags), the JSON that :func:`write_tiff` stores in tifffile "shaped" files, and finally the plain
TIFF resolution tags when their unit (centimeter / inch) is meaningful for a microscope.

Big series (see :func:`lazy_threshold`) are never loaded: uncompressed contiguous data is memory-mapped
read-only, everything else becomes a dask array over tifffile's Zarr store, one image plane per chunk.
Contrast limits are then estimated from a few planes, never from the whole stack.

The writer produces compressed TIFFs that keep the voxel size: ImageJ hyperstacks when the dtype allows
(so Fiji shows the calibration), OME-TIFF for other dtypes, and tifffile's JSON "shaped" format as a last
resort. Files written with ``labels=True`` carry ``napari-unet <version> labels`` in the Software tag, which
the reader recognises so they re-open as labels whatever their name.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_unet import __version__

__all__ = [
    "LABELS_SUFFIXES",
    "LAZY_BYTES_ENV",
    "LAZY_RAM_FRACTION_ENV",
    "TIFF_SUFFIXES",
    "TiffImage",
    "TiffReadError",
    "describe_tiff",
    "estimate_contrast_limits",
    "is_labels_name",
    "is_tiff_path",
    "lazy_threshold",
    "normalize_unit",
    "read_array",
    "read_tiff",
    "write_tiff",
]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
"""File name endings treated as TIFF (compared case-insensitively; ``.ome.tif`` ends in ``.tif``)."""

LABELS_SUFFIXES = ("_labels", "_label", "_mask", "_masks", "_seg", "_gt")
"""Stem endings that mark a file of integers as a label image (compared case-insensitively)."""

LAZY_BYTES_ENV = "NAPARI_UNET_LAZY_BYTES"
"""Environment variable: series larger than this many bytes open lazily (accepts ``512M``, ``2GiB``...)."""

LAZY_RAM_FRACTION_ENV = "NAPARI_UNET_LAZY_RAM_FRACTION"
"""Environment variable: series larger than this fraction of the machine's RAM open lazily (0 < f <= 1)."""

DEFAULT_LAZY_BYTES = 1 << 30
DEFAULT_LAZY_RAM_FRACTION = 0.25

# Planes up to this size become one dask chunk each (napari asks for one plane at a time); bigger planes keep
# tifffile's own tiles as chunks so a zoomed-in view does not decode a whole giant plane.
_MAX_PLANE_CHUNK_BYTES = 64 << 20
# Contrast estimation reads at most this many bytes per sampled plane (a centred window on huge planes).
_MAX_SAMPLE_BYTES = 16 << 20
_N_CONTRAST_PLANES = 5

_SOFTWARE = "napari-unet"
_LABELS_MARK = "labels"

# ImageJ hyperstacks hold only these dtypes; other dtypes go to OME-TIFF.
_IMAGEJ_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))
_OME_DTYPES = tuple(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
)
# ImageJ cannot read BigTIFF; stay below 4 GiB with some room for the IFDs.
_IMAGEJ_MAX_BYTES = (1 << 32) - (1 << 25)

# Resolution values that image editors and scanners write by default; they describe print size, not a
# microscope's pixel, so they never become a voxel size.
_COMMON_DPI = (
    72,
    96,
    100,
    120,
    144,
    150,
    200,
    240,
    254,
    300,
    400,
    600,
    720,
    800,
    1200,
    1600,
    2400,
    3200,
    4800,
)
# A pixel bigger than this (in micrometres) from centimeter/inch resolution tags is assumed to be print size.
_MAX_MEANINGFUL_PIXEL_UM = 50.0

_UNIT_ALIASES = {
    "": "",
    "pixel": "",
    "pixels": "",
    "px": "",
    "reference frame": "",
    "micron": "µm",
    "microns": "µm",
    "um": "µm",
    "µm": "µm",
    "μm": "µm",  # Greek small letter mu
    "micrometer": "µm",
    "micrometre": "µm",
    "micrometers": "µm",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "nanometers": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "pm": "pm",
    "å": "Å",
    "Å": "Å",
    "angstrom": "Å",
    "angstroms": "Å",
    "inch": "in",
    "in": "in",
    "s": "s",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "ms": "ms",
    "msec": "ms",
    "millisecond": "ms",
    "µs": "µs",
    "us": "µs",
    "min": "min",
    "minute": "min",
    "minutes": "min",
    "h": "h",
    "hr": "h",
    "hour": "h",
    "hours": "h",
}

# What the ImageJ writer puts in the description: ImageJ's own spelling, ASCII only.
_IMAGEJ_UNIT_NAMES = {"µm": "micron", "Å": "\\u00C5", "µs": "\\u00B5s", "": "pixel"}

_LOG = logging.getLogger(__name__)


class TiffReadError(ValueError):
    """A file with a TIFF name could not be read; the message names the file and what is wrong."""


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


# --------------------------------------------------------------------------------------------------------------
# names and thresholds


def _strip_tiff_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in TIFF_SUFFIXES:
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.lower().endswith(".ome"):
        name = name[:-4]
    return name


def is_tiff_path(path: str | os.PathLike) -> bool:
    """Return True when ``path`` has a TIFF file name ending (``.tif``, ``.tiff``, ``.ome.tif``, ``.btf``...).

    Only the name is looked at; the file need not exist.
    """
    if not isinstance(path, str | os.PathLike):
        return False
    return os.fspath(path).lower().endswith(TIFF_SUFFIXES)


def is_labels_name(path: str | os.PathLike) -> bool:
    """Return True when the file stem ends in ``_labels``, ``_label``, ``_mask``, ``_masks``, ``_seg`` or ``_gt``.

    The comparison ignores case and the ``.tif``/``.ome.tif`` ending: ``cells_Mask.ome.tiff`` qualifies.
    """
    stem = _strip_tiff_suffix(Path(os.fspath(path)).name).lower()
    return stem.endswith(LABELS_SUFFIXES)


def _parse_bytes(text: str, variable: str) -> int:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not match:
        raise ValueError(f"{variable}={text!r} is not a size in bytes (examples: 500000000, 512M, 2GiB)")
    number, prefix = float(match.group(1)), match.group(2)
    return int(number * 1024 ** "_kmgt".index(prefix)) if prefix else int(number)


def lazy_threshold(lazy_bytes: int | None = None, ram_fraction: float | None = None) -> int:
    """Return the series size in bytes above which the reader opens data lazily.

    It is the smaller of a byte limit (default 1 GiB, environment variable ``NAPARI_UNET_LAZY_BYTES``)
    and a fraction of the machine's RAM (default 0.25, ``NAPARI_UNET_LAZY_RAM_FRACTION``).

    Parameters
    ----------
    lazy_bytes : int, optional
        Byte limit; overrides the environment variable.
    ram_fraction : float, optional
        Fraction of total RAM, in (0, 1]; overrides the environment variable.

    Returns
    -------
    int
        Threshold in bytes.

    Raises
    ------
    ValueError
        If an environment variable or argument holds a value that is not a size / fraction.
    """
    if lazy_bytes is None:
        env = os.environ.get(LAZY_BYTES_ENV, "").strip()
        lazy_bytes = _parse_bytes(env, LAZY_BYTES_ENV) if env else DEFAULT_LAZY_BYTES
    if lazy_bytes < 0:
        raise ValueError(f"lazy byte threshold must be >= 0, got {lazy_bytes}")
    if ram_fraction is None:
        env = os.environ.get(LAZY_RAM_FRACTION_ENV, "").strip()
        try:
            ram_fraction = float(env) if env else DEFAULT_LAZY_RAM_FRACTION
        except ValueError:
            raise ValueError(f"{LAZY_RAM_FRACTION_ENV}={env!r} is not a number in (0, 1]") from None
    if not 0 < ram_fraction <= 1:
        raise ValueError(f"RAM fraction for lazy opening must be in (0, 1], got {ram_fraction}")
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:  # pragma: no cover - psutil is a dependency, but a sandbox may hide /proc
        return int(lazy_bytes)
    return int(min(lazy_bytes, ram_fraction * total))


def normalize_unit(unit: Any) -> str:
    """Return a short, canonical spelling of a length or time unit.

    ``"micron"``, ``"um"``, ``"\\u00B5m"`` and ``"μm"`` become ``"µm"``; ``"nanometer"`` becomes ``"nm"``;
    ``"pixel"``, ``None`` and ``""`` become ``""`` (unknown). Unrecognised spellings are returned stripped.
    Objects such as ``pint.Unit`` are formatted in their abbreviated form first.
    """
    if unit is None:
        return ""
    if not isinstance(unit, str):
        try:
            unit = format(unit, "~")  # pint.Unit -> "nm"
        except (TypeError, ValueError):
            unit = str(unit)
    # ImageJ escapes non-ASCII characters as \uXXXX in its ASCII description
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), unit).strip()
    return _UNIT_ALIASES.get(text, _UNIT_ALIASES.get(text.lower(), text))


# --------------------------------------------------------------------------------------------------------------
# voxel size


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _resolution_to_size(page: Any) -> tuple[float | None, float | None]:
    """Pixel size from the X/Y resolution tags in the page's own unit (None where missing or zero)."""
    sizes = []
    for code in (282, 283):  # XResolution, YResolution
        value = page.tags.valueof(code)
        if isinstance(value, tuple) and len(value) == 2:
            value = value[0] / value[1] if value[1] else 0
        res = _positive(value)
        sizes.append(1.0 / res if res else None)
    return sizes[0], sizes[1]


def _voxel_from_ome(tif: tifffile.TiffFile, series: Any, index: int) -> dict[str, tuple[float, str]]:
    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError:
        return {}
    images = [el for el in root if el.tag.rsplit("}", 1)[-1] == "Image"]
    if not images:
        return {}
    named = [el for el in images if series.name and el.get("Name") == series.name]
    image = named[0] if len(named) == 1 else images[min(index, len(images) - 1)]
    pixels = next((el for el in image if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}
    out = {}
    for axis in "XYZ":
        size = _positive(pixels.get(f"PhysicalSize{axis}"))
        if size is not None:
            # the OME schema's default unit for physical sizes is the micrometre
            out[axis] = (size, normalize_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm")))
    step = _positive(pixels.get("TimeIncrement"))
    if step is not None:
        out["T"] = (step, normalize_unit(pixels.get("TimeIncrementUnit", "s")))
    return out


def _voxel_from_imagej(tif: tifffile.TiffFile, page: Any) -> dict[str, tuple[float, str]]:
    meta = tif.imagej_metadata or {}
    unit = normalize_unit(meta.get("unit"))
    yunit = normalize_unit(meta.get("yunit", meta.get("unit")))
    zunit = normalize_unit(meta.get("zunit", meta.get("unit")))
    out = {}
    xsize, ysize = _resolution_to_size(page)
    # without resolution tags ImageJ calibrates 1 pixel as 1 unit
    if xsize is not None or unit:
        out["X"] = (xsize or 1.0, unit)
    if ysize is not None or yunit:
        out["Y"] = (ysize or 1.0, yunit)
    spacing = _positive(meta.get("spacing"))
    if spacing is not None:
        out["Z"] = (spacing, zunit)
    elif zunit:
        out["Z"] = (1.0, zunit)  # ImageJ's default voxel depth is 1 in the calibration unit
    interval = _positive(meta.get("finterval"))
    if interval is not None:
        out["T"] = (interval, normalize_unit(meta.get("tunit", "s")))
    return out


def _voxel_from_napari_unet(series: Any) -> dict[str, tuple[float, str]] | None:
    description = getattr(series.keyframe, "shaped_description", None)
    if not description:
        return None
    try:
        meta = json.loads(description)
    except (json.JSONDecodeError, TypeError):
        return None
    ours = meta.get("napari_unet") if isinstance(meta, dict) else None
    if not isinstance(ours, dict):
        return None
    axes, scale, units = ours.get("axes", ""), ours.get("scale", []), ours.get("units", [])
    if not (isinstance(axes, str) and len(axes) == len(scale) == len(units)):
        return None
    out = {}
    for axis, size, unit in zip(axes, scale, units, strict=True):
        size = _positive(size)
        if size is not None:
            out[axis] = (size, normalize_unit(unit))
    return out


def _voxel_from_resolution_tags(page: Any) -> dict[str, tuple[float, str]]:
    """X/Y pixel size from plain TIFF resolution tags, only when the unit makes sense for a microscope."""
    unit_code = page.tags.valueof(296, default=2)  # ResolutionUnit; TIFF default is inch
    to_um = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(int(unit_code))
    if to_um is None:  # RESUNIT.NONE: relative aspect ratio only
        return {}
    xsize, ysize = _resolution_to_size(page)
    sizes_um = {}
    for axis, size in (("X", xsize), ("Y", ysize)):
        if size is None:
            continue
        um = size * to_um
        if unit_code in (2, 3):
            dpi = 25400.0 / um
            if um > _MAX_MEANINGFUL_PIXEL_UM or any(abs(dpi - d) < 1e-3 * d for d in _COMMON_DPI):
                continue
        sizes_um[axis] = um
    if len(sizes_um) != 2:  # one meaningful axis and one print-size axis: trust neither
        return {}
    # keep small EM pixels readable: 0.004 µm is better shown as 4 nm
    if max(sizes_um.values()) < 0.1:
        return {axis: (um * 1000.0, "nm") for axis, um in sizes_um.items()}
    return {axis: (um, "µm") for axis, um in sizes_um.items()}


def _voxel_size(tif: tifffile.TiffFile, series: Any, index: int) -> tuple[dict[str, tuple[float, str]], str]:
    """Return ({axis: (size, unit)}, source) for one series."""
    page = series.keyframe
    if series.kind == "ome" and tif.is_ome:
        found = _voxel_from_ome(tif, series, index)
        if found:
            return found, "ome"
    if tif.is_imagej and series.kind == "imagej":
        return _voxel_from_imagej(tif, page), "imagej"
    ours = _voxel_from_napari_unet(series)
    if ours is not None:
        return ours, "napari-unet"
    found = _voxel_from_resolution_tags(page)
    return found, ("resolution-tags" if found else "none")


# --------------------------------------------------------------------------------------------------------------
# reading


@contextmanager
def _collect_tifffile_warnings() -> Iterator[list[str]]:
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


def _open_tiff(path: Path) -> tifffile.TiffFile:
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


def _series_list(tif: tifffile.TiffFile, path: Path) -> list[Any]:
    try:
        series = [s for s in tif.series if s is not None and s.size > 0]
    except (MemoryError, KeyboardInterrupt):  # pragma: no cover
        raise
    except Exception as exc:
        raise TiffReadError(f"{path}: cannot parse TIFF series ({type(exc).__name__}: {exc})") from exc
    if not series:
        size = path.stat().st_size
        raise TiffReadError(
            f"{path}: the TIFF file contains no image data ({size} bytes; truncated or empty?)"
        )
    return series


_OFFSET_WARNING = re.compile(r"invalid (page|value) offset (\d+)")


def _check_warnings(warnings: list[str], path: Path, file_size: int) -> None:
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


def _check_extent(series: Any, index: int, path: Path, file_size: int) -> None:
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


def _is_rgb(series: Any) -> bool:
    axes, shape = series.axes, series.shape
    if "S" not in axes or shape[axes.index("S")] not in (3, 4):
        return False
    photometric = getattr(series.keyframe, "photometric", None)
    return int(photometric) in (2, 6) if photometric is not None else False  # RGB, YCBCR (decoded to RGB)


def _plane_axes(axes: str) -> str:
    return "YXS" if axes.endswith("YXS") else "YX"


def _memmap(tif: tifffile.TiffFile, series: Any, path: Path) -> np.memmap | None:
    """Read-only memory map of uncompressed contiguous series data in this very file, else None."""
    offset = series.dataoffset
    if offset is None:
        return None
    pages = series.pages
    if any(p is None or p.parent is not tif for p in (pages[0], pages[-1])):
        return None
    dtype = np.dtype(tif.byteorder + series.dtype.char)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=series.shape, order="C")


def _dask_from_series(series: Any, level: int = 0) -> Any:
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


def estimate_contrast_limits(
    data: Any, *, plane_ndim: int = 2, n_planes: int = _N_CONTRAST_PLANES
) -> tuple[float, float]:
    """Estimate display contrast limits from a few evenly spaced planes (never the whole stack).

    Parameters
    ----------
    data : array-like, shape (..., Y, X) or (..., Y, X, S)
        numpy, memmap, dask or zarr array.
    plane_ndim : int
        Number of trailing axes forming one plane (2, or 3 for RGB).
    n_planes : int
        Planes sampled, spread over all leading positions.

    Returns
    -------
    (float, float)
        Minimum and maximum of the samples (NaN ignored); ``(0.0, 1.0)`` when all samples are NaN, and the
        upper limit is nudged up when the samples are constant so napari gets a non-empty range.
    """
    shape = tuple(data.shape)
    lead, plane = shape[:-plane_ndim], shape[-plane_ndim:]
    n_lead = math.prod(lead)
    picks = sorted({int(round(x)) for x in np.linspace(0, n_lead - 1, min(n_planes, n_lead))})
    itemsize = np.dtype(data.dtype).itemsize
    plane_bytes = itemsize * math.prod(plane)
    window = []
    shrink = math.sqrt(_MAX_SAMPLE_BYTES / plane_bytes) if plane_bytes > _MAX_SAMPLE_BYTES else 1.0
    for k, n in enumerate(plane):
        if k < 2 and shrink < 1.0:  # Y and X: a centred window on huge planes
            width = max(1, int(n * shrink))
            start = (n - width) // 2
            window.append(slice(start, start + width))
        else:
            window.append(slice(None))
    lows, highs = [], []
    for flat in picks:
        index = np.unravel_index(flat, lead) if lead else ()
        sample = np.asarray(data[tuple(int(i) for i in index) + tuple(window)])
        if sample.dtype.kind == "f":
            finite = sample[np.isfinite(sample)]
            if finite.size == 0:
                continue
            sample = finite
        lows.append(float(sample.min()))
        highs.append(float(sample.max()))
    if not lows:
        return (0.0, 1.0)
    low, high = min(lows), max(highs)
    if high <= low:
        high = low + 1.0
    return (low, high)


def _series_image(
    tif: tifffile.TiffFile,
    series: Any,
    index: int,
    n_series: int,
    path: Path,
    *,
    lazy: bool | None,
    threshold: int,
    warnings: list[str],
) -> tuple[TiffImage, bool]:
    """Build the TiffImage of one series; the bool says whether it needs the TiffFile kept open."""
    axes, dtype = series.axes, series.dtype
    nbytes = math.prod(series.shape) * dtype.itemsize
    rgb = _is_rgb(series)
    name = _strip_tiff_suffix(path.name) + (f" [series {index}]" if n_series > 1 else "")
    page = series.keyframe
    software = str(page.software or "")
    written_as_labels = software.startswith(_SOFTWARE) and software.split()[-1] == _LABELS_MARK
    integer = dtype.kind in "iub"
    is_labels = integer and not rgb and (is_labels_name(path) or written_as_labels)

    want_lazy = bool(lazy) if lazy is not None else nbytes > threshold
    keep_open = False
    lazy_mode = None
    if want_lazy:
        data = _memmap(tif, series, path)
        if data is not None:
            lazy_mode = "memmap"
        else:
            data = _dask_from_series(series)
            lazy_mode, keep_open = "dask", True
    else:
        try:
            data = series.asarray()
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise TiffReadError(
                f"{path}: cannot decode image data of series {index} "
                f"(compression {page.compression.name}: {type(exc).__name__}: {exc})"
            ) from exc
        data = data.reshape(series.shape)

    if "S" in axes and not axes.endswith("S"):
        # planar (separate) samples: put them last like chunky RGB, as napari expects
        source = axes.index("S")
        data = (
            np.moveaxis(data, source, -1)
            if lazy_mode != "dask"
            else data.transpose(_moved(len(axes), source))
        )
        axes = axes.replace("S", "") + "S"
    if dtype == np.bool_ and is_labels:
        data = data.view(np.uint8) if isinstance(data, np.ndarray) else data.astype(np.uint8)

    voxel, source = _voxel_size(tif, series, index)
    scale = tuple(voxel[a][0] if a in voxel else 1.0 for a in axes)
    units = tuple(voxel[a][1] if a in voxel else "" for a in axes)

    levels: tuple = ()
    if len(series.levels) > 1:
        levels = tuple(_moved_levels(series, axes))
        keep_open = True

    contrast = None
    if not is_labels and (want_lazy or levels):
        # a small pyramid level shows the whole range cheaply; else sample planes of the full data
        sample = levels[-1] if levels else data
        try:
            contrast = estimate_contrast_limits(sample, plane_ndim=3 if axes.endswith("S") else 2)
        except (MemoryError, KeyboardInterrupt):  # pragma: no cover
            raise
        except Exception as exc:
            # the first pixels decoded from a lazy file: a damaged chunk shows up here
            raise TiffReadError(
                f"{path}: cannot decode image data of series {index} "
                f"(compression {page.compression.name}: {type(exc).__name__}: {exc})"
            ) from exc

    metadata = {
        "path": str(path),
        "series": index,
        "n_series": n_series,
        "axes": axes,
        "units": list(units),
        "voxel_size": {a: [voxel[a][0], voxel[a][1]] for a in axes if a in voxel},
        "voxel_size_source": source,
        "kind": series.kind,
        "rgb": rgb,
        "is_imagej": bool(tif.is_imagej),
        "is_ome": bool(tif.is_ome),
        "is_bigtiff": bool(tif.is_bigtiff),
        "tiled": bool(page.is_tiled),
        "written_by_napari_unet": software.startswith(_SOFTWARE),
        "lazy_mode": lazy_mode,
        "warnings": list(warnings),
    }
    if tif.is_ome:
        channel_names = _ome_channel_names(tif, series, index)
        if channel_names:
            metadata["channel_names"] = channel_names
    image = TiffImage(
        data=data,
        axes=axes,
        scale=scale,
        units=units,
        name=name,
        is_labels=is_labels,
        lazy=want_lazy,
        compression=page.compression.name,
        contrast_limits=contrast,
        metadata=metadata,
        levels=levels,
    )
    return image, keep_open


def _moved(ndim: int, source: int) -> tuple[int, ...]:
    order = [i for i in range(ndim) if i != source]
    return (*order, source)


def _moved_levels(series: Any, axes_out: str) -> Iterator[Any]:
    for level in range(1, len(series.levels)):
        array = _dask_from_series(series, level=level)
        level_axes = series.levels[level].axes
        if "S" in level_axes and not level_axes.endswith("S"):
            array = array.transpose(_moved(array.ndim, level_axes.index("S")))
        if array.ndim == len(axes_out):
            yield array


def _ome_channel_names(tif: tifffile.TiffFile, series: Any, index: int) -> list[str]:
    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError:
        return []
    images = [el for el in root if el.tag.rsplit("}", 1)[-1] == "Image"]
    if index >= len(images):
        return []
    pixels = next((el for el in images[index] if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return []
    names = [ch.get("Name", "") for ch in pixels if ch.tag.rsplit("}", 1)[-1] == "Channel"]
    return names if any(names) else []


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
    with _collect_tifffile_warnings() as warnings:
        tif = _open_tiff(path)
        keep_open = False
        try:
            all_series = _series_list(tif, path)
            file_size = path.stat().st_size
            _check_warnings(warnings, path, file_size)
            for index, series in enumerate(all_series):
                _check_extent(series, index, path, file_size)
            images = []
            for index, series in enumerate(all_series):
                image, keep = _series_image(
                    tif,
                    series,
                    index,
                    len(all_series),
                    path,
                    lazy=lazy,
                    threshold=threshold,
                    warnings=warnings,
                )
                images.append(image)
                keep_open |= keep
        finally:
            # dask arrays read through the TiffFile's handle for as long as they live; they hold the only
            # reference to it, so it is closed when the last layer using it goes away
            if not keep_open:
                tif.close()
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


# --------------------------------------------------------------------------------------------------------------
# describing


def _format_size(nbytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def _format_number(value: float) -> str:
    return f"{value:.6g}"


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
    with _collect_tifffile_warnings() as warnings:
        tif = _open_tiff(path)
        try:
            all_series = _series_list(tif, path)
            file_size = path.stat().st_size
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
                f"{path}",
                f"  {_format_size(file_size)}, {byteorder}, {len(tif.pages)} page(s), {len(all_series)} series"
                + (f", {', '.join(flags)}" if flags else ""),
            ]
            software = tif.pages.first.software
            if software:
                lines.append(f"  written by: {software}")
            for index, series in enumerate(all_series):
                try:
                    _check_warnings(warnings, path, file_size)
                    _check_extent(series, index, path, file_size)
                    problem = ""
                except TiffReadError as exc:
                    problem = str(exc).split(": ", 1)[-1]
                page = series.keyframe
                nbytes = math.prod(series.shape) * series.dtype.itemsize
                voxel, source = _voxel_size(tif, series, index)
                title = f"  series {index}" + (f" {series.name!r}" if series.name else "")
                lines.append(
                    f"{title}: axes {series.axes}, shape {tuple(series.shape)}, {series.dtype}, "
                    f"{_format_size(nbytes)} ({series.kind})"
                )
                if voxel:
                    sizes = ", ".join(
                        f"{a} {_format_number(voxel[a][0])}{(' ' + voxel[a][1]) if voxel[a][1] else ' (no unit)'}"
                        for a in series.axes
                        if a in voxel
                    )
                    lines.append(f"    voxel size: {sizes}  [from {source}]")
                else:
                    lines.append("    voxel size: unknown (1 pixel per axis)")
                layout = (
                    f"tiled {page.tilelength}x{page.tilewidth}"
                    if page.is_tiled
                    else f"strips of {page.rowsperstrip} rows"
                )
                contiguous = series.dataoffset is not None
                lines.append(
                    f"    storage: compression {page.compression.name}"
                    + (f", predictor {page.predictor.name}" if int(page.predictor) != 1 else "")
                    + f", {layout}, {'contiguous (memory-mappable)' if contiguous else 'not contiguous'}"
                    + f", photometric {page.photometric.name}"
                )
                if len(series.levels) > 1:
                    shapes = ", ".join(str(tuple(lv.shape)) for lv in series.levels[1:])
                    lines.append(f"    pyramid: {len(series.levels)} levels; lower levels {shapes}")
                lazy = nbytes > threshold
                software_tag = str(page.software or "")
                is_labels = (
                    series.dtype.kind in "iub"
                    and not _is_rgb(series)
                    and (
                        is_labels_name(path)
                        or (software_tag.startswith(_SOFTWARE) and software_tag.split()[-1] == _LABELS_MARK)
                    )
                )
                how = (
                    ("lazily, memory-mapped" if contiguous else "lazily, dask over tifffile's zarr store")
                    if lazy
                    else "in memory"
                )
                kind = "labels" if is_labels else ("RGB image" if _is_rgb(series) else "image")
                lines.append(
                    f"    opens: {how}, as {kind} (lazy above {_format_size(threshold)})"
                    + (f"  PROBLEM: {problem}" if problem else "")
                )
            for message in dict.fromkeys(warnings):
                lines.append(f"  tifffile warning: {message}")
        finally:
            tif.close()
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# writing

_DEFAULT_AXES = {2: "YX", 3: "ZYX", 5: "TZCYX"}


def _default_axes(ndim: int, labels: bool) -> str:
    if ndim == 4:
        # labels have no channels; an image's extra axis is the engine's channel axis (Z, C, Y, X)
        return "TZYX" if labels else "ZCYX"
    if ndim not in _DEFAULT_AXES:
        raise ValueError(f"cannot guess axis names for {ndim}-D data; pass axes=, e.g. 'TZCYX'")
    return _DEFAULT_AXES[ndim]


def _minimal_label_dtype(data: Any) -> np.dtype:
    """Smallest dtype that holds the labels losslessly (unsigned when nothing is negative)."""
    dtype = np.dtype(data.dtype)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if hasattr(data, "compute") and hasattr(data, "dask"):
        import dask

        low, high = (int(v) for v in dask.compute(data.min(), data.max()))
    else:
        array = np.asarray(data)
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low >= 0:
        for candidate in (np.uint8, np.uint16, np.uint32, np.uint64):
            if high <= np.iinfo(candidate).max:
                return np.dtype(candidate)
    for candidate in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return dtype  # pragma: no cover - int64 always fits


def _imagej_axes(axes: str) -> str | None:
    """ImageJ spelling of ``axes`` (order TZCYXS), or None when ImageJ cannot hold that layout."""
    out = axes
    if "Z" not in out:
        for letter in "IQ":
            if out.count(letter) == 1:
                out = out.replace(letter, "Z")
                break
    positions = ["TZCYXS".find(a) for a in out]
    if -1 in positions or positions != sorted(positions) or not out.endswith(("YX", "YXS")):
        return None
    return out


def _imagej_unit(unit: str) -> str:
    name = _IMAGEJ_UNIT_NAMES.get(unit, unit)
    return "".join(c if ord(c) < 128 else f"\\u{ord(c):04X}" for c in name)


def _iter_planes(data: Any, plane_ndim: int) -> Iterator[np.ndarray]:
    """Yield the planes of a (possibly lazy) array in C order, computing one block of planes at a time."""
    shape = tuple(data.shape)
    lead = shape[:-plane_ndim]
    if not lead:
        yield np.asarray(data)
        return
    # load along the first axis in blocks of about 64 MiB so dask/zarr decode each chunk once
    per_first = math.prod(shape[1:]) * np.dtype(data.dtype).itemsize
    step = max(1, min(shape[0], (64 << 20) // max(per_first, 1)))
    chunks = getattr(data, "chunks", None)
    if chunks and isinstance(chunks[0], tuple):  # dask: align blocks with its chunks
        step = max(step, max(chunks[0]))
    for start in range(0, shape[0], step):
        block = np.asarray(data[start : start + step])
        for index in np.ndindex(block.shape[: len(lead)]):
            yield block[index]


def write_tiff(
    path: str | os.PathLike,
    data: Any,
    *,
    scale: Sequence[float] | None = None,
    units: str | Sequence[str] | None = None,
    axes: str | None = None,
    labels: bool = False,
    overwrite: bool = False,
    compression: str = "zlib",
    level: int | None = None,
    predictor: bool = False,
    name: str | None = None,
) -> str:
    """Write an array as a compressed TIFF that keeps its voxel size.

    The file is an ImageJ hyperstack when the dtype allows (uint8, uint16, float32; Fiji then shows the
    calibration), OME-TIFF for other dtypes (Bio-Formats shows the calibration), and a tifffile "shaped"
    TIFF with the voxel size in its JSON description otherwise. Label images are first narrowed to the
    smallest integer dtype that holds every value, so most land in the ImageJ format. The data is written
    plane by plane, so dask / memmap input of any size works. The file appears atomically (written to a
    temporary name in the same folder, then renamed).

    Parameters
    ----------
    path : str or os.PathLike
        Target; ``.tif`` is appended when the name has no TIFF ending.
    data : array-like, shape (..., Y, X) or (..., Y, X, S)
        numpy, memmap, dask or zarr array. Booleans are written as uint8.
    scale : sequence of float, optional
        Voxel size per axis of ``data`` (default 1 for every axis). Entries for non-spatial axes such as C
        are ignored; T becomes the frame interval.
    units : str or sequence of str, optional
        One unit for every spatial axis (Z, Y, X, or I/Q stack axes), e.g. ``"nm"``, or one per axis of
        ``data``; ``""``/None means unknown.
    axes : str, optional
        tifffile axis letters of ``data``; default ``YX``, ``ZYX``, ``ZCYX`` (``TZYX`` for labels),
        ``TZCYX`` by dimension.
    labels : bool
        Write a label image: integer data required, stored lossless in the smallest dtype, marked so that
        :func:`read_tiff` re-opens it as labels.
    overwrite : bool
        Replace an existing file; otherwise raise FileExistsError.
    compression : str
        ``"zlib"`` (default; readable by Fiji), ``"zstd"``, ``"lzw"`` or ``"none"``.
    level : int, optional
        Compression level (zlib 1-9, zstd 1-22); default: the codec's own.
    predictor : bool
        Apply the horizontal-differencing predictor before compressing (about 15 % smaller for EM images;
        ImageJ and Bio-Formats read it). Integer data only; ignored without compression.
    name : str, optional
        Image name stored in OME / shaped metadata.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    FileNotFoundError
        If the target folder does not exist.
    ValueError
        If the name has a non-TIFF extension, the data has fewer than 2 axes, ``axes``/``scale``/``units``
        do not match the data, a scale entry is not a positive number, or labels are not integers.
    """
    path = Path(os.fspath(path))
    if not is_tiff_path(path):
        if path.suffix and path.suffix.lower() not in (".ome",):
            raise ValueError(f"{path}: write_tiff writes TIFF files; use a .tif or .tiff name")
        path = path.with_name(path.name + ".tif")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    shape = tuple(int(n) for n in data.shape)
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"{path}: need at least 2-D (Y, X) data, got shape {shape}")
    if min(shape) == 0:
        raise ValueError(f"{path}: cannot write empty data of shape {shape}")
    axes = (axes or _default_axes(ndim, labels)).upper()
    if len(axes) != ndim or len(set(axes)) != ndim or not axes.endswith(("YX", "YXS")):
        raise ValueError(
            f"{path}: axes {axes!r} do not fit data of shape {shape} (one letter per axis, ending YX)"
        )
    scale = [1.0] * ndim if scale is None else [float(s) for s in scale]
    if len(scale) != ndim:
        raise ValueError(f"{path}: scale {tuple(scale)} has {len(scale)} entries for {ndim}-D data {shape}")
    if not all(math.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"{path}: scale {tuple(scale)} must hold positive finite numbers")
    if units is None or isinstance(units, str):
        unit_list = [normalize_unit(units) if a in "ZYXIQ" else "" for a in axes]  # spatial axes only
    else:
        unit_list = [normalize_unit(u) for u in units]
        if len(unit_list) != ndim:
            raise ValueError(f"{path}: units {tuple(units)} have {len(unit_list)} entries for {ndim}-D data")
    per_axis = {a: (scale[i], unit_list[i]) for i, a in enumerate(axes)}

    dtype = np.dtype(data.dtype)
    if labels:
        if dtype.kind not in "iub":
            raise ValueError(f"{path}: labels must hold integers, got dtype {dtype}")
        dtype = _minimal_label_dtype(data)
    elif dtype == np.bool_:
        dtype = np.dtype(np.uint8)
    plane_ndim = 3 if axes.endswith("S") else 2
    planes = (np.ascontiguousarray(p, dtype=dtype) for p in _iter_planes(data, plane_ndim))
    software = f"{_SOFTWARE} {__version__}" + (f" {_LABELS_MARK}" if labels else "")
    compression_arg = None if compression.lower() == "none" else compression.lower()
    photometric = "rgb" if axes.endswith("S") and shape[-1] in (3, 4) else "minisblack"
    nbytes = math.prod(shape) * dtype.itemsize
    common = dict(
        shape=shape,
        dtype=dtype,
        compression=compression_arg,
        compressionargs={"level": level} if level is not None and compression_arg else None,
        # only the integer predictor: ImageJ cannot undo the floating-point one
        predictor="horizontal" if predictor and compression_arg and dtype.kind in "iu" else None,
        photometric=photometric,
        software=software,
    )
    if photometric == "rgb" and shape[-1] == 4:
        common["extrasamples"] = ("unassalpha",)

    ij_axes = _imagej_axes(axes)
    if dtype in _IMAGEJ_DTYPES and ij_axes is not None and nbytes < _IMAGEJ_MAX_BYTES:
        kwargs = _imagej_kwargs(axes, ij_axes, per_axis, labels)
    elif dtype in _OME_DTYPES:
        kwargs = _ome_kwargs(axes, per_axis, name or _strip_tiff_suffix(path.name), nbytes)
    else:
        kwargs = _shaped_kwargs(axes, scale, unit_list, name, labels, nbytes)

    # not mkstemp: its 0600 mode would stick to the final file; a random name avoids clashes just as well
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        tifffile.imwrite(tmp, data=planes, **common, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def _imagej_kwargs(axes: str, ij_axes: str, per_axis: dict, labels: bool) -> dict:
    xsize, xunit = per_axis["X"]
    ysize, yunit = per_axis["Y"]
    metadata: dict[str, Any] = {"axes": ij_axes, "unit": _imagej_unit(xunit)}
    if yunit != xunit:
        metadata["yunit"] = _imagej_unit(yunit)
    z_letter = next((a for a, b in zip(axes, ij_axes, strict=True) if b == "Z"), None)
    if z_letter is not None:
        zsize, zunit = per_axis[z_letter]
        metadata["spacing"] = zsize
        if zunit != xunit:
            metadata["zunit"] = _imagej_unit(zunit)
    if "T" in per_axis and per_axis["T"][0] != 1.0:
        metadata["finterval"] = per_axis["T"][0]
        if per_axis["T"][1]:
            metadata["tunit"] = _imagej_unit(per_axis["T"][1])
    if labels:
        # ImageJ would otherwise stretch the display between the smallest and largest label
        metadata["mode"] = "grayscale"
    return dict(imagej=True, resolution=(1.0 / xsize, 1.0 / ysize), metadata=metadata)


def _ome_kwargs(axes: str, per_axis: dict, name: str, nbytes: int) -> dict:
    metadata: dict[str, Any] = {"axes": axes, "Name": name}
    for letter in "XYZ":
        if letter in per_axis:
            size, unit = per_axis[letter]
            metadata[f"PhysicalSize{letter}"] = size
            # OME has no "unknown" length unit; 'pixel' is its honest spelling and reads back as unknown
            metadata[f"PhysicalSize{letter}Unit"] = unit or "pixel"
    if "T" in per_axis and per_axis["T"][0] != 1.0:
        metadata["TimeIncrement"] = per_axis["T"][0]
        metadata["TimeIncrementUnit"] = per_axis["T"][1] or "s"
    return dict(ome=True, metadata=metadata, bigtiff=nbytes >= _IMAGEJ_MAX_BYTES)


def _shaped_kwargs(axes: str, scale: list, units: list, name: str | None, labels: bool, nbytes: int) -> dict:
    ours = {"axes": axes, "scale": scale, "units": units, "kind": "labels" if labels else "image"}
    metadata: dict[str, Any] = {"axes": axes, "napari_unet": ours}
    if name:
        metadata["name"] = name
    return dict(metadata=metadata, bigtiff=nbytes >= _IMAGEJ_MAX_BYTES)
