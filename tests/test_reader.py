"""The napari reader: every TIFF flavour a microscopist meets becomes the right napari layer, with its scale.

Files are written into ``tmp_path`` with tifffile (each case the way the corresponding software writes it) and
read back through ``get_reader`` exactly as napari calls it; one test goes through npe2 itself.
"""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_unet import io
from napari_unet._reader import get_reader, read_tiff_layers

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)
RGB = RNG.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)


def read_layers(path):
    reader = get_reader(str(path))
    assert reader is not None, f"{path} not accepted"
    return reader(str(path))


# ---------------------------------------------------------------------------------------------------- writers
def _generic_pages(path):
    # one IFD per page, no ImageJ/OME/shaped description: what most acquisition software writes
    with tifffile.TiffWriter(path) as tw:
        for page in STACK:
            tw.write(page, photometric="minisblack", metadata=None, contiguous=False)
    return STACK


def _imagej_hyperstack(path):
    data = RNG.integers(0, 4000, (2, 3, 2, 16, 16), dtype=np.uint16)
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"axes": "TZCYX", "spacing": 2.0, "unit": "micron", "finterval": 5.0},
    )
    return data


def _imagej_singletons(path):
    data = STACK[None, :, None]  # T=1, C=1
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX", "spacing": 50, "unit": "nm"})
    return STACK


def _ome(path):
    data = RNG.integers(0, 4000, (3, 2, 16, 16), dtype=np.uint16)
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeX": 4.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 4.0,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 50.0,
            "PhysicalSizeZUnit": "nm",
            "Channel": {"Name": ["membrane", "nuclei"]},
        },
    )
    return data


def _ome_default_unit(path):
    tifffile.imwrite(
        path, STACK, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1}
    )
    return STACK


def _bigtiff(path):
    tifffile.imwrite(path, STACK, bigtiff=True, photometric="minisblack", metadata={"axes": "ZYX"})
    return STACK


def _tiled(path):
    tifffile.imwrite(path, STACK, tile=(32, 32), photometric="minisblack", compression="zlib")
    return STACK


def _big_endian(path):
    data = STACK.astype(">u2") * 100
    tifffile.imwrite(path, data, byteorder=">", photometric="minisblack")
    return data


def _rgb_page(path):
    tifffile.imwrite(path, RGB[0], photometric="rgb")
    return RGB[0]


def _rgb_planar_stack(path):
    tifffile.imwrite(path, np.moveaxis(RGB, -1, 1), photometric="rgb", planarconfig="separate")
    return RGB


def _rgba(path):
    data = RNG.integers(0, 255, (32, 32, 4), dtype=np.uint8)
    tifffile.imwrite(path, data, photometric="rgb", extrasamples=["unassalpha"])
    return data


def _resolution_cm(path):
    tifffile.imwrite(path, STACK[0], resolution=(25000, 25000), resolutionunit="CENTIMETER")
    return STACK[0]


def _resolution_72dpi(path):
    tifffile.imwrite(path, STACK[0], resolution=(72, 72), resolutionunit="INCH")
    return STACK[0]


