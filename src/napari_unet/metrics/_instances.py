"""Instance metrics: objects of one class, their matching, and the foreground-restricted Rand error and VOI; see
:mod:`napari_unet.metrics`."""

from __future__ import annotations

import math

import numpy as np

from ._semantic import _check_same_shape, _fmt, _slices

__all__ = ["evaluate_instances", "format_instance_metrics", "instances_of", "match_objects"]


def instances_of(labels, value: int, *, per_slice: bool = True, connectivity: int = 1) -> np.ndarray:
    """Objects of one class as connected components of ``labels == value`` (the plain, watershed-free way).

    Parameters
    ----------
    labels : (..., Y, X) integer array
        Semantic labels, e.g. ISBI's 0 = membrane / 255 = cell.
    value : int
        The object class.
    per_slice : bool
        2D components slice by slice (ids unique over the stack) or 3D components of a ``(Z, Y, X)`` stack.
    connectivity : int
        1 (faces) or up to ``ndim`` (corners).

    Returns
    -------
    uint32 array of ``labels``' shape, 0 = not the class.
    """
    from skimage.measure import label

    labels = np.asarray(labels)
    if not per_slice or labels.ndim == 2:
        return label(labels == value, connectivity=min(connectivity, labels.ndim)).astype(np.uint32)
    out = np.zeros(labels.shape, np.uint32)
    offset = 0
    for idx in np.ndindex(*labels.shape[:-2]):
        plane = label(labels[idx] == value, connectivity=min(connectivity, 2)).astype(np.uint32)
        out[idx] = np.where(plane > 0, plane + offset, 0)
        offset += int(plane.max())
    return out


def _pair_counts(pred: np.ndarray, gt: np.ndarray):
    """Overlapping (gt id, pred id, pixels) pairs and each object's size, without dense tables."""
    g = np.asarray(gt).astype(np.int64, copy=False).ravel()
    p = np.asarray(pred).astype(np.int64, copy=False).ravel()
    both = (g > 0) & (p > 0)
    pairs, inter = np.unique(np.stack([g[both], p[both]]), axis=1, return_counts=True)
    g_ids, g_sizes = np.unique(g[g > 0], return_counts=True)
    p_ids, p_sizes = np.unique(p[p > 0], return_counts=True)
    return pairs, inter, (g_ids, g_sizes), (p_ids, p_sizes)


def match_objects(pred, gt, *, iou_threshold: float = 0.5) -> dict:
    """Match predicted to true objects one to one by IoU.

    Parameters
    ----------
    pred, gt : integer arrays of equal shape
        Instance ids (0 = background), compared as they are (2D or 3D objects).
    iou_threshold : float
        Smallest IoU of a match (0.5: each object has at most one partner, the usual object F1).

    Returns
    -------
    dict
        ``n_true``, ``n_pred``, ``n_matched``, ``precision``, ``recall``, ``f1`` (``nan`` without objects on a
        side), ``mean_matched_iou`` (``nan`` without a match) and ``matched_ious`` (list of floats).
    """
    _check_same_shape(pred, gt)
    pairs, inter, (g_ids, g_sizes), (p_ids, p_sizes) = _pair_counts(pred, gt)
    ious = np.zeros(0)
    if pairs.size:
        gs = g_sizes[np.searchsorted(g_ids, pairs[0])]
        ps = p_sizes[np.searchsorted(p_ids, pairs[1])]
        ious = inter / (gs + ps - inter)
    used_g: set[int] = set()
    used_p: set[int] = set()
    matched: list[float] = []
    for k in np.argsort(-ious, kind="stable"):
        if ious[k] < iou_threshold:
            break
        g, p = int(pairs[0, k]), int(pairs[1, k])
        if g in used_g or p in used_p:
            continue
        used_g.add(g)
        used_p.add(p)
        matched.append(float(ious[k]))
    return _matching_scores(len(g_ids), len(p_ids), matched)


def _matching_scores(n_true: int, n_pred: int, matched: list[float]) -> dict:
    tp = len(matched)
    precision = tp / n_pred if n_pred else math.nan
    recall = tp / n_true if n_true else math.nan
    f1 = 2 * tp / (n_true + n_pred) if n_true + n_pred else math.nan
    return {
        "n_true": n_true,
        "n_pred": n_pred,
        "n_matched": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mean_matched_iou": float(np.mean(matched)) if matched else math.nan,
        "matched_ious": matched,
    }


