"""Interactive in seconds: quality on unpainted slices after 5, 15, 30, 60 s of training from simulated strokes.

One command, one table: napari-unet from scratch, from the shipped EM-pretrained start and in live mode (what the
live preview shows t seconds after Train), against napari-convpaint and a random forest on ilastik-style filters,
all on the same strokes in the same run::

    python benchmarks/bench_interactive.py                          # ~25 min on 2 CPU cores
    python benchmarks/bench_interactive.py --budgets 5 15 --styles scribbles --datasets membranes
    NAPARI_UNET_PRETRAINED=other.pt python benchmarks/bench_interactive.py   # another pretrained body

Data sets (the strokes are taken from the ground truth, so they are correct, like a careful annotator's):

* ``membranes``: the bundled sample (ISBI 2012 slices 0-9, 512 x 512; membrane 1, cell 2), strokes on slices 0 and 5,
  membrane Dice on the eight other slices. The pretraining never saw ISBI slices 0-9.
* ``mitochondria``: the Lucchi FIB-SEM volume (``../shared/data/lucchi``, a derived copy; read its README), strokes
  on slices 10, 35, 60, 85, 110 (mitochondrion 2, background 1), mitochondria IoU on held-out slices 135-164 (every
  5th). The pretraining read the labels of Lucchi slices 0-129 (never 130-164): these figures are held out but not
  on an unseen stack; for that, pretrain without Lucchi (``scripts/pretrain_em.py --tasks membrane``) and pass the
  model with ``NAPARI_UNET_PRETRAINED``.

Stroke styles: ``scribbles`` (short strokes inside some objects and in the background, membrane centre lines) and
``dots`` (scattered 3 x 3 dots of every class). Peers train to completion (their fitting time is printed) and are
scored once; the U-Net columns are scored at every budget. ``--repeats`` reruns with other strokes and seeds and
prints the mean and the spread (min-max).

Peers: ``benchmarks/_peers.py`` (random forest: scikit-learn, ``pip install -e ".[bench]"``; napari-convpaint: a
venv of its own, see ``benchmarks/peers-requirements.txt``; a peer that is not installed is listed as such).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))
from bench_corrections import DATA as LUCCHI  # noqa: E402
from bench_corrections import HELD_OUT, PAINTED, scribbles  # noqa: E402
from make_screenshots import paint_strokes  # noqa: E402

UNET = ("scratch", "pretrained", "live")


@dataclasses.dataclass
class Task:
    """One data set with one stroke style: training slices and strokes, evaluation slices and truth."""

    name: str
    metric: str  # "dice" or "iou" of ``target``
    target: int
    train_images: np.ndarray  # (n, Y, X)
    strokes: np.ndarray  # (n, Y, X) uint8, 0 = not annotated
    test_images: np.ndarray
    test_truth: np.ndarray  # (m, Y, X): the class values of the strokes

    def score(self, pred: np.ndarray) -> float:
        from napari_unet.metrics import dice_iou

        return float(
            dice_iou(np.asarray(pred) == self.target, self.test_truth == self.target)[True][self.metric]
        )

    def size_ratio(self, pred: np.ndarray) -> float:
        """Predicted / true pixels of the target (> 1: drawn too thick or too much of it)."""
        return float((np.asarray(pred) == self.target).sum() / max(1, (self.test_truth == self.target).sum()))

    def scores(self, pred: np.ndarray) -> dict:
        return {"score": self.score(pred), "size_ratio": round(self.size_ratio(pred), 3)}

    @property
    def painted_share(self) -> float:
        return float((self.strokes > 0).mean())


def dots(truth: np.ndarray, rng: np.random.Generator, per_class: int = 150) -> np.ndarray:
    """Scattered 3 x 3 dots: ``per_class`` at random pixels of every class, kept inside their class."""
    from scipy import ndimage

    out = np.zeros(truth.shape, np.uint8)
    for value in np.unique(truth):
        inner = ndimage.binary_erosion(truth == value)
        ys, xs = np.nonzero(inner)
        if ys.size == 0:
            continue
        pick = rng.choice(ys.size, size=min(per_class, ys.size), replace=False)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out[ys[pick] + dy, xs[pick] + dx] = value
    return np.where(out == truth, out, 0).astype(np.uint8)


def membrane_task(style: str, seed: int) -> Task:
    import tifffile

    root = HERE.parent / "sample_data"
    image = tifffile.imread(root / "isbi2012_crop.tif")
    truth = tifffile.imread(root / "isbi2012_crop_labels.tif")  # 1 membrane, 2 cell
    painted, rest = [0, 5], [z for z in range(image.shape[0]) if z not in (0, 5)]
    rng = np.random.default_rng(seed)
    if style == "scribbles":
        strokes = np.stack([paint_strokes(truth[z], seed=seed + z) for z in painted])
    else:
        strokes = np.stack([dots(truth[z], rng) for z in painted])
    return Task("membranes", "dice", 1, image[painted], strokes, image[rest], truth[rest])


def mito_task(style: str, seed: int) -> Task:
    import tifffile

    rng = np.random.default_rng(seed)
    with tifffile.TiffFile(LUCCHI / "lucchi_train_images.tif") as tif:
        train_images = np.stack([tif.pages[z].asarray() for z in PAINTED])
        test_images = np.stack([tif.pages[z].asarray() for z in HELD_OUT])
    with tifffile.TiffFile(LUCCHI / "lucchi_train_labels.tif") as tif:
        train_truth = np.stack([tif.pages[z].asarray() for z in PAINTED])
        test_truth = np.stack([tif.pages[z].asarray() for z in HELD_OUT])
    classes = np.where(train_truth > 0, 2, 1).astype(np.uint8)
    if style == "scribbles":
        strokes = np.stack([scribbles(t, rng) for t in train_truth])
    else:
        strokes = np.stack([dots(c, rng) for c in classes])
    return Task("mitochondria", "iou", 2, train_images, strokes, test_images, np.where(test_truth > 0, 2, 1))


# ------------------------------------------------------------------------------------------------ napari-unet
def _config(start: str, seed: int, **kw):
    from napari_unet.config import TrainConfig

    return TrainConfig(start=start, seed=seed, device="cpu", **kw)


def _predict(task: Task, path: Path) -> np.ndarray:
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack_sync

    model, meta = load_checkpoint(path)
    return predict_stack_sync(task.test_images, model, meta, device="cpu").labels


def unet_budget(task: Task, start: str, seconds: float, seed: int) -> dict:
    """Train for ``seconds`` (setup included, as the widget's budget) and score the result."""
    from napari_unet.train import train_sync

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train_sync(
            task.train_images, task.strokes, _config(start, seed, minutes=seconds / 60), checkpoint_dir=tmp
        )
        took = time.perf_counter() - t0
        iterations = result.history["iteration"][-1] if result.history.get("iteration") else 0
        scores = task.scores(_predict(task, result.best_path or result.last_path))
    return {**scores, "iterations": int(iterations), "seconds": round(took, 1)}


def unet_live(task: Task, budgets: list[float], seed: int) -> dict[float, dict]:
    """Live mode: the weights the widget's preview would use ``t`` s after Train (``last.pt``, saved every 10 it)."""
    from napari_unet.train import LAST_NAME, LiveAnnotations, train

    out: dict[float, dict] = {}
    pending = sorted(budgets)
    labels = task.strokes.copy()
    with tempfile.TemporaryDirectory() as tmp:
        last = Path(tmp) / LAST_NAME
        records = train(
            task.train_images,
            labels,
            _config("pretrained", seed, val_every=10),
            checkpoint_dir=tmp,
            live=LiveAnnotations(labels, poll=False),
        )
        snapshots = {}
        for rec in records:
            while pending and rec.elapsed >= pending[0]:
                t = pending.pop(0)
                if last.is_file():
                    snapshots[t] = (Path(tmp) / f"at{t}.pt", rec.iteration)
                    snapshots[t][0].write_bytes(last.read_bytes())
            if not pending:
                records.close()  # Stop: keeps the model
                break
        for t in budgets:
            if t in snapshots:
                path, iteration = snapshots[t]
                out[t] = {**task.scores(_predict(task, path)), "iterations": int(iteration)}
            else:
                out[t] = {"score": float("nan"), "iterations": 0}  # no preview yet
    return out


# ------------------------------------------------------------------------------------------------------ peers
def run_peers(task: Task, wanted: list[str]) -> dict[str, dict]:
    import _peers

    results = {}
    available = _peers.available_peers()
    for name in wanted:
        reason = available.get(name, "unknown peer")
        if reason is not None:
            results[name] = {"unavailable": reason}
            continue
        args = (list(task.train_images), list(task.strokes), list(task.test_images))
        if name == "random-forest":
            res = _peers.random_forest(*args)
        else:
            res = _peers.convpaint(*args, extractor=name.removeprefix("convpaint-"))
        results[name] = {
            **task.scores(np.stack(res["pred"])),
            "fit_s": round(res["fit_s"], 1),
            "predict_s": round(res["predict_s"], 1),
        }
    return results


# ------------------------------------------------------------------------------------------------------ table
def _cell(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ({min(values):.2f}-{max(values):.2f})"


def table(rows: dict, budgets: list[float], peers: list[str]) -> str:
    """Markdown: one row per (data set, style, method), one column per budget."""
    head = "| data set (metric) | strokes | method | " + " | ".join(f"{b:g} s" for b in budgets) + " |"
    lines = [head, "|" + " --- |" * (3 + len(budgets))]
    for (name, style), res in rows.items():
        label = f"{name} ({'membrane Dice' if name == 'membranes' else 'mito IoU'})"
        for method in UNET:
            cells = [_cell([r[method][b]["score"] for r in res]) for b in budgets]
            lines.append(f"| {label} | {style} | napari-unet {method} | " + " | ".join(cells) + " |")
        for peer in peers:
            first = res[0]["peers"][peer]
            if "unavailable" in first:
                lines.append(f"| {label} | {style} | {peer} | unavailable: {first['unavailable']} |")
                continue
            score = _cell([r["peers"][peer]["score"] for r in res])
            fit = np.mean([r["peers"][peer]["fit_s"] for r in res])
            pred = np.mean([r["peers"][peer]["predict_s"] for r in res])
            cells = [score if fit <= b else f"({score}, fit {fit:.0f} s)" for b in budgets]
            lines.append(
                f"| {label} | {style} | {peer} (fit {fit:.1f} s, predict {pred:.1f} s) | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def ratios(rows: dict, budgets: list[float], peers: list[str]) -> list[str]:
    """napari-unet pretrained / each available peer, per data set, style and budget."""
    out = []
    for (name, style), res in rows.items():
        for peer in peers:
            if "unavailable" in res[0]["peers"][peer]:
                continue
            theirs = np.mean([r["peers"][peer]["score"] for r in res])
            ours = [np.mean([r["pretrained"][b]["score"] for r in res]) for b in budgets]
            out.append(
                f"{name}/{style}: pretrained / {peer} = "
                + ", ".join(f"{b:g} s {o / theirs:.2f}x" for b, o in zip(budgets, ours, strict=True))
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budgets", type=float, nargs="+", default=[5, 15, 30, 60], help="seconds of training"
    )
    parser.add_argument("--datasets", nargs="+", default=["membranes", "mitochondria"])
    parser.add_argument("--styles", nargs="+", default=["scribbles", "dots"])
    parser.add_argument(
        "--peers",
        nargs="*",
        default=["random-forest", "convpaint-gaussian"],
        help="peers",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs with other strokes and seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_interactive.json"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    makers = {"membranes": membrane_task, "mitochondria": mito_task}
    rows: dict = {}
    for name in args.datasets:
        for style in args.styles:
            runs = []
            for repeat in range(args.repeats):
                task = makers[name](style, seed=repeat)
                print(
                    f"{name}/{style} repeat {repeat}: {task.painted_share:.2%} of the painted slices' pixels",
                    flush=True,
                )
                run = {"peers": run_peers(task, args.peers)}
                for start in ("scratch", "pretrained"):
                    run[start] = {b: unet_budget(task, start, b, repeat) for b in args.budgets}
                run["live"] = unet_live(task, args.budgets, repeat)
                print(json.dumps({k: v for k, v in run.items()}, default=float), flush=True)
                runs.append(run)
            rows[(name, style)] = runs
    print()
    print(table(rows, args.budgets, args.peers))
    print()
    print("\n".join(ratios(rows, args.budgets, args.peers)))
    pretrained = os.environ.get("NAPARI_UNET_PRETRAINED") or "shipped"
    args.out.write_text(
        json.dumps(
            {
                "pretrained": pretrained,
                "budgets": args.budgets,
                "rows": {f"{k[0]}/{k[1]}": v for k, v in rows.items()},
            },
            indent=1,
            default=float,
        )
    )
    print(f"pretrained start: {pretrained}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
