"""Where the model is unsure: normalised entropy of its class probabilities, and the slices worth painting next.

Pure numpy, no torch. The U-Net's softmax already says how sure it is at every pixel; the normalised entropy
``H(p) / log K`` turns that into one map in [0, 1] (0: one class has all the probability, 1: all K classes are
equally likely). :func:`rank_slices` reads such a map slice by slice and names the few slices - and in each the
window - where the model is least sure, leaving out what the user has already painted densely: the annotation loop
of ilastik's uncertainty view, for a U-Net.

Disagreement across test-time flips is not offered: the engine's TTA averages the eight flips inside one forward
call and hands back only the mean, so a disagreement map would cost eight separate predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DENSE_SHARE",
    "PIXEL_BUDGET",
    "SliceSuggestion",
    "entropy",
    "entropy_map",
    "rank_slices",
    "sample_slices",
]

DENSE_SHARE = 0.5
"""A slice with at least this share of its pixels annotated counts as densely annotated: never suggested again."""

PIXEL_BUDGET = 8 * 1024 * 1024
""":func:`sample_slices` picks about this many pixels' worth of slices to predict (at most ``max_slices``, at least
``min_slices``): 16 slices of 512 x 512, 3 of 2048 x 2048."""

_EPS = 1e-12


def entropy(probabilities: Any, *, axis: int = 0) -> np.ndarray:
    """Normalised entropy ``-sum(p log p) / log K`` of class probabilities along ``axis``.

    Parameters
    ----------
    probabilities : array-like, float
        Class probabilities summing to 1 along ``axis`` (e.g. ``(K, Y, X)`` with ``axis=0``).
    axis : int
        The class axis.

    Returns
    -------
    float32 array, the input's shape without ``axis``
        In [0, 1]; all zeros for a single class.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    k = p.shape[axis]
    if k < 2:
        return np.zeros(np.delete(p.shape, axis), np.float32)
    p = np.clip(p, _EPS, 1.0)
    h = -(p * np.log(p)).sum(axis=axis) / np.float32(np.log(k))
    return np.clip(h, 0.0, 1.0).astype(np.float32, copy=False)


def entropy_map(probabilities: Any, out: Any = None) -> Any:
    """The normalised entropy of ``predict_stack``'s probabilities, slice by slice.

    Parameters
    ----------
    probabilities : (Z, K, Y, X) or (K, Y, X) float array-like
        One slice is read at a time, so a zarr or memmap array bigger than memory works.
    out : (Z, Y, X) or (Y, X) float array-like, optional
        Receives the map (a zarr array for big stacks); a new float32 array when omitted.

    Returns
    -------
    ``out``, filled with values in [0, 1]
    """
    shape = tuple(int(s) for s in probabilities.shape)
    spatial = shape[:-3] + shape[-2:]
    if out is None:
        out = np.zeros(spatial, np.float32)
    elif tuple(out.shape) != spatial:
        raise ValueError(f"out has shape {tuple(out.shape)}, the probabilities' slices {spatial}")
    if len(shape) == 3:
        out[...] = entropy(probabilities, axis=0)
        return out
    for z in range(shape[0]):
        out[z] = entropy(probabilities[z], axis=0)
    return out


@dataclass(frozen=True)
class SliceSuggestion:
    """One slice worth painting next.

    Attributes
    ----------
    z : int
        Index of the slice in the stack (0 for a single 2D image).
    score : float
        Mean uncertainty (normalised entropy, 0..1) over the slice's pixels that are not annotated yet.
    box : (y0, y1, x0, x1)
        Pixel bounds (end exclusive) of the window of the slice where the model is least sure.
    box_score : float
        Mean uncertainty over that window's unannotated pixels.
    annotated : float
        Share of the slice's pixels already annotated (below :data:`DENSE_SHARE`, else it would not be here).
    """

    z: int
    score: float
    box: tuple[int, int, int, int]
    box_score: float
    annotated: float

    @property
    def center(self) -> tuple[float, float]:
        """(y, x) pixel coordinates of the window's centre."""
        y0, y1, x0, x1 = self.box
        return ((y0 + y1 - 1) / 2.0, (x0 + x1 - 1) / 2.0)

    def text(self) -> str:
        """One line for a list: ``slice 7 — 0.41``."""
        return f"slice {self.z} — {self.score:.2f}"


