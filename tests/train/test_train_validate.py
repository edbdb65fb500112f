"""Validation scores what predict_stack would segment."""

from __future__ import annotations

import pytest
import torch
from helpers_train import blobs, classes_of, tiny_config

from napari_unet.generators import drain
from napari_unet.model import UNet
from napari_unet.train._data import AnnotatedData
from napari_unet.train._split import split_annotations
from napari_unet.train._validate import Validator


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_validation_scores_what_predict_stack_would_segment(padding):
    from napari_unet.metrics import dice_iou
    from napari_unet.predict import predict_stack_sync

    image, labels = blobs((1, 64, 64), seed=3)
    image, labels = image[0], labels[0]
    classes, k = classes_of(labels)
    split = split_annotations(classes, k, tiny_config(val_fraction=0.2), 1)  # one slice: a stripe is held out
    assert split.val_region is not None
    torch.manual_seed(0)
    model = UNet(n_classes=2, depth=2, features=4, padding=padding, batch_norm=True).eval()
    norm = {"mode": "percentile", "low": float(image.min()), "high": float(image.max())}
    data = AnnotatedData(
        images={0: image[None]}, classes=classes, label_values=[1, 2], shape_yx=(64, 64), in_channels=1
    )
    scores = drain(Validator(data, split, norm, model).run(model, torch.device("cpu"), False))
    meta = {"normalization": norm, "label_values": [1, 2]}
    pred = predict_stack_sync(image, model, meta, tile=48).labels
    expected = dice_iou(pred, labels, [1, 2], mask=split.val_region)
    assert scores["n_pixels"] == int(split.val_region.sum())
    for value in (1, 2):
        assert scores["per_class"][value]["dice"] == pytest.approx(expected[value]["dice"], abs=1e-3)