def _rand_voi(pred: np.ndarray, gt: np.ndarray, thin_borders: bool) -> tuple[float, ...] | None:
    """Adapted Rand error, merge, split and VOI split, merge of one image, on the truth's foreground."""
    from skimage.metrics import adapted_rand_error, variation_of_information
    from skimage.segmentation import expand_labels

    gt = np.asarray(gt)
    if not (gt > 0).any():
        return None
    pred = np.asarray(pred).astype(np.int64, copy=False)
    if thin_borders and pred.max() > 0 and (pred == 0).any():
        pred = expand_labels(pred, distance=float(sum(pred.shape)))
    gt = gt.astype(np.int64, copy=False)
    err, prec, rec = adapted_rand_error(gt, pred, ignore_labels=(0,))
    split, merge = variation_of_information(gt, pred, ignore_labels=(0,))
    return float(err), float(rec), float(prec), float(split), float(merge)


def evaluate_instances(
    pred, gt, *, per_slice: bool = True, thin_borders: bool = True, iou_threshold: float = 0.5
) -> dict:
    """Instance metrics of predicted objects against true objects (see the module docstring).

    Parameters
    ----------
    pred, gt : (..., Y, X) integer arrays of equal shape
        Instance ids, 0 = background (truth 0 is not scored by Rand / VOI). :func:`instances_of` makes them from
        semantic labels.
    per_slice : bool
        Score each 2D slice on its own (serial sections, as ISBI: Rand / VOI are means over slices, objects are
        the per-slice cross-sections, matches are summed); False scores 3D objects of a ``(Z, Y, X)`` stack.
    thin_borders : bool
        Hand predicted 0 pixels to the nearest predicted object before Rand / VOI.
    iou_threshold : float
        IoU of an object match.

    Returns
    -------
    dict
        ``adapted_rand``, ``rand_merge_score``, ``rand_split_score``, ``voi``, ``voi_split``, ``voi_merge``,
        the :func:`match_objects` keys, ``per_slice``, ``iou_threshold`` and ``restricted`` (the truth's
        foreground; always True).
    """
    _check_same_shape(pred, gt)
    if per_slice and pred.ndim > 2:
        planes = list(zip(_slices(pred), _slices(gt), strict=True))
    else:
        planes = [(np.asarray(pred), np.asarray(gt))]
    scores = [r for r in (_rand_voi(p, g, thin_borders) for p, g in planes) if r is not None]
    n_true = n_pred = 0
    matched: list[float] = []
    for p, g in planes:
        m = match_objects(p, g, iou_threshold=iou_threshold)
        n_true, n_pred = n_true + m["n_true"], n_pred + m["n_pred"]
        matched += m["matched_ious"]
    means = np.mean(np.asarray(scores), axis=0) if scores else [math.nan] * 5
    err, merge, split, voi_split, voi_merge = (float(v) for v in means)
    return {
        "adapted_rand": err,
        "rand_merge_score": merge,
        "rand_split_score": split,
        "voi": voi_split + voi_merge,
        "voi_split": voi_split,
        "voi_merge": voi_merge,
        **_matching_scores(n_true, n_pred, matched),
        "per_slice": bool(per_slice and pred.ndim > 2),
        "iou_threshold": iou_threshold,
        "restricted": True,
    }


def format_instance_metrics(metrics: dict) -> str:
    """Plain-text lines of an :func:`evaluate_instances` result, saying what they are restricted to."""
    how = "2D objects slice by slice" if metrics.get("per_slice") else "3D objects"
    lines = [
        f"objects ({how}); Rand and VOI restricted to the ground truth's foreground (truth 0 not scored)",
        f"  {'adapted Rand error':<24}{_fmt(metrics.get('adapted_rand'))}",
        f"  {'  merge score':<24}{_fmt(metrics.get('rand_merge_score'))}  (1 = no false merges)",
        f"  {'  split score':<24}{_fmt(metrics.get('rand_split_score'))}  (1 = no false splits)",
        f"  {'VOI (bits)':<24}{_fmt(metrics.get('voi'))}",
        f"  {'  split':<24}{_fmt(metrics.get('voi_split'))}  (over-segmentation)",
        f"  {'  merge':<24}{_fmt(metrics.get('voi_merge'))}  (under-segmentation)",
        f"  {'objects true / pred':<24}{metrics.get('n_true')} / {metrics.get('n_pred')}, "
        f"{metrics.get('n_matched')} matched at IoU >= {metrics.get('iou_threshold', 0.5):g}",
        f"  {'precision':<24}{_fmt(metrics.get('precision'))}",
        f"  {'recall':<24}{_fmt(metrics.get('recall'))}",
        f"  {'F1':<24}{_fmt(metrics.get('f1'))}",
        f"  {'mean matched IoU':<24}{_fmt(metrics.get('mean_matched_iou'))}",
    ]
    return "\n".join(lines)
