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

This module is the face; the work lives in private files, imports going down the list:

- ``_paths``: file names (TIFF endings, labels-like stems), our Software mark, the lazy threshold;
- ``_units``: one spelling per unit (:func:`normalize_unit`);
- ``_voxel``: voxel size from OME-XML, ImageJ metadata, our JSON, resolution tags;
- ``_open``: opening and checking a file before any pixel is read (:class:`TiffReadError`);
- ``_lazy``: memory maps and dask arrays over tifffile's Zarr store;
- ``_contrast``: contrast limits from a few planes;
- ``_read``: :class:`TiffImage`, :func:`read_tiff`, :func:`read_array`;
- ``_describe``: :func:`describe_tiff`;
- ``_write``: :func:`write_tiff`.
"""

from __future__ import annotations

from napari_unet.io._contrast import estimate_contrast_limits
from napari_unet.io._describe import describe_tiff
from napari_unet.io._open import TiffReadError
from napari_unet.io._paths import DEFAULT_LAZY_BYTES as DEFAULT_LAZY_BYTES
from napari_unet.io._paths import DEFAULT_LAZY_RAM_FRACTION as DEFAULT_LAZY_RAM_FRACTION
from napari_unet.io._paths import (
    LABELS_SUFFIXES,
    LAZY_BYTES_ENV,
    LAZY_RAM_FRACTION_ENV,
    TIFF_SUFFIXES,
    is_labels_name,
    is_tiff_path,
    lazy_threshold,
)
from napari_unet.io._read import TiffImage, read_array, read_tiff
from napari_unet.io._units import normalize_unit
from napari_unet.io._write import write_tiff

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
