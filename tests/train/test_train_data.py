"""Training data: input checks in words, class mapping."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_train import tiny_config

from napari_unet.train import IGNORE, train
from napari_unet.train._data import to_classes


def test_to_classes_sparse_and_dense():
    lab = np.array([[0, 3, 7], [7, 0, 3]])
    np.testing.assert_array_equal(to_classes(lab, [3, 7], dense=False), [[IGNORE, 0, 1], [1, IGNORE, 0]])
    np.testing.assert_array_equal(to_classes(lab, [0, 3, 7], dense=True), [[0, 1, 2], [2, 0, 1]])


@pytest.mark.parametrize(
    ("image_shape", "labels", "match"),
    [
        ((3, 64, 64), np.zeros((3, 64, 60), np.uint8), "shapes differ"),
        ((3, 64, 64), np.zeros((3, 64, 64), np.uint8), "no annotations"),
        (
            (3, 64, 64),
            np.where(np.eye(64, dtype=bool), 1, 0)[None].repeat(3, 0).astype(np.uint8),
            "only one class",
        ),
        ((3, 64, 64), np.ones((3, 64, 64), np.float32), "must be integers"),
        ((64, 64), np.arange(64 * 64).reshape(64, 64).astype(np.int32), "instance segmentation"),
    ],
)
def test_bad_inputs_raise_clear_errors(image_shape, labels, match):
    image = np.random.default_rng(0).random(image_shape).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        next(train(image, labels, tiny_config(iterations=1)))


def test_dense_single_value_hints_at_sparse_mode():
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="train in sparse mode"):
        next(train(image, np.zeros((64, 64), np.uint8), tiny_config(dense=True, iterations=1)))
