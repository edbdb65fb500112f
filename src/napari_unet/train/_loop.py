"""The training loop: :func:`train` (a generator of progress records) and its synchronous twin :func:`train_sync`."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..generators import drain
from ._live import LiveAnnotations
from ._records import TrainProgress, TrainResult
from ._run import TrainingRun

__all__ = ["SNAPSHOT", "train", "train_sync"]

_WAIT_SECONDS = 0.25  # live training with no stroke left: how often to look for new ones


#: the command a consumer sends in reply to a "train" record to have the current weights written to ``last.pt`` now
#: (the Train widget's preview asks for one when it is due, instead of waiting for the next validation)
SNAPSHOT = "snapshot"


def _is_stop(command: Any) -> bool:
    return command in ("stop", True)


def train(
    image: Any,
    labels: Any,
    config: TrainConfig | None = None,
    *,
    init: str | Path | dict | None = None,
    checkpoint_dir: str | Path | None = None,
    voxel_size: Sequence[float] | None = None,
    live: LiveAnnotations | None = None,
) -> Generator[TrainProgress, Any, TrainResult]:
    """Train a U-Net on the annotated slices of an image stack, yielding progress.

    Parameters
    ----------
    image : (Z, Y, X) or (Y, X) array; (Z, C, Y, X) or (C, Y, X) for multi-channel images
        numpy, dask or zarr; only annotated slices are read into memory (plus a sample for the normalisation).
    labels : (Z, Y, X) or (Y, X) integer array
        The image's shape without the channel axis. Sparse mode: 0 = not annotated, 1..K = classes. Dense mode
        (``config.dense``): every value is a class.
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    init : path or checkpoint dict, optional
        Fine-tune this model: its architecture and label values are kept (the new labels must use a subset of
        them; a single painted class is then enough), the normalisation is recomputed from ``image``.
    checkpoint_dir : path, optional
        Folder for ``best.pt`` and ``last.pt`` (created; files of these names from an earlier run are removed
        first). Without it nothing is written.
    voxel_size : sequence of float, optional
        Physical voxel size, stored in the checkpoint.
    live : LiveAnnotations, optional
        Live training over the array the user paints into (``live.labels``, the same array as ``labels``): strokes
        added or erased while training enter the training set within ``live.refresh_seconds``; the run goes on
        until it is stopped (``"stop"`` sent, or the generator closed: both keep the model) unless
        ``config.iterations`` / ``config.minutes`` cap it. No validation is held out; ``last.pt`` is written every
        ``config.val_every`` iterations. While every stroke is erased it yields ``phase == "wait"`` records.

    Yields
    ------
    TrainProgress
        A "setup" record, then one per iteration, records during validation, and a final "done" record. Send
        ``"stop"`` to end training early and still get the result; send :data:`SNAPSHOT` in reply to a "train"
        record to have the current weights written to ``last.pt`` (with ``checkpoint_dir``) before the next step.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        For unusable data or configuration, with the reason in words (no annotations, only one class painted,
        shapes differ, ...).
    """
    run = TrainingRun(
        image, labels, config, init=init, checkpoint_dir=checkpoint_dir, voxel_size=voxel_size, live=live
    )
    try:
        yield run.progress("setup", run.describe())
        stopped = yield from _iterate(run)
        yield from _final_validation(
            run
        )  # also after "stop": the result carries the score of what it returns
    except (GeneratorExit, KeyboardInterrupt):
        run.keep_on_cancel()
        raise
    result = run.finish(stopped)
    yield run.progress("done", run.summary())
    return result


def _iterate(run: TrainingRun) -> Generator[TrainProgress, Any, bool]:
    """Steps until the budget is spent, validating when due; returns True when stopped by a "stop" command."""
    while not run.budget_spent():
        note = run.refresh_annotations()
        if not run.has_annotations():  # live: every stroke was erased
            if _is_stop((yield run.progress("wait", "live: no strokes left; paint to continue"))):
                return True
            time.sleep(_WAIT_SECONDS)
            continue
        run.step()
        message = run.step_message() + (f"; {note}" if note else "")
        command = yield run.progress("train", message)
        if _is_stop(command):
            return True
        if command == SNAPSHOT:
            run.save(run.last_path)
        if not run.validation_due():
            continue
        if run.validator is None:
            run.save(run.last_path)
            continue
        t_val = time.monotonic()
        scores = yield from run.validate()
        run.stretch_validation_interval(t_val)
        message = (
            f"validation at iteration {run.iteration}: mean Dice {scores['mean_dice']:.4f} ({scores['kind']})"
        )
        if _is_stop(
            (yield run.progress("validate", message + (" (best)" if scores["best"] else ""), val=scores))
        ):
            return True
    return False


def _final_validation(run: TrainingRun) -> Generator[TrainProgress, Any, None]:
    """Validate the last weights unless the last iteration was just validated."""
    if run.validator is None or run.iteration == 0 or run.last_val_iteration == run.iteration:
        return
    scores = yield from run.validate()
    message = f"final validation at iteration {run.iteration}: mean Dice {scores['mean_dice']:.4f} ({scores['kind']})"
    yield run.progress("validate", message, val=scores)


def train_sync(
    image: Any,
    labels: Any,
    config: TrainConfig | None = None,
    *,
    init: str | Path | dict | None = None,
    checkpoint_dir: str | Path | None = None,
    voxel_size: Sequence[float] | None = None,
    live: LiveAnnotations | None = None,
    callback: Callable[[TrainProgress], Any] | None = None,
) -> TrainResult:
    """Synchronous twin of :func:`train`: same parameters, returns the :class:`TrainResult`.

    Parameters
    ----------
    callback : callable, optional
        Called with every :class:`TrainProgress` (e.g. to print); if it returns ``"stop"``, training ends early.
    """
    gen = train(
        image, labels, config, init=init, checkpoint_dir=checkpoint_dir, voxel_size=voxel_size, live=live
    )
    return drain(gen, callback)
