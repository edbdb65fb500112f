"""What every sub-command shares: the user-facing error, input/output checks, option parsers and the parser
helpers (the common options, a sub-command with a description and examples)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..config import parse_auto_int


class CLIError(Exception):
    """An error whose message is shown to the user as is (no traceback)."""


def _check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise CLIError(f"{path} already exists; pass --overwrite to replace it")
    if path.parent and not path.parent.exists():
        raise CLIError(f"the folder {path.parent} does not exist")
    return path


def _check_input(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path} is a folder, expected a TIFF file")
    return path


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
    if first.rgb or "C" in first.axes or "S" in first.axes:
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
