"""Metrics against hand-computed values and skimage, on small label images."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label
from skimage.metrics import adapted_rand_error

from napari_unet.metrics import (
    adapted_rand,
    adapted_rand_parts,
    confusion_matrix,
    dice_iou,
    evaluate,
    format_metrics,
    pixel_error,
)


def _cells(shape=(64, 64), step=16, membrane=2, interior=255, wall=0) -> np.ndarray:
    """A grid of square cells separated by membranes ``membrane`` px wide (ISBI-like 0/255 values)."""
    img = np.full(shape, interior, np.uint8)
    for k in range(0, shape[0], step):
        img[k : k + membrane, :] = wall
    for k in range(0, shape[1], step):
        img[:, k : k + membrane] = wall
    return img


def test_dice_iou_by_hand():
    gt = np.array([[1, 1, 0], [0, 2, 2]])
    pred = np.array([[1, 0, 0], [0, 2, 1]])
    s = dice_iou(pred, gt, [0, 1, 2])
    # class 1: gt {a, b}, pred {a, f} -> tp 1, dice 2/4, iou 1/3
    assert s[1]["dice"] == pytest.approx(0.5) and s[1]["iou"] == pytest.approx(1 / 3)
    # class 0: gt {c, d}, pred {b, c, d} -> tp 2, dice 4/5, iou 2/3
    assert s[0]["dice"] == pytest.approx(0.8) and s[0]["iou"] == pytest.approx(2 / 3)
    # class 2: gt {e, f}, pred {e} -> dice 2/3, iou 1/2
    assert s[2]["dice"] == pytest.approx(2 / 3) and s[2]["iou"] == pytest.approx(0.5)
    assert s[2]["support"] == 2 and s[2]["predicted"] == 1
    # values default to everything present; a value absent from both is nan
    assert sorted(dice_iou(pred, gt)) == [0, 1, 2]
    assert math.isnan(dice_iou(pred, gt, [7])[7]["dice"])


def test_mask_restricts_scoring_to_annotated_pixels():
    gt = np.array([[1, 1, 2, 2]])
    pred = np.array([[1, 2, 2, 1]])
    mask = np.array([[True, False, True, False]])
    s = dice_iou(pred, gt, [1, 2], mask=mask)
    assert s[1]["dice"] == 1.0 and s[2]["dice"] == 1.0
    assert pixel_error(pred, gt, mask=mask) == 0.0
    assert pixel_error(pred, gt) == 0.5


def test_confusion_matrix_keeps_caller_order_and_counts_other_values():
    gt = np.array([[5, 5, 3, 9]])
    pred = np.array([[5, 3, 3, 5]])
    cm = confusion_matrix(pred, gt, [5, 3])
    # rows: gt 5, gt 3, other(9); columns: pred 5, pred 3, other
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="distinct"):
        confusion_matrix(pred, gt, [5, 5])


def test_stack_equals_sum_of_slices():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (3, 64, 64))
    pred = rng.integers(0, 3, (3, 64, 64))
    total = sum(confusion_matrix(pred[z], gt[z], [0, 1, 2]) for z in range(3))
    np.testing.assert_array_equal(confusion_matrix(pred, gt, [0, 1, 2]), total)
    assert pixel_error(pred, gt) == pytest.approx(np.mean(pred != gt))


def test_adapted_rand_perfect_merge_split():
    gt = _cells() != 0
    assert adapted_rand(gt, gt) == pytest.approx(0.0)
    merged = gt.copy()
    merged[16:18, 2:16] = True  # a gap in one membrane merges two cells
    split = gt.copy()
    split[24:26, 18:32] = False  # a spurious membrane splits a cell
    err_merge, merge_score, split_score = adapted_rand_parts(merged, gt)
    assert err_merge > 0.01
    assert merge_score < 0.95 and split_score == pytest.approx(1.0)
    err_split, merge_score, split_score = adapted_rand_parts(split, gt)
    assert err_split > 0.01
    assert split_score < 0.99 and merge_score == pytest.approx(1.0)


def test_adapted_rand_matches_skimage_without_thinning():
    gt = _cells() != 0
    pred = gt.copy()
    pred[16:18, 2:16] = True
    expected = adapted_rand_error(label(gt, connectivity=1), label(pred, connectivity=1), ignore_labels=(0,))[
        0
    ]
    assert adapted_rand(pred, gt, thin_borders=False) == pytest.approx(expected)


def test_thick_predicted_membranes_are_not_merges_with_border_thinning():
    gt = _cells() != 0
    thick = ~ndimage.binary_dilation(~gt, iterations=2)  # membranes 6 px wide, same cells
    assert adapted_rand(thick, gt) < 1e-6
    assert adapted_rand(thick, gt, thin_borders=False) > 0.05  # predicted membrane scored as one segment


def test_adapted_rand_per_slice_and_3d():
    gt = np.stack([_cells(), _cells()]) != 0
    pred = gt.copy()
    pred[1, 16:18, 2:16] = True
    per_slice = adapted_rand(pred, gt)
    assert per_slice == pytest.approx(adapted_rand(pred[1], gt[1]) / 2)
    # in 3D the two slices' cells connect through Z: a different (but defined) number
    assert 0 <= adapted_rand(pred, gt, per_slice=False) <= 1
    assert math.isnan(adapted_rand(gt, np.zeros_like(gt)))  # no ground-truth cell: nothing to score


def test_evaluate_guesses_membrane_and_formats():
    gt = _cells()
    pred = gt.copy()
    pred[16:18, 2:16] = 255  # one membrane gap
    m = evaluate(pred, gt)
    assert m["foreground"] == 0 and m["foreground_guessed"]
    tp = np.sum((pred == 0) & (gt == 0))
    assert m["dice"] == pytest.approx(2 * tp / (np.sum(pred == 0) + np.sum(gt == 0)))
    assert m["pixel_error"] == pytest.approx(28 / gt.size)
    assert m["adapted_rand"] > 0
    assert m["per_class"][255]["gt_share"] == pytest.approx(np.mean(gt == 255))
    text = format_metrics(m)
    for word in ("Dice", "IoU", "pixel error", "adapted Rand error", "guessed", "255"):
        assert word in text


def test_evaluate_explicit_foreground_multiclass_and_ignore():
    rng = np.random.default_rng(0)
    gt = rng.integers(1, 4, (2, 32, 32))
    pred = gt.copy()
    pred[0, :4] = 1
    m = evaluate(pred, gt)
    assert m["foreground"] is None and math.isnan(m["adapted_rand"])
    assert m["dice"] == pytest.approx(m["mean_dice"])
    m2 = evaluate(pred, gt, foreground=3)
    assert m2["dice"] == pytest.approx(m2["per_class"][3]["dice"])
    assert not math.isnan(m2["adapted_rand"])
    sparse = gt.copy()
    sparse[:, :, 16:] = 0  # right half not annotated
    m3 = evaluate(pred, sparse, ignore=0)
    assert m3["n_pixels"] == 2 * 32 * 16
    assert m3["pixel_error"] == pytest.approx(np.mean(pred[:, :, :16] != gt[:, :, :16]))
    assert math.isnan(m3["adapted_rand"])  # needs complete ground truth
    assert "n/a" not in format_metrics(m3).split("per class")[0].split("pixel error")[1]


def test_evaluate_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="no annotated pixels"):
        evaluate(np.zeros((4, 4), int), np.zeros((4, 4), int), ignore=0)


# --------------------------------------------------------------------------------------------------- instances
def _brute_force_matching(pred, gt, threshold=0.5):
    """Every (true, predicted) pair's IoU from boolean masks; the best assignment by trying all of them."""
    from itertools import permutations

    g_ids = [int(v) for v in np.unique(gt) if v]
    p_ids = [int(v) for v in np.unique(pred) if v]
    iou = np.zeros((len(g_ids), len(p_ids)))
    for i, g in enumerate(g_ids):
        for j, p in enumerate(p_ids):
            a, b = gt == g, pred == p
            iou[i, j] = (a & b).sum() / (a | b).sum()
    best: list[float] = []
    # pad with "no partner" so every way of pairing is tried
    cols = list(range(len(p_ids))) + [None] * len(g_ids)
    for perm in set(permutations(cols, len(g_ids))):
        got = [iou[i, j] for i, j in enumerate(perm) if j is not None and iou[i, j] >= threshold]
        if len(got) > len(best) or (len(got) == len(best) and sum(got) > sum(best)):
            best = got
    return len(g_ids), len(p_ids), best


