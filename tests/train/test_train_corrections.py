"""Corrections: the strokes a starting model gets wrong are found exactly, and the sampler can centre patches on them."""

from __future__ import annotations

import numpy as np
import torch
from helpers_train import blobs, tiny_config

from napari_unet.model import UNet
from napari_unet.predict import predict_stack_sync
from napari_unet.train import train_sync
from napari_unet.train._corrections import disagreement
from napari_unet.train._data import AnnotatedData
from napari_unet.train._sampler import PatchSampler


def test_disagreement_is_where_the_model_predicts_another_class():
    image, labels = blobs((2, 64, 64), seed=4)
    torch.manual_seed(0)
    model = UNet(n_classes=2, depth=2, features=4, padding="same").eval()
    for p in model.parameters():
        p.data.mul_(3.0)
    norm = {"mode": "percentile", "low": float(image.min()), "high": float(image.max())}
    classes = {z: np.full((64, 64), -1, np.int16) for z in (0, 1)}
    classes[0][10:50, 5:40] = (labels[0][10:50, 5:40] == 2).astype(np.int16)
    classes[1][30:60, 20:62] = (labels[1][30:60, 20:62] == 2).astype(np.int16)
    data = AnnotatedData(
        images={z: image[z][None] for z in (0, 1)},
        classes=classes,
        label_values=[1, 2],
        shape_yx=(64, 64),
        in_channels=1,
    )
    found = disagreement(model, torch.device("cpu"), data, [0, 1], norm, amp=False)
    pred = predict_stack_sync(image, model, {"normalization": norm, "label_values": [1, 2]}).labels - 1
    expected = [
        (z, y, x)
        for z in (0, 1)
        for y, x in zip(*np.nonzero((classes[z] >= 0) & (pred[z] != classes[z])), strict=True)
    ]
    assert len(expected) > 50
    assert sorted(map(tuple, found.tolist())) == sorted(expected)
    assert not model.training


def test_focus_centres_take_their_share_of_the_patches():
    image, labels = blobs((1, 64, 64))
    classes = {0: (labels[0] - 1).astype(np.int16)}
    data = AnnotatedData(
        images={0: image[0][None]}, classes=classes, label_values=[1, 2], shape_yx=(64, 64), in_channels=1
    )
    sampler = PatchSampler(
        data,
        [0],
        normalization={"mode": "none"},
        in_size=16,
        shrink=0,
        margin=4,
        augment_config=None,
        rng=np.random.default_rng(0),
    )
    sampler.set_focus(np.array([[0, 40, 40]]), 0.5)
    picks = [sampler.draw_centre() for _ in range(400)]
    share = np.mean([p == (0, 40, 40) for p in picks])
    assert 0.4 < share < 0.6


def test_finetuning_with_corrections_reports_them(tmp_path):
    image, labels = blobs()
    first = train_sync(image, labels, tiny_config(iterations=3, val_fraction=0.0), checkpoint_dir=tmp_path)
    tuned = train_sync(
        image, labels, tiny_config(iterations=2, val_fraction=0.0, correction_share=0.5), init=first.best_path
    )
    assert tuned.meta["extra"]["corrections"] > 0
    plain = train_sync(image, labels, tiny_config(iterations=2, val_fraction=0.0), init=first.best_path)
    assert plain.meta["extra"]["corrections"] == 0
