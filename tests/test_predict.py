"""Stack prediction: tiled == whole-image, lazy inputs, outputs, OOM recovery, TTA, cancellation."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import torch
import zarr

from napari_unet.device import DeviceUnavailableError
from napari_unet.generators import drain
from napari_unet.model import UNet
from napari_unet.predict import (
    PredictProgress,
    auto_batch_size,
    auto_tile,
    count_tiles,
    estimate_tile_bytes,
    inference_copy,
    make_predictor,
    min_tile,
    plan_tile,
    predict_stack,
    predict_stack_sync,
    predict_whole,
    tile_geometry,
)
from napari_unet.predict._stack import TilePlan, predict_slice
from napari_unet.tiling import predict_tiled

RNG = np.random.default_rng(0)
STACK = (RNG.random((3, 64, 64)) * 200 + 20).astype(np.uint8)
META = {
    "normalization": {"mode": "percentile", "low": 20.0, "high": 220.0},
    "label_values": [0, 255],
}


def _model(depth=2, padding="valid", **kwargs):
    torch.manual_seed(0)
    return UNet(depth=depth, features=4, padding=padding, **kwargs).eval()


def _reference(model, stack, meta=META):
    """Whole-slice probabilities, one forward pass per mirror-padded slice."""
    from napari_unet.normalize import apply_normalization

    return np.stack([predict_whole(model, apply_normalization(s, meta["normalization"])) for s in stack])


def _drain(gen):
    """(every record yielded, the return value)."""
    records = []
    result = drain(gen, records.append)
    return records, result


@pytest.fixture
def native_conv():
    """torch's own convolution kernels: same summation order for every tile size, so results are bitwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=False):
            yield


@pytest.mark.parametrize("depth, tile", [(2, 24), (3, 52)])
def test_valid_tiles_reproduce_the_whole_slice_bitwise(native_conv, depth, tile):
    model = _model(depth)
    result = predict_stack_sync(STACK, model, META, tile=tile, batch_size=5, want_probabilities=True)
    reference = _reference(model, STACK)
    # Tiles much smaller than the slice: 64 x 64 slices cut into 8 x 8 (depth 2) / 6 x 6 (depth 3) tiles.
    assert result.tile_shape == (tile, tile)
    assert np.array_equal(result.probabilities, reference)
    assert np.array_equal(result.labels, np.where(reference.argmax(1) == 1, 255, 0))
    assert result.labels.dtype == np.uint8


def test_valid_tiles_match_with_default_kernels():
    # oneDNN picks kernels by tensor size, so summation order (not geometry) differs: float rounding only
    # (~1e-6; a misaligned grid is off by > 1e-3, see below).
    model = _model(3)
    result = predict_stack_sync(STACK, model, META, tile=52, want_probabilities=True)
    assert np.abs(result.probabilities - _reference(model, STACK)).max() <= 1e-5


def test_same_mode_tiles_reproduce_the_whole_slice():
    model = _model(2, "same")
    result = predict_stack_sync(STACK, model, META, tile=32, batch_size=4, want_probabilities=True)
    assert result.tile_shape == (32, 32)  # halo 10: 12 px kept per tile, 6 x 6 tiles
    assert np.abs(result.probabilities - _reference(model, STACK)).max() <= 1e-4


def test_alignment_is_what_makes_stitching_exact():
    # Depth 4 (3 poolings): tile outputs are 4 px off a multiple of 8, so unaligned origins are easy to make.
    model = _model(4)
    image = STACK[0].astype(np.float32) / 255
    cpu = torch.device("cpu")
    predictor = make_predictor(inference_copy(model, cpu), cpu, probabilities=True, tta=False, amp=False)
    reference = predict_whole(model, image)
    common = dict(tile=100, halo=model.halo, shrink=model.shrink, batch_size=8, n_out=2)
    aligned = predict_tiled(image, predictor, align=model.align, **common)
    unaligned = predict_tiled(image, predictor, align=4, **common)
    assert np.abs(aligned - reference).max() <= 1e-5
    assert np.abs(unaligned - reference).max() > 1e-3


