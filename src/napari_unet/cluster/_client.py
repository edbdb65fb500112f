"""The dask.distributed client of a prediction: a LocalCluster on this machine, or an existing scheduler."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ClusterInfo", "ClusterError", "open_client"]


class ClusterError(RuntimeError):
    """A cluster that cannot be started or reached; the message is one sentence for the user."""


@dataclass(frozen=True)
class ClusterInfo:
    """What the client is connected to: the scheduler address, the workers, their threads, the dashboard."""

    scheduler: str
    n_workers: int
    threads: tuple[int, ...]
    dashboard: str | None
    local: bool

    def describe(self) -> str:
        """One line, e.g. ``"LocalCluster tcp://127.0.0.1:40123: 2 workers x 1 thread; dashboard http://..."``."""
        kind = "LocalCluster" if self.local else "scheduler"
        threads = sorted(set(self.threads))
        per = f"{threads[0]} thread(s)" if len(threads) == 1 else f"{min(threads)}-{max(threads)} threads"
        board = (
            f"dashboard {self.dashboard}" if self.dashboard else "no dashboard (install bokeh>=3.1 for one)"
        )
        return f"{kind} {self.scheduler}: {self.n_workers} worker(s) x {per}; {board}"


def _info(client: Any, local: bool) -> ClusterInfo:
    workers = (
        client.scheduler_info(n_workers=-1)["workers"]
        if _takes_n_workers(client)
        else client.scheduler_info()["workers"]
    )
    threads = tuple(int(w.get("nthreads", 1)) for w in workers.values())
    try:
        import bokeh  # noqa: F401  (the dashboard needs it)

        board = client.dashboard_link
    except ImportError:
        board = None
    return ClusterInfo(client.scheduler.address, len(workers), threads, board, local)


def _takes_n_workers(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


@contextlib.contextmanager
def open_client(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    timeout: float = 20,
) -> Iterator[tuple[Any, ClusterInfo]]:
    """A connected ``distributed.Client`` and what it sees; the LocalCluster it started closes on exit.

    Parameters
    ----------
    workers : int, optional
        Start a ``distributed.LocalCluster`` of this many worker processes.
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``), e.g. one dask-jobqueue started on SLURM.
    threads : int, optional
        Threads per LocalCluster worker; default the machine's cores shared among the workers.
    timeout : float
        Seconds to wait for at least one worker (and, up to 10 of them, for the scheduler to answer).

    Raises
    ------
    ClusterError
        When the scheduler cannot be reached or has no worker within ``timeout``.
    """
    from distributed import Client, LocalCluster

    if (workers is None) == (scheduler is None):
        raise ValueError("give exactly one of workers and scheduler")
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout=min(timeout, 10))
            except (OSError, TimeoutError) as err:
                raise ClusterError(f"--scheduler {scheduler}: cannot reach the scheduler ({err})") from None
        else:
            per_worker = threads or max(1, (os.cpu_count() or 1) // workers)
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=per_worker, processes=True, dashboard_address=":0"
            )
            client = Client(cluster)
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            client.close()
            raise ClusterError(
                f"the scheduler {client.scheduler.address} has no worker after {timeout:.0f} s"
            ) from None
        with client:
            yield client, _info(client, cluster is not None)
    finally:
        if cluster is not None:
            cluster.close()
