"""The "Segment with U-Net" dock widget: apply this session's model (or a model file) to an image layer.

The widget reads its controls into one :class:`SegmentRequest`, runs :func:`napari_unet.predict.predict_stack` in a
worker through :class:`~napari_unet._widgets._runner.Runner` (torch is imported there, not here) and writes the
result into layers it owns: ``"<image> U-Net"`` (Labels) and, when asked, ``"<image> U-Net probabilities"``
(Image, class axis first so that it lines up with the stack). Running again updates those layers in place; with
the "current slice" scope only that slice is written. The user's own layers are only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    RadioButtons,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info

from napari_unet.session import ModelSession, SessionModel, session_for

from ._layers import (
    OWNER_KEY,
    current_index,
    find_owned,
    geometry_of,
    keep_narrow,
    layer_choices,
    shape_text,
    stack_data,
    tag,
    watch_layers,
)
from ._runner import Runner, Step

__all__ = ["SegmentRequest", "SegmentWidget"]

SESSION_MODEL = "this session's model"
FILE_MODEL = "model file"
SCOPE_SLICE = "current slice"
SCOPE_STACK = "whole stack"
DEVICES = ("auto", "cpu", "cuda", "mps")

#: outputs larger than this share of the available memory are written to a temporary zarr store instead
RAM_FRACTION = 0.25


def _available_ram() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _label_dtype(label_values: list[int]) -> np.dtype:
    return np.dtype(np.uint8) if max(label_values, default=0) <= 255 else np.dtype(np.uint16)


def _new_output(shape: tuple[int, ...], dtype: np.dtype, folder: Path | None, name: str) -> Any:
    """A zero-filled output array: numpy, or a zarr array in ``folder`` (one chunk per 2D plane) when given."""
    if folder is None:
        return np.zeros(shape, dtype=dtype)
    import zarr

    chunks = (1,) * (len(shape) - 2) + tuple(min(int(s), 2048) for s in shape[-2:])
    return zarr.create_array(
        store=str(folder / f"{name}.zarr"),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        overwrite=True,
    )


@dataclass(frozen=True)
class SegmentRequest:
    """Everything one segmentation run needs, read from the widget in the GUI thread.

    ``image`` is what the model sees: the whole (Z, Y, X) / (Y, X) array, or a one-slice (1, Y, X) view for the
    current-slice scope (``z`` is then that slice's index in the stack).
    """

    image: Any
    z: int | None
    full_shape: tuple[int, ...]
    model_path: Path
    probabilities: bool
    tile: int | str
    batch_size: int | str
    device: str
    tta: bool
    disk_folder: Path | None  # where whole-stack outputs go when they do not fit in memory


@dataclass(frozen=True)
class SegmentOutput:
    """What a run hands back to the GUI thread."""

    labels: Any  # (Z, Y, X) / (Y, X), or (1, Y, X) for one slice
    probabilities: Any | None  # as predict_stack returns it: (Z, K, Y, X) / (K, Y, X)
    z: int | None
    meta: dict
    result: Any  # napari_unet.predict.PredictResult


def segment_job(req: SegmentRequest):
    """Generator run in the worker thread: load the model, predict, return a :class:`SegmentOutput`."""
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack

    model, meta = load_checkpoint(req.model_path)
    in_channels = int(meta.get("model_kwargs", {}).get("in_channels", 1))
    if in_channels != 1:
        raise ValueError(
            f"This model was trained on images with {in_channels} channels per pixel, but the chosen image has one. "
            "Choose a model trained on single-channel (grayscale) images."
        )
    labels_out = probs_out = None
    if req.z is None and req.disk_folder is not None:
        labels_out = _new_output(
            req.full_shape, _label_dtype(meta["label_values"]), req.disk_folder, "labels"
        )
        if req.probabilities:
            n_classes = len(meta["label_values"])
            shape = req.full_shape[:-2] + (n_classes,) + req.full_shape[-2:]
            probs_out = _new_output(shape, np.dtype(np.float32), req.disk_folder, "probabilities")
    result = yield from predict_stack(
        req.image,
        model,
        meta,
        labels_out=labels_out,
        probabilities_out=probs_out,
        want_probabilities=req.probabilities,
        tile=req.tile,
        batch_size=req.batch_size,
        device=req.device,
        tta=req.tta,
    )
    return SegmentOutput(
        labels=result.labels, probabilities=result.probabilities, z=req.z, meta=meta, result=result
    )


def describe_progress(record: Any, z: int | None = None) -> Step | None:
    """Activity-dock progress for a ``PredictProgress`` record: tiles over the whole run.

    ``z`` names the slice when the run sees a one-slice view of a stack (the record's own ``z`` is then 0).
    """
    n_slices = getattr(record, "n_slices", None)
    tiles_total = getattr(record, "tiles_total", None)
    if n_slices is None or tiles_total is None:
        return None
    i, done = int(record.slice_index), int(record.tiles_done)
    if z is not None:
        text = f"slice {z}: tile {done}/{tiles_total}"
    elif i == 0 and done == 0:
        text = "starting"
    else:
        text = record.message
    return Step(done=i * tiles_total + done, total=n_slices * tiles_total, text=text)


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
        super().__init__(labels=True)
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
        self.model_file = FileEdit(label="model file", mode="r", filter="*.pt *.pth", visible=False)
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
        )
        self.batch_size = LineEdit(
            label="batch",
            value="auto",
            tooltip="Tiles per forward pass, or 'auto' (1 on a CPU, as many as fit on a GPU).",
        )
        self.device = ComboBox(
            label="device",
            choices=list(DEVICES),
            value="auto",
            tooltip="'auto' uses a CUDA GPU, then Apple MPS, then the CPU.",
        )
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
        self.run_button = PushButton(text="Segment")
        self.status = Label(label="")

        self.extend(
            [
                self.image_layer,
                self.model_source,
                self.model_file,
                self.model_info,
                self.scope,
                self.tile,
                self.batch_size,
                self.device,
                self.tta,
                self.probabilities,
                self.run_button,
                self.status,
            ]
        )
        keep_narrow(self)
        self.runner = Runner(self.run_button, "Segmentation", owner=self)

        self.model_source.changed.connect(self._on_model_source_changed)
        self.model_file.changed.connect(self._on_model_info_changed)
        self.run_button.changed.connect(self._on_run_clicked)
        self.session.changed.connect(self._on_session_changed)
        watch_layers(napari_viewer, self)
        self._on_model_info_changed()

    # -- UI → request ---------------------------------------------------------------------------------------------

    def _on_model_source_changed(self, value: str = "") -> None:
        self.model_file.visible = self.model_source.value == FILE_MODEL
        self._on_model_info_changed()

    def _on_session_changed(self, model: SessionModel | None) -> None:
        try:
            if model is not None and model.source == "trained":
                self.model_source.value = SESSION_MODEL
            self._on_model_info_changed()
        except RuntimeError:  # widget deleted
            pass

    def _on_model_info_changed(self, value: Any = None) -> None:
        if self.model_source.value == SESSION_MODEL:
            current = self.session.current
            self.model_info.value = (
                current.description or current.path.name if current is not None else "no model trained yet"
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
            tile=_auto_or_positive(self.tile.value, "tile"),
            batch_size=_auto_or_positive(self.batch_size.value, "batch"),
            device=str(self.device.value),
            tta=bool(self.tta.value),
            disk_folder=disk,
        )
        return req, layer

    # -- run ------------------------------------------------------------------------------------------------------

    def _on_run_clicked(self, value: Any = None) -> None:
        if self.runner.busy:
            self.runner.cancel()
            return
        self.run()

    def run(self) -> bool:
        """Start segmenting with the current settings; False (and a notification) when the inputs are unusable."""
        try:
            req, layer = self.request()
        except ValueError as exc:
            show_error(str(exc))
            self.status.value = "not started"
            return False
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
        if out.z is None:
            if layer is None:
                layer = self._viewer.add_labels(out.labels, name=name, opacity=0.5, **geometry_of(image))
                tag(layer, "labels", str(image.unique_id))
            else:
                layer.data = out.labels
                self._set_geometry(layer, image)
            return layer
        # one slice: write it into a full-size layer, keeping the other slices
        dtype = _label_dtype(out.meta["label_values"])
        if (
            layer is None
            or tuple(layer.data.shape) != req.full_shape
            or np.iinfo(layer.data.dtype).max < np.iinfo(dtype).max
        ):
            full = _new_output(
                req.full_shape, dtype, self._disk_for(req.full_shape, dtype.itemsize), "labels"
            )
            if layer is None:
                layer = self._viewer.add_labels(full, name=name, opacity=0.5, **geometry_of(image))
                tag(layer, "labels", str(image.unique_id))
            else:
                if tuple(layer.data.shape) == req.full_shape:  # only the dtype grows: keep the other slices
                    full[...] = np.asarray(layer.data)
                layer.data = full
                self._set_geometry(layer, image)
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
            "metadata": {"class_names": list(out.meta.get("class_names", []))},
        }
        if out.z is None:
            backing = probs
        else:
            backing = _backing(layer) if layer is not None else None
            if backing is None or tuple(backing.shape) != backing_shape:
                backing = _new_output(
                    backing_shape, np.dtype(np.float32), self._disk_for(backing_shape, 4), "probabilities"
                )
            backing[out.z] = np.asarray(probs[0], dtype=np.float32)
        if layer is None:
            layer = self._viewer.add_image(_class_first(backing), **kwargs, **geometry_of(image, 1))
        else:
            layer.data = _class_first(backing)
            self._set_geometry(layer, image, 1)
        tag(layer, "probabilities", str(image.unique_id))
        layer.metadata[OWNER_KEY]["backing"] = backing
        return layer

    def _set_geometry(self, layer: Any, image: Image, extra_leading: int = 0) -> None:
        geo = geometry_of(image, extra_leading)
        layer.scale = geo["scale"]
        layer.translate = geo["translate"]

    def _disk_for(self, shape: tuple[int, ...], itemsize: int) -> Path | None:
        if int(np.prod(shape)) * itemsize > RAM_FRACTION * _available_ram():
            return self.session.new_run_dir("output")
        return None


def _auto_or_positive(text: str, what: str) -> int | str:
    """'auto' or a positive whole number typed into a field (the widget's only parsing)."""
    text = str(text).strip().lower()
    if text in ("", "auto"):
        return "auto"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"The {what} must be 'auto' or a whole number above 0, not '{text}'.")


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
