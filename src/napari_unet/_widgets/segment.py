"""The "Segment with U-Net" dock widget: apply this session's model (or a model file) to an image layer.

The widget reads its controls into one :class:`~._segment_job.SegmentRequest`, runs
:func:`~._segment_job.segment_job` (the engine's ``predict_stack``, in the Qt-free :mod:`._segment_job`) in a worker
through :class:`~napari_unet._widgets._runner.Runner` (torch is imported there, not here) and writes the result
into layers it owns: ``"<image> U-Net"`` (Labels) and, when asked, ``"<image> U-Net probabilities"``
(Image, class axis first so that it lines up with the stack). Running again updates those layers in place; with
the "current slice" scope only that slice is written. The user's own layers are only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    LineEdit,
    PushButton,
    RadioButtons,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_info

from napari_unet.config import parse_auto_int
from napari_unet.session import ModelSession, SessionModel, session_for

from ._dock import bind_shortcut, elide, scroll_body
from ._layers import (
    DEVICES,
    OWNER_KEY,
    current_index,
    device_choice,
    find_owned,
    geometry_of,
    keep_narrow,
    layer_choices,
    link_recent,
    model_file_edit,
    owner_metadata,
    place_on,
    recent_model_choice,
    shape_text,
    stack_data,
    tag,
    watch_layers,
)
from ._runner import Runner, read_or_report
from ._segment_job import (
    SegmentOutput,
    SegmentRequest,
    describe_progress,
    label_dtype,
    new_output,
    segment_job,
)

__all__ = ["DEVICES", "SegmentRequest", "SegmentWidget", "describe_progress", "segment_job"]

SHORTCUT = "Shift-S"  # Segment; again: Cancel
SESSION_MODEL = "this session's model"
FILE_MODEL = "model file"  # a file, or one of the recent models kept in the user data folder
SCOPE_SLICE = "current slice"
SCOPE_STACK = "whole stack"

#: outputs larger than this share of the available memory are written to a temporary zarr store instead
RAM_FRACTION = 0.25


def _available_ram() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


class SegmentWidget(Container):
    """Dock widget: segment an image layer with the session's U-Net or a model file.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Injected by napari.

    Attributes (for scripts and tests)
    ----------------------------------
    image_layer, model_source, model_file, scope, tile, batch_size, device, tta, probabilities : magicgui widgets
    run_button : PushButton ("Segment", "Cancel" while running)
    runner : Runner
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = napari_viewer
        self.session: ModelSession = session_for(napari_viewer)

        self.image_layer = ComboBox(
            label="image", choices=layer_choices(napari_viewer, Image), tooltip="The image to segment."
        )
        self.model_source = ComboBox(
            label="model",
            choices=[SESSION_MODEL, FILE_MODEL],
            value=SESSION_MODEL,
            tooltip="The model trained with 'Train U-Net' in this session, or a saved model file (.pt).",
        )
        self.model_file = model_file_edit()
        self.recent = recent_model_choice()
        link_recent(self.recent, self.model_file)
        self.model_info = Label(label="")
        self.scope = RadioButtons(
            label="scope",
            choices=[SCOPE_SLICE, SCOPE_STACK],
            value=SCOPE_STACK,
            orientation="horizontal",
            tooltip="Segment only the slice shown in the viewer (quick check) or every slice.",
        )
        self.tile = LineEdit(
            label="tile",
            value="auto",
            tooltip="Largest tile side in pixels fed to the network (e.g. 512), or 'auto': the whole slice when it "
            "fits the device memory. The result does not depend on it.",
            visible=False,
        )
        self.batch_size = LineEdit(
            label="batch",
            value="auto",
            tooltip="Tiles per forward pass, or 'auto' (1 on a CPU, as many as fit on a GPU).",
            visible=False,
        )
        self.advanced = CheckBox(text="advanced", value=False, tooltip="Tile, batch and device.")
        self.device = device_choice(visible=False)
        self.tta = CheckBox(
            text="test-time augmentation (8× slower)",
            value=False,
            tooltip="Average the predictions of the 8 flips/rotations: smoother, fewer small errors.",
        )
        self.probabilities = CheckBox(
            text="also output class probabilities",
            value=False,
            tooltip="Adds an Image layer with one probability map per class (class axis first).",
        )
        self.run_button = PushButton(text="Segment", tooltip="Segment (Shift+S); Shift+S again cancels.")
        self.status = Label(value="")

        # the form scrolls (a laptop screen holds both docks); the Segment button and the status stay under it
        self.form = Container(
            labels=True,
            widgets=[
                self.image_layer,
                self.model_source,
                self.model_file,
                self.recent,
                self.model_info,
                self.scope,
                self.tta,
                self.probabilities,
                self.advanced,
                self.tile,
                self.batch_size,
                self.device,
            ],
        )
        self.form.margins = (0, 0, 0, 0)
        self.extend([self.run_button, self.status])
        self.native.layout().insertWidget(0, scroll_body(self.form))
        keep_narrow(self.form)
        elide(self.status)
        self.runner = Runner(self.run_button, "Segmentation", owner=self, on_click=self.run)
        bind_shortcut(napari_viewer, SHORTCUT, self.run_button)

        self.model_source.changed.connect(self._on_model_source_changed)
        self.advanced.changed.connect(self._on_advanced_changed)
        self.model_file.changed.connect(self._on_model_info_changed)
        self.session.changed.connect(self._on_session_changed)
        watch_layers(napari_viewer, self)
        self._on_model_info_changed()

    def reset_choices(self, *args: Any) -> None:
        """napari calls this on layer-list changes: the layer choices live in the scrolling form."""
        super().reset_choices(*args)
        self.form.reset_choices(*args)

    # -- UI → request ---------------------------------------------------------------------------------------------

    def _on_advanced_changed(self, value: Any = None) -> None:
        for w in (self.tile, self.batch_size, self.device):
            w.visible = bool(self.advanced.value)

    def _on_model_source_changed(self, value: str = "") -> None:
        self.model_file.visible = self.recent.visible = self.model_source.value == FILE_MODEL
        if self.recent.visible:
            self.recent.reset_choices()
        self._on_model_info_changed()

    def _on_session_changed(self, model: SessionModel | None) -> None:
        try:
            if model is not None and model.source == "trained":
                self.model_source.value = SESSION_MODEL
            self.recent.reset_choices()  # a model just kept is in the list at once
            self._on_model_info_changed()
        except RuntimeError:  # widget deleted
            pass

    def _on_model_info_changed(self, value: Any = None) -> None:
        if self.model_source.value == SESSION_MODEL:
            current = self.session.current
            self.model_info.value = (
                current.description or current.path.name
                if current is not None
                else "no model trained yet (earlier ones: 'model file' ▸ recent)"
            )
        else:
            path = self.model_file.value
            self.model_info.value = (
                Path(path).name if path and Path(path).is_file() else "choose a .pt model file"
            )

    def _model_path(self) -> Path:
        if self.model_source.value == SESSION_MODEL:
            current = self.session.current
            if current is None:
                raise ValueError(
                    "There is no model in this session yet. Train one with 'Train U-Net' first, or set 'model' to "
                    "'model file' and choose a saved .pt file."
                )
            return current.path
        path = self.model_file.value
        if not path or not Path(path).is_file():
            raise ValueError(
                f"Choose an existing model file (.pt) first{f' — {path} does not exist' if path else ''}."
            )
        return Path(path)

    def request(self) -> tuple[SegmentRequest, Image]:
        """Read the controls into a :class:`SegmentRequest` (GUI thread).

        Raises
        ------
        ValueError
            With a sentence for the user when something is missing or unusable.
        """
        layer = self.image_layer.value
        if layer is None:
            raise ValueError("Open or choose an image layer to segment first.")
        data = stack_data(layer)
        model_path = self._model_path()
        z = current_index(self._viewer, layer) if self.scope.value == SCOPE_SLICE else None
        image = data if z is None else data[z : z + 1]
        disk = None
        if z is None:
            n_classes = (
                len(self.session.current.label_values) if self.model_source.value == SESSION_MODEL else 2
            )
            out_bytes = int(np.prod(data.shape)) * (1 + (4 * n_classes if self.probabilities.value else 0))
            lazy = not isinstance(data, np.ndarray)
            if out_bytes > RAM_FRACTION * _available_ram() or (
                lazy and data.nbytes > RAM_FRACTION * _available_ram()
            ):
                disk = self.session.new_run_dir("output")
        req = SegmentRequest(
            image=image,
            z=z,
            full_shape=tuple(int(s) for s in data.shape),
            model_path=model_path,
            probabilities=bool(self.probabilities.value),
            tile=_auto_or_int(self.tile.value, "The tile"),
            batch_size=_auto_or_int(self.batch_size.value, "The batch"),
            device=str(self.device.value),
            tta=bool(self.tta.value),
            disk_folder=disk,
        )
        return req, layer

    # -- run ------------------------------------------------------------------------------------------------------

    def run(self) -> bool:
        """Start segmenting with the current settings; False (and a notification) when the inputs are unusable."""
        read = read_or_report(self.request, self.status)
        if read is None:
            return False
        req, layer = read
        where = (
            f"slice {req.z}" if req.z is not None else "whole image" if len(req.full_shape) == 2 else "stack"
        )
        self.status.value = f"segmenting {where} of '{layer.name}'…"
        self.runner.start(
            lambda: segment_job(req),
            on_done=lambda out: self._on_segmented(out, layer, req),
            on_cancelled=self._on_cancelled,
            on_error=self._on_failed,
            describe=lambda record: describe_progress(record, req.z),
        )
        return True

    def _on_cancelled(self, _value: Any) -> None:
        self.status.value = "cancelled — layers unchanged"
        show_info("Segmentation cancelled; no layer was changed.")

    def _on_failed(self, exc: BaseException) -> None:
        self.status.value = "failed"
        self.runner.report_error(exc)

    # -- result → layers ------------------------------------------------------------------------------------------

    def _on_segmented(self, out: SegmentOutput, image: Image, req: SegmentRequest) -> None:
        labels_layer = self._write_labels(out, image, req)
        if out.probabilities is not None:
            self._write_probabilities(out, image, req)
        res = out.result
        where = f"slice {out.z}" if out.z is not None else shape_text(req.full_shape)
        self.status.value = (
            f"{where} in {res.seconds:.1f} s on {res.device} (tile {res.tile}, batch {res.batch_size})"
        )
        labels_layer.refresh()
        if res.notes:
            show_info("Segmentation: " + "; ".join(res.notes))

    def _write_labels(self, out: SegmentOutput, image: Image, req: SegmentRequest) -> Labels:
        name = f"{image.name} U-Net"
        layer = find_owned(self._viewer, "labels", str(image.unique_id))
        owned = owner_metadata("labels", str(image.unique_id))
        if out.z is None:
            if layer is None:
                layer = self._viewer.add_labels(
                    out.labels, name=name, opacity=0.5, metadata=owned, **geometry_of(image)
                )
            else:
                layer.data = out.labels
                place_on(layer, image)
            return layer
        # one slice: write it into a full-size layer, keeping the other slices
        dtype = label_dtype(out.meta["label_values"])
        if (
            layer is None
            or tuple(layer.data.shape) != req.full_shape
            or np.iinfo(layer.data.dtype).max < np.iinfo(dtype).max
        ):
            full = new_output(req.full_shape, dtype, self._disk_for(req.full_shape, dtype.itemsize), "labels")
            if layer is None:
                layer = self._viewer.add_labels(
                    full, name=name, opacity=0.5, metadata=owned, **geometry_of(image)
                )
            else:
                if tuple(layer.data.shape) == req.full_shape:  # only the dtype grows: keep the other slices
                    full[...] = np.asarray(layer.data)
                layer.data = full
                place_on(layer, image)
        layer.data[out.z] = np.asarray(out.labels[0]).astype(layer.data.dtype, copy=False)
        return layer

    def _write_probabilities(self, out: SegmentOutput, image: Image, req: SegmentRequest) -> Image:
        """Probabilities are kept as predict_stack writes them, (Z, K, Y, X), and shown class-axis-first."""
        name = f"{image.name} U-Net probabilities"
        layer = find_owned(self._viewer, "probabilities", str(image.unique_id))
        probs = out.probabilities
        n_classes = int(probs.shape[-3])
        backing_shape = req.full_shape[:-2] + (n_classes,) + req.full_shape[-2:]
        kwargs = {
            "name": name,
            "colormap": "magma",
            "contrast_limits": (0.0, 1.0),
            "blending": "additive",
            "opacity": 0.7,
            "metadata": owner_metadata(
                "probabilities", str(image.unique_id), class_names=list(out.meta.get("class_names", []))
            ),
        }
        if out.z is None:
            backing = probs
        else:
            backing = _backing(layer) if layer is not None else None
            if backing is None or tuple(backing.shape) != backing_shape:
                backing = new_output(
                    backing_shape, np.dtype(np.float32), self._disk_for(backing_shape, 4), "probabilities"
                )
            backing[out.z] = np.asarray(probs[0], dtype=np.float32)
        if layer is None:
            kwargs["axis_labels"] = _class_axis_labels(image)  # the class slider is named "class", not "-4"
            layer = self._viewer.add_image(_class_first(backing), **kwargs, **geometry_of(image, 1))
        else:
            layer.data = _class_first(backing)
            place_on(layer, image, 1)
        tag(layer, "probabilities", str(image.unique_id))
        layer.metadata[OWNER_KEY]["backing"] = backing
        return layer

    def _disk_for(self, shape: tuple[int, ...], itemsize: int) -> Path | None:
        if int(np.prod(shape)) * itemsize > RAM_FRACTION * _available_ram():
            return self.session.new_run_dir("output")
        return None


