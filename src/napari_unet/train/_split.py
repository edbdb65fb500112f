"""Holding out validation data: whole slices, or a stripe at one side of a single annotated slice (numpy)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import TrainConfig
from ._data import IGNORE, AnnotatedData, class_counts

__all__ = [
    "AUTO_VAL_FRACTION",
    "Split",
    "contiguous_text",
    "split_annotations",
    "stripe_region",
    "training_view",
]

AUTO_VAL_FRACTION = 0.2  # share of the annotated slices held out when val_fraction is None


@dataclass
class Split:
    """Which annotated pixels train and which validate."""

    train_slices: list[int]
    val_slices: list[int]
    val_region: np.ndarray | None = None  # (Y, X) bool: held-out stripe applied to every annotated slice
    description: str = ""


def stripe_region(
    classes: dict[int, np.ndarray], slices: Sequence[int], k: int, fraction: float
) -> tuple[np.ndarray, str] | None:
    """A (Y, X) stripe at one side of the annotations holding ~``fraction`` of them, keeping all classes in training.

    Candidates: the far end of the longer axis first, then its near end, then both ends of the other axis. The
    first candidate that leaves every class in the training part wins; one that also has every class in the
    validation part is preferred.
    """
    ny, nx = next(iter(classes.values())).shape
    per_axis = []
    for axis in (0, 1):
        hist = np.zeros((k, (ny, nx)[axis]), dtype=np.int64)
        for z in slices:
            c = classes[z]
            for ci in range(k):
                hist[ci] += (c == ci).sum(axis=1 - axis)
        per_axis.append(hist)
    axes = (1, 0) if nx >= ny else (0, 1)
    fallback = None
    for axis in axes:
        hist = per_axis[axis]
        total = hist.sum(axis=0)
        n = total.sum()
        for end in (True, False):
            cum = np.cumsum(total[::-1] if end else total)
            cut = int(np.searchsorted(cum, fraction * n))  # positions [0, cut] from that end hold >= fraction
            cut = min(cut + 1, hist.shape[1] - 1)
            length = hist.shape[1]
            sel = np.zeros(length, dtype=bool)
            if end:
                sel[length - cut :] = True
            else:
                sel[:cut] = True
            val_counts = hist[:, sel].sum(axis=1)
            train_counts = hist[:, ~sel].sum(axis=1)
            if (train_counts > 0).sum() < (hist.sum(axis=1) > 0).sum() or val_counts.sum() == 0:
                continue
            region = np.zeros((ny, nx), dtype=bool)
            if axis == 0:
                region[sel, :] = True
            else:
                region[:, sel] = True
            side = {(0, True): "bottom", (0, False): "top", (1, True): "right", (1, False): "left"}[
                (axis, end)
            ]
            coord = "yx"[axis]
            bound = f"{coord} >= {length - cut}" if end else f"{coord} < {cut}"
            desc = f"the {side} part ({bound}, {100 * val_counts.sum() / n:.0f} % of the annotations)"
            if (val_counts > 0).sum() == (hist.sum(axis=1) > 0).sum():
                return region, desc
            fallback = fallback or (region, desc)
    return fallback


def contiguous_text(slices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    slices = sorted(slices)
    if not slices:
        return "none"
    runs, start, prev = [], slices[0], slices[0]
    for z in slices[1:]:
        if z != prev + 1:
            runs.append((start, prev))
            start = z
        prev = z
    runs.append((start, prev))
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def split_annotations(classes: dict[int, np.ndarray], k: int, config: TrainConfig, nz: int) -> Split:
    """Hold out ``config.val_slices``, else the last (or first) share of the annotated slices that keeps every
    class in training, else a stripe of a single slice; sparse strokes on one slice hold out nothing by default."""
    annotated = sorted(classes)
    all_present = class_counts(classes, k, annotated) > 0

    def keeps_classes(train: Sequence[int]) -> bool:
        return bool(((class_counts(classes, k, train) > 0) == all_present).all())

    if config.val_slices is not None:
        start, stop = (int(v) for v in config.val_slices)
        if start >= nz:
            raise ValueError(f"val_slices {start}:{stop} lie outside the stack of {nz} slices")
        val = [z for z in annotated if start <= z < stop]
        train = [z for z in annotated if not start <= z < stop]
        if not val:
            raise ValueError(
                f"val_slices {start}:{stop} hold no annotated slice; annotated slices: {contiguous_text(annotated)}"
            )
        if not train:
            raise ValueError(
                f"val_slices {start}:{stop} hold every annotated slice, leaving nothing to train on; annotated "
                f"slices: {contiguous_text(annotated)}"
            )
        if not keeps_classes(train):
            missing = np.flatnonzero(all_present & (class_counts(classes, k, train) == 0))
            raise ValueError(
                f"with val_slices {start}:{stop} held out, class(es) {missing.tolist()} (0-based) would have no "
                "training annotation; paint them on a training slice or choose other validation slices"
            )
        return Split(train, val, None, f"validating on slices {contiguous_text(val)}")

    fraction = config.val_fraction
    if fraction is None:
        if len(annotated) < 2 and not config.dense:
            return Split(
                annotated,
                [],
                None,
                "no validation: a single annotated slice, all of its strokes train the model "
                "(hold out a share of them, or paint a second slice, for a validation curve)",
            )
        fraction = AUTO_VAL_FRACTION
    if fraction <= 0:
        return Split(annotated, [], None, "no validation (val_fraction = 0)")
    if len(annotated) >= 2:
        n_val = min(len(annotated) - 1, max(1, round(fraction * len(annotated))))
        for val in (annotated[-n_val:], annotated[:n_val]):
            train = [z for z in annotated if z not in val]
            if keeps_classes(train):
                return Split(train, val, None, f"validating on slices {contiguous_text(val)}")
    stripe = stripe_region(classes, annotated, k, fraction)
    if stripe is None:
        return Split(annotated, [], None, "no validation: too few annotations to hold some out")
    region, desc = stripe
    where = "the annotated slice" if len(annotated) == 1 else "each annotated slice"
    return Split(annotated, annotated, region, f"validating on {desc} of {where}")


def training_view(data: AnnotatedData, split: Split) -> AnnotatedData:
    """The data the sampler may draw from: a held-out stripe is masked on every training slice, so its annotations
    never reach the loss, not even through the mirrored border of a neighbouring patch."""
    if split.val_region is None:
        return data
    classes = dict(data.classes)
    for z in split.train_slices:
        classes[z] = np.where(split.val_region, data.classes[z], IGNORE).astype(np.int16)
    return dataclasses.replace(data, classes=classes)
