"""The records stack prediction yields and returns (plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PredictProgress", "PredictResult"]


@dataclass(frozen=True)
class PredictProgress:
    """Progress of :func:`predict_stack`, yielded after every tile batch.

    Attributes
    ----------
    slice_index : int
        Position of the current slice in this run, ``0 .. n_slices - 1``.
    n_slices : int
        Slices this run predicts.
    tiles_done, tiles_total : int
        Tiles of the current slice done so far / in total.
    message : str
        One line for a status bar.
    z : int
        Index of the current slice in the image's Z axis (0 for a single slice).
    """

    slice_index: int
    n_slices: int
    tiles_done: int
    tiles_total: int
    message: str
    z: int = 0

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        if self.n_slices <= 0:
            return 1.0
        within = self.tiles_done / self.tiles_total if self.tiles_total else 0.0
        return min(1.0, (self.slice_index + within) / self.n_slices)


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict_stack` returns.

    Attributes
    ----------
    labels : array
        ``(Z, Y, X)`` (or ``(Y, X)``) label values; ``labels_out`` when given.
    probabilities : array or None
        ``(Z, K, Y, X)`` (or ``(K, Y, X)``) float32 class probabilities when requested.
    device : str
        Human description of the device used.
    tile : int
        Largest tile side used (after adjusting to sizes the network accepts and any out-of-memory shrinking).
    batch_size : int
        Tiles per forward pass at the end of the run.
    seconds : float
        Wall time of the run.
    tile_shape : (int, int)
        Input tile shape of the last slice (tiles are fitted to the slice to minimise waste).
    n_slices : int
        Slices predicted.
    notes : tuple of str
        Adjustments worth telling the user (tile rounded, out-of-memory recoveries, defaults used).
    """

    labels: Any
    probabilities: Any | None
    device: str
    tile: int
    batch_size: int
    seconds: float
    tile_shape: tuple[int, int] = (0, 0)
    n_slices: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
