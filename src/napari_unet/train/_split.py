"""Holding out validation data: whole slices, whole strokes behind a guard band, or a stripe of the annotations
behind a guard band (numpy).

What is held out decides what the validation Dice means, so :class:`Split` names it (``kind``, ``label``): scores
on held-out slices estimate what the model does on unpainted slices; scores on held-out strokes of the painted
slice(s), kept ``TrainConfig.val_guard`` pixels away from every training pixel, are the next best thing when a
single slice is painted (they still read higher than on unpainted slices: strokes avoid the hard pixels at class
boundaries).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import TrainConfig
from ._data import IGNORE, AnnotatedData, class_counts
from ._holdout import hold_out_strokes

__all__ = [
    "AUTO_VAL_FRACTION",
    "Split",
    "contiguous_text",
    "split_annotations",
    "stripe_region",
    "training_view",
]

AUTO_VAL_FRACTION = 0.2  # share of the annotated slices (or strokes) held out when val_fraction is None

KIND_SLICES = "held-out slices"
KIND_STROKES = "held-out strokes"
KIND_STRIPE = "held-out stripe"


@dataclass
class Split:
    """Which annotated pixels train and which validate.

    Attributes
    ----------
    train_slices, val_slices : list of int
        Annotated slices that train / validate (a slice can be in both when part of it is held out).
    val_masks : dict of int -> (Y, X) bool, or None
        The held-out pixels of each validation slice; None: every annotated pixel of ``val_slices``.
    excluded : dict of int -> (Y, X) bool, or None
        Pixels of training slices whose labels training never sees (held-out pixels and their guard band).
    description : str
        The split in words (the setup line and the checkpoint's ``extra["validation"]``).
    kind : str
        What the validation Dice is measured on: ``"held-out slices"``, ``"held-out strokes"``,
        ``"held-out stripe"``; ``""`` without validation.
    label : str
        ``kind`` with its numbers, e.g. ``"held-out slices 8-9"`` or ``"held-out strokes (9 of 68, 12 % of the
        painted pixels, 16 px guard)"``.
    """

    train_slices: list[int]
    val_slices: list[int]
    val_masks: dict[int, np.ndarray] | None = None
    excluded: dict[int, np.ndarray] | None = None
    description: str = ""
    kind: str = ""
    label: str = ""


def _widen(sel: np.ndarray, guard: int) -> np.ndarray:
    """A 1-D run of True grown by ``guard`` positions on both sides."""
    idx = np.flatnonzero(sel)
    out = np.zeros_like(sel)
    out[max(0, idx[0] - guard) : idx[-1] + 1 + guard] = True
    return out


def stripe_region(
    classes: dict[int, np.ndarray], slices: Sequence[int], k: int, fraction: float, guard: int = 0
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """A (Y, X) stripe at one side of the annotations holding ~``fraction`` of them, keeping all classes in training.

    Candidates: the far end of the longer axis first, then its near end, then both ends of the other axis. The
    first candidate that leaves every class in the training part - outside the stripe grown by ``guard`` pixels -
    wins; one that also has every class in the validation part is preferred.

    Returns
    -------
    (region, withheld, description) or None
        The stripe, the stripe with its guard band (both (Y, X) bool), and the stripe in words.
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
            wide = _widen(sel, guard)
            val_counts = hist[:, sel].sum(axis=1)
            train_counts = hist[:, ~wide].sum(axis=1)
            if (train_counts > 0).sum() < (hist.sum(axis=1) > 0).sum() or val_counts.sum() == 0:
                continue
            region = np.zeros((ny, nx), dtype=bool)
            withheld = np.zeros((ny, nx), dtype=bool)
            if axis == 0:
                region[sel, :] = True
                withheld[wide, :] = True
            else:
                region[:, sel] = True
                withheld[:, wide] = True
            side = {(0, True): "bottom", (0, False): "top", (1, True): "right", (1, False): "left"}[
                (axis, end)
            ]
            coord = "yx"[axis]
            bound = f"{coord} >= {length - cut}" if end else f"{coord} < {cut}"
            desc = f"the {side} part ({bound}, {100 * val_counts.sum() / n:.0f} % of the annotations)"
            if (val_counts > 0).sum() == (hist.sum(axis=1) > 0).sum():
                return region, withheld, desc
            fallback = fallback or (region, withheld, desc)
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


