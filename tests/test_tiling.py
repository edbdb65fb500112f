"""Overlap-tile geometry with trivial predictors: stitching must be exact for any grid, shape and batch."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.tiling import iter_tiled_predict, mirror_pad, predict_tiled, tile_grid

RNG = np.random.default_rng(0)
IMAGE = RNG.random((2, 64, 64)).astype(np.float32)


def identity(batch):
    return batch.copy()


def plus_one(batch):
    return batch + 1


def crop_by(shrink):
    def predict(batch):
        return batch[:, :, shrink:-shrink, shrink:-shrink].copy()

    return predict


def box_mean_valid(batch):
    """3x3 mean without padding: output is 1 px smaller per side (shrink 1)."""
    n, c, h, w = batch.shape
    out = np.zeros((n, c, h - 2, w - 2), np.float32)
    for dy in range(3):
        for dx in range(3):
            out += batch[:, :, dy : dy + h - 2, dx : dx + w - 2]
    return out / 9


SHAPES = [(64, 64), (33, 47), (5, 7), (1, 1), (1, 13), (64, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tile, halo, align", [(16, 4, 1), (24, 6, 4), (30, 5, 8), (100, 20, 8)])
def test_identity_and_plus_one_are_exact(shape, tile, halo, align):
    image = IMAGE[:, : shape[0], : shape[1]]
    out = predict_tiled(image, identity, tile=tile, halo=halo, align=align, batch_size=3, n_out=2)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.array_equal(out, image)
    out = predict_tiled(image, plus_one, tile=tile, halo=halo, align=align, batch_size=2, n_out=2)
    assert np.array_equal(out, image + 1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("shrink, halo", [(3, 3), (3, 7), (10, 10)])
def test_crop_by_shrink_predictor(shape, shrink, halo):
    image = IMAGE[:1, : shape[0], : shape[1]]
    out = predict_tiled(
        image, crop_by(shrink), tile=2 * halo + 12, halo=halo, shrink=shrink, align=4, batch_size=4, n_out=1
    )
    assert np.array_equal(out, image)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tile", [8, 11, 30, 200])
def test_box_mean_matches_whole_image(shape, tile):
    image = IMAGE[:, : shape[0], : shape[1]]
    # Reference: the same operator once over the whole image, mirror padded by its shrink (= halo).
    whole = box_mean_valid(mirror_pad(image, ((1, 1), (1, 1)))[None])[0]
    out = predict_tiled(image, box_mean_valid, tile=tile, halo=1, shrink=1, align=2, batch_size=5, n_out=2)
    assert np.array_equal(out, whole)


def test_two_dimensional_input_and_channel_change():
    image = IMAGE[0, :37, :29]

    def two_channels(batch):  # (N, 1, T, T) -> (N, 2, T, T): value and its negative
        return np.concatenate([batch, -batch], axis=1)

    out = predict_tiled(image, two_channels, tile=20, halo=4, align=2, n_out=2)
    assert np.array_equal(out[0], image) and np.array_equal(out[1], -image)


def test_rectangular_tiles():
    image = IMAGE[:, :40, :64]
    out = predict_tiled(image, plus_one, tile=(48, 24), halo=4, align=8, batch_size=2, n_out=2)
    assert np.array_equal(out, image + 1)


def test_grid_is_aligned_and_covers_the_image_once():
    for shape, tile, halo, align in [((64, 64), 30, 5, 8), ((33, 47), 24, 6, 4), ((5, 7), 100, 20, 8)]:
        grid = tile_grid(shape, tile=tile, halo=halo, align=align)
        assert all(o % align == 0 for o in grid.origins_y + grid.origins_x)
        assert all(s % align == 0 for s in grid.step)
        counts = np.zeros(shape, int)
        for oy, ox in grid.origins():
            counts[oy : oy + grid.step[0], ox : ox + grid.step[1]] += 1
            # every tile lies inside the padded image: the last tile is padded for, never clamped
            assert oy + grid.tile[0] <= grid.padded_shape[0] and ox + grid.tile[1] <= grid.padded_shape[1]
        assert (counts == 1).all()
        assert grid.pad[0][0] == grid.pad[1][0] == halo


def test_grid_numbers():
    grid = tile_grid((64, 64), tile=30, halo=5, align=8)  # centre 20 -> step 16 (aligned down)
    assert grid.step == (16, 16)
    assert grid.origins_y == (0, 16, 32, 48)
    # the last tile ends at 48 + 30 = 78 = 64 + 2 * 5 + 4: the end gets 4 px more than the halo
    assert grid.pad == ((5, 9), (5, 9))
    assert grid.n_tiles == 16


def test_longer_end_padding_keeps_the_same_context():
    # The end padding grows with the grid; what the kept centres read (the first `halo` mirrored pixels) must not.
    for n in (1, 2, 5, 13):
        line = RNG.random((1, 1, n))
        for halo in (0, 1, 4, 19):
            short = mirror_pad(line, ((0, 0), (halo, halo)))
            for extra in (1, 7, 40):
                longer = mirror_pad(line, ((0, 0), (halo, halo + extra)))
                assert np.array_equal(longer[..., : short.shape[-1]], short)


def test_tile_larger_than_image_is_one_tile():
    calls = []

    def record(batch):
        calls.append(batch.shape)
        return batch.copy()

    out = predict_tiled(IMAGE[:, :10, :12], record, tile=64, halo=8, align=4, n_out=2)
    assert calls == [(1, 2, 64, 64)]
    assert np.array_equal(out, IMAGE[:, :10, :12])


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 16, 100])
def test_batches_and_progress(batch_size):
    calls = []

    def record(batch):
        calls.append(batch.shape[0])
        return batch + 1

    gen = iter_tiled_predict(IMAGE, record, tile=24, halo=4, align=8, batch_size=batch_size, n_out=2)
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    total = 16  # step 16 on 64 px: 4 x 4 tiles
    assert progress[-1] == (total, total)
    assert len(progress) == -(-total // batch_size) == len(calls)
    assert all(b <= batch_size for b in calls) and sum(calls) == total
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert np.array_equal(out, IMAGE + 1)


def test_closing_the_generator_stops_prediction():
    calls = []

    def record(batch):
        calls.append(1)
        return batch.copy()

    gen = iter_tiled_predict(IMAGE, record, tile=24, halo=4, align=8, batch_size=2, n_out=2)
    next(gen)
    next(gen)
    gen.close()
    assert len(calls) == 2


def test_errors_name_the_numbers():
    with pytest.raises(
        ValueError, match=r"tile 20 is too small for halo 8.*20 - 2\*8 = 4 px.*align=8.*>= 24"
    ):
        predict_tiled(IMAGE, identity, tile=20, halo=8, align=8, n_out=2)
    with pytest.raises(
        ValueError, match=r"predict returned shape \(1, 2, 16, 16\).*expected \(1, 2, 24, 24\)"
    ):
        predict_tiled(IMAGE, crop_by(4), tile=24, halo=4, shrink=0, n_out=2)
    with pytest.raises(
        ValueError, match=r"predict returned shape \(1, 2, 24, 24\).*expected \(1, 3, 24, 24\)"
    ):
        predict_tiled(IMAGE, identity, tile=24, halo=4, n_out=3)
    with pytest.raises(ValueError, match="shrink <= halo"):
        predict_tiled(IMAGE, identity, tile=24, halo=2, shrink=4, n_out=2)
    with pytest.raises(ValueError, match="batch_size"):
        predict_tiled(IMAGE, identity, tile=24, halo=4, batch_size=0, n_out=2)
    with pytest.raises(ValueError, match="empty image"):
        predict_tiled(IMAGE[:, :0], identity, tile=24, halo=4, n_out=2)
    with pytest.raises(ValueError, match=r"\(C, Y, X\) or \(Y, X\).*\(1, 2, 8, 8\)"):
        predict_tiled(np.zeros((1, 2, 8, 8)), identity, tile=24, halo=4, n_out=2)
