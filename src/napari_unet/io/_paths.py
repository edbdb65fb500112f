"""File names and the size above which series open lazily: what can be decided before opening a file."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "DEFAULT_LAZY_BYTES",
    "DEFAULT_LAZY_RAM_FRACTION",
    "LABELS_MARK",
    "LABELS_SUFFIXES",
    "LAZY_BYTES_ENV",
    "LAZY_RAM_FRACTION_ENV",
    "SOFTWARE",
    "TIFF_SUFFIXES",
    "is_labels_name",
    "is_tiff_path",
    "lazy_threshold",
    "parse_bytes",
    "strip_tiff_suffix",
    "written_as_labels",
]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
"""File name endings treated as TIFF (compared case-insensitively; ``.ome.tif`` ends in ``.tif``)."""

LABELS_SUFFIXES = ("_labels", "_label", "_mask", "_masks", "_seg", "_gt")
"""Stem endings that mark a file of integers as a label image (compared case-insensitively)."""

LAZY_BYTES_ENV = "NAPARI_UNET_LAZY_BYTES"
"""Environment variable: series larger than this many bytes open lazily (accepts ``512M``, ``2GiB``...)."""

LAZY_RAM_FRACTION_ENV = "NAPARI_UNET_LAZY_RAM_FRACTION"
"""Environment variable: series larger than this fraction of the machine's RAM open lazily (0 < f <= 1)."""

DEFAULT_LAZY_BYTES = 1 << 30
DEFAULT_LAZY_RAM_FRACTION = 0.25

# The writer puts "napari-unet <version> labels" in the Software tag of label images, so that the reader
# re-opens them as labels whatever their file name.
SOFTWARE = "napari-unet"
LABELS_MARK = "labels"


def written_as_labels(software: str) -> bool:
    """Return True when a TIFF Software tag says napari-unet wrote the file as a label image."""
    return software.startswith(SOFTWARE) and software.split()[-1] == LABELS_MARK


def strip_tiff_suffix(name: str) -> str:
    """Return a file name without its TIFF ending and without a ``.ome`` before it (``a.ome.tif`` -> ``a``)."""
    lower = name.lower()
    for suffix in TIFF_SUFFIXES:
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.lower().endswith(".ome"):
        name = name[:-4]
    return name


def is_tiff_path(path: str | os.PathLike) -> bool:
    """Return True when ``path`` has a TIFF file name ending (``.tif``, ``.tiff``, ``.ome.tif``, ``.btf``...).

    Only the name is looked at; the file need not exist.
    """
    if not isinstance(path, str | os.PathLike):
        return False
    return os.fspath(path).lower().endswith(TIFF_SUFFIXES)


def is_labels_name(path: str | os.PathLike) -> bool:
    """Return True when the file stem ends in ``_labels``, ``_label``, ``_mask``, ``_masks``, ``_seg`` or ``_gt``.

    The comparison ignores case and the ``.tif``/``.ome.tif`` ending: ``cells_Mask.ome.tiff`` qualifies.
    """
    stem = strip_tiff_suffix(Path(os.fspath(path)).name).lower()
    return stem.endswith(LABELS_SUFFIXES)


def parse_bytes(text: str, variable: str) -> int:
    """Parse a size such as ``500000000``, ``512M`` or ``2GiB`` (binary prefixes); ``variable`` names the setting.

    Raises
    ------
    ValueError
        If ``text`` is not a size; the message names ``variable``.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not match:
        raise ValueError(f"{variable}={text!r} is not a size in bytes (examples: 500000000, 512M, 2GiB)")
    number, prefix = float(match.group(1)), match.group(2)
    return int(number * 1024 ** "_kmgt".index(prefix)) if prefix else int(number)


def lazy_threshold(lazy_bytes: int | None = None, ram_fraction: float | None = None) -> int:
    """Return the series size in bytes above which the reader opens data lazily.

    It is the smaller of a byte limit (default 1 GiB, environment variable ``NAPARI_UNET_LAZY_BYTES``)
    and a fraction of the machine's RAM (default 0.25, ``NAPARI_UNET_LAZY_RAM_FRACTION``).

    Parameters
    ----------
    lazy_bytes : int, optional
        Byte limit; overrides the environment variable.
    ram_fraction : float, optional
        Fraction of total RAM, in (0, 1]; overrides the environment variable.

    Returns
    -------
    int
        Threshold in bytes.

    Raises
    ------
    ValueError
        If an environment variable or argument holds a value that is not a size / fraction.
    """
    if lazy_bytes is None:
        env = os.environ.get(LAZY_BYTES_ENV, "").strip()
        lazy_bytes = parse_bytes(env, LAZY_BYTES_ENV) if env else DEFAULT_LAZY_BYTES
    if lazy_bytes < 0:
        raise ValueError(f"lazy byte threshold must be >= 0, got {lazy_bytes}")
    if ram_fraction is None:
        env = os.environ.get(LAZY_RAM_FRACTION_ENV, "").strip()
        try:
            ram_fraction = float(env) if env else DEFAULT_LAZY_RAM_FRACTION
        except ValueError:
            raise ValueError(f"{LAZY_RAM_FRACTION_ENV}={env!r} is not a number in (0, 1]") from None
    if not 0 < ram_fraction <= 1:
        raise ValueError(f"RAM fraction for lazy opening must be in (0, 1], got {ram_fraction}")
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:  # pragma: no cover - psutil is a dependency, but a sandbox may hide /proc
        return int(lazy_bytes)
    return int(min(lazy_bytes, ram_fraction * total))
