"""The Train widget's worker-side job without a viewer: real engine, tiny model (depth 2, 4 features), on the CPU."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from napari_unet._widgets._jobs import Cancelled, Outcome, Step, drive
from napari_unet._widgets._train_job import (
    DeviceInfo,
    LiveStarted,
    Preview,
    PreviewFailed,
    TrainOutcome,
    TrainRequest,
    describe_progress,
    train_job,
)
from napari_unet.config import TrainConfig
from napari_unet.generators import drain


def _request(tmp_path, image, strokes, *, preview_every=0.0, live=False, **fields) -> TrainRequest:
    config = dict(
        depth=2,
        features=4,
        patch=32,
        batch_size=2,
        iterations=11,
        val_every=5,
        val_fraction=0.2,
        device="cpu",
    )
    config.update(fields)
    return TrainRequest(
        image=image,
        labels=strokes,
        config=TrainConfig.preset("fast-cpu", **config),
        init=None,
        checkpoint_dir=tmp_path / "run",
        voxel_size=(3.0, 1.0, 1.0),
        image_name="em",
        preview_every=preview_every,
        live=live,
    )


def test_job_yields_device_progress_and_previews_of_the_newest_weights(tmp_path, em_strokes, assert_engine_labels):
    image, strokes = em_strokes
    req = _request(tmp_path, image, strokes)
    req.checkpoint_dir.mkdir()
    records, previews = [], []

    def on_record(record):
        records.append(record)
        if isinstance(record, Preview):
            # the job yields a preview as soon as it is made: last.pt still holds the weights it was made with
            assert record.z == 1 and record.labels.shape == (64, 64)
            assert_engine_labels(record.labels[None], req.checkpoint_dir / "last.pt", image[1:2])
            previews.append(record)

    out = drain(train_job(req, lambda: 1), on_record)

    assert isinstance(records[0], DeviceInfo) and "CPU" in records[0].text
    iterations = [r.iteration for r in records if getattr(r, "phase", None) == "train"]
    assert iterations == list(range(1, 12))
    # previews do not wait for validations: with preview_every=0 the job asks the engine for a snapshot after every
    # iteration and previews it at the next one
    validated = [r.iteration for r in records if getattr(r, "phase", None) == "validate" and r.val]
    assert validated[0] == 5 and validated[-1] == 11
    assert [p.iteration for p in previews] == list(range(2, 12))
    assert not [r for r in records if isinstance(r, PreviewFailed)]

    assert isinstance(out, TrainOutcome) and not out.cancelled and out.iterations == 11
    assert out.path == req.checkpoint_dir / "best.pt" and out.path.is_file()
    assert out.meta["label_values"] == [1, 2]
    assert out.best_iteration in (5, 10, 11)
    assert out.best_score == pytest.approx(out.history["best_val_dice"])


def test_previews_come_every_few_seconds_without_waiting_for_a_validation(tmp_path, em_strokes):
    image, strokes = em_strokes
    # validation every 1000 iterations: never within the run; the previews come from snapshots alone
    req = _request(tmp_path, image, strokes, iterations=60, val_every=1000, preview_every=0.05)
    req.checkpoint_dir.mkdir()
    records = []
    drain(train_job(req, lambda: 0), records.append)
    validated = [r.iteration for r in records if getattr(r, "phase", None) == "validate" and r.val]
    previews = [r.iteration for r in records if isinstance(r, Preview)]
    assert validated == [60]  # the final validation only
    assert previews and previews[-1] < 60
    # spaced by preview_every, and never of the same weights twice (each asked for a snapshot of its own)
    assert len(previews) == len(set(previews)) and len(previews) < 60


def test_cancel_keeps_the_best_checkpoint_and_drive_says_cancelled(tmp_path, em_strokes):
    image, strokes = em_strokes
    req = _request(tmp_path, image, strokes, iterations=1000, preview_every=None)
    req.checkpoint_dir.mkdir()
    cancel = threading.Event()
    seen = []

    def on_record(record):
        seen.append(record)
        if getattr(record, "phase", None) == "validate" and record.val:
            cancel.set()  # Cancel pressed right after the first validation

    outcome = drain(drive(lambda: train_job(req, lambda: None), cancel), on_record)

    assert isinstance(outcome, Outcome) and outcome.cancelled and outcome.error is None
    out = outcome.value
    assert out.cancelled and 5 <= out.iterations < 1000
    assert out.path == req.checkpoint_dir / "best.pt"
    assert out.best_iteration == 5 and out.best_score == pytest.approx(out.history["best_val_dice"])
    assert not [r for r in seen if isinstance(r, Preview)]  # preview_every=None: no previews


def test_a_failing_preview_is_reported_once_and_training_goes_on(tmp_path, em_strokes, monkeypatch):
    import napari_unet.predict

    def broken(*args, **kwargs):
        raise RuntimeError("no preview today")
        yield  # a generator, like the real one

    monkeypatch.setattr(napari_unet.predict, "predict_stack", broken)
    image, strokes = em_strokes
    req = _request(tmp_path, image, strokes)
    req.checkpoint_dir.mkdir()
    records = []
    out = drain(train_job(req, lambda: 0), records.append)
    assert [r.text for r in records if isinstance(r, PreviewFailed)] == ["no preview today"]
    assert not [r for r in records if isinstance(r, Preview)]
    assert out.iterations == 11 and not out.cancelled and out.path.is_file()


def test_cancel_at_the_first_iteration_still_keeps_the_weights(tmp_path, em_strokes):
    image, strokes = em_strokes
    req = _request(tmp_path, image, strokes, iterations=1000)
    req.checkpoint_dir.mkdir()

    before_engine = train_job(req, lambda: None)
    assert isinstance(next(before_engine), DeviceInfo)
    with pytest.raises(Cancelled):  # nothing to keep yet: the runner reports a plain cancel
        before_engine.throw(Cancelled())

    job = train_job(req, lambda: None)
    record = next(job)
    while getattr(record, "phase", None) != "train":
        record = next(job)
    with pytest.raises(StopIteration) as stop:
        job.throw(Cancelled())
    out = stop.value.value
    assert out.cancelled and out.iterations == 1
    assert out.path is not None and out.path.parent == req.checkpoint_dir and out.path.is_file()
    assert out.meta["label_values"] == [1, 2]


def test_progress_counts_iterations_or_seconds_of_the_budget():
    record = SimpleNamespace(iteration=30, total=100, fraction=0.3, loss=0.5, message="it. 30")
    assert describe_progress(record) == Step(done=30, total=100, text="it. 30")
    timed = SimpleNamespace(iteration=30, total=None, fraction=0.25, loss=0.5, message="")
    assert describe_progress(timed, budget_seconds=120.0) == Step(done=30, total=120, text=None)
    assert describe_progress(timed) == Step(text=None)
    assert describe_progress(DeviceInfo("CPU")) is None  # not a training record


def _resumed_after_the_last_wait(phases: list, seen: list) -> bool:
    """A training record taking in repainted strokes came after the last "wait" record."""
    if "wait" not in phases:
        return False
    after = len(phases) - phases[::-1].index("wait")
    return any(
        phase == "train" and "strokes updated" in record.message
        for phase, record in zip(phases[after:], seen[after:], strict=True)
    )


def test_live_job_reads_the_painted_array_waits_without_strokes_and_stop_keeps_the_last_weights(
    tmp_path, em_strokes
):
    image, painted = em_strokes
    strokes = painted.copy()  # the array "the user paints into": the job must see changes made to it
    req = _request(tmp_path, image, strokes, live=True, iterations=None, val_every=5)
    req.checkpoint_dir.mkdir()
    cancel = threading.Event()
    seen, phases = [], []

    def on_record(record):
        seen.append(record)
        phase = getattr(record, "phase", None)
        phases.append(phase)
        if phase == "train" and record.iteration == 3:
            strokes[:] = 0  # the user erases every stroke: the run waits (from the next refresh, within ~1 s)
        elif phase == "wait" and phases.count("wait") == 3:
            strokes[0] = painted[0]  # ... and paints them again: it goes on
            live.mark(0)
        elif isinstance(record, Preview) and _resumed_after_the_last_wait(phases, seen):
            cancel.set()  # Stop, once a preview came after the strokes were painted again

    live = None
    job = drive(lambda: train_job(req, lambda: 1), cancel)
    first = next(job)
    assert isinstance(first, DeviceInfo)
    started = next(job)
    assert isinstance(started, LiveStarted) and started.annotations.labels is strokes  # the array, not a copy
    live = started.annotations
    outcome = drain(job, on_record)

    assert outcome.cancelled and outcome.error is None
    assert phases.count("wait") >= 3 and "validate" not in phases  # no hold-out in live mode
    waiting = [r for r in seen if getattr(r, "phase", None) == "wait"]
    assert "no strokes" in waiting[0].message
    resumed = [r for r in seen if getattr(r, "phase", None) == "train" and "strokes updated" in r.message]
    assert resumed, "the strokes painted again never entered the training set"
    assert [p.z for p in seen if isinstance(p, Preview)][:1] == [1]  # last.pt every 5 it.: previews come
    out = outcome.value
    assert out.cancelled and out.iterations >= 5 and out.path is not None and out.path.is_file()
    assert out.best_score is None  # nothing held out, nothing scored