def test_labels_do_not_depend_on_tile_or_batch():
    model = _model(3)
    whole = predict_stack_sync(STACK, model, META, tile="auto", want_probabilities=True)
    assert whole.tile_shape == (104, 104)  # one tile: 64 + 2 * 20 = 104 (= 4 * 23 + 12, a valid size)
    small = predict_stack_sync(STACK, model, META, tile=60, batch_size=3, want_probabilities=True)
    # Default (oneDNN) kernels choose their summation order by tensor size: float rounding, ~1e-6.
    assert np.abs(small.probabilities - whole.probabilities).max() <= 1e-5
    margin = np.abs(np.diff(whole.probabilities, axis=1))[:, 0]
    decided = margin > 1e-4  # labels may only differ where the two classes tie to float precision
    assert np.array_equal(small.labels[decided], whole.labels[decided])


class _LazyStack:
    """Array-like that records every index it is read with and refuses to be converted as a whole."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self._data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole stack was converted to an array")


def test_reads_one_slice_at_a_time():
    model = _model(2)
    lazy = _LazyStack(STACK)
    result = predict_stack_sync(lazy, model, META, tile=40)
    assert lazy.reads == [0, 1, 2]
    expected = predict_stack_sync(STACK, model, META, tile=40)
    assert np.array_equal(result.labels, expected.labels)


def test_dask_zarr_memmap_inputs_and_outputs(tmp_path):
    model = _model(2)
    expected = predict_stack_sync(STACK, model, META, tile=40).labels
    for image in (
        da.from_array(STACK, chunks=(1, 32, 32)),
        zarr.array(STACK, chunks=(1, 64, 64)),
        np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype=np.uint8, shape=STACK.shape),
    ):
        if isinstance(image, np.memmap):
            image[:] = STACK
        assert np.array_equal(predict_stack_sync(image, model, META, tile=40).labels, expected)

    z_out = zarr.zeros(shape=STACK.shape, chunks=(1, 64, 64), dtype="uint8")
    result = predict_stack_sync(STACK, model, META, tile=40, labels_out=z_out)
    assert result.labels is z_out and np.array_equal(z_out[:], expected)
    m_out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.uint8, shape=STACK.shape)
    predict_stack_sync(STACK, model, META, tile=40, labels_out=m_out)
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)


def test_label_values_and_dtype():
    model = _model(2, n_classes=3)
    meta = dict(META, label_values=[0, 7, 1000])
    result = predict_stack_sync(STACK[:1], model, meta, tile=40, want_probabilities=True)
    assert result.labels.dtype == np.uint16
    assert set(np.unique(result.labels)) <= {0, 7, 1000}
    lut = np.array([0, 7, 1000])
    assert np.array_equal(result.labels, lut[result.probabilities.argmax(1)])
    assert np.allclose(result.probabilities.sum(1), 1, atol=1e-5)
    assert result.probabilities.dtype == np.float32 and result.probabilities.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"dtype uint8, which cannot hold the label values \[0, 7, 1000\]"):
        predict_stack_sync(STACK[:1], model, meta, labels_out=np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(
        ValueError, match=r"labels_out has shape \(64, 64\); it must have shape \(1, 64, 64\)"
    ):
        predict_stack_sync(STACK[:1], model, meta, labels_out=np.zeros((64, 64), np.uint16))
    with pytest.raises(ValueError, match="probabilities_out has shape"):
        predict_stack_sync(STACK[:1], model, meta, probabilities_out=np.zeros((1, 2, 64, 64), np.float32))


def test_single_slice_subset_and_multichannel():
    model = _model(2)
    single = predict_stack_sync(STACK[1], model, META, tile=40, want_probabilities=True)
    assert single.labels.shape == (64, 64) and single.probabilities.shape == (2, 64, 64)
    full = predict_stack_sync(STACK, model, META, tile=40)
    assert np.array_equal(single.labels, full.labels[1])

    out = np.full(STACK.shape, 9, np.uint8)
    result = predict_stack_sync(STACK, model, META, tile=40, labels_out=out, slices=[-1])
    assert result.n_slices == 1
    assert (out[:2] == 9).all() and np.array_equal(out[2], full.labels[2])
    with pytest.raises(ValueError, match="slice index 3 is out of range for 3 slice"):
        predict_stack_sync(STACK, model, META, slices=[3])

    two = _model(2, in_channels=2)
    image = np.stack([STACK, 255 - STACK], axis=1)  # (Z, C, Y, X)
    assert predict_stack_sync(image, two, META, tile=40).labels.shape == (3, 64, 64)
    with pytest.raises(
        ValueError, match=r"\(Z, 2, Y, X\) image for a 2-channel model, got shape \(3, 64, 64\)"
    ):
        predict_stack_sync(STACK, two, META)


def test_tta_averages_the_eight_dihedral_views():
    # 48 px + 2 * 8 halo = 64, a valid size: one tile with symmetric padding, so tile-level TTA equals TTA of
    # the whole slice computed by hand.
    model = _model(2)
    image = STACK[0, :48, :48]
    result = predict_stack_sync(image, model, META, tile=64, tta=True, want_probabilities=True)
    assert result.tile_shape == (64, 64)
    x = (image.astype(np.float32) - 20) / 200
    views = []
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(x[:, ::-1] if flip else x, k)
            p = np.rot90(predict_whole(model, np.ascontiguousarray(t)), -k, axes=(1, 2))
            views.append(p[:, :, ::-1] if flip else p)
    assert np.abs(result.probabilities - np.mean(views, axis=0)).max() <= 1e-5
    plain = predict_stack_sync(image, model, META, tile=64, want_probabilities=True)
    assert np.abs(result.probabilities - plain.probabilities).max() > 1e-4  # TTA did something


class _FlakyUNet(UNet):
    """Raises a CUDA out-of-memory error for batches above ``max_batch`` or tiles above ``max_side``."""

    def __init__(self, *args, max_batch=99, max_side=9999, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_batch, self.max_side, self.failures = max_batch, max_side, 0

    def forward(self, x):
        if x.shape[0] > self.max_batch or max(x.shape[-2:]) > self.max_side:
            self.failures += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        return super().forward(x)


def test_out_of_memory_halves_batch_then_shrinks_tile():
    torch.manual_seed(0)
    flaky = _FlakyUNet(depth=2, features=4, max_batch=1, max_side=40).eval()
    reference = predict_stack_sync(STACK, _model(2), META, tile=40, want_probabilities=True)
    records, result = _drain(
        predict_stack(STACK, flaky, META, tile=64, batch_size=4, want_probabilities=True)
    )
    assert result.batch_size == 1 and max(result.tile_shape) <= 40
    assert [n for n in result.notes if "out of memory" in n] == [
        "out of memory on CPU — slow, consider a GPU: batch 4 -> 2",
        "out of memory on CPU — slow, consider a GPU: batch 2 -> 1",
        "out of memory on CPU — slow, consider a GPU: tile 48 -> 32",
    ]
    assert any("batch 4 -> 2" in r.message for r in records)
    assert np.abs(result.probabilities - reference.probabilities).max() <= 1e-5

    hopeless = _FlakyUNet(depth=2, features=4, max_side=10).eval()
    with pytest.raises(RuntimeError, match="out of memory .* even with batch 1 and the smallest tile"):
        predict_stack_sync(STACK[:1], hopeless, META, tile=64, batch_size=1)


def test_predict_slice_backs_off_and_keeps_the_plan_for_later_slices():
    model = _model(2)
    cpu = torch.device("cpu")
    predictor = make_predictor(inference_copy(model, cpu), cpu, probabilities=True, tta=False, amp=False)
    calls = []

    def once_out_of_memory(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (simulated)")
        return predictor(batch)

    notes = []
    plan = TilePlan.create(model, (64, 64), cpu, tile=24, batch=4, amp=False, notes=notes)
    x = STACK[0].astype(np.float32) / 255
    records, out = _drain(predict_slice(x, once_out_of_memory, plan, n_out=2, index=1, n_slices=3, z=2))
    assert notes == ["out of memory on CPU — slow, consider a GPU: batch 4 -> 2"] and plan.batch == 2
    assert records[0].message == notes[0] and records[0].tiles_done == 0 and records[0].z == 2
    assert records[-1].message == "slice 2/3 (z=2): tile 64/64" and records[-1].fraction == pytest.approx(
        2 / 3
    )
    assert calls == [4] + [2] * 32  # the failed batch, then the whole slice again in batches of 2
    common = dict(tile=24, halo=model.halo, shrink=model.shrink, align=model.align, n_out=2)
    assert np.array_equal(out, predict_tiled(x, predictor, batch_size=2, **common))
    _drain(predict_slice(x, once_out_of_memory, plan, n_out=2))
    assert len(notes) == 1  # the next slice starts from the plan that worked


def test_other_errors_are_not_swallowed():
    class Broken(UNet):
        def forward(self, x):
            raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

    with pytest.raises(RuntimeError, match="CUDNN_STATUS_INTERNAL_ERROR"):
        predict_stack_sync(STACK, Broken(depth=2, features=4), META, tile=40)


def test_closing_the_generator_cancels_mid_stack():
    calls = []

    class Counting(UNet):
        def forward(self, x):
            calls.append(x.shape[0])
            return super().forward(x)

    torch.manual_seed(0)
    model = Counting(depth=2, features=4)
    model.train()
    out = np.full(STACK.shape, 7, np.uint8)
    gen = predict_stack(STACK, model, META, tile=24, batch_size=4, labels_out=out)
    for record in gen:
        if record.slice_index == 1 and record.tiles_done == 8:
            break
    gen.close()
    assert len(calls) == 16 + 2  # slice 0: 64 tiles / 4; slice 1: two batches
    assert (out[0] != 7).any() and (out[1:] == 7).all()
    assert model.training  # the caller's model is never switched to eval mode


def test_progress_records():
    records, result = _drain(predict_stack(STACK, _model(2), META, tile=40, batch_size=2))
    assert all(isinstance(r, PredictProgress) for r in records)
    assert records[0].tiles_done == 0 and "3 slice(s) of 64 x 64" in records[0].message
    fractions = [r.fraction for r in records]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    tiles = [r for r in records if r.tiles_done]
    assert len(tiles) == 3 * 5  # tile 38, step 22: 9 tiles per slice, in 5 batches of at most 2
    assert result.n_slices == 3 and result.seconds > 0 and result.device.startswith("CPU")


def test_arguments_are_checked():
    model = _model(2)
    with pytest.raises(ValueError, match="tile must be 'auto' or a whole number of at least 1, got 'big'"):
        predict_stack_sync(STACK, model, META, tile="big")
    with pytest.raises(ValueError, match="batch_size must be 'auto' or a whole number of at least 1, got 0"):
        predict_stack_sync(STACK, model, META, batch_size=0)
    with pytest.raises(ValueError, match=r"\(Y, X\) or \(Z, Y, X\).*\(2, 3, 64, 64\)"):
        predict_stack_sync(np.zeros((2, 3, 64, 64)), model, META)
    with pytest.raises(ValueError, match="3 label values for a model with 2 classes"):
        predict_stack_sync(STACK, model, dict(META, label_values=[0, 1, 2]))
    with (
        pytest.raises(DeviceUnavailableError) if not torch.cuda.is_available() else pytest.raises(ValueError)
    ):
        predict_stack_sync(STACK, model, META, device="cuda" if not torch.cuda.is_available() else "gpu")
    rounded = predict_stack_sync(STACK[:1], model, META, tile=41)
    assert any(n.startswith("tile 41 rounded down to 40") for n in rounded.notes)
    tiny = predict_stack_sync(STACK[:1, :8, :8], model, META, tile=3)
    assert any("below the smallest usable tile" in n for n in tiny.notes)


def test_without_metadata_uses_image_percentiles():
    result = predict_stack_sync(STACK[:1], _model(2), None, tile=40)
    assert set(np.unique(result.labels)) <= {0, 1}
    assert any("percentiles computed from this image" in n for n in result.notes)


def test_tiny_slices():
    model = _model(3)
    image = STACK[:2, :5, :7]
    result = predict_stack_sync(image, model, META, want_probabilities=True)
    reference = _reference(model, image)
    assert result.labels.shape == (2, 5, 7)
    assert np.abs(result.probabilities - reference).max() <= 1e-5


def test_plan_and_auto_tile_geometry():
    model = UNet(depth=4, features=32)  # valid: halo 44, align 8, sizes 8k + 28
    # 1024 px with tiles up to 508: three tiles are needed; 436 does it with less overlap.
    assert plan_tile(model, (1024, 1024), 508) == (436, 436)
    assert plan_tile(model, (1024, 300), 2044) == (1116, 396)
    assert auto_tile(model, (1024, 1024), torch.device("cpu"), budget=1 << 40) == 1116
    small = auto_tile(model, (1024, 1024), torch.device("cpu"), budget=200 * 1024**2)
    assert small < 1116 and model.output_size(small) > 0
    with pytest.raises(ValueError, match="smallest usable tile is 100"):
        plan_tile(model, (64, 64), 92)


def test_min_tile_and_count_tiles():
    model = UNet(depth=4, features=4)  # valid: halo 44, align 8
    assert tile_geometry(model) == {"halo": 44, "shrink": 44, "align": 8}
    assert min_tile(model) == 100  # 100 - 2 * 44 = 12 px, 8 of them kept: the first size with a centre
    assert count_tiles(model, (1024, 1024), (436, 436)) == 9  # step 344 (= 348 rounded down to 8)
    assert count_tiles(model, (64, 300), (100, 396)) == 8 * 1
    same = UNet(depth=2, features=4, padding="same")  # halo 10, align 2
    assert min_tile(same) == 22 and count_tiles(same, (64, 64), (32, 32)) == 36


def test_auto_batch_size():
    model = UNet(depth=4, features=32)
    per_tile = estimate_tile_bytes(model, (436, 436), bytes_per_value=2)
    assert 100e6 < per_tile < 400e6  # fp16 activations of a 436 px tile: ~0.2 GB
    cuda = torch.device("cuda")
    assert auto_batch_size(model, (436, 436), 9, torch.device("cpu"), budget=1 << 40) == 1
    assert auto_batch_size(model, (436, 436), 9, cuda, bytes_per_value=2, budget=4 * per_tile) == 4
    assert auto_batch_size(model, (436, 436), 9, cuda, bytes_per_value=2, budget=1 << 40) == 9
    assert auto_batch_size(model, (436, 436), 9, cuda, bytes_per_value=2, budget=per_tile // 2) == 1
    # float32 needs about twice the memory of fp16
    assert estimate_tile_bytes(model, 436) > 1.8 * per_tile


# ------------------------------------------------------------------------------------------- normalisation
def test_normalization_percentiles_and_application():
    from napari_unet.normalize import apply_normalization, normalization_from_image

    ramp = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64)
    norm = normalization_from_image(ramp, low_pct=1.0, high_pct=99.0)
    assert norm["mode"] == "percentile"
    assert norm["low"] == pytest.approx(np.percentile(ramp, 1.0))
    assert norm["high"] == pytest.approx(np.percentile(ramp, 99.0))
    out = apply_normalization(ramp[0], norm)
    assert out.dtype == np.float32 and ramp.dtype == np.uint16  # a new array; the input is untouched
    assert out.min() < 0 < 1 < out.max()  # not clipped: outliers stay outliers
    assert np.allclose(out, (ramp[0] - norm["low"]) / (norm["high"] - norm["low"]), atol=1e-6)
    assert np.array_equal(apply_normalization(ramp, {"mode": "none"}), ramp.astype(np.float32))


def test_normalization_samples_a_few_slices_of_a_lazy_stack():
    from napari_unet.normalize import normalization_from_image

    stack = _LazyStack(np.repeat(STACK, 14, axis=0))  # 42 slices
    norm = normalization_from_image(stack, max_slices=16)
    assert len(stack.reads) == 16
    assert all(isinstance(key, tuple) and isinstance(key[0], int) for key in stack.reads)
    assert stack.reads[0][0] == 0 and stack.reads[-1][0] == 41
    assert norm["low"] == pytest.approx(np.percentile(STACK, 1.0), abs=1.0)
    assert norm["high"] == pytest.approx(np.percentile(STACK, 99.8), abs=1.0)
    lazy = normalization_from_image(da.from_array(STACK, chunks=(1, 64, 64)))
    assert lazy == normalization_from_image(STACK)


def test_normalization_edge_cases():
    from napari_unet.normalize import apply_normalization, normalization_from_image

    flat = normalization_from_image(np.full((2, 8, 8), 7, np.uint8))
    assert (flat["low"], flat["high"]) == (7.0, 8.0)  # constant image maps to 0, no division by zero
    with_nan = np.array([[np.nan, 1.0], [2.0, np.inf]], np.float32)
    assert np.isfinite(list(normalization_from_image(with_nan).values())[1:3]).all()
    with pytest.raises(ValueError, match="no finite value"):
        normalization_from_image(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="low_pct < high_pct"):
        normalization_from_image(STACK, low_pct=50, high_pct=10)
    with pytest.raises(ValueError, match="empty image"):
        normalization_from_image(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match="high > low"):
        apply_normalization(STACK[0], {"mode": "percentile", "low": 5.0, "high": 5.0})
    with pytest.raises(ValueError, match="unknown normalization mode 'zscore'"):
        apply_normalization(STACK[0], {"mode": "zscore"})
    per_channel = {"mode": "percentile", "low": [0.0, 10.0], "high": [1.0, 20.0]}
    two = np.stack([np.ones((4, 4)), np.full((4, 4), 15.0)])
    assert np.allclose(apply_normalization(two, per_channel), [[[1.0]], [[0.5]]])
    with pytest.raises(ValueError, match="2 per-channel normalisation values do not match"):
        apply_normalization(np.ones((3, 4, 4)), per_channel)