def _slice_split(train: list[int], val: list[int]) -> Split:
    text = contiguous_text(val)
    return Split(
        train,
        val,
        description=f"validating on slices {text}",
        kind=KIND_SLICES,
        label=f"{KIND_SLICES} {text}",
    )


def _no_validation(annotated: list[int], why: str) -> Split:
    return Split(annotated, [], description=f"no validation: {why}")


def _validated_classes(classes: dict[int, np.ndarray], masks: dict[int, np.ndarray], k: int) -> int:
    seen = np.zeros(k, bool)
    for z, mask in masks.items():
        values = classes[z][mask]
        seen[values[values >= 0]] = True
    return int(seen.sum())


def _within_slices(
    classes: dict[int, np.ndarray], annotated: list[int], k: int, fraction: float, guard: int, seed: int
) -> Split:
    """No slice can be held out: hold out whole strokes, else a stripe; each behind a guard band.

    Strokes win unless a stripe validates more classes (one connected stroke per class, or dense labels where a
    class such as the membrane network is a single component)."""
    present = int((class_counts(classes, k, annotated) > 0).sum())
    strokes = hold_out_strokes(classes, annotated, k, fraction, guard, seed)
    n_strokes = 0 if isinstance(strokes, str) else _validated_classes(classes, strokes.val, k)
    if n_strokes < present:
        stripe = stripe_region(classes, annotated, k, fraction, guard)
        if stripe is not None:
            region, withheld, desc = stripe
            masks = {z: region for z in annotated}
            if _validated_classes(classes, masks, k) > n_strokes:
                where = "the annotated slice" if len(annotated) == 1 else "each annotated slice"
                return Split(
                    annotated,
                    annotated,
                    val_masks=masks,
                    excluded={z: withheld for z in annotated},
                    description=(
                        f"validating on {desc} of {where}; the painted pixels within {guard} px of it do not "
                        "train"
                    ),
                    kind=KIND_STRIPE,
                    label=f"{KIND_STRIPE} ({desc.removeprefix('the ')}, {guard} px guard)",
                )
    if isinstance(strokes, str):
        return _no_validation(
            annotated,
            f"{strokes}; paint a few more separate strokes of each class (more than {2 * guard} px apart) or a "
            "second slice for a validation score",
        )
    return Split(
        annotated,
        sorted(strokes.val),
        val_masks=strokes.val,
        excluded=strokes.excluded,
        description=strokes.describe(),
        kind=KIND_STROKES,
        label=strokes.label,
    )


def split_annotations(classes: dict[int, np.ndarray], k: int, config: TrainConfig, nz: int) -> Split:
    """Hold out ``config.val_slices``, else the last (or first) share of the annotated slices that keeps every
    class in training, else whole strokes (or a stripe) of the annotated slices behind a guard band of
    ``config.val_guard`` pixels; ``val_fraction = 0`` holds out nothing."""
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
        return _slice_split(train, val)

    fraction = AUTO_VAL_FRACTION if config.val_fraction is None else config.val_fraction
    if fraction <= 0:
        return _no_validation(annotated, "val_fraction = 0")
    if len(annotated) >= 2:
        n_val = min(len(annotated) - 1, max(1, round(fraction * len(annotated))))
        for val in (annotated[-n_val:], annotated[:n_val]):
            train = [z for z in annotated if z not in val]
            if keeps_classes(train):
                return _slice_split(train, val)
    return _within_slices(classes, annotated, k, fraction, int(config.val_guard), int(config.seed))


def training_view(data: AnnotatedData, split: Split) -> AnnotatedData:
    """The data the sampler may draw from: held-out pixels and their guard band are masked on every training
    slice, so their annotations never reach the loss, not even through the mirrored border of a neighbouring
    patch."""
    if not split.excluded:
        return data
    classes = dict(data.classes)
    for z, mask in split.excluded.items():
        if z in classes:
            classes[z] = np.where(mask, IGNORE, data.classes[z]).astype(np.int16)
    return dataclasses.replace(data, classes=classes)
