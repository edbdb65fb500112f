"""``napari-unet doctor``: torch build, devices, threads, extras and folders, and the fix for a CPU-only torch."""

from __future__ import annotations

import argparse

from ._common import _command


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import gather_facts, report_lines

    print("\n".join(report_lines(gather_facts())))
    return 0


def _add_doctor(sub) -> None:
    p = _command(
        sub,
        "doctor",
        "show what this machine offers napari-unet",
        "Prints the torch version and build (CPU / CUDA x.y / ROCm / MPS), the devices with name and free "
        "memory, torch's threads, the optional extras installed, the folders napari-unet uses, and - when a GPU "
        "is present but torch cannot use it - the pip command that installs the matching torch build.",
        "napari-unet doctor",
    )
    p.set_defaults(func=cmd_doctor)
