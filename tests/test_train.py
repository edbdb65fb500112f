"""Training engine: input checks, splits, patch sampling, loss, checkpoints, cancel, fine-tuning.

Tiny models (depth 2, 4 features) on <= 3 x 64 x 64 arrays; accuracy on real EM lives in benchmarks/bench_train.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_unet.checkpoint import load_checkpoint
from napari_unet.model import UNet
from napari_unet.train import (
    IGNORE,
    TrainConfig,
    TrainProgress,
    _collect,
    _lr_factor,
    _PatchSampler,
    _reflect_index,
    _split,
    _to_classes,
    class_weights,
    segmentation_loss,
    train,
    train_sync,
)

TINY = {"depth": 2, "features": 4, "patch": 48, "batch_size": 2, "val_every": 5}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are latency-bound: one intra-op thread is faster, and far faster on a busy shared machine
    (two OpenMP threads wait on each other at every small op when the cores are oversubscribed)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _blobs(shape=(3, 64, 64), seed=0):
    """Bright disks (label 2) on a darker background (label 1), with noise: learnable in a few iterations."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    labels = np.ones(shape, np.uint8)
    yy, xx = np.mgrid[:ny, :nx]
    for z in range(nz):
        for _ in range(5):
            cy, cx, r = rng.integers(8, ny - 8), rng.integers(8, nx - 8), rng.integers(5, 10)
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
    image = (60 + 100 * (labels == 2) + rng.normal(0, 15, shape)).astype(np.float32)
    return image, labels


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


# ------------------------------------------------------------------------------------------------ pure pieces
def test_reflect_index_matches_np_pad():
    for n in (1, 2, 5, 17):
        a = np.arange(n)
        padded = np.pad(a, 40, mode="reflect")
        np.testing.assert_array_equal(a[_reflect_index(np.arange(-40, n + 40), n)], padded)


def test_class_weights_inverse_frequency_clipped():
    w = class_weights([900, 100], power=1.0, max_ratio=100)
    assert w[1] / w[0] == pytest.approx(9.0)
    assert (w * np.array([0.9, 0.1])).sum() == pytest.approx(1.0)  # average weight per pixel is 1
    w = class_weights([9990, 10], power=1.0, max_ratio=10)
    assert w[1] / w[0] == pytest.approx(10.0)
    assert class_weights([50, 0, 50])[1] == 0
    np.testing.assert_allclose(class_weights([3, 1], power=0.0), [1, 1])


def test_loss_ignores_unannotated_pixels_and_is_small_when_right():
    torch.manual_seed(0)
    target = torch.tensor([[[0, 1, IGNORE, IGNORE]]])
    logits = torch.randn(1, 2, 1, 4, requires_grad=True)
    loss = segmentation_loss(logits, target)
    loss.backward()
    assert logits.grad[..., 2:].abs().max() == 0  # ignored pixels get no gradient
    changed = logits.detach().clone()
    changed[..., 2:] = 100.0
    assert segmentation_loss(changed, target) == pytest.approx(float(loss))
    right = torch.tensor([[[[20.0, -20.0, 0, 0]], [[-20.0, 20.0, 0, 0]]]])
    assert segmentation_loss(right, target) < 1e-3
    empty = segmentation_loss(logits, torch.full((1, 1, 4), IGNORE))
    assert float(empty) == 0.0 and empty.requires_grad


def test_entropy_term_acts_only_on_unannotated_pixels():
    torch.manual_seed(0)
    target = torch.tensor([[[0, 1, IGNORE, IGNORE]]])
    logits = torch.randn(1, 2, 1, 4, requires_grad=True)
    base = segmentation_loss(logits, target)
    loss = segmentation_loss(logits, target, entropy_weight=0.5)
    loss.backward()
    assert logits.grad[..., 2:].abs().max() > 0  # the unpainted pixels now get a gradient
    assert float(loss) > float(base)
    # confident predictions on the unpainted pixels cost (almost) nothing, whichever class they pick
    confident = logits.detach().clone()
    confident[:, 0, :, 2:], confident[:, 1, :, 2:] = 30.0, -30.0
    assert float(segmentation_loss(confident, target, entropy_weight=0.5)) == pytest.approx(
        float(segmentation_loss(confident, target)), abs=1e-6
    )
    # unsure ones (50/50) cost entropy_weight * ln 2
    unsure = confident.clone()
    unsure[..., 2:] = 0.0
    extra = segmentation_loss(unsure, target, entropy_weight=0.5) - segmentation_loss(unsure, target)
    assert float(extra) == pytest.approx(0.5 * np.log(2), rel=1e-5)
    full = torch.tensor([[[0, 1, 1, 0]]])  # nothing unannotated: no term, no error
    assert float(segmentation_loss(logits, full, entropy_weight=0.5)) == pytest.approx(
        float(segmentation_loss(logits, full))
    )


