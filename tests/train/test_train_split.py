"""Validation hold-out: slices, and stripes of a single slice."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_train import blobs, classes_of, tiny_config

from napari_unet.train._split import split_annotations


def test_automatic_split_holds_out_the_last_annotated_slices():
    _, labels = blobs((3, 64, 64))
    classes, k = classes_of(labels)
    s = split_annotations(classes, k, tiny_config(), 3)
    assert s.val_slices == [2] and s.train_slices == [0, 1] and s.val_region is None
    s = split_annotations(classes, k, tiny_config(val_slices=(0, 1)), 3)
    assert s.val_slices == [0] and s.train_slices == [1, 2]
    assert split_annotations(classes, k, tiny_config(val_fraction=0.0), 3).val_slices == []
    with pytest.raises(ValueError, match="hold no annotated slice"):
        split_annotations(classes, k, tiny_config(val_slices=(5, 7)), 8)
    with pytest.raises(ValueError, match="nothing to train on"):
        split_annotations(classes, k, tiny_config(val_slices=(0, 3)), 3)


def test_split_refuses_to_hold_out_the_only_examples_of_a_class():
    labels = np.zeros((3, 64, 64), np.uint8)
    labels[:, :10] = 1
    labels[2, 40:50] = 2  # class 2 only on the last slice
    labels[0, 40:50] = 3  # class 3 only on the first
    classes, k = classes_of(labels)
    with pytest.raises(ValueError, match="no training annotation"):
        split_annotations(classes, k, tiny_config(val_slices=(2, 3)), 3)
    # automatic: neither end block keeps every class in training, so a stripe of every slice is held out
    s = split_annotations(classes, k, tiny_config(), 3)
    assert s.val_region is not None and s.train_slices == [0, 1, 2]
    assert (classes[2][~s.val_region] == 1).any()  # label 2 (class index 1) keeps training pixels
    assert (classes[0][~s.val_region] == 2).any()  # label 3 (class index 2) too


def test_single_slice_holds_out_a_stripe_with_every_class():
    labels = np.zeros((64, 64), np.uint8)
    labels[5:60, 5:60] = 1
    labels[20:40, 10:55] = 2
    classes, k = classes_of(labels)
    s = split_annotations(
        classes, k, tiny_config(), 1
    )  # automatic: a single painted slice trains on all of its strokes
    assert s.val_slices == [] and s.val_region is None and s.train_slices == [0]
    assert "single annotated slice" in s.description
    s = split_annotations(classes, k, tiny_config(val_fraction=0.2), 1)  # asked for: a stripe
    assert s.val_slices == [0] == s.train_slices
    region = s.val_region
    held = classes[0][region]
    share = (held >= 0).sum() / (classes[0] >= 0).sum()
    assert 0.15 < share < 0.35
    assert set(np.unique(held[held >= 0])) == {0, 1}  # both classes validated
    assert region[:, -1].all() and not region[:, 0].any()  # a stripe at one side, not scattered pixels
