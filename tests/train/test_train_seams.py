"""Seams where two parts of the engine must agree: training vs prediction padding, image vs labels mirroring,
validation crops vs whole-slice prediction, fine-tuning vs the checkpoint it starts from.

Each test here was checked by planting the bug it names in the code and seeing it fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_train import blobs, tiny_config

from napari_unet.checkpoint import load_checkpoint
from napari_unet.generators import drain
from napari_unet.metrics import dice_iou
from napari_unet.model import UNet
from napari_unet.predict import predict_stack_sync
from napari_unet.tiling import iter_tiled_predict, tile_grid
from napari_unet.train import train_sync
from napari_unet.train._data import AnnotatedData
from napari_unet.train._sampler import PatchSampler
from napari_unet.train._split import Split
from napari_unet.train._validate import Validator

N = 64


def _what_the_tiler_feeds(image: np.ndarray, halo: int) -> np.ndarray:
    """The mirror-padded image exactly as the tiler hands it to the network, rebuilt from the tiles it passes."""
    tile = 40 + 2 * halo
    seen: list[np.ndarray] = []

    def record(batch: np.ndarray) -> np.ndarray:
        seen.extend(batch[:, 0].copy())
        return np.zeros((len(batch), 1, *batch.shape[-2:]), np.float32)

    drain(
        iter_tiled_predict(
            image[None], record, tile=tile, halo=halo, shrink=0, align=1, batch_size=1, n_out=1
        )
    )
    grid = tile_grid(image.shape, tile=tile, halo=halo, shrink=0, align=1)
    padded = np.full(grid.padded_shape, np.nan, np.float32)
    for (oy, ox), t in zip(grid.origins(), seen, strict=True):
        padded[oy : oy + tile, ox : ox + tile] = t
    (by, _), (bx, _) = grid.pad
    assert by == halo and bx == halo  # padded coordinates start `halo` pixels before the image
    return padded


def _sampler(classes: np.ndarray, model: UNet, image: np.ndarray, seed: int = 0) -> PatchSampler:
    data = AnnotatedData(
        images={0: image[None]}, classes={0: classes}, label_values=[1, 2], shape_yx=(N, N), in_channels=1
    )
    return PatchSampler(
        data,
        [0],
        normalization={"mode": "none"},
        in_size=model.valid_input_size(40),
        shrink=model.shrink,
        margin=model.halo,
        augment_config=None,
        rng=np.random.default_rng(seed),
    )


def _border_classes(seed: int = 0) -> np.ndarray:
    """Random classes on every pixel of a band along all four borders (patches then reach past every edge)."""
    classes = np.random.default_rng(seed).integers(0, 2, (N, N)).astype(np.int16)
    classes[6:-6, 6:-6] = -1
    return classes


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_training_patches_are_windows_of_what_the_tiler_feeds_the_network(padding):
    """Training must see out-of-image context mirrored the way prediction mirrors it."""
    image = np.arange(N * N, dtype=np.float32).reshape(N, N)
    model = UNet(depth=2, features=4, padding=padding)
    padded = _what_the_tiler_feeds(image, model.halo)
    x, _ = _sampler(_border_classes(), model, image).sample(120)
    p = x.shape[-1]
    outside = 0
    for patch in x[:, 0]:
        # the patch's top-left value is unique in the image; find where the window sits in the padded frame
        hits = [
            (a, b)
            for a, b in zip(*np.nonzero(padded == patch[0, 0]), strict=True)
            if a + p <= padded.shape[0]
            and b + p <= padded.shape[1]
            and np.array_equal(padded[a : a + p, b : b + p], patch)
        ]
        assert hits, "a training patch is not a window of the tiler's padded image"
        a, b = hits[0]
        outside += a < model.halo or b < model.halo or a + p > model.halo + N or b + p > model.halo + N
    assert outside > 20  # many patches reach past a border, so the mirroring itself is compared


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_training_labels_are_mirrored_with_their_image(padding):
    """Each target pixel is the label of the image pixel under it, also where the patch reaches past a border."""
    image = np.arange(N * N, dtype=np.float32).reshape(N, N)  # a value names its source pixel
    classes = _border_classes(seed=1)
    model = UNet(depth=2, features=4, padding=padding)
    x, y = _sampler(classes, model, image, seed=2).sample(120)
    s = model.shrink
    p = x.shape[-1]
    source = x[:, 0, s : p - s, s : p - s].astype(np.int64)
    np.testing.assert_array_equal(y, classes[source // N, source % N])


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_validation_of_an_interior_box_equals_whole_slice_prediction(padding):
    """Held-out annotations away from the borders (and off the tile phase): the validation crop must score the
    very pixels that predict_stack segments there."""
    image, labels = blobs((2, N, N), seed=5)
    classes = np.full((2, N, N), -1, np.int16)
    box = (slice(21, 46), slice(13, 38))
    classes[1][box] = (labels[1][box] == 2).astype(np.int16)
    classes[0][5:20, 5:20] = (labels[0][5:20, 5:20] == 2).astype(np.int16)
    torch.manual_seed(1)
    model = UNet(n_classes=2, depth=2, features=4, padding=padding, batch_norm=True).eval()
    for p in model.parameters():
        p.data.mul_(3.0)  # a random model with confident, spatially varied predictions
    norm = {"mode": "percentile", "low": float(image.min()), "high": float(image.max())}
    data = AnnotatedData(
        images={z: image[z][None] for z in range(2)},
        classes={0: classes[0], 1: classes[1]},
        label_values=[1, 2],
        shape_yx=(N, N),
        in_channels=1,
    )
    split = Split(train_slices=[0], val_slices=[1], description="slice 1")
    scores = drain(Validator(data, split, norm, model).run(model, torch.device("cpu"), False))
    pred = predict_stack_sync(
        image[1], model, {"normalization": norm, "label_values": [1, 2]}, tile=48
    ).labels
    mask = classes[1] >= 0
    truth = np.where(mask, classes[1] + 1, 0)
    expected = dice_iou(pred, truth, [1, 2], mask=mask)
    assert len(np.unique(pred[mask])) == 2  # both classes predicted: a shifted crop changes the counts
    assert scores["n_pixels"] == int(mask.sum())
    for value in (1, 2):
        assert scores["per_class"][value]["dice"] == pytest.approx(expected[value]["dice"], abs=1e-9)
        assert scores["per_class"][value]["iou"] == pytest.approx(expected[value]["iou"], abs=1e-9)


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters()}


def test_finetuning_starts_from_the_checkpoint_weights(tmp_path):
    image, labels = blobs()
    first = train_sync(
        image, labels, tiny_config(iterations=15, val_fraction=0.0, lr=1e-2), checkpoint_dir=tmp_path
    )
    start, _ = load_checkpoint(first.best_path)
    # one step at a learning rate too small to move anything: the weights must still be the checkpoint's
    tuned = train_sync(
        image, labels, tiny_config(iterations=1, val_fraction=0.0, lr=1e-12), init=first.best_path
    )
    fresh = train_sync(image, labels, tiny_config(iterations=1, val_fraction=0.0, lr=1e-12))
    before, after, new = _parameters(start), _parameters(tuned.model), _parameters(fresh.model)
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, atol=1e-6, rtol=0)
    assert any(not torch.allclose(new[name], value, atol=1e-3) for name, value in before.items())
