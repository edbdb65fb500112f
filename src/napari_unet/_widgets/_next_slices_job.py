"""Where to paint next, without Qt: predict a few slices of the training image and rank them by uncertainty.

:func:`next_slices_job` runs in a worker (the Train widget starts it when training ends, or on demand): it picks
the slices to look at with :func:`napari_unet.uncertainty.sample_slices` - evenly spread over those not densely
annotated, about :data:`~napari_unet.uncertainty.PIXEL_BUDGET` pixels of them (16 slices of 512 x 512, 3 of
2048 x 2048), at full resolution because a U-Net trained at one pixel size says little about a downscaled image -
predicts only those with the session's model (``predict_stack`` on a small stack of them, yielding its progress),
and returns the :func:`~napari_unet.uncertainty.rank_slices` of their normalised entropy. No Qt, no napari, and
no torch at import.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.uncertainty import SliceSuggestion, entropy_map, rank_slices, sample_slices

from ._segment_job import load_grayscale_model

__all__ = ["NextSlices", "NextSlicesRequest", "next_slices_job"]


@dataclass(frozen=True)
class NextSlicesRequest:
    """What one ranking needs, read in the GUI thread.

    ``labels`` are the annotations of the image's shape (the Labels layer's own array: only read), or None.
    """

    image: Any  # (Z, Y, X) or (Y, X)
    labels: Any | None
    model_path: Path
    device: str = "auto"
    k: int = 5
    max_slices: int = 16


@dataclass(frozen=True)
class NextSlices:
    """The ranking: the least sure slices first, the slices that were looked at, and how long it took."""

    suggestions: list[SliceSuggestion] = field(default_factory=list)
    looked_at: list[int] = field(default_factory=list)
    seconds: float = 0.0


def next_slices_job(req: NextSlicesRequest) -> Generator[Any, Any, NextSlices]:
    """Generator run in the worker: predict a sample of slices, return the :class:`NextSlices` ranking.

    Yields
    ------
    PredictProgress
        The engine's records (tiles of the sampled slices).

    Raises
    ------
    ValueError
        A model for images with several channels, in words.
    """
    from napari_unet.predict import predict_stack

    t0 = time.perf_counter()
    stack = req.image.ndim == 3
    zs = sample_slices(req.image.shape, req.labels, max_slices=req.max_slices)
    if not zs:  # every slice densely annotated: nothing left to suggest
        return NextSlices([], [], time.perf_counter() - t0)
    sample = np.stack([np.asarray(req.image[z]) for z in zs]) if stack else np.asarray(req.image)
    model, meta = load_grayscale_model(req.model_path)
    result = yield from predict_stack(sample, model, meta, want_probabilities=True, device=req.device)
    uncertainty = entropy_map(result.probabilities)
    ranked = rank_slices(uncertainty, req.labels, req.k, slices=zs if stack else None)
    return NextSlices(ranked, list(zs), time.perf_counter() - t0)