# id: (writer, layer type, data shape after squeezing/splitting, scale per layer, units, extra kwargs expected)
CASES = {
    "2d_page": (lambda p: tifffile.imwrite(p, STACK[0]) or STACK[0], "image", (64, 64), (1, 1), None, {}),
    "multipage_generic": (_generic_pages, "image", (3, 64, 64), (1, 1, 1), None, {}),
    "imagej_tzcyx": (
        _imagej_hyperstack,
        "image",
        (2, 3, 2, 16, 16),
        (5, 2, 0.5, 0.5),
        ("s", "µm", "µm", "µm"),
        {"channel_axis": 2},
    ),
    "imagej_singletons_squeezed": (
        _imagej_singletons,
        "image",
        (3, 64, 64),
        (50, 1, 1),
        ("nm", "nm", "nm"),
        {},
    ),
    "ome_zcyx_nm": (_ome, "image", (3, 2, 16, 16), (50, 4, 4), ("nm", "nm", "nm"), {"channel_axis": 1}),
    "ome_default_micrometre": (
        _ome_default_unit,
        "image",
        (3, 64, 64),
        (1, 0.1, 0.1),
        ("pixel", "µm", "µm"),
        {},
    ),
    "bigtiff": (_bigtiff, "image", (3, 64, 64), (1, 1, 1), None, {}),
    "tiled": (_tiled, "image", (3, 64, 64), (1, 1, 1), None, {}),
    "big_endian": (_big_endian, "image", (3, 64, 64), (1, 1, 1), None, {}),
    "rgb_page": (_rgb_page, "image", (32, 32, 3), (1, 1), None, {"rgb": True}),
    "rgb_planar_stack": (_rgb_planar_stack, "image", (3, 32, 32, 3), (1, 1, 1), None, {"rgb": True}),
    "rgba": (_rgba, "image", (32, 32, 4), (1, 1), None, {"rgb": True}),
    "resolution_centimeter": (_resolution_cm, "image", (64, 64), (0.4, 0.4), ("µm", "µm"), {}),
    "resolution_72dpi_ignored": (_resolution_72dpi, "image", (64, 64), (1, 1), None, {}),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_reader_matrix(tmp_path, case):
    write, layer_type, shape, scale, units, extra = CASES[case]
    path = tmp_path / f"{case}.ome.tif" if case.startswith("ome") else tmp_path / f"{case}.tif"
    expected = write(path)
    (layer,) = read_layers(path)
    data, kwargs, kind = layer
    assert kind == layer_type
    assert data.shape == shape
    np.testing.assert_array_equal(np.asarray(data), expected.reshape(shape))
    channel_axis = extra.get("channel_axis")
    got_scale = kwargs["scale"][0] if channel_axis is not None else kwargs["scale"]
    np.testing.assert_allclose(got_scale, scale)
    got_units = kwargs.get("units")
    if channel_axis is not None and got_units is not None:
        got_units = got_units[0]
    assert (tuple(got_units) if got_units else None) == units
    for key, value in extra.items():
        assert kwargs[key] == value, key
    assert kwargs["name"] if channel_axis is None else len(kwargs["name"]) == shape[channel_axis]


def test_ome_channel_names_become_layer_names(tmp_path):
    path = tmp_path / "cells.ome.tif"
    _ome(path)
    ((_, kwargs, _),) = read_layers(path)
    assert kwargs["name"] == ["cells [membrane]", "cells [nuclei]"]
    assert kwargs["axis_labels"][0] == ("z", "y", "x")


@pytest.mark.parametrize(
    "compression", ["lzw", "zlib", "zstd", "packbits", "lzma", "deflate", "png", "lerc", "jpeg2000", "jpegxl"]
)
def test_lossless_compressions_read_exactly(tmp_path, compression):
    path = tmp_path / f"{compression}.tif"
    kwargs = {"reversible": True} if compression == "jpeg2000" else None
    tifffile.imwrite(path, STACK, photometric="minisblack", compression=compression, compressionargs=kwargs)
    ((data, meta, kind),) = read_layers(path)
    assert kind == "image"
    np.testing.assert_array_equal(data, STACK)
    assert meta["metadata"]["axes"] == "QYX"


@pytest.mark.parametrize("compression", ["jpeg", "webp", "jpegxr"])
def test_lossy_rgb_compressions_read_close(tmp_path, compression):
    path = tmp_path / f"{compression}.tif"
    # smooth ramps: what lossy codecs are made for, so the error bound below is tight
    yy, xx = np.mgrid[:32, :32]
    smooth = np.stack([yy * 4, xx * 4, (yy + xx) * 2], axis=-1).astype(np.uint8)[None].repeat(3, axis=0)
    tifffile.imwrite(
        path, smooth, photometric="rgb", compression=compression, compressionargs={"level": 95}, tile=(16, 16)
    )
    ((data, meta, kind),) = read_layers(path)
    assert kind == "image" and meta["rgb"] is True and data.shape == smooth.shape
    assert np.abs(data.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int16", "float32", "float64"])
def test_dtypes(tmp_path, dtype):
    path = tmp_path / "d.tif"
    data = (STACK.astype(dtype) - (100 if dtype == "int16" else 0)) * (0.5 if "float" in dtype else 1)
    tifffile.imwrite(path, data.astype(dtype), photometric="minisblack", compression="zlib")
    ((got, _, kind),) = read_layers(path)
    assert kind == "image" and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, data.astype(dtype))


def test_non_colour_samples_become_channels(tmp_path):
    # two detectors stored as two samples per pixel (minisblack, planar): not RGB, so two channel layers
    data = RNG.integers(0, 4000, (2, 32, 32), dtype=np.uint16)
    path = tmp_path / "two_detectors.tif"
    tifffile.imwrite(
        path, data, photometric="minisblack", planarconfig="separate", extrasamples=["unspecified"]
    )
    ((got, kwargs, kind),) = read_layers(path)
    assert kind == "image" and "rgb" not in kwargs
    assert got.shape[kwargs["channel_axis"]] == 2
    np.testing.assert_array_equal(np.moveaxis(got, kwargs["channel_axis"], 0), data)
    assert kwargs["scale"] == [(1.0, 1.0), (1.0, 1.0)]


def test_multi_series_give_one_layer_each(tmp_path):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(STACK, photometric="minisblack")
        tw.write(RGB[0], photometric="rgb")
    (gray, gk, gt), (rgb, rk, rt) = read_layers(path)
    assert gray.shape == (3, 64, 64) and rgb.shape == (32, 32, 3)
    assert gk["name"] == "two [series 0]" and rk["name"] == "two [series 1]"
    assert rk["rgb"] is True and "rgb" not in gk
    assert gt == rt == "image"


def test_pyramid_opens_as_multiscale(tmp_path):
    path = tmp_path / "pyramid.ome.tif"
    base = RNG.integers(0, 255, (128, 128), dtype=np.uint8)
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            base,
            subifds=2,
            tile=(32, 32),
            metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
        )
        tw.write(base[::2, ::2], subfiletype=1, tile=(32, 32))
        tw.write(base[::4, ::4], subfiletype=1, tile=(32, 32))
    ((data, kwargs, kind),) = read_layers(path)
    assert kwargs["multiscale"] is True and [d.shape for d in data] == [(128, 128), (64, 64), (32, 32)]
    np.testing.assert_array_equal(np.asarray(data[2]), base[::4, ::4])
    np.testing.assert_allclose(kwargs["scale"], (0.5, 0.5))
    assert kwargs["contrast_limits"][0] <= base.min() + 5 and kwargs["contrast_limits"][1] >= 200


