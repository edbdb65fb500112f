"""napari_unet.io._voxel: voxel sizes from ImageJ, OME, our JSON and resolution tags."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


def test_imagej_separate_y_and_z_units_and_numbers_are_kept(tmp_path):
    path = tmp_path / "aniso.tif"
    tifffile.imwrite(
        path,
        STACK,
        imagej=True,
        resolution=(1 / 3.5, 1 / 4.0),
        metadata={"axes": "ZYX", "spacing": 0.05, "unit": "nm", "zunit": "micron"},
    )
    (image,) = io.read_tiff(path)
    assert image.scale == pytest.approx((0.05, 4.0, 3.5))
    assert image.units == ("µm", "nm", "nm")
    assert image.metadata["voxel_size_source"] == "imagej"


def test_write_read_keeps_voxel_size_in_every_format(tmp_path):
    # uint8 -> ImageJ, int32 -> OME, int64 -> tifffile JSON: all three must keep scale and units
    for dtype, kind in (("uint8", "imagej"), ("int32", "ome"), ("int64", "napari-unet")):
        path = io.write_tiff(
            tmp_path / f"{dtype}.tif", STACK.astype(dtype) - 1, scale=(50, 4, 4), units=("nm", "µm", "µm")
        )
        (image,) = io.read_tiff(path)
        assert image.data.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(image.data, STACK.astype(dtype) - 1)
        assert image.scale == pytest.approx((50, 4, 4)), dtype
        assert image.units == ("nm", "µm", "µm"), dtype
        assert image.metadata["voxel_size_source"] == kind


def test_resolution_tags_in_centimetres_become_a_voxel_size_in_nm(tmp_path):
    path = tmp_path / "em.tif"
    # 4 nm pixels: 2.5e6 pixels per centimetre
    tifffile.imwrite(path, STACK, photometric="minisblack", resolution=(2.5e6, 2.5e6), resolutionunit=3)
    (image,) = io.read_tiff(path)
    assert image.metadata["voxel_size_source"] == "resolution-tags"
    assert image.scale == pytest.approx((1.0, 4.0, 4.0))
    assert image.units == ("", "nm", "nm")


def test_print_resolution_is_not_a_voxel_size(tmp_path):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, STACK, photometric="minisblack", resolution=(300, 300), resolutionunit=2)
    (image,) = io.read_tiff(path)
    assert image.metadata["voxel_size_source"] == "none"
    assert image.scale == (1.0, 1.0, 1.0) and image.units == ("", "", "")


def test_ome_physical_sizes_time_step_and_channel_names(tmp_path):
    path = tmp_path / "cells.ome.tif"
    data = RNG.integers(0, 9, (2, 3, 16, 16), dtype=np.uint16)
    metadata = {
        "axes": "CZYX",
        "PhysicalSizeX": 4,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 5,
        "PhysicalSizeYUnit": "nm",
        "PhysicalSizeZ": 0.05,  # no unit: the OME default, micrometres
        "Channel": {"Name": ["membrane", "nuclei"]},
    }
    tifffile.imwrite(path, data, ome=True, metadata=metadata)
    (image,) = io.read_tiff(path)
    assert image.metadata["voxel_size_source"] == "ome"
    assert image.axes == "CZYX"
    assert image.scale == pytest.approx((1.0, 0.05, 5.0, 4.0))
    assert image.units == ("", "µm", "nm", "nm")
    assert image.metadata["channel_names"] == ["membrane", "nuclei"]
