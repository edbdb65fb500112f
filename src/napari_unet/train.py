"""Training a U-Net on annotated slices of a stack (torch; no napari, no Qt).

What :func:`train` does, in order:

1. **Checks the inputs** and says what is wrong in words a biologist can act on (shapes differ, nothing painted,
   only one class painted, float labels, instance labels with hundreds of values ...).
2. **Finds the classes.** Sparse mode (default): label 0 means "not annotated" and is ignored by the loss, every
   other value is a class. Dense mode: every value present is a class (ISBI's 0/255 ground truth), so the
   prediction writes the same values back.
3. **Holds out validation data**: the slices ``config.val_slices``, or automatically the last contiguous share
   (``val_fraction``, 20 %) of the annotated slices; with a single annotated slice, a stripe at one side of the
   annotations (a spatial block, so validation pixels are not the immediate neighbours of training pixels) -
   except for sparse strokes on a single slice, where nothing is held out unless ``val_fraction`` asks for it.
   A few strokes are worth more as training data: on the bundled ISBI sample (strokes on one slice, 60 s of CPU
   training) holding out a 20 % stripe lowered the membrane Dice on the other slices from 0.67-0.68 to 0.61.
4. **Draws training patches around annotations**: a class is picked uniformly, then an annotated pixel of that
   class, so rarely painted classes are seen as often as common ones. The patch side is the network's valid input
   size nearest ``config.patch``; the labels are cropped to the network's output (``shrink`` pixels per side in
   valid mode). Out-of-image context is mirrored exactly as :mod:`napari_unet.tiling` does at prediction time.
   Patches are augmented jointly (:mod:`napari_unet.transforms`: flips, rot90, elastic deformation, intensity).
5. **Optimises** cross-entropy (class weights from inverse class frequency, clipped; unannotated pixels ignored)
   plus soft Dice over annotated pixels (sparse mode adds an entropy-minimisation term on the unpainted pixels),
   with AdamW, a linear warm-up and a cosine decay that follows whichever budget (iterations or minutes) runs out
   first, so a time budget gets a complete schedule too. Mixed precision on CUDA only.
6. **Validates** every ``val_every`` iterations by predicting the held-out region with the overlap-tile tiler
   (the way :mod:`napari_unet.predict` segments a stack), scoring per-class Dice / IoU on the annotated pixels;
   keeps the best model (mean Dice) and writes ``best.pt`` / ``last.pt`` with :func:`checkpoint.save_checkpoint`.

Long work is a generator (house rule 3): :func:`train` yields a :class:`TrainProgress` every iteration and returns
a :class:`TrainResult`; :func:`train_sync` drains it. Closing the generator (or Ctrl-C) stops at once and leaves
the last good checkpoint on disk; sending ``"stop"`` into it ends training early but still returns the result.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint as ckpt_mod
from .device import autocast_dtype, select_device
from .metrics import confusion_matrix, scores_from_confusion
from .model import UNet
from .normalize import apply_normalization, normalization_from_image
from .tiling import iter_tiled_predict
from .transforms import AugmentConfig, augment

__all__ = [
    "BEST_NAME",
    "LAST_NAME",
    "PRESETS",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "class_weights",
    "segmentation_loss",
    "train",
    "train_sync",
]

BEST_NAME = "best.pt"
LAST_NAME = "last.pt"
DEFAULT_ITERATIONS = 1000  # when neither iterations nor minutes is given
_SPARSE_ENTROPY_WEIGHT = 2.0  # entropy minimisation on unpainted pixels, sparse mode (see TrainConfig)
_AUTO_VAL_FRACTION = 0.2  # share of the annotated slices held out when val_fraction is None
_WARMUP_SHARE = 0.1  # the warm-up never takes more than this share of the budget
IGNORE = -1  # class index of pixels the loss ignores (not annotated / held out for validation)
MAX_CHANNELS = 4  # a longer axis right before Y is a stack of slices, not channels
MAX_CLASSES = 64  # more distinct label values than this almost always means instance labels were passed
MAX_LABEL_VALUE = 65535  # predictions are written as uint8/uint16
_MAX_CENTRES_PER_CLASS = 2_000_000  # candidate patch centres kept per class (memory bound on dense stacks)
_VAL_MAX_PIXELS = 4_000_000  # validation predicts at most this many pixels (slices are subsampled beyond)
_VAL_SHARE = 0.1  # validation may take at most about this share of the training time


# ------------------------------------------------------------------------------------------------ configuration
@dataclass
class TrainConfig:
    """Everything :func:`train` needs besides the data.

    The defaults ("fast-cpu") are tuned to learn as much as possible per CPU minute: a compact U-Net (4 levels,
    8 features, BatchNorm, same padding), AdamW at 3e-3, on 96 x 96 patches, 8 per batch for sparse strokes and
    256 x 256 patches, 4 per batch for dense labels. On ISBI 2012 (dense, train on slices 0-24, evaluate on
    25-29) they reach a membrane Dice of 0.81 and a pixel error of 0.077 in 10 minutes on two idle CPU cores
    (~2200 iterations); 4x wider networks learn no better per minute there. :meth:`preset` gives named
    alternatives ("accurate-gpu", "paper").

    Attributes
    ----------
    dense : bool
        False (sparse): 0 = not annotated (ignored), values 1..K are the classes. True: every value present is a
        class (complete ground truth such as ISBI's 0 = membrane / 255 = cell).
    depth, features, padding, batch_norm :
        U-Net architecture (see :class:`napari_unet.model.UNet`). Ignored when fine-tuning (``init``): the
        checkpoint's architecture is kept.
    patch : int or None
        Wanted patch side in pixels; the nearest valid input size of the network is used. None (default): 96 for
        sparse strokes (about the receptive field of the default network), 256 for dense labels.
    batch_size : int or None
        Patches per iteration. None (default): 8 for sparse strokes, 4 for dense labels. Small patches centred on
        strokes buy more iterations per CPU minute; on the bundled sample (strokes on one slice, 60 s headless,
        seed 0) 256 x 4 gave a membrane Dice on the unpainted slices of 0.66-0.70, 128 x 8 0.71-0.72 (~500
        iterations) and 96 x 8 0.74 (~860 iterations; 80 and 64 px were no better). Dense ground truth gains
        from the larger context (the 10-minute ISBI figures were measured with 256 x 4).
    lr, weight_decay : float
        Peak learning rate and decoupled weight decay of AdamW.
    iterations, minutes :
        Budget: training stops at whichever is reached first; with neither, 1000 iterations.
    val_slices : (start, stop) or None
        Slices ``[start, stop)`` held out for validation; None = automatic.
    val_fraction : float or None
        Share of the annotated slices (or, with a single annotated slice, of its annotated pixels) held out
        automatically; 0 disables validation (the last model is then also the "best"). None (default): 0.2, except
        for sparse strokes on a single slice, where nothing is held out (the strokes all train).
    val_every : int
        Iterations between validations (stretched automatically so validation takes at most ~10 % of the time).
    seed : int
        Seeds the network initialisation, patch sampling and augmentation: same data + seed = same run on CPU.
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    amp : bool
        Mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling); never on CPU/MPS.
    augment : bool
        Augmentation on/off. On: random flips and 90-degree rotations always (free, and EM has no preferred
        orientation), plus the two below.
    elastic, intensity : bool or None
        The elastic deformation and the intensity jitter (gain, offset, gamma, noise, blur). None (default) =
        on in sparse mode, where a few strokes must generalise to the whole stack, and off in dense mode, where
        complete ground truth already holds the variation: on ISBI 2012 (25 dense slices) they slow learning
        enough to cost ~0.01 membrane Dice within a 10-minute CPU budget.
    class_names : list of str or None
        One name per class (in the order of the sorted label values); default "class <value>".
    dice_weight : float
        Weight of the soft Dice term added to cross-entropy (0 = cross-entropy only).
    entropy_weight : float or None
        Weight of an entropy-minimisation term on the pixels that are not annotated (Grandvalet & Bengio 2005):
        the prediction is asked to be confident there too, which moves class boundaries out of the unpainted gaps
        between strokes and onto the image's own edges. None (default): 2.0 in sparse mode, 0 in dense mode
        (nothing is unannotated). On the bundled sample (strokes on one slice, 60 s on a CPU) it raised the
        membrane Dice on the other slices by 0.01-0.06 in four of five paired runs (and lowered it by 0.01 in one).
    class_weight_power : float or None
        Cross-entropy class weights are ``frequency ** -power`` (1 = inverse frequency, 0 = unweighted). None
        (default): 0.5 in sparse mode, where the painted share of a class says little about its true share (a
        membrane is painted with thin strokes, a cell with broad ones), and 0 in dense mode, where the ground
        truth's class shares are the real ones and weighting would only thicken the rare class (on ISBI 2012 it
        costs membrane Dice and pixel error).
    max_class_weight : float
        Largest ratio between two class weights (clipping, so a class painted with a few strokes does not
        dominate the loss).
    warmup : int
        Iterations of linear learning-rate warm-up (it ends at 10 % of the budget, iterations or minutes, at the
        latest).
    min_lr_ratio : float
        The cosine decays to ``lr * min_lr_ratio``.
    """

    dense: bool = False
    depth: int = 4
    features: int = 8
    padding: str = "same"
    batch_norm: bool = True
    patch: int | None = None
    batch_size: int | None = None
    lr: float = 3e-3
    weight_decay: float = 1e-4
    iterations: int | None = None
    minutes: float | None = None
    val_slices: tuple[int, int] | None = None
    val_fraction: float | None = None
    val_every: int = 50
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    augment: bool = True
    elastic: bool | None = None
    intensity: bool | None = None
    class_names: list[str] | None = None
    dice_weight: float = 1.0
    entropy_weight: float | None = None
    class_weight_power: float | None = None
    max_class_weight: float = 10.0
    warmup: int = 50
    min_lr_ratio: float = 0.02

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named configuration, optionally with some fields changed.

        Parameters
        ----------
        name : {"fast-cpu", "accurate-gpu", "paper"}
            ``fast-cpu``: the defaults, a compact network that learns fast per minute on a CPU.
            ``accurate-gpu``: a wider, deeper network in valid mode with larger patches and batches.
            ``paper``: the network of Ronneberger et al. 2015 (5 levels, 64 features, valid, no BatchNorm,
            572 x 572 tiles, one tile per batch).
        **overrides
            Fields to set on top of the preset.

        Returns
        -------
        TrainConfig

        Raises
        ------
        ValueError
            For an unknown preset or field name.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        values = dict(PRESETS[name])
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)

    def check(self) -> None:
        """Raise a ValueError naming the first out-of-range field."""
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {self.padding!r}")
        for name in ("depth", "features", "patch", "batch_size", "val_every"):
            value = getattr(self, name)
            if value is None and name in ("patch", "batch_size"):
                continue
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.iterations is not None and (int(self.iterations) != self.iterations or self.iterations < 1):
            raise ValueError(f"iterations must be a positive integer or None, got {self.iterations!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be positive or None, got {self.minutes!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}"
            )
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_slices is not None:
            if len(self.val_slices) != 2 or not 0 <= int(self.val_slices[0]) < int(self.val_slices[1]):
                raise ValueError(
                    f"val_slices must be (start, stop) with 0 <= start < stop, got {self.val_slices!r}"
                )
        power = 0.0 if self.class_weight_power is None else self.class_weight_power
        entropy = 0.0 if self.entropy_weight is None else self.entropy_weight
        if self.dice_weight < 0 or entropy < 0 or power < 0 or self.max_class_weight < 1:
            raise ValueError(
                "need dice_weight >= 0, entropy_weight >= 0, class_weight_power >= 0 and max_class_weight >= 1"
            )
        if self.warmup < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("need warmup >= 0 and 0 <= min_lr_ratio <= 1")

    def resolved(self) -> TrainConfig:
        """A copy with every mode-dependent default (the fields left None) set for ``dense``."""
        dense = self.dense
        defaults = {
            "patch": 256 if dense else 96,
            "batch_size": 4 if dense else 8,
            "elastic": not dense,
            "intensity": not dense,
            "class_weight_power": 0.0 if dense else 0.5,
            "entropy_weight": 0.0 if dense else _SPARSE_ENTROPY_WEIGHT,
        }
        return dataclasses.replace(
            self, **{name: value for name, value in defaults.items() if getattr(self, name) is None}
        )

    def to_dict(self) -> dict:
        """Plain-data copy (stored in checkpoints under ``extra["train_config"]``)."""
        out = dataclasses.asdict(self)
        out["val_slices"] = None if self.val_slices is None else [int(v) for v in self.val_slices]
        return out


PRESETS: dict[str, dict[str, Any]] = {
    "fast-cpu": {},
    "accurate-gpu": {
        "depth": 5,
        "features": 32,
        "padding": "valid",
        "patch": 396,
        "batch_size": 8,
        "lr": 1e-3,
        "val_every": 200,
        "elastic": True,
        "intensity": True,
    },
    "paper": {
        "depth": 5,
        "features": 64,
        "padding": "valid",
        "batch_norm": False,
        "patch": 572,
        "batch_size": 1,
        "lr": 1e-4,
        "val_every": 200,
        "elastic": True,
        "intensity": True,
    },
}


@dataclass(frozen=True)
class TrainProgress:
    """One progress record of :func:`train` (cheap: yielded every iteration).

    Attributes
    ----------
    iteration : int
        Iterations completed (0 before the first one).
    total : int or None
        Iteration budget, None when only a time budget is set.
    elapsed : float
        Seconds since training started.
    loss : float
        Loss of the last iteration (nan before the first).
    lr : float
        Learning rate of the last iteration.
    val : dict or None
        Set on the record that ends a validation: ``mean_dice``, ``mean_iou``, ``accuracy``, ``n_pixels``,
        ``per_class`` ({label value: {"dice", "iou"}}), ``best`` (whether this is the best so far).
    message : str
        One line for a status bar.
    phase : str
        "setup", "train", "validate" (records during and at the end of a validation) or "done".
    fraction : float
        Share of the budget used, 0..1 (the larger of the iteration and time shares) - for progress bars.
    """

    iteration: int
    total: int | None
    elapsed: float
    loss: float
    lr: float
    val: dict | None = None
    message: str = ""
    phase: str = "train"
    fraction: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : UNet
        The best model by validation mean Dice (the last one without validation), in eval mode, on the CPU.
    meta : dict
        The checkpoint dict of ``model`` without ``state_dict`` (what :func:`napari_unet.predict.predict_stack`
        takes).
    history : dict
        Curves: ``iteration``, ``loss``, ``lr``, ``elapsed``; ``val_iteration``, ``val_mean_dice`` (also as
        ``val_dice``), ``val_mean_iou``, ``val_accuracy``, ``val_class_dice`` ({value: [...]}); ``best_iteration``,
        ``best_val_dice``.
    best_path, last_path : Path or None
        Checkpoint files (None without ``checkpoint_dir``).
    cancelled : bool
        True when training was ended early by sending ``"stop"``.
    """

    model: UNet
    meta: dict
    history: dict
    best_path: Path | None
    last_path: Path | None
    cancelled: bool = False


