"""What every widget job shares, without Qt: how a job is driven, cancelled and ends, and failures in words."""

from __future__ import annotations

import threading

from napari_unet._widgets._jobs import Cancelled, Outcome, drive, user_message
from napari_unet.generators import drain


def _counting(n: int, log: list, *, keep_partial: bool = False, fail_at: int | None = None):
    """A job yielding 0 .. n-1 and returning "done"; logs its end."""
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError("only one class painted")
            yield i
        return "done"
    except Cancelled:
        if keep_partial:
            return "partial"
        raise
    finally:
        log.append("closed")


def test_drive_returns_the_jobs_value_and_relays_every_record():
    log, seen = [], []
    outcome = drain(drive(lambda: _counting(3, log), threading.Event()), seen.append)
    assert seen == [0, 1, 2]
    assert outcome.value == "done" and not outcome.cancelled and outcome.error is None
    assert log == ["closed"]


def test_cancel_is_thrown_in_at_the_next_yield():
    for keep, value in ((False, None), (True, "partial")):
        log, seen, cancel = [], [], threading.Event()

        def on_record(record, cancel=cancel, seen=seen):
            seen.append(record)
            if record == 1:
                cancel.set()

        outcome = drain(
            drive(lambda keep=keep, log=log: _counting(100, log, keep_partial=keep), cancel), on_record
        )
        assert seen == [0, 1]
        assert outcome.cancelled and outcome.value == value and outcome.error is None
        assert log == ["closed"]  # the job's finally ran (in the worker thread, where drive runs)


def test_a_failure_is_an_outcome_not_an_exception():
    log = []
    outcome = drain(drive(lambda: _counting(5, log, fail_at=2), threading.Event()))
    assert isinstance(outcome, Outcome) and isinstance(outcome.error, ValueError)
    assert not outcome.cancelled and log == ["closed"]


def test_out_of_memory_becomes_advice():
    class OutOfMemoryError(RuntimeError):  # torch's class name, without importing torch
        pass

    text = user_message(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "Training")
    assert text.startswith("Training ran out of memory. Lower the batch size or the patch/tile size")
    assert (
        user_message(ValueError("only one class painted"), "Training")
        == "Training stopped: only one class painted"
    )
    assert user_message(FileNotFoundError("model.pt"), "Segmentation") == (
        "Segmentation could not find a file: model.pt"
    )
