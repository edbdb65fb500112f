"""Display contrast limits estimated from a few planes, never from the whole (possibly lazy) stack."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["estimate_contrast_limits"]

# Contrast estimation reads at most this many bytes per sampled plane (a centred window on huge planes).
_MAX_SAMPLE_BYTES = 16 << 20
_N_CONTRAST_PLANES = 5


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
