"""Reading a bioimage.io model package that napari-unet exported, with torch alone (no bioimageio library).

A package written by :func:`napari_unet.bioimageio.export_package` is a zip holding ``rdf.yaml``, the PyTorch
state dict (``weights.pt``), the TorchScript weights, the architecture source, test tensors, a cover, the model
card, and ``napari_unet.json``: the checkpoint's metadata (model kwargs, normalisation, label values, class
names, history). :func:`read_package_checkpoint` rebuilds the napari-unet checkpoint dict from those two files,
loading the weights with ``torch.load(weights_only=True)`` so no code runs; packages from other tools are refused
with a sentence.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import torch

__all__ = [
    "META_NAME",
    "WEIGHTS_NAME",
    "is_package",
    "read_package_checkpoint",
]

META_NAME = "napari_unet.json"
WEIGHTS_NAME = "weights.pt"
_RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def is_package(path: str | os.PathLike) -> bool:
    """True when ``path`` is a zip file with a bioimage.io description (``rdf.yaml`` / ``bioimageio.yaml``)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith(_RDF_NAMES) for name in archive.namelist())


def read_package_checkpoint(path: str | os.PathLike, error: type[Exception] = ValueError) -> dict:
    """The napari-unet checkpoint dict (``state_dict`` included) of a package napari-unet exported.

    Parameters
    ----------
    path : path-like
        The ``.zip`` package.
    error : exception class
        Raised (with one sentence) when the package was not exported by napari-unet or is damaged.

    Returns
    -------
    dict
        As :func:`napari_unet.checkpoint.read_checkpoint` returns it.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if META_NAME not in names or WEIGHTS_NAME not in names:
                raise error(
                    f"{path} is a bioimage.io package from another tool (no {META_NAME}); napari-unet reads the "
                    "packages it exported itself: run that model with its own tool (or bioimageio.core)"
                )
            meta = json.loads(archive.read(META_NAME).decode("utf-8"))
            weights = archive.read(WEIGHTS_NAME)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path}: the bioimage.io package is damaged ({type(err).__name__}: {err})") from err
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as err:  # refused pickles and damaged files alike
        raise error(
            f"{path}: the package's {WEIGHTS_NAME} is not a plain state dict, so it was not loaded "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise error(f"{path}: the package's {META_NAME} / {WEIGHTS_NAME} do not hold a napari-unet model")
    ckpt = dict(meta)
    if ckpt.get("voxel_size") is not None:
        ckpt["voxel_size"] = tuple(ckpt["voxel_size"])
    ckpt["state_dict"] = state
    return ckpt
