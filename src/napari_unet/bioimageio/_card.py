"""The human side of an exported model: the model card (README.md) and the cover image. numpy + imageio only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["model_card", "write_cover"]

_COLOURS = np.array(
    [[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178], [213, 94, 0]],
    dtype=np.uint8,
)


def write_cover(path: Path, image: np.ndarray, classes: np.ndarray) -> None:
    """A 2:1 PNG: the test input (grey, 1-99 % stretched) beside its predicted classes (colour-blind safe)."""
    import imageio.v3 as iio

    low, high = np.percentile(image, [1, 99])
    grey = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    grey = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    colour = _COLOURS[1:][classes % (len(_COLOURS) - 1)]
    iio.imwrite(path, np.concatenate([grey, colour], axis=1), extension=".png")


def _history_lines(history: dict | None) -> list[str]:
    if not history:
        return ["- training history: not recorded"]
    iterations = history.get("iteration") or []
    lines = [f"- iterations: {iterations[-1] if iterations else 0}"]
    dice = history.get("val_mean_dice") or []
    if dice:
        best = int(np.nanargmax(dice))
        at = (history.get("val_iteration") or [None] * len(dice))[best]
        lines.append(f"- best validation mean Dice: {dice[best]:.3f} (iteration {at})")
    loss = history.get("loss") or []
    if loss:
        lines.append(f"- last training loss: {loss[-1]:.4f}")
    return lines


def model_card(meta: dict, *, name: str, source: str, license_id: str, halo: int, in_size: int) -> str:
    """The README.md of the package: what the model is, its training data, classes, figures and terms."""
    extra: dict[str, Any] = meta.get("extra") or {}
    norm = meta.get("normalization") or {}
    classes = "\n".join(
        f"| {i} | {value} | {cls} |"
        for i, (value, cls) in enumerate(zip(meta["label_values"], meta["class_names"], strict=True))
    )
    kwargs = meta["model_kwargs"]
    training = [
        f"- trained with napari-unet {meta.get('napari_unet_version', '?')} from `{source}`",
        f"- voxel size of the training data (Z, Y, X): {meta.get('voxel_size') or 'unknown'}",
    ]
    for key in ("start", "validation_label", "train_slices", "val_slices", "dense", "corrections"):
        if key in extra:
            training.append(f"- {key.replace('_', ' ')}: {extra[key]}")
    return f"""# {name}

A 2D U-Net (depth {kwargs["depth"]}, {kwargs["features"]} features, padding '{kwargs["padding"]}') trained with
[napari-unet](https://github.com/napari/napari-unet) for semantic segmentation of electron-microscopy slices.
It takes one slice (batch, channel, y, x) and returns per-class probabilities (softmax over the channel axis);
the label of a pixel is the class of highest probability.

## Input and preprocessing

- {kwargs["in_channels"]} channel(s), float32 raw intensities
- normalisation (preprocessing `scale_linear`): `(x - {norm.get("low")}) / ({norm.get("high")} - {norm.get("low")})`,
  the {norm.get("low_pct", "?")} and {norm.get("high_pct", "?")} percentiles of the training image
- tiles: any side `min + n * step` (see rdf.yaml); overlap-tile prediction crops a halo of {halo} pixels per side
  from each output tile (a tile of {in_size} pixels keeps {in_size - 2 * halo})

## Classes

| channel | label value | class |
|---|---|---|
{classes}

## Training data

{chr(10).join(training)}

## Figures

{chr(10).join(_history_lines(meta.get("history")))}

## Validation

- the package's test tensors are this model's output on a tile of `{source}`'s image (or napari-unet's ISBI 2012
  sample crop); `bioimageio test` reproduces them with both weight formats
- on held-out data during training: see Figures; measure it on your own data with `napari-unet evaluate`

## Use

- napari-unet: `napari-unet predict stack.tif --model this.zip -o labels.tif`, or the model file of the Segment dock
- any bioimage.io consumer (bioimageio.core, deepImageJ, ilastik, ...) through `rdf.yaml`

## Terms

Released under {license_id} by its author. The U-Net architecture is from Ronneberger, Fischer and Brox (2015).
Validate the model on your own data before relying on its output.
"""
