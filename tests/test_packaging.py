"""The wheel holds every package of the source tree (pyproject lists packages by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: tomli where installed
    tomllib = pytest.importorskip("tomli")


def test_every_source_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = ROOT / "src"
    found = {
        ".".join(init.parent.relative_to(src).parts)
        for init in src.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    missing = found - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_the_pretrained_model_and_its_card_ship_in_the_wheel():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"models/*.pt", "models/*.md"} <= set(data["napari_unet"])
    models = ROOT / "src" / "napari_unet" / "models"
    assert (models / "em_pretrained.pt").is_file() and (models / "MODEL_CARD.md").is_file()
