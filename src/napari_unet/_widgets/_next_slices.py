""" "Where to paint next": the Train widget's short list of the slices where the session's model is least sure.

A button ("where to paint next?", Cancel while it runs), a list of at most five rows - ``slice 7 — 0.41``, the
mean normalised entropy of the slice's unannotated pixels - and a status line. The Train widget starts it when
training ends; the button runs it again on demand. The ranking is computed in the worker by
:func:`~._next_slices_job.next_slices_job` (a sample of slices predicted with the session's model); clicking a
row moves the viewer to that slice and centres the camera on its most uncertain window.
"""

from __future__ import annotations

from typing import Any

import napari
from magicgui.widgets import Container, Label, PushButton
from qtpy.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from napari_unet.session import ModelSession

from ._dock import elide
from ._layers import stack_data
from ._next_slices_job import NextSlices, NextSlicesRequest, next_slices_job
from ._runner import Runner, read_or_report
from ._segment_job import describe_progress

__all__ = ["MAX_ROWS", "NextSlicesPanel"]

MAX_ROWS = 5


class NextSlicesPanel(Container):
    """The ranked list of slices to annotate next.

    Parameters
    ----------
    viewer : napari.Viewer
    session : ModelSession
        Its current model is the one asked.
    image, labels, device : objects with a ``value``
        The Train widget's image and annotations choices (layers) and device choice, read when a ranking starts.

    Attributes (for scripts and tests)
    ----------------------------------
    button : PushButton; rows : QListWidget; status : Label; runner : Runner
    suggestions : list of SliceSuggestion (the rows, in order); layer : the image layer they belong to
    """

    def __init__(
        self, viewer: napari.viewer.Viewer, session: ModelSession, image: Any, labels: Any, device: Any
    ) -> None:
        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self._viewer, self._session = viewer, session
        self._image, self._labels, self._device = image, labels, device
        self.suggestions: list = []
        self.layer: Any = None
        self.button = PushButton(
            text="where to paint next?",
            tooltip="Predict a sample of the image's slices with the session's model and list the slices where it "
            "is least sure (mean entropy of its class probabilities, 0..1), leaving out densely annotated ones. "
            "Click a row to go there. Runs by itself when training ends.",
        )
        self.status = Label(value="")
        self.rows = QListWidget()
        self.rows.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.rows.setToolTip("Click a slice to show it, centred on where the model is least sure.")
        self.rows.itemClicked.connect(self._on_row_clicked)
        self.rows.itemActivated.connect(self._on_row_clicked)
        self.rows.hide()
        self.extend([self.button, self.status])
        self.native.layout().insertWidget(1, self.rows)
        elide(self.status)
        self.runner = Runner(self.button, "Ranking slices", owner=self, on_click=self.start)

    def request(self) -> tuple[NextSlicesRequest, Any]:
        """Read what to rank (GUI thread); ValueError in words when there is nothing to ask."""
        layer = self._image.value
        if layer is None:
            raise ValueError("Choose the image first: the slices to paint next are the image's.")
        current = self._session.current
        if current is None:
            raise ValueError(
                "Train a model first: the slices to paint next are where the model is least sure."
            )
        image = stack_data(layer)
        annotations = self._labels.value
        labels = None
        if annotations is not None and tuple(annotations.data.shape) == tuple(image.shape):
            labels = annotations.data
        return NextSlicesRequest(image, labels, current.path, str(self._device.value), k=MAX_ROWS), layer

    def start(self) -> bool:
        """Rank the slices with the session's current model; False (and a notification) when it cannot start."""
        if self.runner.busy:
            return False
        read = read_or_report(self.request, self.status)
        if read is None:
            return False
        req, layer = read
        self.status.value = "looking for the slices where the model is least sure…"
        self.runner.start(
            lambda: next_slices_job(req),
            on_done=lambda out: self._show(out, layer),
            on_cancelled=lambda _out: setattr(self.status, "value", "cancelled"),
            on_error=self._on_failed,
            describe=describe_progress,
        )
        return True

    def _on_failed(self, exc: BaseException) -> None:
        self.status.value = "failed — see the notification"
        self.runner.report_error(exc)

    def _show(self, out: NextSlices, layer: Any) -> None:
        self.suggestions, self.layer = list(out.suggestions), layer
        self.rows.clear()
        for s in self.suggestions:
            item = QListWidgetItem(s.text())
            y0, y1, x0, x1 = s.box
            item.setToolTip(
                f"mean uncertainty {s.score:.2f} over the slice's unannotated pixels; the window y {y0}–{y1}, "
                f"x {x0}–{x1} is at {s.box_score:.2f}"
            )
            self.rows.addItem(item)
        if self.suggestions:
            row = self.rows.sizeHintForRow(0)
            self.rows.setFixedHeight(row * len(self.suggestions) + 2 * self.rows.frameWidth() + 2)
            self.rows.show()
        else:
            self.rows.hide()
        looked = len(out.looked_at)
        self.status.value = (
            f"least sure on these of {looked} slice(s) looked at ({out.seconds:.1f} s); click one to go there"
            if self.suggestions
            else "every slice is densely annotated: nothing to suggest"
        )

    def _on_row_clicked(self, item: QListWidgetItem) -> None:
        self.go_to(self.rows.row(item))

    def go_to(self, row: int) -> None:
        """Show the slice of row ``row`` and centre the camera on its most uncertain window."""
        if not 0 <= row < len(self.suggestions) or self.layer not in self._viewer.layers:
            return
        s, layer = self.suggestions[row], self.layer
        yc, xc = s.center
        world = layer.data_to_world((s.z, yc, xc) if layer.ndim == 3 else (yc, xc))
        if layer.ndim == 3:
            self._viewer.dims.set_point(self._viewer.dims.ndim - 3, float(world[-3]))
        shown = self._viewer.dims.ndisplay
        camera = getattr(self._viewer, "scene", self._viewer).camera  # napari 0.9 moved it to viewer.scene
        camera.center = tuple(float(c) for c in world[-shown:])
        self.rows.setCurrentRow(row)
