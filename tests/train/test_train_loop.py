"""The training loop end to end: learning, checkpoints, cancel, budgets, fine-tuning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_train import blobs, tiny_config

from napari_unet.checkpoint import load_checkpoint
from napari_unet.train import TrainProgress, train, train_sync
from napari_unet.train._run import lr_factor


def test_training_learns_saves_and_reloads(tmp_path):
    image, labels = blobs()
    records: list[TrainProgress] = []
    result = train_sync(
        image,
        labels,
        tiny_config(iterations=60, lr=1e-2),
        checkpoint_dir=tmp_path,
        voxel_size=(50, 4, 4),
        callback=records.append,
    )
    assert records[0].phase == "setup" and records[-1].phase == "done"
    assert [r.iteration for r in records if r.phase == "train"] == list(range(1, 61))
    vals = [r.val for r in records if r.val is not None]
    assert len(vals) >= 2 and vals[-1]["mean_dice"] > 0.8  # learnt: bright disks vs background
    loss = result.history["loss"]
    assert np.mean(loss[-10:]) < np.mean(loss[:10]) and all(math.isfinite(v) for v in loss)
    assert set(vals[-1]["per_class"]) == {1, 2}
    assert result.best_path.exists() and result.last_path.exists()
    model, meta = load_checkpoint(result.best_path)
    assert meta["label_values"] == [1, 2] and meta["voxel_size"] == (50.0, 4.0, 4.0)
    assert meta["history"]["best_val_dice"] == pytest.approx(max(result.history["val_mean_dice"]))
    assert meta["normalization"]["mode"] == "percentile"
    assert result.meta["extra"]["val_slices"] == [2]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, result.model.state_dict()[key])  # result.model is the best model
    assert not result.model.training


def test_same_seed_same_run():
    image, labels = blobs()
    a = train_sync(image, labels, tiny_config(iterations=4, val_fraction=0.0))
    b = train_sync(image, labels, tiny_config(iterations=4, val_fraction=0.0))
    c = train_sync(image, labels, tiny_config(iterations=4, val_fraction=0.0, seed=1))
    assert a.history["loss"] == b.history["loss"]
    assert a.history["loss"] != c.history["loss"]


def test_dense_mode_keeps_label_values_and_2d_and_valid_padding_work():
    image, labels = blobs((1, 64, 64))
    dense = np.where(labels[0] == 2, 255, 0).astype(np.uint8)  # ISBI-like 0/255, 2D
    result = train_sync(image[0], dense, tiny_config(dense=True, iterations=6, padding="valid"))
    assert result.meta["label_values"] == [0, 255]
    assert "stripe" not in result.meta["extra"]["validation"]  # described in words
    assert "right" in result.meta["extra"]["validation"] or "left" in result.meta["extra"]["validation"]
    assert len(result.history["val_mean_dice"]) >= 1


def test_multichannel_image():
    image, labels = blobs((2, 64, 64))
    two = np.stack([image, image[:, ::-1]], axis=1)  # (Z, C, Y, X)
    result = train_sync(two, labels, tiny_config(iterations=3))
    assert result.model.kwargs["in_channels"] == 2
    assert len(result.meta["normalization"]["low"]) == 2


def test_lazy_dask_input():
    da = pytest.importorskip("dask.array")
    image, labels = blobs()
    result = train_sync(
        da.from_array(image, chunks=(1, 64, 64)),
        da.from_array(labels, chunks=(1, 64, 64)),
        tiny_config(iterations=2),
    )
    assert result.meta["label_values"] == [1, 2]


def test_close_mid_run_keeps_a_loadable_checkpoint(tmp_path):
    image, labels = blobs()
    (tmp_path / "best.pt").write_bytes(b"stale file of an earlier run")  # must not pass for this run's model
    gen = train(image, labels, tiny_config(iterations=1000, val_every=1000), checkpoint_dir=tmp_path)
    for record in gen:
        if record.iteration == 3:
            break
    gen.close()
    for name in ("best.pt", "last.pt"):
        model, meta = load_checkpoint(tmp_path / name)
        assert meta["history"]["iteration"][-1] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_stop_command_returns_result_marked_cancelled(tmp_path):
    image, labels = blobs()
    result = train_sync(
        image,
        labels,
        tiny_config(iterations=1000),
        checkpoint_dir=tmp_path,
        callback=lambda r: "stop" if r.iteration >= 2 else None,
    )
    assert result.cancelled and result.history["iteration"][-1] == 2
    assert result.best_path.exists()


def test_time_budget_stops_training():
    image, labels = blobs()
    result = train_sync(image, labels, tiny_config(minutes=0.03, iterations=100_000, val_fraction=0.0))
    elapsed = result.history["elapsed"][-1]
    assert 1 <= result.history["iteration"][-1] < 100_000
    assert elapsed < 0.03 * 60 + 5  # one iteration past the budget at most


def test_schedule_warms_up_then_follows_the_budget_fraction():
    assert lr_factor(0, 0.0, warmup=10, min_ratio=0.0) == pytest.approx(0.1)
    assert lr_factor(20, 0.0, warmup=10, min_ratio=0.0) == pytest.approx(1.0)
    # the fraction is the larger of iteration and time shares: halfway through -> half the peak
    assert lr_factor(20, 0.5, warmup=10, min_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(20, 1.0, warmup=10, min_ratio=0.05) == pytest.approx(0.05)
    # a short time budget ends the warm-up at 10 % of the budget even before `warmup` iterations
    assert lr_factor(4, 0.05, warmup=50, min_ratio=0.0) == pytest.approx(0.5, abs=0.01)
    assert lr_factor(9, 0.1, warmup=50, min_ratio=0.0) == pytest.approx(1.0, abs=0.03)


def test_finetune_keeps_classes_and_checks_values(tmp_path):
    image, labels = blobs()
    first = train_sync(image, labels, tiny_config(iterations=3, val_fraction=0.0), checkpoint_dir=tmp_path)
    only_bg = np.where(labels == 1, 1, 0).astype(np.uint8)  # corrections of one class are enough to fine-tune
    tuned = train_sync(
        image, only_bg, tiny_config(iterations=2, val_fraction=0.0, depth=3), init=first.best_path
    )
    assert tuned.meta["label_values"] == [1, 2]
    assert tuned.model.kwargs == first.model.kwargs  # architecture of the checkpoint, not of the config
    assert tuned.meta["extra"]["finetuned_from"] == str(first.best_path)
    other = np.where(labels == 2, 7, labels).astype(np.uint8)
    with pytest.raises(ValueError, match=r"value\(s\) \[7\]"):
        train_sync(image, other, tiny_config(iterations=1), init=first.best_path)
    with pytest.raises(ValueError, match="channel"):
        train_sync(np.stack([image, image], 1), labels, tiny_config(iterations=1), init=first.best_path)
