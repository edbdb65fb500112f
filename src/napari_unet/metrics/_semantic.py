"""Semantic (per-class) metrics: Dice/IoU, pixel error and the foreground-restricted adapted Rand error of the
cells between membranes; see :mod:`napari_unet.metrics`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "adapted_rand",
    "adapted_rand_parts",
    "confusion_matrix",
    "dice_iou",
    "evaluate",
    "format_metrics",
    "pixel_error",
    "scores_from_confusion",
]


def _slices(a: np.ndarray) -> Iterable[np.ndarray]:
    """Yield 2D planes of a (Y, X) or (..., Y, X) array-like, loading one at a time."""
    if a.ndim == 2:
        yield np.asarray(a)
        return
    flat_index = np.ndindex(*a.shape[:-2])
    for idx in flat_index:
        yield np.asarray(a[idx])


def _check_same_shape(pred, gt, mask=None) -> None:
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(
            f"prediction and ground truth shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}"
        )
    if mask is not None and tuple(mask.shape) != tuple(gt.shape):
        raise ValueError(f"mask and ground truth shapes differ: {tuple(mask.shape)} vs {tuple(gt.shape)}")
    if pred.ndim < 2:
        raise ValueError(f"expected images of at least 2 dimensions (Y, X), got shape {tuple(pred.shape)}")


def confusion_matrix(pred, gt, values: Sequence[int], *, mask=None) -> np.ndarray:
    """Pixel counts of (ground-truth class, predicted class) pairs.

    Parameters
    ----------
    pred, gt : (..., Y, X) integer arrays of equal shape (numpy, dask, zarr; read one slice at a time)
    values : sequence of int
        Label values; row/column ``i`` is ``values[i]``. Pixels with any other value fall in the last row/column.
    mask : (..., Y, X) bool array, optional
        Only pixels where ``mask`` is True are counted (e.g. the annotated pixels of sparse labels).

    Returns
    -------
    (K + 1, K + 1) int64 array
        ``cm[i, j]`` = pixels with ground truth ``values[i]`` predicted as ``values[j]``; index K = "other value".
    """
    _check_same_shape(pred, gt, mask)
    caller = np.asarray([int(v) for v in values], dtype=np.int64)
    if len(np.unique(caller)) != len(caller):
        raise ValueError(f"label values must be distinct, got {list(caller)}")
    order = np.argsort(caller)
    vals = caller[order]
    k = len(vals)
    # position in sorted order -> position in the caller's order; "other" stays last
    to_caller = np.append(order, k)
    cm = np.zeros((k + 1, k + 1), dtype=np.int64)
    masks = _slices(mask) if mask is not None else None
    for p, g in zip(_slices(pred), _slices(gt), strict=True):
        p = p.astype(np.int64, copy=False).ravel()
        g = g.astype(np.int64, copy=False).ravel()
        if masks is not None:
            m = np.asarray(next(masks), dtype=bool).ravel()
            p, g = p[m], g[m]
        gi = to_caller[_index(g, vals)]
        pi = to_caller[_index(p, vals)]
        cm += np.bincount(gi * (k + 1) + pi, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
    return cm


def _index(a: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Index of each element of ``a`` in ``sorted_values``, or ``len(sorted_values)`` when absent."""
    k = len(sorted_values)
    if k == 0:
        return np.zeros(a.shape, np.int64)
    idx = np.searchsorted(sorted_values, a)
    idx_clip = np.minimum(idx, k - 1)
    return np.where(sorted_values[idx_clip] == a, idx_clip, k)


def dice_iou(pred, gt, values: Sequence[int] | None = None, *, mask=None) -> dict[int, dict[str, float]]:
    """Dice and IoU (Jaccard) of each label value, treating each value as a binary mask.

    Parameters
    ----------
    pred, gt : (..., Y, X) integer arrays of equal shape
    values : sequence of int, optional
        Label values to score. Default: every value found in ``gt`` or ``pred`` (within ``mask``).
    mask : (..., Y, X) bool array, optional
        Score only these pixels (annotated pixels of sparse labels).

    Returns
    -------
    dict
        ``{value: {"dice", "iou", "support", "predicted"}}``; ``support`` / ``predicted`` are pixel counts of the
        value in ``gt`` / ``pred``. Dice and IoU are ``nan`` when the value is absent from both (no evidence
        either way), so means should be taken with :func:`numpy.nanmean`.
    """
    _check_same_shape(pred, gt, mask)
    if values is None:
        values = _values_present(pred, gt, mask)
    values = [int(v) for v in values]
    return scores_from_confusion(confusion_matrix(pred, gt, values, mask=mask), values)


