"""Augmentations keep image and labels in register, never blend label values, and are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.transforms import (
    AugmentConfig,
    augment,
    elastic_deform,
    elastic_displacement,
    flip_rot90,
    intensity_jitter,
)


def _blocks(shape=(64, 64)) -> np.ndarray:
    """Labels made of large blocks of values -1 (ignore), 1, 2, 3: easy to track under warping."""
    lab = np.full(shape, 1, np.int16)
    lab[8:30, 8:40] = 2
    lab[36:60, 20:56] = 3
    lab[:, :4] = -1
    return lab


def test_flip_rot90_keeps_image_and_labels_in_register():
    rng = np.random.default_rng(0)
    lab = np.random.default_rng(0).integers(0, 5, (32, 32)).astype(np.int16)
    img = np.stack([lab * 1.0, lab * 2.0]).astype(np.float32)  # (C, Y, X), channel 1 = 2 x channel 0
    seen = set()
    for _ in range(64):
        out_img, out_lab = flip_rot90(img, lab, rng)
        assert out_img.shape == img.shape and out_lab.shape == lab.shape
        np.testing.assert_array_equal(out_img[0], out_lab)
        np.testing.assert_array_equal(out_img[1], 2 * out_lab)
        assert out_img.flags.c_contiguous and out_lab.flags.c_contiguous
        seen.add(out_lab.tobytes())
    assert len(seen) == 8  # all 4 rotations x 2 mirror states of a random patch occur


def test_flip_rot90_non_square_keeps_shape():
    rng = np.random.default_rng(0)
    lab = np.arange(6 * 10).reshape(6, 10)
    for _ in range(20):
        out_img, out_lab = flip_rot90(lab.astype(np.float32), lab, rng)
        assert out_lab.shape == (6, 10)
        np.testing.assert_array_equal(out_img, out_lab)


def test_displacement_statistics_and_smoothness():
    rng = np.random.default_rng(0)
    corners = []
    for _ in range(300):
        d = elastic_displacement((48, 40), rng, grid=3, sigma=10.0)
        assert d.shape == (2, 48, 40) and d.dtype == np.float32
        corners.append(d[:, 0, 0])
        # bicubic interpolation of 3 x 3 control points: smooth, no pixel-to-pixel jumps
        assert np.abs(np.diff(d, axis=1)).max() < 5 and np.abs(np.diff(d, axis=2)).max() < 5
    std = np.std(np.asarray(corners))
    assert 8.5 < std < 11.5  # control points sit on the corner pixels and have sigma = 10


def test_elastic_keeps_labels_in_register_and_never_blends_values():
    rng = np.random.default_rng(0)
    lab = _blocks()
    img = lab.astype(np.float32)
    changed = 0
    for _ in range(10):
        out_img, out_lab = elastic_deform(img, lab, rng, sigma=6.0)
        assert out_lab.dtype == lab.dtype and out_img.dtype == np.float32
        assert set(np.unique(out_lab)) <= {-1, 1, 2, 3}
        # linear image vs nearest labels: they agree everywhere except within a pixel of a boundary
        agree = np.mean(np.abs(out_img - out_lab) < 0.5)
        assert agree > 0.95
        changed += int((out_lab != lab).sum())
    assert changed > 0  # it did deform


def test_elastic_zero_sigma_is_identity_and_channels_move_together():
    rng = np.random.default_rng(0)
    lab = _blocks((40, 50))
    img = np.stack([lab, lab]).astype(np.float32)
    out_img, out_lab = elastic_deform(img, lab, rng, sigma=0.0)
    np.testing.assert_array_equal(out_lab, lab)
    np.testing.assert_allclose(out_img, img, atol=1e-5)
    out_img, _ = elastic_deform(img, lab, rng, sigma=8.0)
    np.testing.assert_array_equal(out_img[0], out_img[1])


def test_intensity_jitter_identity_and_exact_offset():
    rng = np.random.default_rng(0)
    img = np.random.default_rng(1).random((2, 16, 16)).astype(np.float32)
    same = intensity_jitter(img, rng, gain=(1, 1), offset=(0, 0), gamma=(1, 1), noise=0, blur_p=0)
    np.testing.assert_allclose(same, img)
    shifted = intensity_jitter(img, rng, gain=(2, 2), offset=(0.5, 0.5), gamma=(1, 1), noise=0, blur_p=0)
    np.testing.assert_allclose(shifted, img * 2 + 0.5, rtol=1e-6)
    varied = intensity_jitter(img, rng)
    assert varied.shape == img.shape and varied.dtype == np.float32
    assert not np.allclose(varied, img)


def test_gamma_keeps_order_of_negative_values():
    rng = np.random.default_rng(0)
    img = np.linspace(-0.5, 1.5, 101, dtype=np.float32)[None]
    out = intensity_jitter(img, rng, gain=(1, 1), offset=(0, 0), gamma=(0.5, 0.5), noise=0, blur_p=0)
    assert np.all(np.diff(out[0]) > 0)  # monotonic: darker stays darker


def test_augment_is_reproducible_and_respects_config():
    lab = _blocks()
    img = (lab * 0.25).astype(np.float32)
    a = augment(img, lab, np.random.default_rng(3))
    b = augment(img, lab, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    off = AugmentConfig(flip=False, rot90=False, elastic=False, intensity=False)
    c_img, c_lab = augment(img, lab, np.random.default_rng(3), off)
    np.testing.assert_array_equal(c_lab, lab)
    np.testing.assert_array_equal(c_img, img)
    only_img, none = augment(img, None, np.random.default_rng(3))
    assert none is None and only_img.shape == img.shape


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="shapes differ"):
        augment(np.zeros((10, 10), np.float32), np.zeros((10, 12), np.int16), rng)
    with pytest.raises(ValueError, match=r"\(Y, X\) or \(C, Y, X\)"):
        augment(np.zeros((2, 2, 10, 10), np.float32), None, rng)
    with pytest.raises(ValueError, match="elastic_grid"):
        AugmentConfig(elastic_grid=1)
    with pytest.raises(ValueError, match="probabilities"):
        AugmentConfig(elastic_p=1.5)
    with pytest.raises(ValueError, match="gain"):
        AugmentConfig(gain=(1.2, 0.8))
