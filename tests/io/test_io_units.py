"""napari_unet.io._units: one spelling per unit."""

from __future__ import annotations

import pytest

from napari_unet import io


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("micron", "µm"),
        ("\\u00B5m", "µm"),
        ("μm", "µm"),  # Greek mu
        ("um", "µm"),
        ("nanometer", "nm"),
        ("NM", "nm"),
        ("pixel", ""),
        (None, ""),
        ("\\u00C5", "Å"),
        ("sec", "s"),
        ("parsec", "parsec"),
    ],
)
def test_normalize_unit(unit, expected):
    assert io.normalize_unit(unit) == expected


def test_normalize_unit_accepts_pint_units():
    import pint

    assert io.normalize_unit(pint.get_application_registry().nanometer) == "nm"
