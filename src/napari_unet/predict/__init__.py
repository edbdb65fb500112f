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

The package's rooms: ``_geometry`` (tile and batch sizes), ``_predictor`` (the forward pass, shared with training's
validation), ``_records`` (progress and result records), ``_stack`` (the tile plan, the per-slice generator with its
out-of-memory back-off, and ``predict_stack``), ``_source`` (slice reads that do not keep a memory map resident),
``_to_zarr`` (resumable prediction into OME-Zarr stores: :func:`open_zarr_run`, :func:`predict_to_zarr`).
"""

from __future__ import annotations

from ._geometry import (
    MAX_AUTO_TILE,
    auto_batch_size,
    auto_tile,
    count_tiles,
    estimate_tile_bytes,
    min_tile,
    plan_tile,
    tile_geometry,
)
from ._predictor import inference_copy, make_predictor, predict_whole
from ._records import PredictProgress, PredictResult
from ._source import SliceSource
from ._stack import predict_stack, predict_stack_sync
from ._to_zarr import ZarrRun, model_digest, open_zarr_run, predict_to_zarr, predict_to_zarr_sync

__all__ = [
    "MAX_AUTO_TILE",
    "PredictProgress",
    "PredictResult",
    "SliceSource",
    "ZarrRun",
    "auto_batch_size",
    "auto_tile",
    "count_tiles",
    "estimate_tile_bytes",
    "inference_copy",
    "make_predictor",
    "min_tile",
    "model_digest",
    "open_zarr_run",
    "plan_tile",
    "predict_stack",
    "predict_stack_sync",
    "predict_to_zarr",
    "predict_to_zarr_sync",
    "predict_whole",
    "tile_geometry",
]
