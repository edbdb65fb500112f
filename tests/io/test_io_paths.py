"""napari_unet.io._paths: TIFF and labels file names, our Software mark, the lazy threshold."""

from __future__ import annotations

import pytest

from napari_unet import io
from napari_unet.io._paths import parse_bytes, strip_tiff_suffix, written_as_labels


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.tif", True),
        ("a.TIF", True),
        ("a.tiff", True),
        ("a.ome.tiff", True),
        ("big.btf", True),
        ("big.tf8", True),
        ("a.png", False),
        ("a.tif.zip", False),
        ("tif", False),
    ],
)
def test_is_tiff_path(name, expected):
    assert io.is_tiff_path(name) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cells_labels.tif", True),
        ("cells_Label.TIF", True),
        ("cells_MASK.ome.tif", True),
        ("cells_masks.tiff", True),
        ("/data/run1/cells_seg.tif", True),
        ("cells_GT.tif", True),
        ("cells.tif", False),
        ("labels.tif", False),  # the stem must end in an underscore suffix
        ("cells_labels_v2.tif", False),
        ("cells_segmentation.tif", False),
    ],
)
def test_is_labels_name(name, expected):
    assert io.is_labels_name(name) is expected


def test_lazy_threshold_reads_environment(monkeypatch):
    monkeypatch.setenv(io.LAZY_RAM_FRACTION_ENV, "1")
    monkeypatch.setenv(io.LAZY_BYTES_ENV, "512M")
    assert io.lazy_threshold() == 512 * 1024**2
    monkeypatch.setenv(io.LAZY_BYTES_ENV, "2GiB")
    assert io.lazy_threshold() == min(2 * 1024**3, io.lazy_threshold(lazy_bytes=10**15))
    monkeypatch.setenv(io.LAZY_BYTES_ENV, "1000")
    assert io.lazy_threshold() == 1000
    # the RAM fraction caps the byte limit
    monkeypatch.delenv(io.LAZY_BYTES_ENV)
    monkeypatch.setenv(io.LAZY_RAM_FRACTION_ENV, "0.000001")
    assert 0 < io.lazy_threshold() < io.DEFAULT_LAZY_BYTES


@pytest.mark.parametrize(
    ("variable", "value"),
    [(io.LAZY_BYTES_ENV, "lots"), (io.LAZY_RAM_FRACTION_ENV, "2"), (io.LAZY_RAM_FRACTION_ENV, "x")],
)
def test_lazy_threshold_rejects_bad_settings_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match="NAPARI_UNET_LAZY|fraction"):
        io.lazy_threshold()


def test_strip_tiff_suffix_drops_the_ending_and_ome():
    assert strip_tiff_suffix("cells.OME.TIFF") == "cells"
    assert strip_tiff_suffix("cells.tif") == "cells"
    assert strip_tiff_suffix("cells.png") == "cells.png"


def test_parse_bytes_binary_prefixes_and_message():
    assert parse_bytes("512M", "X") == 512 * 1024**2
    assert parse_bytes(" 2GiB ", "X") == 2 * 1024**3
    assert parse_bytes("1.5k", "X") == 1536
    assert parse_bytes("1000", "X") == 1000
    with pytest.raises(ValueError, match=r"X='lots' is not a size in bytes"):
        parse_bytes("lots", "X")


def test_written_as_labels_reads_our_software_mark():
    assert written_as_labels("napari-unet 0.1.0 labels")
    assert not written_as_labels("napari-unet 0.1.0")
    assert not written_as_labels("ImageJ labels")
