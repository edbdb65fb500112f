"""The one place where napari-unet's widgets start threads, show progress, cancel and report errors.

A widget hands :meth:`Runner.start` a *job*: a zero-argument generator function that runs in a napari thread worker
(so the engine, and torch with it, is imported there and not at widget import), yields progress records and returns
a result. The runner

* turns the widget's Run button into "Cancel" while the job runs, and back afterwards;
* shows a progress bar in napari's activity dock, fed from the yielded records through ``describe`` at most
  :data:`BAR_INTERVAL` apart, and holds napari's animated "in progress" indicator still meanwhile (see
  :func:`_still_spinners`: animated, it took about half a core from the job under a software OpenGL renderer);
* cancels *cooperatively*: :meth:`Runner.cancel` (or the cancel button of napari's task status) throws
  :class:`Cancelled` into the job at its next ``yield``. A job that wants to keep partial work (training keeps its
  best model) catches it, closes its engine generator and returns a result; otherwise the job ends and
  ``on_cancelled`` is called. Either way the job's ``finally`` blocks run in the worker thread, never in the GUI;
* reports failures as napari notifications with a sentence a user can act on (:func:`user_message`), never print;
  so does :func:`read_or_report` when the widget's controls cannot be read into a request.

Everything the job returns, raises or is cancelled with arrives in the GUI thread through the worker's ``returned``
signal as an :class:`Outcome`, because superqt's ``GeneratorWorker`` would *return* (not raise) ``RuntimeError``\\s such
as torch's out-of-memory error. The Qt-free half of this contract (:class:`Cancelled`, :class:`Step`,
:class:`Outcome`, the loop that drives a job) lives in :mod:`._jobs`, next to the jobs themselves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from magicgui.widgets import Label, PushButton
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import notification_manager
from psygnal import Signal

from ._jobs import Cancelled, Outcome, Step, drive, user_message
from ._notify import notify

__all__ = ["Cancelled", "Outcome", "Runner", "Step", "in_background", "read_or_report", "user_message"]

T = TypeVar("T")

BAR_INTERVAL = 0.5  # seconds between progress-bar updates (each one may repaint the window)


def read_or_report(read: Callable[[], T], status: Label) -> T | None:
    """Read a widget's controls with ``read`` (GUI thread); None when they are unusable.

    ``read`` raises ``ValueError`` with a sentence for the user when something is missing or inconsistent; the
    sentence becomes an error notification and ``status`` says "not started".
    """
    try:
        return read()
    except ValueError as exc:
        notify(str(exc), "error")
        status.value = "not started"
        return None


def in_background(func: Callable[[], Any], name: str) -> threading.Thread:
    """Run ``func`` once in a daemon thread and forget it (warming up: its failures are the next run's to report)."""

    def quietly() -> None:
        with contextlib.suppress(Exception):
            func()

    thread = threading.Thread(target=quietly, name=name, daemon=True)
    thread.start()
    return thread


def _still_spinners() -> list:
    """Pause napari's animated "in progress" indicator(s) (the status bar's loading GIF); returns the movies paused.

    napari starts that GIF (33 frames/s) whenever a progress bar exists. Each frame repaints the main window,
    whose OpenGL canvas makes every repaint a full composition: without a GPU (software rendering, as on a
    virtual display or a remote desktop) the animation alone cost 3.5 s of CPU per 8 s, paused 0.2 s, and the
    job shares those cores. A still indicator still says a task runs; the dock's status line and curve move.
    """
    from napari.resources import LOADING_GIF_PATH
    from qtpy.QtGui import QMovie
    from qtpy.QtWidgets import QApplication, QLabel

    paused = []
    for top in QApplication.topLevelWidgets():
        for label in top.findChildren(QLabel):
            movie = label.movie()
            if (
                movie is not None
                and movie.fileName() == str(LOADING_GIF_PATH)
                and movie.state() == QMovie.MovieState.Running
            ):
                movie.setPaused(True)
                paused.append(movie)
    return paused


def _resume(movies: list) -> None:
    """Let the indicators :func:`_still_spinners` paused move again (napari hides them once no bar is left)."""
    for movie in movies:
        with contextlib.suppress(RuntimeError):  # deleted with its window
            if movie.state() == movie.MovieState.Paused:
                movie.setPaused(False)


class _CooperativeWorker(GeneratorWorker):
    """A napari GeneratorWorker whose ``quit()`` (also used by napari's task-status cancel) asks the job to stop at
    its next ``yield`` instead of abandoning the generator half-way."""

    def __init__(self, func, *args, cancel_event: threading.Event, **kwargs):
        self._cancel_event = cancel_event
        super().__init__(func, *args, **kwargs)

    def quit(self) -> None:
        self._cancel_event.set()


class Runner:
    """Runs one job at a time for one widget.

    Parameters
    ----------
    button : magicgui PushButton
        The widget's Run button; its text becomes ``cancel_text`` while a job runs.
    task : str
        What the job is, for the progress bar and error messages ("Training", "Segmentation").
    on_click : callable, optional
        What a click on ``button`` starts when no job runs (the widget's ``run``/``train``); while one runs, a
        click cancels it. Without it the widget decides what a click means.

    Signals
    -------
    finished(Outcome)
        Emitted in the GUI thread after the job's callbacks ran, whatever the outcome.
    """

    finished = Signal(object)

    def __init__(
        self,
        button: PushButton,
        task: str,
        *,
        owner: Any = None,
        cancel_text: str = "Cancel",
        on_click: Callable[[], Any] | None = None,
    ) -> None:
        self.button = button
        self.task = task
        self.cancel_text = cancel_text
        self._idle_text = button.text
        self.worker: GeneratorWorker | None = None
        self._cancel = threading.Event()
        self._pbar: napari_progress | None = None
        self._paused_spinners: list = []
        self._callbacks: dict[str, Callable | None] = {}
        self._describe: Callable[[Any], Step | None] | None = None
        self._alive = True
        self._job_cancel_text = cancel_text
        # Closing the widget (or the viewer) cancels the job; results arriving later are dropped.
        for qt_object in {
            id(o): o for o in (button.native, getattr(owner, "native", owner)) if o is not None
        }.values():
            qt_object.destroyed.connect(self._on_widget_destroyed)
        if on_click is not None:
            button.changed.connect(lambda *_: self._on_clicked(on_click))

    @property
    def busy(self) -> bool:
        """True from :meth:`start` until the job's outcome has been handled."""
        return self.worker is not None

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def start(
        self,
        job: Callable[[], Generator],
        *,
        on_yield: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_cancelled: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        describe: Callable[[Any], Step | None] | None = None,
        total: int | None = None,
        cancel_text: str | None = None,
        show_progress: bool = True,
    ) -> GeneratorWorker:
        """Start ``job`` in a napari thread worker.

        Parameters
        ----------
        job
            Zero-argument generator function, called in the worker thread.
        on_yield(record)
            GUI-thread callback for each yielded record.
        on_done(value)
            Called with the job's return value when it finished normally.
        on_cancelled(value)
            Called after a cancel, with what the job returned after catching :class:`Cancelled` (None if it did
            not). Default: an info notification.
        on_error(exc)
            Called when the job raised. Default: :func:`show_error` with :func:`user_message`.
        describe(record) -> Step | None
            Maps a record to the progress bar's state (None leaves the bar as it is).
        total
            Initial progress-bar total (None: indeterminate until ``describe`` says otherwise).
        cancel_text
            The button's text while this job runs (default: the runner's ``cancel_text``); "Stop" for a job that
            runs until it is stopped, whose button then reads "Stopping…" until it has.
        show_progress
            False: no activity-dock progress bar. A job without an end (live training) would otherwise show a busy
            bar whose animation repaints the window all the time (measured: most of the CPU under a software
            OpenGL renderer, starving the job).
        """
        if self.busy:
            raise RuntimeError(f"{self.task} is already running.")
        self._cancel = threading.Event()
        self._callbacks = {"yield": on_yield, "done": on_done, "cancelled": on_cancelled, "error": on_error}
        self._describe = describe
        self._pbar = napari_progress(total=total or 0, desc=self.task) if show_progress else None
        if self._pbar is not None:  # creating it started napari's "in progress" animation (in this thread)
            with contextlib.suppress(Exception):  # should napari draw its indicator otherwise, it just spins
                self._paused_spinners = _still_spinners()
        self._bar_time = -BAR_INTERVAL
        worker = create_worker(
            drive,
            job,
            self._cancel,
            _worker_class=_CooperativeWorker,
            _ignore_errors=True,
            _start_thread=False,
            cancel_event=self._cancel,
        )
        # drive never raises; should it ever, napari's worker shows the traceback and we only reset the button.
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        self.worker = worker
        self._job_cancel_text = cancel_text or self.cancel_text
        self.button.text = self._job_cancel_text
        self.button.enabled = True
        worker.start()
        return worker

    def _on_clicked(self, start: Callable[[], Any]) -> None:
        """A click on the Run button: cancel the running job, else ``start()`` a new one."""
        if self.busy:
            self.cancel()
        else:
            start()

    def cancel(self) -> None:
        """Ask the running job to stop at its next ``yield`` (no-op when idle)."""
        if not self.busy or self._cancel.is_set():
            return
        self._cancel.set()
        if self._pbar is not None:
            self._pbar.set_description(f"{self.task}: cancelling")
        with contextlib.suppress(RuntimeError):  # the button may be gone (widget closed)
            self.button.text = "Stopping…" if self._job_cancel_text == "Stop" else "Cancelling…"
            self.button.enabled = False

    def _on_widget_destroyed(self, *_args: Any) -> None:
        """The widget was closed: stop the job, and touch none of its (dead) Qt objects afterwards."""
        self._alive = False
        self.cancel()

    def _guarded(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run a GUI callback unless the widget is gone; a Qt object deleted under it means the same."""
        if not self._alive:
            return
        try:
            callback(*args)
        except RuntimeError as exc:
            if "has been deleted" not in str(exc):
                raise
            self._alive = False
            self.cancel()

    def wait(self, timeout: float = 10.0) -> bool:
        """Process Qt events until the job is done (for scripts); True if it finished in time."""
        from qtpy.QtWidgets import QApplication

        t_end = time.monotonic() + timeout
        while self.busy and time.monotonic() < t_end:
            QApplication.processEvents()
            time.sleep(0.01)
        return not self.busy

    # -- worker signals (GUI thread) -----------------------------------------------------------------------------

    def _on_yielded(self, record: Any) -> None:
        if self._describe is not None and self._pbar is not None:
            step = self._describe(record)
            now = time.monotonic()
            # A progress bar redrawn hundreds of times a second would starve the event loop: at most 2 Hz.
            if step is not None and now - self._bar_time >= BAR_INTERVAL:
                self._bar_time = now
                self._update_bar(step)
        cb = self._callbacks.get("yield")
        if cb is not None:
            self._guarded(cb, record)

    def _update_bar(self, step: Step) -> None:
        pbar = self._pbar
        if step.total is not None and step.total != pbar.total:
            pbar.total = max(int(step.total), 0)
        if step.done is not None:
            done = int(step.done)
            if pbar.total:
                done = min(done, int(pbar.total))
            if done != pbar.n:
                pbar.update(done - pbar.n)
        if step.text is not None and not self._cancel.is_set():
            pbar.set_description(f"{self.task}: {step.text}")

    def _on_returned(self, outcome: Any) -> None:
        self._finish()
        if not self._alive:  # the widget was closed while the job ran: nothing to show it in
            self.finished.emit(outcome)
            return
        if not isinstance(outcome, Outcome):  # a RuntimeError smuggled out by superqt: treat as failure
            outcome = Outcome(
                error=outcome if isinstance(outcome, BaseException) else RuntimeError(str(outcome))
            )
        try:
            if outcome.error is not None:
                cb = self._callbacks.get("error") or self.report_error
                self._guarded(cb, outcome.error)
            elif outcome.cancelled:
                cb = self._callbacks.get("cancelled")
                if cb is not None:
                    self._guarded(cb, outcome.value)
                else:
                    notify(f"{self.task} cancelled.")
            else:
                cb = self._callbacks.get("done")
                if cb is not None:
                    self._guarded(cb, outcome.value)
        except Exception as exc:  # noqa: BLE001 - a failing layer update must not leave the widget stuck
            self.report_error(exc)
        finally:
            self.finished.emit(outcome)

    def _on_errored(self, exc: BaseException) -> None:
        # napari's worker already relayed the traceback to the notification manager.
        self._finish()
        self.finished.emit(Outcome(error=exc))

    def report_error(self, exc: BaseException) -> None:
        """Tell the user about ``exc``: a plain sentence for expected failures, napari's traceback dialog for bugs."""
        if isinstance(exc, (ValueError, OSError, MemoryError, RuntimeError)):
            notify(user_message(exc, self.task), "error")
        else:
            notification_manager.receive_error(type(exc), exc, exc.__traceback__)

    def _finish(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        _resume(self._paused_spinners)
        self._paused_spinners = []
        self.worker = None
        if self._alive:
            with contextlib.suppress(RuntimeError):
                self.button.text = self._idle_text
                self.button.enabled = True
