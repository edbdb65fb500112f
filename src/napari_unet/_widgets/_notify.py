"""napari-unet's notifications: one toast at a time, the point first.

napari shows each notification as a toast in the canvas' corner, elided to its first line (the rest behind a
chevron), and toasts pile up while they last. A run that is cancelled, re-started and fails would leave three of
ours stacked over the image. :func:`notify` therefore closes the toast of napari-unet's previous notification
before it shows the next one; every notification stays in napari's notification list (the bell) all the same.
Messages are written so that their first words say what happened ("Training cancelled at iteration 120. …").

Finding the open toasts uses napari's private ``NapariQtNotification._instances``; where that changes, notify
still notifies and only the dismissal is skipped.
"""

from __future__ import annotations

from collections import deque

from napari.utils.notifications import show_error, show_info, show_warning

__all__ = ["notify", "open_toasts"]

_SHOW = {"info": show_info, "warning": show_warning, "error": show_error}
#: the last messages napari-unet sent: their toasts are the ones :func:`notify` may close
_SENT: deque[str] = deque(maxlen=16)


def open_toasts() -> list:
    """napari's open notification toasts (empty where napari's Qt side is not loaded or has changed)."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        return list(NapariQtNotification._instances)
    except (ImportError, AttributeError):
        return []


def _toast_text(toast) -> str | None:
    try:
        return toast.message.text()
    except (AttributeError, RuntimeError):  # RuntimeError: its C++ widget is already deleted
        return None


def notify(message: str, severity: str = "info") -> None:
    """Show ``message`` as a napari notification of ``severity`` (info, warning, error), replacing ours."""
    for toast in open_toasts():
        if _toast_text(toast) in _SENT:
            try:
                toast.close()
            except RuntimeError:
                pass
    _SENT.append(message)
    _SHOW[severity](message)
