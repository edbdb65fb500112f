"""napari_unet.io._describe: what `napari-unet info` prints."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


def test_describe_tiff_reports_what_the_reader_will_do(tmp_path):
    path = io.write_tiff(tmp_path / "pred.tif", STACK % 3, labels=True, scale=(50, 4, 4), units="nm")
    text = io.describe_tiff(path)
    for expected in ("ZYX", "(3, 64, 64)", "uint8", "Z 50 nm, Y 4 nm, X 4 nm", "ImageJ", "ADOBE_DEFLATE"):
        assert expected in text, expected
    assert "in memory, as labels" in text
    assert "lazily, memory-mapped" in io.describe_tiff(
        tifffile.imwrite(tmp_path / "raw.tif", STACK, imagej=True) or tmp_path / "raw.tif",
        lazy_threshold_bytes=10,
    )
    tiled = tmp_path / "tiled.tif"
    tifffile.imwrite(tiled, STACK, bigtiff=True, tile=(32, 32), compression="zstd", photometric="minisblack")
    text = io.describe_tiff(tiled, lazy_threshold_bytes=10)
    assert "BigTIFF" in text and "tiled 32x32" in text and "ZSTD" in text and "dask" in text
    assert "voxel size: unknown" in text


def test_describe_tiff_flags_a_truncated_file(tmp_path):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, STACK, imagej=True, metadata={"axes": "ZYX"})
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:-5000])
    assert "PROBLEM: file is truncated" in io.describe_tiff(cut)
