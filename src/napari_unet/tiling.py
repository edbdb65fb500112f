"""Overlap-tile geometry: mirror padding, an aligned tile grid, batching and stitching (numpy only).

This module knows nothing of torch or of the network. It takes any ``predict(batch) -> batch`` callable and four
numbers that describe it:

``tile``
    input tile side (an int, or ``(ty, tx)``), a size the predictor accepts;
``shrink``
    pixels per side the predictor loses (its output is ``tile - 2 * shrink``);
``halo``
    context per side a tile's centre needs (``>= shrink``); only the central ``tile - 2 * halo`` pixels of each
    tile are kept;
``align``
    tile origins are multiples of ``align`` in the padded image. A U-Net with ``p`` poolings is translation
    equivariant only for shifts by ``2 ** p``; aligned tiles see the same pooling phase as a single pass over
    the whole padded image, which is why valid-mode stitching is exact and not merely seam-free.

Geometry, per axis of length ``n``::

    step  = floor((tile - 2 * halo) / align) * align       # kept centre per tile, a multiple of align
    count = ceil(n / step)                                  # tiles, origins 0, step, 2*step, ... (padded coords)
    pad   = (halo, halo + extra)                            # extra makes the last tile fit: no clamping

The image is padded once (``np.pad(mode="reflect")``, one call for both axes), so every tile and a whole-image
pass read identical context; ``np.pad`` reflects repeatedly when the padding exceeds the image, which handles
images smaller than the halo, and the first pixels of a longer reflection equal those of a shorter one, so the
``extra`` end padding never changes what the kept centres see. The last tile is not clamped inside the image
(which would break alignment); it runs over the padded end instead and its overhang is discarded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .generators import drain

__all__ = [
    "TileGrid",
    "tile_grid",
    "mirror_pad",
    "iter_tiled_predict",
    "predict_tiled",
]


@dataclass(frozen=True)
class TileGrid:
    """Where tiles go on one ``(Y, X)`` image.

    Attributes
    ----------
    shape : (int, int)
        Image shape ``(Y, X)``.
    tile : (int, int)
        Input tile shape.
    step : (int, int)
        Kept centre per tile (= distance between tile origins).
    origins_y, origins_x : tuple of int
        Tile origins in padded coordinates; tile ``(i, j)`` keeps image pixels
        ``[origins_y[i], origins_y[i] + step_y) x [origins_x[j], ...)`` clipped to the image.
    pad : ((int, int), (int, int))
        ``((before_y, after_y), (before_x, after_x))`` mirror padding of the image.
    """

    shape: tuple[int, int]
    tile: tuple[int, int]
    step: tuple[int, int]
    origins_y: tuple[int, ...]
    origins_x: tuple[int, ...]
    pad: tuple[tuple[int, int], tuple[int, int]]

    @property
    def n_tiles(self) -> int:
        return len(self.origins_y) * len(self.origins_x)

    @property
    def padded_shape(self) -> tuple[int, int]:
        (by, ay), (bx, ax) = self.pad
        return (self.shape[0] + by + ay, self.shape[1] + bx + ax)

    def origins(self) -> list[tuple[int, int]]:
        """All tile origins, row by row."""
        return [(oy, ox) for oy in self.origins_y for ox in self.origins_x]


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a (y, x) pair, got {value!r}")
        pair = (int(value[0]), int(value[1]))
    else:
        pair = (int(value), int(value))
    return pair


def _check_geometry(tile: tuple[int, int], halo: int, shrink: int, align: int) -> tuple[int, int]:
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    if shrink < 0 or halo < shrink:
        raise ValueError(f"need 0 <= shrink <= halo, got shrink={shrink}, halo={halo}")
    steps = []
    for side in tile:
        step = (side - 2 * halo) // align * align
        if step < align:
            raise ValueError(
                f"tile {side} is too small for halo {halo}: its kept centre is {side} - 2*{halo} = "
                f"{side - 2 * halo} px, at least align={align} px are needed (tile >= {2 * halo + align})"
            )
        steps.append(step)
    return steps[0], steps[1]


def tile_grid(
    shape: tuple[int, int], *, tile: int | tuple[int, int], halo: int, shrink: int = 0, align: int = 1
) -> TileGrid:
    """The aligned tile grid covering a ``(Y, X)`` image.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(Y, X)``, both >= 1.
    tile : int or (int, int)
        Input tile side(s).
    halo, shrink, align : int
        See the module docstring.

    Returns
    -------
    TileGrid

    Raises
    ------
    ValueError
        When the tile leaves no aligned centre (``tile - 2 * halo < align``) or the image is empty.
    """
    ny, nx = (int(s) for s in shape)
    if ny < 1 or nx < 1:
        raise ValueError(f"cannot tile an empty image of shape {tuple(shape)}")
    tile = _pair(tile, "tile")
    step = _check_geometry(tile, int(halo), int(shrink), int(align))
    origins = []
    pads = []
    for n, t, s in zip((ny, nx), tile, step, strict=True):
        count = math.ceil(n / s)
        axis_origins = tuple(i * s for i in range(count))
        # The last tile ends at origin + t in padded coordinates; pad the end as far as it needs.
        extra = max(0, axis_origins[-1] + t - (n + 2 * halo))
        origins.append(axis_origins)
        pads.append((int(halo), int(halo) + extra))
    return TileGrid(
        shape=(ny, nx),
        tile=tile,
        step=step,
        origins_y=origins[0],
        origins_x=origins[1],
        pad=(pads[0], pads[1]),
    )


def mirror_pad(image: np.ndarray, pad: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Mirror-pad the last two axes of ``image`` in one ``np.pad(mode="reflect")`` call.

    Parameters
    ----------
    image : np.ndarray
        ``(..., Y, X)``.
    pad : ((int, int), (int, int))
        ``((before_y, after_y), (before_x, after_x))``; may exceed the image (reflection repeats; an axis of
        length 1 is repeated).

    Returns
    -------
    np.ndarray
        ``(..., Y + before_y + after_y, X + before_x + after_x)``, same dtype.
    """
    widths = [(0, 0)] * (image.ndim - 2) + [tuple(pad[0]), tuple(pad[1])]
    return np.pad(image, widths, mode="reflect")


