"""Holding out whole strokes for validation, behind a guard band (numpy, scipy, scikit-image).

With a single painted slice there is no slice to hold out. Scoring held-out *pixels* of strokes that also train
says little: the neighbours of a held-out pixel, on the same stroke, were trained on, so the network only has to
repeat its answer a pixel over, and the score sits near its ceiling (0.99 against 0.96 on strokes of the
unpainted slices in ``benchmarks/val_honesty.py``) whatever the model does there.
Here a stroke - a connected component (8-connectivity) of one class's annotated pixels - is held out whole, and
every annotated pixel within ``guard`` pixels of it (on its slice, and on the annotated slices right above and
below) is withheld from training too: no training pixel lies within ``guard`` pixels of a held-out one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = ["MIN_TRAIN_SHARE", "StrokeHoldout", "guard_band", "hold_out_strokes"]

MIN_TRAIN_SHARE = 0.5  # every class keeps at least this share of its annotated pixels for training


@dataclass(frozen=True)
class StrokeHoldout:
    """Strokes held out for validation and the pixels withheld from training.

    Attributes
    ----------
    val : dict of int -> (Y, X) bool
        The held-out annotated pixels of each slice that has some.
    excluded : dict of int -> (Y, X) bool
        Pixels whose labels training never sees (the held-out strokes and their guard band), per slice.
    n_strokes, n_held : int
        Strokes in all (over the slices and classes) and strokes held out.
    painted, held, withheld : (K,) int64
        Annotated pixels per class: all of them, held out, and withheld from training (held out + guard band).
    guard : int
        The guard band's width in pixels.
    """

    val: dict[int, np.ndarray]
    excluded: dict[int, np.ndarray]
    n_strokes: int
    n_held: int
    painted: np.ndarray
    held: np.ndarray
    withheld: np.ndarray
    guard: int

    @property
    def share(self) -> float:
        """Held-out share of the annotated pixels."""
        return float(self.held.sum() / max(1, self.painted.sum()))

    @property
    def label(self) -> str:
        """What the validation Dice is measured on, with its numbers."""
        return (
            f"held-out strokes ({self.n_held} of {self.n_strokes}, {100 * self.share:.0f} % of the painted "
            f"pixels, {self.guard} px guard)"
        )

    def describe(self) -> str:
        """The hold-out in words, for the setup line."""
        guard_only = int(self.withheld.sum() - self.held.sum())
        text = (
            f"validating on {self.n_held} held-out strokes of {self.n_strokes} ({100 * self.share:.0f} % of the "
            f"painted pixels); the {guard_only} other painted pixels within {self.guard} px of them do not train"
        )
        missing = np.flatnonzero((self.painted > 0) & (self.held == 0))
        if missing.size:
            text += (
                f"; class(es) {missing.tolist()} (0-based) are not validated (too few separate strokes to hold "
                "one out)"
            )
        return text


def guard_band(mask: np.ndarray, guard: int) -> np.ndarray:
    """``mask`` (bool, any shape) grown by ``guard`` pixels: what lies within that Euclidean distance of it."""
    if guard <= 0:
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= guard


class _Stroke(NamedTuple):
    z: int
    cls: int
    size: int
    box: tuple[slice, slice]  # bounding box in the slice
    mask: np.ndarray  # (box) bool: the stroke's pixels


def _strokes(z: int, plane: np.ndarray) -> list[_Stroke]:
    """The strokes of one (Y, X) class-index plane (IGNORE = -1), each with its mask inside its bounding box
    (the slice's label map is not kept: on a big stack the strokes take far less memory than the planes)."""
    from skimage.measure import label

    # label() joins neighbouring pixels of equal value, so one call separates the strokes of every class.
    lab = label(plane.astype(np.int32) + 1, background=0, connectivity=2)
    n = int(lab.max())
    cls = np.full(n + 1, -1, np.int64)
    cls[lab.ravel()] = plane.ravel()
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    boxes = ndimage.find_objects(lab)
    return [
        _Stroke(z, int(cls[i]), int(sizes[i]), boxes[i - 1], lab[boxes[i - 1]] == i) for i in range(1, n + 1)
    ]


def _window(stroke: _Stroke, margin: int, shape: tuple[int, ...]) -> tuple[tuple[slice, slice], np.ndarray]:
    """The stroke's bounding box grown by ``margin`` (inside the slice) and the stroke's mask in it."""
    window = tuple(
        slice(max(0, s.start - margin), min(n, s.stop + margin))
        for s, n in zip(stroke.box, shape, strict=True)
    )
    mask = np.zeros([w.stop - w.start for w in window], bool)
    mask[
        tuple(slice(s.start - w.start, s.stop - w.start) for s, w in zip(stroke.box, window, strict=True))
    ] = stroke.mask
    return window, mask


def hold_out_strokes(
    classes: dict[int, np.ndarray],
    slices: Sequence[int],
    k: int,
    fraction: float,
    guard: int,
    seed: int,
) -> StrokeHoldout | str:
    """Hold out about ``fraction`` of each class's painted pixels as whole strokes, each with a guard band.

    Strokes are visited in an order drawn from ``seed``; a stroke is taken when it brings its class's held-out
    share closer to ``fraction``, unless its class has a single stroke or the pixels it and its guard band withhold
    would leave some class with less than :data:`MIN_TRAIN_SHARE` of its pixels for training.

    Parameters
    ----------
    classes : dict of int -> (Y, X) int16
        Class indices per annotated slice, -1 where not annotated.
    slices : sequence of int
        The slices to draw strokes from (all of them train, apart from what is withheld).
    k : int
        Number of classes.
    fraction : float
        Wanted held-out share of each class's annotated pixels, in (0, 1).
    guard : int
        Width in pixels of the band around a held-out stroke whose annotated pixels do not train.
    seed : int
        Seeds the order in which strokes are considered: same annotations + seed = same hold-out.

    Returns
    -------
    StrokeHoldout, or str
        The hold-out, or why there is none (in words).
    """
    slices = sorted(slices)
    painted_slices = set(slices)
    strokes = [stroke for z in slices for stroke in _strokes(z, classes[z])]
    n_strokes = np.bincount([st.cls for st in strokes], minlength=k) if strokes else np.zeros(k, np.int64)
    painted = np.zeros(k, np.int64)
    for z in slices:
        plane = classes[z]
        painted += np.bincount(plane[plane >= 0], minlength=k)[:k]
    present = painted > 0
    if not (n_strokes >= 2).any():
        return "every class is painted as a single connected stroke, so none can be held out"
    # planes are allocated on first use: a big stack with a stroke or two held out keeps a plane or three
    held: dict[int, np.ndarray] = {}
    excluded: dict[int, np.ndarray] = {}
    held_px = np.zeros(k, np.int64)
    withheld = np.zeros(k, np.int64)
    target = fraction * painted
    n_held = 0
    starved = False  # a stroke was passed over because training would keep too little
    for index in np.random.default_rng(seed).permutation(len(strokes)):
        stroke = strokes[index]
        z, c, shape = stroke.z, stroke.cls, classes[stroke.z].shape
        # taken only when it brings the class's held-out share closer to the target
        if n_strokes[c] < 2 or held_px[c] + stroke.size / 2 >= target[c]:
            continue
        window, mask = _window(stroke, guard + 1, shape)
        band = guard_band(mask, guard)
        near = [zz for zz in (z - 1, z, z + 1) if zz in painted_slices]
        lost = np.zeros(k, np.int64)
        for zz in near:
            plane = classes[zz][window]
            take = band & (plane >= 0)
            if zz in excluded:
                take &= ~excluded[zz][window]
            lost += np.bincount(plane[take], minlength=k)[:k]
        if ((painted - withheld - lost) < MIN_TRAIN_SHARE * painted)[present].any():
            starved = True
            continue
        held.setdefault(z, np.zeros(shape, bool))[window] |= mask
        for zz in near:
            excluded.setdefault(zz, np.zeros(shape, bool))[window] |= band
        held_px[c] += stroke.size
        withheld += lost
        n_held += 1
    if n_held == 0 and starved:
        return (
            f"holding out any stroke with its {guard} px guard band would leave a class with less than "
            f"{100 * MIN_TRAIN_SHARE:.0f} % of its painted pixels to train on"
        )
    if n_held == 0:
        return f"every stroke holds more than twice the share asked for ({100 * fraction:.0f} %) of its class"
    return StrokeHoldout(
        val=dict(sorted(held.items())),
        excluded=dict(sorted(excluded.items())),
        n_strokes=len(strokes),
        n_held=n_held,
        painted=painted,
        held=held_px,
        withheld=withheld,
        guard=int(guard),
    )
