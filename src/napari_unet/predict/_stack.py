"""``predict_stack``: plan the tiles, predict slice by slice (backing off on out-of-memory), return the result."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import parse_auto_int
from ..device import describe_device, empty_cache, is_out_of_memory, select_device
from ..dtypes import labels_dtype
from ..generators import drain, relay
from ..model import UNet
from ..normalize import apply_normalization, normalization_from_image
from ..tiling import iter_tiled_predict
from ._geometry import auto_batch_size, auto_tile, count_tiles, min_tile, plan_tile, tile_geometry
from ._predictor import inference_copy, make_predictor
from ._records import PredictProgress, PredictResult

__all__ = ["StackIO", "TilePlan", "predict_slice", "predict_stack", "predict_stack_sync"]


# ------------------------------------------------------------------------------------------------- the plan
@dataclass
class TilePlan:
    """How the slices of one run are tiled; an out-of-memory error changes it for the rest of the run.

    Attributes
    ----------
    model : UNet
    shape : (int, int)
        Slice shape ``(Y, X)``.
    device : torch.device
    description : str
        :func:`napari_unet.device.describe_device` of ``device``, for messages.
    max_tile : int
        Largest tile side allowed.
    tile_shape : (int, int)
        Tile shape :func:`plan_tile` fits to the slice under ``max_tile``.
    batch : int
        Tiles per forward pass.
    notes : list of str
        Adjustments worth telling the user; :meth:`back_off` appends to it.
    """

    model: UNet
    shape: tuple[int, int]
    device: torch.device
    description: str
    max_tile: int
    tile_shape: tuple[int, int]
    batch: int
    notes: list[str]

    @classmethod
    def create(
        cls,
        model: UNet,
        shape: tuple[int, int],
        device: torch.device,
        *,
        tile: int | None,
        batch: int | None,
        amp: bool,
        notes: list[str],
    ) -> TilePlan:
        """The plan for a requested tile side and batch size (None: pick for the device's free memory).

        ``amp``: whether the forward pass runs under 16-bit autocast, which halves the memory per value.
        """
        bytes_per_value = 2 if amp else 4
        smallest = min_tile(model)
        if tile is None:
            max_tile = auto_tile(model, shape, device, bytes_per_value=bytes_per_value)
        else:
            max_tile = model.valid_input_size(tile, "down")
            if tile < smallest or max_tile < smallest:
                notes.append(
                    f"tile {tile} is below the smallest usable tile for this model; using {smallest}"
                )
                max_tile = smallest
            elif max_tile != tile:
                notes.append(f"tile {tile} rounded down to {max_tile}, a size the network accepts")
        tile_shape = plan_tile(model, shape, max_tile)
        if batch is None:
            n_tiles = count_tiles(model, shape, tile_shape)
            batch = auto_batch_size(model, tile_shape, n_tiles, device, bytes_per_value=bytes_per_value)
        return cls(model, shape, device, describe_device(device), max_tile, tile_shape, batch, notes)

    @property
    def n_tiles(self) -> int:
        """Tiles per slice."""
        return count_tiles(self.model, self.shape, self.tile_shape)

    def tiles(
        self, x: np.ndarray, predictor: Callable[[np.ndarray], np.ndarray], n_out: int
    ) -> Generator[tuple[int, int], None, np.ndarray]:
        """:func:`napari_unet.tiling.iter_tiled_predict` of one normalised slice with the current plan."""
        geometry = tile_geometry(self.model)
        return iter_tiled_predict(
            x, predictor, tile=self.tile_shape, batch_size=self.batch, n_out=n_out, **geometry
        )

    def back_off(self, reason: str) -> str:
        """After an out-of-memory error: halve the batch, or else shrink the tile; returns the note it adds.

        Raises
        ------
        RuntimeError
            When the batch is 1 and the tile is already the smallest usable one.
        """
        empty_cache(self.device)
        if self.batch > 1:
            note = f"out of memory on {self.description}: batch {self.batch} -> {self.batch // 2}"
            self.batch //= 2
        else:
            current = max(self.tile_shape)
            smaller = max(min_tile(self.model), self.model.valid_input_size(int(current * 0.7), "down"))
            if smaller >= current:
                raise RuntimeError(
                    f"out of memory on {self.description} even with batch 1 and the smallest tile ({current} px) "
                    f"for this model ({reason}); free memory, use a smaller model or device='cpu'"
                )
            self.max_tile = smaller
            self.tile_shape = plan_tile(self.model, self.shape, smaller)
            note = f"out of memory on {self.description}: tile {current} -> {max(self.tile_shape)}"
        self.notes.append(note)
        return note


# ----------------------------------------------------------------------------------------------- one slice
def predict_slice(
    x: np.ndarray,
    predictor: Callable[[np.ndarray], np.ndarray],
    plan: TilePlan,
    *,
    n_out: int,
    index: int = 0,
    n_slices: int = 1,
    z: int = 0,
) -> Generator[PredictProgress, None, np.ndarray]:
    """Predict one normalised slice tile by tile, recovering from out-of-memory errors.

    On an out-of-memory error the plan backs off (:meth:`TilePlan.back_off`) and the slice starts again; any
    other error propagates.

    Parameters
    ----------
    x : np.ndarray
        ``(Y, X)`` or ``(C, Y, X)`` normalised slice.
    predictor : callable
        From :func:`make_predictor`.
    plan : TilePlan
        Changed in place by out-of-memory recoveries, so later slices start from what worked.
    n_out : int
        Channels ``predictor`` returns.
    index, n_slices, z : int
        Position of the slice in the run and in the stack, for the progress records.

    Yields
    ------
    PredictProgress
        After every tile batch, and once after each out-of-memory recovery (its message is the note).

    Returns
    -------
    np.ndarray
        ``(n_out, Y, X)`` float32.
    """

    def record(done: int, total: int) -> PredictProgress:
        return PredictProgress(
            index, n_slices, done, total, f"slice {index + 1}/{n_slices} (z={z}): tile {done}/{total}", z
        )

    while True:
        try:
            return (yield from relay(plan.tiles(x, predictor, n_out), record))
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            # Keep only the text: the traceback references the failed batch's tensors, which must be released
            # (end of this block) before back_off empties the allocator cache.
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        note = plan.back_off(reason)
        yield PredictProgress(index, n_slices, 0, plan.n_tiles, note, z)


# ------------------------------------------------------------------------------------- inputs and outputs
def _layout(image: Any, model: UNet) -> tuple[bool, int, tuple[int, int]]:
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


def _metadata(meta: dict | None, image: Any, model: UNet, notes: list[str]) -> tuple[dict, list[int]]:
    """Normalisation and label values from ``meta``, or the defaults (noted) where it has none."""
    meta = meta or {}
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
    return normalization, label_values


def _check_out(array: Any, shape: tuple[int, ...], name: str) -> None:
    got = tuple(int(s) for s in array.shape)
    if got != shape:
        raise ValueError(f"{name} has shape {got}; it must have shape {shape}")


def _labels_out(labels_out: Any, spatial: tuple[int, ...], label_values: list[int]) -> Any:
    """``labels_out`` checked, or a new array of the smallest dtype that holds the label values."""
    if labels_out is None:
        return np.zeros(spatial, dtype=labels_dtype(max(label_values)))
    _check_out(labels_out, spatial, "labels_out")
    dtype = np.dtype(labels_out.dtype)
    if (
        dtype.kind not in "ui"
        or np.iinfo(dtype).max < max(label_values)
        or min(label_values) < np.iinfo(dtype).min
    ):
        raise ValueError(
            f"labels_out has dtype {dtype}, which cannot hold the label values {label_values}; use "
            f"{labels_dtype(max(label_values))}"
        )
    return labels_out


def _slice_indices(slices: Sequence[int] | None, n_z: int) -> list[int]:
    if slices is None:
        return list(range(n_z))
    zs = []
    for z in slices:
        if int(z) != z or not -n_z <= z < n_z:
            raise ValueError(f"slice index {z} is out of range for {n_z} slice(s)")
        zs.append(int(z) % n_z)
    return zs


@dataclass
class StackIO:
    """Where one run's slices come from and where its results go: the checked arguments of :func:`predict_stack`.

    Attributes
    ----------
    image : array-like
        The input, read one slice at a time.
    is_stack : bool
        Whether ``image`` has a Z axis.
    shape : (int, int)
        Slice shape ``(Y, X)``.
    zs : list of int
        Z indices to predict, in order.
    normalization : dict
    labels_out : array-like
        Receives label values (through ``lut``, class index -> label value).
    probabilities_out : array-like or None
        Receives probabilities; None when they are not wanted.
    lut : np.ndarray
    notes : list of str
        Adjustments worth telling the user.
    """

    image: Any
    is_stack: bool
    shape: tuple[int, int]
    zs: list[int]
    normalization: dict
    labels_out: Any
    probabilities_out: Any
    lut: np.ndarray
    notes: list[str]

    @classmethod
    def create(
        cls,
        image: Any,
        model: UNet,
        meta: dict | None,
        outputs: tuple[Any, Any, bool],
        slices: Sequence[int] | None,
    ) -> StackIO:
        """Check ``image``, ``meta``, ``outputs = (labels_out, probabilities_out, want_probabilities)``, ``slices``."""
        labels_out, probabilities_out, want_probabilities = outputs
        is_stack, n_z, shape = _layout(image, model)
        notes: list[str] = []
        normalization, label_values = _metadata(meta, image, model, notes)
        spatial = (n_z, *shape) if is_stack else shape
        labels_out = _labels_out(labels_out, spatial, label_values)
        prob_shape = (*spatial[:-2], model.n_classes, *shape)
        if probabilities_out is not None:
            _check_out(probabilities_out, prob_shape, "probabilities_out")
        elif want_probabilities:
            probabilities_out = np.zeros(prob_shape, np.float32)
        zs = _slice_indices(slices, n_z)
        lut = np.asarray(label_values, dtype=np.dtype(labels_out.dtype))
        return cls(image, is_stack, shape, zs, normalization, labels_out, probabilities_out, lut, notes)

    def read(self, z: int) -> np.ndarray:
        """Slice ``z``, normalised (float32)."""
        return apply_normalization(
            np.asarray(self.image[z] if self.is_stack else self.image), self.normalization
        )

    def write(self, z: int, out: np.ndarray) -> None:
        """Store the predictor's stitched ``(n_out, Y, X)`` output of slice ``z``."""
        where = z if self.is_stack else Ellipsis
        if self.probabilities_out is not None:
            self.probabilities_out[where] = out
            self.labels_out[where] = self.lut[out.argmax(axis=0)]
        else:
            self.labels_out[where] = self.lut[out[0].astype(np.intp)]


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
    on_written: Callable[[int], None] | None = None,
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
        a new numpy array (uint8 if all label values < 256, else the next unsigned type that holds them) when
        None. Slices not predicted are left untouched.
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
    on_written : callable, optional
        Called with the Z index (0 for a single slice) once a slice's labels and probabilities are written, e.g.
        to record it as done in a resumable store (:mod:`napari_unet.ngff`).

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
        tile/batch argument that is neither "auto" nor a whole number of at least 1.
    RuntimeError
        When the device runs out of memory even with batch 1 and the smallest tile.
    """
    t0 = time.perf_counter()
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a napari_unet.model.UNet, got {type(model).__name__}")
    io = StackIO.create(image, model, meta, (labels_out, probabilities_out, want_probabilities), slices)
    probabilities = io.probabilities_out is not None
    tile_side, batch = parse_auto_int(tile, "tile"), parse_auto_int(batch_size, "batch_size")
    dev = select_device(device)
    amp = bool(amp) and dev.type == "cuda"
    plan = TilePlan.create(model, io.shape, dev, tile=tile_side, batch=batch, amp=amp, notes=io.notes)
    run = inference_copy(model, dev)
    predictor = make_predictor(run, dev, probabilities=probabilities, tta=tta, amp=amp)

    yield _first_record(io, plan, tta)
    n_out = model.n_classes if probabilities else 1
    for i, z in enumerate(io.zs):
        out = yield from predict_slice(
            io.read(z), predictor, plan, n_out=n_out, index=i, n_slices=len(io.zs), z=z
        )
        io.write(z, out)
        if on_written is not None:
            on_written(z)
    return PredictResult(
        labels=io.labels_out,
        probabilities=io.probabilities_out,
        device=plan.description,
        tile=plan.max_tile,
        batch_size=plan.batch,
        seconds=time.perf_counter() - t0,
        tile_shape=tuple(plan.tile_shape),
        n_slices=len(io.zs),
        notes=tuple(io.notes),
    )


def _first_record(io: StackIO, plan: TilePlan, tta: bool) -> PredictProgress:
    """The record yielded before the first slice: what will run, where, in which tiles."""
    (ny, nx), (ty, tx), n_run = io.shape, plan.tile_shape, len(io.zs)
    message = (
        f"predicting {n_run} slice(s) of {ny} x {nx} on {plan.description}; tiles {ty} x {tx}, batch {plan.batch}"
        + (", 8x test-time augmentation" if tta else "")
    )
    return PredictProgress(0, n_run, 0, plan.n_tiles, message, io.zs[0] if io.zs else 0)


def predict_stack_sync(image: Any, model: UNet, meta: dict | None, **kwargs: Any) -> PredictResult:
    """Synchronous twin of :func:`predict_stack` (same parameters); returns the :class:`PredictResult`."""
    return drain(predict_stack(image, model, meta, **kwargs))
