"""Objects of one predicted slice, cut where the slice is predicted (this process or a dask worker), into a store.

:class:`ProbabilityTap` stands in for ``predict_stack``'s ``probabilities_out``: it forwards each slice to the
probabilities store (when there is one) and keeps the object class's probability of that slice, so the watershed
runs on the probabilities just computed, without reading them back. :class:`SliceObjects` then writes the slice's
local ids ``1..n`` (or keeps the probability while the ``auto`` preset is still to be chosen) into the
:class:`~napari_unet.ngff.InstanceStore`; the stack-wide ids come from the linking pass
(:mod:`napari_unet.instances._streamed`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ngff import InstanceStore
from ._config import InstanceConfig
from ._watershed import watershed_objects

__all__ = ["ProbabilityTap", "SliceObjects"]


class ProbabilityTap:
    """A ``(Z, K, Y, X)`` (or ``(K, Y, X)``) float32 ``probabilities_out`` that keeps channel ``index`` per slice.

    Parameters
    ----------
    inner : array-like or None
        Where the probabilities really go (the probabilities store's view), or None.
    shape : tuple of int
    index : int
        The object class's channel.
    """

    def __init__(self, inner: Any, shape: tuple[int, ...], index: int) -> None:
        self.inner, self.shape, self.index = inner, tuple(shape), int(index)
        self.dtype = np.dtype("float32")
        self.ndim = len(self.shape)
        self._kept: dict[int, np.ndarray] = {}

    def __setitem__(self, where: Any, value: np.ndarray) -> None:
        if self.inner is not None:
            self.inner[where] = value
        z = 0 if where is Ellipsis else int(where)
        self._kept[z] = np.array(value[self.index], dtype=np.float32, copy=True)

    def take(self, z: int) -> np.ndarray:
        """The object probability of slice ``z`` (once: it is released)."""
        return self._kept.pop(z)


@dataclass
class SliceObjects:
    """Per-slice objects into ``store``: local ids with ``config``, or (``config`` None) the kept probability.

    Attributes
    ----------
    store : InstanceStore
    index : int
        The object class's channel among the probabilities.
    config : InstanceConfig or None
        The watershed settings; None while the ``auto`` preset is not chosen (only sampled slices run then).
    measure : bool
        Keep every slice's probability for the measurements' mean probability.
    sampling : (float, float) or None
        The Y / X voxel size the watershed measures distances in.
    """

    store: InstanceStore
    index: int
    config: InstanceConfig | None
    measure: bool
    sampling: tuple[float, float] | None
    tap: ProbabilityTap | None = None

    def job(self) -> dict:
        """Plain values for a cluster task (:meth:`from_job` rebuilds this on the worker)."""
        return {
            "store": str(self.store.path),
            "index": self.index,
            "config": None if self.config is None else dataclasses.asdict(self.config),
            "measure": self.measure,
            "sampling": None if self.sampling is None else list(self.sampling),
        }

    @classmethod
    def from_job(cls, job: dict) -> SliceObjects:
        config = None if job["config"] is None else InstanceConfig(**job["config"])
        sampling = None if job["sampling"] is None else tuple(job["sampling"])
        return cls(InstanceStore.reopen(job["store"]), job["index"], config, job["measure"], sampling)

    def tapped(self, inner: Any, n_classes: int) -> ProbabilityTap:
        """The ``probabilities_out`` to predict through (forwarding to ``inner``)."""
        spatial = tuple(self.store.ids.shape)
        shape = (*spatial[:-2], n_classes, *spatial[-2:])
        self.tap = ProbabilityTap(inner, shape, self.index)
        return self.tap

    def needs(self, z: int) -> bool:
        """Whether slice ``z`` must be predicted for its objects (nothing of it is in the store)."""
        return self.store.slice_state(z) == 0

    def written(self, z: int) -> None:
        """Slice ``z`` was predicted through the tap: store its objects (before the slice is recorded as done)."""
        probability = self.tap.take(z)
        if self.measure or self.config is None:
            self.store.keep_probability(z, probability, waiting=self.config is None)
        if self.config is not None:
            self.store.write_local(z, watershed_objects(probability, self.config, sampling=self.sampling))
