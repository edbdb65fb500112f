"""Speed in the viewer: iterations the Train U-Net widget makes in a time budget against ``napari-unet train``.

One command (the viewer needs a display; under a virtual one its OpenGL is software-rendered, which is the
pessimistic case)::

    xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/widget_vs_cli.py --seconds 60 --repeats 2
    xvfb-run -a python benchmarks/widget_vs_cli.py --seconds 20 --repeats 1 --widget-defaults   # the dock as it opens

Both sides train on the same data: the bundled sample's slices 0 and 5 (ISBI 2012, 512 x 512) with the scribbles of
``scripts/make_screenshots.py`` on both (membrane 1, cell interior 2), nothing of the other slices. Both use the
``fast-cpu`` preset, its patch and batch, the EM-pretrained start, automatic validation (slice 5 held out),
``val_every`` 50 (the CLI's, and since the preview stopped waiting for validations also the dock's; without
``--widget-defaults`` the widget's control is set to it explicitly), the device "auto" (CPU here) and torch's default thread count. The widget keeps its live preview on, as a
user has it.

* CLI: ``napari-unet train IMG STROKES -o M.pt --minutes S/60`` in a fresh process; its iterations are read from
  the "saved ... (N iterations" line. Two of them by default: ``cli`` as shipped, and ``cli:passive`` with
  ``OMP_WAIT_POLICY=PASSIVE``, the OpenMP wait policy the widget sets in napari's process (see
  ``napari_unet._widgets._train_job.calm_openmp``): on a CPU shared with other jobs the CLI's spinning OpenMP
  threads can lose 90 % of its speed, so ``widget / cli:passive`` is the like-with-like ratio and ``widget / cli``
  what a user of each gets as shipped.
* Widget: a fresh process opens ``napari.Viewer(show=True)``, adds the two layers, docks "Train U-Net" through the
  plugin manager, sets the budget, presses Train and runs the Qt event loop until the runner reports the end; the
  iterations are the outcome's. The engine's own clock (it starts when the run is set up, in both) ends both runs.
  Each widget run also reports the CPU seconds of the GUI thread and of the process, and the previews' time.

Each round runs every side once, in a rotated (and every other round reversed) order, so that a neighbour's load on
a shared machine falls on all sides; each round gives a ratio widget / CLI, and the median and the range of the
ratios are printed with the ratio of the sums. ``--variants`` adds widget runs with parts of the display switched off
(``widget:no-bar+no-plot``, ``widget:hidden``, ...) or from another copy of the sources (``widget@/path/to/src``,
for an A/B of a change). ``--out`` writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAINTED = (0, 5)  # the training slices of the sample that get strokes (as bench_interactive's membranes task)
SCALE = (50.0, 4.0, 4.0)


def make_data(folder: Path) -> tuple[Path, Path]:
    """Write the two-slice image and its strokes to ``folder``; returns (image path, strokes path)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_screenshots import paint_strokes

    from napari_unet._sample_data import IMAGE_FILE, LABELS_FILE, sample_path
    from napari_unet.io import read_array, write_tiff

    image = np.asarray(read_array(sample_path(IMAGE_FILE))[0])[list(PAINTED)]
    truth = np.asarray(read_array(sample_path(LABELS_FILE))[0])[list(PAINTED)]
    strokes = np.stack([paint_strokes(t, seed=z) for z, t in zip(PAINTED, truth, strict=True)])
    image_path, strokes_path = folder / "image.tif", folder / "strokes.tif"
    write_tiff(image_path, image, scale=SCALE, units="nm", overwrite=True)
    write_tiff(strokes_path, strokes, scale=SCALE, units="nm", labels=True, overwrite=True)
    return image_path, strokes_path


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------------------------------- CLI run
def run_cli(image: Path, strokes: Path, seconds: float, folder: Path, variant: str = "cli") -> dict:
    """``napari-unet train`` in a fresh process; ``cli:passive`` with ``OMP_WAIT_POLICY=PASSIVE`` (what the
    widget's process uses: napari_unet._widgets._train_job.calm_openmp)."""
    env = dict(os.environ)
    if variant == "cli:passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif variant != "cli":
        raise SystemExit(f"unknown CLI variant {variant!r}: 'cli' or 'cli:passive'")
    exe = Path(sys.executable).with_name("napari-unet")
    out = folder / "cli.pt"
    cmd = [str(exe), "train", str(image), str(strokes), "-o", str(out), "--minutes", f"{seconds / 60:g}"]
    cmd.append("--overwrite")
    load = load_avg()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    saved = re.search(r"saved .* \((\d+) iterations", proc.stdout)
    if saved is None:
        raise RuntimeError(f"no iteration count in the CLI's output:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    return {
        "side": variant,
        "iterations": int(saved.group(1)),
        "wall_seconds": round(wall, 1),
        "load_before": load,
    }


