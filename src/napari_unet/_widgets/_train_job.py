"""The Train widget's worker side, without Qt: what one run needs, what it yields, what it hands back.

The widget (:mod:`napari_unet._widgets.train`) reads its controls into a :class:`TrainRequest` in the GUI thread;
:func:`train_job` runs in the runner's worker thread, drives :func:`napari_unet.train.train` and yields what the
widget shows: :class:`DeviceInfo` first, then the engine's ``TrainProgress`` records, and now and then a
:class:`Preview` of the slice the viewer shows (predicted with the run's newest checkpoint by
:class:`Previewer`, whose ``PredictProgress`` records are yielded too, so that Cancel interrupts a preview as well).
It returns a :class:`TrainOutcome`: the checkpoint to keep.

Live training (``TrainRequest.live``) wraps the annotations array the user paints into - the very array, not a
copy - in the engine's ``LiveAnnotations`` and hands it to the widget in a :class:`LiveStarted` record, so that the
widget can say which slice was painted; the run goes on until it is stopped (Cancel), which keeps the last weights.

No Qt, no napari, and no torch at import (the engine is imported inside the job, in the worker thread), so the job
runs, and is tested, without a viewer: ``napari_unet.generators.drain(train_job(request, lambda: None))``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet._openmp import calm_openmp  # re-exported: the widgets' entry points call it
from napari_unet.config import TrainConfig

from ._jobs import Cancelled, Step

__all__ = [
    "LIVE_REFRESH_SECONDS",
    "FIRST_PREVIEW_SECONDS",
    "PREVIEW_SHARE",
    "DeviceInfo",
    "LiveStarted",
    "Note",
    "Preview",
    "PreviewFailed",
    "Previewer",
    "TrainOutcome",
    "TrainRequest",
    "calm_openmp",
    "describe_progress",
    "train_job",
    "warm_up",
]

#: live training: how often the engine looks for strokes added or erased
LIVE_REFRESH_SECONDS = 1.0
#: previews of new weights on the same slice take at most this share of the run (training waits while one runs)
PREVIEW_SHARE = 0.1
#: seconds of training before the first preview (a preview of the very first steps would show noise)
FIRST_PREVIEW_SECONDS = 1.0


@dataclass(frozen=True)
class TrainRequest:
    """Everything one training run needs, read from the widget in the GUI thread."""

    image: Any  # (Z, Y, X) or (Y, X)
    labels: Any  # same shape, integer
    config: TrainConfig  # the engine preset with the controls' values on top
    init: Path | None  # checkpoint to start from (fine-tuning), None for a new model
    checkpoint_dir: Path
    voxel_size: tuple[float, ...]
    image_name: str
    preview_every: float | None  # seconds between previews, None for no preview
    # train until stopped, re-reading ``labels`` (the array the user paints into) meanwhile
    live: bool = False


@dataclass(frozen=True)
class Note:
    """A line of text a run tells the widget (not a progress record)."""

    text: str


class DeviceInfo(Note):
    """First record of a run: where the engine will train."""


class PreviewFailed(Note):
    """The preview could not be computed (training goes on without it)."""


@dataclass(frozen=True)
class LiveStarted:
    """Second record of a live run: the engine's ``LiveAnnotations`` over the array the user paints into.

    Its ``mark(z)`` is thread-safe: the widget calls it when the user painted slice ``z`` (the engine also polls).
    """

    annotations: Any


@dataclass(frozen=True)
class Preview:
    """A prediction of one slice with the weights of ``iteration``; ``labels`` is (Y, X) (or the 2D image's)."""

    z: int | None
    labels: np.ndarray
    iteration: int


@dataclass(frozen=True)
class TrainOutcome:
    """What a run hands back to the GUI thread: the checkpoint to keep (None if none was written)."""

    path: Path | None
    meta: dict | None
    cancelled: bool
    iterations: int
    best_score: float | None = None
    best_iteration: int | None = None
    history: dict = field(default_factory=dict)


def _best_of(history: dict) -> tuple[float | None, int | None]:
    """(best validation mean Dice, its iteration) from a training history, or (None, None) without validation."""
    score, it = history.get("best_val_dice"), history.get("best_iteration")
    if score is None or it is None or not math.isfinite(float(score)):
        return None, None
    return float(score), int(it)


def _kept(
    path: Path | None, meta: dict, history: dict, *, scored: bool, cancelled: bool, iterations: int
) -> TrainOutcome:
    """The outcome that keeps the checkpoint at ``path``; ``scored``: its history's best validation is its own."""
    best_score, best_iteration = _best_of(history) if scored else (None, None)
    return TrainOutcome(
        path=path,
        meta=meta,
        cancelled=cancelled,
        iterations=iterations,
        best_score=best_score,
        best_iteration=best_iteration,
        history=history,
    )


def _outcome_from_folder(folder: Path, *, iterations: int) -> TrainOutcome:
    """After a cancel: the best (else latest) readable checkpoint the run left in ``folder``."""
    from napari_unet.checkpoint import read_checkpoint
    from napari_unet.train import BEST_NAME, LAST_NAME

    for path in (folder / BEST_NAME, folder / LAST_NAME):
        if not path.is_file():
            continue
        try:
            ckpt = read_checkpoint(path)
        except (OSError, ValueError):
            continue
        meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
        history = meta.get("history") or {}
        return _kept(
            path, meta, history, scored=path.name == BEST_NAME, cancelled=True, iterations=iterations
        )
    return TrainOutcome(path=None, meta=None, cancelled=True, iterations=iterations)


class Previewer:
    """Predicts the current slice with the weights of the run's newest checkpoint, at most every few seconds.

    A preview is made when ``last.pt``, or the slice shown in the viewer, changed since the last preview. The
    engine writes ``last.pt`` at every validation and whenever :meth:`wants_snapshot` asks for new weights (the job
    sends :data:`~napari_unet.train.SNAPSHOT`), so previews do not wait for validations: the dock validates as
    often as the CLI. Training waits while a preview runs (they share the worker thread and the cores), so
    previews of new weights on the same slice are spaced out to take at most :data:`PREVIEW_SHARE` of the time (a
    2048 x 2048 slice on a small CPU would otherwise halve the training); a new slice is previewed as soon as
    ``preview_every`` allows. The first preview comes :data:`FIRST_PREVIEW_SECONDS` after the start. The prediction is
    a generator so that Cancel also interrupts it.

    Parameters
    ----------
    req : TrainRequest
        The run (its image, checkpoint folder, device and ``preview_every``: the least seconds between two previews,
        0 for one after every new checkpoint, without the time share; None: never).
    slice_index : callable
        Returns the Z index of the slice the viewer shows (None for a 2D image); called in the worker thread.
    """

    def __init__(self, req: TrainRequest, slice_index: Callable[[], int | None]) -> None:
        from napari_unet.train import LAST_NAME

        self.req = req
        self.slice_index = slice_index
        self.path = req.checkpoint_dir / LAST_NAME
        # the first preview FIRST_PREVIEW_SECONDS into the run (or preview_every, if shorter), not of the first step
        wait = min(req.preview_every or 0.0, FIRST_PREVIEW_SECONDS)
        self.last_time = time.monotonic() - ((req.preview_every or 0.0) - wait)
        self.last_key: tuple | None = None
        self.last_cost = 0.0  # seconds the last preview took
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def _weights(self) -> int | None:
        """Modification time of ``last.pt`` (None while there is none)."""
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def _time_allows(self, same_slice: bool) -> bool:
        every = self.req.preview_every
        if not self.enabled or every is None:
            return False
        since = time.monotonic() - self.last_time
        # new weights on the slice already shown: wait until the last preview's cost is PREVIEW_SHARE of the gap
        return since >= every and not (
            same_slice and every > 0 and since < self.last_cost * (1 / PREVIEW_SHARE - 1)
        )

    def due(self) -> bool:
        weights = self._weights()
        if weights is None:
            return False
        key = (weights, self.slice_index())
        if key == self.last_key:
            return False
        same_slice = self.last_key is not None and key[1] == self.last_key[1]
        return self._time_allows(same_slice)

    def wants_snapshot(self) -> bool:
        """True when a preview of newer weights would be due now but ``last.pt`` holds the ones last shown."""
        weights = self._weights()
        if weights is not None and (self.last_key is None or weights != self.last_key[0]):
            return False  # new weights are there already: due() takes them
        return self._time_allows(same_slice=True)

    def run(self, iteration: int) -> Generator[Any, None, Preview]:
        """Generator: yields ``PredictProgress`` records, returns a :class:`Preview`."""
        from napari_unet.checkpoint import load_checkpoint
        from napari_unet.predict import predict_stack

        t0 = time.monotonic()
        z = self.slice_index()
        key = (self.path.stat().st_mtime_ns, z)
        model, meta = load_checkpoint(self.path)
        image = self.req.image if z is None else self.req.image[z : z + 1]
        result = yield from predict_stack(image, model, meta, device=self.req.config.device)
        self.last_key = key
        self.last_time = time.monotonic()
        self.last_cost = self.last_time - t0
        labels = np.asarray(result.labels)
        return Preview(z=z, labels=labels if z is None else labels[0], iteration=iteration)

    def offer(self, iteration: int) -> Generator[Any, None, None]:
        """Generator: when a preview is due, the prediction's records and then the :class:`Preview`.

        A failed preview yields a :class:`PreviewFailed` and turns previews off; training goes on.
        """
        if not self.due():
            return
        try:
            preview = yield from self.run(iteration)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed preview must not end the training
            self.disable()
            yield PreviewFailed(str(exc) or type(exc).__name__)
        else:
            yield preview


def train_job(req: TrainRequest, slice_index: Callable[[], int | None]) -> Generator[Any, Any, TrainOutcome]:
    """Generator run in the worker thread: yields DeviceInfo, TrainProgress, PredictProgress (preview) and Preview
    records; returns a :class:`TrainOutcome`.

    On :class:`Cancelled` the engine generator is closed, which leaves ``best.pt``/``last.pt`` on disk, and the best
    of them is returned (flagged ``cancelled``). That is also how a live run (``req.live``) ends: without
    validation, ``best.pt`` holds the last weights.
    """
    calm_openmp()  # the warm-up did it already, unless it has not run; a no-op once torch is loaded
    from napari_unet.checks import check_training_inputs
    from napari_unet.device import describe_device, select_device
    from napari_unet.train import SNAPSHOT, LiveAnnotations, train

    # the checks the CLI runs, before any work: one sentence (a notification) and nothing of the user's changed
    check_training_inputs(
        req.image,
        req.labels,
        dense=bool(req.config.dense),
        fine_tune=req.init is not None,
        live=bool(req.live),
        val_slices=req.config.val_slices,
        names=(f"the image {req.image_name}", "the labels"),
    )
    yield DeviceInfo(describe_device(select_device(req.config.device)))
    live = None
    if req.live:
        live = LiveAnnotations(req.labels, poll=True, refresh_seconds=LIVE_REFRESH_SECONDS)
        yield LiveStarted(live)
    gen = train(
        req.image,
        req.labels,
        req.config,
        init=req.init,
        checkpoint_dir=req.checkpoint_dir,
        voxel_size=req.voxel_size,
        live=live,
    )
    previewer = Previewer(req, slice_index)
    iteration, reply = 0, None
    try:
        # A relay, not a drain: every record goes on to the GUI, previews go in between, and Cancel is thrown in at
        # these yields, so napari_unet.generators.drain (whose callback cannot yield) does not fit.
        while True:
            try:
                record = gen.send(reply)
            except StopIteration as stop:
                result = stop.value
                break
            iteration, reply = int(record.iteration), None
            yield record
            if record.phase in ("train", "wait"):  # "wait": live, every stroke erased; the slice may still change
                yield from previewer.offer(iteration)
                if record.phase == "train" and previewer.wants_snapshot():
                    reply = SNAPSHOT  # the engine writes last.pt before its next step; the preview follows
    except Cancelled:
        gen.close()  # the engine saves the last weights (and best.pt if there was none yet)
        return _outcome_from_folder(req.checkpoint_dir, iterations=iteration)
    path = result.best_path or result.last_path
    return _kept(
        Path(path) if path else None,
        dict(result.meta),
        dict(result.history or {}),
        scored=True,
        cancelled=bool(result.cancelled),
        iterations=iteration,
    )


def warm_up() -> None:
    """Import the engine ahead of the first run (the widget calls it in a background thread when it opens).

    Importing torch and the engine takes seconds on a small CPU, and the first optimiser pulls in
    ``torch._dynamo`` (seconds more); done while the user paints, the first preview of a run comes that much sooner.
    It first sets torch's OpenMP threads to wait passively (:func:`calm_openmp`), which only works before torch loads.
    """
    calm_openmp()
    import torch._dynamo  # noqa: F401 - what torch.optim imports on first use

    import napari_unet.predict  # noqa: F401
    import napari_unet.train  # noqa: F401


def describe_progress(record: Any, budget_seconds: float | None = None) -> Step | None:
    """Activity-dock progress for a ``TrainProgress`` record: iterations, or seconds of a time budget."""
    if not hasattr(record, "fraction") or not hasattr(record, "loss"):
        return None
    text = record.message or None
    if record.total:
        return Step(done=int(record.iteration), total=int(record.total), text=text)
    if budget_seconds:
        total = int(math.ceil(budget_seconds))
        return Step(done=int(record.fraction * total), total=total, text=text)
    return Step(text=text)
