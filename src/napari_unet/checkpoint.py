"""Checkpoints as plain dictionaries, loaded without executing code.

A checkpoint is one ``torch.save``-d dict of tensors, numbers, strings, lists and dicts::

    {"format": "napari-unet", "version": 1, "napari_unet_version": "0.1.0",
     "model_kwargs": {...UNet constructor arguments...}, "state_dict": {...tensors...},
     "normalization": {"mode": "percentile", "low": 12.0, "high": 231.0, ...},   # absolute intensities
     "label_values": [0, 255],          # model class i -> label value written by prediction
     "class_names": ["membrane", "cell"], "voxel_size": (50.0, 4.0, 4.0) | None,
     "history": {"iteration": [...], "loss": [...], ...} | None, "extra": {...} | None}

It is read with ``torch.load(weights_only=True)``, whose unpickler only rebuilds tensors and plain containers, so
a crafted file cannot run code on load; the model is rebuilt from ``model_kwargs`` rather than unpickled. Files
are written to a temporary name and renamed, so an interrupted save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import io
import json
import numbers
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .io._atomic import atomic_open
from .model import UNet

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "build_checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "load_checkpoint",
    "is_package",
    "read_package_checkpoint",
]

CHECKPOINT_VERSION = 1
FORMAT = "napari-unet"
_MAX_LABEL_VALUE = 65535  # labels are written as uint8 or uint16


class CheckpointError(ValueError):
    """A file is not a (readable) napari-unet checkpoint; the message names the file and the reason."""


def _plain(value: Any, where: str) -> Any:
    """Convert numpy scalars/arrays and tuples of them to Python values ``weights_only`` can load."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v, where) for v in value)
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(
        f"{where} holds a {type(value).__name__}; checkpoints only store numbers, strings, lists, dicts and tensors"
    )


def _validate_meta(
    model_kwargs: dict, normalization: dict, label_values: list[int], class_names: list[str]
) -> None:
    n_classes = int(model_kwargs["n_classes"])
    if len(label_values) != n_classes:
        raise ValueError(f"label_values has {len(label_values)} entries for a model with {n_classes} classes")
    if len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} entries for a model with {n_classes} classes")
    for v in label_values:
        if int(v) != v or not 0 <= v <= _MAX_LABEL_VALUE:
            raise ValueError(f"label values must be integers in [0, {_MAX_LABEL_VALUE}], got {label_values}")
    if len(set(label_values)) != len(label_values):
        raise ValueError(f"label values must be distinct, got {label_values}")
    if not isinstance(normalization, dict) or "mode" not in normalization:
        raise ValueError(f"normalization must be a dict with a 'mode', got {normalization!r}")
    if normalization["mode"] == "percentile":
        low, high = normalization.get("low"), normalization.get("high")
        if low is None or high is None or not np.all(np.asarray(high, float) > np.asarray(low, float)):
            raise ValueError(f"percentile normalization needs absolute low < high, got {normalization!r}")


def _float_limits(normalization: dict) -> dict:
    """Copy of ``normalization`` with scalar ``low``/``high`` as floats (intensities are never integers)."""
    out = dict(normalization)
    for key in ("low", "high"):
        if key in out and np.ndim(out[key]) == 0:
            out[key] = float(out[key])
    return out


