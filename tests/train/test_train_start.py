"""Where a new model starts: the EM-pretrained body shipped in the package, a fresh head, or random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_train import blobs

from napari_unet.checkpoint import load_checkpoint
from napari_unet.config import TrainConfig
from napari_unet.train import pretrained_checkpoint, pretrained_path, train_sync
from napari_unet.train._start import new_model

# The default architecture (the pretrained one) on small patches: a few iterations take about a second.
SMALL = {"patch": 48, "batch_size": 2, "val_every": 5}


def _body(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def test_the_shipped_model_is_small_and_says_what_it_saw():
    path = pretrained_path()
    assert path.is_file() and path.stat().st_size < 5e6
    assert (path.parent / "MODEL_CARD.md").is_file()
    ckpt = pretrained_checkpoint()
    info = ckpt["extra"]["pretrained"]
    # The honest data rule: never the sample (ISBI 0-9), ISBI 25-29 or Lucchi 135-164.
    assert info["isbi_label_slices"] == [10, 24] and info["lucchi_label_slices"] == [0, 129]
    default = TrainConfig()
    for name in ("depth", "features", "padding", "batch_norm"):
        assert ckpt["model_kwargs"][name] == getattr(default, name)  # the default new model can use it
    assert ckpt["model_kwargs"]["in_channels"] == 1


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_a_new_model_takes_the_pretrained_body_and_a_fresh_head(n_classes):
    model, start = new_model(TrainConfig(), 1, n_classes)
    assert start == "EM-pretrained (fresh head)"
    shipped = _body(pretrained_checkpoint()["state_dict"])
    mine = model.state_dict()
    assert _body(mine).keys() == shipped.keys()
    for key, value in shipped.items():
        torch.testing.assert_close(mine[key], value)
    assert mine["head.weight"].shape[0] == n_classes
    again, _ = new_model(TrainConfig(), 1, n_classes)
    torch.testing.assert_close(again.state_dict()["head.weight"], mine["head.weight"])  # seeded head


@pytest.mark.parametrize(
    ("config", "in_channels", "reason"),
    [
        (TrainConfig(start="scratch"), 1, "from scratch"),
        (TrainConfig(depth=3), 1, "architecture asked for (depth 3)"),
        (TrainConfig(padding="valid"), 1, "padding valid"),
        (TrainConfig(), 2, "the image has 2 channels"),
    ],
)
def test_otherwise_random_weights_and_the_reason(config, in_channels, reason):
    model, start = new_model(config, in_channels, 2)
    assert start.startswith("random weights") and reason in start
    shipped = pretrained_checkpoint()["state_dict"]
    first = next(k for k in shipped if k.endswith("weight"))
    mine = model.state_dict()[first]
    assert mine.shape != shipped[first].shape or not torch.equal(mine, shipped[first])


def test_fine_tuning_fits_any_label_values_on_the_pretrained_body(tmp_path):
    image, labels = blobs()
    sparse = labels.astype(np.uint16)
    sparse[labels == 2] = 1000  # classes 1 and 1000
    sparse[:, :, :20] = 0  # not annotated
    records = []
    result = train_sync(
        image, sparse, TrainConfig(**SMALL, iterations=3), checkpoint_dir=tmp_path, callback=records.append
    )
    assert "start: EM-pretrained (fresh head)" in records[0].message
    model, meta = load_checkpoint(result.best_path)
    assert meta["label_values"] == [1, 1000] and meta["extra"]["start"] == "EM-pretrained (fresh head)"
    assert model.head.weight.shape[0] == 2


def test_three_classes_and_scratch_through_train():
    image, labels = blobs()
    three = labels.copy()
    three[:, :8] = 3
    pre = train_sync(image, three, TrainConfig(**SMALL, iterations=2))
    scratch = train_sync(image, three, TrainConfig(**SMALL, iterations=2, start="scratch"))
    assert pre.meta["label_values"] == [1, 2, 3] and pre.model.head.weight.shape[0] == 3
    assert pre.meta["extra"]["start"].startswith("EM-pretrained")
    assert scratch.meta["extra"]["start"] == "random weights (from scratch)"


def test_start_must_be_known():
    with pytest.raises(ValueError, match="start must be 'pretrained' or 'scratch'"):
        TrainConfig(start="imagenet").check()


def test_another_pretrained_body_from_the_environment(tmp_path, monkeypatch):
    from napari_unet.checkpoint import save_checkpoint
    from napari_unet.model import UNet

    own = UNet(in_channels=1, n_classes=4, depth=4, features=8, padding="same", batch_norm=True)
    path = tmp_path / "own.pt"
    save_checkpoint(
        path, own, label_values=[1, 2, 3, 4], class_names=list("abcd"), normalization={"mode": "none"}
    )
    monkeypatch.setenv("NAPARI_UNET_PRETRAINED", str(path))
    model, start = new_model(TrainConfig(), 1, 2)
    assert start == "EM-pretrained (fresh head)"
    torch.testing.assert_close(_body(model.state_dict()), _body(own.state_dict()))
    monkeypatch.setenv("NAPARI_UNET_PRETRAINED", str(tmp_path / "missing.pt"))
    _, start = new_model(TrainConfig(), 1, 2)
    assert start.startswith("random weights: the EM-pretrained model") and "missing" in start
