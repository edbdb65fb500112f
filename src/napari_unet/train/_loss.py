"""The training objective: class weights from annotation counts and the segmentation loss (torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._data import IGNORE

__all__ = ["class_weights", "segmentation_loss"]


def class_weights(counts: Sequence[int], *, power: float = 0.5, max_ratio: float = 10.0) -> np.ndarray:
    """Cross-entropy class weights from annotated pixel counts.

    Parameters
    ----------
    counts : sequence of int
        Annotated pixels per class.
    power : float
        ``weight = frequency ** -power``: 1 is inverse frequency, 0.5 its square root (milder), 0 uniform.
    max_ratio : float
        Largest allowed ratio between two weights; smaller weights are raised to ``max / max_ratio``.

    Returns
    -------
    (K,) float32
        Scaled so that the average weight per annotated pixel is 1. Classes without pixels get weight 0.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no annotated pixels to compute class weights from")
    freq = counts / total
    w = np.zeros_like(freq)
    present = counts > 0
    w[present] = freq[present] ** -power
    w[present] = np.maximum(w[present], w[present].max() / max_ratio)
    w /= (w * freq).sum()
    return w.astype(np.float32)


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    dice_weight: float = 1.0,
    entropy_weight: float = 0.0,
    eps: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy (ignoring ``target == -1``) plus soft Dice over the annotated pixels.

    Parameters
    ----------
    logits : (N, K, H, W) tensor
    target : (N, H, W) integer tensor
        Class indices ``0..K-1``, or -1 for pixels that do not count.
    weight : (K,) tensor, optional
        Cross-entropy class weights.
    dice_weight : float
        Weight of ``1 - mean Dice``; the Dice is computed over the whole batch, for the classes annotated in it.
    entropy_weight : float
        Weight of the mean prediction entropy over the pixels that are *not* annotated (entropy minimisation,
        Grandvalet & Bengio 2005): it pulls class boundaries in the unpainted gaps onto the image's own edges.
    eps : float
        Smoothing of the Dice ratio.

    Returns
    -------
    Scalar tensor. Zero (with a gradient) when no pixel is annotated.
    """
    target = target.long()
    valid = target >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logp = torch.log_softmax(logits.float(), dim=1)  # one softmax serves all three terms
    ce = F.nll_loss(logp, target, weight=weight, ignore_index=IGNORE)
    probs = logp.exp()
    if entropy_weight > 0 and not bool(valid.all()):
        entropy = -(probs * logp).sum(1)
        ce = ce + entropy_weight * entropy[~valid].mean()
    if dice_weight <= 0:
        return ce
    k = logits.shape[1]
    mask = valid.unsqueeze(1).to(probs.dtype)
    onehot = F.one_hot(target.clamp(min=0), k).permute(0, 3, 1, 2).to(probs.dtype) * mask
    probs = probs * mask
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    support = onehot.sum(dims)
    denom = probs.sum(dims) + support
    dice = (2 * inter + eps) / (denom + eps)
    present = support > 0
    return ce + dice_weight * (1.0 - dice[present].mean())
