"""The checks of napari_unet.checks, each on its own: what passes, what is refused and with which sentence."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.checks import (
    InputError,
    check_image,
    check_input_file,
    check_label_dtype,
    check_labels,
    check_output,
    check_patch,
    check_positive,
    check_same_shape,
    check_slices,
    check_tile,
)


def test_image_checks():
    check_image(np.zeros((10, 10), np.uint8))  # a 10 x 10 image is fine
    nan = np.ones((3, 16, 16), np.float32)
    nan[1, 2, 2] = np.nan
    check_image(nan, for_training=False)
    for data, words in [
        (np.zeros((2, 2, 16, 16)), "4-D"),
        (np.zeros((16, 16, 3)), "RGB"),
        (np.full((2, 8, 8), np.nan, np.float32), "no finite"),
        (np.zeros((0, 8)), "empty"),
        (np.zeros((8, 8), complex), "grayscale"),
    ]:
        with pytest.raises(InputError, match=words):
            check_image(data, "x")
    with pytest.raises(InputError, match="constant"):
        check_image(np.full((4, 8, 8), 3, np.uint8), for_training=True)
    check_image(np.full((4, 8, 8), 3, np.uint8))  # predicting a constant image is allowed
    check_image(np.zeros((2, 3, 16, 16)), allow_channels=True)


def test_label_checks():
    lab = np.zeros((2, 8, 8), np.uint16)
    lab[0, :4], lab[0, 4:] = 1, 1000
    assert check_labels(lab) == [1, 1000]
    assert check_labels(lab.astype(np.float32)) == [1, 1000]  # whole numbers stored as floats
    assert check_labels(np.where(lab == 1, 1, 0), fine_tune=True) == [1]
    assert check_labels(np.where(lab == 1, 1, 0), dense=True) == [0, 1]
    for data, words in [
        (np.zeros((2, 8, 8), np.uint8), "all 0"),
        (np.where(lab == 1, 1, 0), "one class"),
        (lab * 0.5 + 0.25, "fractional"),
        (lab.astype(np.int32) - 5, "negative"),
        (lab.astype(np.uint32) * 100, "65535"),
        (np.arange(100, dtype=np.uint8).reshape(10, 10), "different values"),
        (np.zeros((2, 2, 8, 8), np.uint8), "4-D"),
    ]:
        with pytest.raises(InputError, match=words):
            check_labels(data)
    assert (
        check_label_dtype(np.arange(200000, dtype=np.uint32).reshape(400, 500)).max() == 199999
    )  # instance ids


def test_shape_and_numbers():
    check_same_shape(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    check_same_shape(np.zeros((2, 3, 8, 8)), np.zeros((2, 8, 8)))  # channels before Y
    with pytest.raises(InputError, match="same shape"):
        check_same_shape(np.zeros((3, 8, 8)), np.zeros((2, 8, 8)))
    check_patch(None, 44)
    check_patch(64, 44)
    with pytest.raises(InputError, match="at least 44"):
        check_patch(20, 44)
    with pytest.raises(InputError, match="at least 16"):
        check_patch(5, 2)
    check_tile("auto", 44)
    with pytest.raises(InputError, match="--tile 30"):
        check_tile(30, 44)
    check_slices((1, 3), 3)
    with pytest.raises(InputError, match="past"):
        check_slices((1, 4), 3)
    with pytest.raises(InputError, match="START < STOP"):
        check_slices((3, 3), 5)
    for bad in (0, -1, 1.5, float("nan"), True, "3"):
        with pytest.raises(InputError):
            check_positive(bad, "--batch")


def test_file_checks(tmp_path):
    image = tmp_path / "img.tif"
    image.write_bytes(b"II*\x00" + bytes(100))
    assert check_input_file(image) == image
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        check_input_file(tmp_path / "empty.tif")
    with pytest.raises(InputError, match="no such file"):
        check_input_file(tmp_path / "gone.tif")
    with pytest.raises(InputError, match="folder"):
        check_input_file(tmp_path)
    out = tmp_path / "out.tif"
    assert check_output(out, overwrite=False, inputs=[image], suffixes=(".tif",)) == out
    with pytest.raises(InputError, match="is the input file"):
        check_output(image, overwrite=True, inputs=[image])
    with pytest.raises(InputError, match="is the input file"):  # another spelling of the same file
        check_output(tmp_path / "." / "img.tif", overwrite=True, inputs=[image])
    with pytest.raises(InputError, match="already exists"):
        check_output(image, overwrite=False)
    with pytest.raises(InputError, match="does not exist"):
        check_output(tmp_path / "no" / "out.tif", overwrite=False)
    with pytest.raises(InputError, match=".zip"):
        check_output(tmp_path / "x.tif", overwrite=False, suffixes=(".zip",))
    with pytest.raises(InputError, match="folder"):
        check_output(tmp_path, overwrite=True)
