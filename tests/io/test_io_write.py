"""napari_unet.io._write: formats, calibration, labels dtypes, argument checks, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


def test_imagej_file_shows_the_calibration_fiji_reads(tmp_path):
    path = io.write_tiff(tmp_path / "cal.tif", STACK, scale=(50, 4, 4), units="µm")
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        assert meta["spacing"] == 50 and meta["unit"] == "micron"  # ImageJ's own spelling, plain ASCII
        assert tif.pages.first.get_resolution() == pytest.approx((0.25, 0.25))
        assert tif.pages.first.compression.name == "ADOBE_DEFLATE"


def test_float_probabilities_write_as_imagej_channels(tmp_path):
    probs = RNG.random((3, 2, 16, 16), dtype=np.float32)
    path = io.write_tiff(tmp_path / "p.tif", probs, scale=(50, 1, 4, 4), units="nm", axes="ZCYX")
    (image,) = io.read_tiff(path)
    assert image.axes == "ZCYX" and image.metadata["is_imagej"]
    np.testing.assert_array_equal(image.data, probs)
    assert image.scale == pytest.approx((50, 1, 4, 4))


def test_write_tiff_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        io.write_tiff(tmp_path / "a.tif", np.zeros(5))
    with pytest.raises(ValueError, match="axes 'ZYX'"):
        io.write_tiff(tmp_path / "a.tif", STACK[0], axes="ZYX")
    with pytest.raises(ValueError, match="scale"):
        io.write_tiff(tmp_path / "a.tif", STACK, scale=(1, 1))
    with pytest.raises(ValueError, match="positive"):
        io.write_tiff(tmp_path / "a.tif", STACK, scale=(0, 1, 1))
    with pytest.raises(ValueError, match="integers"):
        io.write_tiff(tmp_path / "a.tif", STACK.astype(np.float32), labels=True)
    with pytest.raises(ValueError, match=r"a\.png.*TIFF"):
        io.write_tiff(tmp_path / "a.png", STACK)
    assert not list(tmp_path.iterdir())


def test_write_tiff_does_not_overwrite_unless_asked(tmp_path):
    path = tmp_path / "keep.tif"
    io.write_tiff(path, STACK)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="keep.tif"):
        io.write_tiff(path, STACK[:1])
    assert path.read_bytes() == before
    io.write_tiff(path, STACK[:1], overwrite=True)
    assert tifffile.imread(path).shape == (64, 64)


def test_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    path = tmp_path / "old.tif"
    io.write_tiff(path, STACK)
    before = path.read_bytes()

    class Exploding:
        shape, dtype, ndim = (3, 64, 64), np.dtype(np.uint8), 3

        def __getitem__(self, index):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        io.write_tiff(path, Exploding(), overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["old.tif"]


def test_write_tiff_streams_dask_input(tmp_path):
    import dask.array as da

    data = da.from_array(STACK, chunks=(2, 64, 64))
    path = io.write_tiff(tmp_path / "d.tif", data, scale=(2, 1, 1), compression="zstd")
    np.testing.assert_array_equal(tifffile.imread(path), STACK)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 2, "uint8"), (0, 300, "uint16"), (0, 70_000, "uint32"), (-1, 100, "int8"), (-300, 5, "int16")],
)
def test_labels_are_narrowed_to_the_smallest_lossless_dtype(tmp_path, low, high, expected):
    labels = np.zeros((2, 8, 8), np.int64)
    labels[0, 0, 0], labels[1, 7, 7] = low, high
    path = io.write_tiff(tmp_path / "cells.tif", labels, labels=True)
    (image,) = io.read_tiff(path)
    assert image.data.dtype == np.dtype(expected) and image.is_labels
    np.testing.assert_array_equal(image.data, labels)


def test_dask_labels_are_narrowed_too(tmp_path):
    import dask.array as da

    labels = da.from_array(np.arange(2 * 8 * 8, dtype=np.int64).reshape(2, 8, 8) * 4, chunks=(1, 8, 8))
    path = io.write_tiff(tmp_path / "cells.tif", labels, labels=True)
    assert tifffile.imread(path).dtype == np.uint16
