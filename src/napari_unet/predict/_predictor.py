"""The forward pass every prediction shares: layout, autocast, softmax or argmax, test-time augmentation.

:func:`make_predictor` turns a network into the ``predict(batch) -> batch`` callable the tiler takes; stack
prediction, :func:`predict_whole` and training's validation all run the network through it, so they see the same
layout, the same autocast and the same argmax.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from ..device import autocast, channels_last, select_device
from ..model import UNet
from ..tiling import mirror_pad

__all__ = ["inference_copy", "make_predictor", "predict_whole"]


def _dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def _undo_dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if k:
        x = torch.rot90(x, -k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def inference_copy(model: UNet, device: torch.device) -> UNet:
    """An eval-mode copy of ``model`` on ``device``, NHWC where :func:`napari_unet.device.channels_last` says so.

    A copy, so that predicting never moves, re-lays-out or switches the mode of the caller's model (which may be
    in the middle of training); the parameters of a U-Net are small next to one tile's activations.

    Parameters
    ----------
    model : UNet
        Left untouched.
    device : torch.device

    Returns
    -------
    UNet
    """
    run = copy.deepcopy(model).eval().to(device)
    if channels_last(device):
        run = run.to(memory_format=torch.channels_last)
    return run


def make_predictor(
    model: UNet, device: torch.device, *, probabilities: bool, tta: bool, amp: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """The tiler's ``predict(batch) -> batch`` callable for ``model`` on ``device``.

    Batches run under ``torch.inference_mode`` and :func:`napari_unet.device.autocast`, in the layout
    :func:`napari_unet.device.channels_last` picks.

    Parameters
    ----------
    model : UNet
        Called as it is: it should already be in eval mode on ``device`` (:func:`inference_copy` makes such a
        copy; training's validation switches its own model to eval mode for the duration).
    device : torch.device
    probabilities : bool
        Return softmax probabilities; else the argmax class index as float32 in one channel, which keeps the
        device-to-host copy and the stitched array small.
    tta : bool
        Average the probabilities over the 8 flips / rotations of each batch (8x the work).
    amp : bool
        bf16/fp16 autocast on CUDA (a no-op elsewhere).

    Returns
    -------
    callable
        ``(N, C, ty, tx) float32 numpy -> (N, K or 1, oy, ox) float32 numpy``.
    """
    nhwc = channels_last(device)

    def predict(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device)
        if nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, enabled=amp):
            if tta:
                acc = None
                for k in range(4):
                    for flip in (False, True):
                        y = torch.softmax(model(_dihedral(x, k, flip)).float(), dim=1)
                        y = _undo_dihedral(y, k, flip)
                        acc = y if acc is None else acc.add_(y)
                prob = acc / 8.0
                out = prob if probabilities else prob.argmax(dim=1, keepdim=True).float()
            else:
                logits = model(x).float()
                out = (
                    torch.softmax(logits, dim=1)
                    if probabilities
                    else logits.argmax(dim=1, keepdim=True).float()
                )
        return out.cpu().numpy()

    return predict


def predict_whole(
    model: UNet, image: np.ndarray, *, device: str | torch.device = "cpu", amp: bool = False
) -> np.ndarray:
    """Class probabilities of one slice from a single forward pass: the reference tiled prediction reproduces.

    The slice is mirror-padded exactly as the tiler pads it (``halo`` per side, reflect) and, at the end, up to the
    next size the network accepts; the network runs once on the whole padded slice and the pixels of the slice
    are cut out of its output. A tiled prediction with aligned tile origins computes every kept pixel from the
    same padded input with the same pooling phase, so the two agree to float rounding. Memory grows with the
    slice: this is a reference and a baseline, not the way to predict large slices.

    Parameters
    ----------
    model : UNet
        Left untouched (an eval-mode copy runs).
    image : np.ndarray
        Normalised slice ``(Y, X)`` or ``(C, Y, X)``, float.
    device : str or torch.device
    amp : bool
        Autocast on CUDA.

    Returns
    -------
    np.ndarray
        ``(n_classes, Y, X)`` float32 softmax probabilities.
    """
    device = select_device(device)
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    ny, nx = x.shape[-2:]
    h = model.halo
    py = model.valid_input_size(ny + 2 * h, "up")
    px = model.valid_input_size(nx + 2 * h, "up")
    padded = mirror_pad(x, ((h, py - ny - h), (h, px - nx - h)))
    c = h - model.shrink
    predict = make_predictor(inference_copy(model, device), device, probabilities=True, tta=False, amp=amp)
    return predict(padded[None])[0, :, c : c + ny, c : c + nx]