def build_checkpoint(
    model: UNet,
    *,
    normalization: dict,
    label_values: list[int],
    class_names: list[str],
    voxel_size: tuple | None = None,
    history: dict | None = None,
    extra: dict | None = None,
    include_state: bool = True,
) -> dict:
    """The checkpoint dict for ``model`` (what :func:`save_checkpoint` writes).

    Parameters
    ----------
    model : UNet
        The network; its ``kwargs`` and ``state_dict()`` (moved to CPU) are stored.
    normalization : dict
        From :func:`napari_unet.normalize.normalization_from_image` (absolute ``low``/``high``).
    label_values : list of int
        Label value written for each model class, ``len == n_classes``, distinct, in [0, 65535].
    class_names : list of str
        One name per class.
    voxel_size : tuple of float, optional
        Physical voxel size of the training data (e.g. ZYX), informative.
    history : dict, optional
        Training curves (lists of numbers).
    extra : dict, optional
        Free-form plain data (training config, source file names, ...).
    include_state : bool
        False returns the metadata only (the ``meta`` that training and prediction pass around).

    Returns
    -------
    dict
        Plain data only: loadable with ``torch.load(weights_only=True)``.

    Raises
    ------
    ValueError
        When label values / class names do not match ``n_classes`` or normalisation is incomplete.
    TypeError
        When ``history``/``extra`` hold objects other than plain data.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a napari_unet.model.UNet, got {type(model).__name__}")
    label_values = [int(v) for v in label_values]
    class_names = [str(c) for c in class_names]
    _validate_meta(model.kwargs, normalization, label_values, class_names)
    ckpt = {
        "format": FORMAT,
        "version": CHECKPOINT_VERSION,
        "napari_unet_version": __version__,
        "model_kwargs": dict(model.kwargs),
        "normalization": _plain(_float_limits(normalization), "normalization"),
        "label_values": label_values,
        "class_names": class_names,
        "voxel_size": None if voxel_size is None else tuple(float(v) for v in voxel_size),
        "history": _plain(history, "history"),
        "extra": _plain(extra, "extra"),
    }
    if include_state:
        ckpt["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return ckpt


def save_checkpoint(path: str | os.PathLike, model: UNet, **meta: Any) -> None:
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : path-like
        The destination; parent folders are created.
    model : UNet
    **meta
        The keyword parameters of :func:`build_checkpoint` (``normalization``, ``label_values``, ``class_names``,
        optionally ``voxel_size``, ``history``, ``extra``); the weights are always included.

    Raises
    ------
    ValueError, TypeError
        As :func:`build_checkpoint`.
    OSError
        When the folder is not writable.
    """
    ckpt = build_checkpoint(model, include_state=True, **meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        torch.save(ckpt, fh)


# ------------------------------------------------------------------ bioimage.io packages napari-unet exported
# (written by napari_unet.bioimageio.export_package; read here with torch alone, so --model model.zip needs no
# bioimageio library and checkpoint.py imports nothing of napari_unet.bioimageio)

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


def _torch_load_reason(err: BaseException) -> str:
    """The informative line of torch.load's (long, generic) error message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "global" in line:
            return line
    return lines[0] if lines else "no details"


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint dict without building the model.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file, or a bioimage.io package (``.zip``) exported by napari-unet.
    map_location : str or torch.device
        Where tensors are placed.

    Returns
    -------
    dict
        The full checkpoint, ``state_dict`` included.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is not a torch file, contains Python objects other than plain data (refused, never
        executed), is not a napari-unet checkpoint, or was written by a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        if is_package(path):  # a bioimage.io package napari-unet exported: its weights and napari_unet.json
            ckpt = read_package_checkpoint(path, CheckpointError)
            ckpt["state_dict"] = {k: v.to(map_location) for k, v in ckpt["state_dict"].items()}
        else:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as err:
        reason = _torch_load_reason(err)
        if "global" in reason.lower():
            # weights_only met a reference to Python code: a model pickled whole, or a malicious payload.
            raise CheckpointError(
                f"{path} was refused: it references Python objects other than tensors and plain data, which "
                f"napari-unet never loads because unpickling them could run code (napari-unet checkpoints "
                f"are plain dicts). Detail: {reason}"
            ) from err
        raise CheckpointError(
            f"{path} is not a napari-unet checkpoint: torch.load could not read it ({reason})"
        ) from err
    except Exception as err:  # torch raises KeyError/RuntimeError/EOFError/... for foreign files
        raise CheckpointError(
            f"{path} is not a napari-unet checkpoint: torch.load could not read it "
            f"({type(err).__name__}: {_torch_load_reason(err)})"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = (
            f"a dict with keys {sorted(map(str, ckpt))[:8]}"
            if isinstance(ckpt, dict)
            else type(ckpt).__name__
        )
        raise CheckpointError(
            f"{path} is not a napari-unet checkpoint (expected a dict with format '{FORMAT}', found {what})"
        )
    version = ckpt.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: invalid checkpoint version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer napari-unet ({ckpt.get('napari_unet_version', '?')}, checkpoint "
            f"version {version} > {CHECKPOINT_VERSION} supported here); upgrade napari-unet to read it"
        )
    missing = [
        k
        for k in ("model_kwargs", "state_dict", "normalization", "label_values", "class_names")
        if k not in ckpt
    ]
    if missing:
        raise CheckpointError(f"{path}: napari-unet checkpoint is missing {missing}")
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[UNet, dict]:
    """Rebuild the model of a checkpoint.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file written by :func:`save_checkpoint`.
    map_location : str or torch.device
        Device of the returned model's parameters.

    Returns
    -------
    model : UNet
        ``UNet(**model_kwargs)`` with the stored weights, in eval mode.
    meta : dict
        The checkpoint without ``state_dict`` (normalisation, label values, class names, history, ...).

    Raises
    ------
    FileNotFoundError, CheckpointError
        As :func:`read_checkpoint`; also CheckpointError when the weights do not fit the stored architecture.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    try:
        model = UNet(**ckpt["model_kwargs"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: cannot rebuild the U-Net from {ckpt['model_kwargs']!r}: {err}"
        ) from err
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the stored weights do not fit UNet({ckpt['model_kwargs']}): {str(err).splitlines()[0]}"
        ) from err
    model.to(map_location)
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    n_classes = model.n_classes
    if len(meta["label_values"]) != n_classes or len(meta["class_names"]) != n_classes:
        raise CheckpointError(
            f"{path}: {len(meta['label_values'])} label values / {len(meta['class_names'])} class names for a "
            f"model with {n_classes} classes"
        )
    return model, meta