def sample_slices(
    shape: Sequence[int],
    labels: Any = None,
    *,
    max_slices: int = 16,
    min_slices: int = 3,
    pixel_budget: int = PIXEL_BUDGET,
    dense: float = DENSE_SHARE,
) -> list[int]:
    """Which slices of a stack to predict for :func:`rank_slices`: evenly spread over those not densely annotated.

    Ranking needs the model's opinion on a few slices, not on all of them: about ``pixel_budget`` pixels' worth
    (between ``min_slices`` and ``max_slices``), spread evenly so that every part of the stack is looked at. The
    slices are predicted at full resolution: a U-Net trained at one pixel size says little about a downscaled image.

    Parameters
    ----------
    shape : (Z, Y, X) or (Y, X)
    labels : array-like of ``shape``, optional
        The annotations (0 = not annotated); slices with at least ``dense`` of their pixels annotated are skipped.

    Returns
    -------
    sorted list of int
        Z indices (``[0]`` for a 2D image; empty when every slice is densely annotated).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return [0] if labels is None or _annotated_share(labels) < dense else []
    candidates = [z for z in range(shape[0]) if labels is None or _annotated_share(labels[z]) < dense]
    per_slice = max(1, shape[-2] * shape[-1])
    n = int(np.clip(pixel_budget // per_slice, min_slices, max_slices))
    if len(candidates) <= n:
        return candidates
    picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, n)).astype(int))
    return [candidates[i] for i in picks]


def _annotated_share(plane: Any) -> float:
    plane = np.asarray(plane)
    return float(np.count_nonzero(plane)) / max(1, plane.size)


def rank_slices(
    uncertainty: Any,
    labels: Any = None,
    k: int = 5,
    *,
    slices: Sequence[int] | None = None,
    window: int | None = None,
    dense: float = DENSE_SHARE,
) -> list[SliceSuggestion]:
    """The ``k`` slices where the model is least sure, each with its most uncertain window.

    Parameters
    ----------
    uncertainty : (N, Y, X) or (Y, X) float array-like
        An uncertainty map in [0, 1] (e.g. :func:`entropy_map`), of the whole stack or of the slices ``slices``.
    labels : (Z, Y, X) or (Y, X) array-like, optional
        The annotations of the whole stack (0 = not annotated). Annotated pixels do not count (the model was
        trained there), and slices with at least ``dense`` of their pixels annotated are skipped.
    k : int
        How many slices to return at most.
    slices : sequence of int, optional
        The Z index of each plane of ``uncertainty`` when it holds only some slices (see :func:`sample_slices`);
        default ``0 .. N - 1``.
    window : int, optional
        Side of the window in pixels; default a quarter of the slice's shorter side (at least 16, at most the
        slice).

    Returns
    -------
    list of SliceSuggestion
        Most uncertain first; ties keep the lower Z first.
    """
    u = uncertainty
    planes = [u] if u.ndim == 2 else [u[i] for i in range(u.shape[0])]
    zs = list(range(len(planes))) if slices is None else [int(z) for z in slices]
    if len(zs) != len(planes):
        raise ValueError(f"{len(zs)} slice indices for {len(planes)} uncertainty planes")
    found = []
    for z, plane in zip(zs, planes, strict=True):
        plane = np.asarray(plane, dtype=np.float64)
        if labels is None:
            free = np.ones(plane.shape, bool)
        else:
            free = np.asarray(labels if labels.ndim == 2 else labels[z]) == 0
        annotated = 1.0 - float(free.mean()) if free.size else 0.0
        if annotated >= dense or not free.any():
            continue
        score = float(plane[free].mean())
        box, box_score = _worst_window(plane, free, window)
        found.append(SliceSuggestion(z, score, box, box_score, annotated))
    found.sort(key=lambda s: (-s.score, s.z))
    return found[: max(0, int(k))]


def _worst_window(
    plane: np.ndarray, free: np.ndarray, window: int | None
) -> tuple[tuple[int, int, int, int], float]:
    """The window (inside the slice) with the highest mean uncertainty over its unannotated pixels.

    Summed-area tables give every window's sums at once; windows with under half their pixels free are left out
    (a window that is mostly painted is not where to paint next) unless no window has that many.
    """
    ny, nx = plane.shape
    side = window if window is not None else max(16, min(ny, nx) // 4)
    wy, wx = min(int(side), ny), min(int(side), nx)
    values = _window_sums(np.where(free, plane, 0.0), wy, wx)
    counts = _window_sums(free.astype(np.float64), wy, wx)
    enough = counts >= 0.5 * wy * wx
    if not enough.any():
        enough = counts > 0
    mean = np.where(enough, values / np.maximum(counts, 1.0), -1.0)
    y0, x0 = np.unravel_index(int(np.argmax(mean)), mean.shape)
    return (int(y0), int(y0) + wy, int(x0), int(x0) + wx), float(mean[y0, x0])


def _window_sums(a: np.ndarray, wy: int, wx: int) -> np.ndarray:
    """Sums of ``a`` over every ``wy`` x ``wx`` window inside it, indexed by the window's top-left pixel."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    return s[wy:, wx:] - s[:-wy, wx:] - s[wy:, :-wx] + s[:-wy, :-wx]
