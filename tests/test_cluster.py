"""``napari-unet predict`` on dask.distributed: a scheduler and two workers started here as real processes.

The labels (and probabilities) of ``--scheduler`` and ``--workers`` runs must equal the single-process run's bit
for bit; the workers write the stores themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_predict_zarr import tiny  # noqa: F401  (the module fixture: a tiny model and a stack)

from napari_unet.cli import main
from napari_unet.cluster._run import slabs

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).parent / "dask")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker --nthreads 1`` processes on localhost; yields the address."""
    folder = tmp_path_factory.mktemp("cluster")
    info = folder / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [DASK, "worker", address, "--nthreads", "1", "--no-dashboard", "--memory-limit", "2GB"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:  # both workers in before any test counts them
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _read(path: Path, key: str) -> np.ndarray:
    return zarr.open_group(str(path), mode="r")[key][:]


def _run(image, model, out, prob, *options) -> int:
    argv = ["predict", str(image), "--model", str(model), "-o", str(out), "--probabilities", str(prob)]
    return main([*argv, "--tile", "48", "--device", "cpu", *map(str, options)])


def test_a_running_scheduler_gives_the_single_process_labels(tiny, scheduler, tmp_path, capsys):  # noqa: F811
    model, image, data = tiny
    assert _run(image, model, tmp_path / "one.zarr", tmp_path / "one_p.zarr") == 0
    assert _run(image, model, tmp_path / "two.zarr", tmp_path / "two_p.zarr", "--scheduler", scheduler) == 0
    err = capsys.readouterr().err
    assert f"scheduler {scheduler}: 2 worker(s) x 1 thread(s)" in err
    key = "labels/segmentation/0"
    assert np.array_equal(_read(tmp_path / "two.zarr", key), _read(tmp_path / "one.zarr", key))
    assert np.array_equal(_read(tmp_path / "two_p.zarr", "0"), _read(tmp_path / "one_p.zarr", "0"))
    assert np.array_equal(_read(tmp_path / "two.zarr", "0"), data)


def test_a_local_cluster_gives_the_single_process_labels_and_prints_its_dashboard(tiny, tmp_path, capsys):  # noqa: F811
    model, image, _ = tiny
    assert _run(image, model, tmp_path / "one.zarr", tmp_path / "one_p.zarr") == 0
    assert _run(image, model, tmp_path / "w.zarr", tmp_path / "w_p.zarr", "--workers", 2, "--threads", 1) == 0
    err = capsys.readouterr().err
    assert "LocalCluster tcp://" in err and "2 worker(s) x 1 thread(s); dashboard http://" in err
    key = "labels/segmentation/0"
    assert np.array_equal(_read(tmp_path / "w.zarr", key), _read(tmp_path / "one.zarr", key))


def test_an_unreachable_scheduler_is_one_sentence(tiny, tmp_path, capsys):  # noqa: F811
    model, image, _ = tiny
    assert (
        _run(image, model, tmp_path / "x.zarr", tmp_path / "xp.zarr", "--scheduler", "tcp://127.0.0.1:9") == 1
    )
    assert "--scheduler tcp://127.0.0.1:9: cannot reach the scheduler" in capsys.readouterr().err


def test_slabs_cover_every_slice_once_in_order():
    assert slabs(list(range(5)), 2) == [[0], [1], [2], [3], [4]]
    assert slabs(list(range(10)), 2, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    many = slabs(list(range(10_001)), 8)
    assert sum(many, []) == list(range(10_001)) and len(many) <= 4000
    assert slabs([], 3) == []


def test_a_running_scheduler_cuts_the_objects_of_the_single_process_run(tiny, scheduler, tmp_path):  # noqa: F811
    model, image, _ = tiny
    objects = [
        "--instances",
        "--instance-of",
        255,
        "--instance-preset",
        "cells",
    ]  # cut on the workers, one wave
    assert _run(image, model, tmp_path / "one.zarr", tmp_path / "one_p.zarr", *objects) == 0
    assert (
        _run(image, model, tmp_path / "two.zarr", tmp_path / "two_p.zarr", *objects, "--scheduler", scheduler)
        == 0
    )
    key = "labels/instances/0"
    ids = _read(tmp_path / "one.zarr", key)
    assert ids.max() > 10 and np.array_equal(_read(tmp_path / "two.zarr", key), ids)