def test_to_classes_sparse_and_dense():
    lab = np.array([[0, 3, 7], [7, 0, 3]])
    np.testing.assert_array_equal(_to_classes(lab, [3, 7], dense=False), [[IGNORE, 0, 1], [1, IGNORE, 0]])
    np.testing.assert_array_equal(_to_classes(lab, [0, 3, 7], dense=True), [[0, 1, 2], [2, 0, 1]])


# ------------------------------------------------------------------------------------------------ input checks
@pytest.mark.parametrize(
    ("image_shape", "labels", "match"),
    [
        ((3, 64, 64), np.zeros((3, 64, 60), np.uint8), "shapes differ"),
        ((3, 64, 64), np.zeros((3, 64, 64), np.uint8), "no annotations"),
        (
            (3, 64, 64),
            np.where(np.eye(64, dtype=bool), 1, 0)[None].repeat(3, 0).astype(np.uint8),
            "only one class",
        ),
        ((3, 64, 64), np.ones((3, 64, 64), np.float32), "must be integers"),
        ((64, 64), np.arange(64 * 64).reshape(64, 64).astype(np.int32), "instance segmentation"),
    ],
)
def test_bad_inputs_raise_clear_errors(image_shape, labels, match):
    image = np.random.default_rng(0).random(image_shape).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        next(train(image, labels, _config(iterations=1)))


def test_dense_single_value_hints_at_sparse_mode():
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="train in sparse mode"):
        next(train(image, np.zeros((64, 64), np.uint8), _config(dense=True, iterations=1)))


def test_bad_config_raises():
    with pytest.raises(ValueError, match="padding"):
        TrainConfig(padding="full").check()
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.0).check()
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.preset("turbo")
    gpu = TrainConfig.preset("accurate-gpu", minutes=5)
    assert gpu.padding == "valid" and gpu.minutes == 5 and TrainConfig.preset("fast-cpu") == TrainConfig()


def test_mode_dependent_defaults_resolve_and_explicit_values_stay():
    sparse, dense = TrainConfig().resolved(), TrainConfig(dense=True).resolved()
    assert (sparse.patch, sparse.batch_size, sparse.entropy_weight, sparse.class_weight_power) == (
        96,
        8,
        2.0,
        0.5,
    )
    assert sparse.elastic and sparse.intensity
    assert (dense.patch, dense.batch_size, dense.entropy_weight, dense.class_weight_power) == (
        256,
        4,
        0.0,
        0.0,
    )
    assert not dense.elastic and not dense.intensity
    mine = TrainConfig(patch=96, batch_size=2, entropy_weight=0.0, elastic=False).resolved()
    assert (mine.patch, mine.batch_size, mine.entropy_weight, mine.elastic) == (96, 2, 0.0, False)
    assert mine.resolved() == mine  # idempotent
    with pytest.raises(ValueError, match="patch"):
        TrainConfig(patch=0).check()


# ------------------------------------------------------------------------------------------------ splits
def _classes_of(labels, dense=False):
    _, raw, values = _collect(np.zeros(labels.shape, np.float32), labels, dense)
    return {z: _to_classes(v, values, dense) for z, v in raw.items()}, len(values)


def test_automatic_split_holds_out_the_last_annotated_slices():
    _, labels = _blobs((3, 64, 64))
    classes, k = _classes_of(labels)
    s = _split(classes, k, _config(), 3)
    assert s.val_slices == [2] and s.train_slices == [0, 1] and s.val_region is None
    s = _split(classes, k, _config(val_slices=(0, 1)), 3)
    assert s.val_slices == [0] and s.train_slices == [1, 2]
    assert _split(classes, k, _config(val_fraction=0.0), 3).val_slices == []
    with pytest.raises(ValueError, match="hold no annotated slice"):
        _split(classes, k, _config(val_slices=(5, 7)), 8)
    with pytest.raises(ValueError, match="nothing to train on"):
        _split(classes, k, _config(val_slices=(0, 3)), 3)


