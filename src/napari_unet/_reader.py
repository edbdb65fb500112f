"""napari reader for TIFF files (npe2 ``napari_unet._reader:get_reader``); no Qt, no torch.

napari calls :func:`get_reader` for every file a user opens, so it only looks at the file name. The reader
function it returns does the work through :func:`napari_unet.io.read_tiff` and turns every series into a
napari layer-data tuple: Image layers with ``scale``, ``units``, ``axis_labels``, ``channel_axis`` for
channels, ``rgb`` for colour, estimated ``contrast_limits`` for lazy stacks, pyramids as multiscale data,
and Labels layers for label images. A list of paths arrives only when the user asked napari to stack the
files; matching single-series files become one layer with a new leading axis.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_unet.io import TiffImage, estimate_contrast_limits, is_tiff_path, normalize_unit, read_tiff

__all__ = ["get_reader", "layer_data_from_image", "read_tiff_layers"]

LayerData = tuple[Any, dict, str]

# napari's slider labels; the page-sequence letters of tifffile read as the slice axis when there is no Z
_AXIS_LABELS = {"T": "t", "Z": "z", "C": "c", "Y": "y", "X": "x"}

# units napari_unet.io.normalize_unit produces that pint parses to what they mean (checked in the tests)
_NAPARI_UNITS = frozenset(
    {"pixel", "pm", "Å", "nm", "µm", "mm", "cm", "m", "in", "µs", "ms", "s", "min", "h"}
)


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerData]] | None:
    """Return the napari-unet reader when every path has a TIFF name, else None.

    Parameters
    ----------
    path : str or list of str
        One path, or several (napari passes a list when the user asked to stack files).

    Returns
    -------
    callable or None
        :func:`read_tiff_layers`, or None so napari tries another reader.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(is_tiff_path(p) for p in paths):
        return None
    return read_tiff_layers


def read_tiff_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Read one TIFF file (or a stack of them) into napari layer-data tuples.

    Parameters
    ----------
    path : str or list of str
        A file, or files to stack: when all are single-series with the same shape, dtype and kind they
        become one layer with a new leading axis (lazy when any of them is); otherwise each file gives its
        own layers and a warning says why they were not stacked.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One tuple per series (napari splits channel images itself through ``channel_axis``).

    Raises
    ------
    napari_unet.io.TiffReadError
        If a file is not a readable TIFF; the message names the file.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    per_file = [read_tiff(p) for p in paths]
    if len(per_file) > 1:
        reason = _why_not_stackable(per_file)
        if reason is None:
            return [layer_data_from_image(_stack_images([f[0] for f in per_file]))]
        warnings.warn(
            f"napari-unet: opened {len(paths)} files separately, not as a stack: {reason}", stacklevel=2
        )
    return [layer_data_from_image(image) for images in per_file for image in images]


def _why_not_stackable(per_file: list[list[TiffImage]]) -> str | None:
    first = per_file[0][0]
    for images in per_file:
        image = images[0]
        name = image.metadata.get("path", image.name)
        if len(images) != 1:
            return f"{name} holds {len(images)} series"
        if image.levels or first.levels:
            return f"{name} is a pyramid"
        if image.data.shape != first.data.shape or image.data.dtype != first.data.dtype:
            return (
                f"{name} has shape {image.data.shape} {image.data.dtype}, "
                f"the first file {first.data.shape} {first.data.dtype}"
            )
        if image.axes != first.axes or image.is_labels != first.is_labels:
            return f"{name} has axes {image.axes!r} ({'labels' if image.is_labels else 'image'}), unlike the first"
    return None


def _stack_images(images: list[TiffImage]) -> TiffImage:
    first = images[0]
    lazy = any(image.lazy for image in images)
    if lazy:
        import dask.array as da

        data = da.stack([da.from_array(image.data, chunks=_plane_chunks(image)) for image in images])
    else:
        data = np.stack([image.data for image in images])
    contrast = None
    if lazy and not first.is_labels:
        contrast = estimate_contrast_limits(data, plane_ndim=3 if first.axes.endswith("S") else 2)
    axis = "Q" if "Z" in first.axes else "Z"  # the new axis is the slice axis unless the files already have Z
    metadata = dict(first.metadata)
    metadata.update(
        axes=axis + first.axes,
        units=["", *first.units],
        paths=[image.metadata["path"] for image in images],
        series=0,
        n_series=1,
        stacked_files=len(images),
        lazy_mode="dask" if lazy else None,
    )
    return TiffImage(
        data=data,
        axes=axis + first.axes,
        scale=(1.0, *first.scale),
        units=("", *first.units),
        name=f"{first.name} (+{len(images) - 1} files)",
        is_labels=first.is_labels,
        lazy=lazy,
        compression=first.compression,
        contrast_limits=contrast,
        metadata=metadata,
    )