# -------------------------------------------------------------------------------------------------- widget run
def run_widget(image: Path, strokes: Path, seconds: float, variant: str, val_every: int | None) -> dict:
    """In a child process: one training run in the dock widget of a real viewer (see :func:`widget_child`)."""
    cmd = [sys.executable, __file__, "--_widget-child", str(image), str(strokes), "--seconds", str(seconds)]
    variant, _, source = variant.partition("@")
    cmd += ["--variant", variant]
    if val_every is not None:
        cmd += ["--val-every", str(val_every)]
    env = dict(os.environ)
    if source:  # another copy of napari-unet's sources (an A/B of a change): found before the installed one
        env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    load = load_avg()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.monotonic() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"widget run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    result = json.loads(lines[-1])
    result.update(
        side=variant + (f"@{source}" if source else ""), wall_seconds=round(wall, 1), load_before=load
    )
    return result


def _thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) a thread of this process has used so far (Linux)."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_previews(spent: list) -> None:
    """Time every preview the widget's job makes (wall seconds in the worker thread, where training waits)."""
    from napari_unet._widgets import _train_job

    run = _train_job.Previewer.run

    def timed(self, iteration):
        t0 = time.monotonic()
        try:
            return (yield from run(self, iteration))
        finally:
            spent.append(time.monotonic() - t0)

    _train_job.Previewer.run = timed


#: what a widget variant switches off, to see what each part costs ("widget" is the dock as a user has it)
SWITCHES = {
    "no-bar": "no napari progress bar (nor its animated 'in progress' indicator)",
    "no-plot": "no loss curve",
    "no-status": "no status-line updates",
    "no-preview": "live preview off",
    "hidden": "napari.Viewer(show=False): nothing is painted",
}


def _diagnose(w, switches) -> None:
    """Switch parts of the widget's display off (a variant such as ``widget:no-bar+no-plot``)."""
    from napari_unet._widgets import _runner

    if "no-bar" in switches:  # no activity-dock progress bar (and no animated "in progress" indicator)
        start = _runner.Runner.start
        _runner.Runner.start = lambda self, job, **kw: start(self, job, **{**kw, "show_progress": False})
    if "no-plot" in switches:
        w.plot.add_loss = w.plot.add_validation = lambda *a: None
    if "no-status" in switches:
        type(w)._status_text = lambda self, record, note="": "…"


def widget_child(args: argparse.Namespace) -> int:
    """One widget run (this process only): viewer, layers, dock, Train, Qt event loop until the end."""
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_unet._widgets.train import BUDGET_MINUTES
    from napari_unet.io import read_array

    image = np.asarray(read_array(args.image)[0])
    strokes = np.asarray(read_array(args.strokes)[0])
    switches = set(args.variant.partition(":")[2].split("+")) - {""}
    unknown = switches - set(SWITCHES)
    if unknown:
        raise SystemExit(f"unknown switch(es) {sorted(unknown)}; choose from {sorted(SWITCHES)}")
    viewer = napari.Viewer(show="hidden" not in switches)
    viewer.add_image(image, name="em", scale=SCALE)
    viewer.add_labels(strokes, name="strokes", scale=SCALE)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    w.budget_unit.value = BUDGET_MINUTES
    w.budget.value = args.seconds / 60
    w.preview.value = "no-preview" not in switches
    if args.val_every is not None:
        w.advanced.value = True
        w.val_every.value = args.val_every
        w.advanced.value = False
    previews: list[float] = []
    _timed_previews(previews)
    _diagnose(w, switches)
    w.engine_warm_up.join()  # a user paints for a while before Train: the engine is imported by then

    records = {"train": 0, "validate": 0, "preview": 0, "other": 0}

    def count(record) -> None:
        phase = getattr(record, "phase", None)
        if phase in records:
            records[phase] += 1
        elif type(record).__name__ == "Preview":
            records["preview"] += 1
        else:
            records["other"] += 1

    outcomes = []
    loop = QEventLoop()
    w.runner.finished.connect(lambda out: (outcomes.append(out), QTimer.singleShot(0, loop.quit)))
    assert w.train(), "the widget did not start"
    w.runner.worker.yielded.connect(count)
    t0, gui0, cpu0 = time.monotonic(), _thread_cpu(threading.main_thread().native_id), time.process_time()
    loop.exec()
    wall = time.monotonic() - t0
    gui_cpu, cpu = _thread_cpu(threading.main_thread().native_id) - gui0, time.process_time() - cpu0
    (out,) = outcomes
    if out.error is not None:
        raise out.error
    value = out.value
    history = value.history or {}
    elapsed = (history.get("elapsed") or [None])[-1]
    print(
        json.dumps(
            {
                "iterations": int(value.iterations),
                "engine_seconds": round(float(elapsed), 1) if elapsed is not None else None,
                "train_seconds": round(wall, 1),
                "records": records,
                "gui_cpu_seconds": round(gui_cpu, 1),
                "process_cpu_seconds": round(cpu, 1),
                "previews": len(previews),
                "preview_seconds": round(sum(previews), 1),
                "status": w.status.value,
            }
        )
    )
    viewer.close()
    return 0


