"""What a widget job is, without Qt: the records it shares with the runner and the loop that runs it.

A *job* is a zero-argument generator function that the runner (:mod:`napari_unet._widgets._runner`, the Qt side)
calls in a napari thread worker: it yields progress records and returns a result. This module holds the parts of
that contract that need no Qt, so that the worker-side jobs (:mod:`._train_job`, :mod:`._segment_job`) and their
tests import neither Qt nor napari: :class:`Cancelled` (thrown into a job at a ``yield`` when the user presses
Cancel), :class:`Step` (what the activity-dock progress bar shows), :class:`Outcome` (how a job ended),
:func:`drive` (runs a job and turns its end into an Outcome) and :func:`user_message` (a failure in words).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

__all__ = ["Cancelled", "Outcome", "Step", "drive", "user_message"]


class Cancelled(Exception):  # noqa: N818 - it is a request, not an error
    """Thrown into a job at a ``yield`` when the user presses Cancel."""


@dataclass(frozen=True)
class Step:
    """What the activity-dock progress bar shows for one yielded record.

    ``total=None`` keeps the bar indeterminate; ``done`` is absolute (not an increment).
    """

    done: int | None = None
    total: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a job ended: exactly one of ``value`` (returned), ``error`` (raised) or ``cancelled`` applies."""

    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    seconds: float = 0.0


def user_message(exc: BaseException, task: str, *, started: bool = True) -> str:
    """A sentence for the user about why ``task`` failed.

    The engine raises ``ValueError`` with messages written for users (shapes, classes, missing strokes); those are
    passed through. Running out of memory, which torch reports as ``RuntimeError``/``OutOfMemoryError``, becomes
    advice about what to lower. ``started=False`` (the job failed while setting up, before any work): "could not
    start" rather than "stopped".
    """
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in low or isinstance(exc, MemoryError):
        return (
            f"{task} ran out of memory. Lower the batch size or the patch/tile size and try again"
            f" ({text.splitlines()[0][:160]})."
        )
    if isinstance(exc, FileNotFoundError):
        return f"{task} could not find a file: {text}"
    return f"{task} {'stopped' if started else 'could not start'}: {text}"


def drive(job: Callable[[], Generator], cancel: threading.Event) -> Generator[Any, None, Outcome]:
    """Run ``job`` (in the worker thread), relaying its records; return how it ended as an :class:`Outcome`.

    Once ``cancel`` is set, :class:`Cancelled` is thrown into the job at its next ``yield`` (once). A job that
    catches it and returns keeps its partial result (``Outcome(value=..., cancelled=True)``). Whatever happens,
    the job is closed here, so its ``finally`` blocks run in the worker thread.

    This is a relay, not a drain: every record goes on to the GUI and Cancel must be thrown in between two of them,
    so :func:`napari_unet.generators.drain` (whose callback can neither yield nor throw) does not fit.
    """
    t0 = time.perf_counter()
    gen = None
    thrown = False
    try:
        gen = job()
        while True:
            if cancel.is_set() and not thrown:
                thrown = True
                record = gen.throw(Cancelled())
            else:
                record = next(gen)
            yield record
    except StopIteration as stop:
        return Outcome(value=stop.value, cancelled=thrown, seconds=time.perf_counter() - t0)
    except Cancelled:
        return Outcome(cancelled=True, seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - every failure must reach the user as a notification
        return Outcome(error=exc, cancelled=thrown, seconds=time.perf_counter() - t0)
    finally:
        if gen is not None:
            gen.close()
