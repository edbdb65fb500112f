"""OME-NGFF 0.4 metadata: axes with units, one-level multiscales with the voxel size, the ``image-label`` block.

Plain dictionaries (JSON), written into a Zarr group's attributes by :mod:`._outputs` and read back by
:mod:`._read`. NGFF wants UDUNITS-2 unit names (``nanometer``, not ``nm``); the project spells units the short
way (:func:`napari_unet.io.normalize_unit`), so both directions are translated here.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NGFF_VERSION", "image_label_attrs", "multiscales_attrs", "ngff_unit", "short_unit"]

NGFF_VERSION = "0.4"

_TO_NGFF = {
    "pm": "picometer",
    "Å": "angstrom",
    "nm": "nanometer",
    "µm": "micrometer",
    "um": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}
_TO_SHORT = {long: short for short, long in _TO_NGFF.items() if short != "um"}


def ngff_unit(unit: str | None) -> str | None:
    """The NGFF (UDUNITS-2) name of a short spatial unit (``"nm"`` -> ``"nanometer"``); None when unknown."""
    return _TO_NGFF.get(unit or "")


def short_unit(unit: str | None) -> str:
    """The project's short spelling of an NGFF unit (``"micrometer"`` -> ``"µm"``); ``""`` when unknown."""
    return _TO_SHORT.get(unit or "", unit or "")


def _axis(name: str, unit: str | None) -> dict:
    kind = "channel" if name == "c" else "time" if name == "t" else "space"
    axis = {"name": name, "type": kind}
    if kind == "space" and ngff_unit(unit):
        axis["unit"] = ngff_unit(unit)
    return axis


def multiscales_attrs(
    name: str, axes: str, scale: Sequence[float], units: Sequence[str] | str | None = None, path: str = "0"
) -> dict:
    """The ``multiscales`` attribute of a one-level image: ``axes`` (e.g. ``"zyx"``, ``"czyx"``) and their scale.

    Parameters
    ----------
    name : str
        The image's name.
    axes : str
        Lower-case NGFF axis names in order (t, c, then z, y, x).
    scale : sequence of float
        Voxel size per axis of ``axes`` (1.0 for channels).
    units : sequence of str or str, optional
        Short unit per axis (``"nm"``, ``"µm"``, ``""`` where unknown), or one unit for all spatial axes.
    path : str
        The array's path inside the group.
    """
    if isinstance(units, str) or units is None:
        units = [units or ""] * len(axes)
    if len(scale) != len(axes) or len(units) != len(axes):
        raise ValueError(
            f"axes {axes!r} need {len(axes)} scale values and units, got {scale!r} and {units!r}"
        )
    return {
        "multiscales": [
            {
                "version": NGFF_VERSION,
                "name": name,
                "axes": [_axis(a, u) for a, u in zip(axes, units, strict=True)],
                "datasets": [
                    {
                        "path": path,
                        "coordinateTransformations": [{"type": "scale", "scale": [float(s) for s in scale]}],
                    }
                ],
            }
        ]
    }


def image_label_attrs(label_values: Sequence[int], source: str = "../../") -> dict:
    """The ``image-label`` attribute of a label image: its values (with colours) and the image it belongs to."""
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    colors = [
        {"label-value": int(v), "rgba": [*palette[i % len(palette)], 255]}
        for i, v in enumerate(label_values)
        if int(v) != 0
    ]
    return {"image-label": {"version": NGFF_VERSION, "colors": colors, "source": {"image": source}}}
