"""The Segment widget's "objects" group: which class to cut into objects, how, and how small an object may be.

A check box folds the group: ticked, it shows the class (one of the model's label values, last first), the mode
(auto / 2D + link / 3D), the watershed preset, the smallest object (pixels or the image's physical units) and
"export CSV…". :meth:`ObjectsControls.request` reads them into a :class:`~napari_unet.instances.ObjectsRequest`;
the numbers happen in :mod:`napari_unet.instances` and :mod:`._objects`, the widget only translates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit, PushButton

from napari_unet.instances import ObjectsRequest, resolve_mode

from ._objects import min_size_pixels

__all__ = [
    "LAST_CLASS",
    "OBJECT_MODES",
    "OBJECT_PRESETS",
    "SIZE_PHYSICAL",
    "SIZE_PIXELS",
    "ObjectsControls",
    "ask_csv_path",
]

OBJECT_MODES = [("auto", "auto"), ("2D + link", "2d"), ("3D", "3d")]
OBJECT_PRESETS = ["auto", "cells", "blobs"]
SIZE_PIXELS = "pixels"
SIZE_PHYSICAL = "physical units"
LAST_CLASS = "the model's last class"


class ObjectsControls:
    """The widgets of the "objects" group (attributes, so that scripts and tests set them).

    Parameters
    ----------
    classes : callable () -> (label values, class names)
        The chosen model's classes; empty lists while they are not known (a model file not read yet).

    Attributes
    ----------
    enabled : CheckBox ("objects"), folds the others
    objects_class, mode, preset : ComboBox
    min_size : LineEdit ("auto" or a number); min_size_unit : ComboBox (pixels / physical units)
    size_row : Container holding those two
    export_button : PushButton ("export CSV…")
    """

    def __init__(self, classes: Callable[[], tuple[list[int], list[str]]]) -> None:
        self._classes = classes
        self.enabled = CheckBox(
            text="objects (cut one class into instances)",
            value=False,
            tooltip="After segmenting, cut one class into separate objects (a seeded watershed on its probability) "
            "and add a Labels layer '<image> U-Net objects' with one row per object in its features table "
            "(size, centroid in the image's units, mean probability, slices spanned).",
        )
        self.objects_class = ComboBox(
            label="class",
            choices=self._choices,
            tooltip="The class to cut into objects: cells between membranes, mitochondria, nuclei…",
            visible=False,
        )
        self.mode = ComboBox(
            label="objects in",
            choices=OBJECT_MODES,
            value="auto",
            tooltip="2D + link: objects per section, linked across sections by overlap (serial sections, Z step ≫ "
            "pixel). 3D: one watershed in the volume with the voxel size (FIB-SEM). auto: 3D when the Z step is at "
            "most twice the pixel size, 2D + link otherwise and when the image has no voxel size.",
            visible=False,
        )
        self.preset = ComboBox(
            label="preset",
            choices=OBJECT_PRESETS,
            value="auto",
            tooltip="cells: large touching objects between thin membranes (ISBI). blobs: compact objects such as "
            "mitochondria (smallest 1000 voxels). auto: cells when the class covers over 30 % of the image.",
            visible=False,
        )
        self.min_size = LineEdit(
            value="auto",
            tooltip="Smaller objects are dropped: 'auto' (the preset's: cells 30, blobs 1000 pixels) or a number, "
            "in pixels (voxels in 3D) or in the image's units (area per section in 2D + link, volume in 3D).",
        )
        self.min_size_unit = ComboBox(choices=[SIZE_PIXELS, SIZE_PHYSICAL], value=SIZE_PIXELS)
        self.size_row = Container(
            label="min size", layout="horizontal", labels=False, widgets=[self.min_size, self.min_size_unit]
        )
        self.size_row.margins = (0, 0, 0, 0)
        self.size_row.visible = False
        self.export_button = PushButton(
            text="export CSV…",
            tooltip="Write the objects layer's features table as CSV: one row per object, units in the header.",
            visible=False,
        )
        self.enabled.changed.connect(self._on_enabled_changed)

    @property
    def widgets(self) -> list[Any]:
        """The group's rows, in the order the form shows them."""
        return [self.enabled, self.objects_class, self.mode, self.preset, self.size_row, self.export_button]

    def _on_enabled_changed(self, value: Any = None) -> None:
        for w in self.widgets[1:]:
            w.visible = bool(self.enabled.value)

    def _choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """The model's classes, last first (the object class is usually the last: ISBI's cells 255, mitochondria
        2); "the model's last class" (value None) while they are not known."""
        values, names = self._classes()
        if not values:
            return [(LAST_CLASS, None)]
        names = list(names) + [""] * len(values)
        return [
            (f"{v} ({n})" if n else str(v), v) for v, n in reversed(list(zip(values, names, strict=False)))
        ]

    def refresh(self) -> None:
        """Read the model's classes again (the model, or what is known about it, changed)."""
        self.objects_class.reset_choices()

    def request(self, voxel_size: tuple[float, ...] | None, ndim: int, z: int | None) -> ObjectsRequest:
        """The group as an :class:`ObjectsRequest`, with the minimum size in pixels.

        Parameters
        ----------
        voxel_size : the image's known voxel size, or None
        ndim : 2 (image) or 3 (stack)
        z : the slice of the current-slice scope (its objects are that section's, 2D), or None

        Raises
        ------
        ValueError
            In words: 3D for a 2D image, a minimum size that is not a number or negative.
        """
        mode = str(self.mode.value)
        if z is None:
            resolve_mode(mode, voxel_size, ndim)  # "3D instances need a (Z, Y, X) stack" before anything runs
        text = str(self.min_size.value).strip().lower()
        min_size = None
        if text not in ("", "auto"):
            try:
                value = float(text)
            except ValueError:
                raise ValueError(
                    f"The minimum object size must be 'auto' or a number, got {self.min_size.value!r}."
                ) from None
            min_size = min_size_pixels(
                value,
                physical=self.min_size_unit.value == SIZE_PHYSICAL,
                voxel_size=voxel_size,
                mode=mode if z is None else "2d",
                ndim=ndim if z is None else 2,
            )
        return ObjectsRequest(
            self.objects_class.value,
            mode=mode,
            preset=str(self.preset.value),
            measure=True,
            min_size=min_size,
        )


def ask_csv_path(parent: Any, suggested: Path) -> tuple[Path, bool] | None:
    """A save dialog for a CSV file: (path, whether replacing it was confirmed), or None when cancelled.

    Qt's dialog asks before replacing a file; a ``.csv`` suffix added here afterwards was not asked about.
    """
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(
        parent, "Export objects as CSV", str(suggested), "CSV table (*.csv)"
    )
    if not path:
        return None
    confirmed = path.lower().endswith(".csv")
    return Path(path if confirmed else path + ".csv"), confirmed
