"""Prediction outputs as OME-Zarr stores that a later run can resume, written slice by slice.

The labels store ``OUT.zarr`` is an OME-NGFF 0.4 image group: the input image at ``0`` (copied slice by slice as it
is predicted, so the store opens on its own) and the labels at ``labels/segmentation/0`` with ``image-label``
metadata; both carry the voxel size as a scale transformation. The probabilities store ``PROB.zarr`` is a float32
image ``(class, Z, Y, X)`` (``czyx``). Arrays are chunked one slice per chunk in Z (YX split above 4096 px).

Resuming: the labels store holds ``napari_unet_done``, one byte per slice in a chunk of its own (so workers on
several machines never write the same file), set to 1 only after the slice's labels, probabilities and image
chunks are on disk (zarr's local store writes each chunk to a temporary file and renames it). The attribute
``napari_unet`` of each store records the run (input, model digest, options), the tile plan, and ``complete``:
false from creation until :meth:`ZarrOutputs.finish` has seen every slice done, so an interrupted store never looks
complete. A later run with the same settings predicts only the slices not done.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._meta import image_label_attrs, multiscales_attrs

__all__ = ["LABELS_NAME", "OutputSpec", "ZarrOutputError", "ZarrOutputs", "remove_store", "store_state"]

LABELS_NAME = "segmentation"
"""The labels image's name under ``OUT.zarr/labels/``."""

_KEY = "napari_unet"
_DONE = "napari_unet_done"
_MAX_CHUNK_SIDE = 4096


class ZarrOutputError(ValueError):
    """An output store that cannot be created or resumed; the message is one sentence for the user."""


def store_state(path: str | os.PathLike) -> str:
    """What is at ``path``: ``"absent"``, ``"partial"`` / ``"complete"`` (a napari-unet store), or ``"other"``."""
    path = Path(path)
    if not path.exists():
        return "absent"
    info = _record(path)
    if info is None:
        return "other"
    return "complete" if info.get("complete") else "partial"


def _record(path: Path) -> dict | None:
    import json

    for name in (".zattrs", "zarr.json"):
        meta = path / name
        if meta.is_file():
            try:
                attrs = json.loads(meta.read_text())
            except (OSError, ValueError):
                return None
            attrs = attrs.get("attributes", attrs) if name == "zarr.json" else attrs
            found = attrs.get(_KEY)
            return found if isinstance(found, dict) else None
    return None


