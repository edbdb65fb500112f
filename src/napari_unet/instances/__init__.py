"""Objects from probabilities: instance segmentation of one class (pure numpy / scipy / scikit-image, no torch).

A seeded watershed on one class's probability (seeds from the h-maxima of a smoothed distance transform,
boundary ``1 - p``) cuts the class into objects; a stack is labelled section by section and linked across
sections by overlap (serial sections), or as one 3D volume with the voxel size (near-isotropic FIB-SEM),
``mode="auto"`` choosing from the voxel size. Ids are unique uint32 over the whole stack.

Rooms: ``_config`` (the frozen :class:`InstanceConfig` and its presets), ``_watershed`` (one image or volume),
``_link`` (ids and linking across sections), ``_run`` (the stack generator and its sync twin), ``_measure``
(the per-object table and its CSV), ``_predicted`` (objects of a U-Net prediction), ``_slices`` and ``_streamed``
(the same objects streamed into an OME-Zarr store: per-slice watershed where each slice is predicted, then a
resumable linking pass).
"""

from __future__ import annotations

from ._config import INSTANCE_PRESETS, InstanceConfig
from ._link import IdCounter, link_to_previous
from ._measure import measure_objects, measurement_headers, write_measurements_csv
from ._predicted import CELLS_SHARE, ObjectsRequest, PredictedObjects, choose_preset, objects_of_prediction
from ._run import (
    ANISOTROPY_FOR_2D,
    InstanceProgress,
    InstanceResult,
    class_probability,
    instances_from_probability,
    instances_from_probability_sync,
    resolve_mode,
)
from ._slices import ProbabilityTap, SliceObjects
from ._streamed import StreamedObjects, objects_voxel_size, refuse_3d, sampled_slices, table_unit
from ._watershed import watershed_objects

__all__ = [
    "CELLS_SHARE",
    "ObjectsRequest",
    "PredictedObjects",
    "choose_preset",
    "objects_of_prediction",
    "ANISOTROPY_FOR_2D",
    "INSTANCE_PRESETS",
    "IdCounter",
    "InstanceConfig",
    "InstanceProgress",
    "InstanceResult",
    "class_probability",
    "instances_from_probability",
    "instances_from_probability_sync",
    "link_to_previous",
    "measure_objects",
    "measurement_headers",
    "resolve_mode",
    "watershed_objects",
    "write_measurements_csv",
    "ProbabilityTap",
    "SliceObjects",
    "StreamedObjects",
    "objects_voxel_size",
    "refuse_3d",
    "sampled_slices",
    "table_unit",
]
