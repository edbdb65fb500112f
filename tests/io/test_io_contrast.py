"""napari_unet.io._contrast: contrast limits from a few planes."""

from __future__ import annotations

import numpy as np

from napari_unet import io


class CountingArray:
    """Array-like that records which leading indices were read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, index):
        self.reads.append(index[0])
        return self.data[index]


def test_contrast_limits_sample_a_few_planes_only():
    data = np.zeros((40, 8, 8), np.uint16)
    data[0] = 7
    data[-1, 0, 0] = 900
    counting = CountingArray(data)
    low, high = io.estimate_contrast_limits(counting)
    assert (low, high) == (0.0, 900.0)  # first and last planes are always among the samples
    assert len(counting.reads) == 5 and 0 in counting.reads and 39 in counting.reads


def test_contrast_limits_on_constant_and_nan_data():
    assert io.estimate_contrast_limits(np.full((3, 4, 4), 5, np.uint8)) == (5.0, 6.0)
    assert io.estimate_contrast_limits(np.full((2, 4, 4), np.nan, np.float32)) == (0.0, 1.0)
    floats = np.array([[[np.nan, 1.0], [2.0, 3.0]]], np.float32)
    assert io.estimate_contrast_limits(floats) == (1.0, 3.0)
