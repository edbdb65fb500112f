"""The groups of controls the Train widget is built from: data, model, budget, validation, run.

Each group is a small labelled magicgui ``Container`` (napari-animation builds its dock the same way, from small
widgets): it makes its controls, keeps its own controls' visibility in step, and reads its part of the request.
Reading raises ``ValueError`` with a sentence for the user when something is missing or inconsistent. The Train
widget (:mod:`napari_unet._widgets.train`) lines the groups up as one form and keeps every control as an
attribute of its own, so scripts and tests set ``widget.budget.value`` and the like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels

from napari_unet.config import DEFAULT_MINUTES
from napari_unet.session import ModelSession

from ._layers import (
    device_choice,
    is_ground_truth,
    layer_choices,
    link_recent,
    model_file_edit,
    owned_role,
    recent_model_choice,
    shape_text,
    stack_data,
)

__all__ = [
    "BUDGET_LIVE",
    "PRESETS",
    "BudgetControls",
    "DataControls",
    "ModelControls",
    "RunControls",
    "ValidationControls",
]

NEW_MODEL = "new model"
CONTINUE_MODEL = "continue this session's model"
FILE_MODEL = "start from a model file"  # a file, or one of the recent models kept in the user data folder

BUDGET_MINUTES = "minutes"
BUDGET_ITERATIONS = "iterations"
BUDGET_LIVE = "live (until Stop)"

VAL_AUTO = "automatic"
VAL_SLICES = "held-out slices"
VAL_SHARE = "share of strokes"
VAL_NONE = "none"

PREVIEW_LAYER = "U-Net preview"

#: the widget's presets → the engine's preset names (``napari_unet.config.PRESETS``); the values the controls show
#: are read from the engine's preset when one is chosen
PRESETS: dict[str, str] = {"fast — CPU": "fast-cpu", "accurate — GPU": "accurate-gpu"}
#: validate (and checkpoint the best model) every 50 iterations, as the CLI does; the engine stretches the interval by
#: itself so that validation takes at most ~10 % of the time. The preview does not wait for validations (it asks the
#: engine for a snapshot of the weights when one is due). Validating every 10 cost the widget about 15 % of its
#: iterations against the CLI, every 25 about 20 % with the previews it triggered (benchmarks/widget_vs_cli.py
#: --widget-defaults: 0.76, then 0.75-0.84)
VAL_EVERY = 50


class _Group(Container):
    """A labelled group of controls without margins of its own (the dock's margins frame them all)."""

    def __init__(self) -> None:
        super().__init__(labels=True)
        self.margins = (0, 0, 0, 0)


class DataControls(_Group):
    """The image to learn from, its annotations, and whether the annotations are sparse strokes or dense labels."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.image_layer = ComboBox(
            label="image", choices=layer_choices(viewer, Image), tooltip="The image to learn from."
        )
        self.labels_layer = ComboBox(
            label="annotations",
            choices=layer_choices(viewer, Labels),
            tooltip="A Labels layer of the image's shape with a few strokes per class (1, 2, ...); "
            "0 = not annotated.",
        )
        self.dense = CheckBox(
            text="dense labels (0 is a class too)",
            value=False,
            tooltip="Off: only painted pixels are learned from (sparse strokes). On: every pixel, 0 included, "
            "is a class (fully annotated ground truth).",
        )
        self.extend([self.image_layer, self.labels_layer, self.dense])

        # True once the user chose the annotations in the combo box (Qt's `activated` is the user's choice only;
        # programmatic changes and choice resets do not emit it): that choice is kept, even ground truth
        self._picked_by_user = False
        self.labels_layer.native.activated.connect(self._on_labels_activated)

    def _on_labels_activated(self, index: int = 0) -> None:
        self._picked_by_user = True

    def _pick(self, layer: Labels) -> None:
        self.labels_layer.value = layer
        self._picked_by_user = False

    def _fits(self, layer: Any) -> bool:
        """A layer the annotations may be: a user's Labels layer (not a napari-unet output) of the image's shape."""
        image = self.image_layer.value
        if image is None or layer is None or not isinstance(layer, Labels) or owned_role(layer) is not None:
            return False
        image_shape = image.level_shapes[0] if getattr(image, "multiscale", False) else image.data.shape
        layer_shape = layer.level_shapes[0] if getattr(layer, "multiscale", False) else layer.data.shape
        return tuple(int(s) for s in layer_shape) == tuple(int(s) for s in image_shape)

    def _strokes(self, layer: Any) -> bool:
        return self._fits(layer) and not is_ground_truth(layer)

    def offer(self, layer: Any) -> bool:
        """The user added or selected ``layer``: make it the annotations if it can hold strokes for the image
        (a Labels layer of the image's shape, neither ground truth nor a napari-unet output). True if chosen."""
        if not self._strokes(layer):
            return False
        self.labels_layer.reset_choices()
        if layer not in self.labels_layer.choices:
            return False
        if self.labels_layer.value is not layer:
            self._pick(layer)
        return True

    def preselect(self) -> None:
        """Keep the annotations on the user's strokes for the image: the current choice while it fits (ground truth
        only when the user picked it), otherwise the topmost user Labels layer of the image's shape that is not
        ground truth, otherwise any fitting layer."""
        current = self.labels_layer.value
        if self._strokes(current) or (self._fits(current) and self._picked_by_user):
            return
        choices = list(self.labels_layer.choices)
        for layer in [c for c in choices if self._strokes(c)] or [c for c in choices if self._fits(c)]:
            if layer is not current:
                self._pick(layer)
            return

    def read(self) -> tuple[Image, Any, Any]:
        """The image layer, its (Z, Y, X) / (Y, X) array and the annotations' array of the same shape."""
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
        return image_layer, image, labels


class ModelControls(_Group):
    """Where the network starts (new, this session's model, a file), its preset and the advanced settings."""

    def __init__(self) -> None:
        super().__init__()
        self.model_source = ComboBox(
            label="model",
            choices=[NEW_MODEL, CONTINUE_MODEL, FILE_MODEL],
            value=NEW_MODEL,
            tooltip="Train a new network, or fine-tune this session's model or a saved one on new strokes.",
        )
        self.model_file = model_file_edit()
        self.recent = recent_model_choice()
        link_recent(self.recent, self.model_file)
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
        self.from_scratch = CheckBox(
            text="from scratch",
            value=False,
            visible=False,
            tooltip="Start from random weights instead of the EM-pretrained model that a new model starts from.",
        )
        self.device = device_choice(visible=False)
        self.val_every = SpinBox(
            label="validate every",
            value=VAL_EVERY,
            min=5,
            max=100000,
            step=5,
            visible=False,
            tooltip="Iterations between validations (stretched automatically when validation is slow).",
        )
        self.extend(
            [
                self.model_source,
                self.model_file,
                self.recent,
                self.preset,
                self.advanced,
                self.depth,
                self.features,
                self.from_scratch,
                self.device,
                self.val_every,
            ]
        )
        self.model_source.changed.connect(self._on_visibility_changed)
        self.advanced.changed.connect(self._on_visibility_changed)

    def _on_visibility_changed(self, value: Any = None) -> None:
        new = self.model_source.value == NEW_MODEL
        self.model_file.visible = self.recent.visible = self.model_source.value == FILE_MODEL
        if self.recent.visible:
            self.recent.reset_choices()
        self.preset.visible = new
        for w in (self.depth, self.features, self.from_scratch):
            w.visible = new and bool(self.advanced.value)
        for w in (self.device, self.val_every):
            w.visible = bool(self.advanced.value)

    @property
    def engine_preset(self) -> str:
        """The engine's name of the chosen preset (``napari_unet.config.PRESETS``)."""
        return PRESETS[self.preset.value]

    def overrides(self) -> dict[str, Any]:
        """TrainConfig fields: the architecture and start (new models only), validation interval, device."""
        fields: dict[str, Any] = {"val_every": int(self.val_every.value), "device": str(self.device.value)}
        if self.model_source.value == NEW_MODEL:  # fine-tuning keeps the checkpoint's architecture
            fields["depth"], fields["features"] = int(self.depth.value), int(self.features.value)
            if self.from_scratch.value:
                fields["start"] = "scratch"
        return fields

    def init(self, session: ModelSession) -> Path | None:
        """The checkpoint to fine-tune (this session's model or the chosen file); None for a new model."""
        if self.model_source.value == CONTINUE_MODEL:
            if session.current is None:
                raise ValueError(
                    "There is no model in this session to continue yet: choose 'new model' (or a model file)."
                )
            return session.current.path
        if self.model_source.value == FILE_MODEL:
            path = self.model_file.value
            if not path or not Path(path).is_file():
                raise ValueError("Choose an existing model file (.pt) to start from.")
            return Path(path)
        return None


class BudgetControls(_Group):
    """When to stop (minutes, iterations, or live: when the user says so) and what each iteration sees (patch
    side, batch, learning rate)."""

    def __init__(self) -> None:
        super().__init__()
        self.budget = FloatSpinBox(
            value=DEFAULT_MINUTES, min=0.1, max=100000, step=1.0, tooltip="When to stop training."
        )
        self.budget_unit = ComboBox(
            choices=[BUDGET_MINUTES, BUDGET_ITERATIONS, BUDGET_LIVE],
            value=BUDGET_MINUTES,
            tooltip="live: train until you press Stop, while you paint; strokes added or erased are learned "
            "from within about a second, and the preview follows the slice you look at.",
        )
        self.budget_row = Container(
            label="budget", layout="horizontal", widgets=[self.budget, self.budget_unit], labels=False
        )
        self.budget_row.margins = (0, 0, 0, 0)
        self.patch = SpinBox(
            label="patch", min=32, max=2048, step=16, tooltip="Side of the training patches in pixels."
        )
        self.batch_size = SpinBox(label="batch", min=1, max=256, tooltip="Patches per iteration.")
        self.lr = FloatSpinBox(
            label="learning rate", min=1e-6, max=1.0, step=5e-4, tooltip="Peak AdamW learning rate."
        )
        self.lr.native.setDecimals(6)
        self.extend([self.budget_row, self.patch, self.batch_size, self.lr])
        self.budget_unit.changed.connect(self._on_unit_changed)
        self.show_advanced(False)

    def show_advanced(self, on: bool) -> None:
        """Patch, batch and learning rate are advanced settings: shown only when ``on``."""
        for w in (self.patch, self.batch_size, self.lr):
            w.visible = bool(on)

    @property
    def live(self) -> bool:
        """True when training runs live, until the user stops it."""
        return self.budget_unit.value == BUDGET_LIVE

    def _on_unit_changed(self, value: Any = None) -> None:
        self.budget.visible = not self.live

    def overrides(self) -> dict[str, Any]:
        """TrainConfig fields: patch, batch size, learning rate, and ``minutes`` or ``iterations`` (live: neither,
        the run goes on until it is stopped)."""
        fields: dict[str, Any] = {
            "patch": int(self.patch.value),
            "batch_size": int(self.batch_size.value),
            "lr": float(self.lr.value),
        }
        if self.budget_unit.value == BUDGET_MINUTES:
            fields["minutes"] = float(self.budget.value)
        elif self.budget_unit.value == BUDGET_ITERATIONS:
            fields["iterations"] = max(1, int(round(self.budget.value)))
        return fields


class ValidationControls(_Group):
    """What is held out to choose the best model: automatic, chosen slices, a share of the strokes, or nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.validation = ComboBox(
            label="validation",
            choices=[VAL_AUTO, VAL_SLICES, VAL_SHARE, VAL_NONE],
            value=VAL_AUTO,
            tooltip="automatic: hold out the last 20 % of the annotated slices; when a single slice is painted, "
            "whole strokes (about 20 % of each class's pixels) with a 16 px guard band around them that does not "
            "train either, so that the score is not measured next to training pixels. The best model by validation "
            "Dice is kept; the curve and the status say what the score was measured on.",
        )
        self.val_start = SpinBox(label="held out from slice", value=0, min=0, max=100000, visible=False)
        self.val_stop = SpinBox(label="to slice (excluded)", value=1, min=1, max=100001, visible=False)
        self.val_fraction = FloatSpinBox(
            label="share held out", value=0.2, min=0.05, max=0.5, step=0.05, visible=False
        )
        self.extend([self.validation, self.val_start, self.val_stop, self.val_fraction])
        self.validation.changed.connect(self._on_visibility_changed)

    def _on_visibility_changed(self, value: Any = None) -> None:
        self.val_start.visible = self.val_stop.visible = self.validation.value == VAL_SLICES
        self.val_fraction.visible = self.validation.value == VAL_SHARE

    def overrides(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """TrainConfig fields ``val_slices`` / ``val_fraction`` for an image of ``shape`` (none: automatic)."""
        choice = self.validation.value
        if choice == VAL_SLICES:
            if len(shape) < 3:
                raise ValueError(
                    "Held-out slices need a stack, and this image is a single 2D slice: "
                    "choose 'share of strokes' for validation."
                )
            start, stop = int(self.val_start.value), int(self.val_stop.value)
            if not 0 <= start < stop <= shape[0]:
                raise ValueError(
                    f"The held-out slices {start} to {stop} (excluded) are not inside the stack's "
                    f"{shape[0]} slices."
                )
            return {"val_slices": (start, stop)}
        if choice == VAL_SHARE:
            return {"val_fraction": float(self.val_fraction.value)}
        if choice == VAL_NONE:
            return {"val_fraction": 0.0}
        return {}


class RunControls(_Group):
    """The live-preview switch and where training runs (in the form); the Train (Cancel) button and the status
    line, which the widget pins under its form (they are attributes here, not rows of this group)."""

    def __init__(self) -> None:
        super().__init__()
        self.preview = CheckBox(
            text="live preview of the current slice",
            value=True,
            tooltip=f"Predict the slice you are looking at every few seconds, in the layer '{PREVIEW_LAYER}' "
            "(below your strokes; removed when training ends).",
        )
        self.device_info = Label(value="device: auto (checked when training starts)")
        self.train_button = PushButton(
            text="Train", tooltip="Train (Shift+T); Shift+T again cancels or stops."
        )
        self.status = Label(value="ready")
        self.extend([self.preview, self.device_info])
