"""napari_unet.io._open: missing, foreign, empty and truncated files are refused naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import io

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 255, (3, 64, 64), dtype=np.uint8)


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