def _auto_or_int(text: str, what: str) -> int | str:
    """'auto' (also for an empty field) or the positive whole number typed into a field."""
    value = parse_auto_int(str(text).strip() or "auto", what)
    return "auto" if value is None else value


def _class_axis_labels(image: Image) -> tuple[str, ...]:
    """Axis labels of the probabilities layer: "class", then the image's own ("z", "y", "x" where napari has only
    its numbered defaults)."""
    own = tuple(str(a) for a in getattr(image, "axis_labels", ()))
    named = ("z", "y", "x")[-image.ndim :] if image.ndim <= 3 else own
    if len(own) != image.ndim or all(a.lstrip("-").isdigit() for a in own):
        own = named
    return ("class", *own)


def _backing(layer: Any) -> Any:
    info = layer.metadata.get(OWNER_KEY)
    return info.get("backing") if isinstance(info, dict) else None


def _class_first(probabilities: Any) -> Any:
    """(Z, K, Y, X) → (K, Z, Y, X) for display, without copying.

    numpy: a view. A zarr store: a lazy dask view with a fresh name each time, so that napari's dask cache never
    serves a slice from before the latest write. (K, Y, X) (one 2D image) is already class-first.
    """
    if probabilities.ndim == 3:
        return probabilities
    if isinstance(probabilities, np.ndarray):
        return np.moveaxis(probabilities, 1, 0)
    import dask.array as da

    chunks = (1, 1) + tuple(int(s) for s in probabilities.shape[-2:])
    return da.moveaxis(da.from_array(probabilities, chunks=chunks, name=False), 1, 0)
