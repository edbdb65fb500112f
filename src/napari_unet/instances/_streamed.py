"""Objects of a prediction streamed into OME-Zarr: per-slice watershed where slices are predicted, then linking.

The same objects as :func:`~napari_unet.instances.objects_of_prediction` on the whole probabilities (the TIFF
path), without ever holding them: each slice's watershed runs right after the slice is predicted (in this process
or inside a cluster task, :class:`~napari_unet.instances._slices.SliceObjects`) and writes local ids; then
:meth:`StreamedObjects.complete` links the slices in order, two slices in memory at a time, with the same
:func:`~napari_unet.instances.link_to_previous` and id counter, so the ids are those of the TIFF path exactly,
however the slices were split into tasks. The linking pass records each linked slice and continues where it stopped;
the measurements (one streaming pass over the ids) are redone when interrupted.

The ``auto`` preset samples the slices :func:`~napari_unet.instances.choose_preset` samples: those are predicted
first, their probabilities kept, the preset chosen from them (and recorded), then the rest is cut with it.
Only 2D + link is streamed: 3D objects need the whole volume (:func:`refuse_3d`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ngff import InstanceStore
from ..ngff._instances import PROBABILITY_KEPT
from ._config import InstanceConfig
from ._link import IdCounter, link_to_previous
from ._measure import measure_objects, write_measurements_csv
from ._predicted import CELLS_SHARE, ObjectsRequest, PredictedObjects
from ._run import InstanceProgress, InstanceResult, resolve_mode
from ._slices import SliceObjects
from ._watershed import watershed_objects

__all__ = ["StreamedObjects", "objects_voxel_size", "refuse_3d", "sampled_slices", "table_unit"]


def objects_voxel_size(scale: Sequence[float], units: Any) -> tuple[float, ...] | None:
    """The voxel size objects are cut with: ``scale`` when the image has units, None (unknown) otherwise."""
    known = any(units) if isinstance(units, (list, tuple)) else bool(units)
    return tuple(float(s) for s in scale) if known else None


def table_unit(units: Any) -> str | None:
    """The unit the measurements' CSV header names (the X axis's), or None."""
    unit = units[-1] if isinstance(units, (list, tuple)) and units else units
    return unit if isinstance(unit, str) and unit else None


def refuse_3d(request: ObjectsRequest, scale: Sequence[float], units: Any, ndim: int) -> None:
    """Raise ``ValueError`` (one sentence) when the objects would be 3D: OME-Zarr output streams 2D + link only."""
    voxel = objects_voxel_size(scale, units)
    if resolve_mode(request.mode, voxel, ndim) == "3d":
        why = (
            "--instances-3d yes"
            if request.mode in ("yes", "3d")
            else "--instances-3d auto (near-isotropic voxels)"
        )
        raise ValueError(
            f"{why} asks for 3D objects, which on OME-Zarr output would need the whole volume in memory (a "
            "block-wise 3D watershed is not implemented); pass --instances-3d no (2D per section, linked across "
            "sections) or write -o LABELS.tif"
        )


def sampled_slices(shape: Sequence[int]) -> list[int]:
    """The slices :func:`~napari_unet.instances.choose_preset` looks at (every ``Z // 8``-th; 0 for one image)."""
    if len(shape) == 2:
        return [0]
    return list(range(0, int(shape[0]), max(1, int(shape[0]) // 8)))


def _describe(request: ObjectsRequest) -> dict:
    config = None if request.config is None else dataclasses.asdict(request.config)
    return {
        "value": int(request.value), "mode": str(request.mode), "preset": str(request.preset),
        "config": config, "min_size": request.min_size, "measure": bool(request.measure),
    }  # fmt: skip


@dataclass
class StreamedObjects:
    """The objects of one OME-Zarr prediction: opened with the stores, fed slice by slice, completed at the end."""

    request: ObjectsRequest
    slices: SliceObjects
    samples: list[int]
    voxel_size: tuple[float, ...] | None
    measurements: Path | None
    unit: str | None
    found: PredictedObjects | None = None
    waiting: set[int] = field(default_factory=set)

    @classmethod
    def open(
        cls, path: str | os.PathLike, request: ObjectsRequest, label_values: Sequence[int], *, shape, scale,
        units, run: dict, resume: bool, overwrite: bool, measurements: str | os.PathLike | None = None,
    ) -> StreamedObjects:  # fmt: skip
        """Open (or resume) the instance store at ``path`` for the labels store's ``run`` record.

        Raises
        ------
        ValueError
            3D objects (:func:`refuse_3d`), or ``request.value`` not a class of the model.
        """
        refuse_3d(request, scale, units, len(shape))
        values = [int(v) for v in label_values]
        if int(request.value) not in values:
            raise ValueError(
                f"label value {request.value} is not a class of the model; its classes are {values}"
            )
        store = InstanceStore.open(
            path,
            shape,
            scale,
            units,
            {**run, "objects": _describe(request)},
            resume=resume,
            overwrite=overwrite,
        )
        voxel = objects_voxel_size(scale, units)
        sampling = None if voxel is None else voxel[-2:]
        slices = SliceObjects(store, values.index(int(request.value)), None, request.measure, sampling)
        found = cls(request, slices, sampled_slices(shape), voxel, measurements and Path(measurements),
                    table_unit(units))  # fmt: skip
        preset = "custom" if request.config is not None else request.preset
        preset = store.preset if preset == "auto" else preset
        if preset is not None:
            slices.config = found._config(preset)
            if store.preset is None and not store.complete:
                store.record_preset(preset)
        return found

    def _config(self, preset: str) -> InstanceConfig:
        config = self.request.config or InstanceConfig.preset(preset)
        if self.request.min_size is not None:
            config = dataclasses.replace(config, min_size=int(self.request.min_size))
        return config

    @property
    def config(self) -> InstanceConfig | None:
        """The watershed settings, None while the ``auto`` preset waits for its sampled slices."""
        return self.slices.config

    @property
    def store(self) -> InstanceStore:
        return self.slices.store

    # ------------------------------------------------------------------------------------- the slices
    def prepare(self, pending: Sequence[int]) -> list[int]:
        """The slices to predict, given those the labels store still lacks: with those whose objects are missing,
        the sampled ones first while the preset is not chosen."""
        if self.store.complete:
            return list(pending)
        states = self.store.states()
        todo = sorted(set(pending) | {int(z) for z in np.flatnonzero(states == 0)})
        self.waiting = {z for z in self.samples if z in todo} if self.config is None else set()
        first = [z for z in todo if z in self.waiting]
        if not self.waiting:
            self.choose()
        return first + [z for z in todo if z not in self.waiting]

    def written(self, z: int) -> None:
        """In-process hook after slice ``z`` is predicted through the tap."""
        self.slices.written(z)
        self.waiting.discard(z)
        if self.config is None and not self.waiting:
            self.choose()

    def choose(self) -> None:
        """Choose the ``auto`` preset from the sampled slices (if not chosen), then cut the slices that waited."""
        states = self.store.states()
        if self.config is None:
            count = sum(int(np.count_nonzero(self.store.kept_probability(z) > 0.5)) for z in self.samples)
            pixels = len(self.samples) * int(np.prod(self.store.ids.shape[-2:]))
            preset = "cells" if count / pixels > CELLS_SHARE else "blobs"
            self.store.record_preset(preset)
            self.slices.config = self._config(preset)
        for z in np.flatnonzero(states == PROBABILITY_KEPT):
            p = self.store.kept_probability(int(z))
            self.store.write_local(int(z), watershed_objects(p, self.config, sampling=self.slices.sampling))

    # ------------------------------------------------------------------------------------- the end
    def complete(self) -> Generator[InstanceProgress, None, PredictedObjects]:
        """Link every slice not linked yet, write the measurements, mark the store complete."""
        t0 = time.perf_counter()
        store, n = self.store, self.store.n_slices
        if store.complete:  # an earlier run finished the objects (and their table) before it stopped
            return self._found(int(store.info().get("n_objects", 0)), None, t0)
        z0, last = store.link_position()
        counter = IdCounter(last)
        previous = store.final_ids(z0 - 1) if z0 > 0 else None
        for z in range(z0, n):
            ids = link_to_previous(store.local_ids(z), previous, counter, min_iou=self.config.link_iou)
            store.write_linked(z, ids, counter.last)
            previous = ids
            yield InstanceProgress(z + 1, n, counter.last, "2d")
        table = None
        if self.request.measure:
            table = measure_objects(store.ids, store.probability, voxel_size=self.voxel_size)
            if self.measurements is not None:
                write_measurements_csv(self.measurements, table, unit=self.unit)
        store.finish(counter.last)
        return self._found(counter.last, table, t0)

    def _found(self, n_objects: int, table: Any, t0: float) -> PredictedObjects:
        result = InstanceResult(self.store.ids, n_objects, "2d", time.perf_counter() - t0)
        self.found = PredictedObjects(result, self.store.preset or str(self.request.preset), table)
        return self.found