def remove_store(path: str | os.PathLike) -> None:
    """Delete what is at ``path`` (a store folder or a file) before it is written again (``--overwrite``)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@dataclass(frozen=True)
class OutputSpec:
    """What the stores hold: shapes, dtypes, voxel size, class names.

    Attributes
    ----------
    shape : tuple of int
        Spatial shape of the input, ``(Z, Y, X)`` or ``(Y, X)``.
    image_dtype, labels_dtype : numpy dtype
    label_values, class_names : sequence
        One per class.
    scale : tuple of float
        Voxel size per spatial axis.
    units : tuple of str
        Short unit per spatial axis (``""`` where unknown).
    name : str
        The image's name (the input's stem).
    """

    shape: tuple[int, ...]
    image_dtype: Any
    labels_dtype: Any
    label_values: Sequence[int]
    class_names: Sequence[str]
    scale: tuple[float, ...]
    units: tuple[str, ...]
    name: str = "image"


class ChannelFirst:
    """A ``(Z, K, Y, X)`` view of a ``(K, Z, Y, X)`` array for writing: ``view[z] = (K, Y, X)``."""

    def __init__(self, array: Any) -> None:
        self.array = array
        k, z, *yx = array.shape
        self.shape = (z, k, *yx)
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __setitem__(self, z: int, value: np.ndarray) -> None:
        self.array[:, z] = value

    def __getitem__(self, z: int) -> np.ndarray:
        return self.array[:, z]


def _compressor():
    import numcodecs

    return numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


def _array(group: Any, name: str, shape: tuple[int, ...], dtype: Any, n_plane_axes: int = 2) -> Any:
    lead = len(shape) - n_plane_axes
    chunks = (1,) * lead + tuple(min(n, _MAX_CHUNK_SIDE) for n in shape[lead:])
    return group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=_compressor(),
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )


def _create_labels_store(path: Path, spec: OutputSpec, run: dict) -> None:
    import zarr

    axes = "zyx"[-len(spec.shape) :]
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    _array(root, "0", spec.shape, spec.image_dtype)
    labels_group = root.require_group("labels")
    labels_group.attrs["labels"] = [LABELS_NAME]
    labels = labels_group.require_group(LABELS_NAME)
    _array(labels, "0", spec.shape, spec.labels_dtype)
    labels.attrs.update(
        {
            **multiscales_attrs(LABELS_NAME, axes, spec.scale, spec.units),
            **image_label_attrs(spec.label_values),
        }
    )
    n_flags = spec.shape[0] if len(spec.shape) == 3 else 1
    root.create_array(_DONE, shape=(n_flags,), chunks=(1,), dtype="uint8", compressors=None, fill_value=0)
    # the record last: a store killed while being created has no record and is "other", never resumed
    root.attrs.update(
        {
            **multiscales_attrs(spec.name, axes, spec.scale, spec.units),
            _KEY: {"role": "labels", "complete": False, "run": run, "plan": None},
        }
    )


def _create_probabilities_store(path: Path, spec: OutputSpec, run: dict) -> None:
    import zarr

    axes = "c" + "zyx"[-len(spec.shape) :]
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    _array(root, "0", (len(spec.class_names), *spec.shape), "float32")
    channels = [
        {
            "label": str(n),
            "color": "FFFFFF",
            "active": True,
            "window": {"start": 0.0, "end": 1.0, "min": 0.0, "max": 1.0},
        }
        for n in spec.class_names
    ]
    root.attrs.update(
        {
            **multiscales_attrs(f"{spec.name} probabilities", axes, (1.0, *spec.scale), ("", *spec.units)),
            "omero": {"version": "0.4", "channels": channels, "rdefs": {"model": "greyscale"}},
            _KEY: {"role": "probabilities", "complete": False, "run": run},
        }
    )


def _differences(recorded: dict, run: dict) -> list[str]:
    keys = sorted(set(recorded) | set(run))
    return [k for k in keys if recorded.get(k) != run.get(k)]


@dataclass
class ZarrOutputs:
    """The open output stores of one prediction; see the module docstring for the layout and resume rules.

    Attributes
    ----------
    labels_path, probabilities_path : Path (or None)
    labels : zarr.Array
        ``(Z, Y, X)`` or ``(Y, X)`` label values.
    probabilities : ChannelFirst, zarr.Array or None
        Written as ``(Z, K, Y, X)`` (``(K, Y, X)`` for one slice); None without a probabilities store.
    image : zarr.Array
        The copy of the input inside the labels store.
    done_before : int
        Slices already done when the stores were opened (0 for new stores).
    created : bool
        Whether :meth:`open` made the stores anew (False: an unfinished run resumed).
    """

    labels_path: Path
    probabilities_path: Path | None
    labels: Any
    probabilities: Any
    image: Any
    done: Any = None
    done_before: int = 0
    created: bool = False

    @classmethod
    def open(
        cls,
        labels_path: str | os.PathLike,
        probabilities_path: str | os.PathLike | None,
        spec: OutputSpec,
        run: dict,
        *,
        overwrite: bool = False,
    ) -> ZarrOutputs:
        """Resume the stores of an unfinished run with the same ``run`` record, or create them.

        Parameters
        ----------
        labels_path, probabilities_path : path
            ``.zarr`` stores (the probabilities one may be None).
        spec : OutputSpec
        run : dict
            JSON-friendly description of what decides the result (input, model digest, options); a store is
            resumed only when its record equals this one.
        overwrite : bool
            Replace a finished store, a store of other settings or a foreign folder; without it they are refused.
            An unfinished store of the same run is resumed either way.

        Raises
        ------
        ZarrOutputError
            A store that exists and may not be replaced, or a half run whose probabilities store is gone.
        """
        labels_path = Path(labels_path)
        prob_path = Path(probabilities_path) if probabilities_path is not None else None
        created = not cls._resumable(labels_path, prob_path, run, overwrite)
        if created:
            for path in (labels_path, prob_path):
                if path is not None and path.exists():
                    if not overwrite:
                        raise ZarrOutputError(f"{path} already exists; pass --overwrite to replace it")
                    remove_store(path)
            if prob_path is not None:
                _create_probabilities_store(prob_path, spec, run)
            _create_labels_store(labels_path, spec, run)
        outputs = cls._opened(labels_path, prob_path)
        outputs.created = created
        return outputs

    @staticmethod
    def _resumable(labels_path: Path, prob_path: Path | None, run: dict, overwrite: bool) -> bool:
        info = _record(labels_path) if labels_path.exists() else None
        if info is None or info.get("complete") or info.get("role") != "labels":
            return False
        different = _differences(info.get("run") or {}, run)
        if different:
            if overwrite:
                return False
            raise ZarrOutputError(
                f"{labels_path} holds an unfinished prediction made with other settings ({', '.join(different)}); "
                "re-run that command to resume it, or pass --overwrite to start again"
            )
        if prob_path is not None:
            prob = _record(prob_path) if prob_path.exists() else None
            if prob is None or prob.get("run") != run:
                if overwrite:
                    return False
                raise ZarrOutputError(
                    f"{labels_path} holds an unfinished prediction but {prob_path} is missing or not its "
                    "probabilities; pass --overwrite to start again"
                )
        return True

    @classmethod
    def reopen(
        cls, labels_path: str | os.PathLike, probabilities_path: str | os.PathLike | None
    ) -> ZarrOutputs:
        """Open stores that :meth:`open` made (a cluster worker's view of them); nothing is checked or created."""
        prob = Path(probabilities_path) if probabilities_path is not None else None
        return cls._opened(Path(labels_path), prob, count=False)

    @classmethod
    def _opened(cls, labels_path: Path, prob_path: Path | None, *, count: bool = True) -> ZarrOutputs:
        import zarr

        root = zarr.open_group(str(labels_path), mode="r+")
        labels = root[f"labels/{LABELS_NAME}/0"]
        probabilities = None
        if prob_path is not None:
            array = zarr.open_group(str(prob_path), mode="r+")["0"]
            probabilities = ChannelFirst(array) if array.ndim == 4 else array
        outputs = cls(labels_path, prob_path, labels, probabilities, root["0"], root[_DONE])
        if count:  # every flag is a file: a worker opening the stores for one slab does not read them all
            outputs.done_before = int(outputs._flags().sum())
        return outputs

    # ------------------------------------------------------------------------------------- per slice
    def _root(self, path: Path | None = None) -> Any:
        import zarr

        return zarr.open_group(str(path or self.labels_path), mode="r+")

    def _flags(self) -> np.ndarray:
        return np.asarray(self.done[:])

    @property
    def n_slices(self) -> int:
        """Slices of the stack (1 for a single image)."""
        return int(self.done.shape[0])

    def is_done(self, z: int) -> bool:
        """Whether slice ``z`` is recorded as done."""
        return bool(self.done[z])

    def pending(self) -> list[int]:
        """Z indices not done yet, in order."""
        return [int(z) for z in np.flatnonzero(self._flags() == 0)]

    def slice_done(self, z: int, image_slice: np.ndarray) -> None:
        """Copy the input slice into the store, then record slice ``z`` as done (its outputs are written)."""
        if self.image.ndim == 3:
            self.image[z] = image_slice
        else:
            self.image[...] = image_slice
        self.done[z] = 1

    # ------------------------------------------------------------------------------------- the record
    @property
    def plan(self) -> dict | None:
        """The tile plan recorded by the run that created the stores (None before it is recorded)."""
        return (self._root().attrs.get(_KEY) or {}).get("plan")

    def record_plan(self, plan: dict) -> None:
        """Keep the tile plan, so a resumed run tiles exactly like the first one (bit-identical results)."""
        root = self._root()
        info = dict(root.attrs[_KEY])
        info["plan"] = plan
        root.attrs[_KEY] = info

    def finish(self) -> bool:
        """Mark the stores complete when every slice is done (probabilities first); returns whether they are."""
        if (self._flags() == 0).any():
            return False
        for path in (self.probabilities_path, self.labels_path):
            if path is not None:
                root = self._root(path)
                info = dict(root.attrs[_KEY])
                info["complete"] = True
                root.attrs[_KEY] = info
        return True
