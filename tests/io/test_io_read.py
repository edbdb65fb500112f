"""napari_unet.io._read: read_array's axis order, and damaged pixel data."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


def test_read_array_zyx_with_scale_and_units(tmp_path):
    path = io.write_tiff(tmp_path / "s.tif", STACK, scale=(50, 4, 4), units="nm")
    data, scale = io.read_array(path)
    np.testing.assert_array_equal(data, STACK)
    assert scale == (50.0, 4.0, 4.0)
    assert io.read_array(path, with_units=True)[2] == ("nm", "nm", "nm")


def test_read_array_takes_a_page_sequence_as_z(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        for page in STACK:
            tw.write(page, photometric="minisblack", metadata=None, contiguous=False)
    data, scale = io.read_array(path)
    assert data.shape == (3, 64, 64) and scale == (1.0, 1.0, 1.0)


def test_read_array_puts_rgb_samples_on_the_channel_axis(tmp_path):
    rgb = RNG.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", metadata={"axes": "ZYXS"})
    data, scale = io.read_array(path)
    assert data.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(data[1, 2], rgb[1, ..., 2])
    assert len(scale) == 4


def test_read_array_refuses_time_and_z_together(tmp_path):
    path = tmp_path / "tz.tif"
    tifffile.imwrite(
        path, RNG.integers(0, 9, (2, 3, 8, 8), dtype=np.uint8), imagej=True, metadata={"axes": "TZYX"}
    )
    with pytest.raises(io.TiffReadError, match=r"tz\.tif: axes 'TZYX' include T"):
        io.read_array(path)


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_damaged_compressed_data_raises_naming_file_and_codec(tmp_path, lazy):
    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, STACK, compression="zlib", photometric="minisblack", tile=(32, 32))
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[1]  # a tile of the first plane: always sampled for contrast
    content = bytearray(path.read_bytes())
    content[offset : offset + 64] = bytes(64)
    path.write_bytes(bytes(content))
    with pytest.raises(io.TiffReadError, match=r"damaged\.tif: cannot decode .*ADOBE_DEFLATE"):
        io.read_tiff(path, lazy=lazy)
