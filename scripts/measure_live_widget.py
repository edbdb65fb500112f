"""Measure live training in the real Train widget on the bundled sample: latencies and the viewer's frame time.

Run headless under a virtual display (napari's canvas needs OpenGL)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/measure_live_widget.py [--cold] [--seconds 30]

What it does, as a user would: opens the sample, paints strokes on slice 0 (``make_screenshots.paint_strokes``),
looks at slice 1 and starts the "Train U-Net" widget with its defaults (preset "fast — CPU") and the budget
"live (until Stop)". By default it first lets the widget's engine warm-up finish, as it does while a user paints;
``--cold`` presses Train the moment the widget opens. It prints

* the seconds from pressing Train to the first preview of the slice in view;
* a correction stroke on slice 1, painted through ``Labels.data_setitem`` (what napari's brush calls, so the paint
  event fires) over a block where the first preview is most wrong: the seconds until the engine took it in, until
  the next preview, and until a preview gets most of the stroke's pixels right;
* frame time: the longest gap and the 95th percentile between ticks of a 60 Hz QTimer, and the time of a
  synchronous repaint of the canvas, idle and while training;
* the seconds from Stop to the model being kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_screenshots import open_sample_with_strokes  # noqa: E402 - a sibling script

VIEW_SLICE = 1
DRAWS = [0]


def _frame_times(app, canvas, seconds: float, paint=None) -> dict[str, float]:
    """Event-loop latency and canvas repaint time over ``seconds`` of a real Qt event loop.

    A 60 Hz QTimer's tick gaps show how long the event loop was kept from running; every 250 ms the canvas is
    repainted synchronously (after ``paint()``, a brush dab, when given) and timed.
    """
    from qtpy.QtCore import QEventLoop, QTimer

    ticks: list[float] = []
    repaints: list[float] = []
    DRAWS[0] = 0

    def redraw() -> None:
        t0 = time.perf_counter()
        if paint:
            paint()
        canvas.repaint()
        repaints.append(time.perf_counter() - t0)

    timers = [QTimer(), QTimer()]
    timers[0].timeout.connect(lambda: ticks.append(time.perf_counter()))
    timers[1].timeout.connect(redraw)
    timers[0].start(16)
    if paint is not False:
        timers[1].start(250)
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec_()
    for timer in timers:
        timer.stop()
    gaps = np.diff(ticks) * 1000
    repaints = repaints or [np.nan]
    return {
        "canvas_draws_per_s": DRAWS[0] / seconds,
        "tick_p95_ms": float(np.percentile(gaps, 95)),
        "tick_max_ms": float(gaps.max()),
        "repaint_median_ms": float(np.median(repaints) * 1000),
        "repaint_max_ms": float(np.max(repaints) * 1000),
    }


def _correction(preview: np.ndarray, truth: np.ndarray, side: int = 24) -> tuple[slice, slice]:
    """The ``side`` x ``side`` block where the preview is most wrong about the cell interior."""
    wrong = ((truth == 2) & (preview != 2)).astype(np.int32)
    ii = wrong.cumsum(0).cumsum(1)
    ii = np.pad(ii, ((1, 0), (1, 0)))
    sums = ii[side:, side:] - ii[:-side, side:] - ii[side:, :-side] + ii[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return slice(y, y + side), slice(x, x + side)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="press Train the moment the widget opens")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="live training after the correction stroke"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet._widgets._train_job import Preview
    from napari_unet._widgets.train import BUDGET_LIVE, PREVIEW_LAYER

    viewer = napari.Viewer(show=not os.environ.get("HIDDEN"), title="napari-unet live")
    viewer.window._qt_window.resize(1600, 1000)
    app = QApplication.instance()
    image, truth, layer = open_sample_with_strokes(viewer, 0)
    viewer.dims.set_current_step(0, VIEW_SLICE)
    canvas = viewer.window._qt_viewer.canvas.native
    viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(
        lambda e: DRAWS.__setitem__(0, DRAWS[0] + 1)
    )
    _dock, w = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    w.image_layer.value, w.labels_layer.value = image, layer
    w.budget_unit.value = BUDGET_LIVE
    if not args.cold:
        w.engine_warm_up.join()
    idle = _frame_times(app, canvas, 3.0)
    idle_no_repaint = _frame_times(app, canvas, 3.0, paint=False)

    records: list = []
    t0 = time.monotonic()
    assert w.train()
    w.runner.worker.yielded.connect(lambda r: records.append((time.monotonic(), r)))
    while PREVIEW_LAYER not in viewer.layers:
        app.processEvents()
        time.sleep(0.005)
    first = time.monotonic() - t0
    preview = viewer.layers[PREVIEW_LAYER]
    for t, r in records:
        if getattr(r, "phase", "x") != "train" or r.iteration in (1, 2, 5, 10, 11):
            print(
                f"   +{t - t0:.2f} s {type(r).__name__} {getattr(r, 'phase', '')} {getattr(r, 'iteration', '')}"
            )
    print(
        f"{'cold' if args.cold else 'warm'} start: first preview {first:.2f} s after Train "
        f"(it. {preview.metadata['napari_unet']['iteration']})"
    )

    ys, xs = _correction(preview.data[0], truth[VIEW_SLICE])
    block = truth[VIEW_SLICE, ys, xs] == 2
    zz, yy, xx = np.nonzero(block[np.newaxis])
    indices = (zz + VIEW_SLICE, yy + ys.start, xx + xs.start)
    right_before = float(np.mean(preview.data[0][indices[1:]] == 2))
    layer.data_setitem(indices, 2)  # the brush's own call: the paint event fires
    t_stroke = time.monotonic()
    n_before = len(records)
    busy_no_repaint = _frame_times(app, canvas, args.seconds, paint=False)
    busy = _frame_times(app, canvas, 5.0)
    dabs = iter(range(20, 490, 6))

    def dab() -> None:  # a brush of radius 3 dragged along a row of the slice in view, 4 dabs a second
        layer.paint((VIEW_SLICE, 300, next(dabs, 480)), 1)

    layer.brush_size = 7
    painting = _frame_times(app, canvas, 5.0, paint=dab)

    taken = next(
        (t for t, r in records[n_before:] if "strokes updated on slice(s) [1]" in getattr(r, "message", "")),
        None,
    )
    previews = [(t, r) for t, r in records[n_before:] if isinstance(r, Preview) and r.z == VIEW_SLICE]
    print(
        f"correction: {block.sum()} px of cell interior in a {block.shape[0]}-px block, right before: {right_before:.2f}"
    )
    if taken is not None:
        print(f"  taken in by the engine after {taken - t_stroke:.2f} s")
    for t, r in previews[:8]:
        right = float(np.mean(r.labels[indices[1:]] == 2))
        print(f"  preview at +{t - t_stroke:5.2f} s (it. {r.iteration}): stroke pixels right {right:.2f}")
    good = next((t for t, r in previews if np.mean(r.labels[indices[1:]] == 2) >= 0.8), None)
    print(
        f"  a preview gets >= 80 % of the stroke right after: {'never' if good is None else f'{good - t_stroke:.2f} s'}"
    )
    for name, stats in (
        ("idle, no forced repaint", idle_no_repaint),
        ("idle", idle),
        ("training, no forced repaint", busy_no_repaint),
        ("training", busy),
        ("training + painting", painting),
    ):
        print(f"frame time {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in stats.items()))

    t_stop = time.monotonic()
    w.train_button.native.click()
    while w.runner.busy:
        app.processEvents()
        time.sleep(0.005)
    if os.environ.get("THREADS_CPU"):
        import psutil

        names = {t.native_id: t.name for t in __import__("threading").enumerate()}
        for t in sorted(psutil.Process().threads(), key=lambda t: -(t.user_time + t.system_time))[:8]:
            print(f"   thread {t.id} {names.get(t.id, '?')}: {t.user_time + t.system_time:.1f} s CPU")
    print(f"Stop -> model kept in {time.monotonic() - t_stop:.2f} s: {w.status.value!r}")
    iterations = [r.iteration for _, r in records if getattr(r, "phase", None) == "train"]
    print(f"{iterations[-1]} iterations in {records[-1][0] - t0:.0f} s")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