# ------------------------------------------------------------------------------------------------------- main
def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="training budget of every run (default 60)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="rounds of CLI + widget runs (default 2)")
    parser.add_argument(
        "--widget-defaults",
        action="store_true",
        help="leave the widget's controls as the dock opens (validate every 50 since previews take snapshots; "
        "it was 25 before)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["widget"],
        metavar="VARIANT",
        help="widget runs of each round: 'widget' (as a user has it) or 'widget:SWITCH+SWITCH' with switches "
        + "; ".join(f"{k}: {v}" for k, v in SWITCHES.items())
        + ". A suffix '@SRC' runs that variant with napari-unet imported from the folder SRC (A/B of a change)",
    )
    parser.add_argument(
        "--clis",
        nargs="+",
        default=["cli", "cli:passive"],
        choices=["cli", "cli:passive"],
        help="CLI runs of each round: as shipped (which now sets OMP_WAIT_POLICY=PASSIVE itself), and with it set "
        "explicitly (kept to compare with older versions)",
    )
    parser.add_argument("--out", type=Path, help="write the runs and ratios as JSON here")
    parser.add_argument("--_widget-child", nargs=2, metavar=("IMAGE", "STROKES"), help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="widget", help=argparse.SUPPRESS)
    parser.add_argument("--val-every", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._widget_child:
        args.image, args.strokes = (Path(p) for p in args._widget_child)
        return widget_child(args)

    val_every = None if args.widget_defaults else 50
    sides = [*args.clis, *args.variants]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="widget-vs-cli-") as tmp:
        folder = Path(tmp)
        image, strokes = make_data(folder)
        print(
            f"{args.seconds:g} s budget, {args.repeats} round(s) of {sides}, widget val_every "
            f"{val_every or 'as the dock opens'}, {os.cpu_count()} CPUs, load {load_avg()}",
            flush=True,
        )
        for r in range(args.repeats):
            # rotate the order (and reverse it every other round) so that no side always runs first or last
            order = sides[r % len(sides) :] + sides[: r % len(sides)]
            for side in order[::-1] if r % 2 else order:
                if side.startswith("cli"):
                    res = run_cli(image, strokes, args.seconds, folder, side)
                else:
                    res = run_widget(image, strokes, args.seconds, side, val_every)
                res["round"] = r
                runs.append(res)
                keys = ("gui_cpu_seconds", "process_cpu_seconds", "previews", "preview_seconds", "records")
                extra = "".join(f", {k} {res[k]}" for k in keys if k in res)
                print(
                    f"round {r} {side:14s} {res['iterations']:5d} it. (wall {res['wall_seconds']} s, "
                    f"load {res['load_before']}{extra})",
                    flush=True,
                )
    summary = {}
    for base in args.clis:
        cli = {x["round"]: x["iterations"] for x in runs if x["side"] == base}
        for variant in args.variants:
            mine = {x["round"]: x["iterations"] for x in runs if x["side"] == variant}
            ratios = [mine[r] / max(cli[r], 1) for r in sorted(mine)]
            of_sums = sum(mine.values()) / max(sum(cli.values()), 1)
            summary[f"{variant} / {base}"] = {"ratios": ratios, "ratio_of_sums": of_sums}
            print(
                f"{variant} / {base} iterations in {args.seconds:g} s: {spread(ratios)}; "
                f"ratio of the sums {of_sums:.2f}"
            )
    if args.out:
        report = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "summary": summary}
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
