"""The "Train U-Net" dock widget: train (or fine-tune) a U-Net on the strokes painted in a Labels layer.

The widget reads its controls into a :class:`TrainRequest` (a ``TrainConfig`` plus where to start from), runs
:func:`napari_unet.train.train` in a worker through :class:`~napari_unet._widgets._runner.Runner` and shows what the
engine yields: the loss and validation curve (:class:`~napari_unet._widgets._plot.CurvePlot`), a status line, the
activity-dock progress bar, and a preview of the slice the viewer shows, predicted by the engine
(``predict_stack``) in the worker with the run's newest checkpoint (written at every validation) and refreshed at
most every few seconds, in one layer the widget owns ("U-Net preview"). When training ends, or is cancelled, the
best checkpoint becomes the session's model (:mod:`napari_unet.session`), which the Segment widget uses and
"Save model…" copies to a file. No torch is imported by this module: the engine is imported in the worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning

from napari_unet.session import ModelSession, SessionModel, session_for

from ._layers import (
    OWNER_KEY,
    current_index,
    find_owned,
    geometry_of,
    keep_narrow,
    layer_choices,
    owned_role,
    shape_text,
    stack_data,
    tag,
    watch_layers,
)
from ._plot import CurvePlot
from ._runner import Cancelled, Runner, Step

__all__ = ["PRESETS", "TrainRequest", "TrainWidget"]

NEW_MODEL = "new model"
CONTINUE_MODEL = "continue this session's model"
FILE_MODEL = "start from a model file"

BUDGET_MINUTES = "minutes"
BUDGET_ITERATIONS = "iterations"

VAL_AUTO = "automatic"
VAL_SLICES = "held-out slices"
VAL_SHARE = "share of strokes"
VAL_NONE = "none"

PREVIEW_LAYER = "U-Net preview"
STATUS_INTERVAL = 0.25  # seconds between status-line updates
PREVIEW_SECONDS = 3.0  # at most one preview per this many seconds (new weights arrive with each validation)

#: the widget's presets → the engine's ``napari_unet.train.PRESETS`` name and the values the controls show, as the
#: engine resolves them for sparse strokes (a test keeps these in step with the engine without importing torch here)
PRESETS: dict[str, dict[str, Any]] = {
    "fast — CPU": {
        "engine": "fast-cpu",
        "depth": 4,
        "features": 8,
        "patch": 96,  # the engine's choice for sparse strokes (256 x 4 for dense labels)
        "batch_size": 8,
        "lr": 3e-3,
    },
    "accurate — GPU": {
        "engine": "accurate-gpu",
        "depth": 5,
        "features": 32,
        "patch": 396,
        "batch_size": 8,
        "lr": 1e-3,
    },
}
#: fields of TrainConfig the controls set (everything else comes from the engine preset)
UI_FIELDS = ("depth", "features", "patch", "batch_size", "lr")
#: validate (and so checkpoint, and refresh the preview) as often as the engine allows: it stretches the interval
#: by itself so that validation takes at most ~10 % of the time
VAL_EVERY = 10


@dataclass(frozen=True)
class TrainRequest:
    """Everything one training run needs, read from the widget in the GUI thread."""

    image: Any  # (Z, Y, X) or (Y, X)
    labels: Any  # same shape, integer
    preset: str  # engine preset name (napari_unet.train.PRESETS)
    config: dict  # TrainConfig fields set on top of the preset
    init: Path | None  # checkpoint to start from (fine-tuning), None for a new model
    checkpoint_dir: Path
    voxel_size: tuple[float, ...]
    image_name: str
    preview_every: float | None  # seconds between previews, None for no preview


@dataclass(frozen=True)
class DeviceInfo:
    """First record of a run: where the engine will train."""

    text: str


@dataclass(frozen=True)
class Preview:
    """A prediction of one slice with the weights of ``iteration``; ``labels`` is (Y, X)."""

    z: int | None
    labels: np.ndarray
    iteration: int


@dataclass(frozen=True)
class PreviewFailed:
    """The preview could not be computed (training goes on without it)."""

    message: str


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


# -- worker side ------------------------------------------------------------------------------------------------


def _checkpoint_files(folder: Path) -> list[Path]:
    """Checkpoints a run left in ``folder``: the best by validation first, then the last one."""
    from napari_unet.train import BEST_NAME, LAST_NAME

    return [folder / name for name in (BEST_NAME, LAST_NAME) if (folder / name).is_file()]


def _outcome_from_folder(folder: Path, *, cancelled: bool, iterations: int) -> TrainOutcome:
    """After a cancel: the best (else latest) checkpoint the run left behind."""
    from napari_unet.checkpoint import read_checkpoint
    from napari_unet.train import BEST_NAME

    for path in _checkpoint_files(folder):
        try:
            ckpt = read_checkpoint(path)
        except (OSError, ValueError):
            continue
        meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
        history = meta.get("history") or {}
        best_score, best_iteration = _best_of(history) if path.name == BEST_NAME else (None, None)
        return TrainOutcome(
            path=path,
            meta=meta,
            cancelled=cancelled,
            iterations=iterations,
            best_score=best_score,
            best_iteration=best_iteration,
            history=history,
        )
    return TrainOutcome(path=None, meta=None, cancelled=cancelled, iterations=iterations)


def _best_of(history: dict) -> tuple[float | None, int | None]:
    """(best validation mean Dice, its iteration) from a training history, or (None, None) without validation."""
    score, it = history.get("best_val_dice"), history.get("best_iteration")
    if score is None or it is None or not math.isfinite(float(score)):
        return None, None
    return float(score), int(it)


class _Previewer:
    """Predicts the current slice with the weights of the run's newest checkpoint, at most every few seconds.

    The engine writes ``last.pt`` at every validation; a preview is made when that file, or the slice shown in the
    viewer, changed since the last preview. The prediction is a generator so that Cancel also interrupts it.
    """

    def __init__(self, req: TrainRequest, slice_index: Callable[[], int | None]) -> None:
        from napari_unet.train import LAST_NAME

        self.req = req
        self.slice_index = slice_index
        self.path = req.checkpoint_dir / LAST_NAME
        self.last_time = -math.inf
        self.last_key: tuple | None = None
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def due(self) -> bool:
        if (
            not self.enabled
            or self.req.preview_every is None
            or time.monotonic() - self.last_time < self.req.preview_every
        ):
            return False
        if not self.path.is_file():
            return False
        return (self.path.stat().st_mtime_ns, self.slice_index()) != self.last_key

    def run(self, iteration: int):
        """Generator: yields ``PredictProgress`` records, returns a :class:`Preview`."""
        from napari_unet.checkpoint import load_checkpoint
        from napari_unet.predict import predict_stack

        z = self.slice_index()
        key = (self.path.stat().st_mtime_ns, z)
        model, meta = load_checkpoint(self.path)
        image = self.req.image if z is None else self.req.image[z : z + 1]
        result = yield from predict_stack(image, model, meta, device=self.req.config.get("device", "auto"))
        self.last_key = key
        self.last_time = time.monotonic()
        labels = np.asarray(result.labels)
        return Preview(z=z, labels=labels if z is None else labels[0], iteration=iteration)


def train_job(req: TrainRequest, slice_index: Callable[[], int | None]):
    """Generator run in the worker thread: yields DeviceInfo, TrainProgress, PredictProgress (preview) and Preview
    records; returns a :class:`TrainOutcome`.

    On :class:`Cancelled` the engine generator is closed, which leaves ``best.pt``/``last.pt`` on disk, and the best
    of them is returned (flagged ``cancelled``).
    """
    from napari_unet.device import describe_device, select_device
    from napari_unet.train import TrainConfig, train

    yield DeviceInfo(describe_device(select_device(req.config.get("device", "auto"))))
    config = TrainConfig.preset(req.preset, **req.config)
    gen = train(
        req.image,
        req.labels,
        config,
        init=req.init,
        checkpoint_dir=req.checkpoint_dir,
        voxel_size=req.voxel_size,
    )
    previewer = _Previewer(req, slice_index)
    iteration = 0
    try:
        while True:
            try:
                record = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            iteration = int(record.iteration)
            yield record
            if record.phase == "train" and previewer.due():
                try:
                    preview = yield from previewer.run(iteration)
                except Cancelled:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed preview must not end the training
                    previewer.disable()
                    yield PreviewFailed(str(exc) or type(exc).__name__)
                else:
                    yield preview
    except Cancelled:
        gen.close()  # the engine saves the last weights (and best.pt if there was none yet)
        return _outcome_from_folder(req.checkpoint_dir, cancelled=True, iterations=iteration)
    path = result.best_path or result.last_path
    history = dict(result.history or {})
    best_score, best_it = _best_of(history)
    return TrainOutcome(
        path=Path(path) if path else None,
        meta=dict(result.meta),
        cancelled=bool(result.cancelled),
        iterations=iteration,
        best_score=best_score,
        best_iteration=best_it,
        history=history,
    )


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


# -- the widget -------------------------------------------------------------------------------------------------


class TrainWidget(Container):
    """Dock widget: train a U-Net on painted strokes, watch it learn, keep the best model.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Injected by napari.

    Attributes (for scripts and tests)
    ----------------------------------
    image_layer, labels_layer, dense, model_source, model_file, preset, advanced, depth, features, device,
    val_every, budget, budget_unit, patch, batch_size, lr, validation, val_start, val_stop, val_fraction,
    preview : magicgui widgets
    train_button, save_button : PushButton
    plot : CurvePlot
    runner : Runner
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self.session: ModelSession = session_for(napari_viewer)
        self._preview_z: int | None = None
        self._budget_seconds: float | None = None
        self._status_time = -math.inf

        # data
        self.image_layer = ComboBox(
            label="image", choices=layer_choices(napari_viewer, Image), tooltip="The image to learn from."
        )
        self.labels_layer = ComboBox(
            label="annotations",
            choices=layer_choices(napari_viewer, Labels),
            tooltip="A Labels layer of the image's shape with a few strokes per class (1, 2, ...); "
            "0 = not annotated.",
        )
        self.dense = CheckBox(
            text="dense labels (0 is a class too)",
            value=False,
            tooltip="Off: only painted pixels are learned from (sparse strokes). On: every pixel, 0 included, "
            "is a class (fully annotated ground truth).",
        )
        # model
        self.model_source = ComboBox(
            label="model",
            choices=[NEW_MODEL, CONTINUE_MODEL, FILE_MODEL],
            value=NEW_MODEL,
            tooltip="Train a new network, or fine-tune this session's model or a saved one on new strokes.",
        )
        self.model_file = FileEdit(label="model file", mode="r", filter="*.pt *.pth", visible=False)
        self.preset = ComboBox(
            label="preset",
            choices=list(PRESETS),
            value="fast — CPU",
            tooltip="fast: a compact network that learns in minutes on a CPU. "
            "accurate: a deeper, wider one for a GPU.",
        )
        self.advanced = CheckBox(text="advanced", value=False)
        self.depth = SpinBox(label="depth", min=2, max=6, visible=False, tooltip="Resolution levels.")
        self.features = SpinBox(
            label="features", min=4, max=128, step=4, visible=False, tooltip="Channels of the first level."
        )
        self.device = ComboBox(
            label="device",
            choices=["auto", "cpu", "cuda", "mps"],
            value="auto",
            visible=False,
            tooltip="'auto' uses a CUDA GPU, then Apple MPS, then the CPU.",
        )
        self.val_every = SpinBox(
            label="validate every",
            value=VAL_EVERY,
            min=5,
            max=100000,
            step=5,
            visible=False,
            tooltip="Iterations between validations (stretched automatically when validation is slow).",
        )
        # budget
        self.budget = FloatSpinBox(value=2.0, min=0.1, max=100000, step=1.0, tooltip="When to stop training.")
        self.budget_unit = ComboBox(choices=[BUDGET_MINUTES, BUDGET_ITERATIONS], value=BUDGET_MINUTES)
        self._budget_row = Container(
            label="budget", layout="horizontal", widgets=[self.budget, self.budget_unit], labels=False
        )
        self._budget_row.margins = (0, 0, 0, 0)
        self.patch = SpinBox(
            label="patch", min=32, max=2048, step=16, tooltip="Side of the training patches in pixels."
        )
        self.batch_size = SpinBox(label="batch", min=1, max=256, tooltip="Patches per iteration.")
        self.lr = FloatSpinBox(
            label="learning rate", min=1e-6, max=1.0, step=5e-4, tooltip="Peak AdamW learning rate."
        )
        self.lr.native.setDecimals(6)
        # validation
        self.validation = ComboBox(
            label="validation",
            choices=[VAL_AUTO, VAL_SLICES, VAL_SHARE, VAL_NONE],
            value=VAL_AUTO,
            tooltip="automatic: hold out the last 20 % of the annotated slices; when a single slice is painted, all "
            "of its strokes train the model (no validation curve: choose 'share of strokes' for one). With "
            "validation, the best model by validation Dice is kept.",
        )
        self.val_start = SpinBox(label="held out from slice", value=0, min=0, max=100000, visible=False)
        self.val_stop = SpinBox(label="to slice (excluded)", value=1, min=1, max=100001, visible=False)
        self.val_fraction = FloatSpinBox(
            label="share held out", value=0.2, min=0.05, max=0.5, step=0.05, visible=False
        )
        self.preview = CheckBox(
            text="live preview of the current slice",
            value=True,
            tooltip=f"Predict the slice you are looking at after each validation, in the layer '{PREVIEW_LAYER}'.",
        )
        self.device_info = Label(label="device", value="auto (checked when training starts)")
        self.train_button = PushButton(text="Train")
        self.status = Label(label="status", value="ready")
        self.model_info = Label(label="model", value="none yet")
        self.save_button = PushButton(text="Save model…", enabled=False)

        self.extend(
            [
                self.image_layer,
                self.labels_layer,
                self.dense,
                self.model_source,
                self.model_file,
                self.preset,
                self.advanced,
                self.depth,
                self.features,
                self.device,
                self.val_every,
                self._budget_row,
                self.patch,
                self.batch_size,
                self.lr,
                self.validation,
                self.val_start,
                self.val_stop,
                self.val_fraction,
                self.preview,
                self.device_info,
                self.train_button,
                self.status,
            ]
        )
        # The plot is a plain QWidget: it goes into the layout after every magicgui child.
        self.plot = CurvePlot()
        self.native.layout().addWidget(self.plot)
        self._tail = Container(widgets=[self.model_info, self.save_button], labels=True)
        self._tail.margins = (0, 0, 0, 0)
        self.native.layout().addWidget(self._tail.native)

        keep_narrow(self)
        keep_narrow(self._tail)
        self.runner = Runner(self.train_button, "Training", owner=self)

        self.model_source.changed.connect(self._on_visibility_changed)
        self.advanced.changed.connect(self._on_visibility_changed)
        self.validation.changed.connect(self._on_visibility_changed)
        self.preset.changed.connect(self._on_preset_changed)
        self.image_layer.changed.connect(self._on_image_changed)
        self.train_button.changed.connect(self._on_train_clicked)
        self.save_button.changed.connect(self._on_save_clicked)
        self.session.changed.connect(self._on_session_changed)
        napari_viewer.dims.events.current_step.connect(self._on_current_step)
        watch_layers(napari_viewer, self, self._preselect)
        self._on_preset_changed()
        self._preselect()
        self._on_session_changed(self.session.current)

    # -- UI state -------------------------------------------------------------------------------------------------

    def _preselect(self) -> None:
        """Keep the annotations on a user's Labels layer with the image's shape (not a napari-unet output)."""
        image = self.image_layer.value
        if image is None or getattr(image, "multiscale", False):
            return
        shape = tuple(image.data.shape)

        def fits(layer: Labels | None) -> bool:
            return layer is not None and owned_role(layer) is None and tuple(layer.data.shape) == shape

        if fits(self.labels_layer.value):
            return
        for layer in self.labels_layer.choices:
            if fits(layer):
                self.labels_layer.value = layer
                return

    def _on_image_changed(self, value: Any = None) -> None:
        self._preselect()
        self._on_current_step()

    def _on_visibility_changed(self, value: Any = None) -> None:
        new = self.model_source.value == NEW_MODEL
        self.model_file.visible = self.model_source.value == FILE_MODEL
        self.preset.visible = new
        for w in (self.depth, self.features):
            w.visible = new and bool(self.advanced.value)
        for w in (self.device, self.val_every):
            w.visible = bool(self.advanced.value)
        self.val_start.visible = self.val_stop.visible = self.validation.value == VAL_SLICES
        self.val_fraction.visible = self.validation.value == VAL_SHARE

    def _on_preset_changed(self, value: Any = None) -> None:
        preset = PRESETS[self.preset.value]
        for name in UI_FIELDS:
            getattr(self, name).value = preset[name]

    def _on_session_changed(self, model: SessionModel | None) -> None:
        try:
            self.save_button.enabled = model is not None and not self.runner.busy
            if model is None:
                self.model_info.value = "none yet"
            else:
                saved = f" — saved as {model.saved_to.name}" if model.saved_to else " — not saved yet"
                self.model_info.value = (model.description or model.path.name) + saved
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
        image_layer: Image | None = self.image_layer.value
        labels_layer: Labels | None = self.labels_layer.value
        if image_layer is None:
            raise ValueError("Open or choose the image to train on first.")
        if labels_layer is None:
            raise ValueError(
                "Paint a few strokes of each class first: add a Labels layer (the 'new labels layer' button above "
                "the layer list), paint membrane with label 1 and cell interior with label 2, then press Train."
            )
        image = stack_data(image_layer)
        labels = stack_data(labels_layer, "annotations")
        if tuple(labels.shape) != tuple(image.shape):
            raise ValueError(
                f"The annotations '{labels_layer.name}' ({shape_text(labels.shape)}) do not have the shape of the "
                f"image '{image_layer.name}' ({shape_text(image.shape)}). Paint in a Labels layer made for this "
                "image (select the image, then 'new labels layer')."
            )
        new = self.model_source.value == NEW_MODEL
        preset = PRESETS[self.preset.value]
        config: dict[str, Any] = {
            "dense": bool(self.dense.value),
            "patch": int(self.patch.value),
            "batch_size": int(self.batch_size.value),
            "lr": float(self.lr.value),
            "val_every": int(self.val_every.value),
            "device": str(self.device.value),
        }
        if new:
            config["depth"], config["features"] = int(self.depth.value), int(self.features.value)
        if self.budget_unit.value == BUDGET_MINUTES:
            config["minutes"] = float(self.budget.value)
        else:
            config["iterations"] = max(1, int(round(self.budget.value)))
        if self.validation.value == VAL_SLICES:
            if image.ndim < 3:
                raise ValueError(
                    "Held-out slices need a stack, and this image is a single 2D slice: "
                    "choose 'share of strokes' for validation."
                )
            start, stop = int(self.val_start.value), int(self.val_stop.value)
            if not 0 <= start < stop <= image.shape[0]:
                raise ValueError(
                    f"The held-out slices {start} to {stop} (excluded) are not inside the stack's "
                    f"{image.shape[0]} slices."
                )
            config["val_slices"] = (start, stop)
        elif self.validation.value == VAL_SHARE:
            config["val_fraction"] = float(self.val_fraction.value)
        elif self.validation.value == VAL_NONE:
            config["val_fraction"] = 0.0
        init: Path | None = None
        if self.model_source.value == CONTINUE_MODEL:
            if self.session.current is None:
                raise ValueError(
                    "There is no model in this session to continue yet: choose 'new model' (or a model file)."
                )
            init = self.session.current.path
        elif self.model_source.value == FILE_MODEL:
            path = self.model_file.value
            if not path or not Path(path).is_file():
                raise ValueError("Choose an existing model file (.pt) to start from.")
            init = Path(path)
        return TrainRequest(
            image=image,
            labels=labels,
            preset=preset["engine"],
            config=config,
            init=init,
            checkpoint_dir=self.session.new_run_dir(),
            voxel_size=tuple(float(s) for s in image_layer.scale),
            image_name=image_layer.name,
            preview_every=PREVIEW_SECONDS if self.preview.value else None,
        )

    # -- run ------------------------------------------------------------------------------------------------------

    def _on_train_clicked(self, value: Any = None) -> None:
        if self.runner.busy:
            self.runner.cancel()
            return
        self.train()

    def train(self) -> bool:
        """Start training with the current settings; False (and a notification) when the inputs are unusable."""
        try:
            req = self.request()
        except ValueError as exc:
            show_error(str(exc))
            self.status.value = "not started"
            return False
        self.plot.clear()
        self.plot.set_total(req.config.get("iterations"))
        self._budget_seconds = req.config["minutes"] * 60 if "minutes" in req.config else None
        self._on_current_step()
        self.device_info.value = "starting…"
        self.status.value = "reading the annotations…"
        self.save_button.enabled = False
        self.runner.start(
            lambda: train_job(req, lambda: self._preview_z),
            on_yield=self._on_record,
            on_done=lambda out: self._on_trained(out, req),
            on_cancelled=lambda out: self._on_trained(out, req),
            on_error=self._on_failed,
            describe=lambda record: describe_progress(record, self._budget_seconds),
            total=req.config.get("iterations"),
        )
        return True

    def _on_record(self, record: Any) -> None:
        if isinstance(record, DeviceInfo):
            self.device_info.value = f"running on {record.text}"
        elif isinstance(record, Preview):
            self._show_preview(record)
        elif isinstance(record, PreviewFailed):
            show_warning(f"The live preview stopped: {record.message}. Training goes on.")
        elif hasattr(record, "loss") and hasattr(record, "phase"):
            if record.phase == "train":
                self.plot.add_loss(record.iteration, record.loss)
            if record.val:
                score = record.val.get("mean_dice")
                if score is not None:
                    self.plot.add_validation(record.iteration, score)
            now = time.monotonic()
            # a label re-laid-out (and the window repainted) at every iteration would starve the event loop
            if record.phase != "train" or now - self._status_time >= STATUS_INTERVAL:
                self._status_time = now
                self.status.value = self._status_text(record)

    def _status_text(self, record: Any) -> str:
        if record.phase in ("setup", "done"):
            return record.message
        parts = [f"it. {record.iteration}" + (f"/{record.total}" if record.total else "")]
        if math.isfinite(record.loss):
            parts.append(f"loss {record.loss:.3f}")
        best = self.plot.best_validation()
        if record.phase == "validate" and not record.val:
            parts.append("validating…")
        elif best is not None:
            parts.append(f"best val. Dice {best[1]:.3f}")
        if self._budget_seconds:
            left = max(0.0, self._budget_seconds - float(record.elapsed))
            parts.append(f"{int(left // 60)}:{int(left % 60):02d} left")
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
            layer = self._viewer.add_labels(data, name=PREVIEW_LAYER, opacity=0.5, **geo)
            tag(layer, "preview")
            # adding a layer selects it; give the selection back (the user may be painting strokes)
            self._viewer.layers.selection.clear()
            self._viewer.layers.selection.update(selection)
            self._viewer.layers.selection.active = active
        else:
            layer.data = data
            layer.scale = geo["scale"]
            layer.translate = geo["translate"]
        layer.metadata[OWNER_KEY]["iteration"] = preview.iteration
        layer.metadata[OWNER_KEY]["slice"] = preview.z

    def _on_trained(self, out: TrainOutcome | None, req: TrainRequest) -> None:
        if out is None or out.path is None:
            self.status.value = "stopped before the first checkpoint — the session's model is unchanged"
            show_info("Training stopped before any model was saved; the session's model is unchanged.")
            self.save_button.enabled = self.session.current is not None
            return
        quality = (
            f", best validation Dice {out.best_score:.3f} at it. {out.best_iteration}"
            if out.best_score is not None
            else ""
        )
        description = f"trained on '{req.image_name}', {out.iterations} it.{quality}"
        self.session.set(out.path, out.meta or {}, description=description, source="trained")
        if out.cancelled:
            self.status.value = f"cancelled at it. {out.iterations}; kept the best model{quality}"
            show_info(
                f"Training cancelled at iteration {out.iterations}. The best model so far is kept{quality}."
            )
        else:
            self.status.value = f"done: {out.iterations} it.{quality}"

    def _on_failed(self, exc: BaseException) -> None:
        self.status.value = "failed — see the notification"
        self.save_button.enabled = self.session.current is not None
        self.runner.report_error(exc)

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
            show_error(f"The model could not be saved: {exc}")
            return None
        show_info(f"Model saved to {dest}")
        return dest