def _plane_chunks(image: TiffImage) -> tuple[int, ...]:
    plane = 3 if image.axes.endswith("S") else 2
    shape = image.data.shape
    return (1,) * (len(shape) - plane) + tuple(shape[-plane:])


def _napari_units(units: Sequence[str]) -> tuple[str, ...] | None:
    """Units for napari ('' -> 'pixel'); None when all are unknown or any is outside the common set.

    pint parses almost anything ("a.u." becomes atomic mass unit times year), so napari only gets units
    napari-unet recognises; the file's own spelling always stays in the layer metadata.
    """
    if not any(units):
        return None
    out = tuple(normalize_unit(unit) or "pixel" for unit in units)
    return out if all(text in _NAPARI_UNITS for text in out) else None


def _axis_labels(axes: str) -> tuple[str, ...]:
    labels = []
    for letter in axes:
        if letter in _AXIS_LABELS:
            labels.append(_AXIS_LABELS[letter])
        elif letter in "IQ" and "Z" not in axes:
            labels.append("z")  # a plain page sequence: almost always slices of a volume
        else:
            labels.append(letter.lower())
    # napari needs distinct labels
    return tuple(labels) if len(set(labels)) == len(labels) else tuple(axes.lower())


def layer_data_from_image(image: TiffImage) -> LayerData:
    """Turn a :class:`~napari_unet.io.TiffImage` into a napari layer-data tuple.

    Parameters
    ----------
    image : TiffImage
        One series as read by :func:`napari_unet.io.read_tiff`.

    Returns
    -------
    (data, kwargs, layer_type)
        ``layer_type`` is ``"labels"`` or ``"image"``. For channel images ``kwargs`` has ``channel_axis``
        and per-channel lists for ``name``, ``scale``, ``units``, ``axis_labels``, ``metadata`` and
        ``contrast_limits``; RGB(A) images have ``rgb=True`` and no entry for the sample axis.
    """
    axes = image.axes
    data: Any = [image.data, *image.levels] if image.levels else image.data
    shape = image.data.shape
    channel_axis = None
    if not image.is_labels:
        if "C" in axes and shape[axes.index("C")] > 1:
            channel_axis = axes.index("C")
        elif "S" in axes and not image.rgb:
            # extra samples that are not colour (e.g. two detectors in one page) are channels too
            channel_axis = axes.index("S")
    keep = [i for i, a in enumerate(axes) if i != channel_axis and not (a == "S" and image.rgb)]
    kept_axes = "".join(axes[i] for i in keep)
    scale = tuple(float(image.scale[i]) for i in keep)
    units = _napari_units([image.units[i] for i in keep])
    kwargs: dict[str, Any] = {
        "name": image.name,
        "scale": scale,
        "axis_labels": _axis_labels(kept_axes),
        "metadata": dict(image.metadata),
    }
    if units is not None:
        kwargs["units"] = units
    if image.levels:
        kwargs["multiscale"] = True
    if image.is_labels:
        return data, kwargs, "labels"

    if image.rgb:
        kwargs["rgb"] = True
    if channel_axis is None:
        if image.contrast_limits is not None:
            kwargs["contrast_limits"] = list(image.contrast_limits)
        return data, kwargs, "image"

    n = image.data.shape[channel_axis]
    names = image.metadata.get("channel_names") or []
    kwargs["channel_axis"] = channel_axis
    kwargs["name"] = [
        f"{image.name} [{names[c]}]" if c < len(names) and names[c] else f"{image.name} [ch {c}]"
        for c in range(n)
    ]
    # napari splits these per channel; give explicit lists so a 2-channel image's 2-D scale is not misread
    for key in ("scale", "axis_labels", "units"):
        if key in kwargs:
            kwargs[key] = [kwargs[key]] * n
    kwargs["metadata"] = [dict(image.metadata, channel=c) for c in range(n)]
    if image.contrast_limits is not None:
        sample = image.levels[-1] if image.levels else image.data
        plane = 3 if axes.endswith("S") else 2
        # basic indexing keeps a memmap / dask array lazy (np.take would copy the whole channel)
        before = (slice(None),) * channel_axis
        kwargs["contrast_limits"] = [
            list(estimate_contrast_limits(sample[(*before, c)], plane_ndim=plane)) for c in range(n)
        ]
    return data, kwargs, "image"
