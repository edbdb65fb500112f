"""Peers the interactive benchmark compares napari-unet with, trained on the same strokes (numpy; no torch here).

* ``random-forest``: ilastik's pixel classification recipe, a random forest (scikit-learn, the ``bench`` extra)
  on ilastik's default filter bank computed with scipy.ndimage, trained on the annotated pixels only.
* ``convpaint-gaussian`` / ``convpaint-ilastik``: napari-convpaint 1.2 itself (its ``gaussian_features`` and
  ``ilastik_2d`` extractors, its default CatBoost classifier), run by ``_convpaint_worker.py`` in a venv of its own
  (``benchmarks/peers-requirements.txt``), since its torchvision does not import beside the project's torch.
  That python is ``$NAPARI_UNET_PEERS_PYTHON`` or ``/work/peers-venv/bin/python``. No pretrained VGG/DINO
  extractors: their weights are downloaded at run time.

Label maps use the training label values (0 = not annotated); images are raw 2-D slices, each peer normalises
them as it does itself.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["available_peers", "convpaint", "random_forest", "rf_ilastik_features"]

# ilastik's feature selection dialog: six feature types at scales 0.3-10, the smallest only for smoothing
# (https://www.ilastik.org/documentation/pixelclassification/pixelclassification.html, "Selecting good features").
# Its operators take DifferenceOfGaussians(sigma, 0.66 * sigma) and StructureTensorEigenvalues(inner=sigma,
# outer=0.5 * sigma); eigenvalues come largest first, as vigra returns them.
SMOOTHING_SIGMAS = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
SIGMAS = SMOOTHING_SIGMAS[1:]
DOG_RATIO = 0.66
STRUCTURE_OUTER_RATIO = 0.5
TRUNCATE = 3.0  # vigra's default kernel radius, in sigmas

WORKER = Path(__file__).with_name("_convpaint_worker.py")
DEFAULT_PEERS_PYTHON = "/work/peers-venv/bin/python"
EXTRACTORS = {"gaussian": "gaussian_features", "ilastik": "ilastik_2d"}  # peer suffix -> convpaint extractor
_SETUP_HINT = "set up the peers venv as benchmarks/peers-requirements.txt says"


# ------------------------------------------------------------------------------------------------ random forest
def _smooth(img: np.ndarray, sigma: float, order: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Gaussian (derivative) filter with vigra's kernel radius and reflective borders."""
    return ndimage.gaussian_filter(img, sigma, order=order, mode="reflect", truncate=TRUNCATE)


def _eig2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) of the symmetric 2x2 matrices [[a, b], [b, c]], per pixel."""
    mean = (a + c) / 2
    radius = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return mean + radius, mean - radius


def _scale_features(img: np.ndarray, sigma: float) -> dict[str, list[np.ndarray]]:
    """LoG, gradient magnitude, DoG, structure tensor and Hessian eigenvalues of one slice at one scale."""
    gy, gx = _smooth(img, sigma, (1, 0)), _smooth(img, sigma, (0, 1))
    hyy, hxy, hxx = _smooth(img, sigma, (2, 0)), _smooth(img, sigma, (1, 1)), _smooth(img, sigma, (0, 2))
    outer = STRUCTURE_OUTER_RATIO * sigma
    tensor = (_smooth(gx * gx, outer), _smooth(gx * gy, outer), _smooth(gy * gy, outer))
    return {
        "log": [hxx + hyy],
        "ggm": [np.hypot(gx, gy)],
        "dog": [_smooth(img, sigma) - _smooth(img, DOG_RATIO * sigma)],
        "st": list(_eig2(*tensor)),
        "hog": list(_eig2(hxx, hxy, hyy)),
    }


def rf_ilastik_features(image2d: np.ndarray) -> np.ndarray:
    """(H, W, 49) float32 responses of ilastik's full default filter bank on one raw slice, ilastik's order.

    Gaussian smoothing at 7 scales, then Laplacian of Gaussian, Gaussian gradient magnitude, difference of
    Gaussians, structure tensor eigenvalues (2) and Hessian of Gaussian eigenvalues (2) at scales 0.7-10.
    Like ilastik, on the raw intensities as float32 (a forest needs no normalisation).
    """
    img = np.asarray(image2d, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {img.shape}")
    channels = [_smooth(img, s) for s in SMOOTHING_SIGMAS]
    per_scale = [_scale_features(img, s) for s in SIGMAS]
    for kind in ("log", "ggm", "dog", "st", "hog"):
        channels += [f for scale in per_scale for f in scale[kind]]
    return np.stack(channels, axis=-1).astype(np.float32, copy=False)


rf_features = rf_ilastik_features  # the name the first draft of bench_interactive used


def _label_dtype(labels: list[np.ndarray]) -> type:
    """uint8 when every label value fits, else uint16."""
    return np.uint8 if max(int(np.max(lab)) for lab in labels) < 256 else np.uint16


def random_forest(train_images: list, train_labels: list, test_images: list) -> dict:
    """Fit ilastik's recipe (100 trees, ilastik filters) on the annotated pixels, predict every test slice."""
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    xs, ys = [], []
    for image, labels in zip(train_images, train_labels, strict=True):
        labels = np.asarray(labels)
        painted = labels > 0
        xs.append(rf_ilastik_features(image)[painted])
        ys.append(labels[painted])
    forest = RandomForestClassifier(n_estimators=100, n_jobs=2, random_state=0)
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    fit_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    dtype = _label_dtype(train_labels)
    pred = []
    for image in test_images:
        f = rf_ilastik_features(image)
        pred.append(forest.predict(f.reshape(-1, f.shape[-1])).reshape(f.shape[:2]).astype(dtype))
    return {
        "name": "random forest, ilastik-style filters (scikit-learn)",
        "pred": pred,
        "fit_s": fit_s,
        "predict_s": time.perf_counter() - t1,
    }


# ------------------------------------------------------------------------------------------------ convpaint
def convpaint(train_images, train_labels, test_images, extractor: str) -> dict:
    """napari-convpaint in its own venv (``_convpaint.py``): ``extractor`` "gaussian" or "ilastik"."""
    from _convpaint import convpaint as run

    return run(train_images, train_labels, test_images, extractor)


# ------------------------------------------------------------------------------------------------ listing
def _sklearn_reason() -> str | None:
    """None when scikit-learn imports, else the install hint."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return 'scikit-learn is not installed (pip install -e ".[bench]")'
    return None


def available_peers() -> dict[str, str | None]:
    """Peer name -> None when it runs here, else the reason it does not."""
    out = {"random-forest": _sklearn_reason()}
    from _convpaint import convpaint_unavailable

    out["convpaint-gaussian"] = out["convpaint-ilastik"] = convpaint_unavailable()
    return out


if __name__ == "__main__":
    json.dump(available_peers(), sys.stdout, indent=1)
    print()
