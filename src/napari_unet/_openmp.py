"""One process-wide setting for torch's CPU threads, shared by the CLI and the napari widgets; no torch import here.

:func:`calm_openmp` lets torch's OpenMP threads sleep, not spin, while they wait for work. By default libgomp keeps
idle threads spinning for a while after each parallel region; on a CPU shared with other work (napari's GUI and
render threads, a neighbour's job, the patch prefetch thread) the threads of a team then take turns and every step
waits for a descheduled member. Measured on 2 cores shared with other jobs (``benchmarks/widget_vs_cli.py``,
2026-12-03): ``napari-unet train`` made 16-42 iterations in 60 s with the default policy against 241-390 with a
passive one in the same rounds; on a nearly idle machine 491 and 492 - no cost when the cores are free.
"""

from __future__ import annotations

import os
import sys

__all__ = ["calm_openmp"]


def calm_openmp() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; call before torch is imported.

    It only takes effect before libgomp is loaded (with torch): once torch is in ``sys.modules`` it does nothing.
    Processes started afterwards inherit the variable.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
