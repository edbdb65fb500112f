"""Checkpoints: plain-dict round trip, safe loading (no code execution), clear errors for foreign files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from napari_unet.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    build_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from napari_unet.model import UNet

NORM = {"mode": "percentile", "low": np.float64(12.5), "high": 231.0, "low_pct": 1.0, "high_pct": 99.8}


def _save(path, model=None, **overrides):
    model = model or UNet(depth=2, features=4, batch_norm=True)
    kwargs = dict(
        normalization=NORM,
        label_values=[0, 255],
        class_names=["membrane", "cell"],
        voxel_size=(50.0, 4.0, 4.0),
        history={"iteration": np.arange(3), "loss": [np.float32(0.5), 0.4, 0.3]},
        extra={"config": {"patch": 64, "dense": False}, "source": ("a.tif", 3)},
    )
    kwargs.update(overrides)
    save_checkpoint(path, model, **kwargs)
    return model


def test_round_trip_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(0)
    model = UNet(depth=2, features=4, batch_norm=True)
    model.train()
    model(torch.randn(2, 1, 36, 36))  # move BatchNorm running statistics away from their defaults
    path = tmp_path / "sub" / "model.pt"
    _save(path, model)
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, UNet) and not loaded.training
    assert loaded.kwargs == model.kwargs
    model.eval()
    x = torch.randn(1, 1, 36, 36)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta["format"] == "napari-unet" and meta["version"] == CHECKPOINT_VERSION
    assert "state_dict" not in meta
    assert meta["normalization"]["low"] == 12.5 and isinstance(meta["normalization"]["low"], float)
    assert meta["label_values"] == [0, 255]
    assert meta["class_names"] == ["membrane", "cell"]
    assert meta["voxel_size"] == (50.0, 4.0, 4.0)
    assert meta["history"]["iteration"] == [0, 1, 2]
    assert meta["history"]["loss"] == pytest.approx([0.5, 0.4, 0.3])
    assert meta["extra"]["source"] == ("a.tif", 3)
    # Only the final file is left: the temporary file was renamed.
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw, dict) and isinstance(raw["state_dict"], dict)
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    assert read_checkpoint(path)["model_kwargs"] == raw["model_kwargs"]


def test_build_checkpoint_meta_only():
    meta = build_checkpoint(
        UNet(depth=2, features=4),
        normalization=NORM,
        label_values=[1, 2],
        class_names=["a", "b"],
        include_state=False,
    )
    assert "state_dict" not in meta and meta["model_kwargs"]["depth"] == 2


class _Payload:
    """Pickles to a call that creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_does_not_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-unet", "version": 1, "state_dict": {}, "x": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt was refused.*could run code.*posix\.system"):
        load_checkpoint(path)
    assert not marker.exists()

    # The payload is real: a plain unpickler does run it (so the assertion above can fail).
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_Payload(marker)))
    pickle.loads(plain.read_bytes())
    assert marker.exists()


def test_foreign_files_give_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match=r"notes\.txt is not a napari-unet checkpoint"):
        load_checkpoint(text)

    other = tmp_path / "other.pt"
    torch.save({"model_state": {"w": torch.zeros(1)}, "init": {}}, other)
    with pytest.raises(
        CheckpointError, match=r"other\.pt is not a napari-unet checkpoint.*'init', 'model_state'"
    ):
        load_checkpoint(other)

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="found Tensor"):
        load_checkpoint(tensor)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        load_checkpoint(empty)

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_newer_version_and_broken_contents(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    ckpt = torch.load(path, weights_only=True)

    newer = dict(ckpt, version=CHECKPOINT_VERSION + 1)
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match=r"newer napari-unet.*version 2 > 1"):
        load_checkpoint(tmp_path / "newer.pt")

    missing = {k: v for k, v in ckpt.items() if k != "label_values"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing \['label_values'\]"):
        load_checkpoint(tmp_path / "missing.pt")

    wrong = dict(ckpt, model_kwargs=dict(ckpt["model_kwargs"], features=8))
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match=r"stored weights do not fit UNet"):
        load_checkpoint(tmp_path / "wrong.pt")

    bad_kwargs = dict(ckpt, model_kwargs=dict(ckpt["model_kwargs"], colour="red"))
    torch.save(bad_kwargs, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="cannot rebuild the U-Net"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"label_values": [0, 1, 2]}, "3 entries for a model with 2 classes"),
        ({"class_names": ["only"]}, "1 entries for a model with 2 classes"),
        ({"label_values": [0, 70000]}, "65535"),
        ({"label_values": [3, 3]}, "distinct"),
        ({"normalization": {"mode": "percentile", "low": 5.0, "high": 5.0}}, "low < high"),
    ],
)
def test_save_validates_metadata(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        _save(tmp_path / "m.pt", **overrides)
    assert not list(tmp_path.iterdir())


def test_save_rejects_arbitrary_objects(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['fn'\] holds a function"):
        _save(tmp_path / "m.pt", extra={"fn": lambda: 1})


def test_save_always_writes_the_weights(tmp_path):
    # save_checkpoint takes build_checkpoint's keywords, except the one that would leave the weights out
    with pytest.raises(TypeError, match="include_state"):
        _save(tmp_path / "m.pt", include_state=False)
    with pytest.raises(TypeError, match="normalization"):
        save_checkpoint(
            tmp_path / "m.pt", UNet(depth=2, features=4), label_values=[0, 1], class_names=["a", "b"]
        )
    assert not list(tmp_path.iterdir())
