"""Corrections that count: find the strokes a model being fine-tuned gets wrong, so training can focus on them.

When a user paints over a model's mistakes and trains again, the new strokes are, by construction, where the
starting model disagrees with the annotation. Finding them needs no bookkeeping of which stroke is new: predict the
annotated pixels once with the starting model (the crops around the strokes, exactly as ``predict_stack`` would)
and keep those it gets wrong. The sampler then centres a share of its patches on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..generators import drain
from ..model import UNet
from ..predict import make_predictor
from ._data import AnnotatedData
from ._validate import crop_around, predict_box

__all__ = ["disagreement"]


def disagreement(
    model: UNet,
    device: torch.device,
    data: AnnotatedData,
    slices: Sequence[int],
    normalization: dict,
    *,
    amp: bool,
) -> np.ndarray:
    """``(n, 3)`` int32 ``(z, y, x)`` of the annotated pixels on ``slices`` that ``model`` predicts as another class.

    ``model`` predicts class indices in the order of ``data.label_values`` (a fine-tuned model keeps its classes).
    """
    was_training = model.training
    model.eval()
    predict = make_predictor(model, device, probabilities=False, tta=False, amp=amp)
    found = []
    try:
        for z in slices:
            target = data.classes[z]
            crops = crop_around(target, model)
            if crops is None:
                continue
            (cy, cx), (iy, ix) = crops
            pred = drain(predict_box(model, predict, data.images[z], (cy, cx), (iy, ix), normalization))
            box = target[cy, cx][iy, ix]
            ys, xs = np.nonzero((box >= 0) & (pred != box))
            oy, ox = cy.start + iy.start, cx.start + ix.start
            found.append(np.stack([np.full(ys.shape, z), ys + oy, xs + ox], 1).astype(np.int32))
    finally:
        model.train(was_training)
    return np.concatenate(found) if found else np.zeros((0, 3), np.int32)
