"""Training a U-Net on annotated slices of a stack (torch; no napari, no Qt).

The package: ``_data`` (checks, class mapping, normalisation), ``_split`` and ``_holdout`` (validation hold-out),
``_sampler`` (training patches), ``_start`` (where a new model starts: the shipped EM-pretrained body or random
weights), ``_live`` (live training: the strokes re-read while training), ``_loss``, ``_validate``, ``_run`` (one
run's state and phases), ``_loop`` (:func:`train`, :func:`train_sync`), ``_records`` (what they yield and return);
the configuration is :mod:`napari_unet.config`.

What :func:`train` does, in order:

1. **Checks the inputs** and says what is wrong in words a biologist can act on (shapes differ, nothing painted,
   only one class painted, float labels, instance labels with hundreds of values ...).
2. **Finds the classes.** Sparse mode (default): label 0 means "not annotated" and is ignored by the loss, every
   other value is a class. Dense mode: every value present is a class (ISBI's 0/255 ground truth), so the
   prediction writes the same values back.
3. **Holds out validation data**: the slices ``config.val_slices``, or automatically the last contiguous share
   (``val_fraction``, 20 %) of the annotated slices; when no slice can be held out (a single painted slice), whole
   strokes (connected components of a class's painted pixels, about 20 % of each class's pixels), with the painted
   pixels within ``val_guard`` (16) px of them withheld from training too, so a held-out pixel is never scored next
   to a trained pixel of the same stroke; where whole strokes cannot validate more classes (one stroke per class,
   dense labels), a stripe at one side of the annotations behind the same guard band; with too few strokes for
   either, nothing, and the setup line says why. Each validation score says what it was measured on
   (``val["kind"]``: "held-out slices", "held-out strokes", "held-out stripe").
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

from ..config import DEFAULT_ITERATIONS, PRESETS, TrainConfig
from ._data import IGNORE, MAX_CHANNELS, MAX_CLASSES, MAX_LABEL_VALUE
from ._live import LiveAnnotations
from ._loop import SNAPSHOT, train, train_sync
from ._loss import class_weights, segmentation_loss
from ._records import BEST_NAME, LAST_NAME, TrainProgress, TrainResult
from ._start import pretrained_checkpoint, pretrained_path

__all__ = [
    "BEST_NAME",
    "DEFAULT_ITERATIONS",
    "IGNORE",
    "LAST_NAME",
    "LiveAnnotations",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_LABEL_VALUE",
    "PRESETS",
    "SNAPSHOT",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "class_weights",
    "pretrained_checkpoint",
    "pretrained_path",
    "segmentation_loss",
    "train",
    "train_sync",
]
