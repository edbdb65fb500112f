"""Small chores shared by the widgets: layer choices, the current slice, the layers the widgets own, dock width,
the controls both widgets have (device, model file).

Nothing numeric happens here: layers are unpacked into (data, scale, translate) and written back. A layer the
widgets create is tagged in ``layer.metadata["napari_unet"]`` with its role and source image, so that a second run
finds and updates *that* layer (same object) and never touches a layer the user made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit
from napari.layers import Image, Labels, Layer

__all__ = [
    "DEVICES",
    "NO_RECENT",
    "OWNER_KEY",
    "align_labels",
    "current_index",
    "device_choice",
    "find_owned",
    "geometry_of",
    "is_ground_truth",
    "keep_narrow",
    "layer_choices",
    "link_recent",
    "model_file_edit",
    "owned_role",
    "owner_metadata",
    "painted_slices",
    "recent_model_choice",
    "place_on",
    "shape_text",
    "stack_data",
    "tag",
    "watch_layers",
]

OWNER_KEY = "napari_unet"
DEVICES = ("auto", "cpu", "cuda", "mps")


def device_choice(**kwargs: Any) -> ComboBox:
    """The "device" control of both widgets ("auto", "cpu", "cuda", "mps"); ``kwargs`` go to the ComboBox. Its
    tooltip holds napari-unet doctor's facts (torch build, devices, threads, the fix for a CPU-only torch)."""
    from napari_unet.doctor import device_tooltip

    return ComboBox(
        label="device",
        choices=list(DEVICES),
        value="auto",
        tooltip=device_tooltip(),
        **kwargs,
    )


def model_file_edit() -> FileEdit:
    """The (initially hidden) "model file" chooser of both widgets: an existing ``.pt`` checkpoint, or a bioimage.io
    package (``.zip``) exported by napari-unet."""
    return FileEdit(label="model file", mode="r", filter="*.pt *.pth *.zip", visible=False)


NO_RECENT = ""  # the recent-models list's first entry: nothing chosen


def recent_model_choice() -> ComboBox:
    """The "recent" chooser of both widgets: the models kept in the user data folder, newest first (see
    :func:`napari_unet.session.recent_models`); its value is a checkpoint path, or :data:`NO_RECENT`.

    Its choices are read again on every ``reset_choices`` (napari calls it on layer-list changes; the widgets call
    it when a model is kept and when the list is shown)."""

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        from napari_unet.session import recent_models

        entries = recent_models()
        first = "choose a recent model…" if entries else "no kept models yet"
        return [(first, NO_RECENT)] + [(entry.title, str(entry.path)) for entry in entries]

    combo = ComboBox(
        label="recent",
        choices=choices,
        value=NO_RECENT,
        visible=False,
        tooltip="Models trained earlier (also in other napari sessions), kept in the user data folder.",
    )
    return combo


def link_recent(recent: ComboBox, model_file: FileEdit) -> None:
    """Choosing a recent model puts its path into ``model_file`` (the one field the widget reads)."""

    def on_recent(value: Any = None) -> None:
        if recent.value:
            model_file.value = recent.value

    recent.changed.connect(on_recent)


def layer_choices(
    viewer: napari.Viewer, kind: type[Layer], *, inputs_only: bool = True
) -> Callable[[Any], list[tuple[str, Layer]]]:
    """A magicgui ``choices`` callable listing the viewer's layers of type ``kind`` (top of the layer list first).

    With ``inputs_only`` (the default) the layers napari-unet made (preview, labels, probabilities) are left out:
    they are results, never something to train on or segment.
    """

    def choices(_widget: Any = None) -> list[tuple[str, Layer]]:
        return [
            (layer.name, layer)
            for layer in reversed(viewer.layers)
            if isinstance(layer, kind) and not (inputs_only and owned_role(layer) is not None)
        ]

    return choices


_GROUND_TRUTH_NAME = re.compile(r"ground[ _-]?truth|(^|[^a-z])gt([^a-z]|$)", re.IGNORECASE)


def is_ground_truth(layer: Layer) -> bool:
    """Whether a Labels layer holds reference labels rather than the user's strokes.

    True when its metadata says so (``metadata["ground_truth"]``, which the sample data sets) or its name does
    ("ground truth", "GT", "groundtruth"). Such a layer is still offered as annotations (dense training from ground
    truth is legitimate) but never chosen by itself.
    """
    if bool(layer.metadata.get("ground_truth")):
        return True
    return bool(_GROUND_TRUTH_NAME.search(str(layer.name)))


def watch_layers(
    viewer: napari.Viewer, container: Container, on_change: Callable[[], None] | None = None
) -> None:
    """Keep the container's layer combo boxes in step with the layer list (also when the widget is not docked).

    napari only resets the choices of docked widgets, and not when a layer is renamed.
    """

    def refresh(event: Any = None) -> None:
        try:
            container.reset_choices()
        except RuntimeError:  # the Qt side is gone (viewer closing)
            return
        if on_change is not None:
            on_change()

    def on_inserted(event: Any) -> None:
        event.value.events.name.connect(refresh)
        refresh()

    viewer.layers.events.inserted.connect(on_inserted)
    viewer.layers.events.removed.connect(refresh)
    viewer.layers.events.moved.connect(refresh)
    for layer in viewer.layers:
        layer.events.name.connect(refresh)


def keep_narrow(container: Container) -> None:
    """Let the dock stay narrow: long layer names and status texts wrap or elide instead of widening it."""
    from magicgui.widgets import Label
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QComboBox, QSizePolicy

    for widget in container:
        if isinstance(widget, Container):
            keep_narrow(widget)
        elif isinstance(widget, ComboBox):
            widget.native.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            widget.native.setMinimumContentsLength(14)
        elif isinstance(widget, Label):
            widget.native.setWordWrap(True)
            widget.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            widget.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)


