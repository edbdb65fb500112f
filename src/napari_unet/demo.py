"""``napari-unet demo``: the whole job on the bundled EM sample, end to end, with no GUI.

Trains on the first slices of the bundled ISBI 2012 crop, holds the last two slices out, predicts the whole stack with
overlap-tile prediction, writes the model, the prediction TIFF and a PNG overview (image | ground truth | prediction of a
held-out slice), and prints the metrics on the held-out slices.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .config import TrainConfig

SAMPLE_IMAGE = "isbi2012_crop.tif"
SAMPLE_LABELS = "isbi2012_crop_labels.tif"
MEMBRANE = 1  # sample labels: 1 = membrane, 2 = cell interior
HELD_OUT = (8, 10)


def sample_paths() -> tuple[Path, Path]:
    """Paths of the bundled sample image and labels (inside the installed package)."""
    from ._sample_data import sample_path

    return sample_path(SAMPLE_IMAGE), sample_path(SAMPLE_LABELS)


TITLE_HEIGHT = 24  # px of the strip above the panels that names them


def overview_png(
    image: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    membrane: int = MEMBRANE,
    titles: tuple[str, str, str] = ("image", "ground truth (membranes)", "prediction (membranes)"),
) -> np.ndarray:
    """Side-by-side RGB picture of one slice: image | ground truth | prediction, membranes drawn in magenta, each
    panel named in a white strip above it.

    Parameters
    ----------
    image : (Y, X) array
        Raw slice, any dtype (scaled to 0..255 by its 1st/99.8th percentiles).
    truth, pred : (Y, X) integer arrays
        Label slices; pixels equal to ``membrane`` are coloured.
    titles : three str
        The panels' names.

    Returns
    -------
    (TITLE_HEIGHT + Y, 3 * X + 2 * gap, 3) uint8
    """
    img = image.astype(np.float32)
    lo, hi = np.percentile(img, (1, 99.8))
    gray = np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)

    def paint(mask: np.ndarray) -> np.ndarray:
        out = (rgb * 0.45).astype(np.uint8)
        out[mask] = (255, 0, 255)
        return out

    gap = np.full((gray.shape[0], 8, 3), 255, np.uint8)
    panels = np.concatenate([rgb, gap, paint(truth == membrane), gap, paint(pred == membrane)], axis=1)
    width = gray.shape[1]
    strip = np.full((TITLE_HEIGHT, panels.shape[1], 3), 255, np.uint8)
    for i, title in enumerate(titles):
        x = i * (width + gap.shape[1])
        strip[:, x : x + width] = _title(title, width)
    return np.concatenate([strip, panels], axis=0)


def _title(text: str, width: int) -> np.ndarray:
    """(TITLE_HEIGHT, width, 3) uint8: ``text`` in black on white, cut at the panel's width."""
    from PIL import Image, ImageDraw, ImageFont  # scikit-image's dependency

    tile = Image.new("RGB", (width, TITLE_HEIGHT), (255, 255, 255))
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: one small bitmap size
        font = ImageFont.load_default()
    ImageDraw.Draw(tile).text((4, 4), text, fill=(0, 0, 0), font=font)
    return np.asarray(tile, dtype=np.uint8)


def demo_config(device: str, *, minutes: float | None = 3.0, iterations: int | None = None) -> TrainConfig:
    """The demo's :class:`~napari_unet.config.TrainConfig`: the preset for the device, slices 8-9 held out.

    Parameters
    ----------
    device : str
        The selected device ("cpu", "cuda:0", "mps"): "cpu" trains the "fast-cpu" preset, any other
        "accurate-gpu".
    minutes, iterations :
        The budget; ``iterations``, when given, replaces ``minutes``.
    """
    return TrainConfig.preset(
        "fast-cpu" if device == "cpu" else "accurate-gpu",
        device=device,
        val_slices=HELD_OUT,
        minutes=None if iterations else minutes,
        iterations=iterations or None,
    )


def run_demo(
    out_dir: Path,
    *,
    minutes: float | None = 3.0,
    iterations: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
    stream=None,
) -> int:
    """Run the demo; returns a process exit code (0 on success).

    Raises
    ------
    FileExistsError
        When ``out_dir`` already holds demo outputs and ``overwrite`` is False.
    """
    import imageio.v3 as iio

    from ._console import predict_with_progress, train_to_file
    from .checkpoint import load_checkpoint
    from .device import describe_device, select_device
    from .io import read_array, write_tiff
    from .io._atomic import atomic_path
    from .metrics import evaluate, format_metrics

    stream = stream or sys.stdout
    out_dir = Path(out_dir)
    outputs = [out_dir / n for n in ("model.pt", "prediction.tif", "overview.png")]
    if any(p.exists() for p in outputs) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds demo outputs; pass --overwrite to replace them")
    out_dir.mkdir(parents=True, exist_ok=True)

    image_path, labels_path = sample_paths()
    image, scale, units = read_array(image_path, with_units=True)
    labels, _ = read_array(labels_path)
    image, labels = np.asarray(image), np.asarray(labels)
    dev = select_device(device)
    print(
        f"sample: {image.shape[0]} EM slices of {image.shape[1]}x{image.shape[2]} (ISBI 2012 crop)",
        file=stream,
    )
    print(f"device: {describe_device(dev)}", file=stream)

    config = demo_config(str(dev), minutes=minutes, iterations=iterations)
    budget = f"{iterations} iterations" if iterations else f"{minutes:g} min"
    print(
        f"training on slices 0-{HELD_OUT[0] - 1}, validating on {HELD_OUT[0]}-{HELD_OUT[1] - 1}, {budget}",
        file=stream,
    )
    t0 = time.monotonic()
    if train_to_file(image, labels, config, outputs[0], voxel_size=scale) is None:
        raise KeyboardInterrupt  # Ctrl-C during training: model.pt holds the best model so far
    train_s = time.monotonic() - t0

    model, meta = load_checkpoint(outputs[0])
    pred = predict_with_progress(image, model, meta, device=str(dev)).labels
    write_tiff(outputs[1], pred, scale=scale, units=units, labels=True, overwrite=True)
    s = HELD_OUT[1] - 1
    with atomic_path(outputs[2]) as tmp:  # whole or not at all, like every file napari-unet writes
        iio.imwrite(tmp, overview_png(image[s], labels[s], pred[s]), extension=".png")

    held = slice(*HELD_OUT)
    metrics = evaluate(pred[held], labels[held], foreground=MEMBRANE)
    print(
        f"\ntrained {train_s:.0f} s; metrics on held-out slices {HELD_OUT[0]}-{HELD_OUT[1] - 1}:", file=stream
    )
    print(format_metrics(metrics), file=stream)
    for p in outputs:
        print(f"wrote {p}", file=stream)
    return 0
