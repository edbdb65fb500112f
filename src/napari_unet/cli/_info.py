"""``napari-unet info``: describe TIFF files as the reader sees them."""

from __future__ import annotations

import argparse

from ._common import _check_input, _command


def cmd_info(args: argparse.Namespace) -> int:
    from ..io import describe_tiff

    for path in args.files:
        print(describe_tiff(_check_input(path)))
    return 0


def _add_info(sub) -> None:
    p = _command(
        sub,
        "info",
        "describe TIFF files as the napari-unet reader sees them",
        "Prints series, axes, shape, dtype, voxel size, compression and whether the file would be read lazily.",
        "napari-unet info stack.tif\nnapari-unet info *.tif",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="TIFF files to describe")
    p.set_defaults(func=cmd_info)
