"""The next batch of training patches, prepared in a background thread while the model steps (numpy; no torch).

Sampling (crops, augmentation, normalisation) is numpy / scipy work that releases the GIL for most of its time, so
on a CPU it overlaps the optimiser step instead of adding to it. The batches are drawn in the same order as without
prefetching (one sampler, one thread, requests in sequence), so a seeded run stays the same run.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ._sampler import PatchSampler

__all__ = ["Batches"]


class Batches:
    """Batches of ``batch_size`` patches from ``sampler``, the next one prepared ahead when ``prefetch``.

    Call :meth:`settle` before changing the sampler or the data it reads (live strokes), and :meth:`close` at the
    end of the run.
    """

    def __init__(self, sampler: PatchSampler, batch_size: int, *, prefetch: bool) -> None:
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="napari-unet-patches") if prefetch else None
        self._next: Future | None = None

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch ``(images, targets)``; starts preparing the one after."""
        if self._pool is None:
            return self.sampler.sample(self.batch_size)
        batch = self._next.result() if self._next is not None else self.sampler.sample(self.batch_size)
        self._next = self._pool.submit(self.sampler.sample, self.batch_size)
        return batch

    def settle(self) -> None:
        """Wait for the batch in preparation (kept for the next call): the sampler is then safe to change.

        The batch prepared before the change is still used, so a change reaches the batches one step later.
        """
        if self._next is not None:
            self._next.result()

    def close(self) -> None:
        """Stop the background thread (a batch in preparation is finished and dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._next = None
