"""The ``napari-unet`` command line: the engine without a GUI.

Sub-commands: ``info``, ``train``, ``predict``, ``evaluate`` and ``demo``. Heavy modules (torch, the engine) are
imported inside the sub-command that needs them, so ``napari-unet --version`` and ``napari-unet info`` stay fast.
Every failure ends with a one-line message on stderr and a non-zero exit code; nothing is overwritten without
``--overwrite``.

The package holds one module per sub-command (``_info``, ``_train``, ``_predict``, ``_evaluate``, ``_demo``) and
``_common`` for what they share; this module builds the parser and runs a command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from .._openmp import calm_openmp
from ..checks import InputError

# the names cli.py had before it became a package, importable from here as before
from ._common import (  # noqa: F401
    CLIError,
    _check_input,
    _check_output,
    _command,
    _int_at_least,
    _load_image,
    _parse_slices,
    _shared_options,
)
from ._demo import _add_demo, cmd_demo  # noqa: F401
from ._doctor import _add_doctor, cmd_doctor  # noqa: F401
from ._evaluate import _add_evaluate, _instance_arrays, cmd_evaluate  # noqa: F401
from ._export import _add_export, cmd_export  # noqa: F401
from ._info import _add_info, cmd_info  # noqa: F401
from ._predict import _add_predict, _objects_request, cmd_predict  # noqa: F401
from ._train import _add_train, _train_config, cmd_train  # noqa: F401

__all__ = [
    "CLIError",
    "build_parser",
    "cmd_demo",
    "cmd_evaluate",
    "cmd_info",
    "cmd_predict",
    "cmd_train",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-unet",
        description="Train and apply a U-Net on microscopy stacks (TIFF), without the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _shared_options()
    _add_info(sub)
    _add_train(sub, shared)
    _add_predict(sub, shared)
    _add_evaluate(sub)
    _add_demo(sub, shared)
    _add_export(sub, shared)
    _add_doctor(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    calm_openmp()  # before torch loads: idle OpenMP threads sleep instead of spinning (see napari_unet._openmp)
    try:
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except (CLIError, InputError) as err:
        print(f"napari-unet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # every file napari-unet writes appears whole under its name or not at all (napari_unet.io._atomic)
        print(
            f"napari-unet {args.command}: interrupted; files reported as written are complete, nothing was "
            "left half-written",
            file=sys.stderr,
        )
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        # engine errors carry a sentence meant for the user (shape rules, missing annotations, bad files)
        print(f"napari-unet {args.command}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # never a traceback for the user; NAPARI_UNET_DEBUG=1 shows it
        if os.environ.get("NAPARI_UNET_DEBUG"):
            raise
        print(
            f"napari-unet {args.command}: internal error ({type(err).__name__}: {err}); please report it with "
            "the command line (NAPARI_UNET_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
