"""Live training: strokes painted or erased while training enter the training set; Stop keeps the model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_train import blobs, tiny_config

from napari_unet.checkpoint import load_checkpoint
from napari_unet.config import TrainConfig
from napari_unet.model import UNet
from napari_unet.train import LiveAnnotations, train
from napari_unet.train._data import AnnotatedData
from napari_unet.train._run import Budget
from napari_unet.train._sampler import PatchSampler


def _strokes(labels: np.ndarray, z: int) -> np.ndarray:
    """Sparse rows of the true labels on slice ``z`` (0 elsewhere)."""
    out = np.zeros_like(labels)
    out[z, ::6] = labels[z, ::6]
    return out


def _records_until(gen, predicate, limit=400):
    seen = []
    for _ in range(limit):
        record = next(gen)
        seen.append(record)
        if predicate(record):
            return seen
    raise AssertionError(f"not seen within {limit} records; last: {seen[-1].message!r}")


def test_strokes_painted_and_erased_while_training_are_taken_in(tmp_path):
    image, truth = blobs()
    labels = _strokes(truth, 0)
    live = LiveAnnotations(labels, refresh_seconds=0.0)
    gen = train(image, labels, tiny_config(val_every=5), live=live, checkpoint_dir=tmp_path)
    setup = next(gen)
    assert setup.phase == "setup" and "live" in setup.message
    _records_until(gen, lambda r: r.iteration >= 3)
    labels[2, ::6] = truth[2, ::6]  # paint on another slice, in place, while the generator is suspended
    seen = _records_until(gen, lambda r: "strokes updated" in r.message)
    assert "[2]" in seen[-1].message
    labels[:] = 0  # erase everything: the run waits instead of failing
    _records_until(gen, lambda r: r.phase == "wait")
    labels[1, ::6] = np.where(truth[1, ::6] == 2, 7, truth[1, ::6])  # 7 is not a class of this run
    seen = _records_until(gen, lambda r: r.phase == "train")
    assert "not classes of this run" in seen[-1].message and "[7]" in seen[-1].message
    _records_until(gen, lambda r: r.phase == "train" and r.iteration >= 12)
    result = gen.send("stop")  # Stop: the model is kept and returned
    while result.phase != "done":
        result = next(gen)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    kept = stop.value.value
    assert kept.cancelled and kept.meta["extra"]["live"] and kept.history["iteration"][-1] >= 12
    model, meta = load_checkpoint(kept.best_path)
    assert meta["label_values"] == [1, 2] and isinstance(model, UNet)


def test_closing_a_live_run_keeps_the_last_weights(tmp_path):
    image, truth = blobs()
    labels = _strokes(truth, 0)
    gen = train(
        image, labels, tiny_config(val_every=1000), live=LiveAnnotations(labels), checkpoint_dir=tmp_path
    )
    _records_until(gen, lambda r: r.iteration >= 4)
    gen.close()
    _, meta = load_checkpoint(tmp_path / "last.pt")
    assert meta["history"]["iteration"][-1] == 4 and meta["extra"]["validation"].startswith("live")


def test_a_live_run_is_open_ended_unless_capped():
    open_ended = Budget.from_config(TrainConfig(), open_ended=True)
    assert open_ended.iterations is None and open_ended.seconds is None
    assert open_ended.fraction(10**6, 10**6) == 0.0 and not open_ended.spent(10**6, 10**6)
    assert Budget.from_config(TrainConfig()).iterations == 1000  # a budgeted run keeps its default
    assert Budget.from_config(TrainConfig(iterations=7), open_ended=True).spent(7, 0.0)


def test_marked_slices_without_polling_and_the_refresh_interval():
    labels = np.zeros((3, 8, 8), np.uint8)
    live = LiveAnnotations(labels, poll=False, refresh_seconds=0.0)
    live.start()
    labels[1, 2, 2] = 1
    assert live.changed() == {}  # not marked, not polled
    live.mark(1)
    live.mark(99)  # outside the stack: ignored
    changed = live.changed()
    assert list(changed) == [1] and changed[1][2, 2] == 1
    polled = LiveAnnotations(labels, refresh_seconds=3600.0)
    polled.start()
    labels[0, 0, 0] = 2
    assert polled.changed() == {}  # within the refresh interval
    assert list(polled.changed(force=True)) == [0]
    assert polled.changed(force=True) == {}  # nothing new since


def test_updating_one_slice_of_the_sampler_equals_a_fresh_sampler():
    rng = np.random.default_rng(0)
    classes = {z: rng.integers(-1, 2, (16, 16)).astype(np.int16) for z in (0, 2)}
    images = {z: rng.random((1, 16, 16)).astype(np.float32) for z in (0, 1, 2)}
    data = AnnotatedData(
        images=images, classes=dict(classes), label_values=[1, 2], shape_yx=(16, 16), in_channels=1
    )
    kw = dict(normalization={"mode": "none"}, in_size=16, shrink=0, margin=4, augment_config=None)
    sampler = PatchSampler(data, [0, 2], rng=np.random.default_rng(0), incremental=True, **kw)
    data.classes[1] = rng.integers(-1, 2, (16, 16)).astype(np.int16)  # a new slice painted
    data.classes[0] = np.full((16, 16), -1, np.int16)  # slice 0 erased
    sampler.update_slice(1)
    sampler.update_slice(0)
    fresh_data = AnnotatedData(
        images=images,
        classes={1: data.classes[1], 2: classes[2]},
        label_values=[1, 2],
        shape_yx=(16, 16),
        in_channels=1,
    )
    fresh = PatchSampler(fresh_data, [1, 2], rng=np.random.default_rng(0), **kw)
    assert sampler.slices == [1, 2]
    for a, b in zip(sampler.centres, fresh.centres, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="incremental"):
        fresh.update_slice(1)