# ------------------------------------------------------------------------------------------------ loss
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


# ------------------------------------------------------------------------------------------------ data
def _reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices into an axis of length ``n`` for positions ``idx`` outside it, as ``np.pad(mode="reflect")``."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= n, period - idx, idx)


@dataclass
class _Split:
    """Which annotated pixels train and which validate."""

    train_slices: list[int]
    val_slices: list[int]
    val_region: np.ndarray | None = None  # (Y, X) bool: held-out stripe applied to every annotated slice
    description: str = ""


@dataclass
class _Data:
    """Annotated slices in memory: raw image planes and class-index labels (-1 = ignored)."""

    images: dict[int, np.ndarray]  # z -> (C, Y, X) raw dtype
    classes: dict[int, np.ndarray]  # z -> (Y, X) int16 class index, IGNORE where not annotated
    label_values: list[int]
    shape_yx: tuple[int, int]
    in_channels: int


def _as_stack(image: Any, labels: Any) -> tuple[Any, Any, bool]:
    """Bring image to (Z, C, Y, X)-indexable form and labels to (Z, Y, X); validate shapes and dtypes."""
    if not hasattr(image, "shape") or not hasattr(labels, "shape"):
        raise TypeError("image and labels must be arrays (numpy, dask or zarr)")
    ishape, lshape = tuple(image.shape), tuple(labels.shape)
    if len(lshape) not in (2, 3):
        raise ValueError(f"labels must be (Y, X) or (Z, Y, X), got shape {lshape}")
    if ishape == lshape:
        channels = False
    elif (
        len(ishape) == len(lshape) + 1 and ishape[:-3] + ishape[-2:] == lshape and ishape[-3] <= MAX_CHANNELS
    ):
        channels = True  # (Z, C, Y, X) or (C, Y, X) with one labels plane per slice
    else:
        raise ValueError(
            f"image and labels shapes differ: image {ishape}, labels {lshape}. Paint the labels on the image "
            "they belong to (same Z, Y, X size); for a multi-channel image (up to 4 channels), channels go right "
            "before Y."
        )
    if min(lshape) == 0:
        raise ValueError(f"the image is empty (shape {ishape})")
    ldtype = np.dtype(labels.dtype)
    if ldtype.kind not in "iub":
        raise ValueError(
            f"labels must be integers (a napari Labels layer), got dtype {ldtype}; "
            "convert probabilities to labels first"
        )
    idtype = np.dtype(image.dtype)
    if idtype.kind not in "iuf":
        raise ValueError(f"image must be grayscale numbers (integer or float), got dtype {idtype}")
    return image, labels, channels


