"""The annotated data a training run learns from: checks, class mapping, normalisation, the model to fine-tune.

Sparse mode: label 0 means "not annotated" and is ignored, every other value is a class. Dense mode: every value
present is a class (ISBI's 0/255 ground truth), so the prediction writes the same values back. Class indices are
int16 with :data:`IGNORE` where a pixel does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint as ckpt_mod
from ..normalize import normalization_from_image

__all__ = [
    "IGNORE",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_LABEL_VALUE",
    "AnnotatedData",
    "as_stack",
    "class_counts",
    "collect_annotations",
    "finetune_values",
    "image_normalization",
    "image_plane",
    "load_init",
    "read_annotated",
    "to_classes",
]

IGNORE = -1  # class index of pixels the loss ignores (not annotated / held out for validation)
MAX_CHANNELS = 4  # a longer axis right before Y is a stack of slices, not channels
MAX_CLASSES = 64  # more distinct label values than this almost always means instance labels were passed
MAX_LABEL_VALUE = 65535  # predictions are written as uint8/uint16


@dataclass
class AnnotatedData:
    """Annotated slices in memory: raw image planes and class-index labels (-1 = ignored)."""

    images: dict[int, np.ndarray]  # z -> (C, Y, X) raw dtype
    classes: dict[int, np.ndarray]  # z -> (Y, X) int16 class index, IGNORE where not annotated
    label_values: list[int]
    shape_yx: tuple[int, int]
    in_channels: int


def as_stack(image: Any, labels: Any) -> tuple[Any, Any, bool]:
    """Bring image to (Z, C, Y, X)-indexable form and labels to (Z, Y, X); validate shapes and dtypes."""
    if not hasattr(image, "shape") or not hasattr(labels, "shape"):
        raise TypeError("image and labels must be arrays (numpy, dask or zarr)")
    ishape, lshape = tuple(image.shape), tuple(labels.shape)
    if len(lshape) not in (2, 3):
        raise ValueError(f"labels must be (Y, X) or (Z, Y, X), got shape {lshape}")
    if ishape == lshape:
        channels = False
    elif (
        len(ishape) == len(lshape) + 1 and ishape[:-3] + ishape[-2:] == lshape and ishape[-3] <= MAX_CHANNELS
    ):
        channels = True  # (Z, C, Y, X) or (C, Y, X) with one labels plane per slice
    else:
        raise ValueError(
            f"image and labels shapes differ: image {ishape}, labels {lshape}. Paint the labels on the image "
            "they belong to (same Z, Y, X size); for a multi-channel image (up to 4 channels), channels go right "
            "before Y."
        )
    if min(lshape) == 0:
        raise ValueError(f"the image is empty (shape {ishape})")
    ldtype = np.dtype(labels.dtype)
    if ldtype.kind not in "iub":
        raise ValueError(
            f"labels must be integers (a napari Labels layer), got dtype {ldtype}; "
            "convert probabilities to labels first"
        )
    idtype = np.dtype(image.dtype)
    if idtype.kind not in "iuf":
        raise ValueError(f"image must be grayscale numbers (integer or float), got dtype {idtype}")
    return image, labels, channels


def collect_annotations(
    image: Any, labels: Any, dense: bool
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], list[int]]:
    """Read the annotated slices (labels one slice at a time; the image only where annotated)."""
    image, labels, channels = as_stack(image, labels)
    is2d = labels.ndim == 2
    nz = 1 if is2d else labels.shape[0]
    raw_labels: dict[int, np.ndarray] = {}
    values: set[int] = set()
    for z in range(nz):
        lab = np.asarray(labels if is2d else labels[z])
        if lab.dtype == bool:
            lab = lab.astype(np.uint8)
        present = np.unique(lab)
        if not dense:
            present = present[present != 0]
        if present.size == 0:
            continue
        raw_labels[z] = lab
        values.update(int(v) for v in present)
    if not raw_labels:
        raise ValueError(
            "no annotations: the labels are all 0, and 0 means 'not annotated'. Paint at least two classes "
            "(e.g. 1 = membrane, 2 = cell interior) on one or more slices"
        )
    label_values = sorted(values)
    if label_values[0] < 0 or label_values[-1] > MAX_LABEL_VALUE:
        raise ValueError(
            f"label values must be between 0 and {MAX_LABEL_VALUE}, found {label_values[0]}..{label_values[-1]}"
        )
    if len(label_values) > MAX_CLASSES:
        raise ValueError(
            f"the labels hold {len(label_values)} different values; a U-Net learns a few semantic classes "
            f"(at most {MAX_CLASSES}). Did you pass an instance segmentation (one value per cell)? Paint class "
            "values instead (e.g. 1 = membrane, 2 = cell interior)"
        )
    images: dict[int, np.ndarray] = {}
    for z in raw_labels:
        plane = np.asarray(image if is2d else image[z])
        images[z] = plane if channels else plane[None]
    return images, raw_labels, label_values


def to_classes(lab: np.ndarray, label_values: list[int], dense: bool) -> np.ndarray:
    """Label values -> class indices (int16), -1 where not annotated (sparse 0) or not a known value."""
    vals = np.asarray(label_values, dtype=np.int64)
    lab64 = lab.astype(np.int64, copy=False)
    idx = np.clip(np.searchsorted(vals, lab64), 0, len(vals) - 1)
    known = vals[idx] == lab64
    if not dense:
        known &= lab64 != 0
    return np.where(known, idx, IGNORE).astype(np.int16)


def class_counts(classes: dict[int, np.ndarray], k: int, slices: Sequence[int], region=None) -> np.ndarray:
    """Annotated pixels per class index over ``slices`` (inside ``region`` when given)."""
    counts = np.zeros(k, dtype=np.int64)
    for z in slices:
        c = classes[z] if region is None else np.where(region, classes[z], IGNORE)
        counts += np.bincount(c[c >= 0].ravel().astype(np.int64), minlength=k)[:k]
    return counts


def load_init(init: str | Path | dict) -> tuple[dict, str]:
    """The checkpoint to fine-tune from (a path or a full checkpoint dict) and a description of its source."""
    if isinstance(init, dict):
        if "state_dict" not in init or "model_kwargs" not in init:
            raise ValueError(
                "init must be a checkpoint path or a full checkpoint dict with 'model_kwargs' and 'state_dict'"
            )
        return init, "a checkpoint dict"
    path = Path(init)
    return ckpt_mod.read_checkpoint(path), str(path)


def finetune_values(old: list[int], new: list[int], source: str) -> list[int]:
    """The model keeps its classes; the new annotations must use a subset of its label values."""
    unknown = sorted(set(new) - set(old))
    if unknown:
        raise ValueError(
            f"the labels contain value(s) {unknown} that the model from {source} does not predict (it knows "
            f"{old}); use the same label values as the model, or train a new model"
        )
    return list(old)


def _require_two_classes(label_values: list[int], dense: bool) -> None:
    if len(label_values) >= 2:
        return
    hint = (
        " In dense mode every value is a class; if 0 means 'not annotated', train in sparse mode."
        if dense
        else " (0 means 'not annotated' and is not a class.)"
    )
    raise ValueError(
        f"only one class painted (value {label_values[0]}): a U-Net needs at least two classes, e.g. "
        f"membrane and cell interior.{hint}"
    )


def read_annotated(
    image: Any, labels: Any, *, dense: bool, init: str | Path | dict | None = None
) -> tuple[AnnotatedData, dict | None, str]:
    """Read the annotated slices and map their label values to class indices.

    Parameters
    ----------
    image, labels :
        As :func:`napari_unet.train.train` takes them.
    dense : bool
        Every value is a class (True) or 0 means "not annotated" (False).
    init : path or checkpoint dict, optional
        A model to fine-tune: it keeps its classes, the labels must use a subset of its label values (one painted
        class is then enough).

    Returns
    -------
    data : AnnotatedData
    init_checkpoint : dict or None
        The loaded ``init`` checkpoint.
    source : str
        Where it came from, for messages ("" without ``init``).

    Raises
    ------
    ValueError
        No annotations, one class only (new model), unknown values (fine-tuning), bad shapes or dtypes.
    """
    images, raw_labels, found = collect_annotations(image, labels, dense)
    init_ckpt, source = (None, "") if init is None else load_init(init)
    if init_ckpt is not None:
        label_values = finetune_values([int(v) for v in init_ckpt["label_values"]], found, source)
    else:
        label_values = found
        _require_two_classes(label_values, dense)
    classes = {z: to_classes(lab, label_values, dense) for z, lab in raw_labels.items()}
    first = next(iter(images.values()))
    data = AnnotatedData(
        images=images,
        classes=classes,
        label_values=label_values,
        shape_yx=tuple(first.shape[-2:]),
        in_channels=int(first.shape[0]),
    )
    return data, init_ckpt, source


def image_plane(image: Any, z: int, labels_ndim: int) -> np.ndarray:
    """Slice ``z`` of ``image`` as ``(C, Y, X)`` (what :class:`AnnotatedData` holds), for 2D or 3D labels."""
    plane = np.asarray(image if labels_ndim == 2 else image[z])
    return plane if plane.ndim == 3 else plane[None]


def image_normalization(image: Any, in_channels: int) -> dict:
    """The normalisation of the whole image (what prediction will see), per channel for multi-channel images."""
    if in_channels == 1:
        return normalization_from_image(image)
    per_channel = [
        normalization_from_image(image[..., c, :, :] if np.ndim(image) > 3 else image[c])
        for c in range(in_channels)
    ]
    normalization = dict(per_channel[0])
    normalization["low"] = [n["low"] for n in per_channel]
    normalization["high"] = [n["high"] for n in per_channel]
    return normalization
