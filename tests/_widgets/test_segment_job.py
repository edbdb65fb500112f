"""The Segment widget's worker-side job without a viewer: a tiny real model (depth 2, 4 features) on the CPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_unet._widgets._jobs import Step
from napari_unet._widgets._segment_job import (
    SegmentRequest,
    describe_progress,
    label_dtype,
    new_output,
    segment_job,
)
from napari_unet.generators import drain


def _request(image, model_path: Path, **fields) -> SegmentRequest:
    values = dict(
        image=image,
        z=None,
        full_shape=tuple(image.shape),
        model_path=model_path,
        probabilities=False,
        tile="auto",
        batch_size="auto",
        device="cpu",
        tta=False,
        disk_folder=None,
    )
    values.update(fields)
    return SegmentRequest(**values)


def test_job_returns_what_the_engine_predicts(tiny_model, assert_engine_labels):
    image = np.random.default_rng(0).integers(0, 255, (2, 48, 40)).astype(np.uint8)
    records = []
    out = drain(segment_job(_request(image, tiny_model[0], probabilities=True)), records.append)
    assert_engine_labels(out.labels, tiny_model[0], image)
    assert out.probabilities.shape == (2, 2, 48, 40) and out.z is None
    assert out.meta["label_values"] == [1, 2] and out.result.n_slices == 2
    assert records and records[-1].slice_index == 1 and records[-1].tiles_done == records[-1].tiles_total


def test_whole_stack_on_disk_writes_zarr_arrays_of_the_label_dtype(
    tiny_model, assert_engine_labels, tmp_path
):
    image = np.random.default_rng(1).integers(0, 255, (2, 32, 32)).astype(np.uint8)
    out = drain(segment_job(_request(image, tiny_model[0], probabilities=True, disk_folder=tmp_path)))
    assert not isinstance(out.labels, np.ndarray) and (tmp_path / "segment.zarr" / "labels").is_dir()
    assert out.labels.dtype == np.uint8 and out.probabilities.shape == (2, 2, 32, 32)
    assert_engine_labels(out.labels, tiny_model[0], image)


def test_a_model_for_other_channels_is_refused_in_words(two_channel_model):
    with pytest.raises(ValueError, match="2 channels per pixel"):
        drain(segment_job(_request(np.zeros((32, 32), np.uint8), two_channel_model)))


def test_outputs_and_progress():
    assert (
        label_dtype([1, 2]) == np.uint8 and label_dtype([0, 300]) == np.uint16 and label_dtype([]) == np.uint8
    )
    zeros = new_output((2, 8, 8), np.dtype(np.uint16), None, "labels")
    assert isinstance(zeros, np.ndarray) and zeros.dtype == np.uint16 and not zeros.any()

    record = SimpleNamespace(slice_index=1, n_slices=3, tiles_done=2, tiles_total=4, message="slice 2/3")
    assert describe_progress(record) == Step(done=6, total=12, text="slice 2/3")
    assert describe_progress(record, z=7) == Step(done=6, total=12, text="slice 7: tile 2/4")
    first = SimpleNamespace(slice_index=0, n_slices=3, tiles_done=0, tiles_total=4, message="")
    assert describe_progress(first).text == "starting"
    assert describe_progress(SimpleNamespace(loss=1.0)) is None  # not a prediction record


def test_job_cuts_objects_and_maps_uncertainty_from_one_prediction(tiny_model):
    from napari_unet.instances import (
        InstanceConfig,
        ObjectsRequest,
        class_probability,
        instances_from_probability_sync,
        measure_objects,
    )
    from napari_unet.uncertainty import entropy_map

    image = np.random.default_rng(0).integers(0, 255, (3, 48, 40)).astype(np.uint8)
    wanted = ObjectsRequest(None, mode="2d", preset="cells", min_size=5)  # None: the model's last class (2)
    voxel = (40.0, 4.0, 4.0)
    records = []
    req = _request(image, tiny_model[0], objects=wanted, voxel_size=voxel, uncertainty=True)
    assert req.needs_probabilities
    out = drain(segment_job(req), records.append)
    assert out.probabilities is None  # needed for the objects, but not asked for: not handed back

    full = drain(segment_job(_request(image, tiny_model[0], probabilities=True)))
    prob = class_probability(full.probabilities, [1, 2], 2)
    config = dataclasses.replace(InstanceConfig.preset("cells"), min_size=5)
    expected = instances_from_probability_sync(prob, voxel_size=voxel, mode="2d", config=config).labels
    objects = out.objects
    assert objects.result.labels.dtype == np.uint32 and objects.result.n_objects > 0
    np.testing.assert_array_equal(objects.result.labels, expected)
    table = measure_objects(expected, prob, voxel_size=voxel)
    assert list(objects.table) == list(table)  # label, volume, centroid_z/y/x, mean_probability, n_slices
    np.testing.assert_allclose(objects.table["volume"], table["volume"])
    np.testing.assert_allclose(out.uncertainty, entropy_map(full.probabilities), atol=1e-6)
    steps = [describe_progress(r) for r in records]
    assert any(s is not None and s.text.startswith("objects (2D)") for s in steps)
    assert steps[-1] == Step(done=3, total=3, text="uncertainty")


def test_current_slice_objects_are_that_sections_objects_at_its_z(tiny_model, tmp_path):
    from napari_unet.instances import ObjectsRequest

    image = np.random.default_rng(2).integers(0, 255, (3, 48, 40)).astype(np.uint8)
    req = _request(
        image[1:2],
        tiny_model[0],
        z=1,
        full_shape=image.shape,
        objects=ObjectsRequest(2, mode="3d", preset="cells", min_size=5),  # one section: 2D whatever the mode
        voxel_size=(40.0, 4.0, 4.0),
        uncertainty=True,
    )
    out = drain(segment_job(req))
    labels, table = out.objects.result.labels, out.objects.table
    assert labels.shape == (1, 48, 40) and out.objects.result.mode == "2d"
    assert list(table)[:5] == ["label", "area", "centroid_z", "centroid_y", "centroid_x"]
    np.testing.assert_allclose(table["centroid_z"], 40.0)  # slice 1 at 40 per slice
    assert (table["n_slices"] == 1).all() and len(table["label"]) == out.objects.result.n_objects
    assert out.uncertainty.shape == (1, 48, 40)

    whole = drain(
        segment_job(
            _request(image, tiny_model[0], objects=ObjectsRequest(2), uncertainty=True, disk_folder=tmp_path)
        )
    )
    assert (tmp_path / "objects.zarr").is_dir() and (tmp_path / "uncertainty.zarr").is_dir()
    assert whole.objects.result.labels.dtype == np.uint32 and whole.uncertainty.shape == image.shape


def _until_slice(job, z_stop: int) -> list:
    """Run ``job`` until it starts slice ``z_stop``, then close it as a cancel does; the records seen."""
    records = [next(job)]
    for record in job:
        records.append(record)
        if getattr(record, "z", -1) == z_stop:
            job.close()
            break
    return records


def test_a_stack_on_disk_resumes_after_a_cancel_and_equals_an_uninterrupted_run(tiny_model, tmp_path):
    from napari_unet._widgets._disk_run import DiskOutputs, DiskRun

    image = np.random.default_rng(3).integers(0, 255, (5, 40, 40)).astype(np.uint8)
    whole = drain(segment_job(_request(image, tiny_model[0], probabilities=True, disk_folder=tmp_path / "a")))
    expected_labels = np.asarray(whole.labels).copy()
    expected_probs = np.asarray(whole.probabilities).copy()

    folder = tmp_path / "b"
    req = _request(image, tiny_model[0], probabilities=True, disk_folder=folder, image_key="em")
    records = _until_slice(segment_job(req), 3)
    first = records[0]
    assert isinstance(first, DiskOutputs) and first.done_before == 0 and first.total == 5
    assert first.run.pending() == [3, 4]  # slices 0-2 written and marked done before the cancel
    np.testing.assert_array_equal(np.asarray(first.labels)[:3], expected_labels[:3])  # visible while it ran

    records = []
    out = drain(segment_job(req), records.append)
    assert isinstance(records[0], DiskOutputs) and records[0].done_before == 3
    assert {r.z for r in records[1:]} == {3, 4}  # only the rest was predicted
    assert any("resumed: 3 of 5" in note for note in out.result.notes)
    np.testing.assert_array_equal(np.asarray(out.labels), expected_labels)  # bit for bit
    np.testing.assert_array_equal(np.asarray(out.probabilities), expected_probs)
    assert DiskRun.open(folder, {"other": "run"}, image.shape, np.uint8, None).pending() == list(range(5))


def test_a_finished_or_different_run_on_disk_starts_again(tiny_model, tmp_path):
    from napari_unet._widgets._disk_run import DiskOutputs

    image = np.random.default_rng(4).integers(0, 255, (3, 32, 32)).astype(np.uint8)
    req = _request(image, tiny_model[0], disk_folder=tmp_path, image_key="em")
    drain(segment_job(req))  # finished: Segment again predicts everything again
    records = []
    drain(segment_job(req), records.append)
    assert records[0].done_before == 0 and {r.z for r in records[1:]} == {0, 1, 2}

    _until_slice(segment_job(req), 2)
    for changed in (dict(tta=True), dict(image_key="another image"), dict(tile=32)):
        records = _until_slice(segment_job(dataclasses.replace(req, **changed)), 0)
        assert isinstance(records[0], DiskOutputs) and records[0].done_before == 0, changed