@pytest.mark.parametrize("suffix", ["_labels", "_LABEL", "_mask", "_Masks", "_seg", "_gt"])
def test_labels_by_file_name(tmp_path, suffix):
    path = tmp_path / f"cells{suffix}.tif"
    tifffile.imwrite(path, STACK, photometric="minisblack")
    ((data, kwargs, kind),) = read_layers(path)
    assert kind == "labels" and data.dtype == np.uint8
    assert "contrast_limits" not in kwargs


def test_float_file_with_labels_name_stays_image(tmp_path):
    path = tmp_path / "probabilities_seg.tif"
    tifffile.imwrite(path, STACK.astype(np.float32), photometric="minisblack")
    ((_, _, kind),) = read_layers(path)
    assert kind == "image"


def test_file_written_as_labels_opens_as_labels_whatever_its_name(tmp_path):
    path = io.write_tiff(tmp_path / "prediction.tif", STACK % 3, labels=True, scale=(50, 4, 4), units="nm")
    ((data, kwargs, kind),) = read_layers(path)
    assert kind == "labels"
    np.testing.assert_array_equal(data, STACK % 3)
    assert kwargs["scale"] == (50, 4, 4) and kwargs["units"] == ("nm", "nm", "nm")
    # the same values written as an image stay an image
    path = io.write_tiff(tmp_path / "image.tif", STACK % 3, scale=(50, 4, 4), units="nm")
    ((_, _, kind),) = read_layers(path)
    assert kind == "image"


