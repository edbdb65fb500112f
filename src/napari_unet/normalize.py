"""Intensity normalisation shared by training and prediction (numpy only).

The training image fixes two absolute intensities, ``low`` and ``high`` (by default its 1st and 99.8th
percentiles), and every slice, at training and at prediction time, is mapped with ``(x - low) / (high - low)``.
Storing absolute values in the checkpoint, rather than re-computing percentiles per image, keeps the mapping
identical between training and prediction: a new stack with a slightly different histogram is fed to the network
the way the training stack was. Values are not clipped: a bright artefact stays bright instead of being
flattened into the foreground intensity.

The percentiles are estimated from at most ``max_slices`` evenly spaced slices, each read on its own and
subsampled on a regular grid, so a lazy (dask, zarr, memmap) stack of any size costs a few slice reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["normalization_from_image", "apply_normalization", "NORMALIZATION_MODES"]

NORMALIZATION_MODES = ("percentile", "none")

# Pixels kept per sampled slice: enough for percentiles accurate to well below one grey level of uint8 EM,
# small enough that 16 slices of 8k x 8k cost ~64 MB of float32 rather than 4 GB.
_MAX_PIXELS_PER_SLICE = 1 << 20


def _sample_slices(image: Any, max_slices: int) -> list[np.ndarray]:
    """Read up to ``max_slices`` evenly spaced (…, Y, X) planes of ``image``, strided to bounded size."""
    shape = tuple(image.shape)
    if len(shape) < 2:
        raise ValueError(f"expected an image with at least 2 axes (Y, X), got shape {shape}")
    ny, nx = shape[-2:]
    if ny == 0 or nx == 0 or math.prod(shape) == 0:
        raise ValueError(f"cannot compute a normalisation from an empty image of shape {shape}")
    stride = max(1, math.ceil(math.sqrt(ny * nx / _MAX_PIXELS_PER_SLICE)))
    lead = shape[:-2]
    n_planes = math.prod(lead) if lead else 1
    if n_planes <= max_slices:
        flat = range(n_planes)
    else:
        flat = sorted(set(np.linspace(0, n_planes - 1, max_slices).round().astype(int).tolist()))
    samples = []
    for k in flat:
        index = np.unravel_index(k, lead) if lead else ()
        # Index one plane at a time: for dask/zarr/memmap this reads only that plane.
        plane = image[tuple(int(i) for i in index) + (slice(None, None, stride), slice(None, None, stride))]
        samples.append(np.asarray(plane).ravel())
    return samples


def normalization_from_image(
    image: Any, *, low_pct: float = 1.0, high_pct: float = 99.8, max_slices: int = 16
) -> dict:
    """Percentile normalisation parameters of an image, from a sample of its slices.

    Parameters
    ----------
    image : array-like
        ``(Y, X)``, ``(Z, Y, X)`` or with more leading axes (e.g. ``(Z, C, Y, X)``); numpy, memmap, dask or zarr.
        Only sampled planes are read.
    low_pct, high_pct : float
        Percentiles (0-100) mapped to 0 and 1; ``low_pct < high_pct``.
    max_slices : int
        At most this many evenly spaced planes are read.

    Returns
    -------
    dict
        ``{"mode": "percentile", "low": float, "high": float, "low_pct": float, "high_pct": float}`` with
        ``low``/``high`` absolute intensities. For a constant image ``high = low + 1`` so that the image maps to 0
        instead of dividing by zero.

    Raises
    ------
    ValueError
        For percentiles out of order or range, an empty image, or an image without any finite value.
    """
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got low_pct={low_pct}, high_pct={high_pct}")
    if int(max_slices) < 1:
        raise ValueError(f"max_slices must be >= 1, got {max_slices}")
    values = np.concatenate(_sample_slices(image, int(max_slices)))
    if values.dtype.kind == "c":
        raise ValueError(f"complex images are not supported (dtype {values.dtype})")
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("cannot compute a normalisation: the sampled slices contain no finite value")
    low, high = np.percentile(values.astype(np.float64, copy=False), [low_pct, high_pct])
    low, high = float(low), float(high)
    if not high > low:
        high = low + 1.0
    return {
        "mode": "percentile",
        "low": low,
        "high": high,
        "low_pct": float(low_pct),
        "high_pct": float(high_pct),
    }


def _fill_non_finite(out: np.ndarray) -> None:
    """Replace NaN / infinite pixels in place by the mean of the finite ones (per channel plane when the array
    is ``(C, Y, X)``-like), so the network sees a neutral grey there and the loss stays finite."""
    bad = ~np.isfinite(out)
    if not bad.any():
        return
    planes = out.reshape(-1, *out.shape[-2:]) if out.ndim >= 2 else out.reshape(1, -1)
    masks = bad.reshape(planes.shape)
    for plane, mask in zip(planes, masks, strict=True):
        if mask.any():
            finite = plane[~mask]
            plane[mask] = finite.mean(dtype=np.float64) if finite.size else 0.0


def apply_normalization(array: Any, normalization: dict) -> np.ndarray:
    """Map intensities with ``(x - low) / (high - low)`` as float32.

    Parameters
    ----------
    array : array-like
        Any shape; one slice ``(Y, X)`` or ``(C, Y, X)`` at prediction time. Dask/zarr inputs are read in full.
    normalization : dict
        As returned by :func:`normalization_from_image` (``mode`` "percentile" with absolute ``low``/``high``),
        or ``{"mode": "none"}`` for a plain float32 cast. ``low``/``high`` may also be per-channel sequences,
        broadcast over axis -3 (the channel axis).

    Returns
    -------
    np.ndarray
        float32 array of the input's shape (a new array; the input is never modified). NaN / infinite pixels
        take the mean of the plane's finite pixels (a 2-D plane's, or each channel's) before the mapping.

    Raises
    ------
    ValueError
        For an unknown mode, missing ``low``/``high`` or ``high <= low``.
    """
    if not isinstance(normalization, dict):
        raise ValueError(f"normalization must be a dict, got {type(normalization).__name__}")
    mode = normalization.get("mode", "percentile")
    if mode not in NORMALIZATION_MODES:
        raise ValueError(f"unknown normalization mode {mode!r}; expected one of {NORMALIZATION_MODES}")
    out = np.array(array, dtype=np.float32, copy=True)
    _fill_non_finite(out)
    if mode == "none":
        return out
    try:
        low = np.asarray(normalization["low"], dtype=np.float64)
        high = np.asarray(normalization["high"], dtype=np.float64)
    except KeyError as err:
        raise ValueError(
            f"percentile normalization needs 'low' and 'high', got keys {sorted(normalization)}"
        ) from err
    if np.any(~(high > low)):
        raise ValueError(f"normalization needs high > low, got low={low.tolist()}, high={high.tolist()}")
    if low.ndim == 1:
        # Per-channel values broadcast over the channel axis (-3) of (..., C, Y, X).
        if out.ndim < 3 or out.shape[-3] != low.size:
            raise ValueError(
                f"{low.size} per-channel normalisation values do not match array shape {out.shape} "
                f"(channels on axis -3)"
            )
        low = low[:, None, None]
        high = high[:, None, None]
    scale = (1.0 / (high - low)).astype(np.float32)
    out -= low.astype(np.float32)
    out *= scale
    return out
