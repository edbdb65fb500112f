"""Where a new model starts: the EM-pretrained body shipped in the wheel with a fresh head, or random weights (torch).

The shipped model (``napari_unet/models/em_pretrained.pt``, made by ``scripts/pretrain_em.py``, described by
``MODEL_CARD.md`` beside it) was trained on membranes and mitochondria with a head per task. A new model takes
every layer but the head from it and gets a fresh, seeded head with one output per class of the user's labels,
whatever their number and values. Only a single-channel image and the default architecture can use it; otherwise
the model starts from random weights and the setup line says why.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

import torch

from ..checkpoint import read_checkpoint
from ..config import TrainConfig
from ..model import UNet

__all__ = ["PRETRAINED_NAME", "new_model", "pretrained_checkpoint", "pretrained_path", "pretrained_unusable"]

PRETRAINED_NAME = "em_pretrained.pt"
PRETRAINED_ENV = "NAPARI_UNET_PRETRAINED"
_ARCHITECTURE = ("depth", "features", "padding", "batch_norm")


def pretrained_path() -> Path:
    """The EM-pretrained checkpoint: ``$NAPARI_UNET_PRETRAINED`` when set (a site's own, or one made by
    ``scripts/pretrain_em.py`` on other data), else the one shipped in the package."""
    own = os.environ.get(PRETRAINED_ENV)
    if own:
        return Path(own).expanduser()
    return Path(str(resources.files("napari_unet") / "models" / PRETRAINED_NAME))


@cache
def _cached_checkpoint(path: str) -> dict:
    return read_checkpoint(path)


def pretrained_checkpoint() -> dict:
    """The shipped checkpoint (read once per process; treat it as read-only)."""
    path = pretrained_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the EM-pretrained model {path} is missing (reinstall napari-unet, or unset {PRETRAINED_ENV} if it "
            "names another file), or train from scratch"
        )
    return _cached_checkpoint(str(path))


def pretrained_unusable(config: TrainConfig, in_channels: int) -> str | None:
    """Why the pretrained start cannot serve this run (None when it can)."""
    try:
        kwargs = pretrained_checkpoint()["model_kwargs"]
    except FileNotFoundError as err:
        return str(err)
    if in_channels != int(kwargs["in_channels"]):
        return f"the image has {in_channels} channels, the pretrained model takes {kwargs['in_channels']}"
    differ = [name for name in _ARCHITECTURE if getattr(config, name) != kwargs[name]]
    if differ:
        wanted = ", ".join(f"{name} {getattr(config, name)}" for name in differ)
        have = ", ".join(f"{name} {kwargs[name]}" for name in differ)
        return f"the architecture asked for ({wanted}) is not the pretrained one ({have})"
    return None


def new_model(config: TrainConfig, in_channels: int, n_classes: int) -> tuple[UNet, str]:
    """A seeded new model and a description of its start ("EM-pretrained" or "random weights ...")."""
    reason = None
    if config.start == "pretrained":
        reason = pretrained_unusable(config, in_channels)
    with torch.random.fork_rng(devices=[]):
        # Seeded initialisation without disturbing the caller's global random state.
        torch.manual_seed(config.seed)
        model = UNet(
            in_channels=in_channels,
            n_classes=n_classes,
            depth=config.depth,
            features=config.features,
            padding=config.padding,
            batch_norm=config.batch_norm,
        )
    if config.start != "pretrained":
        return model, "random weights (from scratch)"
    if reason is not None:
        return model, f"random weights: {reason}"
    body = {k: v for k, v in pretrained_checkpoint()["state_dict"].items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(body, strict=False)
    if unexpected or sorted(missing) != ["head.bias", "head.weight"]:
        raise RuntimeError(f"the pretrained model does not fit: missing {missing}, unexpected {unexpected}")
    return model, "EM-pretrained (fresh head)"
