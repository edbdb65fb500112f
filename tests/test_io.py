"""napari_unet.io: names, thresholds, units, voxel sizes, read_array axes, describe_tiff, contrast sampling, errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


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


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("micron", "µm"),
        ("\\u00B5m", "µm"),
        ("μm", "µm"),  # Greek mu
        ("um", "µm"),
        ("nanometer", "nm"),
        ("NM", "nm"),
        ("pixel", ""),
        (None, ""),
        ("\\u00C5", "Å"),
        ("sec", "s"),
        ("parsec", "parsec"),
    ],
)
def test_normalize_unit(unit, expected):
    assert io.normalize_unit(unit) == expected


def test_normalize_unit_accepts_pint_units():
    import pint

    assert io.normalize_unit(pint.get_application_registry().nanometer) == "nm"


# ------------------------------------------------------------------------------------------------ voxel sizes
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


# -------------------------------------------------------------------------------------------------- read_array
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


# ------------------------------------------------------------------------------------------------ describe
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


# ---------------------------------------------------------------------------------------------- contrast
class CountingArray:
    """Array-like that records which leading indices were read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, index):
        self.reads.append(index[0])
        return self.data[index]


def test_contrast_limits_sample_a_few_planes_only():
    data = np.zeros((40, 8, 8), np.uint16)
    data[0] = 7
    data[-1, 0, 0] = 900
    counting = CountingArray(data)
    low, high = io.estimate_contrast_limits(counting)
    assert (low, high) == (0.0, 900.0)  # first and last planes are always among the samples
    assert len(counting.reads) == 5 and 0 in counting.reads and 39 in counting.reads


def test_contrast_limits_on_constant_and_nan_data():
    assert io.estimate_contrast_limits(np.full((3, 4, 4), 5, np.uint8)) == (5.0, 6.0)
    assert io.estimate_contrast_limits(np.full((2, 4, 4), np.nan, np.float32)) == (0.0, 1.0)
    floats = np.array([[[np.nan, 1.0], [2.0, 3.0]]], np.float32)
    assert io.estimate_contrast_limits(floats) == (1.0, 3.0)


# --------------------------------------------------------------------------------------------------- errors
def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        io.read_tiff(tmp_path / "nope.tif")
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    with pytest.raises(io.TiffReadError, match="folder.tif: is a directory"):
        io.read_tiff(folder)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "only 0 bytes"),
        (b"GIF89a" + bytes(100), "not a valid TIFF"),
        (b"II*\x00\x08\x00\x00\x00", "no image data"),  # header pointing at an IFD that is not there
    ],
    ids=["empty", "gif_bytes", "header_only"],
)
def test_not_a_tiff(tmp_path, content, message):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(io.TiffReadError, match=rf"bad\.tif: .*{message}"):
        io.read_tiff(path)


@pytest.mark.parametrize("kind", ["imagej", "zlib", "tiled", "ome", "generic"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_files_of_every_layout_raise(tmp_path, kind, fraction):
    full = tmp_path / "full.tif"
    if kind == "generic":
        with tifffile.TiffWriter(full) as tw:
            for page in STACK:
                tw.write(page, photometric="minisblack", metadata=None, contiguous=False)
    else:
        kwargs = {
            "imagej": dict(imagej=True, metadata={"axes": "ZYX"}),
            "zlib": dict(photometric="minisblack", compression="zlib"),
            "tiled": dict(photometric="minisblack", tile=(32, 32), compression="zstd"),
            "ome": dict(ome=True, metadata={"axes": "ZYX"}),
        }[kind]
        tifffile.imwrite(full, STACK, **kwargs)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * fraction)])
    with pytest.raises(io.TiffReadError, match=r"cut\.tif: .*(truncated|corrupted)"):
        io.read_tiff(cut)


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
