"""Training configuration: :class:`TrainConfig` (a frozen dataclass) and its named presets (no torch).

Built once, never patched: ``TrainConfig.preset(name, **overrides)`` or ``dataclasses.replace``. The CLI, the demo
and the Train widget all build their configs here, so a default lives in exactly one place; the widget reads the
values its controls show from :meth:`TrainConfig.preset` at run time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ITERATIONS", "DEFAULT_MINUTES", "PRESETS", "TrainConfig", "parse_auto_int"]

DEFAULT_ITERATIONS = 1000  # when neither iterations nor minutes is given
# The budget the Train widget and `napari-unet train` offer when the user names none (the same in both).
DEFAULT_MINUTES = 2.0
_SPARSE_ENTROPY_WEIGHT = 2.0  # entropy minimisation on unpainted pixels, sparse mode (see TrainConfig)


def parse_auto_int(value: Any, name: str, *, minimum: int = 1) -> int | None:
    """Read an "auto or whole number" setting: ``None`` for auto, else the integer (``>= minimum``).

    Accepts ``None``, the word ``"auto"`` (any case, spaces ignored), an int, or a string of digits.

    Raises
    ------
    ValueError
        Naming ``name`` and what it got, for anything else (0, negatives, fractions, other words).
    """
    expected = f"{name} must be 'auto' or a whole number of at least {minimum}, got {value!r}"
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return None
        try:
            value = int(text)
        except ValueError:
            raise ValueError(expected) from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or int(value) != value
        or value < minimum
    ):
        raise ValueError(expected)
    return int(value)


# ------------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`train` needs besides the data.

    The defaults ("fast-cpu") are tuned to learn as much as possible per CPU minute: a compact U-Net (4 levels,
    8 features, BatchNorm, same padding), AdamW at 3e-3, on 96 x 96 patches, 8 per batch for sparse strokes and
    256 x 256 patches, 4 per batch for dense labels (the measurements behind these choices are in the README's
    "How the defaults were chosen"). :meth:`preset` gives named alternatives ("accurate-gpu", "paper").

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
        strokes buy more iterations per CPU minute; dense ground truth gains from the larger context.
    lr, weight_decay : float
        Peak learning rate and decoupled weight decay of AdamW.
    iterations, minutes :
        Budget: training stops at whichever is reached first; with neither, 1000 iterations.
    val_slices : (start, stop) or None
        Slices ``[start, stop)`` held out for validation; None = automatic.
    val_fraction : float or None
        Share held out automatically: of the annotated slices; when no slice can be held out (a single annotated
        slice, or each class on one slice only), of each class's painted pixels, as whole strokes (connected
        components) behind a guard band (``val_guard``), or, where whole strokes cannot validate more classes, as
        a stripe at one side of the annotations behind the same band. 0 disables validation (the last model is then
        also the "best"). None (default): 0.2.
    val_guard : int
        Pixels around held-out strokes (or a held-out stripe) whose annotations do not train either, so that no
        held-out pixel is scored next to a trained pixel of the same stroke (default 16). When this leaves some
        class too little to train on, fewer strokes are held out, or none, and the setup line says why.
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
        complete ground truth already holds the variation (there they slow learning within a CPU budget).
    class_names : list of str or None
        One name per class (in the order of the sorted label values); default "class <value>".
    dice_weight : float
        Weight of the soft Dice term added to cross-entropy (0 = cross-entropy only).
    entropy_weight : float or None
        Weight of an entropy-minimisation term on the pixels that are not annotated (Grandvalet & Bengio 2005):
        the prediction is asked to be confident there too, which moves class boundaries out of the unpainted gaps
        between strokes and onto the image's own edges. None (default): 2.0 in sparse mode, 0 in dense mode
        (nothing is unannotated).
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
    prefetch : bool
        Prepare the next batch of patches in a background thread while the model steps (default True; the batches
        are the same, in the same order).
    channels_last : bool
        Run the network on channels-last tensors (default True: faster convolutions with oneDNN on CPUs and tensor
        cores on GPUs).
    compile : bool
        ``torch.compile`` the network (default False: see the README's speed measurements for what it costs and
        brings on a CPU).
    start : {"pretrained", "scratch"}
        Where a new model (no ``init``) starts. "pretrained" (default): every layer but the head from the
        EM-pretrained model shipped with napari-unet (membranes and mitochondria; see its model card), a fresh
        head for the user's classes; used when the image has one channel and the architecture is the default,
        else the model starts from random weights and the setup line says why. "scratch": random weights.
    correction_share : float
        When fine-tuning (``init``): share of the patches centred on annotated pixels the starting model gets wrong
        - the corrections a user painted over its mistakes. 0 (default) treats every stroke alike: in the
        measurement of ``benchmarks/bench_corrections.py`` (see the README) a share of 0.5 moved the result less
        than plain fine-tuning at equal iterations.
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
    val_guard: int = 16
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
    correction_share: float = 0.0
    prefetch: bool = True
    channels_last: bool = True
    compile: bool = False
    start: str = "pretrained"

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
        if isinstance(self.val_guard, bool) or int(self.val_guard) != self.val_guard or self.val_guard < 0:
            raise ValueError(f"val_guard must be a whole number of pixels >= 0, got {self.val_guard!r}")
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
        if self.start not in ("pretrained", "scratch"):
            raise ValueError(f"start must be 'pretrained' or 'scratch', got {self.start!r}")
        if not 0 <= self.correction_share < 1:
            raise ValueError(f"correction_share must be in [0, 1), got {self.correction_share}")
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
        "start": "scratch",  # the pretrained model has the fast-cpu architecture
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
        "start": "scratch",  # the pretrained model has the fast-cpu architecture
    },
}
