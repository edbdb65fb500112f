"""The labels layer of a stack segmented on disk while it fills in (napari, no Qt).

The Segment widget's job writes a stack too big for memory slice by slice into a zarr store
(:mod:`._disk_run`); the widget shows that store as the image's labels layer from the start. :class:`Filling`
refreshes the layer as slices arrive, at most every :data:`REFRESH_SECONDS`, so the viewer stays responsive, and
says what is kept when the run is cancelled or fails. :func:`image_key` names the image a run belongs to, so that
pressing Segment again on the same image, with the same model and settings, resumes the store.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ._disk_run import DiskOutputs

__all__ = ["REFRESH_SECONDS", "Filling", "digest", "image_key"]

REFRESH_SECONDS = 1.0  # between two redraws of the filling layer (each one reads the slice in view from disk)


class Filling:
    """A whole-stack run writing into ``layer`` on disk."""

    def __init__(self, outputs: DiskOutputs, layer: Any) -> None:
        self.outputs = outputs
        self.layer = layer
        self._last = time.monotonic()

    def refresh(self, *, force: bool = False) -> bool:
        """Redraw the layer from disk when :data:`REFRESH_SECONDS` have passed (or ``force``); whether it did."""
        now = time.monotonic()
        if not force and now - self._last < REFRESH_SECONDS:
            return False
        self._last = now
        try:
            self.layer.refresh()
        except RuntimeError:  # the layer's canvas is gone (viewer closing): nothing to redraw
            return False
        return True

    def stopped(self, how: str) -> str:
        """One status line for a run ``how`` ("cancelled", "failed") part-way: what the layer keeps, how to resume."""
        self.refresh(force=True)
        done, total = self.outputs.run.n_done(), self.outputs.total
        return (
            f"{how} — {done} of {total} slices are in '{self.layer.name}' (on disk); press Segment again with the "
            "same settings to segment only the rest"
        )


def image_key(layer: Any, data: Any) -> str:
    """What identifies the image of a run: the layer, the file it came from, its shape and dtype."""
    source = getattr(getattr(layer, "source", None), "path", None) or ""
    return f"{layer.unique_id}|{source}|{tuple(int(s) for s in data.shape)}|{data.dtype}"


def digest(text: str) -> str:
    """A short folder-safe name for ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