def iter_tiled_predict(
    image2d: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int | tuple[int, int],
    halo: int,
    shrink: int = 0,
    align: int = 1,
    batch_size: int = 1,
    n_out: int,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Predict an image tile by tile, yielding progress; the generator's return value is the stitched result.

    Parameters
    ----------
    image2d : np.ndarray
        ``(C, Y, X)`` (or ``(Y, X)``, taken as one channel), converted to float32.
    predict : callable
        ``(N, C, ty, tx) float32 -> (N, n_out, ty - 2*shrink, tx - 2*shrink)`` array-like. It receives a view of
        a buffer that is reused for the next batch, so it must not keep a reference to it. ``N <= batch_size``
        (the last batch may be smaller).
    tile : int or (int, int)
        Input tile side(s); must be sizes ``predict`` accepts.
    halo : int
        Context per side (mirror padding and the margin dropped from every tile), ``>= shrink``.
    shrink : int
        Pixels per side ``predict`` loses.
    align : int
        Tile origins are multiples of this.
    batch_size : int
        Tiles per ``predict`` call.
    n_out : int
        Channels ``predict`` returns.

    Yields
    ------
    (done, total) : (int, int)
        Tiles done so far and the tile count, after every batch.

    Returns
    -------
    np.ndarray
        ``(n_out, Y, X)`` float32.

    Raises
    ------
    ValueError
        For a tile too small for the halo, a bad batch size, or a ``predict`` output of the wrong shape (the
        message gives expected and received shapes).
    """
    image = np.asarray(image2d)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ValueError(f"expected a (C, Y, X) or (Y, X) image, got shape {image.shape}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(n_out) < 1:
        raise ValueError(f"n_out must be >= 1, got {n_out}")
    batch_size, n_out, halo, shrink = int(batch_size), int(n_out), int(halo), int(shrink)
    grid = tile_grid(image.shape[-2:], tile=tile, halo=halo, shrink=shrink, align=align)
    padded = mirror_pad(image.astype(np.float32, copy=False), grid.pad)
    ty, tx = grid.tile
    sy, sx = grid.step
    ny, nx = grid.shape
    expected = (n_out, ty - 2 * shrink, tx - 2 * shrink)
    # Kept centre inside the predictor's output: the halo minus what the predictor already cut away.
    c = halo - shrink
    out = np.empty((n_out, ny, nx), dtype=np.float32)
    origins = grid.origins()
    total = len(origins)
    n_batch = min(batch_size, total)
    # One buffer reused for every batch: no per-tile allocation, and predict gets a contiguous array.
    buffer = np.empty((n_batch, image.shape[0], ty, tx), dtype=np.float32)
    done = 0
    for start in range(0, total, n_batch):
        chunk = origins[start : start + n_batch]
        for k, (oy, ox) in enumerate(chunk):
            buffer[k] = padded[:, oy : oy + ty, ox : ox + tx]
        result = np.asarray(predict(buffer[: len(chunk)]))
        if result.shape != (len(chunk), *expected):
            raise ValueError(
                f"predict returned shape {result.shape} for a batch of shape {(len(chunk), *buffer.shape[1:])}; "
                f"expected {(len(chunk), *expected)} (n_out={n_out}, shrink={shrink})"
            )
        for k, (oy, ox) in enumerate(chunk):
            # Tile origin oy in padded coordinates keeps image rows [oy, oy + sy).
            hy = min(sy, ny - oy)
            hx = min(sx, nx - ox)
            out[:, oy : oy + hy, ox : ox + hx] = result[k, :, c : c + hy, c : c + hx]
        done += len(chunk)
        yield done, total
    return out


def predict_tiled(
    image2d: np.ndarray, predict: Callable[[np.ndarray], np.ndarray], **kwargs: Any
) -> np.ndarray:
    """Synchronous twin of :func:`iter_tiled_predict`: same parameters, returns the ``(n_out, Y, X)`` result."""
    return drain(iter_tiled_predict(image2d, predict, **kwargs))