def align_labels(groups: Iterable[Container]) -> None:
    """One label column across ``groups``, the labelled sub-containers a dock widget is built from.

    magicgui lines the labels up within each container (at the width of its widest label); a dock built from
    groups looks like one form again when every group's labels get the width of the widest label of them all.
    """
    from magicgui.application import use_app
    from magicgui.widgets.bases import ButtonWidget

    rows = [w for group in groups for w in group if not isinstance(w, ButtonWidget)]
    if not rows:
        return
    measure = use_app().get_obj("get_text_width")
    widest = max(measure(w.label) for w in rows)
    for widget in rows:
        row = widget._labeled_widget()  # magicgui's (label, widget) row: its width has no public handle
        if row is not None:
            row.label_width = widest


def tag(layer: Layer, role: str, source: str | None = None) -> Layer:
    """Mark ``layer`` as made by napari-unet (``role`` e.g. "labels", "probabilities", "preview")."""
    layer.metadata[OWNER_KEY] = {"role": role, "source": source}
    return layer


def owner_metadata(role: str, source: str | None = None, **extra: Any) -> dict[str, Any]:
    """The ``metadata`` keyword for ``viewer.add_*`` that tags the new layer (see :func:`tag`) *before* it is
    inserted: whoever listens to the layer list (the Train widget offering new Labels layers as annotations) sees
    at once that it is napari-unet's output."""
    return {**extra, OWNER_KEY: {"role": role, "source": source}}


def owned_role(layer: Layer) -> str | None:
    info = layer.metadata.get(OWNER_KEY)
    return info.get("role") if isinstance(info, dict) else None


def find_owned(viewer: napari.Viewer, role: str, source: str | None = None) -> Layer | None:
    """The layer napari-unet made for ``role`` (and source image name), if it is still in the viewer."""
    for layer in viewer.layers:
        info = layer.metadata.get(OWNER_KEY)
        if (
            isinstance(info, dict)
            and info.get("role") == role
            and (source is None or info.get("source") == source)
        ):
            return layer
    return None


def stack_data(layer: Image | Labels, what: str = "image") -> Any:
    """The array of a 2D image or a 3D stack layer, highest resolution level for multiscale layers.

    Raises
    ------
    ValueError
        For RGB images and for layers with more than three dimensions (time series, channels), in words.
    """
    if getattr(layer, "rgb", False):
        raise ValueError(
            f"'{layer.name}' is an RGB image. napari-unet works on grayscale images: convert it first "
            "(right-click the layer in the layer list ▸ Split RGB, then use one channel)."
        )
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if data.ndim not in (2, 3):
        raise ValueError(
            f"The {what} '{layer.name}' has {data.ndim} dimensions {tuple(data.shape)}. napari-unet works on 2D images "
            "and 3D stacks (Z, Y, X): split channels or time points into separate layers first."
        )
    return data


def current_index(viewer: napari.Viewer, layer: Layer) -> int | None:
    """Index along the first (Z) axis of ``layer`` for the slice the viewer shows; None for a 2D layer."""
    if layer.ndim < 3:
        return None
    data_point = layer.world_to_data(viewer.dims.point)
    shape = layer.level_shapes[0] if getattr(layer, "multiscale", False) else layer.data.shape
    z = int(round(float(data_point[-3])))
    return min(max(z, 0), int(shape[-3]) - 1)


def geometry_of(layer: Layer, extra_leading: int = 0) -> dict[str, tuple]:
    """``scale``/``translate``/``units`` keyword arguments that place a new layer on ``layer``'s pixels.

    ``extra_leading`` axes (e.g. a class axis in front of Z) get scale 1, offset 0 and unit "pixel".
    """
    geo: dict[str, tuple] = {
        "scale": (1.0,) * extra_leading + tuple(float(s) for s in layer.scale),
        "translate": (0.0,) * extra_leading + tuple(float(t) for t in layer.translate),
    }
    units = getattr(layer, "units", None)
    if units is not None:
        geo["units"] = ("pixel",) * extra_leading + tuple(str(u) for u in units)
    return geo


def place_on(layer: Layer, image: Layer, extra_leading: int = 0) -> None:
    """Move an existing ``layer`` onto ``image``'s pixels (``scale``/``translate``, see :func:`geometry_of`)."""
    geo = geometry_of(image, extra_leading)
    layer.scale = geo["scale"]
    layer.translate = geo["translate"]


def painted_slices(atoms: Iterable[Any], ndim: int) -> set[int] | None:
    """The Z indices that one napari ``Labels.events.paint`` event touched; None when they cannot be told.

    Parameters
    ----------
    atoms : the event's ``value``
        napari's undo-history atoms of one stroke: ``(indices, old values, new values)`` tuples (fancy indices, one
        array per axis) or mask-based atoms with a ``slice_key`` bounding box.
    ndim : int
        The layer's number of dimensions; a 2D layer has one slice, 0.
    """
    if ndim < 3:
        return {0}
    slices: set[int] = set()
    for atom in atoms:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if not isinstance(first, slice) or first.start is None or first.stop is None:
                return None
            slices.update(range(int(first.start), int(first.stop)))
            continue
        try:
            z_indices = atom[0][0]
            slices.update(int(z) for z in set(np.asarray(z_indices).ravel().tolist()))
        except (TypeError, IndexError, ValueError):
            return None
    return slices


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(s)) for s in shape)