def test_skimage_shipped_multipage_tif():
    import skimage.data

    path = Path(skimage.data.__file__).parent / "multipage.tif"
    assert path.is_file(), "scikit-image ships multipage.tif with its package data"
    ((data, kwargs, kind),) = read_layers(path)
    assert kind == "image"
    np.testing.assert_array_equal(data, tifffile.imread(path))
    assert data.ndim == 3 and data.shape[0] == 2


# ---------------------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize(
    "path",
    ["image.png", "stack.zarr", "notes.txt", "image.tif.bak", ["a.tif", "b.png"], []],
    ids=["png", "zarr", "txt", "bak", "mixed_list", "empty_list"],
)
def test_get_reader_declines_foreign_paths(path):
    assert get_reader(path) is None


@pytest.mark.parametrize("name", ["a.tif", "a.TIFF", "a.ome.tif", "a.OME.TIFF", "a.btf", "a.tf8"])
def test_get_reader_accepts_tiff_names_without_touching_the_file(name):
    # napari asks for every file it opens: answering must not need the file to exist
    assert get_reader(name) is read_tiff_layers


def test_garbage_with_tiff_name_raises_naming_the_file(tmp_path):
    path = tmp_path / "garbage.tif"
    path.write_bytes(RNG.integers(0, 255, 2000, dtype=np.uint8).tobytes())
    reader = get_reader(str(path))
    with pytest.raises(io.TiffReadError, match=r"garbage\.tif: not a valid TIFF"):
        reader(str(path))


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_truncated_file_raises_naming_the_file(tmp_path, lazy):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, STACK, imagej=True, metadata={"axes": "ZYX"})
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(io.TiffReadError, match=r"cut\.tif: file is truncated") as err:
        io.read_tiff(cut, lazy=lazy)
    assert isinstance(err.value, ValueError)


def test_reading_never_modifies_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(io.LAZY_BYTES_ENV, "1000")
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    tifffile.imwrite(paths[0], STACK, imagej=True, metadata={"axes": "ZYX"})  # memory-mapped
    tifffile.imwrite(paths[1], STACK, compression="zstd", photometric="minisblack")  # dask
    before = [(hashlib.sha256(p.read_bytes()).hexdigest(), os.stat(p).st_mtime_ns) for p in paths]
    for path in paths:
        ((data, _, _),) = read_layers(path)
        assert np.asarray(data[1]).sum() == STACK[1].sum()
        if isinstance(data, np.memmap):
            assert data.mode == "r" and not data.flags.writeable
    del data
    gc.collect()
    after = [(hashlib.sha256(p.read_bytes()).hexdigest(), os.stat(p).st_mtime_ns) for p in paths]
    assert before == after


# ------------------------------------------------------------------------------------------------------- lazy
@pytest.mark.parametrize(
    ("kind", "mode"),
    [("imagej", "memmap"), ("zstd_tiled", "dask"), ("generic_pages", "dask"), ("rgb_planar", "memmap")],
)
def test_big_files_open_lazily(tmp_path, monkeypatch, kind, mode):
    monkeypatch.setenv(io.LAZY_BYTES_ENV, "4KiB")  # every test file counts as "big"
    path = tmp_path / f"{kind}.tif"
    if kind == "imagej":
        tifffile.imwrite(path, STACK, imagej=True, metadata={"axes": "ZYX", "spacing": 50, "unit": "nm"})
        expected = STACK
    elif kind == "zstd_tiled":
        tifffile.imwrite(path, STACK, tile=(32, 32), compression="zstd", photometric="minisblack")
        expected = STACK
    elif kind == "generic_pages":
        expected = _generic_pages(path)
    else:
        expected = _rgb_planar_stack(path)
    ((data, kwargs, _),) = read_layers(path)
    assert kwargs["metadata"]["lazy_mode"] == mode
    assert isinstance(data, np.memmap) if mode == "memmap" else hasattr(data, "dask")
    if mode == "dask":
        # one chunk per plane: napari asks for one slice at a time
        assert data.chunksize[:-2] == (1,) * (data.ndim - 2) or data.chunksize[-1] == 3
    lo, hi = kwargs["contrast_limits"]
    assert expected.min() <= lo <= hi <= expected.max() + 1
    np.testing.assert_array_equal(np.asarray(data[-1]), expected[-1])


