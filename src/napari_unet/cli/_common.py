"""What every sub-command shares: the user-facing error, input/output checks, option parsers and the parser
helpers (the common options, a sub-command with a description and examples)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..checks import InputError, check_image, check_input_file, check_output
from ..config import parse_auto_int


class CLIError(Exception):
    """An error whose message is shown to the user as is (no traceback)."""


def _check_output(
    path: str | os.PathLike, overwrite: bool, *, inputs=(), suffixes=(), what: str = "output"
) -> Path:
    """An output file napari-unet may write (see :func:`napari_unet.checks.check_output`), as a CLIError."""
    try:
        return check_output(path, overwrite=overwrite, inputs=inputs, suffixes=suffixes, what=what)
    except InputError as err:
        raise CLIError(str(err)) from None


def _check_input(path: str | os.PathLike, what: str = "input") -> Path:
    """An existing, non-empty input file (see :func:`napari_unet.checks.check_input_file`), as a CLIError."""
    try:
        return check_input_file(path, what)
    except InputError as err:
        raise CLIError(str(err)) from None


def _positive_float(name: str) -> Callable[[str], float]:
    """argparse type: a finite number greater than 0 (minutes, learning rate)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > 0 and value != float("inf")):
            raise argparse.ArgumentTypeError(f"{name} must be a number greater than 0, got {text!r}")
        return value

    return parse


def _fraction(name: str) -> Callable[[str], float]:
    """argparse type: a share, a number from 0 (included) to 1 (excluded)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 <= value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a number from 0 to below 1, got {text!r}")
        return value

    return parse


def _parse_slices(text: str | None, option: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise CLIError(f"{option} expects START:STOP (e.g. 20:25), got {text!r}") from None
    if not 0 <= start < stop:
        raise CLIError(f"{option} {text}: need 0 <= START < STOP")
    return start, stop


def _int_at_least(name: str, minimum: int, *, auto: bool = False) -> Callable[[str], int | str]:
    """argparse type: an integer of at least ``minimum`` (or, with ``auto``, the word 'auto').

    A thin adapter around :func:`napari_unet.config.parse_auto_int` that turns its ValueError into the
    ArgumentTypeError argparse reports as a usage error.
    """

    def parse(text: str) -> int | str:
        try:
            value = parse_auto_int(text, name, minimum=minimum)
        except ValueError as err:
            if auto:
                raise argparse.ArgumentTypeError(str(err)) from None
            value = None
        if value is None and not auto:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number of at least {minimum}, got {text!r}"
            )
        return "auto" if value is None else value

    return parse


def _load_image(path: Path):
    """First series of a TIFF as ``(Y, X)`` or ``(Z, Y, X)`` (lazy when big), its voxel size and units."""
    from ..io import read_array, read_tiff

    first = read_tiff(path)[0]
    if (
        first.rgb or "C" in first.axes or "S" in first.axes
    ):  # a stack tifffile saved as planar RGB is no colour
        raise CLIError(
            f"{path}: has colour channels (axes {first.axes}, shape {tuple(first.data.shape)}); the command line "
            "works on single-channel (Z, Y, X) stacks: save one channel per file first"
        )
    data, scale, units = read_array(path, with_units=True)
    if data.ndim not in (2, 3):
        raise CLIError(
            f"{path}: expected a 2D image or a (Z, Y, X) stack, got shape {tuple(data.shape)}; "
            "split time points into separate files first"
        )
    try:
        check_image(data, str(path))  # a few slices: no finite pixel, an empty or non-numeric image
    except InputError as err:
        raise CLIError(str(err)) from None
    return data, scale, units


def _shared_options() -> argparse.ArgumentParser:
    """The parent parser of the sub-commands that run the engine (train, predict, demo)."""
    parent = argparse.ArgumentParser(add_help=False)
    # a group of their own: the help lists them after each command's own options
    shared = parent.add_argument_group("common options")
    shared.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    shared.add_argument("--overwrite", action="store_true", help="replace existing output files")
    shared.add_argument(
        "--threads",
        type=_int_at_least("threads", 1),
        help="CPU threads for torch (default: torch's choice, all cores)",
    )
    return parent


def _command(
    sub, name: str, summary: str, description: str, examples: str, parents=()
) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` shows what it does and examples to copy."""
    return sub.add_parser(
        name,
        parents=list(parents),
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. {description}",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
