"""The instance ids of a prediction as an OME-Zarr label image, filled slice by slice and resumable (zarr / numpy).

Where: a label image ``instances`` under the labels store's ``labels/`` group, next to ``segmentation``
(``OUT.zarr/labels/instances``: napari-ome-zarr and napari-unet open the image, the semantic labels and the
objects together), or a store of its own (``X.zarr``: the label image at its root). Either way a group with
NGFF ``multiscales`` (the voxel size) and ``image-label`` metadata whose array ``0`` holds the final uint32 ids,
one chunk per slice.

Objects are made in two steps (:mod:`napari_unet.instances._streamed`): each slice's watershed, where that slice is
predicted (in this process or on a cluster worker), writes *local* ids ``1..n`` of that slice; then one sequential
linking pass gives stack-wide ids. The group keeps, beside ``0``, what the steps need and deletes it when done:

- ``napari_unet_local``: the per-slice local ids; ``napari_unet_state``: one byte per slice (0 nothing, 1 the
  probability kept, waiting for the preset; 2 local ids written), a chunk per slice like the labels' done flags;
- ``napari_unet_probability``: the object class's probability, kept for the slices that need it again (the
  slices the ``auto`` preset samples, all slices when measurements are wanted);
- ``napari_unet_linked``: per slice, 1 + the last id used once that slice is linked (0: not linked yet), so an
  interrupted linking pass continues at the first slice not linked.

The record ``napari_unet`` (role ``instances``, the run, the chosen preset, ``complete``) is written last at
creation and marked complete only after linking, so an unfinished group never looks complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._meta import image_label_attrs, multiscales_attrs
from ._outputs import _KEY, ZarrOutputError, _array, _record, remove_store

__all__ = ["INSTANCES_NAME", "InstanceStore", "instances_group"]

INSTANCES_NAME = "instances"
"""The instance label image's name under ``OUT.zarr/labels/``."""

_LOCAL, _STATE, _PROB, _LINKED = (
    "napari_unet_local",
    "napari_unet_state",
    "napari_unet_probability",
    "napari_unet_linked",
)
PROBABILITY_KEPT, LOCAL_WRITTEN = 1, 2


def instances_group(labels_store: str | os.PathLike) -> Path:
    """Where the instances of ``labels_store`` go when no store is named: ``OUT.zarr/labels/instances``."""
    return Path(labels_store) / "labels" / INSTANCES_NAME


def _inside_labels_store(path: Path) -> bool:
    return path.parent.name == "labels" and path.parent.parent.name.lower().endswith(".zarr")


def _create(path: Path, shape: tuple[int, ...], scale: tuple, units: tuple, run: dict) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    _array(group, "0", shape, "uint32")
    _array(group, _LOCAL, shape, "uint32")
    _array(group, _PROB, shape, "float32")
    n = shape[0] if len(shape) == 3 else 1
    for name, dtype in ((_STATE, "uint8"), (_LINKED, "int64")):
        group.create_array(name, shape=(n,), chunks=(1,), dtype=dtype, compressors=None, fill_value=0)
    inside = _inside_labels_store(path)
    group.attrs.update(
        {
            **multiscales_attrs(INSTANCES_NAME, "zyx"[-len(shape) :], scale, units),
            # the ids are objects, not classes: no colours, napari colours them itself
            "image-label": {**image_label_attrs([])["image-label"], **({} if inside else {"source": {}})},
            _KEY: {"role": "instances", "complete": False, "run": run, "preset": None},
        }
    )
    if inside:  # listed in the labels group last: a reader never finds a half-made label image
        labels = zarr.open_group(str(path.parent), mode="r+")
        names = list(labels.attrs.get("labels", []))
        labels.attrs["labels"] = [*names, INSTANCES_NAME] if INSTANCES_NAME not in names else names