def _collect(
    image: Any, labels: Any, dense: bool
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], list[int]]:
    """Read the annotated slices (labels one slice at a time; the image only where annotated)."""
    image, labels, channels = _as_stack(image, labels)
    is2d = labels.ndim == 2
    nz = 1 if is2d else labels.shape[0]
    raw_labels: dict[int, np.ndarray] = {}
    values: set[int] = set()
    for z in range(nz):
        lab = np.asarray(labels if is2d else labels[z])
        if lab.dtype == bool:
            lab = lab.astype(np.uint8)
        present = np.unique(lab)
        if not dense:
            present = present[present != 0]
        if present.size == 0:
            continue
        raw_labels[z] = lab
        values.update(int(v) for v in present)
    if not raw_labels:
        raise ValueError(
            "no annotations: the labels are all 0, and 0 means 'not annotated'. Paint at least two classes "
            "(e.g. 1 = membrane, 2 = cell interior) on one or more slices"
        )
    label_values = sorted(values)
    if label_values[0] < 0 or label_values[-1] > MAX_LABEL_VALUE:
        raise ValueError(
            f"label values must be between 0 and {MAX_LABEL_VALUE}, found {label_values[0]}..{label_values[-1]}"
        )
    if len(label_values) > MAX_CLASSES:
        raise ValueError(
            f"the labels hold {len(label_values)} different values; a U-Net learns a few semantic classes "
            f"(at most {MAX_CLASSES}). Did you pass an instance segmentation (one value per cell)? Paint class "
            "values instead (e.g. 1 = membrane, 2 = cell interior)"
        )
    images: dict[int, np.ndarray] = {}
    for z in raw_labels:
        plane = np.asarray(image if is2d else image[z])
        images[z] = plane if channels else plane[None]
    return images, raw_labels, label_values


