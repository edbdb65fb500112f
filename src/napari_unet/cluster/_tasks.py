"""What runs on a dask.distributed worker: predict a slab of slices straight from the input into the stores.

A task gets the model as a scattered payload (shipped once to every worker, :func:`model_payload`), a small
job description (paths and the fixed tile plan) and the Z indices of its slab; it reads its slices from the input
file, writes their chunks into the OME-Zarr stores and records each slice as done, returning only a few numbers
to the scheduler. The model is rebuilt once per worker process and kept; one prediction runs at a time per
process, with torch using the worker's thread count, on the worker's own device.
"""

from __future__ import annotations

import io
import threading
import time
import zlib
from typing import Any

__all__ = ["model_payload", "predict_slab", "worker_device"]

_MODELS: dict[str, tuple[Any, dict]] = {}
_INPUTS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()  # one prediction per worker process: torch's threads already use the worker's cores


def model_payload(model: Any, meta: dict | None, digest: str) -> dict:
    """The model as plain bytes plus its metadata, for ``client.scatter(..., broadcast=True)``."""
    import torch

    buffer = io.BytesIO()
    torch.save({"kwargs": dict(model.kwargs), "state_dict": model.state_dict()}, buffer)
    return {"digest": digest, "weights": buffer.getvalue(), "meta": dict(meta or {})}


def _model(payload: dict) -> tuple[Any, dict]:
    found = _MODELS.get(payload["digest"])
    if found is None:
        import torch

        from ..model import UNet

        saved = torch.load(io.BytesIO(payload["weights"]), map_location="cpu", weights_only=True)
        model = UNet(**saved["kwargs"])
        model.load_state_dict(saved["state_dict"])
        found = _MODELS[payload["digest"]] = (model.eval(), payload["meta"])
    return found


def _input(path: str, kind: str) -> Any:
    found = _INPUTS.get((path, kind))
    if found is None:
        if kind == "zarr":
            from ..ngff import read_zarr_image

            found = read_zarr_image(path)[0]
        else:
            from ..io import read_array

            found = read_array(path)
        if isinstance(found, tuple):
            found = found[0]
        _INPUTS[(path, kind)] = found
    return found


def _objects(job: dict) -> Any:
    """The slice objects of a job that asks for them (``job["objects"]``), else None."""
    if not job.get("objects"):
        return None
    from ..instances import SliceObjects

    return SliceObjects.from_job(job["objects"])


def worker_device(requested: str, worker_name: Any) -> Any:
    """The device of this worker: ``requested`` as given, but ``auto`` with several GPUs spreads the workers.

    Worker ``n`` (its name, or a checksum of it) takes GPU ``n % count``; a worker whose ``CUDA_VISIBLE_DEVICES``
    shows one GPU takes that one.
    """
    import torch

    from ..device import select_device

    if requested == "auto" and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        try:
            index = int(worker_name)
        except (TypeError, ValueError):
            index = zlib.crc32(str(worker_name).encode())
        return torch.device(f"cuda:{index % torch.cuda.device_count()}")
    return select_device(requested)


def predict_slab(payload: dict, job: dict, zs: list[int]) -> dict:
    """Predict the slices ``zs`` of ``job`` on this worker; returns ``{"zs", "seconds", "worker", "device"}``.

    Slices already recorded as done (a retried task after a lost worker) are skipped. With ``job["objects"]``
    (:meth:`napari_unet.instances.SliceObjects.job`) each slice's objects are cut from the probabilities just
    computed and written as local ids (or, while the preset waits, its probability kept) before it counts as done.
    """
    import torch
    from distributed import get_worker

    from ..device import describe_device
    from ..ngff import ZarrOutputs
    from ..predict import SliceSource, predict_stack_sync

    t0 = time.perf_counter()
    worker = get_worker()
    with _LOCK:
        threads = getattr(getattr(worker, "state", worker), "nthreads", None) or worker.nthreads
        torch.set_num_threads(int(threads))
        model, meta = _model(payload)
        source = SliceSource(_input(job["input"], job["kind"]))
        outputs = ZarrOutputs.reopen(job["labels"], job["probabilities"])
        objects = _objects(job)
        todo = [z for z in zs if not outputs.is_done(z) or (objects is not None and objects.needs(z))]
        device = worker_device(job["device"], worker.name)
        probabilities = outputs.probabilities
        if objects is not None:
            probabilities = objects.tapped(probabilities, model.n_classes)
        if todo:
            stack = source.ndim == 3

            def written(z: int) -> None:
                if objects is not None:  # its objects first: a slice recorded as done has them
                    objects.written(z)
                outputs.slice_done(z, source[z] if stack else source[...])

            predict_stack_sync(
                source,
                model,
                meta,
                labels_out=outputs.labels,
                probabilities_out=probabilities,
                slices=todo,
                tile=job["tile"],
                batch_size=job["batch_size"],
                device=device,
                tta=job["tta"],
                amp=job["amp"],
                on_written=written,
            )
    return {
        "zs": list(zs),
        "seconds": time.perf_counter() - t0,
        "worker": str(worker.address),
        "device": describe_device(device),
        "threads": int(threads),
    }
