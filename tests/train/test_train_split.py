"""Validation hold-out: slices; with one painted slice, whole strokes (or a stripe) behind a guard band."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_train import blobs, classes_of, strokes_plane, tiny_config
from scipy import ndimage

from napari_unet.train._holdout import hold_out_strokes
from napari_unet.train._split import split_annotations


def _gap(split, classes, z_val, z_train) -> float:
    """Smallest distance (px, in Y/X) from a held-out pixel of slice ``z_val`` to a training pixel of ``z_train``."""
    train = (classes[z_train] >= 0) & ~split.excluded.get(z_train, np.zeros_like(classes[z_train], bool))
    return float(ndimage.distance_transform_edt(~split.val_masks[z_val])[train].min())


def test_automatic_split_holds_out_the_last_annotated_slices():
    _, labels = blobs((3, 64, 64))
    classes, k = classes_of(labels)
    s = split_annotations(classes, k, tiny_config(), 3)
    assert s.val_slices == [2] and s.train_slices == [0, 1] and s.val_masks is None and s.excluded is None
    assert s.kind == "held-out slices" and s.label == "held-out slices 2"
    s = split_annotations(classes, k, tiny_config(val_slices=(0, 1)), 3)
    assert s.val_slices == [0] and s.train_slices == [1, 2] and s.label == "held-out slices 0"
    none = split_annotations(classes, k, tiny_config(val_fraction=0.0), 3)
    assert none.val_slices == [] and none.kind == ""
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
    # automatic: neither end block keeps every class in training, so part of every slice is held out; classes 2 and
    # 3 are single strokes, so a stripe (which validates them) wins over whole strokes (which would not)
    s = split_annotations(classes, k, tiny_config(), 3)
    assert s.kind == "held-out stripe" and s.train_slices == [0, 1, 2]
    train2 = classes[2][~s.excluded[2]]
    train0 = classes[0][~s.excluded[0]]
    assert (train2 == 1).any() and (
        train0 == 2
    ).any()  # labels 2 and 3 (class indices 1, 2) keep training pixels
    assert min(_gap(s, classes, z, z) for z in range(3)) > 16


def test_single_slice_holds_out_whole_strokes_behind_a_guard_band():
    plane = strokes_plane()
    classes, k = classes_of(plane[None])
    config = tiny_config(val_guard=6)
    s = split_annotations(classes, k, config, 1)  # automatic: one painted slice, strokes are held out
    assert s.kind == "held-out strokes" and s.val_slices == [0] == s.train_slices
    held, train = s.val_masks[0], (classes[0] >= 0) & ~s.excluded[0]
    assert not (held & train).any() and _gap(s, classes, 0, 0) > 6
    assert set(np.unique(classes[0][held])) == {0, 1}  # every class validated ...
    assert set(np.unique(classes[0][train])) == {0, 1}  # ... and trained
    assert "1 of 8" in s.label or "2 of 8" in s.label
    assert "held-out strokes of 8" in s.description and "6 px" in s.description
    # whole strokes: a held-out stroke is held out entirely
    lab = ndimage.label(classes[0] >= 0, structure=np.ones((3, 3)))[0]
    for i in np.unique(lab[held]):
        assert held[lab == i].all()


def test_stroke_hold_out_is_deterministic_with_the_seed():
    plane = strokes_plane(rows=(2, 12, 22, 32, 42, 52))
    classes, k = classes_of(plane[None])
    masks = [
        split_annotations(classes, k, tiny_config(val_guard=3, seed=s), 1).val_masks[0] for s in range(6)
    ]
    again = split_annotations(classes, k, tiny_config(val_guard=3, seed=0), 1).val_masks[0]
    np.testing.assert_array_equal(masks[0], again)
    assert len({m.tobytes() for m in masks}) > 1  # another seed, other strokes


def test_guard_band_reaches_the_neighbouring_annotated_slices():
    labels = np.zeros((2, 64, 64), np.uint8)
    labels[:] = strokes_plane()
    labels[0, 60:63, 25:35] = 3  # a class only on slice 0, and one only on slice 1: no slice can be held out
    labels[1, 60:63, 25:35] = 4
    classes, k = classes_of(labels)
    s = split_annotations(classes, k, tiny_config(val_guard=6, val_fraction=0.3), 2)
    assert s.kind == "held-out strokes"
    for z in s.val_slices:
        for zz in (0, 1):
            assert _gap(s, classes, z, zz) > 6  # in Y/X, on its slice and on the other one
    assert "class(es) [2, 3] (0-based) are not validated" in s.description  # single strokes stay in training


def test_too_few_strokes_hold_out_nothing_and_say_why():
    plane = np.zeros((64, 64), np.uint8)
    plane[30:33, 5:8] = 1  # one dot per class, on one row: neither a stroke nor a stripe can be held out
    plane[30:33, 50:53] = 2
    classes, k = classes_of(plane[None])
    s = split_annotations(classes, k, tiny_config(), 1)
    assert s.val_slices == [] and s.kind == "" and s.excluded is None
    assert "no validation" in s.description and "single connected stroke" in s.description
    assert "paint a few more separate strokes" in s.description
    # strokes too close together: the guard band of any of them would take the others
    for x in range(10, 30, 4):
        plane[30:33, x : x + 2] = 1
    classes, k = classes_of(plane[None])
    why = hold_out_strokes(classes, [0], k, 0.2, 16, 0)
    assert why.startswith(
        "holding out any stroke with its 16 px guard band would leave a class with less than 50 %"
    )


def test_single_blob_per_class_holds_out_a_stripe_behind_a_guard_band():
    labels = np.zeros((64, 64), np.uint8)
    labels[5:60, 5:60] = 1
    labels[20:40, 10:55] = 2
    classes, k = classes_of(labels)
    s = split_annotations(classes, k, tiny_config(val_guard=4), 1)  # one stroke per class: a stripe
    assert s.kind == "held-out stripe" and s.val_slices == [0] == s.train_slices
    region = s.val_masks[0]
    held = classes[0][region]
    share = (held >= 0).sum() / (classes[0] >= 0).sum()
    assert 0.15 < share < 0.35
    assert set(np.unique(held[held >= 0])) == {0, 1}  # both classes validated
    assert region[:, -1].all() and not region[:, 0].any()  # a stripe at one side, not scattered pixels
    assert _gap(s, classes, 0, 0) > 4
    assert "4 px guard" in s.label


def test_a_share_smaller_than_every_stroke_holds_out_no_stroke_and_says_so():
    classes, k = classes_of(strokes_plane()[None])  # 4 strokes per class, 25 % of its pixels each
    why = hold_out_strokes(classes, [0], k, 0.1, 6, 0)
    assert why == "every stroke holds more than twice the share asked for (10 %) of its class"
    s = split_annotations(classes, k, tiny_config(val_guard=6, val_fraction=0.1), 1)
    assert s.kind == "held-out stripe"  # then a stripe, behind the same guard band
    assert _gap(s, classes, 0, 0) > 6


def test_val_guard_is_checked():
    with pytest.raises(ValueError, match="val_guard"):
        tiny_config(val_guard=-1).check()
    with pytest.raises(ValueError, match="val_guard"):
        tiny_config(val_guard=2.5).check()