def _to_classes(lab: np.ndarray, label_values: list[int], dense: bool) -> np.ndarray:
    """Label values -> class indices (int16), -1 where not annotated (sparse 0) or not a known value."""
    vals = np.asarray(label_values, dtype=np.int64)
    lab64 = lab.astype(np.int64, copy=False)
    idx = np.clip(np.searchsorted(vals, lab64), 0, len(vals) - 1)
    known = vals[idx] == lab64
    if not dense:
        known &= lab64 != 0
    return np.where(known, idx, IGNORE).astype(np.int16)


def _class_counts(classes: dict[int, np.ndarray], k: int, slices: Sequence[int], region=None) -> np.ndarray:
    counts = np.zeros(k, dtype=np.int64)
    for z in slices:
        c = classes[z] if region is None else np.where(region, classes[z], IGNORE)
        counts += np.bincount(c[c >= 0].ravel().astype(np.int64), minlength=k)[:k]
    return counts


def _stripe_region(
    classes: dict[int, np.ndarray], slices: Sequence[int], k: int, fraction: float
) -> tuple[np.ndarray, str] | None:
    """A (Y, X) stripe at one side of the annotations holding ~``fraction`` of them, keeping all classes in training.

    Candidates: the far end of the longer axis first, then its near end, then both ends of the other axis. The
    first candidate that leaves every class in the training part wins; one that also has every class in the
    validation part is preferred.
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
            val_counts = hist[:, sel].sum(axis=1)
            train_counts = hist[:, ~sel].sum(axis=1)
            if (train_counts > 0).sum() < (hist.sum(axis=1) > 0).sum() or val_counts.sum() == 0:
                continue
            region = np.zeros((ny, nx), dtype=bool)
            if axis == 0:
                region[sel, :] = True
            else:
                region[:, sel] = True
            side = {(0, True): "bottom", (0, False): "top", (1, True): "right", (1, False): "left"}[
                (axis, end)
            ]
            coord = "yx"[axis]
            bound = f"{coord} >= {length - cut}" if end else f"{coord} < {cut}"
            desc = f"the {side} part ({bound}, {100 * val_counts.sum() / n:.0f} % of the annotations)"
            if (val_counts > 0).sum() == (hist.sum(axis=1) > 0).sum():
                return region, desc
            fallback = fallback or (region, desc)
    return fallback


def _contiguous_text(slices: Sequence[int]) -> str:
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


def _split(classes: dict[int, np.ndarray], k: int, config: TrainConfig, nz: int) -> _Split:
    annotated = sorted(classes)
    all_present = _class_counts(classes, k, annotated) > 0

    def keeps_classes(train: Sequence[int]) -> bool:
        return bool(((_class_counts(classes, k, train) > 0) == all_present).all())

    if config.val_slices is not None:
        start, stop = (int(v) for v in config.val_slices)
        if start >= nz:
            raise ValueError(f"val_slices {start}:{stop} lie outside the stack of {nz} slices")
        val = [z for z in annotated if start <= z < stop]
        train = [z for z in annotated if not start <= z < stop]
        if not val:
            raise ValueError(
                f"val_slices {start}:{stop} hold no annotated slice; annotated slices: {_contiguous_text(annotated)}"
            )
        if not train:
            raise ValueError(
                f"val_slices {start}:{stop} hold every annotated slice, leaving nothing to train on; annotated "
                f"slices: {_contiguous_text(annotated)}"
            )
        if not keeps_classes(train):
            missing = np.flatnonzero(all_present & (_class_counts(classes, k, train) == 0))
            raise ValueError(
                f"with val_slices {start}:{stop} held out, class(es) {missing.tolist()} (0-based) would have no "
                "training annotation; paint them on a training slice or choose other validation slices"
            )
        return _Split(train, val, None, f"validating on slices {_contiguous_text(val)}")

    fraction = config.val_fraction
    if fraction is None:
        if len(annotated) < 2 and not config.dense:
            return _Split(
                annotated,
                [],
                None,
                "no validation: a single annotated slice, all of its strokes train the model "
                "(hold out a share of them, or paint a second slice, for a validation curve)",
            )
        fraction = _AUTO_VAL_FRACTION
    if fraction <= 0:
        return _Split(annotated, [], None, "no validation (val_fraction = 0)")
    if len(annotated) >= 2:
        n_val = min(len(annotated) - 1, max(1, round(fraction * len(annotated))))
        for val in (annotated[-n_val:], annotated[:n_val]):
            train = [z for z in annotated if z not in val]
            if keeps_classes(train):
                return _Split(train, val, None, f"validating on slices {_contiguous_text(val)}")
    stripe = _stripe_region(classes, annotated, k, fraction)
    if stripe is None:
        return _Split(annotated, [], None, "no validation: too few annotations to hold some out")
    region, desc = stripe
    where = "the annotated slice" if len(annotated) == 1 else "each annotated slice"
    return _Split(annotated, annotated, region, f"validating on {desc} of {where}")


class _PatchSampler:
    """Draws augmented training patches around annotated pixels, class-balanced."""

    def __init__(
        self,
        data: _Data,
        slices: Sequence[int],
        *,
        normalization: dict,
        in_size: int,
        shrink: int,
        margin: int,
        augment_config: AugmentConfig | None,
        rng: np.random.Generator,
    ) -> None:
        self.data = data
        self.normalization = normalization
        self.in_size = in_size
        self.shrink = shrink
        self.margin = margin
        self.augment_config = augment_config
        self.rng = rng
        k = len(data.label_values)
        self.centres: list[np.ndarray] = []
        for ci in range(k):
            chunks = []
            for z in slices:
                ys, xs = np.nonzero(data.classes[z] == ci)
                if ys.size:
                    chunks.append(
                        np.stack(
                            [np.full(ys.shape, z, np.int32), ys.astype(np.int32), xs.astype(np.int32)], 1
                        )
                    )
            cand = np.concatenate(chunks) if chunks else np.zeros((0, 3), np.int32)
            if len(cand) > _MAX_CENTRES_PER_CLASS:
                cand = cand[rng.choice(len(cand), _MAX_CENTRES_PER_CLASS, replace=False)]
            self.centres.append(cand)
        self.classes_with_pixels = [ci for ci in range(k) if len(self.centres[ci])]

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
        iy = _reflect_index(np.arange(oy, oy + p), ny)
        ix = _reflect_index(np.arange(ox, ox + p), nx)
        img = self.data.images[z][:, iy[:, None], ix[None, :]]
        lab = self.data.classes[z][iy[:, None], ix[None, :]]
        return apply_normalization(img, self.normalization), lab

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch: images (n, C, P, P) float32 and targets (n, O, O) int64 (-1 = ignore)."""
        p, s = self.in_size, self.shrink
        images, targets = [], []
        for _ in range(n):
            for _attempt in range(10):
                ci = self.classes_with_pixels[int(self.rng.integers(len(self.classes_with_pixels)))]
                z, y, x = (int(v) for v in self.centres[ci][int(self.rng.integers(len(self.centres[ci])))])
                img, lab = self._window(z, y, x)
                if self.augment_config is not None:
                    img, lab = augment(img, lab, self.rng, self.augment_config)
                lab = lab[s : p - s, s : p - s]
                if (lab >= 0).any():
                    break
            images.append(img)
            targets.append(lab)
        return np.stack(images).astype(np.float32, copy=False), np.stack(targets).astype(np.int64)


