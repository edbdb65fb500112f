"""Tile and batch sizes for a U-Net on one device: the planning half of stack prediction.

A tile side is valid when the network accepts it; its *step* (kept centre) is ``tile - 2 * halo`` rounded down to a
multiple of ``model.align``, so that tile origins stay on the pooling grid (see :mod:`napari_unet.tiling`).
"""

from __future__ import annotations

import math

import torch

from ..device import free_memory_bytes
from ..model import UNet

__all__ = [
    "MAX_AUTO_TILE",
    "auto_batch_size",
    "auto_tile",
    "count_tiles",
    "estimate_tile_bytes",
    "min_tile",
    "plan_tile",
    "tile_geometry",
]

# Largest automatic tile side: beyond it a tile is so large that overlap waste is negligible, while memory and the
# time to the first progress update keep growing.
MAX_AUTO_TILE = 2048
# Share of the free memory a prediction plans to use; the rest absorbs allocator fragmentation and the estimate's
# error (and out-of-memory errors are still recovered from).
_MEMORY_SHARE = {"cuda": 0.7, "mps": 0.5, "cpu": 0.5}
_MAX_AUTO_BATCH = 16


def _step(side: int, model: UNet) -> int:
    return (side - 2 * model.halo) // model.align * model.align


def _budget(device: torch.device, budget: int | None) -> int:
    if budget is not None:
        return budget
    return int(_MEMORY_SHARE.get(device.type, 0.5) * free_memory_bytes(device))


def min_tile(model: UNet) -> int:
    """Smallest valid tile side that keeps an aligned centre of at least ``model.align`` pixels."""
    side = model.valid_input_size(2 * model.halo + model.align, "up")
    while _step(side, model) < model.align:
        side = model.valid_input_size(side + 1, "up")
    return side


def tile_geometry(model: UNet) -> dict[str, int]:
    """The ``halo``, ``shrink`` and ``align`` keyword arguments :mod:`napari_unet.tiling` needs for ``model``."""
    return {"halo": model.halo, "shrink": model.shrink, "align": model.align}


def count_tiles(model: UNet, shape: tuple[int, int], tile_shape: tuple[int, int]) -> int:
    """Tiles of shape ``tile_shape`` that cover a ``(Y, X)`` slice of ``shape``."""
    return math.prod(math.ceil(n / _step(t, model)) for n, t in zip(shape, tile_shape, strict=True))


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

    Raises
    ------
    ValueError
        When ``max_tile`` leaves no aligned centre (the message names the smallest usable tile).
    """
    if _step(max_tile, model) < model.align:
        raise ValueError(
            f"tile {max_tile} is too small for this model: halo {model.halo} per side leaves no aligned centre; "
            f"the smallest usable tile is {min_tile(model)}"
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
    budget = _budget(device, budget)
    smallest = min_tile(model)
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
    budget = _budget(device, budget)
    per_tile = estimate_tile_bytes(model, tile_shape, bytes_per_value=bytes_per_value)
    return int(max(1, min(n_tiles, _MAX_AUTO_BATCH, budget // max(per_tile, 1))))
