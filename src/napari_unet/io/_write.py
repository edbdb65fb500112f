"""Writing compressed TIFFs that keep the voxel size.

ImageJ hyperstacks when the dtype allows (so Fiji shows the calibration), OME-TIFF for other dtypes, and
tifffile's JSON "shaped" format as a last resort. Files written with ``labels=True`` carry
``napari-unet <version> labels`` in the Software tag, which the reader recognises so they re-open as labels
whatever their name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_unet import __version__
from napari_unet.dtypes import labels_dtype
from napari_unet.io._atomic import atomic_path
from napari_unet.io._paths import LABELS_MARK, SOFTWARE, is_tiff_path, strip_tiff_suffix
from napari_unet.io._units import normalize_unit

__all__ = ["write_tiff"]

# ImageJ hyperstacks hold only these dtypes; other dtypes go to OME-TIFF.
_IMAGEJ_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))
_OME_DTYPES = tuple(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
)
# ImageJ cannot read BigTIFF; stay below 4 GiB with some room for the IFDs.
_IMAGEJ_MAX_BYTES = (1 << 32) - (1 << 25)

# What the ImageJ writer puts in the description: ImageJ's own spelling, ASCII only.
_IMAGEJ_UNIT_NAMES = {"µm": "micron", "Å": "\\u00C5", "µs": "\\u00B5s", "": "pixel"}

_DEFAULT_AXES = {2: "YX", 3: "ZYX", 5: "TZCYX"}


# ------------------------------------------------------------------------------------------- checking the input


def _target_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """The file to write (``.tif`` appended when the name has no TIFF ending), checked against the disk."""
    path = Path(os.fspath(path))
    if not is_tiff_path(path):
        if path.suffix and path.suffix.lower() not in (".ome",):
            raise ValueError(f"{path}: write_tiff writes TIFF files; use a .tif or .tiff name")
        path = path.with_name(path.name + ".tif")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    return path


def _default_axes(ndim: int, labels: bool) -> str:
    if ndim == 4:
        # labels have no channels; an image's extra axis is the engine's channel axis (Z, C, Y, X)
        return "TZYX" if labels else "ZCYX"
    if ndim not in _DEFAULT_AXES:
        raise ValueError(f"cannot guess axis names for {ndim}-D data; pass axes=, e.g. 'TZCYX'")
    return _DEFAULT_AXES[ndim]


def _checked_axes(path: Path, shape: tuple[int, ...], axes: str | None, labels: bool) -> str:
    """Upper-case axis letters for data of ``shape`` (guessed when None); ValueError when they do not fit."""
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
    return axes


def _checked_scale_units(
    path: Path,
    shape: tuple[int, ...],
    axes: str,
    scale: Sequence[float] | None,
    units: str | Sequence[str] | None,
) -> tuple[list[float], list[str]]:
    """One positive voxel size and one unit per axis; a single unit applies to the spatial axes only."""
    ndim = len(shape)
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
    return scale, unit_list


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
        return labels_dtype(high)
    for candidate in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return dtype  # pragma: no cover - int64 always fits


def _output_dtype(path: Path, data: Any, labels: bool) -> np.dtype:
    """The dtype written: labels narrowed to the smallest integer dtype, booleans as uint8."""
    dtype = np.dtype(data.dtype)
    if labels:
        if dtype.kind not in "iub":
            raise ValueError(f"{path}: labels must hold integers, got dtype {dtype}")
        return _minimal_label_dtype(data)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    return dtype


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


# ------------------------------------------------------------------------------------ the three file formats


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


def _format_kwargs(
    path: Path,
    axes: str,
    scale: list[float],
    unit_list: list[str],
    dtype: np.dtype,
    nbytes: int,
    labels: bool,
    name: str | None,
) -> dict:
    """tifffile arguments of the richest format that holds this data: ImageJ, else OME, else shaped."""
    per_axis = {a: (scale[i], unit_list[i]) for i, a in enumerate(axes)}
    ij_axes = _imagej_axes(axes)
    if dtype in _IMAGEJ_DTYPES and ij_axes is not None and nbytes < _IMAGEJ_MAX_BYTES:
        return _imagej_kwargs(axes, ij_axes, per_axis, labels)
    if dtype in _OME_DTYPES:
        return _ome_kwargs(axes, per_axis, name or strip_tiff_suffix(path.name), nbytes)
    return _shaped_kwargs(axes, scale, unit_list, name, labels, nbytes)


def _common_kwargs(
    shape: tuple[int, ...],
    axes: str,
    dtype: np.dtype,
    *,
    labels: bool,
    compression: str,
    level: int | None,
    predictor: bool,
) -> dict:
    """tifffile arguments every format shares: shape, dtype, codec, photometric, our Software tag."""
    compression_arg = None if compression.lower() == "none" else compression.lower()
    photometric = "rgb" if axes.endswith("S") and shape[-1] in (3, 4) else "minisblack"
    common = dict(
        shape=shape,
        dtype=dtype,
        compression=compression_arg,
        compressionargs={"level": level} if level is not None and compression_arg else None,
        # only the integer predictor: ImageJ cannot undo the floating-point one
        predictor="horizontal" if predictor and compression_arg and dtype.kind in "iu" else None,
        photometric=photometric,
        software=f"{SOFTWARE} {__version__}" + (f" {LABELS_MARK}" if labels else ""),
    )
    if photometric == "rgb" and shape[-1] == 4:
        common["extrasamples"] = ("unassalpha",)
    return common


def _write_atomically(path: Path, planes: Iterator[np.ndarray], kwargs: dict) -> None:
    """Write to a temporary name in the same folder, then rename: the file appears whole or not at all."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data=planes, **kwargs)


# ---------------------------------------------------------------------------------------------------- the API


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
    path = _target_path(path, overwrite)
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    shape = tuple(int(n) for n in data.shape)
    axes = _checked_axes(path, shape, axes, labels)
    scale, unit_list = _checked_scale_units(path, shape, axes, scale, units)
    dtype = _output_dtype(path, data, labels)
    nbytes = math.prod(shape) * dtype.itemsize
    common = _common_kwargs(
        shape, axes, dtype, labels=labels, compression=compression, level=level, predictor=predictor
    )
    kwargs = _format_kwargs(path, axes, scale, unit_list, dtype, nbytes, labels, name)
    plane_ndim = 3 if axes.endswith("S") else 2
    planes = (np.ascontiguousarray(p, dtype=dtype) for p in _iter_planes(data, plane_ndim))
    _write_atomically(path, planes, {**common, **kwargs})
    return str(path)
