"""Segmentation metrics for label images (numpy / scikit-image, no torch).

The figures the EM community reports for membrane segmentation (ISBI 2012, Arganda-Carreras et al. 2015):

* **Dice / IoU** of one class (e.g. the membrane class) or of every class;
* **pixel error**: share of pixels whose predicted label differs from the ground truth;
* **adapted Rand error** of the cell instances: connected components of the non-membrane pixels in both images,
  compared with :func:`skimage.metrics.adapted_rand_error`. Ground-truth membrane pixels are ignored (the
  "foreground-restricted" Rand), and predicted membrane pixels are handed to the nearest predicted cell first,
  the counterpart of the challenge's border thinning, so that a correctly placed but thick predicted membrane is not
  scored as one giant merged segment.

Stacks are processed slice by slice, so memory stays bounded and (for anisotropic serial sections) cells are
2D components, as in the ISBI evaluation.

Instance metrics (:func:`evaluate_instances`), for object labels such as :mod:`napari_unet.instances` writes:

* **adapted Rand error** and **variation of information** (VOI = split + merge, in bits:
  ``split`` = H(prediction | truth) grows with over-segmentation, ``merge`` = H(truth | prediction) with
  under-segmentation), both from :mod:`skimage.metrics` and **restricted to the ground truth's foreground**: pixels
  where the truth is 0 (membranes between ISBI cells, background around mitochondria) are not scored, and
  predicted 0 pixels are first handed to the nearest predicted object (border thinning), as ISBI 2012 scores;
* **object matching**: a predicted and a true object match when their IoU reaches 0.5 (one to one, greedy by IoU,
  which is the optimal matching above 0.5); precision = matched / predicted, recall = matched / true, F1, and
  the mean IoU of the matched pairs. IoU is over all pixels, so an object predicted where the truth has none
  is a false positive.
"""

from __future__ import annotations

from ._instances import evaluate_instances, format_instance_metrics, instances_of, match_objects
from ._semantic import (
    adapted_rand,
    adapted_rand_parts,
    confusion_matrix,
    dice_iou,
    evaluate,
    format_metrics,
    pixel_error,
    scores_from_confusion,
)

__all__ = [
    "adapted_rand",
    "adapted_rand_parts",
    "confusion_matrix",
    "dice_iou",
    "evaluate",
    "evaluate_instances",
    "format_instance_metrics",
    "format_metrics",
    "instances_of",
    "match_objects",
    "pixel_error",
    "scores_from_confusion",
]
