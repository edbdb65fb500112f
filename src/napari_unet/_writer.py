"""napari writer for Labels layers (npe2 ``napari_unet._writer:write_labels``); no Qt, no torch.

Saves a Labels layer as a compressed TIFF that keeps the layer's scale and units and re-opens through
napari-unet's reader as Labels with the same scale (see :func:`napari_unet.io.write_tiff`).
"""

from __future__ import annotations

from typing import Any

from napari_unet.io import normalize_unit, write_tiff

__all__ = ["write_labels"]


def _units_from(meta: dict, ndim: int) -> list[str] | None:
    """Units per axis: the layer's own (napari >= 0.6 ``units``), else those napari-unet's reader stored."""
    units = meta.get("units")
    if units is not None and not isinstance(units, str) and len(units) == ndim:
        found = [normalize_unit(u) for u in units]
        if any(found):
            return found
    stored = (meta.get("metadata") or {}).get("units")
    if isinstance(stored, list | tuple) and len(stored) == ndim:
        return [normalize_unit(u) for u in stored]
    return None


def _axes_from(meta: dict, ndim: int) -> str | None:
    axes = (meta.get("metadata") or {}).get("axes")
    if isinstance(axes, str) and len(axes) == ndim and "S" not in axes and axes.endswith("YX"):
        return axes
    return None


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer to a compressed TIFF (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        Target chosen by the user; ``.tif`` is appended when it has no TIFF ending. An existing file is
        replaced: napari's save dialog has already asked the user (npe2 writer contract).
    data : array-like or list of array-like
        The layer's data, ``(..., Y, X)`` integers; for multiscale labels the full-resolution level is written.
    meta : dict
        The layer's attributes; ``scale`` and ``units`` (or the ``metadata`` napari-unet's reader stored:
        ``units``, ``axes``) are kept, ``name`` becomes the image name.

    Returns
    -------
    list of str
        The one path written.

    Raises
    ------
    ValueError
        If the data are not integers or do not match the scale (message names the file).
    """
    if isinstance(data, list):
        data = data[0]
    ndim = len(data.shape)
    scale = meta.get("scale")
    if scale is not None and len(scale) != ndim:
        scale = None
    written = write_tiff(
        path,
        data,
        scale=scale,
        units=_units_from(meta, ndim),
        axes=_axes_from(meta, ndim),
        labels=True,
        overwrite=True,
        name=meta.get("name"),
    )
    return [written]
