"""napari_unet.uncertainty: the normalised entropy map and the ranking of the slices worth painting next."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.uncertainty import (
    DENSE_SHARE,
    SliceSuggestion,
    entropy,
    entropy_map,
    rank_slices,
    sample_slices,
)


def test_entropy_is_zero_when_sure_one_when_undecided_and_matches_the_formula():
    sure = np.zeros((3, 4, 4), np.float32)
    sure[1] = 1.0
    np.testing.assert_allclose(entropy(sure), 0.0, atol=1e-6)
    np.testing.assert_allclose(entropy(np.full((3, 4, 4), 1 / 3)), 1.0, atol=1e-6)

    rng = np.random.default_rng(0)
    p = rng.random((2, 8, 8)) + 1e-3
    p /= p.sum(axis=0)
    expected = -(p * np.log(p)).sum(axis=0) / np.log(2)
    h = entropy(p)
    assert h.dtype == np.float32 and h.shape == (8, 8)
    np.testing.assert_allclose(h, expected, atol=1e-5)
    assert entropy(np.ones((1, 4, 4))).max() == 0.0  # one class: nothing to be unsure about
    np.testing.assert_allclose(entropy(np.moveaxis(p, 0, -1), axis=-1), h, atol=1e-6)


def test_entropy_map_goes_slice_by_slice_into_out():
    rng = np.random.default_rng(1)
    p = rng.random((3, 2, 6, 5)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    out = np.full((3, 6, 5), -1.0, np.float32)
    assert entropy_map(p, out) is out
    for z in range(3):
        np.testing.assert_allclose(out[z], entropy(p[z]), atol=1e-6)
    np.testing.assert_allclose(entropy_map(p[1]), entropy(p[1]), atol=1e-6)  # one (K, Y, X) image
    with pytest.raises(ValueError, match="out has shape"):
        entropy_map(p, np.zeros((3, 6, 6), np.float32))


def _stack():
    """(4, 64, 64) uncertainty: slice 2 is the most uncertain, with a hot 16 x 16 square at rows 40-55, cols 8-23."""
    u = np.full((4, 64, 64), 0.1, np.float32)
    u[1] = 0.2
    u[2] = 0.3
    u[2, 40:56, 8:24] = 0.9
    u[3] = 0.05
    return u


def test_rank_slices_orders_by_mean_uncertainty_and_finds_the_worst_window():
    ranked = rank_slices(_stack(), k=3, window=16)
    assert [s.z for s in ranked] == [2, 1, 0]
    top = ranked[0]
    assert isinstance(top, SliceSuggestion)
    assert top.box == (40, 56, 8, 24) and top.box_score == pytest.approx(0.9)
    assert top.center == (47.5, 15.5)
    assert top.score == pytest.approx((0.3 * (64 * 64 - 256) + 0.9 * 256) / (64 * 64))
    assert top.text() == f"slice 2 — {top.score:.2f}" and top.annotated == 0.0
    assert len(rank_slices(_stack(), k=10)) == 4 and rank_slices(_stack(), k=0) == []


def test_rank_slices_skips_dense_annotations_and_ignores_painted_pixels():
    u = _stack()
    labels = np.zeros(u.shape, np.uint8)
    labels[2, :40] = 1  # 62 % of slice 2 painted: dense, skipped
    labels[1, 0:32, 0:32] = 2  # a quarter of slice 1 painted: kept, those pixels do not count
    u[1, 0:32, 0:32] = 1.0  # (the model would be unsure there, but they are painted)
    ranked = rank_slices(u, labels, k=5, window=16)
    assert [s.z for s in ranked] == [1, 0, 3]
    assert ranked[0].score == pytest.approx(0.2) and ranked[0].annotated == pytest.approx(0.25)
    assert ranked[0].box_score == pytest.approx(0.2)  # the painted (hot) corner does not make the window
    y0, _y1, x0, _x1 = ranked[0].box
    assert not (y0 < 24 and x0 < 24)  # nor is a mostly painted window chosen
    assert DENSE_SHARE == 0.5


def test_rank_slices_of_a_subsample_and_of_a_2d_image():
    u = _stack()
    ranked = rank_slices(u[[1, 3]], slices=[10, 30], k=5)
    assert [s.z for s in ranked] == [10, 30]
    labels = np.zeros((40, 64, 64), np.uint8)
    labels[10] = 1
    assert [s.z for s in rank_slices(u[[1, 3]], labels, slices=[10, 30])] == [30]
    with pytest.raises(ValueError, match="2 slice indices for 4"):
        rank_slices(u, slices=[0, 1])

    single = rank_slices(u[2], k=5, window=16)
    assert len(single) == 1 and single[0].z == 0 and single[0].box == (40, 56, 8, 24)
    big_window = rank_slices(np.zeros((10, 12), np.float32), window=100)[0]
    assert big_window.box == (0, 10, 0, 12)  # the window never leaves the image


def test_sample_slices_spreads_a_pixel_budget_over_unannotated_slices():
    assert sample_slices((30, 512, 512)) == [0, 2, 4, 6, 8, 10, 12, 14, 15, 17, 19, 21, 23, 25, 27, 29]
    assert sample_slices((5, 64, 64)) == [0, 1, 2, 3, 4]  # small stacks: all of them
    assert len(sample_slices((100, 4096, 4096))) == 3  # big slices: at least min_slices
    labels = np.zeros((5, 8, 8), np.uint8)
    labels[[1, 3]] = 1
    assert sample_slices((5, 8, 8), labels) == [0, 2, 4]
    assert sample_slices((8, 8), None) == [0] and sample_slices((8, 8), np.ones((8, 8))) == []
    picks = sample_slices((40, 8, 8), max_slices=4)
    assert picks == [0, 13, 26, 39]
