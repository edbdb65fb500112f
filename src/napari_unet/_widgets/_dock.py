"""How the two dock widgets fit a laptop screen: a scrolling form, a pinned footer, one-line status texts.

napari docks a magicgui widget's ``native`` QWidget as it is, so a tall form sets the window's minimum height: two
docks of ~650 and ~340 px made a 1366 × 768 screen too small. Each widget therefore puts its form in a
:class:`QScrollArea` (:func:`scroll_body`) and pins only what must stay in reach under it - the run button and
the status line. Status lines are one line, elided with "…" at the dock's width (:func:`elide`): a long message
never grows the dock, and the whole text is the label's tooltip and its ``value``.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, Label
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QPainter
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QWidget

__all__ = ["FORM_MIN_HEIGHT", "elide", "scroll_body"]

#: the least height of a widget's scrolling form: a few rows stay visible however small the window
FORM_MIN_HEIGHT = 120


def scroll_body(body: Container, min_height: int = FORM_MIN_HEIGHT) -> QScrollArea:
    """A vertically scrolling, frameless area around ``body``'s native widget (to insert into a dock's layout).

    The area asks for ``body``'s full height (``sizeHint``) but needs only ``min_height`` px; horizontally it
    never scrolls, so the form keeps the dock's width.
    """
    area = _FormScroll(body.native)
    area.setMinimumHeight(min_height)
    return area


class _FormScroll(QScrollArea):
    def __init__(self, inner: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.setWidget(inner)

    def sizeHint(self):  # noqa: N802 - Qt API: as tall as the form, so a roomy window shows it whole
        hint = self.widget().sizeHint()
        hint.setWidth(hint.width() + self.verticalScrollBar().sizeHint().width())
        return hint

    def minimumSizeHint(self):  # noqa: N802 - Qt API: as wide as the form needs, as short as allowed
        hint = self.widget().minimumSizeHint()
        hint.setWidth(hint.width() + self.verticalScrollBar().sizeHint().width())
        hint.setHeight(self.minimumHeight())
        return hint


class _Elider(QObject):
    """Paints a QLabel's text on one line, elided at its width; the label keeps the whole text, and its tooltip
    shows it."""

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.Paint:
            return False
        if obj.toolTip() != obj.text():  # setText repaints: the tooltip follows the text here
            obj.setToolTip(obj.text())
        painter = QPainter(obj)
        rect = obj.contentsRect()
        text = obj.fontMetrics().elidedText(obj.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(obj.alignment()), text)
        painter.end()
        return True


def elide(label: Label) -> None:
    """Show ``label`` on one line, elided with "…" when it is wider than its dock; its tooltip holds the whole text.

    ``label.value`` stays the whole text (scripts and tests read it); only the painting is cut.
    """
    native = label.native
    native.setWordWrap(False)
    native.setTextFormat(Qt.TextFormat.PlainText)
    native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    native.setMinimumWidth(40)
    native.setFixedHeight(native.fontMetrics().height() + 4)  # one line, whatever the text (also when empty)
    elider = _Elider(native)  # parented to the label: lives and dies with it
    native.installEventFilter(elider)
    native.setToolTip(native.text())


def bind_shortcut(viewer: Any, key: str, button: Any) -> None:
    """Pressing ``key`` in the viewer (e.g. ``"Shift-T"``) clicks ``button`` - Run, or Cancel/Stop while running -
    as long as the button is enabled and its widget is alive. The widget's tooltip names the key."""

    def press(_viewer: Any = None) -> None:
        try:
            if button.enabled and button.native.isVisible():  # not when its dock was closed
                button.native.click()
        except RuntimeError:  # the widget was closed: the key does nothing
            pass

    viewer.bind_key(key, press, overwrite=True)
