"""Reading a big input one slice at a time without the process's memory growing with the stack.

A read-only memory map keeps every page it has read mapped into the process: reading a 2 GiB TIFF slice by slice
through one leaves 2 GiB resident by the end (the kernel may drop them, but they count as the process's memory
until it does). :class:`SliceSource` copies each requested slice out and then tells the kernel the mapping's pages
are not needed (``madvise(MADV_DONTNEED)``; they stay in the page cache, so nothing is read twice from disk). Dask
arrays are computed with the synchronous scheduler: inside a dask.distributed worker the default would send the
read through the cluster's scheduler.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

__all__ = ["SliceSource"]


class SliceSource:
    """An array-like over ``data`` (numpy, memmap, dask, zarr) whose indexing returns numpy copies.

    Parameters
    ----------
    data : array-like
        The image; indexed with whatever key the caller gives (one slice at a time in prediction).
    """

    def __init__(self, data: Any) -> None:
        self.data = data
        self.shape = tuple(int(n) for n in data.shape)
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(self.shape)
        self._mmap = getattr(data, "_mmap", None) if isinstance(data, np.memmap) else None
        self._dask = type(data).__module__.startswith("dask")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._dask:
            import dask

            with dask.config.set(scheduler="synchronous"):
                return np.asarray(self.data[key].compute())
        out = np.array(self.data[key], copy=True)
        if self._mmap is not None and hasattr(mmap, "MADV_DONTNEED"):
            try:
                self._mmap.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # a closed map or a platform without it: only memory is at stake
                pass
        return out
