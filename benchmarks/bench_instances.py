"""Objects from probabilities on real EM: connected components vs seeded watershed, one table.

Two data sets, each with its project split (training never sees the evaluated slices):

* ISBI 2012 cells (serial-section TEM, 4 x 4 x 50 nm): a dense model of slices 0-24, objects = the cell class
  (label 255), scored on slices 25-29 in 2D per section, as ISBI scores;
* Lucchi mitochondria (FIB-SEM, ~5 nm isotropic): a dense model of slices 0-129, objects = the mitochondrion
  class (255), scored on slices 135-164 as 3D objects.

Methods: ``connected components`` of the predicted class (today's way), and the seeded watershed of
:mod:`napari_unet.instances` with its preset (and with parameters tuned on a tuning range of the *training*
slices when ``--tune``: ISBI 20-24, which the CLI's automatic split also holds out for validation; Lucchi
120-129). Metrics from :func:`napari_unet.metrics.evaluate_instances`: adapted Rand error, VOI (split / merge),
object F1 at IoU 0.5 and mean matched IoU, foreground-restricted; seconds per slice of the object step alone::

    python benchmarks/bench_instances.py --isbi-model isbi10.pt --lucchi-model lucchi.pt --tune
    python benchmarks/bench_instances.py --isbi-model isbi10.pt --only isbi

A model not given is trained first (``napari-unet train --dense``, ``--minutes`` each, default 10).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("NAPARI_UNET_DATA", "/work/shared/data"))

DATASETS = {
    "isbi": {
        "images": "isbi2012/isbi2012_train_images.tif",
        "labels": "isbi2012/isbi2012_train_labels.tif",
        "train": (0, 25),
        "tune": (20, 25),
        "test": (25, 30),
        "value": 255,
        "voxel": (50.0, 4.0, 4.0),
        "preset": "cells",
        "per_slice": True,
        "grid": {"sigma": [2.0, 4.0, 6.0], "h": [4.0, 8.0, 12.0, 16.0]},
    },
    "lucchi": {
        "images": "lucchi/lucchi_train_images.tif",
        "labels": "lucchi/lucchi_train_labels.tif",
        "train": (0, 130),
        "tune": (120, 130),
        "test": (135, 165),
        "value": 255,
        "voxel": (5.0, 5.0, 5.0),
        "preset": "blobs",
        "per_slice": False,
        "grid": {"sigma": [1.0, 2.0], "min_size": [300, 1000], "landscape": ["distance", "probability"]},
        # Rand and VOI on the truth's foreground do not see false objects on the background: rank by F1 first
        "rank": ("f1",),
    },
}


def _train(name: str, spec: dict, minutes: float, out: Path) -> Path:
    """A dense model of the training slices through the CLI (the way a user makes one)."""
    import tifffile

    from napari_unet.cli import main as cli

    a, b = spec["train"]
    with tempfile.TemporaryDirectory() as tmp:
        img, lab = Path(tmp) / "img.tif", Path(tmp) / "lab.tif"
        tifffile.imwrite(img, tifffile.imread(DATA / spec["images"])[a:b], metadata={"axes": "ZYX"})
        tifffile.imwrite(lab, tifffile.imread(DATA / spec["labels"])[a:b], metadata={"axes": "ZYX"})
        code = cli(
            ["train", str(img), str(lab), "-o", str(out), "--dense", "--minutes", str(minutes), "--overwrite"]
        )
    if code != 0:
        raise SystemExit(f"training the {name} model failed")
    return out


def _probabilities(model_path: Path, image: np.ndarray, value: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted semantic labels and the probability of the class ``value``."""
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.instances import class_probability
    from napari_unet.predict import predict_stack_sync

    model, meta = load_checkpoint(model_path)
    result = predict_stack_sync(image, model, meta, want_probabilities=True, device="cpu")
    prob = class_probability(result.probabilities, meta["label_values"], value)
    return np.asarray(result.labels), np.ascontiguousarray(prob)


def _score(pred: np.ndarray, truth: np.ndarray, per_slice: bool, seconds: float) -> dict:
    from napari_unet.metrics import evaluate_instances

    m = evaluate_instances(pred, truth, per_slice=per_slice)
    keep = ("adapted_rand", "voi", "voi_split", "voi_merge", "f1", "mean_matched_iou", "n_true", "n_pred")
    return {**{k: m[k] for k in keep}, "s_per_slice": seconds / len(pred)}


