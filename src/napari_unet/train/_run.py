"""One training run as a small object with named phases: setup, step, validate, finish (torch).

:func:`napari_unet.train.train` drives it (the loop and its progress records live there); this module holds the
state a run carries between iterations - model, optimiser, sampler, validator, budget, history, best weights - and
what each phase does to it. The shape follows torch-em's trainer (``fit`` around ``_train_epoch_impl`` /
``_validate_impl``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt_mod
from ..config import DEFAULT_ITERATIONS, TrainConfig
from ..device import autocast, autocast_dtype, select_device
from ..generators import relay
from ..model import UNet
from ..transforms import AugmentConfig
from ._corrections import disagreement
from ._data import AnnotatedData, class_counts, image_normalization, image_plane, read_annotated, to_classes
from ._live import LiveAnnotations
from ._loss import class_weights, segmentation_loss
from ._prefetch import Batches
from ._records import BEST_NAME, LAST_NAME, TrainProgress, TrainResult
from ._sampler import PatchSampler
from ._split import KIND_STRIPE, KIND_STROKES, Split, split_annotations, training_view
from ._start import new_model
from ._validate import Validator

__all__ = ["Budget", "TrainingRun", "lr_factor"]

_WARMUP_SHARE = 0.1  # the warm-up never takes more than this share of the budget
_VAL_SHARE = 0.1  # validation may take at most about this share of the training time

#: a later model scoring within this of the best on held-out strokes replaces it (see _record_validation)
STROKES_MARGIN = 0.01


# ------------------------------------------------------------------------------------------------ schedule
def lr_factor(iteration: int, fraction: float, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay over the budget used (``fraction``).

    The warm-up ends after ``warmup`` iterations or 10 % of the budget, whichever comes first, so that a short time
    budget on a slow device is not spent mostly warming up.
    """
    warm = min(1.0, max((iteration + 1) / warmup, fraction / _WARMUP_SHARE)) if warmup > 0 else 1.0
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
    return warm * (min_ratio + (1.0 - min_ratio) * cosine)


