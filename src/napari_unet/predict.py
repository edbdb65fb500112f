"""Stack prediction: slice by slice, seam-free overlap tiles, on the best device, cancellable.

``predict_stack`` reads one ``(Y, X)`` slice at a time from any array-like (numpy, memmap, dask, zarr), normalises
it with the checkpoint's absolute intensities, cuts it into overlap tiles (:mod:`napari_unet.tiling`), runs the
U-Net on batches of tiles under ``torch.inference_mode`` (with bf16/fp16 autocast on CUDA), stitches the kept
centres, and writes label values (and optionally per-class probabilities) into the output slice by slice. It is a
generator that yields a :class:`PredictProgress` after every tile batch; closing it cancels the run at the next
batch. ``predict_stack_sync`` drains it.

Why the result does not depend on the tile size: every tile reads the same mirror-padded image (one ``np.pad`` per
slice), tile origins are multiples of ``model.align`` so every tile sees the pooling grid of a single pass over the
whole padded slice, and only the centre of a tile whose receptive field lies inside the tile is kept. In valid mode
the stitched prediction therefore equals :func:`predict_whole` (one forward pass over the padded slice) up to
floating-point summation order; in same mode it does too, because ``model.halo`` covers the receptive field.

Out-of-memory errors (CUDA, MPS, CPU allocator) do not end the run: the batch is halved, then the tile shrinks,
and the slice is predicted again.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .device import (
    autocast,
    describe_device,
    empty_cache,
    free_memory_bytes,
    is_out_of_memory,
    select_device,
)
from .model import UNet
from .normalize import apply_normalization, normalization_from_image
from .tiling import iter_tiled_predict, mirror_pad

__all__ = [
    "PredictProgress",
    "PredictResult",
    "predict_stack",
    "predict_stack_sync",
    "predict_whole",
    "plan_tile",
    "auto_tile",
    "auto_batch_size",
    "estimate_tile_bytes",
]

# Largest automatic tile side: beyond it a tile is so large that overlap waste is negligible, while memory and the
# time to the first progress update keep growing.
MAX_AUTO_TILE = 2048
# Share of the free memory a prediction plans to use; the rest absorbs allocator fragmentation and the estimate's
# error (and out-of-memory errors are still recovered from).
_MEMORY_SHARE = {"cuda": 0.7, "mps": 0.5, "cpu": 0.5}
_MAX_AUTO_BATCH = 16


@dataclass(frozen=True)
class PredictProgress:
    """Progress of :func:`predict_stack`, yielded after every tile batch.

    Attributes
    ----------
    slice_index : int
        Position of the current slice in this run, ``0 .. n_slices - 1``.
    n_slices : int
        Slices this run predicts.
    tiles_done, tiles_total : int
        Tiles of the current slice done so far / in total.
    message : str
        One line for a status bar.
    z : int
        Index of the current slice in the image's Z axis (0 for a single slice).
    """

    slice_index: int
    n_slices: int
    tiles_done: int
    tiles_total: int
    message: str
    z: int = 0

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        if self.n_slices <= 0:
            return 1.0
        within = self.tiles_done / self.tiles_total if self.tiles_total else 0.0
        return min(1.0, (self.slice_index + within) / self.n_slices)


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict_stack` returns.

    Attributes
    ----------
    labels : array
        ``(Z, Y, X)`` (or ``(Y, X)``) label values; ``labels_out`` when given.
    probabilities : array or None
        ``(Z, K, Y, X)`` (or ``(K, Y, X)``) float32 class probabilities when requested.
    device : str
        Human description of the device used.
    tile : int
        Largest tile side used (after adjusting to sizes the network accepts and any out-of-memory shrinking).
    batch_size : int
        Tiles per forward pass at the end of the run.
    seconds : float
        Wall time of the run.
    tile_shape : (int, int)
        Input tile shape of the last slice (tiles are fitted to the slice to minimise waste).
    n_slices : int
        Slices predicted.
    notes : tuple of str
        Adjustments worth telling the user (tile rounded, out-of-memory recoveries, defaults used).
    """

    labels: Any
    probabilities: Any | None
    device: str
    tile: int
    batch_size: int
    seconds: float
    tile_shape: tuple[int, int] = (0, 0)
    n_slices: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------- geometry
def _step(side: int, model: UNet) -> int:
    return (side - 2 * model.halo) // model.align * model.align


def _min_tile(model: UNet) -> int:
    """Smallest tile that keeps an aligned centre of at least ``align`` pixels."""
    side = model.valid_input_size(2 * model.halo + model.align, "up")
    while _step(side, model) < model.align:
        side = model.valid_input_size(side + 1, "up")
    return side