def _spans(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Sections spanned by matched 3D objects: mean over matches of |pred span - true span| and the true span."""
    from napari_unet.instances import measure_objects
    from napari_unet.metrics import match_objects

    m = match_objects(pred, truth)
    if not m["n_matched"]:
        return {"span_true": math.nan, "span_abs_diff": math.nan}
    t_tab, p_tab = measure_objects(truth), measure_objects(pred)
    t_span = dict(zip(t_tab["label"].tolist(), t_tab["n_slices"].tolist(), strict=True))
    p_span = dict(zip(p_tab["label"].tolist(), p_tab["n_slices"].tolist(), strict=True))
    diffs, trues = [], []
    for g in t_span:  # each true object's best partner above IoU 0.5 (unique there)
        overlap = pred[truth == g]
        ids, counts = np.unique(overlap[overlap > 0], return_counts=True)
        for p, inter in zip(ids.tolist(), counts.tolist(), strict=True):
            union = np.count_nonzero(truth == g) + np.count_nonzero(pred == p) - inter
            if inter / union >= 0.5:
                diffs.append(abs(p_span[p] - t_span[g]))
                trues.append(t_span[g])
    return {"span_true": float(np.mean(trues)), "span_abs_diff": float(np.mean(diffs))}


def _watershed(prob: np.ndarray, spec: dict, config, mode: str = "auto") -> tuple[np.ndarray, float]:
    from napari_unet.instances import instances_from_probability_sync

    start = time.perf_counter()
    result = instances_from_probability_sync(prob, voxel_size=spec["voxel"], mode=mode, config=config)
    return np.asarray(result.labels), time.perf_counter() - start


def _tune(prob: np.ndarray, truth: np.ndarray, spec: dict):
    """The grid point with the lowest adapted Rand error (ties: VOI; blobs: the best F1 first) on the tuning slices."""
    from napari_unet.instances import InstanceConfig

    best = None
    keys = list(spec["grid"])
    for values in itertools.product(*(spec["grid"][k] for k in keys)):
        config = InstanceConfig.preset(spec["preset"], **dict(zip(keys, values, strict=True)))
        labels, _ = _watershed(prob, spec, config)
        s = _score(labels, truth, spec["per_slice"], 0.0)
        rank = tuple(-s[k] for k in spec.get("rank", ())) + (s["adapted_rand"], s["voi"])
        print(
            f"  tune {dict(zip(keys, values, strict=True))}: ARAND {s['adapted_rand']:.4f} VOI {s['voi']:.3f} "
            f"F1 {s['f1']:.3f}",
            file=sys.stderr,
        )
        if best is None or rank < best[0]:
            best = (rank, config)
    return best[1]


def run(name: str, model: Path, tune: bool) -> list[dict]:
    import tifffile

    from napari_unet.instances import InstanceConfig
    from napari_unet.metrics import instances_of

    spec = DATASETS[name]
    images = tifffile.imread(DATA / spec["images"])
    labels = tifffile.imread(DATA / spec["labels"])
    a, b = spec["test"]
    semantic, prob = _probabilities(model, images[a:b], spec["value"])
    truth = instances_of(labels[a:b], spec["value"], per_slice=spec["per_slice"])
    split = f"train {spec['train'][0]}-{spec['train'][1] - 1} -> test {a}-{b - 1}"
    rows = []
    start = time.perf_counter()
    cc = instances_of(semantic, spec["value"], per_slice=spec["per_slice"])
    rows.append(
        {
            "data": name,
            "split": split,
            "method": "connected components",
            **_score(cc, truth, spec["per_slice"], time.perf_counter() - start),
            **({} if spec["per_slice"] else _spans(cc, truth)),
        }
    )
    configs = [("watershed (preset)", InstanceConfig.preset(spec["preset"]), "auto")]
    if not spec["per_slice"]:  # a 3D data set: also 2D per section + linking, scored as 3D objects
        configs.append(("watershed 2D + link (preset)", InstanceConfig.preset(spec["preset"]), "2d"))
    if tune:
        t0, t1 = spec["tune"]
        _, prob_t = _probabilities(model, images[t0:t1], spec["value"])
        truth_t = instances_of(labels[t0:t1], spec["value"], per_slice=spec["per_slice"])
        best = _tune(prob_t, truth_t, spec)
        configs.append((f"watershed (tuned on {t0}-{t1 - 1})", best, "auto"))
    for method, config, mode in configs:
        ws, seconds = _watershed(prob, spec, config, mode)
        rows.append(
            {
                "data": name,
                "split": split,
                "method": method,
                "config": repr(config),
                **_score(ws, truth, spec["per_slice"], seconds),
                **({} if spec["per_slice"] else _spans(ws, truth)),
            }
        )
    return rows


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| data (split) | method | ARAND | VOI (split / merge) | F1 @0.5 | mean IoU | objects true / pred | s / slice |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} ({r['split']}) | {r['method']} | {_fmt(r['adapted_rand'])} | {_fmt(r['voi'])} "
            f"({_fmt(r['voi_split'])} / {_fmt(r['voi_merge'])}) | {_fmt(r['f1'])} | {_fmt(r['mean_matched_iou'])} "
            f"| {r['n_true']} / {r['n_pred']} | {r['s_per_slice']:.3f} |"
        )
    for r in rows:
        if "span_true" in r:
            lines.append(
                f"\n{r['data']} {r['method']}: matched 3D objects span {_fmt(r['span_true'])} sections in the truth "
                f"on average, the prediction's differ by {_fmt(r['span_abs_diff'])} sections"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--isbi-model", type=Path, help="dense ISBI model (slices 0-24); trained when omitted"
    )
    parser.add_argument(
        "--lucchi-model", type=Path, help="dense Lucchi model (slices 0-129); trained when omitted"
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of a model not given")
    parser.add_argument("--only", choices=list(DATASETS), help="one data set")
    parser.add_argument("--tune", action="store_true", help="also tune the watershed on the tuning slices")
    parser.add_argument("--out", type=Path, default=Path("bench_instances.json"), help="JSON of the rows")
    args = parser.parse_args(argv)
    rows = []
    for name in [args.only] if args.only else list(DATASETS):
        model = getattr(args, f"{name}_model")
        if model is None:
            model = _train(name, DATASETS[name], args.minutes, Path(f"bench_instances_{name}.pt"))
        rows += run(name, model, args.tune)
    print(table(rows))
    args.out.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
