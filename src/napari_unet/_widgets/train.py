"""The "Train U-Net" dock widget: train (or fine-tune) a U-Net on the strokes painted in a Labels layer.

The widget is built from small groups of controls (:mod:`._train_controls`: data, model, budget, validation, run),
reads them into a :class:`~._train_job.TrainRequest` (a ``TrainConfig`` plus where to start from) and runs
:func:`~._train_job.train_job` in a worker through :class:`~napari_unet._widgets._runner.Runner`. It shows what the
job yields: the loss and validation curve (:class:`~napari_unet._widgets._plot.CurvePlot`), a status line, the
activity-dock progress bar, and a preview of the slice the viewer shows, predicted by the engine in the worker with
the run's newest checkpoint (written at every validation) and refreshed at most every few seconds, in one layer the
widget owns ("U-Net preview"). When training ends, or is cancelled, the best checkpoint becomes the session's model
(:mod:`napari_unet.session`), which the Segment widget uses and "Save model…" copies to a file.

The budget "live (until Stop)" trains while the user paints: the engine re-reads the annotations array (the Labels
layer's own data) about every second, so strokes added or erased are learned from without a restart; the widget
also tells it which slice a paint stroke touched. The preview layer sits below the annotations so that it never
hides the strokes, and "Stop" keeps the last weights as the session's model.

No torch is imported by this module: the engine is imported in the worker, and warmed up in a background thread
when the widget opens (:func:`~._train_job.warm_up`), so that the first preview of a run comes within seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, Label, PushButton
from qtpy.QtWidgets import QSizePolicy

from napari_unet.config import TrainConfig
from napari_unet.session import ModelSession, SessionModel, session_for

from ._dock import bind_shortcut, elide, scroll_body
from ._jobs import user_message
from ._layers import (
    OWNER_KEY,
    align_labels,
    current_index,
    find_owned,
    geometry_of,
    keep_narrow,
    owner_metadata,
    painted_slices,
    watch_layers,
)
from ._next_slices import NextSlicesPanel
from ._notify import notify
from ._plot import CurvePlot
from ._runner import Runner, in_background, read_or_report
from ._train_controls import (
    BUDGET_ITERATIONS,
    BUDGET_LIVE,
    BUDGET_MINUTES,
    CONTINUE_MODEL,
    FILE_MODEL,
    NEW_MODEL,
    PRESETS,
    PREVIEW_LAYER,
    VAL_AUTO,
    VAL_EVERY,
    VAL_NONE,
    VAL_SHARE,
    VAL_SLICES,
    BudgetControls,
    DataControls,
    ModelControls,
    RunControls,
    ValidationControls,
)
from ._train_job import (
    DeviceInfo,
    LiveStarted,
    Preview,
    PreviewFailed,
    TrainOutcome,
    TrainRequest,
    describe_progress,
    train_job,
    warm_up,
)

# the widget's vocabulary (its choices and presets) is importable from here, where scripts and tests look for it
__all__ = [
    "BUDGET_ITERATIONS",
    "BUDGET_LIVE",
    "BUDGET_MINUTES",
    "CONTINUE_MODEL",
    "FILE_MODEL",
    "NEW_MODEL",
    "PRESETS",
    "PREVIEW_LAYER",
    "UI_FIELDS",
    "VAL_AUTO",
    "VAL_EVERY",
    "VAL_NONE",
    "VAL_SHARE",
    "VAL_SLICES",
    "TrainRequest",
    "TrainWidget",
]

SHORTCUT = "Shift-T"  # Train; again: Cancel (Stop when live)
STATUS_INTERVAL = 0.5  # seconds between status-line updates (the curve redraws with them)
LOSS_SMOOTHING = (
    0.05  # weight of the newest iteration in the loss the widget shows (about 20 iterations' mean)
)
PREVIEW_SECONDS = 3.0  # at most one preview per this many seconds (the engine snapshots the weights for it)
#: fields of TrainConfig the controls set from the engine's preset (everything else comes from the preset itself)
UI_FIELDS = ("depth", "features", "patch", "batch_size", "lr")


class TrainWidget(Container):
    """Dock widget: train a U-Net on painted strokes, watch it learn, keep the best model.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers it trains on (napari passes it); its session holds the trained model.

    Attributes (for scripts and tests)
    ----------------------------------
    image_layer, labels_layer, dense, model_source, model_file, preset, advanced, depth, features, device,
    val_every, budget, budget_unit, patch, batch_size, lr, validation, val_start, val_stop, val_fraction,
    preview : magicgui widgets, made by the groups of :mod:`._train_controls`
    data_group, model_group, budget_group, validation_group, run_group : those groups
    device_info, status, model_info : Label
    train_button ("Train", "Cancel" while running, "Stop" in live mode), save_button : PushButton
    plot : CurvePlot
    runner : Runner
    next_slices : NextSlicesPanel
        "where to paint next?": the slices where the session's model is least sure, ranked when training ends.
    engine_warm_up : threading.Thread
        Imports the engine in the background when the widget opens (join it to time a warm run).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = napari_viewer
        self.session: ModelSession = session_for(napari_viewer)
        self._preview_z: int | None = None
        self._budget_seconds: float | None = None
        self._status_time = -math.inf
        self._live: Any = None  # the running live run's LiveAnnotations (its mark(z) says what was painted)
        self._painted: Any = None  # the Labels layer whose paint events go to it
        self._warned_values = False
        self._loss: float | None = None  # the run's numbers (see _take_numbers)
        self._best: tuple[int, float] | None = None
        self._started = False
        self._val_kind = ""  # what the validation score is measured on ("held-out strokes", ...)

        self.data_group = data = DataControls(napari_viewer)
        self.model_group = model = ModelControls()
        self.budget_group = budget = BudgetControls()
        self.validation_group = validation = ValidationControls()
        self.run_group = run = RunControls()
        groups = [data, model, budget, validation, run]
        # every control stays an attribute of the widget: scripts and tests set them
        self.image_layer, self.labels_layer, self.dense = data.image_layer, data.labels_layer, data.dense
        self.model_source, self.model_file, self.preset = model.model_source, model.model_file, model.preset
        self.advanced, self.depth, self.features = model.advanced, model.depth, model.features
        self.device, self.val_every = model.device, model.val_every
        self.budget, self.budget_unit = budget.budget, budget.budget_unit
        self.patch, self.batch_size, self.lr = budget.patch, budget.batch_size, budget.lr
        self.validation, self.val_start = validation.validation, validation.val_start
        self.val_stop, self.val_fraction = validation.val_stop, validation.val_fraction
        self.preview, self.device_info, self.status = run.preview, run.device_info, run.status
        self.train_button = run.train_button
        self.model_info = Label(value="model: none yet")
        self.save_button = PushButton(text="Save model…", enabled=False)
        self.save_button.native.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)

        # The form scrolls (a laptop screen holds both docks); the curve, the Train button, the status line and
        # the model line stay pinned under it, in view while training.
        # "where to paint next?": the slices the model is least sure about, listed when training ends
        self.next_slices = NextSlicesPanel(
            napari_viewer, self.session, self.image_layer, self.labels_layer, self.device
        )
        self.form = Container(widgets=[*groups, self.next_slices], labels=False)
        self.form.margins = (0, 0, 0, 0)
        self._tail = Container(widgets=[self.model_info, self.save_button], labels=False, layout="horizontal")
        self._tail.margins = (0, 0, 0, 0)
        self.extend([self.train_button, self.status, self._tail])
        self.native.layout().insertWidget(0, scroll_body(self.form))
        self.plot = (
            CurvePlot()
        )  # a plain QWidget: placed in the layout by hand, between the form and the button
        self.native.layout().insertWidget(1, self.plot)
        align_labels(groups)
        keep_narrow(self.form)
        elide(self.status)
        elide(self.model_info)
        self.runner = Runner(self.train_button, "Training", owner=self, on_click=self.train)
        bind_shortcut(napari_viewer, SHORTCUT, self.train_button)

        self.advanced.changed.connect(self._on_advanced_changed)
        self.preset.changed.connect(self._on_preset_changed)
        self.image_layer.changed.connect(self._on_image_changed)
        self.save_button.changed.connect(self._on_save_clicked)
        self.budget_unit.changed.connect(self._on_budget_unit_changed)
        self.session.changed.connect(self._on_session_changed)
        napari_viewer.dims.events.current_step.connect(self._on_current_step)
        watch_layers(napari_viewer, self, self.data_group.preselect)
        # a Labels layer the user adds or selects becomes the annotations (when it can be: see DataControls.offer)
        napari_viewer.layers.events.inserted.connect(self._on_layer_offered)
        napari_viewer.layers.selection.events.active.connect(self._on_layer_offered)
        self._on_preset_changed()
        self.data_group.preselect()
        self._on_session_changed(self.session.current)
        self.engine_warm_up = in_background(warm_up, "napari-unet engine warm-up")

    def reset_choices(self, *args: Any) -> None:
        """napari calls this on layer-list changes: the layer choices live in the scrolling form."""
        super().reset_choices(*args)
        self.form.reset_choices(*args)

    # -- UI state -------------------------------------------------------------------------------------------------

    def _on_image_changed(self, value: Any = None) -> None:
        self.data_group.preselect()
        self._on_current_step()

    def _on_layer_offered(self, event: Any) -> None:
        try:
            self.data_group.offer(event.value)
        except RuntimeError:  # the Qt side is gone (viewer closing)
            pass

    def _on_advanced_changed(self, value: Any = None) -> None:
        self.budget_group.show_advanced(bool(self.advanced.value))

    def _on_budget_unit_changed(self, value: Any = None) -> None:
        # live training holds nothing out: every stroke trains, and the set changes while it runs
        self.validation_group.visible = not self.budget_group.live

    def _on_preset_changed(self, value: Any = None) -> None:
        """Show the engine's values of the chosen preset (as it resolves them for sparse strokes)."""
        config = TrainConfig.preset(self.model_group.engine_preset).resolved()
        for name in UI_FIELDS:
            getattr(self, name).value = getattr(config, name)

    def _on_session_changed(self, model: SessionModel | None) -> None:
        try:
            self.save_button.enabled = model is not None and not self.runner.busy
            if model is None:
                self.model_info.value = "model: none yet"
            else:
                if model.saved_to:
                    saved = f" — saved as {model.saved_to.name}"
                elif getattr(model, "kept", False):
                    saved = " — kept in the recent models"
                else:
                    saved = " — not saved yet" + (f" ({model.note})" if getattr(model, "note", "") else "")
                self.model_info.value = "model: " + (model.description or model.path.name) + saved
            self.model_group.recent.reset_choices()  # a model just kept is in the list at once
        except RuntimeError:  # the widget is being deleted
            pass

    def _on_current_step(self, event: Any = None) -> None:
        layer = self.image_layer.value
        self._preview_z = current_index(self._viewer, layer) if layer is not None else None

    # -- UI → request ---------------------------------------------------------------------------------------------

    def request(self) -> TrainRequest:
        """Read the controls into a :class:`TrainRequest` (GUI thread).

        Raises
        ------
        ValueError
            With a sentence for the user when something is missing or inconsistent.
        """
        image_layer, image, labels = self.data_group.read()
        live = self.budget_group.live
        overrides = {
            "dense": bool(self.dense.value),
            **self.model_group.overrides(),
            **self.budget_group.overrides(),
            **({} if live else self.validation_group.overrides(tuple(image.shape))),
        }
        init = self.model_group.init(self.session)
        return TrainRequest(
            image=image,
            labels=labels,
            config=TrainConfig.preset(self.model_group.engine_preset, **overrides),
            init=init,
            checkpoint_dir=self.session.new_run_dir(),
            voxel_size=tuple(float(s) for s in image_layer.scale),
            image_name=image_layer.name,
            preview_every=PREVIEW_SECONDS if self.preview.value else None,
            live=live,
        )

    # -- run ------------------------------------------------------------------------------------------------------

    def train(self) -> bool:
        """Start training with the current settings; False (and a notification) when the inputs are unusable."""
        req = read_or_report(self.request, self.status)
        if req is None:
            return False
        self.next_slices.runner.cancel()  # a ranking of the previous model would be stale
        self.plot.clear()
        self.plot.set_total(req.config.iterations)
        self._budget_seconds = req.config.minutes * 60 if req.config.minutes is not None else None
        self._on_current_step()
        self.device_info.value = "device: starting…"
        self.status.value = ("live: " if req.live else "") + "reading the annotations…"
        self.save_button.enabled = False
        self._warned_values = False
        self._loss, self._best, self._started, self._val_kind = None, None, False, ""
        if req.live:
            self._painted = self.labels_layer.value
            self._painted.events.paint.connect(self._on_paint)
        self.runner.start(
            lambda: train_job(req, lambda: self._preview_z),
            on_yield=self._on_record,
            on_done=lambda out: self._on_trained(out, req),
            on_cancelled=lambda out: self._on_trained(out, req),
            on_error=self._on_failed,
            describe=self._progress_step,
            total=req.config.iterations,
            cancel_text="Stop" if req.live else None,
            show_progress=not req.live,  # no end to show; the status line says how far it got
        )
        return True

    def _on_paint(self, event: Any) -> None:
        """A stroke was committed in the annotations: tell the live run which slice(s) to re-read now."""
        live = self._live
        if live is None:
            return
        slices = painted_slices(event.value, self._painted.ndim)
        for z in [None] if slices is None else sorted(slices):
            live.mark(z)

    def _end_live(self) -> None:
        if self._painted is not None:
            self._painted.events.paint.disconnect(self._on_paint)
        self._live = self._painted = None

    def _on_record(self, record: Any) -> None:
        if isinstance(record, DeviceInfo):
            self.device_info.value = f"device: running on {record.text}"
        elif isinstance(record, LiveStarted):
            self._live = record.annotations
        elif isinstance(record, Preview):
            self._show_preview(record)
        elif isinstance(record, PreviewFailed):
            notify(f"The live preview stopped: {record.text}. Training goes on.", "warning")
        elif hasattr(record, "loss") and hasattr(record, "phase"):
            self._take_numbers(record)
            now = time.monotonic()
            note = self._live_note(record)
            # a label re-laid-out (and the window repainted) at every iteration would starve the event loop
            if record.phase != "train" or note or now - self._status_time >= STATUS_INTERVAL:
                self._status_time = now
                self.status.value = self._status_text(record, note)

    def _take_numbers(self, record: Any) -> None:
        """The run's numbers, kept once here and shown everywhere (plot, status, activity dock, notifications):
        the loss smoothed over ~20 iterations, and the best validation as the engine decided it."""
        if record.phase == "train" and record.iteration > 0:
            self._started = True
            if math.isfinite(record.loss):
                loss = float(record.loss)
                self._loss = loss if self._loss is None else self._loss + LOSS_SMOOTHING * (loss - self._loss)
                self.plot.add_loss(record.iteration, record.loss)
        if record.val:
            kind = str(record.val.get("kind") or "")
            if kind and kind != self._val_kind:  # say what the score is measured on, e.g. "held-out strokes"
                self._val_kind = kind
                self.plot.val_label = f"Dice, {kind}"
                self.plot.setToolTip(
                    f"Training loss (blue, left axis) and Dice on {record.val.get('label') or kind} "
                    "(orange, right axis, 0–1). Strokes avoid the hard pixels at class borders: a score on held-out "
                    "strokes reads higher than one on dense labels would."
                )
            score = record.val.get("mean_dice")
            if score is not None and math.isfinite(float(score)):
                if record.val.get("best"):
                    self._best = (int(record.iteration), float(score))
                self.plot.add_validation(record.iteration, score)

    def _progress_step(self, record: Any) -> Any:
        """The activity dock's bar: how far the run is; its text is the status line's (one set of numbers)."""
        step = describe_progress(record, self._budget_seconds)
        if step is None:
            return None
        return dataclasses.replace(step, text=str(self.status.value) or None)

    def _live_note(self, record: Any) -> str:
        """What a live run's training record adds to its step message (strokes re-read, values ignored)."""
        if self._live is None or record.phase != "train":
            return ""
        note = record.message.partition("; ")[2]
        if "not classes" in note and not self._warned_values:
            self._warned_values = True
            notify(f"Live training: {note.split('; ')[-1]}.", "warning")
        return note

    def _status_text(self, record: Any, note: str = "") -> str:
        live = self._live is not None
        if self.runner.cancel_requested:  # no more "… left": the run is ending
            return (
                "live: stopping — keeping the last weights…"
                if live
                else "cancelling — keeping the best model…"
            )
        if record.phase in ("setup", "done", "wait"):
            return ("live: " if live and record.phase == "setup" else "") + record.message
        parts = [f"it. {record.iteration}" + (f"/{record.total}" if record.total else "")]
        if live:
            parts.insert(0, "live")
        if self._loss is not None:
            parts.append(f"loss {self._loss:.3f}")
        if record.phase == "validate" and not record.val:
            parts.append("validating…")
        elif self._best is not None:
            parts.append(
                f"best Dice {self._best[1]:.3f} @ {self._best[0]} ({self._val_kind or 'validation'})"
            )
        if self._budget_seconds:
            left = max(0.0, self._budget_seconds - float(record.elapsed))
            parts.append(f"{int(left // 60)}:{int(left % 60):02d} left")
        if note:
            parts.append(note)
        return " · ".join(parts)

    def _show_preview(self, preview: Preview) -> None:
        """Put the preview into the one layer the widget owns, above the image's slice it belongs to."""
        image = self.image_layer.value
        if image is None:
            return
        data = preview.labels if preview.z is None else preview.labels[np.newaxis]
        geo = geometry_of(image)
        if preview.z is not None:  # a one-slice layer placed at that slice of the stack
            translate = list(geo["translate"])
            translate[-3] += preview.z * geo["scale"][-3]
            geo["translate"] = tuple(translate)
        layer = find_owned(self._viewer, "preview")
        if layer is not None and layer.ndim != data.ndim:
            self._viewer.layers.remove(layer)
            layer = None
        if layer is None:
            selection = list(self._viewer.layers.selection)
            active = self._viewer.layers.selection.active
            layer = self._viewer.add_labels(
                data, name=PREVIEW_LAYER, opacity=0.5, metadata=owner_metadata("preview"), **geo
            )
            # adding a layer selects it; give the selection back (the user may be painting strokes)
            self._viewer.layers.selection.clear()
            self._viewer.layers.selection.update(selection)
            self._viewer.layers.selection.active = active
        else:
            layer.data = data
            layer.scale, layer.translate = geo["scale"], geo["translate"]
        self._keep_below_annotations(layer)
        layer.metadata[OWNER_KEY]["iteration"] = preview.iteration
        layer.metadata[OWNER_KEY]["slice"] = preview.z

    def _keep_below_annotations(self, preview: Any) -> None:
        """The preview must not hide the strokes: move it just below the annotations layer if it is above."""
        layers, annotations = self._viewer.layers, self.labels_layer.value
        if annotations is None or annotations not in layers:
            return
        below = layers.index(annotations)
        if layers.index(preview) > below:
            layers.move(layers.index(preview), below)

    def _on_trained(self, out: TrainOutcome | None, req: TrainRequest) -> None:
        self._end_live()
        self._remove_preview()
        if out is None or out.path is None:
            self.status.value = "stopped before the first checkpoint — the session's model is unchanged"
            notify("Training stopped before any model was saved; the session's model is unchanged.")
            self.save_button.enabled = self.session.current is not None
            return
        quality = (
            f", best validation Dice {out.best_score:.3f} at it. {out.best_iteration}"
            if out.best_score is not None
            else ""
        )
        how = "trained live" if req.live else "trained"
        description = f"{how} on '{req.image_name}', {out.iterations} it.{quality}"
        self.session.set(out.path, out.meta or {}, description=description, source="trained")
        self.next_slices.start()  # where the new model is least sure, in the background
        if out.cancelled and req.live:
            self.status.value = f"live: stopped at it. {out.iterations}; model kept"
            notify(f"Live training stopped at iteration {out.iterations}; model kept as the session's model.")
        elif out.cancelled:
            self.status.value = f"cancelled at it. {out.iterations}; kept the best model{quality}"
            notify(
                f"Training cancelled at iteration {out.iterations}. The best model so far is kept{quality}."
            )
        else:
            self.status.value = f"done: {out.iterations} it.{quality}"

    def _on_failed(self, exc: BaseException) -> None:
        self._end_live()
        self._remove_preview()
        self.save_button.enabled = self.session.current is not None
        if not self._started and isinstance(exc, (ValueError, OSError)):  # e.g. the strokes lack a class
            self.status.value = "not started — see the notification"
            notify(user_message(exc, "Training", started=False), "error")
            return
        self.status.value = "failed — see the notification"
        self.runner.report_error(exc)

    def _remove_preview(self) -> None:
        """The preview was for watching training: once it ends, the Segment widget makes the real result."""
        layer = find_owned(self._viewer, "preview")
        if layer is not None:
            self._viewer.layers.remove(layer)

    # -- saving ---------------------------------------------------------------------------------------------------

    def _on_save_clicked(self, value: Any = None) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save U-Net model", str(Path.home() / "unet_model.pt"), "napari-unet model (*.pt)"
        )
        if path:
            self.save_model(path)

    def save_model(self, path: str | Path) -> Path | None:
        """Copy the session's model to ``path`` (what "Save model…" does after its file dialog)."""
        try:
            dest = self.session.save(path)
        except (RuntimeError, OSError) as exc:
            notify(f"The model could not be saved: {exc}", "error")
            return None
        notify(f"Model saved to {dest}")
        return dest