@dataclass(frozen=True)
class Budget:
    """Iterations and/or seconds; training ends at whichever is reached first (1000 iterations without either)."""

    iterations: int | None
    seconds: float | None
    warmup: int

    @classmethod
    def from_config(cls, config: TrainConfig, *, open_ended: bool = False) -> Budget:
        """The config's budget; ``open_ended`` (live training): no default, run until stopped."""
        iterations = config.iterations
        seconds = None if config.minutes is None else 60.0 * config.minutes
        if iterations is None and seconds is None and not open_ended:
            iterations = DEFAULT_ITERATIONS
        warmup = config.warmup if iterations is None else min(config.warmup, max(1, iterations // 10))
        return cls(iterations, seconds, warmup)

    def fraction(self, iteration: int, elapsed: float) -> float:
        """Share used, 0..1: the larger of the iteration and the time share."""
        parts = []
        if self.iterations is not None:
            parts.append(iteration / self.iterations)
        if self.seconds is not None:
            parts.append(elapsed / self.seconds)
        return min(1.0, max(parts)) if parts else 0.0  # open-ended: the schedule stays at its peak

    def spent(self, iteration: int, elapsed: float) -> bool:
        """True when the budget is used up - never before the first iteration, even if setup took all the time."""
        if self.iterations is not None and iteration >= self.iterations:
            return True
        return self.seconds is not None and iteration > 0 and elapsed >= self.seconds


# ------------------------------------------------------------------------------------------------ setup parts
def _build_model(
    config: TrainConfig, data: AnnotatedData, init_ckpt: dict | None, source: str
) -> tuple[UNet, str]:
    """The fine-tuned model (its architecture and weights) or a new one; and where it started, in words."""
    if init_ckpt is not None:
        kwargs = dict(init_ckpt["model_kwargs"])
        if int(kwargs.get("in_channels", 1)) != data.in_channels:
            raise ValueError(
                f"the model from {source} takes {kwargs.get('in_channels', 1)} channel(s), the image has "
                f"{data.in_channels}"
            )
        model = UNet(**kwargs)
        model.load_state_dict(init_ckpt["state_dict"])
        return model, f"fine-tuning {source}"
    return new_model(config, data.in_channels, len(data.label_values))


def _class_names(config: TrainConfig, init_ckpt: dict | None, label_values: list[int]) -> list[str]:
    names = list(config.class_names or (init_ckpt or {}).get("class_names") or [])
    if not names:
        names = [f"class {v}" for v in label_values]
    if len(names) != len(label_values):
        raise ValueError(
            f"class_names has {len(names)} names for {len(label_values)} classes (label values {label_values})"
        )
    return names


def _optimizer(model: UNet, config: TrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for p in model.parameters():
        # BatchNorm scales and biases are not weights to shrink towards zero.
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )


def _checkpoint_paths(checkpoint_dir: str | Path | None) -> tuple[Path | None, Path | None]:
    if checkpoint_dir is None:
        return None, None
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    best, last = folder / BEST_NAME, folder / LAST_NAME
    for stale in (best, last):
        # Files of an earlier run in the same folder must never pass for this run's model (e.g. after a cancel).
        stale.unlink(missing_ok=True)
    return best, last


def _new_history(label_values: Sequence[int]) -> dict[str, Any]:
    return {
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


# ------------------------------------------------------------------------------------------------ the run
class TrainingRun:
    """The state of one training run and its phases.

    Construction is the setup phase (checks, data, split, model, optimiser, outputs); :meth:`step` is one optimiser
    step; :meth:`validate` a validation (a generator of progress records); :meth:`finish` the result.
    """

    def __init__(
        self,
        image: Any,
        labels: Any,
        config: TrainConfig | None,
        *,
        init: str | Path | dict | None = None,
        checkpoint_dir: str | Path | None = None,
        voxel_size: Sequence[float] | None = None,
        live: LiveAnnotations | None = None,
    ) -> None:
        self.t_start = time.monotonic()
        self.live = live
        self.image = image
        if live is not None:
            live.start()  # before the labels are read: a stroke painted meanwhile shows up as a change
        config = TrainConfig() if config is None else config
        config.check()
        self.config = config = config.resolved()
        self._setup_data(image, labels, init)
        self._setup_model(image, voxel_size)
        self._setup_optimisation()
        self.best_path, self.last_path = _checkpoint_paths(checkpoint_dir)
        self.history = _new_history(self.data.label_values)
        self.extra = self._extra()
        self.best_state: dict | None = None
        self.best_dice = -math.inf  # the kept model's score
        self.top_dice = (
            -math.inf
        )  # the highest score so far (the kept model's, or at most STROKES_MARGIN above)
        self.iteration = 0
        self.loss_value = math.nan
        self.lr_now = 0.0
        self.step_done = True  # False while weights are mid-update (an interrupt then must not save them)
        self.val_interval = config.val_every
        self.last_val_iteration = 0
        self.t_train = time.monotonic()

    # ---------------------------------------------------------------------------------------------- setup
    def _setup_data(self, image: Any, labels: Any, init: str | Path | dict | None) -> None:
        config = self.config
        self.data, self.init_ckpt, self.source = read_annotated(image, labels, dense=config.dense, init=init)
        k = len(self.data.label_values)
        nz = 1 if np.ndim(labels) == 2 else int(labels.shape[0])
        if self.live is None:
            self.split = split_annotations(self.data.classes, k, config, nz)
        else:
            # Live: every stroke trains (the set changes while training; a fixed hold-out would not mean much).
            description = "live: no validation, strokes re-read while training"
            self.split = Split(sorted(self.data.classes), [], description=description)
        self.train_data = training_view(self.data, self.split)
        counts = class_counts(self.train_data.classes, k, self.split.train_slices)
        if counts.sum() == 0:
            raise ValueError("no annotations left for training after holding out validation data")
        self.weights = class_weights(
            counts, power=config.class_weight_power, max_ratio=config.max_class_weight
        )

    def _setup_model(self, image: Any, voxel_size: Sequence[float] | None) -> None:
        config, data = self.config, self.data
        self.normalization = image_normalization(image, data.in_channels)
        self.device = select_device(config.device)
        model, self.start = _build_model(config, data, self.init_ckpt, self.source)
        self.class_names = _class_names(config, self.init_ckpt, data.label_values)
        # channels-last activations run the convolutions faster on CPU (oneDNN) and use tensor cores on GPU.
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.forward = torch.compile(model) if config.compile else model
        model.train()
        self.in_size = model.valid_input_size(config.patch, "nearest")
        self.out_size = model.output_size(self.in_size)
        aug = None
        if config.augment:
            aug = AugmentConfig(elastic=bool(config.elastic), intensity=bool(config.intensity))
        self.sampler = PatchSampler(
            self.train_data,
            self.split.train_slices,
            normalization=self.normalization,
            in_size=self.in_size,
            shrink=model.shrink,
            margin=model.halo,
            augment_config=aug,
            rng=np.random.default_rng(config.seed),
            incremental=self.live is not None,
        )
        self.n_corrections = self._focus_on_corrections()
        self.batches = Batches(self.sampler, config.batch_size, prefetch=config.prefetch)
        validator = Validator(data, self.split, self.normalization, model) if self.split.val_slices else None
        self.validator = validator if validator else None
        self.ckpt_fields = {
            "normalization": self.normalization,
            "label_values": data.label_values,
            "class_names": self.class_names,
            "voxel_size": None if voxel_size is None else tuple(float(v) for v in voxel_size),
        }

    def _focus_on_corrections(self) -> int:
        """Fine-tuning: centre ``correction_share`` of the patches on strokes the starting model gets wrong."""
        share = self.config.correction_share
        if self.init_ckpt is None or not share:
            return 0
        wrong = disagreement(
            self.model,
            self.device,
            self.train_data,
            self.split.train_slices,
            self.normalization,
            amp=self.config.amp,
        )
        self.sampler.set_focus(wrong, share)
        return len(wrong)

    def _setup_optimisation(self) -> None:
        self.optimizer = _optimizer(self.model, self.config)
        amp_dtype = autocast_dtype(self.device) if self.config.amp else None
        # Loss scaling only for float16 (bfloat16 has float32's range).
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.weight_t = torch.from_numpy(self.weights).to(self.device)
        self.budget = Budget.from_config(self.config, open_ended=self.live is not None)

    def _extra(self) -> dict:
        split = self.split
        return {
            "train_config": self.config.to_dict(),
            "dense": bool(self.config.dense),
            "train_slices": [int(z) for z in split.train_slices],
            "val_slices": [int(z) for z in split.val_slices],
            "validation": split.description,
            "validation_kind": split.kind,  # what the validation Dice is measured on ("" without validation)
            "validation_label": split.label,
            "patch": int(self.in_size),
            "class_weights": self.weights.tolist(),
            "finetuned_from": self.source or None,
            "start": self.start,
            "live": self.live is not None,
            "corrections": int(self.n_corrections),
        }

    # ---------------------------------------------------------------------------------------------- records
    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    def progress(self, phase: str, message: str, val: dict | None = None) -> TrainProgress:
        return TrainProgress(
            iteration=self.iteration,
            total=self.budget.iterations,
            elapsed=self.elapsed(),
            loss=self.loss_value,
            lr=self.lr_now,
            val=val,
            message=message,
            phase=phase,
            fraction=self.budget.fraction(self.iteration, self.elapsed()),
        )

    def describe(self) -> str:
        """The setup in one line: slices, split, classes, patch geometry, device."""
        split, values = self.split, self.data.label_values
        text = (
            f"{len(split.train_slices)} training slice(s), {split.description}; {len(values)} classes {values}; "
            f"patch {self.in_size} -> {self.out_size}; device {self.device}; start: {self.start}"
        )
        if self.n_corrections:
            text += (
                f"; {self.n_corrections} annotated pixels the starting model gets wrong, "
                f"{100 * self.config.correction_share:.0f} % of the patches centred on them"
            )
        if self.init_ckpt is not None and not self.config.dense and 0 in values:
            text += (
                "; note: the model's class with label value 0 cannot be painted in sparse mode (0 = not annotated), "
                "use dense mode to correct it"
            )
        return text

    def step_message(self) -> str:
        total = f"/{self.budget.iterations}" if self.budget.iterations is not None else ""
        return f"iteration {self.iteration}{total}, loss {self.loss_value:.4f}"

    # ---------------------------------------------------------------------------------------------- live
    def refresh_annotations(self, *, force: bool = False) -> str | None:
        """Live training: take in the slices whose strokes changed; a message when something did, else None."""
        changed = self.live.changed(force=force) if self.live is not None else {}
        if not changed:
            return None
        data, values = self.train_data, self.data.label_values
        self.batches.settle()  # the sampler reads ``data``: no batch may be in preparation while it changes
        unknown: set[int] = set()
        for z, plane in changed.items():
            classes = to_classes(plane, values, self.config.dense)
            if (classes >= 0).any():
                data.classes[z] = classes
                if z not in data.images:
                    data.images[z] = image_plane(self.image, z, len(self.live.labels.shape))
            else:
                data.classes.pop(z, None)
            unknown |= (
                {int(v) for v in np.unique(plane)} - set(values) - ({0} if not self.config.dense else set())
            )
            self.sampler.update_slice(z)
        self._reweight()
        text = f"strokes updated on slice(s) {sorted(changed)}"
        if unknown:
            text += f"; label value(s) {sorted(unknown)} are not classes of this run (restart to add a class)"
        return text

    def has_annotations(self) -> bool:
        return bool(self.sampler.classes_with_pixels)

    def _reweight(self) -> None:
        k = len(self.data.label_values)
        counts = class_counts(self.train_data.classes, k, sorted(self.train_data.classes))
        if counts.sum() > 0:
            config = self.config
            self.weights = class_weights(
                counts, power=config.class_weight_power, max_ratio=config.max_class_weight
            )
            self.weight_t = torch.from_numpy(self.weights).to(self.device)

    # ---------------------------------------------------------------------------------------------- phases
    def budget_spent(self) -> bool:
        return self.budget.spent(self.iteration, self.elapsed())

    def step(self) -> None:
        """One optimiser step on a fresh batch; raises when the loss stops being finite."""
        config, device = self.config, self.device
        x_np, y_np = self.batches.next()
        fraction = self.budget.fraction(self.iteration, self.elapsed())
        self.lr_now = config.lr * lr_factor(self.iteration, fraction, self.budget.warmup, config.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_now
        x = torch.from_numpy(x_np).to(device, non_blocking=True).contiguous(memory_format=self.memory_format)
        y = torch.from_numpy(y_np).to(device, non_blocking=True)
        self.step_done = False
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(device, enabled=config.amp):
            logits = self.forward(x)
        loss = segmentation_loss(
            logits,
            y,
            weight=self.weight_t,
            dice_weight=config.dice_weight,
            entropy_weight=config.entropy_weight,
        )
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step_done = True
        self.iteration += 1
        self.loss_value = float(loss.detach())
        if not math.isfinite(self.loss_value):
            raise RuntimeError(
                f"training diverged: the loss became {self.loss_value} at iteration {self.iteration}; lower the "
                f"learning rate (now {config.lr}). The best model so far stays in the checkpoint folder."
            )
        for key, value in (
            ("iteration", self.iteration),
            ("loss", self.loss_value),
            ("lr", self.lr_now),
            ("elapsed", self.elapsed()),
        ):
            self.history[key].append(value)

    def validation_due(self) -> bool:
        """True (and the interval restarts) when ``val_interval`` iterations have passed since the last one."""
        if self.iteration - self.last_val_iteration < self.val_interval:
            return False
        self.last_val_iteration = self.iteration
        return True

    def validate(self) -> Generator[TrainProgress, Any, dict]:
        """Score the held-out data, record it, keep the best weights, write the checkpoints; returns the scores."""
        t0 = time.monotonic()
        gen = self.validator.run(self.model, self.device, self.config.amp)
        try:
            scores = yield from relay(
                gen, lambda done, total: self.progress("validate", f"validating: tile {done}/{total}")
            )
        finally:
            gen.close()  # on cancel: puts the model back in training mode now, not at garbage collection
        self.last_val_iteration = self.iteration
        self._record_validation(scores, t0)
        return scores

    def _record_validation(self, scores: dict, t0: float) -> None:
        dice, history = scores["mean_dice"], self.history
        # Scores on held-out strokes saturate early (strokes avoid the hard pixels) and wobble by a few thousandths:
        # a later model within STROKES_MARGIN of the best is kept instead - it has learned more of what strokes do
        # not measure. Held-out slices keep the strict maximum.
        margin = STROKES_MARGIN if self.split.kind in (KIND_STROKES, KIND_STRIPE) else 0.0
        is_best = not math.isnan(dice) and dice >= self.top_dice - margin
        scores["best"] = bool(is_best)
        scores["seconds"] = time.monotonic() - t0
        history["val_iteration"].append(self.iteration)
        history["val_elapsed"].append(self.elapsed())
        history["val_mean_dice"].append(dice)
        history["val_dice"].append(dice)
        history["val_mean_iou"].append(scores["mean_iou"])
        history["val_accuracy"].append(scores["accuracy"])
        for v, s in scores["per_class"].items():
            history["val_class_dice"][v].append(s["dice"])
        if not math.isnan(dice):
            self.top_dice = max(self.top_dice, dice)
        if is_best:
            self.best_dice = dice
            history["best_iteration"] = self.iteration
            history["best_val_dice"] = dice
            self.best_state = {
                key: t.detach().to("cpu", copy=True) for key, t in self.model.state_dict().items()
            }
            self.save(self.best_path)
        self.save(self.last_path)

    def stretch_validation_interval(self, t_val: float) -> None:
        """Keep validation under ~10 % of the time: lengthen the interval when a validation was slow."""
        per_iter = (t_val - self.t_train) / max(self.iteration, 1)
        val_cost = time.monotonic() - t_val
        self.val_interval = max(self.config.val_every, math.ceil(val_cost / _VAL_SHARE / max(per_iter, 1e-6)))

    def save(self, path: Path | None) -> None:
        if path is not None:
            ckpt_mod.save_checkpoint(
                path, self.model, **self.ckpt_fields, history=self.history, extra=self.extra
            )

    def keep_on_cancel(self) -> None:
        """Cancelled: keep a usable model on disk. Weights caught mid-update are not saved."""
        self.batches.close()
        if self.iteration > 0 and self.step_done and self.last_path is not None:
            self.save(self.last_path)
            if self.best_path is not None and self.best_state is None:
                self.save(self.best_path)

    def finish(self, stopped: bool) -> TrainResult:
        """Write the final checkpoints, put the best weights in the model (eval mode, CPU) and build the result."""
        self.batches.close()
        if self.validator is None or self.best_state is None:
            self.history["best_iteration"] = self.iteration
            self.save(self.last_path)
            self.save(self.best_path)
        else:
            self.save(self.last_path)
            self.model.load_state_dict(self.best_state)
            self.save(self.best_path)  # again, now with the complete history
        self.model.eval()
        self.model.to("cpu", memory_format=torch.contiguous_format)
        meta = ckpt_mod.build_checkpoint(
            self.model, **self.ckpt_fields, history=self.history, extra=self.extra, include_state=False
        )
        return TrainResult(
            model=self.model,
            meta=meta,
            history=self.history,
            best_path=self.best_path,
            last_path=self.last_path,
            cancelled=stopped,
        )

    def summary(self) -> str:
        elapsed = self.elapsed()
        text = f"trained {self.iteration} iterations in {elapsed:.0f} s ({self.iteration / max(elapsed, 1e-9):.2f} it/s)"
        best = self.history["best_val_dice"]
        if best is not None and self.validator is not None:
            text += (
                f", best validation mean Dice {best:.4f} at iteration {self.history['best_iteration']} "
                f"({self.split.label})"
            )
        return text
