"""Atomic outputs: every file napari-unet writes appears whole under its name, or not at all.

The data goes to a hidden temporary name in the destination's folder (``.NAME.<random>.partial``) and is renamed
with :func:`os.replace` when complete, so Ctrl-C, a crash or a full disk at any moment leaves either the previous
file or the new complete one, never a truncated file under the final name; the temporary file is removed on any
error. The same folder keeps the rename atomic (one file system). Not ``tempfile.mkstemp``: its 0600 mode would
stick to the final file, while ``open(..., "x")`` gives the user's usual permissions.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["PARTIAL_SUFFIX", "atomic_copy", "atomic_open", "atomic_path"]

PARTIAL_SUFFIX = ".partial"


def _partial_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to; renamed to ``path`` when the ``with`` body ends without an error.

    Parameters
    ----------
    path : path-like
        The final file; its folder must exist.

    Yields
    ------
    pathlib.Path
        Where to write (a hidden name in the same folder); whatever the body leaves there becomes ``path``.
    """
    path = Path(path)
    tmp = _partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode, **kwargs)`` that writes to a temporary name and renames it when the body completes.

    ``mode`` is ``"w"`` or ``"wb"`` (with ``"x"`` for the temporary file); ``kwargs`` go to :func:`open`
    (``encoding``, ``newline``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes new files: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode.replace("w", "x"), **kwargs) as handle:
        yield handle


def atomic_copy(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Copy ``source`` to ``destination`` atomically (a kept checkpoint, for example)."""
    with atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)
