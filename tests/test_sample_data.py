"""The shipped ISBI 2012 sample: found through importlib.resources, small, calibrated, labels 1/2, reproducible."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from napari_unet import _sample_data
from napari_unet.io import read_tiff

SHARED = Path("/work/shared/data/isbi2012")
ROOT = Path(__file__).resolve().parents[1]


def test_files_ship_in_the_data_package_and_stay_small():
    root = importlib.resources.files("napari_unet.sample_data")
    names = {_sample_data.IMAGE_FILE, _sample_data.LABELS_FILE, "README.md"}
    assert names <= {entry.name for entry in root.iterdir()}
    total = sum(root.joinpath(n).stat().st_size for n in names - {"README.md"})
    assert total <= 3 * 1024**2


def test_em_membranes_layers():
    (image, image_kwargs, image_type), (labels, labels_kwargs, labels_type) = _sample_data.em_membranes()
    assert (image_type, labels_type) == ("image", "labels")
    assert (
        image_kwargs["name"] == "EM membranes (ISBI 2012)" and labels_kwargs["name"] == "EM membranes labels"
    )
    assert image.shape == labels.shape == (10, 512, 512)
    assert image.dtype == labels.dtype == np.uint8
    for kwargs in (image_kwargs, labels_kwargs):
        assert kwargs["scale"] == (50.0, 4.0, 4.0) and kwargs["units"] == ("nm", "nm", "nm")
        assert kwargs["axis_labels"] == ("z", "y", "x")
    # dense annotation: every pixel is membrane (1) or cell interior (2); membranes are the minority
    values, counts = np.unique(labels, return_counts=True)
    assert values.tolist() == [1, 2]
    assert 0.1 < counts[0] / labels.size < 0.35
    assert labels_kwargs["metadata"]["class_names"] == {1: "membrane", 2: "cell interior"}
    # membranes are dark in TEM: the labels line up with the image
    assert image[labels == 1].mean() < image[labels == 2].mean() - 30


def test_readme_carries_source_terms_and_citations():
    text = importlib.resources.files("napari_unet.sample_data").joinpath("README.md").read_text("utf-8")
    for needle in ("non-commercial", "e1000502", "10.3389/fnana.2015.00142", "zhixuhao/unet", "1 = membrane"):
        assert needle in text, needle


def _make_sample_module():
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "sample_data" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_label_conversion_maps_and_refuses_unexpected_values():
    make_sample = _make_sample_module()
    converted = make_sample.convert_labels(np.array([[0, 255], [255, 0]], np.uint8))
    np.testing.assert_array_equal(converted, [[1, 2], [2, 1]])
    with pytest.raises(ValueError, match=r"0 and 255.*\[0, 7\]"):
        make_sample.convert_labels(np.array([0, 7], np.uint8))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared ISBI 2012 data is not on this machine")
def test_make_sample_reproduces_the_shipped_files(tmp_path):
    make_sample = _make_sample_module()
    rebuilt = make_sample.make_sample(SHARED, tmp_path)
    for path in rebuilt:
        (new,) = read_tiff(path)
        (old,) = read_tiff(_sample_data.sample_path(path.name))
        np.testing.assert_array_equal(new.data, old.data)
        assert new.scale == old.scale and new.is_labels == old.is_labels
