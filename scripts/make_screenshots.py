"""Make the README screenshots with the real napari-unet widgets, and measure what they achieve.

Run headless under a virtual display (napari's canvas needs OpenGL, so not ``QT_QPA_PLATFORM=offscreen``)::

    xvfb-run -a -s "-screen 0 1366x768x24" python scripts/make_screenshots.py [--minutes 1] [--out docs/images]

What it does, as a user would:

1. opens the bundled sample (File ▸ Open Sample ▸ EM membranes (ISBI 2012) (napari U-Net));
2. paints a few strokes of two classes on slice 0 only, in a new Labels layer "strokes" (membrane = 1 along pieces
   of the membranes, cell interior = 2 as short strokes inside some cells; taken from the sample's ground truth so
   that they are correct, like a careful annotator's);
3. trains with the "Train U-Net" dock widget (preset "fast — CPU", the given budget), screenshotting the window
   with the live curve and preview -> ``train_widget.png``;
4. segments the whole stack with the "Segment with U-Net" widget -> ``segment_result.png``;
5. prints the membrane Dice of the segmentation against the ground truth on the slices that were not painted
   (the issue's bar: >= 0.7 after 60 s of training from strokes on one slice).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

MEMBRANE, CELL = 1, 2
PAINTED_SLICE = 0
SCREEN = (1366, 768)  # the screenshots show a laptop screen


def paint_strokes(truth: np.ndarray, seed: int = 0, *, n_windows: int = 8, n_cells: int = 60) -> np.ndarray:
    """A few strokes on one (Y, X) slice, the way an annotator paints them.

    Membrane (1): the centre line of the membranes inside ``n_windows`` windows of 96 x 96 px, 3 px wide.
    Cell interior (2): one straight stroke, 7 px wide, across the inside of ``n_cells`` cells (organelles included,
    as they belong to the interior), kept 4 px away from the membranes.

    Parameters
    ----------
    truth : (Y, X) array
        Ground truth of the slice (1 membrane, 2 cell interior).

    Returns
    -------
    (Y, X) uint8
        0 where nothing is painted, 1 / 2 on the strokes (a few % of the pixels).
    """
    from skimage.draw import line
    from skimage.measure import label, regionprops
    from skimage.morphology import dilation, disk, erosion, skeletonize

    rng = np.random.default_rng(seed)
    ny, nx = truth.shape
    strokes = np.zeros(truth.shape, np.uint8)

    skeleton = skeletonize(truth == MEMBRANE)
    windows = np.zeros_like(skeleton)
    for _ in range(n_windows):
        y0, x0 = rng.integers(0, ny - 96), rng.integers(0, nx - 96)
        windows[y0 : y0 + 96, x0 : x0 + 96] = True
    strokes[dilation(skeleton & windows, disk(1)) & (truth == MEMBRANE)] = MEMBRANE

    inner = erosion(truth == CELL, disk(4))
    cells = [r for r in regionprops(label(inner)) if r.area > 100]
    for index in rng.permutation(len(cells))[:n_cells]:
        coords = cells[index].coords
        a, b = coords[rng.integers(len(coords))], coords[rng.integers(len(coords))]
        rr, cc = line(int(a[0]), int(a[1]), int(b[0]), int(b[1]))
        mask = np.zeros(truth.shape, bool)
        mask[rr, cc] = True
        strokes[dilation(mask, disk(3)) & inner] = CELL
    return strokes


def open_sample_with_strokes(viewer, painted_slice: int):
    """Open the bundled sample in ``viewer``, hide its ground truth and add a "strokes" Labels layer painted on
    ``painted_slice`` by :func:`paint_strokes`; returns (image layer, ground truth array, strokes layer)."""
    viewer.open_sample("napari-unet", "em_membranes")
    image = viewer.layers["EM membranes (ISBI 2012)"]
    truth_layer = viewer.layers["EM membranes labels"]
    truth = np.asarray(truth_layer.data)
    truth_layer.visible = False
    strokes = np.zeros_like(truth, dtype=np.uint8)
    strokes[painted_slice] = paint_strokes(truth[painted_slice])
    layer = viewer.add_labels(
        strokes, name="strokes", scale=image.scale, translate=image.translate, units=image.units
    )
    return image, truth, layer


def _wait(app, seconds: float) -> None:
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        app.processEvents()
        time.sleep(0.02)


def _save(window, path: Path, app) -> None:
    _wait(app, 0.5)
    pixmap = window._qt_window.grab()
    pixmap.save(str(path))
    print(f"wrote {path} ({pixmap.width()} x {pixmap.height()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget (default 1 minute)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-preview", action="store_true", help="train without the live preview layer")
    parser.add_argument("--preset", default="fast — CPU", help="the Train widget's preset")
    for name in ("depth", "features", "patch", "batch_size"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"override the preset's {name}")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice; on a shared, busy machine 1 can be several times faster)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet.metrics import dice_iou

    viewer = napari.Viewer(show=True, title="napari-unet")
    window = viewer.window
    window._qt_window.resize(*SCREEN)  # a laptop screen: both docks must fit it
    app = QApplication.instance()
    image, truth, stroke_layer = open_sample_with_strokes(viewer, PAINTED_SLICE)
    strokes = stroke_layer.data
    painted = np.count_nonzero(strokes[PAINTED_SLICE])
    print(
        f"painted {painted} px on slice {PAINTED_SLICE} ({100 * painted / strokes[0].size:.1f} %): "
        f"{np.count_nonzero(strokes == MEMBRANE)} membrane, {np.count_nonzero(strokes == CELL)} cell interior"
    )
    viewer.dims.set_current_step(0, PAINTED_SLICE)

    _dock, trainer = window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    _dock2, segmenter = window.add_plugin_dock_widget(
        "napari-unet", "Segment with U-Net"
    )  # both, as users have them
    trainer.image_layer.value = image
    trainer.labels_layer.value = stroke_layer
    trainer.budget_unit.value = "minutes"
    trainer.budget.value = args.minutes
    trainer.device.value = args.device
    trainer.preset.value = args.preset
    trainer.preview.value = not args.no_preview
    for name in ("depth", "features", "patch", "batch_size"):
        if getattr(args, name) is not None:
            getattr(trainer, name).value = getattr(args, name)
            trainer.advanced.value = (
                name in ("depth", "features") or trainer.advanced.value
            )  # show what was changed
    settings = {
        name: getattr(trainer, name).value for name in ("depth", "features", "patch", "batch_size", "lr")
    }
    print(f"training '{args.preset}' {settings} for {args.minutes} min")
    viewer.layers.selection.active = stroke_layer
    _wait(app, 1.0)
    viewer.reset_view()

    t0 = time.monotonic()
    if not trainer.train():
        print("training did not start", file=sys.stderr)
        return 1
    shot_at = t0 + 0.85 * args.minutes * 60
    shot_taken = False
    while trainer.runner.busy:
        app.processEvents()
        time.sleep(0.02)
        preview = [layer for layer in viewer.layers if layer.name == "U-Net preview"]
        if not shot_taken and time.monotonic() > shot_at and (preview or args.no_preview):
            _save(window, args.out / "train_widget.png", app)
            shot_taken = True
    print(f"training: {time.monotonic() - t0:.0f} s; {trainer.status.value}")
    print(f"  {trainer.device_info.value}")
    if trainer.session.current is None:
        print("no model was trained", file=sys.stderr)
        return 1
    if not shot_taken:
        _save(window, args.out / "train_widget.png", app)

    segmenter.image_layer.value = image
    segmenter.scope.value = "whole stack"
    t0 = time.monotonic()
    segmenter.run()
    segmenter.runner.wait(timeout=1800)
    print(f"segmentation: {time.monotonic() - t0:.0f} s; {segmenter.status.value}")
    result = viewer.layers[f"{image.name} U-Net"]
    pred = np.asarray(result.data)

    unpainted = [z for z in range(truth.shape[0]) if z != PAINTED_SLICE]
    scores = dice_iou(pred[unpainted], truth[unpainted], [MEMBRANE, CELL])
    print(
        f"membrane Dice on the {len(unpainted)} unpainted slices: {scores[MEMBRANE]['dice']:.3f} "
        f"(cell interior {scores[CELL]['dice']:.3f})"
    )
    per_slice = [dice_iou(pred[z], truth[z], [MEMBRANE])[MEMBRANE]["dice"] for z in unpainted]
    print("  per slice: " + ", ".join(f"z{z}={d:.3f}" for z, d in zip(unpainted, per_slice, strict=True)))

    for layer in viewer.layers:
        layer.visible = layer in (image, result)
    viewer.layers.selection.active = result
    result.show_selected_label, result.selected_label = True, MEMBRANE  # membranes over the image
    viewer.dims.set_current_step(0, 5)
    viewer.reset_view()
    _save(window, args.out / "segment_result.png", app)
    viewer.close()
    return 0 if scores[MEMBRANE]["dice"] >= 0.7 else 2


if __name__ == "__main__":
    sys.exit(main())
