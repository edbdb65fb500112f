"""The "where to paint next" job without a viewer: a tiny real model (depth 2, 4 features) on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet._widgets._next_slices_job import NextSlicesRequest, next_slices_job
from napari_unet.generators import drain
from napari_unet.uncertainty import entropy_map, rank_slices


def test_ranks_the_sampled_slices_by_the_models_own_uncertainty(tiny_model):
    from napari_unet.checkpoint import load_checkpoint
    from napari_unet.predict import predict_stack_sync

    image = np.random.default_rng(0).integers(0, 255, (6, 48, 40)).astype(np.uint8)
    labels = np.zeros(image.shape, np.uint8)
    labels[2] = 1  # densely annotated: never looked at
    labels[4, :8] = 2  # a few strokes: looked at, those pixels do not count
    records = []
    out = drain(
        next_slices_job(NextSlicesRequest(image, labels, tiny_model[0], device="cpu", k=3)), records.append
    )
    assert out.looked_at == [0, 1, 3, 4, 5]
    assert len(out.suggestions) == 3 and 2 not in [s.z for s in out.suggestions]
    assert records and records[-1].tiles_done == records[-1].tiles_total  # the engine's progress, relayed

    model, meta = load_checkpoint(tiny_model[0])
    probs = predict_stack_sync(image[out.looked_at], model, meta, want_probabilities=True, device="cpu")
    expected = rank_slices(entropy_map(probs.probabilities), labels, 3, slices=out.looked_at)
    assert [s.z for s in out.suggestions] == [s.z for s in expected]
    for got, want in zip(out.suggestions, expected, strict=True):
        assert got.box == want.box and got.score == pytest.approx(want.score, abs=1e-5)
    assert all(0.0 <= s.score <= 1.0 for s in out.suggestions)


def test_a_2d_image_a_fully_annotated_stack_and_a_subsample(tiny_model, two_channel_model):
    image = np.random.default_rng(1).integers(0, 255, (48, 40)).astype(np.uint8)
    out = drain(next_slices_job(NextSlicesRequest(image, None, tiny_model[0], device="cpu")))
    assert out.looked_at == [0] and len(out.suggestions) == 1 and out.suggestions[0].z == 0

    stack = np.zeros((3, 32, 32), np.uint8)
    done = drain(next_slices_job(NextSlicesRequest(stack, np.ones(stack.shape, np.uint8), tiny_model[0])))
    assert done.suggestions == [] and done.looked_at == []  # nothing predicted: no model loaded either

    tall = np.random.default_rng(2).integers(0, 255, (20, 32, 32)).astype(np.uint8)
    few = drain(
        next_slices_job(NextSlicesRequest(tall, None, tiny_model[0], device="cpu", max_slices=4, k=2))
    )
    assert few.looked_at == [0, 6, 13, 19] and len(few.suggestions) == 2

    with pytest.raises(ValueError, match="2 channels per pixel"):
        drain(next_slices_job(NextSlicesRequest(image, None, two_channel_model, device="cpu")))
