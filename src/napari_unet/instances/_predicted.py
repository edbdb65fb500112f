"""Objects of a prediction: from ``predict_stack``'s per-class probabilities to instance ids and their table.

The step the CLI's ``predict --instances`` (and a widget's "objects" option) runs after the U-Net: pick the class,
choose the preset (cells or blobs) when asked to, cut the objects, measure them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._config import InstanceConfig
from ._measure import measure_objects
from ._run import InstanceProgress, InstanceResult, class_probability, instances_from_probability

__all__ = ["CELLS_SHARE", "ObjectsRequest", "PredictedObjects", "choose_preset", "objects_of_prediction"]

CELLS_SHARE = 0.3
"""``preset="auto"`` takes the ``cells`` preset when the object class covers more than this share of the
predicted pixels (cells tile the image between membranes), ``blobs`` otherwise (mitochondria, nuclei)."""


@dataclass(frozen=True)
class ObjectsRequest:
    """What objects to make of a prediction.

    Attributes
    ----------
    value : int
        Label value of the object class (255 for ISBI cells, 2 for mitochondria painted as class 2).
    mode : str
        ``auto`` / ``2d`` / ``3d`` (also ``no`` / ``yes``); see :func:`napari_unet.instances.resolve_mode`.
    preset : str
        ``auto`` (from the class's share, :data:`CELLS_SHARE`), ``cells`` or ``blobs``; ignored when ``config``
        is given.
    config : InstanceConfig, optional
        Explicit watershed parameters.
    measure : bool
        Also compute the per-object table.
    min_size : int, optional
        Smallest object in pixels (voxels in 3D), replacing the preset's (``blobs``: 1000, tuned at ~5 nm).
    """

    value: int
    mode: str = "auto"
    preset: str = "auto"
    config: InstanceConfig | None = None
    measure: bool = False
    min_size: int | None = None


def choose_preset(probability: Any, preset: str = "auto", threshold: float = 0.5) -> str:
    """``cells`` or ``blobs`` for ``preset="auto"`` (from a sample of slices), else ``preset`` as given."""
    if preset != "auto":
        return preset
    p = np.asarray(
        probability[:: max(1, probability.shape[0] // 8)] if probability.ndim == 3 else probability
    )
    return "cells" if float(np.mean(p > threshold)) > CELLS_SHARE else "blobs"


@dataclass(frozen=True)
class PredictedObjects:
    """Objects of one prediction: the :class:`InstanceResult`, the preset used and the table (or None)."""

    result: InstanceResult
    preset: str
    table: dict[str, np.ndarray] | None


def objects_of_prediction(
    probabilities: Any,
    label_values: Sequence[int],
    request: ObjectsRequest,
    *,
    voxel_size: Sequence[float] | None = None,
    out: Any = None,
) -> Generator[InstanceProgress, None, PredictedObjects]:
    """Instances (and measurements) of one class of a prediction; a generator of :class:`InstanceProgress`.

    Parameters
    ----------
    probabilities : (Z, K, Y, X) or (K, Y, X) float array-like
        ``PredictResult.probabilities``.
    label_values : sequence of int
        The checkpoint's label value of each class.
    request : ObjectsRequest
    voxel_size : sequence of float, optional
        The image's ``(Z, Y, X)`` voxel size (chooses 2D + link or 3D under ``auto``; units of the table).
    out : uint32 array-like of the image's shape, optional
        Receives the ids (a zarr array for a stack bigger than memory); see :func:`instances_from_probability`.

    Returns
    -------
    PredictedObjects

    Raises
    ------
    ValueError
        ``request.value`` is not a class of the model, or the mode does not fit the image.
    """
    prob = class_probability(probabilities, label_values, request.value)
    preset = "custom" if request.config is not None else choose_preset(prob, request.preset)
    config = request.config or InstanceConfig.preset(preset)
    if request.min_size is not None:
        config = dataclasses.replace(config, min_size=int(request.min_size))
    result = yield from instances_from_probability(
        prob, voxel_size=voxel_size, mode=request.mode, config=config, out=out
    )
    table = measure_objects(result.labels, prob, voxel_size=voxel_size) if request.measure else None
    return PredictedObjects(result, preset, table)