def test_split_refuses_to_hold_out_the_only_examples_of_a_class():
    labels = np.zeros((3, 64, 64), np.uint8)
    labels[:, :10] = 1
    labels[2, 40:50] = 2  # class 2 only on the last slice
    labels[0, 40:50] = 3  # class 3 only on the first
    classes, k = _classes_of(labels)
    with pytest.raises(ValueError, match="no training annotation"):
        _split(classes, k, _config(val_slices=(2, 3)), 3)
    # automatic: neither end block keeps every class in training, so a stripe of every slice is held out
    s = _split(classes, k, _config(), 3)
    assert s.val_region is not None and s.train_slices == [0, 1, 2]
    assert (classes[2][~s.val_region] == 1).any()  # label 2 (class index 1) keeps training pixels
    assert (classes[0][~s.val_region] == 2).any()  # label 3 (class index 2) too


def test_single_slice_holds_out_a_stripe_with_every_class():
    labels = np.zeros((64, 64), np.uint8)
    labels[5:60, 5:60] = 1
    labels[20:40, 10:55] = 2
    classes, k = _classes_of(labels)
    s = _split(classes, k, _config(), 1)  # automatic: a single painted slice trains on all of its strokes
    assert s.val_slices == [] and s.val_region is None and s.train_slices == [0]
    assert "single annotated slice" in s.description
    s = _split(classes, k, _config(val_fraction=0.2), 1)  # asked for: a stripe
    assert s.val_slices == [0] == s.train_slices
    region = s.val_region
    held = classes[0][region]
    share = (held >= 0).sum() / (classes[0] >= 0).sum()
    assert 0.15 < share < 0.35
    assert set(np.unique(held[held >= 0])) == {0, 1}  # both classes validated
    assert region[:, -1].all() and not region[:, 0].any()  # a stripe at one side, not scattered pixels


