"""Fixtures shared by the widget tests (real headless viewer, tiny real models)."""

from __future__ import annotations

import pytest


@pytest.fixture
def errors(monkeypatch):
    """Messages the widgets send to napari as error notifications, in order."""
    from napari_unet._widgets import segment, train

    seen: list[str] = []
    monkeypatch.setattr(segment, "show_error", seen.append)
    monkeypatch.setattr(train, "show_error", seen.append)
    monkeypatch.setattr("napari_unet._widgets._runner.show_error", seen.append)
    return seen