@dataclass
class InstanceStore:
    """An open instances group; see the module docstring. ``ids``, ``local``, ``probability`` are zarr arrays."""

    path: Path
    ids: Any
    local: Any
    probability: Any
    state: Any
    linked: Any

    @classmethod
    def open(
        cls, path: str | os.PathLike, shape: tuple[int, ...], scale: tuple, units: tuple, run: dict, *,
        resume: bool, overwrite: bool,
    ) -> InstanceStore:  # fmt: skip
        """Resume the group of the same ``run`` (when the labels store was resumed too, ``resume``), or create it.

        Raises
        ------
        ZarrOutputError
            A group of other settings, or something else at ``path``, without ``overwrite``.
        """
        path = Path(path)
        info = _record(path) if path.exists() else None
        ours = info is not None and info.get("role") == "instances"
        if ours and resume and info.get("run") == run:
            return cls.reopen(path)
        if path.exists() and not (ours and not info.get("complete") and info.get("run") == run):
            if not overwrite:
                other = "an unfinished run of other settings" if ours else "data"
                raise ZarrOutputError(f"{path} holds {other}; pass --overwrite to replace it")
        if path.exists():
            remove_store(path)
        _create(path, tuple(shape), tuple(scale), tuple(units), run)
        return cls.reopen(path)

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> InstanceStore:
        """Open a group :meth:`open` made (a worker's view of it); nothing is checked or created."""
        import zarr

        group = zarr.open_group(str(path), mode="r+")
        # a complete group has only its ids left
        work = [group[name] if name in group else None for name in (_LOCAL, _PROB, _STATE, _LINKED)]
        return cls(Path(path), group["0"], *work)

    # ------------------------------------------------------------------------------------- per slice
    @property
    def n_slices(self) -> int:
        return int(self.ids.shape[0]) if self.ids.ndim == 3 else 1

    def _where(self, z: int) -> Any:
        return z if self.ids.ndim == 3 else Ellipsis

    def states(self) -> np.ndarray:
        """The per-slice state bytes (0, :data:`PROBABILITY_KEPT`, :data:`LOCAL_WRITTEN`)."""
        return np.asarray(self.state[:])

    def slice_state(self, z: int) -> int:
        return int(self.state[z])

    def keep_probability(self, z: int, probability: np.ndarray, *, waiting: bool) -> None:
        """Keep slice ``z``'s object probability; ``waiting``: record that its objects wait for the preset."""
        self.probability[self._where(z)] = probability
        if waiting:
            self.state[z] = PROBABILITY_KEPT

    def kept_probability(self, z: int) -> np.ndarray:
        return np.asarray(self.probability[self._where(z)])

    def write_local(self, z: int, ids: np.ndarray) -> None:
        """Slice ``z``'s local ids ``1..n``, then its state: written."""
        self.local[self._where(z)] = ids
        self.state[z] = LOCAL_WRITTEN

    def local_ids(self, z: int) -> np.ndarray:
        return np.asarray(self.local[self._where(z)])

    # ------------------------------------------------------------------------------------- linking
    def link_position(self) -> tuple[int, int]:
        """``(z, last)``: the first slice not linked and the last id used before it."""
        linked = np.asarray(self.linked[:])
        todo = np.flatnonzero(linked == 0)
        z = int(todo[0]) if len(todo) else self.n_slices
        return z, int(linked[z - 1]) - 1 if z > 0 else 0

    def write_linked(self, z: int, ids: np.ndarray, last: int) -> None:
        """Slice ``z``'s final ids, then the record that it is linked with ids up to ``last``."""
        self.ids[self._where(z)] = ids
        self.linked[z] = last + 1

    def final_ids(self, z: int) -> np.ndarray:
        return np.asarray(self.ids[self._where(z)])

    # ------------------------------------------------------------------------------------- the record
    def _info(self) -> tuple[Any, dict]:
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        return group, dict(group.attrs[_KEY])

    def info(self) -> dict:
        """The group's ``napari_unet`` record."""
        return self._info()[1]

    @property
    def preset(self) -> str | None:
        """The preset chosen for this run (recorded once, so a resumed run cuts with the same one)."""
        return self.info().get("preset")

    def record_preset(self, preset: str) -> None:
        group, info = self._info()
        group.attrs[_KEY] = {**info, "preset": preset}

    @property
    def complete(self) -> bool:
        """Whether every slice is linked and the group is marked complete."""
        return bool(self.info().get("complete"))

    def finish(self, n_objects: int) -> None:
        """Mark the group complete with its ``n_objects`` (every slice must be linked), then delete the working
        arrays."""
        group, info = self._info()
        if self.linked is not None and int(np.count_nonzero(np.asarray(self.linked[:]) == 0)):
            raise ZarrOutputError(f"{self.path}: slices are not linked yet; run the same command again")
        group.attrs[_KEY] = {
            **info,
            "complete": True,
            "n_objects": int(n_objects),
        }  # true from here on: the ids are final
        for name in (_LOCAL, _PROB, _STATE, _LINKED):
            if name in group:
                del group[name]