def plan_tile(model: UNet, shape: tuple[int, int], max_tile: int) -> tuple[int, int]:
    """Tile shape for a ``(Y, X)`` slice that needs no more tiles than ``max_tile`` and wastes the least.

    With ``max_tile`` the slice needs ``n = ceil(L / step(max_tile))`` tiles per axis; the smallest valid tile
    whose step still covers ``L`` in ``n`` tiles does the same job with less overlap and padding (e.g. a 1024 px
    axis with tile 512 in valid depth-4 mode: 3 tiles of 436 instead of 3 tiles of 508).

    Parameters
    ----------
    model : UNet
    shape : (int, int)
        Slice shape ``(Y, X)``.
    max_tile : int
        A valid tile side, at least the smallest usable tile.

    Returns
    -------
    (int, int)
        Valid tile sides ``(ty, tx)``, each ``<= max_tile``.
    """
    if _step(max_tile, model) < model.align:
        raise ValueError(
            f"tile {max_tile} is too small for this model: halo {model.halo} per side leaves no aligned centre; "
            f"the smallest usable tile is {_min_tile(model)}"
        )
    sides = []
    for length in shape:
        count = math.ceil(length / _step(max_tile, model))
        need = math.ceil(math.ceil(length / count) / model.align) * model.align
        # need + 2 * halo <= max_tile and max_tile is valid, so this never exceeds max_tile; and as need is a
        # multiple of align, the step of the result is >= need.
        sides.append(model.valid_input_size(need + 2 * model.halo, "up"))
    return sides[0], sides[1]


def estimate_tile_bytes(model: UNet, tile: int | tuple[int, int], *, bytes_per_value: int = 4) -> int:
    """Rough peak memory of one forward pass over one tile, in bytes.

    Counts the skip connections held until the decoder uses them plus the largest working set of one level
    (up-convolution output, concatenation and convolution output in the decoder), times 1.5 for allocator
    fragmentation and convolution workspaces; parameters are added once.

    Parameters
    ----------
    model : UNet
    tile : int or (int, int)
    bytes_per_value : int
        4 for float32, 2 under fp16/bf16 autocast.
    """
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    area = float(ty) * float(tx)
    skips = 0.0
    working = model.in_channels * area * 4 / bytes_per_value  # the float32 input
    for level in range(model.depth):
        level_area = area / 4**level
        channels = model.features * 2**level
        if level < model.depth - 1:
            skips += channels * level_area
        # decoder at this level: up-conv output (c) + concatenation (2c) + convolution output (c)
        working = max(working, 4 * channels * level_area)
    params = sum(p.numel() for p in model.parameters()) * 4
    return int(1.5 * (skips + working) * bytes_per_value + params)


def auto_tile(
    model: UNet,
    shape: tuple[int, int],
    device: torch.device,
    *,
    bytes_per_value: int = 4,
    budget: int | None = None,
) -> int:
    """Largest tile side worth using on ``device`` for a ``(Y, X)`` slice.

    The tile covering the whole (padded) slice when it fits the memory budget, else the largest valid tile that
    fits; never above 2048 px or below the smallest usable tile.

    Parameters
    ----------
    model : UNet
    shape : (int, int)
        Slice shape.
    device : torch.device
    bytes_per_value : int
        4 for float32, 2 under autocast.
    budget : int, optional
        Bytes available; default: a share of :func:`napari_unet.device.free_memory_bytes`.
    """
    if budget is None:
        budget = int(_MEMORY_SHARE.get(device.type, 0.5) * free_memory_bytes(device))
    smallest = _min_tile(model)
    whole = max(plan_tile(model, shape, model.valid_input_size(max(shape) + 2 * model.halo, "up")))
    side = min(whole, model.valid_input_size(MAX_AUTO_TILE, "down"))
    side = max(side, smallest)
    while side > smallest and estimate_tile_bytes(model, side, bytes_per_value=bytes_per_value) > budget:
        side = model.valid_input_size(int(side * 0.9), "down")
    return max(side, smallest)


