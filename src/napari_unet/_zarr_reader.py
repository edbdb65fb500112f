"""napari reader for the OME-Zarr stores ``napari-unet predict`` writes (npe2 ``napari_unet._zarr_reader:get_reader``).

No Qt, no torch. napari calls :func:`get_reader` for a path; only names ending in ``.zarr`` that hold an OME-NGFF
image (``multiscales``) or a plain Zarr array are taken. The reader gives the image (one layer, or one per class
for a probabilities store, whose first axis is the channel; a Labels layer for a store that is itself a label image,
``image-label`` metadata, such as ``--instances IDS.zarr``), and each label image under ``labels/`` as a Labels
layer, all lazily (dask over the store's chunks, so a store still being filled shows the slices written so far)
and with the voxel size of the coordinate transformations. napari-ome-zarr opens the same stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from napari_unet.ngff import is_zarr_path, read_zarr_image

__all__ = ["get_reader", "read_zarr_layers"]

LayerData = tuple[Any, dict, str]


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerData]] | None:
    """Return :func:`read_zarr_layers` for one ``.zarr`` path holding an image, else None (napari tries others)."""
    if not isinstance(path, str | os.PathLike):
        if len(path) != 1:
            return None
        path = path[0]
    if not is_zarr_path(path):
        return None
    names = (".zattrs", "zarr.json", ".zarray")
    return read_zarr_layers if any(os.path.exists(os.path.join(path, n)) for n in names) else None


def read_zarr_layers(path: str | Sequence[str]) -> list[LayerData]:
    """The image of a ``.zarr`` store and its label images as napari layer-data tuples (lazy, with the scale).

    Raises
    ------
    napari_unet.ngff.ZarrReadError
        When the store holds no image napari-unet can read; the message names the store.
    """
    import dask.array as da
    import zarr

    path = os.fspath(path if isinstance(path, str | os.PathLike) else path[0])
    name = os.path.basename(path.rstrip("/\\"))[: -len(".zarr")]
    node = zarr.open(path, mode="r")
    if isinstance(node, zarr.Group) and _axes(node)[:1] == "c":  # probabilities: one layer per class
        array = node[node.attrs["multiscales"][0]["datasets"][0]["path"]]
        scale = _scale(node, array.ndim)[1:]
        channels = [
            c.get("label", str(i)) for i, c in enumerate(node.attrs.get("omero", {}).get("channels", []))
        ]
        kwargs = {"channel_axis": 0, "scale": scale, "name": [f"{name}: {c}" for c in channels] or None}
        return [(da.from_zarr(array), {k: v for k, v in kwargs.items() if v is not None}, "image")]
    data, scale, _ = read_zarr_image(path)
    kind = "labels" if isinstance(node, zarr.Group) and "image-label" in node.attrs else "image"
    layers = [(da.asarray(data) if not hasattr(data, "dask") else data, {"name": name, "scale": scale}, kind)]
    if isinstance(node, zarr.Group) and "labels" in node:
        for label in node["labels"].attrs.get("labels", []):
            group = node["labels"][label]
            array = group[group.attrs["multiscales"][0]["datasets"][0]["path"]]
            kwargs = {"name": f"{name} {label}", "scale": _scale(group, array.ndim)}
            layers.append((da.from_zarr(array), kwargs, "labels"))
    return layers


def _axes(group: Any) -> str:
    multiscales = group.attrs.get("multiscales") or [{}]
    return "".join(str(a.get("name", "?"))[0] for a in multiscales[0].get("axes", []) if isinstance(a, dict))


def _scale(group: Any, ndim: int) -> tuple[float, ...]:
    dataset = group.attrs["multiscales"][0]["datasets"][0]
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale" and len(transform["scale"]) == ndim:
            return tuple(float(s) for s in transform["scale"])
    return (1.0,) * ndim
