"""Whole-stack segmentation into a zarr store on disk that fills in slice by slice and resumes after a cancel (no Qt).

When a stack's outputs do not fit in memory, the Segment widget's job writes them into ``segment.zarr`` in a folder
of the session (:meth:`napari_unet.session.ModelSession.output_dir`) named after what decides the result: the
image, the model file and the settings. The store holds

* ``labels`` ``(Z, Y, X)`` and, when asked for, ``probabilities`` ``(Z, K, Y, X)``, one chunk per slice;
* ``done`` ``(Z,)``: 1 once a slice's outputs are written (set after them, so a slice marked done is complete);
* a record in the group's attributes: the run it belongs to, the tile plan fixed by its first start, and whether it
  is complete.

:meth:`DiskRun.open` resumes an unfinished store of the same run (only the slices not done are predicted, with the
tile plan of the first start, so the result equals an uninterrupted run bit for bit) and starts afresh otherwise:
a finished store, or one of other settings, is overwritten, as pressing Segment again replaces a layer in memory.
The job yields :class:`DiskOutputs` once the store is open, so the widget can show the filling layer at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RECORD_KEY", "DiskOutputs", "DiskRun"]

RECORD_KEY = "napari_unet_segment"
STORE = "segment.zarr"


@dataclass(frozen=True)
class DiskOutputs:
    """Yielded by the job once the on-disk store is open: the arrays the widget shows while they fill in."""

    run: DiskRun
    labels: Any
    done_before: int
    total: int


class DiskRun:
    """The open store of one whole-stack segmentation; see the module docstring for the layout and resume rule."""

    def __init__(self, group: Any) -> None:
        self._group = group
        self.labels = group["labels"]
        self.probabilities = group["probabilities"] if "probabilities" in group else None
        self.done = group["done"]
        self.done_before = self.n_done()

    @classmethod
    def open(
        cls,
        folder: str | Path,
        run: dict,
        shape: tuple[int, ...],
        labels_dtype: Any,
        n_classes: int | None,
    ) -> DiskRun:
        """Resume the unfinished store in ``folder`` made for ``run``, or create a fresh one.

        Parameters
        ----------
        folder : path
            Where ``segment.zarr`` lives (created if missing).
        run : dict
            JSON-friendly description of what decides the result; a store is resumed only when its record equals it.
        shape : tuple
            ``(Z, Y, X)`` of the stack.
        labels_dtype : dtype
            Of the label values.
        n_classes : int or None
            Also keep ``(Z, K, Y, X)`` float32 probabilities for ``K = n_classes`` classes.
        """
        import zarr

        path = Path(folder) / STORE
        if path.exists():
            group = zarr.open_group(str(path), mode="r+")
            info = group.attrs.get(RECORD_KEY) or {}
            if info.get("run") == run and not info.get("complete"):
                return cls(group)
        group = zarr.open_group(str(path), mode="w")
        plane = tuple(min(int(s), 2048) for s in shape[-2:])
        z = int(shape[0])
        group.create_array("labels", shape=shape, chunks=(1, *plane), dtype=labels_dtype, fill_value=0)
        if n_classes is not None:
            group.create_array(
                "probabilities",
                shape=(z, int(n_classes), *shape[-2:]),
                chunks=(1, int(n_classes), *plane),
                dtype=np.float32,
                fill_value=0.0,
            )
        group.create_array("done", shape=(z,), chunks=(z,), dtype=np.uint8, fill_value=0)
        group.attrs[RECORD_KEY] = {"run": run, "plan": None, "complete": False}
        return cls(group)

    # -- the record ---------------------------------------------------------------------------------------------
    def _info(self) -> dict:
        return dict(self._group.attrs[RECORD_KEY])

    @property
    def plan(self) -> dict | None:
        """``{"tile": ..., "batch_size": ...}`` fixed by the first start, None before it is recorded."""
        return self._info().get("plan")

    def record_plan(self, tile: int, batch_size: int) -> None:
        """Keep the tile plan, so a resumed run tiles exactly like the first start."""
        info = self._info()
        info["plan"] = {"tile": int(tile), "batch_size": int(batch_size)}
        self._group.attrs[RECORD_KEY] = info

    @property
    def complete(self) -> bool:
        return bool(self._info().get("complete"))

    # -- per slice ----------------------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return int(self.done.shape[0])

    def n_done(self) -> int:
        """Slices recorded as done."""
        return int(np.asarray(self.done[:]).sum())

    def pending(self) -> list[int]:
        """Z indices still to predict, in order."""
        return [int(z) for z in np.flatnonzero(np.asarray(self.done[:]) == 0)]

    def mark_done(self, z: int) -> None:
        """Record slice ``z`` as done (call after its outputs are written)."""
        self.done[int(z)] = 1

    def finish(self) -> None:
        """Mark the store complete; it must be (every slice done).

        Raises
        ------
        RuntimeError
            When a slice is not done yet (the store stays resumable).
        """
        missing = self.pending()
        if missing:
            raise RuntimeError(f"{len(missing)} slice(s) are not segmented yet (first z={missing[0]})")
        info = self._info()
        info["complete"] = True
        self._group.attrs[RECORD_KEY] = info