def scores_from_confusion(cm: np.ndarray, values: Sequence[int]) -> dict[int, dict[str, float]]:
    """Per-class Dice / IoU from a confusion matrix (as :func:`confusion_matrix` returns, summed over slices).

    Parameters
    ----------
    cm : (K + 1, K + 1) or (K, K) int array
        ``cm[i, j]`` = pixels of ground-truth class ``i`` predicted as class ``j``.
    values : sequence of int
        The K label values, in the order of the rows.

    Returns
    -------
    dict
        As :func:`dice_iou`.
    """
    cm = np.asarray(cm)
    out: dict[int, dict[str, float]] = {}
    for i, v in enumerate(values):
        tp = float(cm[i, i])
        support = float(cm[i, :].sum())
        predicted = float(cm[:, i].sum())
        union = support + predicted - tp
        out[int(v)] = {
            "dice": 2 * tp / (support + predicted) if support + predicted > 0 else math.nan,
            "iou": tp / union if union > 0 else math.nan,
            "support": int(support),
            "predicted": int(predicted),
        }
    return out


def _values_present(pred, gt, mask=None) -> list[int]:
    found: set[int] = set()
    masks = _slices(mask) if mask is not None else None
    for p, g in zip(_slices(pred), _slices(gt), strict=True):
        if masks is not None:
            m = np.asarray(next(masks), dtype=bool)
            p, g = p[m], g[m]
        found.update(np.unique(p).tolist())
        found.update(np.unique(g).tolist())
    return sorted(int(v) for v in found)


def pixel_error(pred, gt, *, mask=None) -> float:
    """Share of pixels whose predicted label differs from the ground truth (0 = perfect).

    Parameters
    ----------
    pred, gt : (..., Y, X) integer arrays of equal shape
    mask : (..., Y, X) bool array, optional
        Count only these pixels.

    Returns
    -------
    float in [0, 1]; ``nan`` when no pixel is counted.
    """
    _check_same_shape(pred, gt, mask)
    wrong = 0
    total = 0
    masks = _slices(mask) if mask is not None else None
    for p, g in zip(_slices(pred), _slices(gt), strict=True):
        if masks is not None:
            m = np.asarray(next(masks), dtype=bool)
            p, g = p[m], g[m]
        wrong += int(np.count_nonzero(p != g))
        total += int(p.size)
    return wrong / total if total else math.nan


def adapted_rand_parts(
    pred_cells_mask,
    gt_cells_mask,
    *,
    connectivity: int = 1,
    thin_borders: bool = True,
    per_slice: bool = True,
) -> tuple[float, float, float]:
    """Adapted Rand error, merge score and split score of the cells (connected components of the cell masks).

    Parameters
    ----------
    pred_cells_mask, gt_cells_mask : (..., Y, X) bool arrays
        True inside cells (the non-membrane class), False on membranes.
    connectivity : int
        Pixel connectivity of a cell: 1 (4-neighbours in 2D, the default, so a membrane one pixel wide along a
        diagonal still separates two cells) or 2 (8-neighbours).
    thin_borders : bool
        Hand predicted membrane pixels to the nearest predicted cell before scoring (border thinning, as the
        ISBI 2012 evaluation does). Ground-truth membrane pixels are always ignored.
    per_slice : bool
        Score every 2D slice on its own and average (serial sections); False labels 3D components of a
        (Z, Y, X) stack in one go (isotropic volumes).

    Returns
    -------
    error, merge_score, split_score : float
        Means over the scored slices; ``nan`` when no slice has a ground-truth cell. ``error`` is
        ``1 - F-score`` of the two (0 = perfect). ``merge_score`` (Arganda-Carreras et al.'s V_merge) drops below 1
        when predicted cells merge ground-truth cells (a gap in a membrane); ``split_score`` (V_split) when they
        split one (a spurious membrane). skimage calls these "recall" and "precision" respectively.
    """
    from skimage.measure import label
    from skimage.metrics import adapted_rand_error
    from skimage.segmentation import expand_labels

    _check_same_shape(pred_cells_mask, gt_cells_mask)

    def score(p: np.ndarray, g: np.ndarray) -> tuple[float, float, float] | None:
        g_lab = label(np.asarray(g, dtype=bool), connectivity=min(connectivity, g.ndim))
        if g_lab.max() == 0:
            return None  # nothing to score: the ground truth has no cell here
        p_lab = label(np.asarray(p, dtype=bool), connectivity=min(connectivity, p.ndim))
        if thin_borders and p_lab.max() > 0:
            p_lab = expand_labels(p_lab, distance=float(sum(p_lab.shape)))
        err, prec, rec = adapted_rand_error(g_lab, p_lab, ignore_labels=(0,))
        # skimage's "recall" is the sum of squared overlaps over the squared predicted segment sizes (V_merge)
        return float(err), float(rec), float(prec)

    if per_slice or pred_cells_mask.ndim == 2:
        results = [score(p, g) for p, g in zip(_slices(pred_cells_mask), _slices(gt_cells_mask), strict=True)]
    else:
        results = [score(np.asarray(pred_cells_mask), np.asarray(gt_cells_mask))]
    results = [r for r in results if r is not None]
    if not results:
        return math.nan, math.nan, math.nan
    err, merge, split = np.mean(np.asarray(results), axis=0)
    return float(err), float(merge), float(split)


