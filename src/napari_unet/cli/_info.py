"""``napari-unet info``: describe TIFF files as the reader sees them."""

from __future__ import annotations

import argparse
import sys

from ._common import _check_input, _command


def cmd_info(args: argparse.Namespace) -> int:
    from ..io import TiffReadError, describe_tiff, read_tiff

    failed = []
    for name in args.files:
        path = _check_input(name)
        print(describe_tiff(path))
        try:
            # what train / predict / the viewer would meet; lazy: no pixel is decoded
            read_tiff(path, lazy=True)
        except TiffReadError as err:
            failed.append(str(err))
    for message in failed:  # described above; said once more where scripts look for it
        print(f"napari-unet info: error: {message}", file=sys.stderr)
    return 1 if failed else 0


def _add_info(sub) -> None:
    p = _command(
        sub,
        "info",
        "describe TIFF files as the napari-unet reader sees them",
        "Prints series, axes, shape, dtype, voxel size, compression and whether the file would be read lazily; "
        "a file that cannot be opened (truncated, damaged) is described, then named on stderr (exit code 1).",
        "napari-unet info stack.tif\nnapari-unet info *.tif",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="TIFF files to describe")
    p.set_defaults(func=cmd_info)
