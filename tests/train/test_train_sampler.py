"""Training patches: around annotations, class-balanced, mirrored at borders."""

from __future__ import annotations

import numpy as np

from napari_unet.model import UNet
from napari_unet.train import IGNORE
from napari_unet.train._data import AnnotatedData
from napari_unet.train._sampler import PatchSampler, reflect_index


def test_reflect_index_matches_np_pad():
    for n in (1, 2, 5, 17):
        a = np.arange(n)
        padded = np.pad(a, 40, mode="reflect")
        np.testing.assert_array_equal(a[reflect_index(np.arange(-40, n + 40), n)], padded)


def test_patches_are_centred_on_annotations_class_balanced_and_mirrored_like_prediction():
    image = np.arange(64 * 64, dtype=np.float32).reshape(1, 1, 64, 64)
    labels = np.zeros((64, 64), np.int16)
    labels[:, :] = IGNORE
    labels[60:64, 0:64] = 0  # common class along the bottom border
    labels[2, 2] = 1  # one pixel of a rare class in a corner

    data = AnnotatedData(
        images={0: image[0]}, classes={0: labels}, label_values=[1, 2], shape_yx=(64, 64), in_channels=1
    )
    model = UNet(depth=2, features=4, padding="valid")
    p = model.valid_input_size(40)
    sampler = PatchSampler(
        data,
        [0],
        normalization={"mode": "none"},
        in_size=p,
        shrink=model.shrink,
        margin=model.halo,
        augment_config=None,
        rng=np.random.default_rng(0),
    )
    x, y = sampler.sample(200)
    out = p - 2 * model.shrink
    assert x.shape == (200, 1, p, p) and y.shape == (200, out, out)
    has_rare = np.mean([(t == 1).any() for t in y])
    assert has_rare > 0.35  # the single rare pixel is in about half the patches
    assert all((t >= 0).any() for t in y)
    padded = np.pad(image[0, 0], model.halo + p, mode="reflect")
    for patch in x[:20, 0]:
        # every patch is a window of the mirror-padded image (the tiler's padding)
        oy, ox = np.unravel_index(np.argmin(np.abs(padded - patch[0, 0]) + 0), padded.shape)
        found = any(
            np.array_equal(padded[a : a + p, b : b + p], patch)
            for a, b in zip(*np.nonzero(padded == patch[0, 0]), strict=True)
        )
        assert found
