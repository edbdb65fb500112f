"""Reader, writer and sample data inside a real (headless) napari viewer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


@pytest.fixture
def em_files(tmp_path):
    image = tmp_path / "em.tif"
    tifffile.imwrite(
        image,
        STACK,
        imagej=True,
        resolution=(0.25, 0.25),
        metadata={"axes": "ZYX", "spacing": 50, "unit": "nm"},
    )
    labels = tmp_path / "em_labels.tif"
    tifffile.imwrite(
        labels, (STACK > 128).astype(np.uint8) + 1, photometric="minisblack", metadata={"axes": "ZYX"}
    )
    return image, labels


def test_open_image_and_labels_with_our_plugin(make_napari_viewer, em_files):
    from napari.layers import Image, Labels

    viewer = make_napari_viewer()
    image_path, labels_path = em_files
    (image,) = viewer.open(image_path, plugin="napari-unet")
    (labels,) = viewer.open(labels_path, plugin="napari-unet")
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert image.data.shape == labels.data.shape == (3, 64, 64)
    np.testing.assert_allclose(image.scale, (50, 4, 4))
    assert [str(u) for u in image.units] == ["nanometer"] * 3
    assert viewer.dims.axis_labels == ("z", "y", "x")
    assert image.metadata["path"] == str(image_path)


def test_open_sample_data(make_napari_viewer):
    from napari.layers import Image, Labels

    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-unet", "em_membranes")
    image, labels = layers
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert image.name == "EM membranes (ISBI 2012)" and labels.name == "EM membranes labels"
    assert image.data.shape == labels.data.shape == (10, 512, 512)
    np.testing.assert_allclose(image.scale, (50, 4, 4))
    np.testing.assert_allclose(labels.scale, (50, 4, 4))
    # ten sections 50 nm apart: the world extent along Z is 450 nm
    assert viewer.layers.extent.world[1][0] - viewer.layers.extent.world[0][0] == pytest.approx(450)


def test_lazy_stack_browses_slice_by_slice(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv(io.LAZY_BYTES_ENV, "1KiB")
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, STACK, compression="zstd", tile=(32, 32), photometric="minisblack")
    viewer = make_napari_viewer()
    (layer,) = viewer.open(path, plugin="napari-unet")
    assert hasattr(layer.data, "dask") and layer.metadata["lazy_mode"] == "dask"
    lo, hi = layer.contrast_limits
    assert STACK.min() <= lo < hi <= STACK.max() + 1
    viewer.dims.set_point(0, 2)
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), STACK[2])


def test_channels_split_into_layers(make_napari_viewer, tmp_path):
    data = RNG.integers(0, 4000, (3, 2, 16, 16), dtype=np.uint16)
    path = tmp_path / "two_channels.ome.tif"
    tifffile.imwrite(
        path, data, ome=True, metadata={"axes": "ZCYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1}
    )
    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin="napari-unet")
    assert [layer.name for layer in layers] == ["two_channels [ch 0]", "two_channels [ch 1]"]
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(layer.data, data[:, c])
        np.testing.assert_allclose(layer.scale, (1, 0.1, 0.1))


def test_save_labels_layer_with_our_writer_and_reopen(make_napari_viewer, em_files, tmp_path):
    viewer = make_napari_viewer()
    (labels,) = viewer.open(em_files[1], plugin="napari-unet")
    labels.scale = (50, 4, 4)
    target = tmp_path / "edited.tif"
    written = labels.save(str(target), plugin="napari-unet")
    assert written == [str(target)]
    (again,) = viewer.open(target, plugin="napari-unet")
    assert type(again).__name__ == "Labels"
    np.testing.assert_array_equal(again.data, labels.data)
    np.testing.assert_allclose(again.scale, (50, 4, 4))
