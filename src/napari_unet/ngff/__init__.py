"""OME-Zarr (OME-NGFF 0.4) in and out for prediction: zarr / numpy only (no torch, no napari, no Qt).

- ``_meta``: NGFF metadata dictionaries (multiscales with the voxel size, ``image-label``, units);
- ``_read``: :func:`read_zarr_image`, a store's image as a lazy array with its voxel size;
- ``_outputs``: :class:`ZarrOutputs`, the labels / probabilities stores of a prediction, written slice by slice,
  each slice recorded as done once on disk, resumable, marked complete only at the end;
- ``_instances``: :class:`InstanceStore`, the objects' uint32 label image, with per-slice local ids and the
  state of the linking pass, resumable the same way.
"""

from __future__ import annotations

from ._instances import INSTANCES_NAME, InstanceStore, instances_group
from ._meta import NGFF_VERSION, image_label_attrs, multiscales_attrs, ngff_unit, short_unit
from ._outputs import LABELS_NAME, OutputSpec, ZarrOutputError, ZarrOutputs, remove_store, store_state
from ._read import ZarrReadError, is_zarr_path, read_zarr_image

__all__ = [
    "INSTANCES_NAME",
    "InstanceStore",
    "instances_group",
    "LABELS_NAME",
    "NGFF_VERSION",
    "OutputSpec",
    "ZarrOutputError",
    "ZarrOutputs",
    "ZarrReadError",
    "image_label_attrs",
    "is_zarr_path",
    "multiscales_attrs",
    "ngff_unit",
    "read_zarr_image",
    "remove_store",
    "short_unit",
    "store_state",
]