# ------------------------------------------------------------------------------------------------ validation
class _Validator:
    """Predicts the held-out pixels with the overlap-tile tiler and scores per-class Dice / IoU."""

    def __init__(self, data: _Data, split: _Split, normalization: dict, model: UNet) -> None:
        self.items: list[tuple[int, tuple[slice, slice], tuple[slice, slice], np.ndarray]] = []
        k = len(data.label_values)
        self.k = k
        halo = model.halo
        pixels = 0
        slices = list(split.val_slices)
        for z in slices:
            target = data.classes[z]
            if split.val_region is not None:
                target = np.where(split.val_region, target, IGNORE).astype(np.int16)
            ys, xs = np.nonzero(target >= 0)
            if ys.size == 0:
                continue
            # Predict the bounding box of the held-out annotations plus real image context, not the whole slice:
            # cheap for scribbles, identical to whole-slice prediction inside the box.
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            ny, nx = target.shape
            # Crop origins on multiples of `align` keep the pooling phase of a whole-slice prediction, so the
            # scores are those of what predict_stack would produce, not merely close to them.
            # The margin covers the network's full reach (up to halo + align - 1 in valid mode).
            a = model.align
            m = halo + a
            cy0, cy1 = max(0, (y0 - m) // a * a), min(ny, y1 + m)
            cx0, cx1 = max(0, (x0 - m) // a * a), min(nx, x1 + m)
            crop = (slice(cy0, cy1), slice(cx0, cx1))
            inner = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
            self.items.append((z, crop, inner, target[y0:y1, x0:x1]))
            pixels += (cy1 - cy0) * (cx1 - cx0)
        if pixels > _VAL_MAX_PIXELS and len(self.items) > 1:
            keep = max(1, int(len(self.items) * _VAL_MAX_PIXELS / pixels))
            pick = np.linspace(0, len(self.items) - 1, keep).round().astype(int)
            self.items = [self.items[i] for i in sorted(set(pick.tolist()))]
        self.data = data
        self.normalization = normalization
        self.label_values = data.label_values

    def __bool__(self) -> bool:
        return bool(self.items)

    def run(
        self, model: UNet, device: torch.device, amp_dtype: torch.dtype | None
    ) -> Generator[tuple[int, int], None, dict]:
        """Yields (tiles done, tiles total) over all held-out crops; returns the score dict."""
        was_training = model.training
        model.eval()
        cm = np.zeros((self.k + 1, self.k + 1), dtype=np.int64)
        k = self.k

        @torch.inference_mode()
        def predict(batch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            if amp_dtype is not None:
                with torch.autocast(device_type=device.type, dtype=amp_dtype):
                    logits = model(x)
            else:
                logits = model(x)
            return logits.argmax(1, keepdim=True).to(torch.float32).cpu().numpy()

        try:
            for z, crop, inner, target in self.items:
                img = apply_normalization(self.data.images[z][(slice(None), *crop)], self.normalization)
                h, w = img.shape[-2:]
                tile = _tile_for(model, max(h, w))
                pred = yield from iter_tiled_predict(
                    img,
                    predict,
                    tile=tile,
                    halo=model.halo,
                    shrink=model.shrink,
                    align=model.align,
                    batch_size=1,
                    n_out=1,
                )
                pred = pred[0][inner].astype(np.int64)
                mask = target >= 0
                cm += confusion_matrix(pred, target.astype(np.int64), list(range(k)), mask=mask)
        finally:
            model.train(was_training)
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
                int(self.label_values[ci]): {"dice": scores[ci]["dice"], "iou": scores[ci]["iou"]}
                for ci in range(k)
            },
        }


def _tile_for(model: UNet, side: int, cap: int = 1024) -> int:
    """Validation tile: large enough to cover a crop in one or few tiles, at most ``cap`` pixels."""
    want = min(side + 2 * model.halo, max(cap, 2 * model.halo + 2 * model.align))
    want = max(want, 2 * model.halo + model.align)
    return model.valid_input_size(want, "up")


# ------------------------------------------------------------------------------------------------ fine-tuning
def _load_init(init: str | Path | dict) -> tuple[dict, str]:
    if isinstance(init, dict):
        if "state_dict" not in init or "model_kwargs" not in init:
            raise ValueError(
                "init must be a checkpoint path or a full checkpoint dict with 'model_kwargs' and 'state_dict'"
            )
        return init, "a checkpoint dict"
    path = Path(init)
    return ckpt_mod.read_checkpoint(path), str(path)


def _finetune_values(old: list[int], new: list[int], source: str) -> list[int]:
    """The model keeps its classes; the new annotations must use a subset of its label values."""
    unknown = sorted(set(new) - set(old))
    if unknown:
        raise ValueError(
            f"the labels contain value(s) {unknown} that the model from {source} does not predict (it knows "
            f"{old}); use the same label values as the model, or train a new model"
        )
    return list(old)


# ------------------------------------------------------------------------------------------------ training
def _lr_factor(iteration: int, fraction: float, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay over the budget used (``fraction``).

    The warm-up ends after ``warmup`` iterations or 10 % of the budget, whichever comes first, so that a short time
    budget on a slow device is not spent mostly warming up.
    """
    warm = min(1.0, max((iteration + 1) / warmup, fraction / _WARMUP_SHARE)) if warmup > 0 else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
    return warm * (min_ratio + (1.0 - min_ratio) * cosine)


def train(
    image: Any,
    labels: Any,
    config: TrainConfig | None = None,
    *,
    init: str | Path | dict | None = None,
    checkpoint_dir: str | Path | None = None,
    voxel_size: Sequence[float] | None = None,
) -> Generator[TrainProgress, Any, TrainResult]:
    """Train a U-Net on the annotated slices of an image stack, yielding progress.

    Parameters
    ----------
    image : (Z, Y, X) or (Y, X) array; (Z, C, Y, X) or (C, Y, X) for multi-channel images
        numpy, dask or zarr; only annotated slices are read into memory (plus a sample for the normalisation).
    labels : (Z, Y, X) or (Y, X) integer array
        The image's shape without the channel axis. Sparse mode: 0 = not annotated, 1..K = classes. Dense mode
        (``config.dense``): every value is a class.
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    init : path or checkpoint dict, optional
        Fine-tune this model: its architecture and label values are kept (the new labels must use a subset of
        them; a single painted class is then enough), the normalisation is recomputed from ``image``.
    checkpoint_dir : path, optional
        Folder for ``best.pt`` and ``last.pt`` (created; files of these names from an earlier run are removed
        first). Without it nothing is written.
    voxel_size : sequence of float, optional
        Physical voxel size, stored in the checkpoint.

    Yields
    ------
    TrainProgress
        A "setup" record, then one per iteration, records during validation, and a final "done" record. Send
        ``"stop"`` to end training early and still get the result.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        For unusable data or configuration, with the reason in words (no annotations, only one class painted,
        shapes differ, ...).
    """
    t_start = time.monotonic()
    config = TrainConfig() if config is None else copy.deepcopy(config)
    config.check()
    config = config.resolved()
    images, raw_labels, found_values = _collect(image, labels, config.dense)

    init_ckpt, source = (None, "") if init is None else _load_init(init)
    if init_ckpt is not None:
        label_values = _finetune_values([int(v) for v in init_ckpt["label_values"]], found_values, source)
    else:
        label_values = found_values
        if len(label_values) < 2:
            hint = (
                " In dense mode every value is a class; if 0 means 'not annotated', train in sparse mode."
                if config.dense
                else " (0 means 'not annotated' and is not a class.)"
            )
            raise ValueError(
                f"only one class painted (value {label_values[0]}): a U-Net needs at least two classes, e.g. "
                f"membrane and cell interior.{hint}"
            )
    k = len(label_values)
    classes = {z: _to_classes(lab, label_values, config.dense) for z, lab in raw_labels.items()}
    del raw_labels
    first = next(iter(images.values()))
    data = _Data(
        images=images,
        classes=classes,
        label_values=label_values,
        shape_yx=tuple(first.shape[-2:]),
        in_channels=int(first.shape[0]),
    )
    nz = 1 if np.ndim(labels) == 2 else int(labels.shape[0])
    split = _split(classes, k, config, nz)

    # Training targets: the held-out stripe (single-slice validation) is masked, so its annotations never reach
    # the loss, not even through the mirrored border of a neighbouring patch.
    train_classes = dict(classes)
    if split.val_region is not None:
        for z in split.train_slices:
            train_classes[z] = np.where(split.val_region, classes[z], IGNORE).astype(np.int16)
        train_data = dataclasses.replace(data, classes=train_classes)
    else:
        train_data = data
    counts = _class_counts(train_classes, k, split.train_slices)
    if counts.sum() == 0:
        raise ValueError("no annotations left for training after holding out validation data")
    weights = class_weights(counts, power=config.class_weight_power, max_ratio=config.max_class_weight)
    entropy_weight = config.entropy_weight

    # Normalisation from the (whole) image: what prediction will see.
    if data.in_channels > 1:
        per_channel = [
            normalization_from_image(image[..., c, :, :] if np.ndim(image) > 3 else image[c])
            for c in range(data.in_channels)
        ]
        normalization = dict(per_channel[0])
        normalization["low"] = [n["low"] for n in per_channel]
        normalization["high"] = [n["high"] for n in per_channel]
    else:
        normalization = normalization_from_image(image)

    device = select_device(config.device)
    if init_ckpt is not None:
        kwargs = dict(init_ckpt["model_kwargs"])
        if int(kwargs.get("in_channels", 1)) != data.in_channels:
            raise ValueError(
                f"the model from {source} takes {kwargs.get('in_channels', 1)} channel(s), the image has "
                f"{data.in_channels}"
            )
        model = UNet(**kwargs)
        model.load_state_dict(init_ckpt["state_dict"])
        class_names = list(config.class_names or init_ckpt.get("class_names") or [])
    else:
        with torch.random.fork_rng(devices=[]):
            # Seeded initialisation without disturbing the caller's global random state.
            torch.manual_seed(config.seed)
            model = UNet(
                in_channels=data.in_channels,
                n_classes=k,
                depth=config.depth,
                features=config.features,
                padding=config.padding,
                batch_norm=config.batch_norm,
            )
        class_names = list(config.class_names or [])
    if not class_names:
        class_names = [f"class {v}" for v in label_values]
    if len(class_names) != k:
        raise ValueError(
            f"class_names has {len(class_names)} names for {k} classes (label values {label_values})"
        )
    # channels-last activations run the convolutions 10-20 % faster on CPU (oneDNN) and use tensor cores on GPU.
    model.to(device, memory_format=torch.channels_last)
    model.train()

    in_size = model.valid_input_size(config.patch, "nearest")
    out_size = model.output_size(in_size)
    rng = np.random.default_rng(config.seed)
    aug = None
    if config.augment:
        aug = AugmentConfig(elastic=bool(config.elastic), intensity=bool(config.intensity))
    sampler = _PatchSampler(
        train_data,
        split.train_slices,
        normalization=normalization,
        in_size=in_size,
        shrink=model.shrink,
        margin=model.halo,
        augment_config=aug,
        rng=rng,
    )
    validator = _Validator(data, split, normalization, model) if split.val_slices else None
    if validator is not None and not validator:
        validator = None

    decay, no_decay = [], []
    for p in model.parameters():
        # BatchNorm scales and biases are not weights to shrink towards zero.
        (no_decay if p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    amp_dtype = autocast_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    weight_t = torch.from_numpy(weights).to(device)

    iterations = config.iterations
    seconds = None if config.minutes is None else 60.0 * config.minutes
    if iterations is None and seconds is None:
        iterations = DEFAULT_ITERATIONS
    warmup = config.warmup if iterations is None else min(config.warmup, max(1, iterations // 10))

    checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best_path = None if checkpoint_dir is None else checkpoint_dir / BEST_NAME
    last_path = None if checkpoint_dir is None else checkpoint_dir / LAST_NAME
    for stale in (best_path, last_path):
        # Files of an earlier run in the same folder must never pass for this run's model (e.g. after a cancel).
        if stale is not None:
            stale.unlink(missing_ok=True)
    extra = {
        "train_config": config.to_dict(),
        "dense": bool(config.dense),
        "train_slices": [int(z) for z in split.train_slices],
        "val_slices": [int(z) for z in split.val_slices],
        "validation": split.description,
        "patch": int(in_size),
        "class_weights": weights.tolist(),
        "finetuned_from": source or None,
    }
    history: dict[str, Any] = {
        "iteration": [],
        "loss": [],
        "lr": [],
        "elapsed": [],
        "val_iteration": [],
        "val_elapsed": [],
        "val_mean_dice": [],
        "val_dice": [],
        "val_mean_iou": [],
        "val_accuracy": [],
        "val_class_dice": {int(v): [] for v in label_values},
        "best_iteration": None,
        "best_val_dice": None,
    }

    def save(path: Path | None, state_model: UNet) -> None:
        if path is None:
            return
        ckpt_mod.save_checkpoint(
            path,
            state_model,
            normalization=normalization,
            label_values=label_values,
            class_names=class_names,
            voxel_size=None if voxel_size is None else tuple(float(v) for v in voxel_size),
            history=history,
            extra=extra,
        )

    best_state: dict | None = None
    best_dice = -math.inf
    iteration = 0
    loss_value = math.nan
    lr_now = 0.0
    step_done = True  # False while weights are mid-update (an interrupt then must not save them)
    stopped = False
    t_train = time.monotonic()
    val_interval = config.val_every
    last_val_iteration = 0

    def fraction_used() -> float:
        parts = []
        if iterations is not None:
            parts.append(iteration / iterations)
        if seconds is not None:
            parts.append((time.monotonic() - t_start) / seconds)
        return min(1.0, max(parts))

    def progress(phase: str, message: str, val: dict | None = None) -> TrainProgress:
        return TrainProgress(
            iteration=iteration,
            total=iterations,
            elapsed=time.monotonic() - t_start,
            loss=loss_value,
            lr=lr_now,
            val=val,
            message=message,
            phase=phase,
            fraction=fraction_used(),
        )

    def validate() -> Generator[TrainProgress, Any, dict]:
        nonlocal best_dice, best_state
        t0 = time.monotonic()
        gen = validator.run(model, device, amp_dtype)
        try:
            while True:
                done, total = next(gen)
                yield progress("validate", f"validating: tile {done}/{total}")
        except StopIteration as stop:
            scores = stop.value
        finally:
            gen.close()  # on cancel: puts the model back in training mode now, not at garbage collection
        dice = scores["mean_dice"]
        is_best = not math.isnan(dice) and dice >= best_dice
        scores["best"] = bool(is_best)
        scores["seconds"] = time.monotonic() - t0
        history["val_iteration"].append(iteration)
        history["val_elapsed"].append(time.monotonic() - t_start)
        history["val_mean_dice"].append(dice)
        history["val_dice"].append(dice)
        history["val_mean_iou"].append(scores["mean_iou"])
        history["val_accuracy"].append(scores["accuracy"])
        for v, s in scores["per_class"].items():
            history["val_class_dice"][v].append(s["dice"])
        if is_best:
            best_dice = dice
            history["best_iteration"] = iteration
            history["best_val_dice"] = dice
            best_state = {key: t.detach().to("cpu", copy=True) for key, t in model.state_dict().items()}
            save(best_path, model)
        save(last_path, model)
        return scores

    describe = (
        f"{len(split.train_slices)} training slice(s), {split.description}; {k} classes {label_values}; "
        f"patch {in_size} -> {out_size}; device {device}"
    )
    if init_ckpt is not None and not config.dense and 0 in label_values:
        describe += (
            "; note: the model's class with label value 0 cannot be painted in sparse mode (0 = not annotated), "
            "use dense mode to correct it"
        )
    try:
        yield progress("setup", describe)
        while True:
            # At least one iteration, even when setting up took the whole (tiny) time budget.
            if (iterations is not None and iteration >= iterations) or (
                seconds is not None and iteration > 0 and time.monotonic() - t_start >= seconds
            ):
                break
            x_np, y_np = sampler.sample(config.batch_size)
            lr_now = config.lr * _lr_factor(iteration, fraction_used(), warmup, config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr_now
            x = (
                torch.from_numpy(x_np)
                .to(device, non_blocking=True)
                .contiguous(memory_format=torch.channels_last)
            )
            y = torch.from_numpy(y_np).to(device, non_blocking=True)
            step_done = False
            optimizer.zero_grad(set_to_none=True)
            if amp_dtype is not None:
                with torch.autocast(device_type=device.type, dtype=amp_dtype):
                    logits = model(x)
            else:
                logits = model(x)
            loss = segmentation_loss(
                logits,
                y,
                weight=weight_t,
                dice_weight=config.dice_weight,
                entropy_weight=entropy_weight,
            )
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step_done = True
            iteration += 1
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise RuntimeError(
                    f"training diverged: the loss became {loss_value} at iteration {iteration}; lower the learning "
                    f"rate (now {config.lr}). The best model so far stays in the checkpoint folder."
                )
            now = time.monotonic()
            history["iteration"].append(iteration)
            history["loss"].append(loss_value)
            history["lr"].append(lr_now)
            history["elapsed"].append(now - t_start)
            total_txt = f"/{iterations}" if iterations is not None else ""
            command = yield progress("train", f"iteration {iteration}{total_txt}, loss {loss_value:.4f}")
            if command in ("stop", True):
                stopped = True
                break
            if iteration - last_val_iteration >= val_interval:
                last_val_iteration = iteration
                if validator is not None:
                    t_val = time.monotonic()
                    scores = yield from validate()
                    # Keep validation under ~10 % of the time: stretch the interval when it is slow.
                    per_iter = (t_val - t_train) / max(iteration, 1)
                    val_cost = time.monotonic() - t_val
                    val_interval = max(
                        config.val_every, math.ceil(val_cost / _VAL_SHARE / max(per_iter, 1e-6))
                    )
                    command = yield progress(
                        "validate",
                        f"validation at iteration {iteration}: mean Dice {scores['mean_dice']:.4f}"
                        + (" (best)" if scores["best"] else ""),
                        val=scores,
                    )
                    if command in ("stop", True):
                        stopped = True
                        break
                else:
                    save(last_path, model)
        # Final validation unless the last iteration was just validated.
        if validator is not None and iteration > 0 and last_val_iteration != iteration:
            last_val_iteration = iteration
            scores = yield from validate()
            yield progress(
                "validate",
                f"final validation at iteration {iteration}: mean Dice {scores['mean_dice']:.4f}",
                val=scores,
            )
    except (GeneratorExit, KeyboardInterrupt):
        # Cancelled: keep a usable model on disk. Weights caught mid-update are not saved.
        if iteration > 0 and step_done and last_path is not None:
            save(last_path, model)
            if best_path is not None and best_state is None:
                save(best_path, model)
        raise

    if validator is None or best_state is None:
        history["best_iteration"] = iteration
        save(last_path, model)
        save(best_path, model)
    else:
        save(last_path, model)
        model.load_state_dict(best_state)
        save(best_path, model)  # again, now with the complete history
    model.eval()
    model.to("cpu", memory_format=torch.contiguous_format)
    meta = ckpt_mod.build_checkpoint(
        model,
        normalization=normalization,
        label_values=label_values,
        class_names=class_names,
        voxel_size=None if voxel_size is None else tuple(float(v) for v in voxel_size),
        history=history,
        extra=extra,
        include_state=False,
    )
    elapsed = time.monotonic() - t_start
    rate = iteration / max(elapsed, 1e-9)
    summary = f"trained {iteration} iterations in {elapsed:.0f} s ({rate:.2f} it/s)"
    if history["best_val_dice"] is not None and validator is not None:
        summary += f", best validation mean Dice {history['best_val_dice']:.4f} at iteration {history['best_iteration']}"
    yield progress("done", summary)
    return TrainResult(
        model=model,
        meta=meta,
        history=history,
        best_path=best_path,
        last_path=last_path,
        cancelled=stopped,
    )


def train_sync(
    image: Any,
    labels: Any,
    config: TrainConfig | None = None,
    *,
    init: str | Path | dict | None = None,
    checkpoint_dir: str | Path | None = None,
    voxel_size: Sequence[float] | None = None,
    callback: Callable[[TrainProgress], Any] | None = None,
) -> TrainResult:
    """Synchronous twin of :func:`train`: same parameters, returns the :class:`TrainResult`.

    Parameters
    ----------
    callback : callable, optional
        Called with every :class:`TrainProgress` (e.g. to print); if it returns ``"stop"``, training ends early.
    """
    gen = train(image, labels, config, init=init, checkpoint_dir=checkpoint_dir, voxel_size=voxel_size)
    command = None
    try:
        while True:
            record = gen.send(command)
            command = callback(record) if callback is not None else None
    except StopIteration as stop:
        return stop.value
