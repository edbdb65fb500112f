"""Per-object measurements of an instance stack (the features table): size in physical units, centroid, mean
probability, sections spanned. Accumulated slice by slice, so the stack may be a memmap / dask / zarr array."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..io._atomic import atomic_open

__all__ = ["measure_objects", "measurement_headers", "write_measurements_csv"]


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    return a if len(a) >= n else np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:], a.dtype)])


def measure_objects(
    instances: Any, probability: Any = None, *, voxel_size: Sequence[float] | None = None
) -> dict[str, np.ndarray]:
    """One row per object: label, size, centroid, mean probability, number of slices.

    Parameters
    ----------
    instances : (Y, X) or (Z, Y, X) integer array-like
        Instance ids (0 = background).
    probability : array-like of the same shape, optional
        Probability of the object class; the ``mean_probability`` column is NaN without it.
    voxel_size : sequence of float, optional
        ``(Z, Y, X)`` (or ``(Y, X)``) size of a voxel in physical units (all 1: pixels).

    Returns
    -------
    dict of str -> 1D array (columns of equal length, sorted by label)
        ``label``; ``volume`` (stack) or ``area`` (2D image), in voxel-size units cubed / squared;
        ``centroid_z`` (stack only), ``centroid_y``, ``centroid_x`` in physical units from the origin;
        ``mean_probability``; ``n_slices`` (sections the object appears on; 1 for a 2D image).
    """
    is_stack = instances.ndim == 3
    planes = range(instances.shape[0]) if is_stack else [None]
    size = np.asarray(voxel_size if voxel_size is not None else (1.0,) * instances.ndim, float)[
        -instances.ndim :
    ]
    count = np.zeros(1, np.int64)
    sums = np.zeros((1, 3), np.float64)  # z, y, x pixel coordinate sums
    psum = np.zeros(1, np.float64)
    slices = np.zeros(1, np.int64)
    for z in planes:
        lab = np.asarray(instances[z] if z is not None else instances).astype(np.int64, copy=False)
        n = int(lab.max()) + 1 if lab.size else 1
        count, sums, psum, slices = (_grow(a, n) for a in (count, sums, psum, slices))
        flat = lab.ravel()
        c = np.bincount(flat, minlength=n)
        count[:n] += c
        yy, xx = np.indices(lab.shape)
        sums[:n, 0] += c * (z or 0)
        sums[:n, 1] += np.bincount(flat, weights=yy.ravel(), minlength=n)
        sums[:n, 2] += np.bincount(flat, weights=xx.ravel(), minlength=n)
        if probability is not None:
            p = np.asarray(probability[z] if z is not None else probability, dtype=np.float64).ravel()
            psum[:n] += np.bincount(flat, weights=p, minlength=n)
        slices[:n] += c > 0
    ids = np.flatnonzero(count)
    ids = ids[ids > 0]
    n_vox = count[ids].astype(np.float64)
    centroid = sums[ids] / n_vox[:, None]
    table: dict[str, np.ndarray] = {"label": ids.astype(np.int64)}
    table["volume" if is_stack else "area"] = n_vox * float(np.prod(size))
    if is_stack:
        table["centroid_z"] = centroid[:, 0] * size[0]
    table["centroid_y"] = centroid[:, 1] * size[-2]
    table["centroid_x"] = centroid[:, 2] * size[-1]
    table["mean_probability"] = psum[ids] / n_vox if probability is not None else np.full(len(ids), np.nan)
    table["n_slices"] = slices[ids]
    return table


def measurement_headers(table: dict[str, np.ndarray], unit: str | None = None) -> list[str]:
    """Column headers with their units, e.g. ``volume (µm^3)``, ``centroid_x (µm)``; pixels when no unit."""
    unit = unit or "px"
    power = {"volume": "^3", "area": "^2"}
    out = []
    for key in table:
        if key in power:
            out.append(f"{key} ({unit}{power[key]})")
        elif key.startswith("centroid_"):
            out.append(f"{key} ({unit})")
        else:
            out.append(key)
    return out


def write_measurements_csv(
    path: str | os.PathLike, table: dict[str, np.ndarray], unit: str | None = None
) -> None:
    """Write :func:`measure_objects`' table as CSV, one row per object, units in the header."""
    keys = list(table)
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(measurement_headers(table, unit))
        for row in zip(*(table[k] for k in keys), strict=True):
            writer.writerow(
                [
                    int(v) if k in ("label", "n_slices") else f"{float(v):.6g}"
                    for k, v in zip(keys, row, strict=True)
                ]
            )
