"""The napari Labels writer: compressed TIFF that re-opens through our reader as Labels with the same scale."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io
from napari_unet._reader import get_reader
from napari_unet._writer import write_labels

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 4, (3, 64, 64)).astype(np.int64)  # napari's default labels dtype


def reopen(path):
    ((data, kwargs, kind),) = get_reader(path)(path)
    return data, kwargs, kind


def test_round_trip_keeps_values_scale_and_units(tmp_path):
    import pint

    nm = pint.get_application_registry().nanometer
    meta = {"name": "cells", "scale": (50.0, 4.0, 4.0), "units": (nm, nm, nm), "metadata": {}}
    (path,) = write_labels(str(tmp_path / "result.tif"), LABELS, meta)
    assert path == str(tmp_path / "result.tif")
    data, kwargs, kind = reopen(path)
    assert kind == "labels"  # the name has no labels suffix: the file's own mark decides
    np.testing.assert_array_equal(data, LABELS)
    assert data.dtype == np.uint8  # narrowed losslessly: ImageJ format, small file
    assert kwargs["scale"] == (50.0, 4.0, 4.0) and kwargs["units"] == ("nm", "nm", "nm")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.pages.first.compression.name == "ADOBE_DEFLATE"


def test_units_stored_by_our_reader_survive_when_the_layer_has_none(tmp_path):
    meta = {"scale": (2.0, 0.5, 0.5), "metadata": {"units": ["µm", "µm", "µm"], "axes": "ZYX"}}
    (path,) = write_labels(str(tmp_path / "a.tif"), LABELS, meta)
    _, kwargs, _ = reopen(path)
    assert kwargs["units"] == ("µm", "µm", "µm") and kwargs["scale"] == (2.0, 0.5, 0.5)


@pytest.mark.parametrize(
    ("offset", "stored", "fmt"),
    [
        (0, np.uint8, "imagej"),
        (60000, np.uint16, "imagej"),
        (10**6, np.uint32, "ome"),
        (2**40, np.uint64, "shaped"),
    ],
)
def test_big_label_values_choose_a_format_that_holds_them(tmp_path, offset, stored, fmt):
    data = LABELS + offset
    (path,) = write_labels(str(tmp_path / "big.tif"), data, {"scale": (3.0, 2.0, 2.0)})
    got, kwargs, kind = reopen(path)
    assert kind == "labels" and got.dtype == stored
    np.testing.assert_array_equal(got, data)
    assert kwargs["scale"] == (3.0, 2.0, 2.0)
    assert kwargs["metadata"]["kind"] == fmt


def test_negative_labels_stay_signed(tmp_path):
    data = LABELS - 2
    (path,) = write_labels(str(tmp_path / "neg.tif"), data, {"scale": (1.0, 1.0, 1.0)})
    got, _, kind = reopen(path)
    assert kind == "labels" and got.dtype == np.int8
    np.testing.assert_array_equal(got, data)


def test_multiscale_writes_the_full_resolution_level(tmp_path):
    (path,) = write_labels(str(tmp_path / "ms.tif"), [LABELS[0], LABELS[0, ::2, ::2]], {"scale": (4.0, 4.0)})
    got, _, _ = reopen(path)
    np.testing.assert_array_equal(got, LABELS[0])


def test_name_without_extension_gets_tif(tmp_path):
    (path,) = write_labels(str(tmp_path / "seg"), LABELS, {"scale": (1.0, 1.0, 1.0)})
    assert path.endswith("seg.tif") and io.read_tiff(path)[0].is_labels


def test_existing_file_is_replaced(tmp_path):
    # napari's save dialog asks before; the npe2 writer then replaces the file
    target = tmp_path / "seg_labels.tif"
    target.write_bytes(b"old")
    (path,) = write_labels(str(target), LABELS, {"scale": (1.0, 1.0, 1.0)})
    np.testing.assert_array_equal(reopen(path)[0], LABELS)


def test_float_data_is_refused_with_the_file_name(tmp_path):
    with pytest.raises(ValueError, match=r"x\.tif: labels must hold integers"):
        write_labels(str(tmp_path / "x.tif"), LABELS.astype(np.float32), {"scale": (1.0, 1.0, 1.0)})


def test_dask_labels_are_written(tmp_path):
    import dask.array as da

    data = da.from_array(LABELS, chunks=(1, 64, 64))
    (path,) = write_labels(str(tmp_path / "lazy.tif"), data, {"scale": (1.0, 1.0, 1.0)})
    np.testing.assert_array_equal(reopen(path)[0], LABELS)


def test_npe2_writes_through_the_manifest(tmp_path):
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    target = str(tmp_path / "via_npe2.tif")
    written = npe2.write(
        target, [(LABELS, {"name": "seg", "scale": (50.0, 4.0, 4.0)}, "labels")], plugin_name="napari-unet"
    )
    assert written == [target]
    data, kwargs, kind = reopen(target)
    assert kind == "labels" and kwargs["scale"] == (50.0, 4.0, 4.0)
    np.testing.assert_array_equal(data, LABELS)