def test_lazy_dask_data_stays_readable_after_the_reader_returns(tmp_path):
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, STACK, compression="zlib", photometric="minisblack")
    (image,) = io.read_tiff(path, lazy=True)
    data = image.data
    del image
    gc.collect()  # the TiffFile must live as long as the dask graph, not as long as read_tiff
    np.testing.assert_array_equal(data[2].compute(), STACK[2])


def test_threshold_decides_lazy(tmp_path, monkeypatch):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, STACK, photometric="minisblack")
    monkeypatch.setenv(io.LAZY_BYTES_ENV, str(STACK.nbytes))  # not bigger than the threshold: eager
    (image,) = io.read_tiff(path)
    assert not image.lazy and type(image.data) is np.ndarray and image.contrast_limits is None
    monkeypatch.setenv(io.LAZY_BYTES_ENV, str(STACK.nbytes - 1))
    (image,) = io.read_tiff(path)
    assert image.lazy and image.contrast_limits is not None


def test_units_given_to_napari_mean_what_they_say_in_pint():
    import pint

    from napari_unet._reader import _NAPARI_UNITS

    registry = pint.get_application_registry()
    for unit in _NAPARI_UNITS:
        parsed = registry.parse_expression(unit)
        assert parsed.magnitude == 1 and len(parsed.units._units) == 1, unit
    assert registry.parse_expression("µm").units == registry.micrometer
    assert registry.parse_expression("Å").units == registry.angstrom


def test_unrecognised_units_stay_in_metadata_only(tmp_path):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, STACK, imagej=True, resolution=(2, 2), metadata={"axes": "ZYX", "unit": "a.u."})
    ((_, kwargs, _),) = read_layers(path)
    assert "units" not in kwargs and kwargs["metadata"]["units"] == ["a.u."] * 3
    np.testing.assert_allclose(kwargs["scale"], (1, 0.5, 0.5))


# ---------------------------------------------------------------------------------------------- stack / npe2
def test_list_of_matching_files_becomes_one_stacked_layer(tmp_path):
    paths = []
    for z in range(3):
        paths.append(str(tmp_path / f"slice_{z}.tif"))
        tifffile.imwrite(paths[-1], STACK[z], imagej=True, resolution=(0.25, 0.25), metadata={"unit": "nm"})
    ((data, kwargs, kind),) = get_reader(paths)(paths)
    np.testing.assert_array_equal(data, STACK)
    assert kind == "image" and kwargs["scale"] == (1.0, 4.0, 4.0)
    assert kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["metadata"]["paths"] == paths


def test_list_of_mismatched_files_opens_each_with_a_warning(tmp_path):
    paths = [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
    tifffile.imwrite(paths[0], STACK[0])
    tifffile.imwrite(paths[1], STACK[0, :32])
    with pytest.warns(UserWarning, match="not as a stack"):
        layers = get_reader(paths)(paths)
    assert [d.shape for d, _, _ in layers] == [(64, 64), (32, 64)]


def test_npe2_reads_through_the_manifest(tmp_path):
    import npe2

    path = tmp_path / "em.tif"
    tifffile.imwrite(
        path,
        STACK,
        imagej=True,
        resolution=(0.25, 0.25),
        metadata={"axes": "ZYX", "spacing": 50, "unit": "nm"},
    )
    pm = npe2.PluginManager.instance()
    pm.discover()
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-unet")
    ((data, kwargs, kind),) = layers
    assert kind == "image" and kwargs["scale"] == (50.0, 4.0, 4.0)
    np.testing.assert_array_equal(data, STACK)
