"""Training patches: class-balanced around annotated pixels, mirrored at borders as the tiler mirrors (numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..normalize import apply_normalization
from ..transforms import AugmentConfig, augment
from ._data import AnnotatedData

__all__ = ["PatchSampler", "reflect_index"]

_MAX_CENTRES_PER_CLASS = 2_000_000  # candidate patch centres kept per class (memory bound on dense stacks)


def reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices into an axis of length ``n`` for positions ``idx`` outside it, as ``np.pad(mode="reflect")``."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= n, period - idx, idx)


def _slice_centres(classes: np.ndarray, z: int, k: int) -> list[np.ndarray]:
    """``(n, 3)`` int32 ``(z, y, x)`` of the pixels of each class index ``0..k-1`` in one class-index plane."""
    out = []
    for ci in range(k):
        ys, xs = np.nonzero(classes == ci)
        out.append(np.stack([np.full(ys.shape, z, np.int32), ys.astype(np.int32), xs.astype(np.int32)], 1))
    return out


class PatchSampler:
    """Draws augmented training patches around annotated pixels, class-balanced."""

    def __init__(
        self,
        data: AnnotatedData,
        slices: Sequence[int],
        *,
        normalization: dict,
        in_size: int,
        shrink: int,
        margin: int,
        augment_config: AugmentConfig | None,
        rng: np.random.Generator,
        incremental: bool = False,
    ) -> None:
        self.data = data
        self.normalization = normalization
        self.in_size = in_size
        self.shrink = shrink
        self.margin = margin
        self.augment_config = augment_config
        self.rng = rng
        self.slices: list[int] = list(slices)
        self._pieces = {z: _slice_centres(data.classes[z], z, len(data.label_values)) for z in self.slices}
        self._gather()
        self.focus = np.zeros((0, 3), np.int32)
        self.focus_share = 0.0
        if not incremental:
            # Per-slice centres are only needed to re-index a slice (live training); a dense stack's are large.
            self._pieces = None

    def _gather(self) -> None:
        """Candidate centres per class over the training slices (in slice order), capped in number."""
        self.centres: list[np.ndarray] = []
        for ci in range(len(self.data.label_values)):
            chunks = [self._pieces[z][ci] for z in self.slices]
            cand = np.concatenate(chunks) if chunks else np.zeros((0, 3), np.int32)
            if len(cand) > _MAX_CENTRES_PER_CLASS:
                cand = cand[self.rng.choice(len(cand), _MAX_CENTRES_PER_CLASS, replace=False)]
            self.centres.append(cand)
        self.classes_with_pixels = [ci for ci in range(len(self.centres)) if len(self.centres[ci])]

    def set_focus(self, centres: np.ndarray, share: float) -> None:
        """Centre ``share`` of the patches on ``centres`` ((n, 3) ``z, y, x``), e.g. the strokes a model gets wrong."""
        self.focus = np.asarray(centres, np.int32).reshape(-1, 3)
        self.focus_share = float(share) if len(self.focus) else 0.0

    def draw_centre(self) -> tuple[int, int, int]:
        # The focus draw only happens when there is a focus, so runs without one keep their random sequence.
        if self.focus_share > 0 and self.rng.random() < self.focus_share:
            return tuple(int(v) for v in self.focus[int(self.rng.integers(len(self.focus)))])
        ci = self.classes_with_pixels[int(self.rng.integers(len(self.classes_with_pixels)))]
        return tuple(int(v) for v in self.centres[ci][int(self.rng.integers(len(self.centres[ci])))])

    def update_slice(self, z: int) -> None:
        """Slice ``z`` of ``data.classes`` changed (painted, erased, added or removed): re-index only that slice.

        Needs ``incremental=True`` at construction.
        """
        if self._pieces is None:
            raise RuntimeError("this sampler was built without incremental=True")
        if z in self.data.classes and (self.data.classes[z] >= 0).any():
            self._pieces[z] = _slice_centres(self.data.classes[z], z, len(self.data.label_values))
            if z not in self.slices:
                self.slices = sorted([*self.slices, z])
        elif z in self.slices:
            self.slices.remove(z)
            del self._pieces[z]
        self._gather()

    def _clamp(self, origin: int, n: int) -> int:
        """Keep an input window within ``margin`` (the model's halo) of the image, as prediction tiles are."""
        lo, hi = -self.margin, n + self.margin - self.in_size
        if hi < lo:  # image smaller than a patch: centre it, the mirror fills the rest
            return (n - self.in_size) // 2
        return min(max(origin, lo), hi)

    def _window(self, z: int, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
        """Input patch (C, P, P) normalised and labels (P, P) whose output crop is near (y, x), mirrored at borders."""
        p = self.in_size
        out = p - 2 * self.shrink
        ny, nx = self.data.shape_yx
        jitter = max(1, out // 4)
        oy = self._clamp(y - p // 2 + int(self.rng.integers(-jitter, jitter + 1)), ny)
        ox = self._clamp(x - p // 2 + int(self.rng.integers(-jitter, jitter + 1)), nx)
        iy = reflect_index(np.arange(oy, oy + p), ny)
        ix = reflect_index(np.arange(ox, ox + p), nx)
        img = self.data.images[z][:, iy[:, None], ix[None, :]]
        lab = self.data.classes[z][iy[:, None], ix[None, :]]
        return apply_normalization(img, self.normalization), lab

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch: images (n, C, P, P) float32 and targets (n, O, O) int64 (-1 = ignore)."""
        p, s = self.in_size, self.shrink
        images, targets = [], []
        for _ in range(n):
            for _attempt in range(10):
                img, lab = self._window(*self.draw_centre())
                if self.augment_config is not None:
                    img, lab = augment(img, lab, self.rng, self.augment_config)
                lab = lab[s : p - s, s : p - s]
                if (lab >= 0).any():
                    break
            images.append(img)
            targets.append(lab)
        return np.stack(images).astype(np.float32, copy=False), np.stack(targets).astype(np.int64)
