"""What :func:`napari_unet.train.train` yields and returns, and the names of the checkpoints it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the records are plain data; only type checkers need the model class
    from ..model import UNet

__all__ = ["BEST_NAME", "LAST_NAME", "TrainProgress", "TrainResult"]

BEST_NAME = "best.pt"
LAST_NAME = "last.pt"


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
        ``per_class`` ({label value: {"dice", "iou"}}), ``best`` (whether this is the best so far), and what the
        scores were measured on: ``kind`` ("held-out slices", "held-out strokes" or "held-out stripe": show it
        next to the number, e.g. "val. Dice (held-out strokes)") and ``label`` (the same with its numbers, e.g.
        "held-out slices 8-9" or "held-out strokes (9 of 68, 12 % of the painted pixels, 16 px guard)").
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
        takes). Its ``extra`` says how the model was validated: ``validation`` (the split in words),
        ``validation_kind`` and ``validation_label`` (as in :attr:`TrainProgress.val`; ``""`` without
        validation).
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
