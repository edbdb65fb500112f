"""The house's import fences (../shared/STYLE.md): light modules import neither torch nor Qt, the engine no Qt,
the widgets no torch at module load. Each check runs in a fresh interpreter so earlier imports cannot hide a leak."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

QT = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari.qt", "magicgui")

LIGHT = [
    "napari_unet",
    "napari_unet.io",
    "napari_unet._reader",
    "napari_unet._writer",
    "napari_unet._sample_data",
    "napari_unet.tiling",
    "napari_unet.normalize",
    "napari_unet.metrics",
    "napari_unet.transforms",
    "napari_unet.cli",
    "napari_unet.session",
]
ENGINE = [
    "napari_unet.model",
    "napari_unet.device",
    "napari_unet.checkpoint",
    "napari_unet.predict",
    "napari_unet.train",
]
WIDGETS = ["napari_unet._widgets.train", "napari_unet._widgets.segment"]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _hits(loaded: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == r or m.startswith(r + ".") for r in roots))


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_import_neither_torch_nor_qt(module):
    loaded = _loaded_after_import(module)
    assert not _hits(loaded, ("torch",)), f"{module} imports torch"
    assert not _hits(loaded, QT), f"{module} imports Qt: {_hits(loaded, QT)[:5]}"


@pytest.mark.parametrize("module", ENGINE)
def test_engine_imports_no_qt_and_no_napari(module):
    loaded = _loaded_after_import(module)
    assert "torch" in loaded
    assert not _hits(loaded, QT + ("napari",)), f"{module} imports {_hits(loaded, QT + ('napari',))[:5]}"


@pytest.mark.parametrize("module", WIDGETS)
def test_widget_modules_import_no_torch(module):
    loaded = _loaded_after_import(module)
    assert not _hits(loaded, ("torch",)), f"{module} imports torch at module load"
