"""``napari-unet predict --instances`` into OME-Zarr: the TIFF path's ids exactly, in process and on a cluster.

The objects are cut slice by slice where each slice is predicted (a dask task per slice on the LocalCluster) and
linked afterwards; the ids must equal the single-process TIFF path's bit for bit, including objects that run
through several slices (so across task borders). An interrupted run - during the prediction, during the linking
pass - re-run with the same command gives the same ids, the linking continuing where it stopped.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_unet.checkpoint import save_checkpoint
from napari_unet.cli import main
from napari_unet.ngff import store_state

CPU = ["--device", "cpu", "--tile", "48"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A tiny untrained model (seeded) and a (16, 64, 64) stack at 4 x 4 x 50 nm: 16 slices, so the ``auto``
    preset samples every second one (the others are cut after it is chosen)."""
    folder = tmp_path_factory.mktemp("zarr_objects")
    torch.manual_seed(7)
    from napari_unet.model import UNet

    model = UNet(in_channels=1, n_classes=2, depth=2, features=4)
    norm = {"mode": "percentile", "low": 0.0, "high": 255.0}
    save_checkpoint(folder / "m.pt", model, normalization=norm, label_values=[0, 255], class_names=["a", "b"])
    image = np.random.default_rng(3).integers(0, 256, (16, 64, 64), dtype=np.uint8)
    meta = {"axes": "ZYX", "spacing": 0.05, "unit": "um"}
    tifffile.imwrite(folder / "s.tif", image, imagej=True, resolution=(250, 250), metadata=meta)
    base = ["predict", str(folder / "s.tif"), "--model", str(folder / "m.pt"), "--instance-of", "255", *CPU]
    assert main([*base, "-o", str(folder / "l.tif"), "--instances", str(folder / "i.tif"),
                 "--measurements", str(folder / "i.csv")]) == 0  # fmt: skip
    return base, tifffile.imread(folder / "i.tif"), (folder / "i.csv").read_text()


def _spanning(ids: np.ndarray) -> int:
    """Objects present on more than one slice."""
    slices = {}
    for z in range(ids.shape[0]):
        for v in np.unique(ids[z])[1:]:
            slices[v] = slices.get(v, 0) + 1
    return sum(n > 1 for n in slices.values())


@pytest.mark.slow
def test_zarr_instances_equal_the_tiff_path_in_process_and_on_a_local_cluster(stack, tmp_path):
    base, reference, table = stack
    assert _spanning(reference) >= 3 and reference.max() > 20  # objects cross slices, hence task borders
    assert (
        main(
            [*base, "-o", str(tmp_path / "l.zarr"), "--instances", "--measurements", str(tmp_path / "a.csv")]
        )
        == 0
    )
    group = zarr.open_group(str(tmp_path / "l.zarr"), mode="r")
    ids = group["labels/instances/0"]
    assert ids.dtype == np.uint32 and ids.chunks == (1, 64, 64)
    np.testing.assert_array_equal(ids[:], reference)
    assert (tmp_path / "a.csv").read_text() == table
    # NGFF: a second label image next to the semantic labels, with the voxel size; the working arrays are gone
    assert group["labels"].attrs["labels"] == ["segmentation", "instances"]
    meta = group["labels/instances"].attrs
    assert meta["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [
        0.05,
        0.004,
        0.004,
    ]
    assert "image-label" in meta and sorted(group["labels/instances"].keys()) == ["0"]
    assert store_state(tmp_path / "l.zarr/labels/instances") == "complete"

    # two worker processes, one slice per task: the objects are cut on the workers, linked here
    cluster = [*base, "-o", str(tmp_path / "w.zarr"), "--instances", str(tmp_path / "wi.zarr")]
    assert (
        main([*cluster, "--measurements", str(tmp_path / "w.csv"), "--workers", "2", "--threads", "1"]) == 0
    )
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "wi.zarr"), mode="r")["0"][:], reference)
    assert (tmp_path / "w.csv").read_text() == table
    assert store_state(tmp_path / "wi.zarr") == "complete" and store_state(tmp_path / "w.zarr") == "complete"


def _interrupted(argv: list[str], stop: str | None) -> list[str]:
    """Run ``napari-unet predict argv`` in process and close it (as Ctrl-C does) at the first record whose message
    starts with ``stop`` (None: to the end); returns the records' messages."""
    from napari_unet._batch import plan_batch, predict_batch
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.cli._predict import _load
    from napari_unet.instances import ObjectsRequest

    image, model_path, out = argv[1], argv[3], argv[argv.index("-o") + 1]
    jobs = plan_batch([image], out, instances=True)
    model, meta = load_checkpoint(model_path)
    run = predict_batch(jobs, model, meta, load=_load, objects=ObjectsRequest(255), keep_going=False,
                        tile=48, device="cpu")  # fmt: skip
    messages = []
    for rec in run:
        messages.append(rec.message)
        if stop is not None and rec.message.startswith(stop):
            run.close()
            return messages
    assert stop is None, f"no record {stop!r}"
    return messages


def _linked(store) -> int:
    return int(np.count_nonzero(zarr.open_group(str(store), mode="r")["napari_unet_linked"][:]))


@pytest.mark.slow
def test_interrupted_prediction_and_linking_resume_to_the_same_ids(stack, tmp_path):
    base, reference, _ = stack
    argv = [*base, "-o", str(tmp_path / "l.zarr")]
    group = tmp_path / "l.zarr" / "labels" / "instances"
    _interrupted(argv, "slice 12/16")  # the 8 sampled slices, then 3 more, are predicted and cut
    states = zarr.open_group(str(group), mode="r")["napari_unet_state"][:]
    assert list(states[::2]) == [2] * 8 and int(np.count_nonzero(states)) == 11, states
    assert store_state(tmp_path / "l.zarr") == "partial" and store_state(group) == "partial"

    _interrupted(argv, "objects: 6/16")  # predicts the 5 slices left, stops half way through the linking
    assert _linked(group) == 6 and store_state(group) == "partial"
    assert store_state(tmp_path / "l.zarr") == "partial"  # the labels wait for their objects

    messages = _interrupted(argv, None)
    assert any("16 of 16 slice(s) already done, 0 to go" in m for m in messages)
    linking = [m for m in messages if m.startswith("objects:")]
    assert linking[0].startswith("objects: 7/16") and len(linking) == 10  # it continued, nothing linked twice
    np.testing.assert_array_equal(zarr.open_group(str(group), mode="r")["0"][:], reference)
    assert store_state(tmp_path / "l.zarr") == "complete" and store_state(group) == "complete"
