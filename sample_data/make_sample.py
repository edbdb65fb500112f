"""Rebuild the shipped sample crop from the ISBI 2012 training stack (provenance, not needed at runtime).

Usage::

    python sample_data/make_sample.py [--source /work/shared/data/isbi2012] [--out sample_data]

Reads ``isbi2012_train_images.tif`` and ``isbi2012_train_labels.tif`` (30 x 512 x 512, uint8; labels
255 = cell interior, 0 = membrane), keeps the first 10 slices (0-9, all inside the project's training
split 0-24), and writes

* ``isbi2012_crop.tif``: uint8 ZYX, ImageJ hyperstack, voxel 50 x 4 x 4 nm (Z, Y, X), zlib + predictor;
* ``isbi2012_crop_labels.tif``: uint8 ZYX with classes 1 = membrane, 2 = cell interior (0 is left free
  for "not annotated", the convention of napari-unet's sparse training), same voxel size, zlib.

The conversion is lossless and checked after writing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.io import read_tiff, write_tiff

N_SLICES = 10
VOXEL_NM = (50.0, 4.0, 4.0)  # Z, Y, X: Cardona et al. 2010, ssTEM of the Drosophila ventral nerve cord
MEMBRANE, CELL = 1, 2
DEFAULT_SOURCE = Path("/work/shared/data/isbi2012")


def convert_labels(source_labels: np.ndarray) -> np.ndarray:
    """Map the challenge's 0 (membrane) / 255 (cell interior) to 1 / 2; refuse any other value."""
    values = set(np.unique(source_labels).tolist())
    if not values <= {0, 255}:
        raise ValueError(f"expected only 0 and 255 in the ISBI labels, found {sorted(values)}")
    return np.where(source_labels == 255, CELL, MEMBRANE).astype(np.uint8)


def make_sample(source: Path, out: Path) -> list[Path]:
    """Write the two sample files into ``out`` and return their paths."""
    images = tifffile.imread(source / "isbi2012_train_images.tif")[:N_SLICES]
    labels = convert_labels(tifffile.imread(source / "isbi2012_train_labels.tif")[:N_SLICES])
    out.mkdir(parents=True, exist_ok=True)
    image_path = Path(
        write_tiff(
            out / "isbi2012_crop.tif",
            images,
            scale=VOXEL_NM,
            units="nm",
            axes="ZYX",
            overwrite=True,
            compression="zlib",
            level=9,
            predictor=True,
        )
    )
    labels_path = Path(
        write_tiff(
            out / "isbi2012_crop_labels.tif",
            labels,
            scale=VOXEL_NM,
            units="nm",
            axes="ZYX",
            labels=True,
            overwrite=True,
            compression="zlib",
            level=9,
        )
    )
    # the point of this script is provenance: prove the files hold exactly what they should
    for path, expected, is_labels in ((image_path, images, False), (labels_path, labels, True)):
        (image,) = read_tiff(path)
        if not np.array_equal(image.data, expected) or image.is_labels != is_labels:
            raise RuntimeError(f"{path}: round trip check failed")
        if not np.allclose(image.scale, VOXEL_NM) or image.units != ("nm", "nm", "nm"):
            raise RuntimeError(f"{path}: voxel size did not survive ({image.scale}, {image.units})")
    return [image_path, labels_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the ISBI 2012 TIFFs")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    for path in make_sample(args.source, args.out):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
