"""Linking 2D objects of neighbouring sections into 3D objects by overlap (serial-section / anisotropic stacks)."""

from __future__ import annotations

import numpy as np

__all__ = ["IdCounter", "link_to_previous"]


class IdCounter:
    """Hands out stack-wide unique ids (uint32), one block per slice, so slices can be labelled one at a time.

    Parameters
    ----------
    start : int
        The last id already used (0: the first id handed out is 1).
    """

    def __init__(self, start: int = 0) -> None:
        self.last = int(start)

    def take(self, n: int) -> int:
        """Reserve ``n`` new ids; returns the first (the ids are ``first .. first + n - 1``).

        Raises
        ------
        OverflowError
            When the ids would no longer fit in uint32.
        """
        first = self.last + 1
        if self.last + n > np.iinfo(np.uint32).max:
            raise OverflowError(f"more than {np.iinfo(np.uint32).max} objects: ids no longer fit in uint32")
        self.last += int(n)
        return first


def _overlaps(current: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (current label, previous id, overlapping pixels) of the objects that overlap."""
    both = (current > 0) & (previous > 0)
    pairs = np.stack([current[both].astype(np.int64), previous[both].astype(np.int64)])
    if pairs.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    unique, counts = np.unique(pairs, axis=1, return_counts=True)
    return unique[0], unique[1], counts


def link_to_previous(
    current: np.ndarray, previous: np.ndarray | None, counter: IdCounter, *, min_iou: float = 0.3
) -> np.ndarray:
    """Give the objects of one slice stack-wide ids, continuing those of the previous slice they overlap.

    Matching is one-to-one and greedy by IoU: the pair with the largest IoU is linked first, and a pair is
    linked only when its IoU reaches ``min_iou``. Objects left unmatched get new ids from ``counter``.

    Parameters
    ----------
    current : (Y, X) int array
        Objects of this slice, labelled 1..n (0 = background).
    previous : (Y, X) uint32 array or None
        The previous slice with its final ids (None: first slice, or linking off).
    counter : IdCounter
        Where new ids come from.
    min_iou : float
        Smallest IoU that continues an object across the two sections.

    Returns
    -------
    (Y, X) uint32 array
        This slice with its final ids.
    """
    n = int(current.max()) if current.size else 0
    mapping = np.zeros(n + 1, np.uint32)
    if n == 0:
        return np.zeros(current.shape, np.uint32)
    linked = np.zeros(n + 1, bool)
    if previous is not None:
        cur, prev, inter = _overlaps(current, previous)
        if len(cur):
            size_cur = np.bincount(current.ravel(), minlength=n + 1)
            prev_ids, prev_sizes = np.unique(previous[previous > 0], return_counts=True)
            size_prev = prev_sizes[np.searchsorted(prev_ids, prev)]
            iou = inter / (size_cur[cur] + size_prev - inter)
            taken: set[int] = set()
            for k in np.argsort(-iou, kind="stable"):
                if iou[k] < min_iou:
                    break
                if linked[cur[k]] or int(prev[k]) in taken:
                    continue
                mapping[cur[k]] = prev[k]
                linked[cur[k]] = True
                taken.add(int(prev[k]))
    fresh = np.flatnonzero(~linked[1:]) + 1
    if len(fresh):
        first = counter.take(len(fresh))
        mapping[fresh] = np.arange(first, first + len(fresh), dtype=np.uint32)
    return mapping[current]
