"""One spelling per unit: what ImageJ, OME, pint and people write for a length or time unit."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["normalize_unit"]

_UNIT_ALIASES = {
    "": "",
    "pixel": "",
    "pixels": "",
    "px": "",
    "reference frame": "",
    "micron": "µm",
    "microns": "µm",
    "um": "µm",
    "µm": "µm",
    "μm": "µm",  # Greek small letter mu
    "micrometer": "µm",
    "micrometre": "µm",
    "micrometers": "µm",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "nanometers": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "pm": "pm",
    "å": "Å",
    "Å": "Å",
    "angstrom": "Å",
    "angstroms": "Å",
    "inch": "in",
    "in": "in",
    "s": "s",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "ms": "ms",
    "msec": "ms",
    "millisecond": "ms",
    "µs": "µs",
    "us": "µs",
    "min": "min",
    "minute": "min",
    "minutes": "min",
    "h": "h",
    "hr": "h",
    "hour": "h",
    "hours": "h",
}


def normalize_unit(unit: Any) -> str:
    """Return a short, canonical spelling of a length or time unit.

    ``"micron"``, ``"um"``, ``"\\u00B5m"`` and ``"μm"`` become ``"µm"``; ``"nanometer"`` becomes ``"nm"``;
    ``"pixel"``, ``None`` and ``""`` become ``""`` (unknown). Unrecognised spellings are returned stripped.
    Objects such as ``pint.Unit`` are formatted in their abbreviated form first.
    """
    if unit is None:
        return ""
    if not isinstance(unit, str):
        try:
            unit = format(unit, "~")  # pint.Unit -> "nm"
        except (TypeError, ValueError):
            unit = str(unit)
    # ImageJ escapes non-ASCII characters as \uXXXX in its ASCII description
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), unit).strip()
    return _UNIT_ALIASES.get(text, _UNIT_ALIASES.get(text.lower(), text))
