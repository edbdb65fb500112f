"""Fixtures shared by the widget tests (real headless viewer, tiny real models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def errors(monkeypatch):
    """Messages the widgets send to napari as error notifications, in order."""
    from napari_unet._widgets import _notify

    seen: list[str] = []
    monkeypatch.setitem(_notify._SHOW, "error", seen.append)
    return seen


@pytest.fixture
def em_strokes():
    """(image, strokes), both (3, 64, 64) uint8: a grid of bright 'membranes' on a darker, noisy background, and
    strokes of both classes (1 membrane, 2 cell interior) on slice 0."""
    shape = (3, 64, 64)
    rng = np.random.default_rng(0)
    z, y, x = np.indices(shape)
    membrane = ((y % 16) < 2) | ((x % 16) < 2)
    image = (60 + 120 * membrane + rng.normal(0, 10, shape)).clip(0, 255).astype(np.uint8)
    strokes = np.zeros(shape, np.uint8)
    strokes[0, 16:18, 4:60] = 1  # along a membrane
    strokes[0, 4:60, 32:34] = 1
    strokes[0, 6:12, 6:12] = 2  # inside cells
    strokes[0, 38:44, 40:46] = 2
    strokes[0, 52:58, 20:26] = 2
    return image, strokes


@pytest.fixture
def tiny_model(tmp_path):
    """A real (untrained) checkpoint: 2 classes written as label values 1 and 2; (path, meta without weights)."""
    from napari_unet.checkpoint import read_checkpoint, save_checkpoint
    from napari_unet.model import UNet

    torch.manual_seed(7)  # the same weights in every run; with these both classes appear in its predictions
    model = UNet(in_channels=1, n_classes=2, depth=2, features=4)
    with torch.no_grad():  # an untrained head says ~0.5 everywhere: sharpen it so that pixels are decided
        model.head.weight.mul_(1000.0)
        model.head.bias.copy_(torch.tensor([0.0, 0.05]))  # and where no feature fires, the bias decides
    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path,
        model,
        normalization={"mode": "percentile", "low": 0.0, "high": 255.0},
        label_values=[1, 2],
        class_names=["membrane", "cell"],
    )
    meta = {k: v for k, v in read_checkpoint(path).items() if k != "state_dict"}
    return path, meta


@pytest.fixture
def two_channel_model(tmp_path):
    """A real checkpoint of a model for images with two channels per pixel (the widgets' images have one)."""
    from napari_unet.checkpoint import save_checkpoint
    from napari_unet.model import UNet

    path = tmp_path / "two_channels.pt"
    save_checkpoint(
        path,
        UNet(in_channels=2, n_classes=2, depth=2, features=4),
        normalization={"mode": "percentile", "low": 0.0, "high": 255.0},
        label_values=[1, 2],
        class_names=["a", "b"],
    )
    return path


@pytest.fixture
def engine_labels():
    """``engine_labels(checkpoint_path, image, **kwargs)``: the labels the engine's own ``predict_stack_sync``
    gives for ``image`` (CPU unless told), to compare a widget's or a job's result with."""
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack_sync

    def predict(path, image, **kwargs):
        model, meta = load_checkpoint(path)
        kwargs.setdefault("device", "cpu")
        return np.asarray(predict_stack_sync(image, model, meta, **kwargs).labels)

    return predict


TIE = 1e-4  # top-two probability gap under which the argmax is a floating-point coin toss


@pytest.fixture
def assert_engine_labels():
    """``assert_engine_labels(actual, checkpoint_path, image, **kwargs)``: ``actual`` equals the engine's labels
    for ``image`` at every pixel where the engine's decision is not a tie.

    The test models are untrained, so a few pixels have two classes within float rounding of each other; a
    different tile or batch layout (another oneDNN kernel) may tip them either way. Those pixels, and only
    those, are left out, and they must stay rare (under 0.5 %) for the comparison to mean anything."""
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack_sync

    def check(actual, path, image, **kwargs):
        model, meta = load_checkpoint(path)
        kwargs.setdefault("device", "cpu")
        result = predict_stack_sync(image, model, meta, want_probabilities=True, **kwargs)
        expected = np.asarray(result.labels)
        top2 = np.sort(np.asarray(result.probabilities), axis=-3)[..., -2:, :, :]
        decided = (top2[..., 1, :, :] - top2[..., 0, :, :]) > TIE
        actual = np.asarray(actual)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        assert decided.mean() > 0.995, f"{(~decided).sum()} tied pixels: the test model is too indecisive"
        np.testing.assert_array_equal(actual[decided], expected[decided])
        return expected

    return check