# ------------------------------------------------------------------------------------------------ sampler
def test_patches_are_centred_on_annotations_class_balanced_and_mirrored_like_prediction():
    image = np.arange(64 * 64, dtype=np.float32).reshape(1, 1, 64, 64)
    labels = np.zeros((64, 64), np.int16)
    labels[:, :] = IGNORE
    labels[60:64, 0:64] = 0  # common class along the bottom border
    labels[2, 2] = 1  # one pixel of a rare class in a corner
    from napari_unet.train import _Data

    data = _Data(
        images={0: image[0]}, classes={0: labels}, label_values=[1, 2], shape_yx=(64, 64), in_channels=1
    )
    model = UNet(depth=2, features=4, padding="valid")
    p = model.valid_input_size(40)
    sampler = _PatchSampler(
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


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_validation_scores_what_predict_stack_would_segment(padding):
    from napari_unet.metrics import dice_iou
    from napari_unet.predict import predict_stack_sync
    from napari_unet.train import _Data, _Validator

    image, labels = _blobs((1, 64, 64), seed=3)
    image, labels = image[0], labels[0]
    classes, k = _classes_of(labels)
    split = _split(classes, k, _config(val_fraction=0.2), 1)  # one slice: a stripe is held out
    assert split.val_region is not None
    torch.manual_seed(0)
    model = UNet(n_classes=2, depth=2, features=4, padding=padding, batch_norm=True).eval()
    norm = {"mode": "percentile", "low": float(image.min()), "high": float(image.max())}
    data = _Data(
        images={0: image[None]}, classes=classes, label_values=[1, 2], shape_yx=(64, 64), in_channels=1
    )
    gen = _Validator(data, split, norm, model).run(model, torch.device("cpu"), None)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            scores = stop.value
            break
    meta = {"normalization": norm, "label_values": [1, 2]}
    pred = predict_stack_sync(image, model, meta, tile=48).labels
    expected = dice_iou(pred, labels, [1, 2], mask=split.val_region)
    assert scores["n_pixels"] == int(split.val_region.sum())
    for value in (1, 2):
        assert scores["per_class"][value]["dice"] == pytest.approx(expected[value]["dice"], abs=1e-3)


# ------------------------------------------------------------------------------------------------ end to end
def test_training_learns_saves_and_reloads(tmp_path):
    image, labels = _blobs()
    records: list[TrainProgress] = []
    result = train_sync(
        image,
        labels,
        _config(iterations=60, lr=1e-2),
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
    image, labels = _blobs()
    a = train_sync(image, labels, _config(iterations=4, val_fraction=0.0))
    b = train_sync(image, labels, _config(iterations=4, val_fraction=0.0))
    c = train_sync(image, labels, _config(iterations=4, val_fraction=0.0, seed=1))
    assert a.history["loss"] == b.history["loss"]
    assert a.history["loss"] != c.history["loss"]


def test_dense_mode_keeps_label_values_and_2d_and_valid_padding_work():
    image, labels = _blobs((1, 64, 64))
    dense = np.where(labels[0] == 2, 255, 0).astype(np.uint8)  # ISBI-like 0/255, 2D
    result = train_sync(image[0], dense, _config(dense=True, iterations=6, padding="valid"))
    assert result.meta["label_values"] == [0, 255]
    assert "stripe" not in result.meta["extra"]["validation"]  # described in words
    assert "right" in result.meta["extra"]["validation"] or "left" in result.meta["extra"]["validation"]
    assert len(result.history["val_mean_dice"]) >= 1


def test_multichannel_image():
    image, labels = _blobs((2, 64, 64))
    two = np.stack([image, image[:, ::-1]], axis=1)  # (Z, C, Y, X)
    result = train_sync(two, labels, _config(iterations=3))
    assert result.model.kwargs["in_channels"] == 2
    assert len(result.meta["normalization"]["low"]) == 2


def test_lazy_dask_input():
    da = pytest.importorskip("dask.array")
    image, labels = _blobs()
    result = train_sync(
        da.from_array(image, chunks=(1, 64, 64)),
        da.from_array(labels, chunks=(1, 64, 64)),
        _config(iterations=2),
    )
    assert result.meta["label_values"] == [1, 2]


def test_close_mid_run_keeps_a_loadable_checkpoint(tmp_path):
    image, labels = _blobs()
    (tmp_path / "best.pt").write_bytes(b"stale file of an earlier run")  # must not pass for this run's model
    gen = train(image, labels, _config(iterations=1000, val_every=1000), checkpoint_dir=tmp_path)
    for record in gen:
        if record.iteration == 3:
            break
    gen.close()
    for name in ("best.pt", "last.pt"):
        model, meta = load_checkpoint(tmp_path / name)
        assert meta["history"]["iteration"][-1] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_stop_command_returns_result_marked_cancelled(tmp_path):
    image, labels = _blobs()
    result = train_sync(
        image,
        labels,
        _config(iterations=1000),
        checkpoint_dir=tmp_path,
        callback=lambda r: "stop" if r.iteration >= 2 else None,
    )
    assert result.cancelled and result.history["iteration"][-1] == 2
    assert result.best_path.exists()


def test_time_budget_stops_training():
    image, labels = _blobs()
    result = train_sync(image, labels, _config(minutes=0.03, iterations=100_000, val_fraction=0.0))
    elapsed = result.history["elapsed"][-1]
    assert 1 <= result.history["iteration"][-1] < 100_000
    assert elapsed < 0.03 * 60 + 5  # one iteration past the budget at most


def test_schedule_warms_up_then_follows_the_budget_fraction():
    assert _lr_factor(0, 0.0, warmup=10, min_ratio=0.0) == pytest.approx(0.1)
    assert _lr_factor(20, 0.0, warmup=10, min_ratio=0.0) == pytest.approx(1.0)
    # the fraction is the larger of iteration and time shares: halfway through -> half the peak
    assert _lr_factor(20, 0.5, warmup=10, min_ratio=0.0) == pytest.approx(0.5)
    assert _lr_factor(20, 1.0, warmup=10, min_ratio=0.05) == pytest.approx(0.05)
    # a short time budget ends the warm-up at 10 % of the budget even before `warmup` iterations
    assert _lr_factor(4, 0.05, warmup=50, min_ratio=0.0) == pytest.approx(0.5, abs=0.01)
    assert _lr_factor(9, 0.1, warmup=50, min_ratio=0.0) == pytest.approx(1.0, abs=0.03)


def test_finetune_keeps_classes_and_checks_values(tmp_path):
    image, labels = _blobs()
    first = train_sync(image, labels, _config(iterations=3, val_fraction=0.0), checkpoint_dir=tmp_path)
    only_bg = np.where(labels == 1, 1, 0).astype(np.uint8)  # corrections of one class are enough to fine-tune
    tuned = train_sync(image, only_bg, _config(iterations=2, val_fraction=0.0, depth=3), init=first.best_path)
    assert tuned.meta["label_values"] == [1, 2]
    assert tuned.model.kwargs == first.model.kwargs  # architecture of the checkpoint, not of the config
    assert tuned.meta["extra"]["finetuned_from"] == str(first.best_path)
    other = np.where(labels == 2, 7, labels).astype(np.uint8)
    with pytest.raises(ValueError, match=r"value\(s\) \[7\]"):
        train_sync(image, other, _config(iterations=1), init=first.best_path)
    with pytest.raises(ValueError, match="channel"):
        train_sync(np.stack([image, image], 1), labels, _config(iterations=1), init=first.best_path)
