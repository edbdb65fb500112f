"""The Segment widget's float outputs as napari layers: class probabilities and uncertainty (no Qt).

Both are owned by napari-unet (tagged, never offered as inputs), lie on the image's pixels and are updated in place
when the user segments again; with the current-slice scope only that slice is written into a full-size backing
(in memory, or a zarr store on disk when ``disk_for`` says the stack is too big for memory).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image

from ._layers import OWNER_KEY, find_owned, geometry_of, owner_metadata, place_on, tag
from ._segment_job import SegmentOutput, SegmentRequest, new_output

__all__ = ["write_probabilities", "write_uncertainty"]

#: (shape, itemsize) -> a folder for an on-disk output, or None to keep it in memory
DiskFor = Callable[[tuple[int, ...], int], Path | None]


def write_probabilities(
    viewer: Any, out: SegmentOutput, image: Image, req: SegmentRequest, disk_for: DiskFor
) -> Image:
    """Probabilities are kept as predict_stack writes them, (Z, K, Y, X), and shown class-axis-first."""
    name = f"{image.name} U-Net probabilities"
    layer = find_owned(viewer, "probabilities", str(image.unique_id))
    probs = out.probabilities
    n_classes = int(probs.shape[-3])
    backing_shape = req.full_shape[:-2] + (n_classes,) + req.full_shape[-2:]
    kwargs = {
        "name": name,
        "colormap": "magma",
        "contrast_limits": (0.0, 1.0),
        "blending": "additive",
        "opacity": 0.7,
        "metadata": owner_metadata(
            "probabilities", str(image.unique_id), class_names=list(out.meta.get("class_names", []))
        ),
    }
    if out.z is None:
        backing = probs
    else:
        backing = _backing(layer) if layer is not None else None
        if backing is None or tuple(backing.shape) != backing_shape:
            backing = new_output(
                backing_shape, np.dtype(np.float32), disk_for(backing_shape, 4), "probabilities"
            )
        backing[out.z] = np.asarray(probs[0], dtype=np.float32)
    if layer is None:
        kwargs["axis_labels"] = _class_axis_labels(image)  # the class slider is named "class", not "-4"
        layer = viewer.add_image(_class_first(backing), **kwargs, **geometry_of(image, 1))
    else:
        layer.data = _class_first(backing)
        place_on(layer, image, 1)
    tag(layer, "probabilities", str(image.unique_id))
    layer.metadata[OWNER_KEY]["backing"] = backing
    return layer


def write_uncertainty(
    viewer: Any, out: SegmentOutput, image: Image, req: SegmentRequest, disk_for: DiskFor
) -> Image:
    """The uncertainty layer (0..1) on the image's pixels; the current-slice scope writes only that slice."""
    name = f"{image.name} U-Net uncertainty"
    source = str(image.unique_id)
    layer = find_owned(viewer, "uncertainty", source)
    data = out.uncertainty
    if out.z is not None:
        data = layer.data if layer is not None else None
        if data is None or tuple(data.shape) != req.full_shape:
            data = new_output(
                req.full_shape, np.dtype(np.float32), disk_for(req.full_shape, 4), "uncertainty"
            )
        data[out.z] = np.asarray(out.uncertainty[0])
    if layer is None:
        layer = viewer.add_image(
            data,
            name=name,
            colormap="inferno",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            opacity=0.7,
            metadata=owner_metadata("uncertainty", source),
            **geometry_of(image),
        )
    else:
        layer.data = data
        place_on(layer, image)
        layer.refresh()
    return layer


def _class_axis_labels(image: Image) -> tuple[str, ...]:
    """Axis labels of the probabilities layer: "class", then the image's own ("z", "y", "x" where napari has only
    its numbered defaults)."""
    own = tuple(str(a) for a in getattr(image, "axis_labels", ()))
    named = ("z", "y", "x")[-image.ndim :] if image.ndim <= 3 else own
    if len(own) != image.ndim or all(a.lstrip("-").isdigit() for a in own):
        own = named
    return ("class", *own)


def _backing(layer: Any) -> Any:
    info = layer.metadata.get(OWNER_KEY)
    return info.get("backing") if isinstance(info, dict) else None


def _class_first(probabilities: Any) -> Any:
    """(Z, K, Y, X) → (K, Z, Y, X) for display, without copying.

    numpy: a view. A zarr store: a lazy dask view with a fresh name each time, so that napari's dask cache never
    serves a slice from before the latest write. (K, Y, X) (one 2D image) is already class-first.
    """
    if probabilities.ndim == 3:
        return probabilities
    if isinstance(probabilities, np.ndarray):
        return np.moveaxis(probabilities, 1, 0)
    import dask.array as da

    chunks = (1, 1) + tuple(int(s) for s in probabilities.shape[-2:])
    return da.moveaxis(da.from_array(probabilities, chunks=chunks, name=False), 1, 0)
