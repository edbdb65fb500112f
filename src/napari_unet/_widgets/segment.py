"""The "Segment with U-Net" dock widget: apply this session's model (or a model file) to an image layer.

The widget reads its controls into one :class:`~._segment_job.SegmentRequest`, runs
:func:`~._segment_job.segment_job` (the engine's ``predict_stack``, in the Qt-free :mod:`._segment_job`) in a worker
through :class:`~napari_unet._widgets._runner.Runner` (torch is imported there, not here) and writes the result
into layers it owns: ``"<image> U-Net"`` (Labels) and, when asked, ``"<image> U-Net probabilities"``
(Image, class axis first so that it lines up with the stack), ``"<image> U-Net objects"`` (uint32 Labels of one
class cut into objects, with a features table of one row per object in the image's physical units; "export CSV…"
writes it) and ``"<image> U-Net uncertainty"`` (Image, the normalised entropy of the class probabilities, 0..1).
The objects and the uncertainty are computed in the job, from the same prediction. Running again updates those
layers in place; with the "current slice" scope only that slice is written (the objects layer then holds that
section's objects). The user's own layers are only read.
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

from napari_unet.config import parse_auto_int
from napari_unet.session import ModelSession, SessionModel, session_for

from ._disk_run import DiskOutputs
from ._dock import bind_shortcut, elide, scroll_body
from ._filling import Filling
from ._filling import digest as _digest
from ._filling import image_key as _image_key
from ._layers import (
    DEVICES,
    NO_RECENT,
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
    watch_layers,
)
from ._notify import notify
from ._objects import features_of, known_voxel_size, unit_of, write_features_csv
from ._objects_controls import SIZE_PHYSICAL, SIZE_PIXELS, ObjectsControls, ask_csv_path
from ._runner import Runner, read_or_report
from ._segment_job import (
    SegmentOutput,
    SegmentRequest,
    describe_progress,
    label_dtype,
    new_output,
    segment_job,
)
from ._segment_layers import write_probabilities, write_uncertainty

__all__ = [
    "DEVICES",
    "SIZE_PHYSICAL",
    "SIZE_PIXELS",
    "SegmentRequest",
    "SegmentWidget",
    "describe_progress",
    "segment_job",
]

SHORTCUT = "Shift-S"  # Segment; again: Cancel
SESSION_MODEL = "this session's model"
FILE_MODEL = "model file"  # a file, or one of the recent models kept in the user data folder
SCOPE_SLICE = "current slice"
SCOPE_STACK = "whole stack"

NO_OBJECTS = "There are no objects to export yet: tick 'objects' and press Segment first."

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
    uncertainty : CheckBox
        Adds the "<image> U-Net uncertainty" layer.
    objects, objects_class, objects_mode, objects_preset, min_size, min_size_unit : magicgui widgets
        The "objects" group (shown when ``objects`` is ticked): which class to cut into objects, 2D + link / 3D /
        auto, the watershed preset, the smallest object (pixels or physical units).
    export_button : PushButton ("export CSV…", see :meth:`export_objects`)
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
        self.uncertainty = CheckBox(
            text="also output uncertainty",
            value=False,
            tooltip="Adds an Image layer (0..1) where the model is unsure: the entropy of its class probabilities "
            "(0: one class has it all, 1: every class equally likely). Paint there next.",
        )
        self._metas: dict[str, dict] = {}  # classes of model files met in a run (read in the worker)
        self._filling: Filling | None = None  # the stack being segmented into a layer on disk, while it runs
        self._last_objects: Labels | None = None
        self.objects_group = group = ObjectsControls(self._model_classes)
        self.objects, self.objects_class, self.objects_mode = group.enabled, group.objects_class, group.mode
        self.objects_preset, self.min_size, self.min_size_unit = (
            group.preset,
            group.min_size,
            group.min_size_unit,
        )
        self.objects_size, self.export_button = group.size_row, group.export_button
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
                self.uncertainty,
                *group.widgets,
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
        self.export_button.changed.connect(self._on_export_clicked)
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

    def _model_classes(self) -> tuple[list[int], list[str]]:
        """The chosen model's label values and class names (empty while a model file has not been read)."""
        if self.model_source.value == SESSION_MODEL:
            current = self.session.current
            return (current.label_values, current.class_names) if current is not None else ([], [])
        path = str(self.model_file.value or "")
        meta = self._metas.get(path)
        if meta is not None:
            return [int(v) for v in meta.get("label_values", [])], [
                str(n) for n in meta.get("class_names") or []
            ]
        if path and self.recent.value not in (None, NO_RECENT) and str(self.recent.value) == path:
            from napari_unet.session import recent_models

            for entry in recent_models():
                if str(entry.path) == path:
                    return list(entry.label_values), list(entry.class_names)
        return [], []

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
        self.objects_group.refresh()
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
        voxel_size = known_voxel_size(layer.scale, getattr(layer, "units", None))
        objects = self.objects_group.request(voxel_size, data.ndim, z) if self.objects.value else None
        image_key = _image_key(layer, data)
        disk = None
        if z is None:
            n_classes = (
                len(self.session.current.label_values) if self.model_source.value == SESSION_MODEL else 2
            )
            probs = self.probabilities.value or self.uncertainty.value or objects is not None
            per_pixel = (
                1
                + (4 * n_classes if probs else 0)
                + (4 if objects else 0)
                + (4 if self.uncertainty.value else 0)
            )
            out_bytes = int(np.prod(data.shape)) * per_pixel
            lazy = not isinstance(data, np.ndarray)
            if out_bytes > RAM_FRACTION * _available_ram() or (
                lazy and data.nbytes > RAM_FRACTION * _available_ram()
            ):  # the same folder for the same image, so that a cancelled run resumes
                disk = self.session.output_dir(_digest(image_key))
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
            objects=objects,
            voxel_size=voxel_size,
            uncertainty=bool(self.uncertainty.value),
            image_key=image_key,
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
        self._filling = None
        self.runner.start(
            lambda: segment_job(req),
            on_yield=lambda record: self._on_record(record, layer),
            on_done=lambda out: self._on_segmented(out, layer, req),
            on_cancelled=self._on_cancelled,
            on_error=self._on_failed,
            describe=lambda record: describe_progress(record, req.z),
        )
        return True

    def _on_record(self, record: Any, image: Image) -> None:
        """A stack segmented on disk: show its labels layer at once, and refresh it as slices are written."""
        if isinstance(record, DiskOutputs):
            self._filling = Filling(record, self._stack_labels(record.labels, image))
            done = f", {record.done_before} of {record.total} slices already done" if record.done_before else ""
            self.status.value = f"segmenting the stack into '{self._filling.layer.name}' on disk{done}…"
        elif self._filling is not None:
            self._filling.refresh()

    def _on_cancelled(self, _value: Any) -> None:
        filling, self._filling = self._filling, None
        if filling is None:
            self.status.value = "cancelled — layers unchanged"
            notify("Segmentation cancelled; no layer was changed.")
            return
        self.status.value = filling.stopped("cancelled")
        notify("Segmentation cancelled. " + self.status.value)

    def _on_failed(self, exc: BaseException) -> None:
        filling, self._filling = self._filling, None
        self.status.value = "failed" if filling is None else filling.stopped("failed")
        self.runner.report_error(exc)

    # -- result → layers ------------------------------------------------------------------------------------------

    def _on_segmented(self, out: SegmentOutput, image: Image, req: SegmentRequest) -> None:
        self._filling = None
        if req.model_path is not None:  # its classes are known now: offer them in the objects group
            self._metas[str(req.model_path)] = {k: out.meta.get(k) for k in ("label_values", "class_names")}
            self.objects_group.refresh()
        labels_layer = self._write_labels(out, image, req)
        if out.probabilities is not None:
            write_probabilities(self._viewer, out, image, req, self._disk_for)
        if out.objects is not None:
            self._write_objects(out, image, req)
        if out.uncertainty is not None:
            write_uncertainty(self._viewer, out, image, req, self._disk_for)
        res = out.result
        where = f"slice {out.z}" if out.z is not None else shape_text(req.full_shape)
        found = (
            f"; {out.objects.result.n_objects} objects ({out.objects.result.mode.upper()}, {out.objects.preset})"
            if out.objects is not None
            else ""
        )
        self.status.value = (
            f"{where} in {res.seconds:.1f} s on {res.device} (tile {res.tile}, batch {res.batch_size}){found}"
        )
        labels_layer.refresh()
        if res.notes:
            notify("Segmentation: " + "; ".join(res.notes))

    def _write_labels(self, out: SegmentOutput, image: Image, req: SegmentRequest) -> Labels:
        name = f"{image.name} U-Net"
        layer = find_owned(self._viewer, "labels", str(image.unique_id))
        owned = owner_metadata("labels", str(image.unique_id))
        if out.z is None:
            return self._stack_labels(out.labels, image)
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

    def _stack_labels(self, data: Any, image: Image) -> Labels:
        """The image's labels layer showing ``data`` (the whole stack): added, or the existing one updated."""
        layer = find_owned(self._viewer, "labels", str(image.unique_id))
        if layer is None:
            owned = owner_metadata("labels", str(image.unique_id))
            return self._viewer.add_labels(
                data, name=f"{image.name} U-Net", opacity=0.5, metadata=owned, **geometry_of(image)
            )
        if layer.data is not data:
            layer.data = data
        place_on(layer, image)
        return layer

    def _write_objects(self, out: SegmentOutput, image: Image, req: SegmentRequest) -> Labels:
        """The objects layer: uint32 ids on the image's pixels, its features table one row per object.

        With the current-slice scope it holds that section's objects only (the other slices are cleared): the layer
        and its table always describe the same objects."""
        name = f"{image.name} U-Net objects"
        source = str(image.unique_id)
        layer = find_owned(self._viewer, "objects", source)
        labels = out.objects.result.labels
        if out.z is not None:
            full = new_output(
                req.full_shape, np.dtype(np.uint32), self._disk_for(req.full_shape, 4), "objects"
            )
            full[out.z] = np.asarray(labels[0])
            labels = full
        unit = unit_of(getattr(image, "units", None))
        features = features_of(out.objects.table, unit, tuple(image.translate))
        info = {
            "unit": unit,
            "mode": out.objects.result.mode,
            "preset": out.objects.preset,
            "slice": out.z,
        }
        if layer is None:
            layer = self._viewer.add_labels(
                labels,
                name=name,
                opacity=0.6,
                features=features,
                metadata=owner_metadata("objects", source),
                **geometry_of(image),
            )
        else:
            layer.data = labels
            layer.features = features
            place_on(layer, image)
        layer.metadata[OWNER_KEY].update(info)
        self._last_objects = layer
        return layer

    # -- objects → CSV --------------------------------------------------------------------------------------------

    def objects_layer(self) -> Labels | None:
        """The objects layer of the chosen image, else the one made last (if it is still in the viewer)."""
        image = self.image_layer.value
        layer = find_owned(self._viewer, "objects", str(image.unique_id)) if image is not None else None
        if layer is None and self._last_objects is not None and self._last_objects in self._viewer.layers:
            layer = self._last_objects
        return layer

    def _on_export_clicked(self, value: Any = None) -> None:
        layer = self.objects_layer()
        if layer is None:
            notify(NO_OBJECTS, "error")
            return
        chosen = ask_csv_path(self.native, Path.home() / f"{layer.name}.csv")
        if chosen is not None:
            self.export_objects(chosen[0], overwrite=chosen[1])

    def export_objects(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Write the objects layer's features as CSV (one row per object, units in the header); None on failure.

        An existing file is replaced only with ``overwrite`` (the file dialog asks first); otherwise the user is
        told and nothing is written.
        """
        layer = self.objects_layer()
        if layer is None:
            notify(NO_OBJECTS, "error")
            return None
        info = layer.metadata.get(OWNER_KEY) or {}
        try:
            dest = write_features_csv(path, layer.features, info.get("unit"), overwrite=overwrite)
        except (FileExistsError, ValueError, OSError) as exc:
            notify(f"The objects were not exported: {exc}", "error")
            return None
        n = len(layer.features)
        self.status.value = f"{n} objects exported to {dest.name}"
        notify(f"{n} objects of '{layer.name}' written to {dest}")
        return dest

    def _disk_for(self, shape: tuple[int, ...], itemsize: int) -> Path | None:
        if int(np.prod(shape)) * itemsize > RAM_FRACTION * _available_ram():
            return self.session.new_run_dir("output")
        return None


def _auto_or_int(text: str, what: str) -> int | str:
    """'auto' (also for an empty field) or the positive whole number typed into a field."""
    value = parse_auto_int(str(text).strip() or "auto", what)
    return "auto" if value is None else value