def auto_batch_size(
    model: UNet,
    tile_shape: tuple[int, int],
    n_tiles: int,
    device: torch.device,
    *,
    bytes_per_value: int = 4,
    budget: int | None = None,
) -> int:
    """Tiles per forward pass: 1 on CPU, else as many as fit the memory budget (at most the tiles of a slice, 16).

    CPU convolutions already use every core within one tile, so batching there only adds memory; on a GPU a
    batch keeps the device busy when tiles are small.

    Parameters
    ----------
    model : UNet
    tile_shape : (int, int)
    n_tiles : int
        Tiles per slice (a larger batch would never fill).
    device : torch.device
    bytes_per_value : int
        4 for float32, 2 under autocast.
    budget : int, optional
        Bytes available; default: a share of :func:`napari_unet.device.free_memory_bytes`.
    """
    if device.type == "cpu":
        return 1
    if budget is None:
        budget = int(_MEMORY_SHARE.get(device.type, 0.5) * free_memory_bytes(device))
    per_tile = estimate_tile_bytes(model, tile_shape, bytes_per_value=bytes_per_value)
    return int(max(1, min(n_tiles, _MAX_AUTO_BATCH, budget // max(per_tile, 1))))


# ---------------------------------------------------------------------------------------------- predictor
def _dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def _undo_dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if k:
        x = torch.rot90(x, -k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def _channels_last(device: torch.device) -> bool:
    # NHWC lets oneDNN (CPU) and cuDNN tensor cores (CUDA, with autocast) skip layout reorders between layers:
    # about 1.3-1.6x faster on CPU for this network. MPS support for it is uneven, so it stays NCHW there.
    return device.type in ("cpu", "cuda")


def _inference_copy(model: UNet, device: torch.device) -> UNet:
    """An eval-mode copy of ``model`` on ``device`` (NHWC where that is faster).

    A copy, so that predicting never moves, re-lays-out or switches the mode of the caller's model (which may be
    in the middle of training); the parameters of a U-Net are small next to one tile's activations.
    """
    run = copy.deepcopy(model).eval().to(device)
    if _channels_last(device):
        run = run.to(memory_format=torch.channels_last)
    return run


def _make_predictor(
    model: UNet, device: torch.device, *, probabilities: bool, tta: bool, amp: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """``(N, C, ty, tx) float32 numpy -> (N, K or 1, oy, ox) float32 numpy`` on ``device``.

    Returns softmax probabilities when ``probabilities`` (or TTA, which averages probabilities), else the argmax
    class index as float32 in one channel, which keeps the device-to-host copy and the stitched array small.
    """

    channels_last = _channels_last(device)

    def predict(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device)
        if channels_last:
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
    run = _inference_copy(model, device)
    x = torch.from_numpy(padded[None]).to(device)
    if _channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(device, enabled=amp):
        prob = torch.softmax(run(x).float(), dim=1)[0, :, c : c + ny, c : c + nx]
    return prob.cpu().numpy()


# ------------------------------------------------------------------------------------------------ helpers
def _geometry(image: Any, model: UNet) -> tuple[bool, int, tuple[int, int]]:
    """(is_stack, n_z, (Y, X)) for an image with or without Z, with channels for multi-channel models."""
    shape = tuple(int(s) for s in image.shape)
    c = model.in_channels
    if c == 1:
        if len(shape) == 2:
            return False, 1, (shape[0], shape[1])
        if len(shape) == 3:
            return True, shape[0], (shape[1], shape[2])
        raise ValueError(f"expected a (Y, X) or (Z, Y, X) image for a 1-channel model, got shape {shape}")
    if len(shape) == 3 and shape[0] == c:
        return False, 1, (shape[1], shape[2])
    if len(shape) == 4 and shape[1] == c:
        return True, shape[0], (shape[2], shape[3])
    raise ValueError(
        f"expected a ({c}, Y, X) or (Z, {c}, Y, X) image for a {c}-channel model, got shape {shape}"
    )


def _check_out(array: Any, shape: tuple[int, ...], name: str) -> None:
    got = tuple(int(s) for s in array.shape)
    if got != shape:
        raise ValueError(f"{name} has shape {got}; it must have shape {shape}")


def _labels_dtype(label_values: Sequence[int]) -> np.dtype:
    return np.dtype(np.uint8) if max(label_values) < 256 else np.dtype(np.uint16)


def _parse_positive(value: int | str, name: str) -> int | None:
    if isinstance(value, str):
        if value.strip().lower() != "auto":
            raise ValueError(f"{name} must be 'auto' or a positive integer, got {value!r}")
        return None
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be 'auto' or a positive integer, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------ predict
def predict_stack(
    image: Any,
    model: UNet,
    meta: dict | None,
    *,
    labels_out: Any = None,
    probabilities_out: Any = None,
    want_probabilities: bool = False,
    tile: int | str = "auto",
    batch_size: int | str = "auto",
    device: str | torch.device = "auto",
    tta: bool = False,
    amp: bool = True,
    slices: Sequence[int] | None = None,
) -> Generator[PredictProgress, None, PredictResult]:
    """Segment a stack slice by slice; a generator yielding progress and returning a :class:`PredictResult`.

    Parameters
    ----------
    image : array-like
        ``(Y, X)`` or ``(Z, Y, X)`` (``(C, Y, X)`` / ``(Z, C, Y, X)`` for multi-channel models); numpy, memmap,
        dask or zarr. One slice is read at a time.
    model : UNet
        Left untouched: an eval-mode copy runs on the device (the caller's model may be training).
    meta : dict or None
        Checkpoint metadata (``normalization``, ``label_values``). None: normalisation is computed from
        ``image`` and class ``i`` is written as label ``i`` (noted in the result).
    labels_out : array-like, optional
        ``(Z, Y, X)`` (or ``(Y, X)``) integer array (numpy, memmap, zarr) receiving label values slice by slice;
        a new numpy array (uint8 if all label values < 256, else uint16) when None. Slices not predicted are left
        untouched.
    probabilities_out : array-like, optional
        ``(Z, K, Y, X)`` (or ``(K, Y, X)``) float32 array receiving softmax probabilities; implies
        ``want_probabilities``.
    want_probabilities : bool
        Also return probabilities (a new float32 numpy array when ``probabilities_out`` is None).
    tile : int or "auto"
        Largest input tile side. An int is rounded down to a size the network accepts (raised to the smallest
        usable tile if below it); "auto" takes the whole slice when it fits the device memory.
    batch_size : int or "auto"
        Tiles per forward pass; "auto" = 1 on CPU, as many as fit on a GPU.
    device : str or torch.device
        "auto", "cpu", "cuda", "cuda:1", "mps".
    tta : bool
        Test-time augmentation: average probabilities over the 8 flips/rotations (8x slower).
    amp : bool
        bf16/fp16 autocast on CUDA (ignored elsewhere).
    slices : sequence of int, optional
        Z indices to predict (negative counts from the end); default all.

    Yields
    ------
    PredictProgress
        Once before the first slice, then after every tile batch.

    Returns
    -------
    PredictResult

    Raises
    ------
    ValueError
        For shapes that do not match, an output dtype that cannot hold the label values, bad slice indices, or a
        tile/batch argument that is neither "auto" nor a positive integer.
    RuntimeError
        When the device runs out of memory even with batch 1 and the smallest tile.
    """
    t0 = time.perf_counter()
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a napari_unet.model.UNet, got {type(model).__name__}")
    is_stack, n_z, (ny, nx) = _geometry(image, model)
    notes: list[str] = []

    if meta is None:
        meta = {}
    normalization = meta.get("normalization")
    if normalization is None:
        normalization = normalization_from_image(image)
        notes.append("no normalisation in the model metadata: percentiles computed from this image")
    label_values = meta.get("label_values")
    if label_values is None:
        label_values = list(range(model.n_classes))
        notes.append("no label values in the model metadata: class i written as label i")
    label_values = [int(v) for v in label_values]
    if len(label_values) != model.n_classes:
        raise ValueError(
            f"meta has {len(label_values)} label values for a model with {model.n_classes} classes"
        )
    n_classes = model.n_classes

    spatial = (n_z, ny, nx) if is_stack else (ny, nx)
    if labels_out is None:
        labels_out = np.zeros(spatial, dtype=_labels_dtype(label_values))
    else:
        _check_out(labels_out, spatial, "labels_out")
        dtype = np.dtype(labels_out.dtype)
        if (
            dtype.kind not in "ui"
            or np.iinfo(dtype).max < max(label_values)
            or min(label_values) < np.iinfo(dtype).min
        ):
            raise ValueError(
                f"labels_out has dtype {dtype}, which cannot hold the label values {label_values}; use "
                f"{_labels_dtype(label_values)}"
            )
    if probabilities_out is not None:
        want_probabilities = True
        _check_out(
            probabilities_out,
            (n_z, n_classes, ny, nx) if is_stack else (n_classes, ny, nx),
            "probabilities_out",
        )
    elif want_probabilities:
        probabilities_out = np.zeros(
            (n_z, n_classes, ny, nx) if is_stack else (n_classes, ny, nx), np.float32
        )

    if slices is None:
        zs = list(range(n_z))
    else:
        zs = []
        for z in slices:
            if int(z) != z or not -n_z <= z < n_z:
                raise ValueError(f"slice index {z} is out of range for {n_z} slice(s)")
            zs.append(int(z) % n_z)

    tile_req = _parse_positive(tile, "tile")
    batch_req = _parse_positive(batch_size, "batch_size")
    dev = select_device(device)
    use_amp = bool(amp) and dev.type == "cuda"
    bytes_per_value = 2 if use_amp else 4

    smallest = _min_tile(model)
    if tile_req is None:
        max_tile = auto_tile(model, (ny, nx), dev, bytes_per_value=bytes_per_value)
    else:
        max_tile = model.valid_input_size(tile_req, "down")
        if tile_req < smallest or max_tile < smallest:
            notes.append(
                f"tile {tile_req} is below the smallest usable tile for this model; using {smallest}"
            )
            max_tile = smallest
        elif max_tile != tile_req:
            notes.append(f"tile {tile_req} rounded down to {max_tile}, a size the network accepts")
    tile_shape = plan_tile(model, (ny, nx), max_tile)
    n_tiles = _n_tiles(model, (ny, nx), tile_shape)
    if batch_req is None:
        batch = auto_batch_size(model, tile_shape, n_tiles, dev, bytes_per_value=bytes_per_value)
    else:
        batch = batch_req

    description = describe_device(dev)
    run = _inference_copy(model, dev)
    predictor = _make_predictor(run, dev, probabilities=want_probabilities, tta=bool(tta), amp=use_amp)
    n_out = n_classes if want_probabilities else 1
    lut = np.asarray(label_values, dtype=np.dtype(labels_out.dtype))
    n_run = len(zs)
    yield PredictProgress(
        0,
        n_run,
        0,
        n_tiles,
        f"predicting {n_run} slice(s) of {ny} x {nx} on {description}; tiles {tile_shape[0]} x "
        f"{tile_shape[1]}, batch {batch}" + (", 8x test-time augmentation" if tta else ""),
        zs[0] if zs else 0,
    )
    for i, z in enumerate(zs):
        raw = image[z] if is_stack else image
        x = apply_normalization(np.asarray(raw), normalization)
        while True:
            tiles = iter_tiled_predict(
                x,
                predictor,
                tile=tile_shape,
                halo=model.halo,
                shrink=model.shrink,
                align=model.align,
                batch_size=batch,
                n_out=n_out,
            )
            try:
                while True:
                    try:
                        done, total = next(tiles)
                    except StopIteration as stop:
                        out = stop.value
                        break
                    yield PredictProgress(
                        i, n_run, done, total, f"slice {i + 1}/{n_run} (z={z}): tile {done}/{total}", z
                    )
                break
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                # Keep only the text: the traceback references the failed batch's tensors, which must be
                # released (end of this block) before the allocator cache is emptied.
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            tiles = None
            empty_cache(dev)
            if batch > 1:
                note = f"out of memory on {description}: batch {batch} -> {batch // 2}"
                batch //= 2
            else:
                current = max(tile_shape)
                smaller = max(smallest, model.valid_input_size(int(current * 0.7), "down"))
                if smaller >= current:
                    raise RuntimeError(
                        f"out of memory on {description} even with batch 1 and the smallest tile "
                        f"({current} px) for this model ({reason}); free memory, use a smaller model or "
                        f"device='cpu'"
                    )
                max_tile = smaller
                tile_shape = plan_tile(model, (ny, nx), max_tile)
                note = f"out of memory on {description}: tile {current} -> {max(tile_shape)}"
            notes.append(note)
            yield PredictProgress(i, n_run, 0, _n_tiles(model, (ny, nx), tile_shape), note, z)
        if want_probabilities:
            classes = out.argmax(axis=0)
            if is_stack:
                probabilities_out[z] = out
            else:
                probabilities_out[...] = out
        else:
            classes = out[0].astype(np.intp)
        if is_stack:
            labels_out[z] = lut[classes]
        else:
            labels_out[...] = lut[classes]

    return PredictResult(
        labels=labels_out,
        probabilities=probabilities_out if want_probabilities else None,
        device=description,
        tile=max_tile,
        batch_size=batch,
        seconds=time.perf_counter() - t0,
        tile_shape=tuple(tile_shape),
        n_slices=n_run,
        notes=tuple(notes),
    )


def _n_tiles(model: UNet, shape: tuple[int, int], tile_shape: tuple[int, int]) -> int:
    return math.prod(math.ceil(n / _step(t, model)) for n, t in zip(shape, tile_shape, strict=True))


def predict_stack_sync(image: Any, model: UNet, meta: dict | None, **kwargs: Any) -> PredictResult:
    """Synchronous twin of :func:`predict_stack` (same parameters); returns the :class:`PredictResult`."""
    gen = predict_stack(image, model, meta, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
