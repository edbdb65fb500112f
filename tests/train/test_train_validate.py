"""Validation scores what predict_stack would segment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_train import blobs, classes_of, strokes_plane, tiny_config

from napari_unet.generators import drain
from napari_unet.model import UNet
from napari_unet.train import train_sync
from napari_unet.train._data import AnnotatedData
from napari_unet.train._split import split_annotations, training_view
from napari_unet.train._validate import Validator


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_validation_scores_what_predict_stack_would_segment(padding):
    from napari_unet.metrics import dice_iou
    from napari_unet.predict import predict_stack_sync

    image, labels = blobs((1, 64, 64), seed=3)
    image, labels = image[0], labels[0]
    classes, k = classes_of(labels)
    split = split_annotations(classes, k, tiny_config(val_guard=4), 1)  # one slice: part of it is held out
    assert split.val_masks is not None
    held = split.val_masks[0]
    torch.manual_seed(0)
    model = UNet(n_classes=2, depth=2, features=4, padding=padding, batch_norm=True).eval()
    norm = {"mode": "percentile", "low": float(image.min()), "high": float(image.max())}
    data = AnnotatedData(
        images={0: image[None]}, classes=classes, label_values=[1, 2], shape_yx=(64, 64), in_channels=1
    )
    scores = drain(Validator(data, split, norm, model).run(model, torch.device("cpu"), False))
    meta = {"normalization": norm, "label_values": [1, 2]}
    pred = predict_stack_sync(image, model, meta, tile=48).labels
    expected = dice_iou(pred, labels, [1, 2], mask=held)
    assert scores["n_pixels"] == int(held.sum())
    assert scores["kind"] == split.kind and scores["label"] == split.label
    for value in (1, 2):
        assert scores["per_class"][value]["dice"] == pytest.approx(expected[value]["dice"], abs=1e-3)


def test_training_never_sees_the_held_out_strokes_or_their_guard_band():
    plane = strokes_plane()
    classes, k = classes_of(plane[None])
    split = split_annotations(classes, k, tiny_config(val_guard=6), 1)
    data = AnnotatedData(
        images={0: plane[None].astype(np.float32)},
        classes=classes,
        label_values=[1, 2],
        shape_yx=(64, 64),
        in_channels=1,
    )
    seen = training_view(data, split).classes[0]
    excluded = split.excluded[0]
    assert (seen[excluded] == -1).all() and (seen[split.val_masks[0]] == -1).all()
    np.testing.assert_array_equal(seen[~excluded], classes[0][~excluded])  # the rest trains unchanged
    assert data.classes[0] is classes[0] and (classes[0][split.val_masks[0]] >= 0).all()  # the input is kept


def test_one_painted_slice_reports_a_labelled_validation_score():
    image, _ = blobs((1, 64, 64), seed=1)
    labels = strokes_plane()
    records = []
    result = train_sync(image[0], labels, tiny_config(iterations=6, val_guard=6), callback=records.append)
    assert "held-out strokes of 8" in records[0].message  # the setup line says what validates
    vals = [r.val for r in records if r.val]
    assert vals and all(v["kind"] == "held-out strokes" for v in vals)
    assert vals[-1]["label"].startswith("held-out strokes (") and "6 px guard" in vals[-1]["label"]
    assert "(held-out strokes)" in next(r.message for r in records if r.val)
    extra = result.meta["extra"]
    assert extra["validation_kind"] == "held-out strokes" and extra["validation_label"] == vals[-1]["label"]


def test_too_few_strokes_train_without_validation_and_say_why():
    image, _ = blobs((1, 64, 64), seed=1)
    labels = np.zeros((64, 64), np.uint8)
    labels[30:33, 5:8] = 1
    labels[30:33, 50:53] = 2
    records = []
    result = train_sync(image[0], labels, tiny_config(iterations=3), callback=records.append)
    assert "no validation" in records[0].message and "single connected stroke" in records[0].message
    assert not [r for r in records if r.val] and result.meta["extra"]["validation_kind"] == ""


def test_a_later_model_close_to_the_best_on_held_out_strokes_is_kept(monkeypatch):
    """Scores on held-out strokes saturate and wobble: within STROKES_MARGIN a later model replaces the best;
    on held-out slices the strict maximum stands."""
    import math
    from types import SimpleNamespace

    from napari_unet.train import _run
    from napari_unet.train._split import KIND_SLICES, KIND_STROKES

    def record(kind, scores):
        run = SimpleNamespace(
            split=SimpleNamespace(kind=kind),
            best_dice=-math.inf,
            top_dice=-math.inf,
            iteration=0,
            history={
                k: []
                for k in (
                    "val_iteration",
                    "val_elapsed",
                    "val_mean_dice",
                    "val_dice",
                    "val_mean_iou",
                    "val_accuracy",
                )
            }
            | {"val_class_dice": {1: []}, "best_iteration": None, "best_val_dice": None},
            model=SimpleNamespace(state_dict=lambda: {}),
            best_path=None,
            last_path=None,
            elapsed=lambda: 0.0,
            save=lambda path: None,
        )
        kept = []
        for it, dice in enumerate(scores, start=1):
            run.iteration = it
            s = {"mean_dice": dice, "mean_iou": dice, "accuracy": dice, "per_class": {1: {"dice": dice}}}
            _run.TrainingRun._record_validation(run, s, 0.0)
            kept.append(run.history["best_iteration"])
        return kept

    wobble = [0.90, 0.940, 0.936, 0.932, 0.925, 0.938]
    assert record(KIND_STROKES, wobble) == [1, 2, 3, 4, 4, 6]  # 0.925 is more than 0.01 below the top 0.940
    assert record(KIND_SLICES, wobble) == [1, 2, 2, 2, 2, 2]
