"""napari-convpaint 1.2.0 as a peer, run in a venv of its own (it needs torchvision, which the project's torch lacks).

numpy only here: the fit and the prediction run in ``_convpaint_worker.py`` under the peers' python, by subprocess,
with npz files in a temporary folder.

Setup that worked (Python 3.11, CPU)::

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/peers-venv/bin/pip install napari-convpaint==1.2.0     # napari, catboost, timm, scikit-image, ...
    /work/peers-venv/bin/pip install ilastik-napari              # 0.3.1: the filters convpaint's ilastik_2d uses

``ilastik-napari`` imports conda's ``fastfilters``, which is not on PyPI (``pip install fastfilters`` finds
nothing). A scipy stand-in module named ``fastfilters`` (gaussianSmoothing, gaussianGradientMagnitude,
laplacianOfGaussian, hessianOfGaussianEigenvalues, structureTensorEigenvalues; kernels truncated at
ceil((3 + order/2) * sigma) as fastfilters does, mirrored borders, eigenvalues largest first) goes to
``/work/peers-venv/lib/python3.11/site-packages/fastfilters/__init__.py``; the worker then names the extractor
"ilastik_2d (scipy stand-in for fastfilters)". The ``gaussian_features`` extractor runs as shipped. VGG/DINO are
not used: they load weights from the internet.

Another python can be named with ``$NAPARI_UNET_PEERS_PYTHON``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["convpaint", "convpaint_python", "convpaint_unavailable"]

DEFAULT_PYTHON = "/work/peers-venv/bin/python"
WORKER = Path(__file__).with_name("_convpaint_worker.py")
EXTRACTORS = ("gaussian", "ilastik")
SETUP = (
    "python3 -m venv /work/peers-venv && /work/peers-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 "
    "&& /work/peers-venv/bin/pip install napari-convpaint==1.2.0 ilastik-napari (see benchmarks/_convpaint.py), "
    "or point $NAPARI_UNET_PEERS_PYTHON at a python that has napari_convpaint"
)


def _candidate() -> str:
    return os.environ.get("NAPARI_UNET_PEERS_PYTHON") or DEFAULT_PYTHON


@cache
def _check(python: str) -> str | None:
    """None when ``python`` imports napari_convpaint, else why not."""
    if not Path(python).exists():
        return f"no peers python at {python}"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    try:
        r = subprocess.run(
            [python, "-c", "import napari_convpaint"], capture_output=True, text=True, timeout=300, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{python} could not be run ({e})"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"{python} cannot import napari_convpaint ({last})"
    return None


def convpaint_python() -> str | None:
    """The python that runs convpaint ($NAPARI_UNET_PEERS_PYTHON or /work/peers-venv/bin/python), or None."""
    python = _candidate()
    return python if _check(python) is None else None


def convpaint_unavailable() -> str | None:
    """None when convpaint can run here, else a sentence saying why and how to set it up."""
    reason = _check(_candidate())
    return None if reason is None else f"napari-convpaint is not set up: {reason}; set it up with: {SETUP}."


def convpaint(train_images: list, train_labels: list, test_images: list, extractor: str) -> dict:
    """Fit convpaint on the painted pixels (0 = not painted), predict each test slice.

    Returns {"name", "pred": list of 2-D uint8 arrays, "fit_s", "predict_s"}; RuntimeError when it cannot run.
    """
    if extractor not in EXTRACTORS:
        raise RuntimeError(f"convpaint extractor must be one of {EXTRACTORS}, not {extractor!r}.")
    python = convpaint_python()
    if python is None:
        raise RuntimeError(convpaint_unavailable())
    shapes = {np.shape(a) for a in [*train_images, *train_labels, *test_images]}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise RuntimeError(f"convpaint here takes 2-D slices of one shape; got shapes {sorted(shapes)}.")
    with tempfile.TemporaryDirectory(prefix="napari-unet-convpaint-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src,
            train_images=np.stack([np.asarray(a) for a in train_images]),
            train_labels=np.stack([np.asarray(a, dtype=np.uint8) for a in train_labels]),
            test_images=np.stack([np.asarray(a) for a in test_images]),
            extractor=np.str_(extractor),
        )
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        r = subprocess.run([python, str(WORKER), str(src), str(dst)], capture_output=True, text=True, env=env)
        if r.returncode != 0 or not dst.exists():
            tail = "\n".join(r.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"the convpaint worker failed (exit {r.returncode}) under {python}:\n{tail}")
        with np.load(dst, allow_pickle=False) as f:
            return {
                "name": str(f["name"]),
                "pred": [np.asarray(p) for p in f["pred"]],
                "fit_s": float(f["fit_s"]),
                "predict_s": float(f["predict_s"]),
            }


if __name__ == "__main__":  # quick self-check: python benchmarks/_convpaint.py
    print(convpaint_unavailable() or f"convpaint runs under {convpaint_python()}", file=sys.stderr)
