"""Running the engine from a terminal: a progress line and the train / predict drivers the CLI and the demo share.

No torch at import (the engine is imported inside the drivers), so ``napari-unet --help`` stays fast. Progress goes
to stderr, results to stdout.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from .generators import drain
from .io._atomic import atomic_copy

__all__ = ["ConsoleProgress", "predict_batch_with_progress", "predict_with_progress", "train_to_file"]


class ConsoleProgress:
    """A small terminal progress line: redrawn in place on a TTY, a line every few seconds otherwise (CI logs).

    Parameters
    ----------
    label : str
        Shown at the start of the line ("train", "predict").
    stream : text stream, optional
        Where to write; default ``sys.stderr``.
    every : float
        Seconds between lines when ``stream`` is not a TTY (a TTY is redrawn up to five times a second).

    Use as a context manager (or call :meth:`close`) so that the cursor ends on a fresh line.
    """

    def __init__(self, label: str, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self._last = -math.inf  # the first update always shows
        self._start = time.monotonic()
        self._shown = False
        self._first: tuple[float, float] | None = None  # (time, done) of the first counted update

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def update(
        self, done: float, total: float | None, extra: str = "", force: bool = False, unit: str | None = None
    ) -> None:
        """Show ``done`` out of ``total`` (a bar with an ETA; just ``done`` when ``total`` is falsy).

        With ``unit`` (e.g. ``"slices"``) ``done`` and ``total`` count that unit and the line shows the count,
        the rate (``2.5 slices/s``) and an ETA from the rate since the first update, so work done by an earlier
        run (a resumed prediction) does not inflate either. Throttled unless ``force``, so it can be called on
        every progress record.
        """
        now = time.monotonic()
        if unit and total:
            if self._first is None:
                self._first = (now, done)
            self._rate_text = _rate(self._first, now, done, total, unit)
        if not force and now - self._last < (0.2 if self.tty else self.every):
            return
        self._last = now
        elapsed = now - self._start
        if total:
            frac = min(max(done / total, 0.0), 1.0)
            width = 28
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            eta = f"{elapsed / frac - elapsed:4.0f}s" if frac > 0 else "   ?"
            text = f"{self.label} [{bar}] {frac:6.1%} {elapsed:6.0f}s (eta {eta}) {extra}"
            if unit:
                text = f"{self.label} [{bar}] {frac:6.1%} {self._rate_text} {extra}"
        else:
            text = f"{self.label} {done} {elapsed:6.0f}s {extra}"
        if self.tty:
            self.stream.write("\r" + text[:150].ljust(150))
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str, file: TextIO | None = None) -> None:
        """Print ``text`` on a line of its own (the progress line, if shown, is redrawn by the next update).

        ``file`` (default: the progress stream) lets results go to stdout while the bar is on stderr.
        """
        if self.tty and self._shown:
            self.stream.write("\r" + " " * 150 + "\r")
            self.stream.flush()
            self._shown = False
        out = file or self.stream
        out.write(text + "\n")
        out.flush()

    def close(self) -> None:
        """End the redrawn line (on a TTY) so that what is printed next starts on its own line."""
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _rate(first: tuple[float, float], now: float, done: float, total: float, unit: str) -> str:
    """``"12/40 slices, 2.50 slices/s, eta 11s"``: the rate of the work done since ``first = (time, done)``."""
    seconds, counted = now - first[0], done - first[1]
    rate = counted / seconds if seconds > 0 and counted > 0 else 0.0
    eta = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
    return f"{done:.0f}/{total:.0f} {unit}, {rate:.2f} {unit}/s, eta {eta}"


def train_to_file(
    image: Any,
    labels: Any,
    config: Any,
    out: str | Path,
    *,
    init: str | Path | None = None,
    voxel_size: tuple[float, ...] | None = None,
    stream: TextIO | None = None,
) -> Any:
    """Train with a progress line and copy the best checkpoint (the last one without validation) to ``out``.

    Parameters
    ----------
    image, labels : array-like
        ``(Y, X)`` or ``(Z, Y, X)`` arrays of the same shape, as :func:`napari_unet.train.train` takes them.
    config : TrainConfig
    out : path
        Where the checkpoint is copied (replaced if it exists: the caller checks ``--overwrite``).
    init : path, optional
        Checkpoint to fine-tune from.
    voxel_size : tuple of float, optional
        Stored in the checkpoint.
    stream : text stream, optional
        Where progress goes; default ``sys.stderr``.

    Returns
    -------
    TrainResult or None
        None when interrupted (Ctrl-C): ``out`` then holds the best checkpoint saved so far, if there was one.

    Raises
    ------
    RuntimeError
        When training finished without writing a checkpoint.
    """
    from .train import BEST_NAME, train

    out = Path(out)
    stream = stream or sys.stderr
    with tempfile.TemporaryDirectory(prefix="napari-unet-train-") as tmp:
        records = train(image, labels, config, init=init, checkpoint_dir=tmp, voxel_size=voxel_size)
        try:
            with ConsoleProgress("train", stream) as bar:
                result = drain(records, lambda rec: _show_training(bar, rec))
        except KeyboardInterrupt:
            # drain closed the generator, which writes nothing more: what is on disk is the best model so far
            best = Path(tmp) / BEST_NAME
            if best.exists():
                atomic_copy(best, out)
                print(f"interrupted: kept the best checkpoint so far in {out}", file=stream)
            return None
        source = result.best_path or result.last_path
        if source is None or not Path(source).exists():
            raise RuntimeError("training produced no checkpoint")
        atomic_copy(source, out)
    return result


def _show_training(bar: ConsoleProgress, rec: Any) -> None:
    if rec.phase == "setup":  # what the engine will do: classes, split, patch, device, start
        bar.note(f"setup: {rec.message}")
        return
    if rec.iteration == 0 or not math.isfinite(rec.loss):
        return  # nothing measured yet: no "it 0 loss nan"
    extra = f"it {rec.iteration} loss {rec.loss:.4f}"
    if rec.val:
        extra += f" val dice {rec.val.get('mean_dice', float('nan')):.3f}"
        extra += f" ({rec.val['kind']})" if rec.val.get("kind") else ""  # what it is measured on
    # a validation result is shown even when the line was just redrawn: it is the figure worth reading
    bar.update(rec.fraction, 1.0, extra, force=bool(rec.val))


def predict_with_progress(
    image: Any, model: Any, meta: dict | None, *, stream: TextIO | None = None, **options: Any
) -> Any:
    """:func:`napari_unet.predict.predict_stack` with a progress line; returns its ``PredictResult``.

    ``options`` are passed on (``tile``, ``batch_size``, ``device``, ``tta``, ``want_probabilities``, ...).
    """
    from .predict import predict_stack

    with ConsoleProgress("predict", stream) as bar:
        return drain(
            predict_stack(image, model, meta, **options),
            lambda rec: bar.update(rec.fraction, 1.0, f"slice {rec.slice_index + 1}/{rec.n_slices}"),
        )


def predict_batch_with_progress(
    jobs: Any, model: Any, meta: dict | None, *, stream: TextIO | None = None, **options: Any
) -> Any:
    """:func:`napari_unet._batch.predict_batch` with one progress line over all files; returns its ``BatchResult``.

    ``options`` are passed on (``load``, ``overwrite``, ``keep_going``, ``tile``, ``batch_size``, ``device``,
    ``tta``). Each file's "predicted ... / wrote ..." lines go to stdout, failures to ``stream`` (default stderr).
    """
    from ._batch import predict_batch

    stream = stream or sys.stderr
    with ConsoleProgress("predict", stream) as bar:
        return drain(predict_batch(jobs, model, meta, **options), lambda rec: _show_batch(bar, rec))


def _show_batch(bar: ConsoleProgress, rec: Any) -> None:
    # one file: the lines napari-unet predict has always printed; several: each line says which file
    where = f"[{rec.job_index + 1}/{rec.n_jobs}] {rec.job.image.name}" if rec.n_jobs > 1 else ""
    if rec.kind == "slice":
        if rec.message.startswith("resuming"):  # an OME-Zarr store an earlier run left unfinished
            bar.note(f"{where}: {rec.message}" if where else rec.message)
        bar.update(rec.slices_done, rec.slices_total, f"{where} {rec.message}".strip(), unit="slices")
    elif rec.kind == "failed":
        bar.note(f"{where}: failed: {rec.error}" if where else f"failed: {rec.error}")
    else:
        for line in _written_lines(rec.job, rec.result) + _object_lines(rec.job, rec.objects):
            bar.note(f"{where}: {line}" if where else line, file=sys.stdout)


def _object_lines(job: Any, objects: Any) -> list[str]:
    """What ``predict --instances / --measurements`` wrote (nothing when no objects were asked for)."""
    if objects is None:
        return []
    res = objects.result
    how = "2D per section, linked across sections" if res.mode == "2d" else "3D with the voxel size"
    lines = [f"objects: {res.n_objects} ({how}, {objects.preset} settings) in {res.seconds:.1f} s"]
    if job.instances is not None:
        # the writer narrows the ids to the smallest unsigned type that holds them, losslessly
        lines.append(f"wrote {job.instances} {tuple(res.labels.shape)} ids 1-{res.n_objects}")
    if job.measurements is not None and objects.table is not None:
        lines.append(f"wrote {job.measurements} ({len(objects.table['label'])} rows)")
    return lines


def _written_lines(job: Any, result: Any) -> list[str]:
    labels, probs = result.labels, result.probabilities
    lines = [
        f"predicted {tuple(labels.shape)} on {result.device} with tile {result.tile}, "
        f"batch {result.batch_size} in {result.seconds:.1f} s",
        f"wrote {job.labels} {tuple(labels.shape)} {labels.dtype}",
    ]
    if job.probabilities is not None:
        lines.append(f"wrote {job.probabilities} {tuple(probs.shape)} {probs.dtype}")
    return lines
