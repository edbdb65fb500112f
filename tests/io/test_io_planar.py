"""The reader corpus of issue 14: 3- and 4-page stacks that tifffile stored as planar RGB only because no
photometric tag was requested open as Z stacks (as napari's built-in reader opens them), as Labels when named
like labels; files that asked for RGB stay RGB."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet._reader import get_reader
from napari_unet.cli import main
from napari_unet.io import read_array, read_tiff

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*stored as RGB with separate component planes:DeprecationWarning"
)


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_default_written_stacks_open_as_z_stacks(tmp_path, n, dtype):
    data = (np.arange(n * 20 * 24).reshape(n, 20, 24) % 200).astype(dtype)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data)  # no photometric: tifffile writes planar RGB(A)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "SYX"  # what tifffile reports
    image = read_tiff(path)[0]
    assert not image.rgb and image.axes == "QYX" and image.data.shape == (n, 20, 24)
    np.testing.assert_array_equal(image.data, data)
    assert read_array(path)[0].shape == (n, 20, 24)
    (layer,) = get_reader(str(path))(str(path))
    assert layer[2] == "image" and layer[0].shape == (n, 20, 24) and not layer[1].get("rgb")


def test_labels_named_stack_opens_as_labels(tmp_path):
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[1, 4:8, 4:8] = 2
    path = tmp_path / "cells_labels.tif"
    tifffile.imwrite(path, labels)
    image = read_tiff(path)[0]
    assert image.is_labels and image.data.shape == (3, 16, 16)
    (layer,) = get_reader(str(path))(str(path))
    assert layer[2] == "labels"


def test_requested_rgb_stays_rgb(tmp_path):
    chunky = tmp_path / "photo.tif"
    tifffile.imwrite(chunky, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    assert read_tiff(chunky)[0].rgb
    # planar RGB from another writer (no tifffile "shaped" description) keeps its colour samples
    other = tmp_path / "scanner.tif"
    tifffile.imwrite(
        other,
        np.zeros((3, 16, 16), np.uint8),
        photometric="rgb",
        planarconfig="separate",
        shaped=False,
        software="scanner 1.0",
    )
    assert read_tiff(other)[0].rgb


def test_cli_trains_on_a_three_slice_stack(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.ones((3, 32, 32), np.uint8)
    labels[:, :, 16:] = 2
    tifffile.imwrite(tmp_path / "s.tif", (labels * 90 + rng.normal(0, 5, labels.shape)).astype(np.uint8))
    tifffile.imwrite(tmp_path / "s_labels.tif", labels)
    argv = ["train", str(tmp_path / "s.tif"), str(tmp_path / "s_labels.tif"), "-o", str(tmp_path / "m.pt")]
    tiny = ["--iterations", "1", "--depth", "2", "--features", "4", "--patch", "16", "--from-scratch"]
    assert main(argv + tiny) == 0, capsys.readouterr().err
