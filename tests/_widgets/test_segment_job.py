"""The Segment widget's worker-side job without a viewer: a tiny real model (depth 2, 4 features) on the CPU."""

from __future__ import annotations

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


def test_whole_stack_on_disk_writes_zarr_arrays_of_the_label_dtype(tiny_model, assert_engine_labels, tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (2, 32, 32)).astype(np.uint8)
    out = drain(segment_job(_request(image, tiny_model[0], probabilities=True, disk_folder=tmp_path)))
    assert not isinstance(out.labels, np.ndarray) and (tmp_path / "labels.zarr").is_dir()
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
