"""Run napari-convpaint on one set of strokes; executed by the peers venv's python, not the project's.

    python _convpaint_worker.py IN.npz OUT.npz

IN: ``train_images`` (n, Y, X), ``train_labels`` (n, Y, X) uint8 (0 = not annotated, 1..K = classes),
``test_images`` (m, Y, X), ``extractor`` ("gaussian" or "ilastik").
OUT: ``pred`` (m, Y, X) uint8 label maps (values of the training labels), ``fit_s``, ``predict_s``, ``name``.

Convpaint's own API (``ConvpaintModel``) with the alias' defaults: CatBoost classifier (100 iterations, depth 5,
learning rate 0.1), per-image normalisation, annotations tiled to their bounding box, all as in the plugin.
See ``_convpaint.py`` for the venv this needs.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

ALIASES = {"gaussian": "gaussian", "ilastik": "ilastik"}


def _extractor_label(extractor: str) -> str:
    if extractor == "gaussian":
        return "gaussian_features"
    try:
        import fastfilters

        standin = bool(getattr(fastfilters, "STANDIN", False))
    except ImportError:
        standin = False
    return "ilastik_2d (scipy stand-in for fastfilters)" if standin else "ilastik_2d"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    with np.load(src, allow_pickle=False) as f:
        train_images = [np.asarray(a) for a in f["train_images"]]
        train_labels = [np.asarray(a, dtype=np.uint8) for a in f["train_labels"]]
        test_images = [np.asarray(a) for a in f["test_images"]]
        extractor = str(f["extractor"])
    if extractor not in ALIASES:
        print(f"unknown extractor {extractor!r}; expected one of {sorted(ALIASES)}", file=sys.stderr)
        return 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Cellpose is not installed" etc. at registration
        import napari_convpaint
        from napari_convpaint.convpaint_model import ConvpaintModel

        model = ConvpaintModel(alias=ALIASES[extractor])
    version = getattr(napari_convpaint, "__version__", "?")

    t0 = time.perf_counter()
    model.train(
        [im.astype(np.float32) for im in train_images],
        train_labels,
        fe_use_device="cpu",
        clf_use_device="cpu",
    )
    fit_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    pred = model.segment([im.astype(np.float32) for im in test_images], fe_use_device="cpu")
    predict_s = time.perf_counter() - t1
    if isinstance(pred, np.ndarray) and pred.ndim == 2:
        pred = [pred]
    pred = np.stack([np.asarray(p, dtype=np.uint8) for p in pred])

    name = f"napari-convpaint {version}, {_extractor_label(extractor)} features + CatBoost"
    np.savez(dst, pred=pred, fit_s=np.float64(fit_s), predict_s=np.float64(predict_s), name=np.str_(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