def test_object_matching_equals_brute_force():
    from napari_unet.metrics import match_objects

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(12):
        gt = label(ndimage.binary_opening(rng.random((24, 24)) > 0.55))
        # the prediction: the truth shifted by one pixel, one object merged into its neighbour, noise added
        pred = np.roll(gt, 1, axis=1)
        if pred.max() > 2:
            pred[pred == 2] = 1
        pred[rng.random(pred.shape) > 0.97] = 0
        n_true, n_pred, best = _brute_force_matching(pred, gt)
        if n_true > 6:
            continue  # keep the brute force small
        m = match_objects(pred, gt)
        assert (m["n_true"], m["n_pred"], m["n_matched"]) == (n_true, n_pred, len(best))
        assert m["f1"] == pytest.approx(2 * len(best) / (n_true + n_pred))
        if best:
            assert m["mean_matched_iou"] == pytest.approx(np.mean(best))
        checked += 1
    assert checked >= 3


def test_matching_by_hand():
    from napari_unet.metrics import match_objects

    gt = np.zeros((4, 8), int)
    gt[:, :4], gt[:, 4:] = 1, 2
    pred = np.zeros((4, 8), int)
    pred[:, :3] = 5  # IoU 3/4 with gt 1
    pred[:, 6:] = 6  # IoU 2/4 with gt 2: a match at 0.5
    pred[0, 3] = 7  # a speck: IoU 1/16 with gt 1, a false positive
    m = match_objects(pred, gt)
    assert (m["n_true"], m["n_pred"], m["n_matched"]) == (2, 3, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0 and m["f1"] == pytest.approx(0.8)
    assert m["mean_matched_iou"] == pytest.approx((0.75 + 0.5) / 2)
    empty = match_objects(np.zeros_like(gt), gt)
    assert empty["recall"] == 0.0 and math.isnan(empty["precision"]) and math.isnan(empty["mean_matched_iou"])


def test_instance_rand_and_voi_against_skimage_on_the_foreground():
    from skimage.metrics import variation_of_information

    from napari_unet.metrics import evaluate_instances, format_instance_metrics, instances_of

    gt_sem = _cells()
    gt = instances_of(gt_sem, 255)
    assert gt.max() == 16 and gt.dtype == np.uint32
    # merge two cells through their membrane, split another in halves
    pred = gt.astype(np.int64).copy()
    pred[gt == 2] = 1
    pred[:, 40:48][gt[:, 40:48] == 3] = 99
    m = evaluate_instances(pred, gt, thin_borders=False)
    err, _, _ = adapted_rand_error(gt.astype(np.int64), pred, ignore_labels=(0,))
    split, merge = variation_of_information(gt.astype(np.int64), pred, ignore_labels=(0,))
    assert m["adapted_rand"] == pytest.approx(err)
    assert m["voi_split"] == pytest.approx(split) and m["voi_merge"] == pytest.approx(merge)
    assert m["voi"] == pytest.approx(split + merge) and m["voi_split"] > 0 and m["voi_merge"] > 0
    # restricted to the truth's foreground: what the prediction does on truth-0 pixels does not count
    scribbled = pred.copy()
    scribbled[gt == 0] = 1000
    assert evaluate_instances(scribbled, gt, thin_borders=False)["voi"] == pytest.approx(m["voi"])
    # perfect objects
    perfect = evaluate_instances(gt, gt)
    assert perfect["adapted_rand"] == pytest.approx(0) and perfect["voi"] == pytest.approx(0)
    assert perfect["f1"] == 1.0 and perfect["mean_matched_iou"] == 1.0
    text = format_instance_metrics(m)
    assert "restricted to the ground truth's foreground" in text and "VOI" in text and "F1" in text


def test_instance_metrics_per_slice_and_3d():
    from napari_unet.metrics import evaluate_instances, instances_of

    stack = np.stack([_cells(), _cells()])
    per_slice = instances_of(stack, 255)
    assert per_slice.max() == 32  # ids unique over the stack
    volume = instances_of(stack, 255, per_slice=False)
    assert volume.max() == 16
    m2 = evaluate_instances(volume, per_slice)
    assert m2["per_slice"] and m2["n_true"] == 32 and m2["f1"] == 1.0
    m3 = evaluate_instances(volume, volume, per_slice=False)
    assert not m3["per_slice"] and m3["n_true"] == 16 and m3["f1"] == 1.0
    # 3D: an object cut into two ids between its two sections is a split (each half has IoU 0.5: one matches)
    cut = volume.copy()
    cut[1][cut[1] > 0] += 100
    m_cut = evaluate_instances(cut, volume, per_slice=False)
    assert m_cut["n_pred"] == 32 and m_cut["n_matched"] == 16 and m_cut["f1"] == pytest.approx(32 / 48)
    assert m_cut["voi_split"] == pytest.approx(1.0)  # one bit: which half
