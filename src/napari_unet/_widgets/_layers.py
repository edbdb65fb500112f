"""Small chores shared by the widgets: layer choices, the current slice, the layers the widgets own, dock width.

Nothing numeric happens here: layers are unpacked into (data, scale, translate) and written back. A layer the
widgets create is tagged in ``layer.metadata["napari_unet"]`` with its role and source image, so that a second run
finds and updates *that* layer (same object) and never touches a layer the user made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import napari
from magicgui.widgets import ComboBox, Container
from napari.layers import Image, Labels, Layer

__all__ = [
    "OWNER_KEY",
    "current_index",
    "find_owned",
    "keep_narrow",
    "geometry_of",
    "layer_choices",
    "owned_role",
    "stack_data",
    "tag",
    "watch_layers",
]

OWNER_KEY = "napari_unet"


def layer_choices(viewer: napari.Viewer, kind: type[Layer]) -> Callable[[Any], list[tuple[str, Layer]]]:
    """A magicgui ``choices`` callable listing the viewer's layers of type ``kind`` (top of the layer list first)."""

    def choices(_widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in reversed(viewer.layers) if isinstance(layer, kind)]

    return choices


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
    from qtpy.QtWidgets import QComboBox

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


def tag(layer: Layer, role: str, source: str | None = None) -> Layer:
    """Mark ``layer`` as made by napari-unet (``role`` e.g. "labels", "probabilities", "preview")."""
    layer.metadata[OWNER_KEY] = {"role": role, "source": source}
    return layer


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
            "(Layers ▸ Convert ▸ Split RGB, then use one channel)."
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


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(s)) for s in shape)
