"""Validation during training: predict the held-out pixels exactly as ``predict_stack`` would, score Dice / IoU."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import numpy as np
import torch

from ..metrics import confusion_matrix, scores_from_confusion
from ..model import UNet
from ..normalize import apply_normalization
from ..predict import make_predictor, tile_geometry
from ..tiling import iter_tiled_predict
from ._data import IGNORE, AnnotatedData
from ._split import Split

__all__ = ["Validator", "crop_around", "predict_box", "validation_tile"]

_VAL_MAX_PIXELS = 4_000_000  # validation predicts at most this many pixels (slices are subsampled beyond)


def validation_tile(model: UNet, side: int, cap: int = 1024) -> int:
    """Validation tile: large enough to cover a crop in one or few tiles, at most ``cap`` pixels."""
    want = min(side + 2 * model.halo, max(cap, 2 * model.halo + 2 * model.align))
    want = max(want, 2 * model.halo + model.align)
    return model.valid_input_size(want, "up")


def crop_around(target: np.ndarray, model: UNet) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """The image crop to predict for the annotated pixels of ``target`` and, inside it, their bounding box.

    The bounding box of the held-out annotations plus real image context, not the whole slice: cheap for
    scribbles, identical to whole-slice prediction inside the box. Crop origins on multiples of ``align`` keep the
    pooling phase of a whole-slice prediction, so the scores are those of what predict_stack would produce, not
    merely close to them; the margin covers the network's full reach (up to halo + align - 1 in valid mode).
    """
    ys, xs = np.nonzero(target >= 0)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ny, nx = target.shape
    a = model.align
    m = model.halo + a
    cy0, cy1 = max(0, (y0 - m) // a * a), min(ny, y1 + m)
    cx0, cx1 = max(0, (x0 - m) // a * a), min(nx, x1 + m)
    return (slice(cy0, cy1), slice(cx0, cx1)), (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))


def _scores(cm: np.ndarray, label_values: list[int]) -> dict:
    k = len(label_values)
    scores = scores_from_confusion(cm, list(range(k)))
    n = int(cm[:k, :k].sum())
    present = [ci for ci in range(k) if scores[ci]["support"] > 0]
    dices = [scores[ci]["dice"] for ci in present]
    ious = [scores[ci]["iou"] for ci in present]
    return {
        "mean_dice": float(np.nanmean(dices)) if dices else math.nan,
        "mean_iou": float(np.nanmean(ious)) if ious else math.nan,
        "accuracy": float(np.trace(cm[:k, :k]) / n) if n else math.nan,
        "n_pixels": n,
        "per_class": {
            int(label_values[ci]): {"dice": scores[ci]["dice"], "iou": scores[ci]["iou"]} for ci in range(k)
        },
    }


def predict_box(
    model: UNet,
    predict: Callable[[np.ndarray], np.ndarray],
    plane: np.ndarray,
    crop: tuple[slice, slice],
    inner: tuple[slice, slice],
    normalization: dict,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Class indices (int64) of the box ``inner`` of ``crop`` of a ``(C, Y, X)`` plane, predicted as predict_stack
    would; yields the tiler's (done, total)."""
    img = apply_normalization(plane[(slice(None), *crop)], normalization)
    tile = validation_tile(model, max(img.shape[-2:]))
    pred = yield from iter_tiled_predict(
        img, predict, tile=tile, batch_size=1, n_out=1, **tile_geometry(model)
    )
    return pred[0][inner].astype(np.int64)


class Validator:
    """Predicts the held-out pixels with the overlap-tile tiler and scores per-class Dice / IoU."""

    def __init__(self, data: AnnotatedData, split: Split, normalization: dict, model: UNet) -> None:
        self.items: list[tuple[int, tuple[slice, slice], tuple[slice, slice], np.ndarray]] = []
        self.k = len(data.label_values)
        pixels = 0
        for z in split.val_slices:
            target = data.classes[z]
            if split.val_masks is not None:
                target = np.where(split.val_masks[z], target, IGNORE).astype(np.int16)
            crops = crop_around(target, model)
            if crops is None:
                continue
            crop, inner = crops
            box = target[crop][inner]
            self.items.append((z, crop, inner, box))
            pixels += (crop[0].stop - crop[0].start) * (crop[1].stop - crop[1].start)
        if pixels > _VAL_MAX_PIXELS and len(self.items) > 1:
            keep = max(1, int(len(self.items) * _VAL_MAX_PIXELS / pixels))
            pick = np.linspace(0, len(self.items) - 1, keep).round().astype(int)
            self.items = [self.items[i] for i in sorted(set(pick.tolist()))]
        self.data = data
        self.normalization = normalization
        self.label_values = data.label_values
        self.kind, self.label = split.kind, split.label

    def __bool__(self) -> bool:
        return bool(self.items)

    def run(self, model: UNet, device: torch.device, amp: bool) -> Generator[tuple[int, int], None, dict]:
        """Yields (tiles done, tiles total) over all held-out crops; returns the score dict.

        Besides the scores (``mean_dice``, ``mean_iou``, ``accuracy``, ``n_pixels``, ``per_class``) it holds what
        they were measured on: ``kind`` (``"held-out slices"``, ``"held-out strokes"`` or ``"held-out stripe"``)
        and ``label`` (the same with its numbers, e.g. ``"held-out slices 8-9"``).

        The forward pass is :func:`napari_unet.predict.make_predictor`'s, so validation scores what
        ``predict_stack`` would segment (same layout, same autocast, same argmax).
        """
        was_training = model.training
        model.eval()
        k = self.k
        cm = np.zeros((k + 1, k + 1), dtype=np.int64)
        predict = make_predictor(model, device, probabilities=False, tta=False, amp=amp)
        try:
            for z, crop, inner, target in self.items:
                plane = self.data.images[z]
                pred = yield from predict_box(model, predict, plane, crop, inner, self.normalization)
                cm += confusion_matrix(pred, target.astype(np.int64), list(range(k)), mask=target >= 0)
        finally:
            model.train(was_training)
        return {**_scores(cm, self.label_values), "kind": self.kind, "label": self.label}