def adapted_rand(pred_cells_mask, gt_cells_mask, **kwargs) -> float:
    """Adapted Rand error of the cells (0 = perfect, 1 = worst); see :func:`adapted_rand_parts`.

    Parameters
    ----------
    pred_cells_mask, gt_cells_mask : (..., Y, X) bool arrays
        True inside cells, False on membranes.
    **kwargs
        ``connectivity``, ``thin_borders``, ``per_slice`` of :func:`adapted_rand_parts`.

    Returns
    -------
    float
    """
    return adapted_rand_parts(pred_cells_mask, gt_cells_mask, **kwargs)[0]


def evaluate(
    pred, gt, *, foreground: int | None = None, ignore: int | None = None, per_slice: bool = True
) -> dict:
    """All metrics of a predicted label image against ground truth, as a dict (see :func:`format_metrics`).

    Parameters
    ----------
    pred, gt : (..., Y, X) integer arrays of equal shape
        Label values, e.g. 0 = membrane and 255 = cell interior (ISBI 2012).
    foreground : int, optional
        Label value of the class of interest (the membrane / boundary class). Its Dice and IoU are reported as
        ``dice`` / ``iou``, and the cells for the Rand error are the pixels of every other class. When omitted and
        the ground truth has exactly two values, the rarer one is taken (membranes are the minority in EM);
        otherwise ``dice`` / ``iou`` are the class means and no Rand error is computed.
    ignore : int, optional
        Ground-truth value meaning "not annotated" (e.g. 0 for sparse scribbles): those pixels are not scored, and
        the Rand error (which needs complete ground truth) is skipped.
    per_slice : bool
        Rand error of 2D cells slice by slice (default) or of 3D components.

    Returns
    -------
    dict
        ``shape``, ``n_pixels``, ``values`` (label values seen), ``foreground``, ``foreground_guessed``,
        ``per_class`` ({value: {"dice", "iou", "gt_share", "pred_share"}}), ``dice``, ``iou``, ``mean_dice``,
        ``mean_iou``, ``pixel_error``, ``adapted_rand``, ``rand_merge_score``, ``rand_split_score`` (``nan`` when not
        computed; see :func:`adapted_rand_parts`).

    Raises
    ------
    ValueError
        Shapes differ, or ``ignore`` leaves no pixel to score.
    """
    _check_same_shape(pred, gt)
    mask = None
    if ignore is not None:
        mask = np.stack([np.asarray(g) != ignore for g in _slices(gt)]).reshape(gt.shape)
        if not mask.any():
            raise ValueError(
                f"no annotated pixels to evaluate: the ground truth is entirely {ignore} (ignored)"
            )
    values = _values_present(pred, gt, mask)
    per = dice_iou(pred, gt, values, mask=mask)
    n = sum(c["support"] for c in per.values())
    gt_values = [v for v in values if per[v]["support"] > 0]

    guessed = False
    if foreground is None and len(gt_values) == 2:
        foreground = min(gt_values, key=lambda v: per[v]["support"])
        guessed = True
    if foreground is not None and foreground not in per:
        per.update(dice_iou(pred, gt, [foreground], mask=mask))

    dices = [c["dice"] for v, c in per.items() if v in gt_values]
    ious = [c["iou"] for v, c in per.items() if v in gt_values]
    mean_dice = float(np.nanmean(dices)) if dices else math.nan
    mean_iou = float(np.nanmean(ious)) if ious else math.nan
    result = {
        "shape": tuple(int(s) for s in gt.shape),
        "n_pixels": int(n),
        "values": values,
        "foreground": foreground,
        "foreground_guessed": guessed,
        "per_class": _class_table(per, n),
        "dice": per[foreground]["dice"] if foreground is not None else mean_dice,
        "iou": per[foreground]["iou"] if foreground is not None else mean_iou,
        "mean_dice": mean_dice,
        "mean_iou": mean_iou,
        "pixel_error": pixel_error(pred, gt, mask=mask),
        "adapted_rand": math.nan,
        "rand_merge_score": math.nan,
        "rand_split_score": math.nan,
    }
    if foreground is not None and mask is None:
        err, merge, split = _rand_of_cells(pred, gt, foreground, per_slice)
        result.update(adapted_rand=err, rand_merge_score=merge, rand_split_score=split)
    return result


