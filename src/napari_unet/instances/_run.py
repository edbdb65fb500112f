"""The stack driver: objects of one class over a whole stack, slice by slice (2D + link) or as one volume (3D).

:func:`instances_from_probability` is a generator (house rule 3): it yields an :class:`InstanceProgress` after
every slice and returns an :class:`InstanceResult`; :func:`instances_from_probability_sync` drains it. In 2D mode
only one slice of probabilities and two slices of labels are held at a time, so ``probability`` may be a memmap,
dask or zarr array and ``out`` a memmap or zarr array bigger than memory.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..generators import drain
from ._config import InstanceConfig
from ._link import IdCounter, link_to_previous
from ._watershed import watershed_objects

__all__ = [
    "ANISOTROPY_FOR_2D",
    "InstanceProgress",
    "InstanceResult",
    "class_probability",
    "instances_from_probability",
    "instances_from_probability_sync",
    "resolve_mode",
]

ANISOTROPY_FOR_2D = 2.0
"""``mode="auto"`` works section by section (2D + link) when the Z step exceeds this many times the XY pixel."""


@dataclass(frozen=True)
class InstanceProgress:
    """One step of :func:`instances_from_probability`: ``done`` of ``total`` slices, objects so far."""

    done: int
    total: int
    n_objects: int
    mode: str

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class InstanceResult:
    """What :func:`instances_from_probability` returns.

    Attributes
    ----------
    labels : uint32 array (or the ``out`` array given)
        Instance ids, unique over the whole stack; 0 = background.
    n_objects : int
        Ids used: the objects are ``1 .. n_objects``.
    mode : str
        ``"2d"`` (per slice, linked across sections unless ``link=False``) or ``"3d"``.
    seconds : float
        Wall time.
    """

    labels: Any
    n_objects: int
    mode: str
    seconds: float


def resolve_mode(mode: str, voxel_size: Sequence[float] | None, ndim: int) -> str:
    """``"2d"`` or ``"3d"`` for ``mode`` in ``auto`` / ``2d`` / ``3d`` (also ``no`` / ``yes``).

    ``auto`` picks 3D for a stack whose Z step is at most :data:`ANISOTROPY_FOR_2D` times its finest XY pixel
    (FIB-SEM), 2D + link otherwise (serial sections) and for a single image. Without a voxel size (unknown)
    a stack gets 2D + link too: it is right for serial sections and still sound on isotropic data, whereas a 3D
    watershed across 50 nm sections would merge neighbours.

    Raises
    ------
    ValueError
        An unknown mode, or ``3d`` for a 2D image.
    """
    mode = {"yes": "3d", "no": "2d"}.get(str(mode).lower(), str(mode).lower())
    if mode not in ("auto", "2d", "3d"):
        raise ValueError(f"instance mode must be auto, 2d or 3d (yes / no), got {mode!r}")
    if ndim == 2:
        if mode == "3d":
            raise ValueError("3D instances need a (Z, Y, X) stack, got a single 2D image")
        return "2d"
    if mode != "auto":
        return mode
    if voxel_size is None or len(voxel_size) < 3:
        return "2d"
    z, y, x = (float(v) for v in voxel_size[-3:])
    return "2d" if z > ANISOTROPY_FOR_2D * min(y, x) else "3d"


def class_probability(probabilities: Any, label_values: Sequence[int], value: int) -> Any:
    """The probability of the class written as ``value``, out of ``predict_stack``'s per-class probabilities.

    Parameters
    ----------
    probabilities : (Z, K, Y, X) or (K, Y, X) array-like
    label_values : sequence of int
        Label value of each of the K classes (the checkpoint's ``label_values``).
    value : int
        The object class.

    Returns
    -------
    (Z, Y, X) or (Y, X) array-like (a view: nothing is read yet)

    Raises
    ------
    ValueError
        ``value`` is not one of ``label_values``.
    """
    values = [int(v) for v in label_values]
    if int(value) not in values:
        raise ValueError(f"label value {value} is not a class of the model; its classes are {values}")
    k = values.index(int(value))
    return probabilities[:, k] if probabilities.ndim == 4 else probabilities[k]


def instances_from_probability(
    probability: Any,
    *,
    voxel_size: Sequence[float] | None = None,
    mode: str = "auto",
    config: InstanceConfig | None = None,
    link: bool = True,
    out: Any = None,
) -> Generator[InstanceProgress, None, InstanceResult]:
    """Objects of one class, with stack-wide unique uint32 ids; a generator of progress.

    Parameters
    ----------
    probability : (Y, X) or (Z, Y, X) float array-like
        Probability of the object class (e.g. :func:`class_probability`), read one slice at a time in 2D mode.
    voxel_size : sequence of float, optional
        ``(Z, Y, X)`` (or ``(Y, X)``) voxel size; chooses the mode under ``auto`` and shapes the 3D distance.
    mode : {"auto", "2d", "3d"}
        See :func:`resolve_mode`.
    config : InstanceConfig, optional
        Default: the ``"cells"`` preset.
    link : bool
        In 2D mode, continue objects across sections by overlap (``config.link_iou``); False gives every
        slice's objects ids of their own (still unique over the stack).
    out : (Z, Y, X) or (Y, X) uint32 array-like, optional
        Receives the ids slice by slice (a memmap or zarr array for big stacks); a new array when omitted.

    Yields
    ------
    InstanceProgress
        After every slice (2D) or before and after the volume (3D).

    Returns
    -------
    InstanceResult
    """
    start = time.perf_counter()
    config = config or InstanceConfig()
    shape = tuple(int(s) for s in probability.shape)
    resolved = resolve_mode(mode, voxel_size, len(shape))
    if out is None:
        out = np.zeros(shape, np.uint32)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, the probability {shape}")
    if resolved == "3d":
        yield InstanceProgress(0, 1, 0, resolved)
        labels = watershed_objects(np.asarray(probability), config, sampling=voxel_size)
        out[...] = labels.astype(np.uint32)
        n = int(labels.max())
        yield InstanceProgress(1, 1, n, resolved)
        return InstanceResult(out, n, resolved, time.perf_counter() - start)
    counter = IdCounter()
    if len(shape) == 2:
        local = watershed_objects(np.asarray(probability), config, sampling=_yx(voxel_size))
        out[...] = link_to_previous(local, None, counter)
        yield InstanceProgress(1, 1, counter.last, resolved)
        return InstanceResult(out, counter.last, resolved, time.perf_counter() - start)
    previous = None
    for z in range(shape[0]):
        local = watershed_objects(np.asarray(probability[z]), config, sampling=_yx(voxel_size))
        ids = link_to_previous(local, previous if link else None, counter, min_iou=config.link_iou)
        out[z] = ids
        previous = ids
        yield InstanceProgress(z + 1, shape[0], counter.last, resolved)
    return InstanceResult(out, counter.last, resolved, time.perf_counter() - start)


def _yx(voxel_size: Sequence[float] | None) -> tuple[float, float] | None:
    return None if voxel_size is None else tuple(float(v) for v in voxel_size[-2:])


def instances_from_probability_sync(probability: Any, **kwargs: Any) -> InstanceResult:
    """:func:`instances_from_probability` run to the end (scripts, tests, the CLI without a progress line)."""
    return drain(instances_from_probability(probability, **kwargs))
