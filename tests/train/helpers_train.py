"""Data and configurations shared by the training tests (tiny models, <= 3 x 64 x 64 arrays)."""

from __future__ import annotations

import numpy as np

from napari_unet.config import TrainConfig
from napari_unet.train._data import collect_annotations, to_classes

TINY = {"depth": 2, "features": 4, "patch": 48, "batch_size": 2, "val_every": 5}


def blobs(shape=(3, 64, 64), seed=0):
    """Bright disks (label 2) on a darker background (label 1), with noise: learnable in a few iterations."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    labels = np.ones(shape, np.uint8)
    yy, xx = np.mgrid[:ny, :nx]
    for z in range(nz):
        for _ in range(5):
            cy, cx, r = rng.integers(8, ny - 8), rng.integers(8, nx - 8), rng.integers(5, 10)
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
    image = (60 + 100 * (labels == 2) + rng.normal(0, 15, shape)).astype(np.float32)
    return image, labels


def strokes_plane(shape=(64, 64), rows=(4, 20, 36, 52)) -> np.ndarray:
    """Separate straight strokes (3 px thick): label 1 on the left half, label 2 on the right half."""
    plane = np.zeros(shape, np.uint8)
    for y in rows:
        plane[y : y + 3, 2:22] = 1
        plane[y : y + 3, 40:62] = 2
    return plane


def tiny_config(**kw) -> TrainConfig:
    """The tiny network of the unit tests, with ``kw`` on top."""
    return TrainConfig(**{**TINY, **kw})


def classes_of(labels, dense=False):
    """Class-index planes of ``labels`` (as training maps them) and the number of classes."""
    _, raw, values = collect_annotations(np.zeros(labels.shape, np.float32), labels, dense)
    return {z: to_classes(v, values, dense) for z, v in raw.items()}, len(values)
