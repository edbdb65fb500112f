"""Live training's view of the strokes: the array the user paints into, and which slices changed (numpy).

A :class:`LiveAnnotations` wraps the very labels array a viewer paints into (napari's ``Labels.data``); training asks
it at most every ``refresh_seconds`` which slices changed and re-reads only those, so a stroke added or erased while
training enters the training set within about a second - no restart, no re-normalisation, no patch index rebuilt
from scratch. The painter (another thread) may say which slice it touched with :meth:`LiveAnnotations.mark`; with
``poll`` (the default) every slice is also compared with its last copy, so nothing needs to be marked.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

__all__ = ["LiveAnnotations"]


class LiveAnnotations:
    """The labels of a live training run, re-read while training.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) integer array
        The array the user paints into (not a copy): numpy, or anything indexable by slice.
    poll : bool
        Compare every slice with its last copy at each refresh (costs a copy of ``labels`` and one comparison of
        it per refresh; fine for stacks of a few hundred MB). False: only slices passed to :meth:`mark` are re-read.
    refresh_seconds : float
        Slices are looked at no more often than this.
    """

    def __init__(self, labels: Any, *, poll: bool = True, refresh_seconds: float = 1.0) -> None:
        if not hasattr(labels, "shape") or len(labels.shape) not in (2, 3):
            raise ValueError("live training needs a (Y, X) or (Z, Y, X) labels array")
        self.labels = labels
        self.poll = bool(poll)
        self.refresh_seconds = float(refresh_seconds)
        self._lock = threading.Lock()
        self._marked: set[int] = set()
        self._everything = False
        self._copies: dict[int, np.ndarray] = {}
        self._last_look = -np.inf

    @property
    def n_slices(self) -> int:
        return 1 if len(self.labels.shape) == 2 else int(self.labels.shape[0])

    def plane(self, z: int) -> np.ndarray:
        """A copy of slice ``z`` as it is now (booleans as uint8)."""
        plane = np.array(self.labels if len(self.labels.shape) == 2 else self.labels[z], copy=True)
        return plane.astype(np.uint8) if plane.dtype == bool else plane

    def mark(self, z: int | None = None) -> None:
        """Slice ``z`` was painted (``None``: any slice may have changed). Thread-safe."""
        with self._lock:
            if z is None:
                self._everything = True
            elif 0 <= int(z) < self.n_slices:
                self._marked.add(int(z))

    def start(self) -> None:
        """Take the reference copies (training calls this once it has read the labels)."""
        if self.poll:
            self._copies = {z: self.plane(z) for z in range(self.n_slices)}
        self._last_look = time.monotonic()

    def changed(self, *, force: bool = False) -> dict[int, np.ndarray]:
        """The slices that changed since the last call, with their new content (``{z: plane}``).

        Returns ``{}`` when called again within ``refresh_seconds`` (unless ``force``).
        """
        now = time.monotonic()
        if not force and now - self._last_look < self.refresh_seconds:
            return {}
        self._last_look = now
        with self._lock:
            marked, everything = self._marked, self._everything
            self._marked, self._everything = set(), False
        candidates = range(self.n_slices) if (self.poll or everything) else sorted(marked)
        out: dict[int, np.ndarray] = {}
        for z in candidates:
            plane = self.plane(z)
            before = self._copies.get(z)
            if before is not None and np.array_equal(before, plane):
                continue
            if self.poll:
                self._copies[z] = plane
            out[z] = plane
        return out
