"""Voxel size of a TIFF series, from (in this order of trust) OME-XML, ImageJ metadata, the JSON our writer
stores in tifffile "shaped" files, and plain TIFF resolution tags when their unit is meaningful for a microscope.

Every parser returns ``{axis letter: (size, unit)}`` with units spelled by :func:`normalize_unit`.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from typing import Any

import tifffile

from napari_unet.io._units import normalize_unit

__all__ = ["ome_channel_names", "voxel_size"]

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


# ------------------------------------------------------------------------------------------------------ OME-XML


def _local_name(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _ome_images(tif: tifffile.TiffFile) -> list[ET.Element]:
    """The ``Image`` elements of the file's OME-XML (empty when there is none or it does not parse)."""
    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError:
        return []
    return [el for el in root if _local_name(el) == "Image"]


def _ome_pixels(image: ET.Element) -> ET.Element | None:
    return next((el for el in image if _local_name(el) == "Pixels"), None)


def _voxel_from_ome(tif: tifffile.TiffFile, series: Any, index: int) -> dict[str, tuple[float, str]]:
    images = _ome_images(tif)
    if not images:
        return {}
    named = [el for el in images if series.name and el.get("Name") == series.name]
    image = named[0] if len(named) == 1 else images[min(index, len(images) - 1)]
    pixels = _ome_pixels(image)
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


def ome_channel_names(tif: tifffile.TiffFile, index: int) -> list[str]:
    """Channel names of OME image ``index`` (empty when absent or all blank)."""
    images = _ome_images(tif)
    if index >= len(images):
        return []
    pixels = _ome_pixels(images[index])
    if pixels is None:
        return []
    names = [ch.get("Name", "") for ch in pixels if _local_name(ch) == "Channel"]
    return names if any(names) else []


# ------------------------------------------------------------------------------------- ImageJ, ours, plain tags


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


def voxel_size(tif: tifffile.TiffFile, series: Any, index: int) -> tuple[dict[str, tuple[float, str]], str]:
    """Voxel size of series ``index`` of ``tif`` and where it came from.

    Returns
    -------
    sizes : dict
        ``{axis letter: (size, unit)}`` for the axes whose size is known.
    source : str
        ``"ome"``, ``"imagej"``, ``"napari-unet"``, ``"resolution-tags"`` or ``"none"``.
    """
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