def _class_table(per: dict, n: int) -> dict:
    """Per label value: Dice, IoU and the value's share of the true and of the predicted pixels."""
    return {
        v: {
            "dice": c["dice"],
            "iou": c["iou"],
            "gt_share": c["support"] / n if n else math.nan,
            "pred_share": c["predicted"] / n if n else math.nan,
        }
        for v, c in per.items()
    }


def _rand_of_cells(pred, gt, foreground: int, per_slice: bool) -> tuple[float, float, float]:
    """Adapted Rand error (and its merge / split scores) of the cells: every pixel not of ``foreground``."""
    p_cells = np.stack([np.asarray(p) != foreground for p in _slices(pred)]).reshape(pred.shape)
    g_cells = np.stack([np.asarray(g) != foreground for g in _slices(gt)]).reshape(gt.shape)
    return adapted_rand_parts(p_cells, g_cells, per_slice=per_slice)


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def format_metrics(metrics: dict) -> str:
    """Plain-text table of an :func:`evaluate` result, for the command line.

    Parameters
    ----------
    metrics : dict
        As returned by :func:`evaluate`.

    Returns
    -------
    str
        Several lines, no trailing newline.
    """
    fg = metrics.get("foreground")
    lines = [f"pixels scored: {metrics.get('n_pixels', 0):,}  shape: {metrics.get('shape')}"]
    if fg is not None:
        how = " (guessed: the rarer class)" if metrics.get("foreground_guessed") else ""
        lines.append(f"foreground / membrane label: {fg}{how}")
        lines.append(f"  {'Dice':<24}{_fmt(metrics.get('dice'))}")
        lines.append(f"  {'IoU':<24}{_fmt(metrics.get('iou'))}")
    lines.append(f"  {'mean Dice (classes)':<24}{_fmt(metrics.get('mean_dice'))}")
    lines.append(f"  {'mean IoU (classes)':<24}{_fmt(metrics.get('mean_iou'))}")
    lines.append(f"  {'pixel error':<24}{_fmt(metrics.get('pixel_error'))}")
    if not math.isnan(metrics.get("adapted_rand", math.nan)):
        lines.append(f"  {'adapted Rand error':<24}{_fmt(metrics['adapted_rand'])}")
        lines.append(f"  {'  merge score':<24}{_fmt(metrics.get('rand_merge_score'))}  (1 = no false merges)")
        lines.append(f"  {'  split score':<24}{_fmt(metrics.get('rand_split_score'))}  (1 = no false splits)")
    per = metrics.get("per_class") or {}
    if per:
        lines.append("per class:")
        lines.append(f"  {'label':>8} {'Dice':>8} {'IoU':>8} {'truth %':>9} {'pred %':>9}")
        for v, c in per.items():
            lines.append(
                f"  {v:>8} {_fmt(c['dice']):>8} {_fmt(c['iou']):>8} "
                f"{100 * c['gt_share']:>8.2f}% {100 * c['pred_share']:>8.2f}%"
            )
    return "\n".join(lines)
