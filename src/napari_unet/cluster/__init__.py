"""The same prediction on a dask.distributed cluster: a LocalCluster here, or any scheduler (dask-jobqueue, SLURM).

- ``_client``: :func:`open_client` (``--workers N`` / ``--scheduler tcp://HOST:PORT``) and :class:`ClusterInfo`;
- ``_tasks``: what a worker runs (:func:`predict_slab`): the model shipped once, slices read from the input file
  and written into the OME-Zarr stores by the worker itself;
- ``_run``: :func:`predict_on_cluster`, the client's generator (one task per slab, progress per finished task).

Importing this package does not import ``distributed`` or torch; they load when a cluster is opened.
"""

from __future__ import annotations

from ._client import ClusterError, ClusterInfo, open_client

__all__ = ["ClusterError", "ClusterInfo", "open_client", "predict_on_cluster"]


def __getattr__(name: str):
    if name == "predict_on_cluster":
        from ._run import predict_on_cluster

        return predict_on_cluster
    raise AttributeError(name)
