"""OME-Zarr stores of napari-unet (no torch): the NGFF layout other tools read, completion, resume rules, input.

The stores are real zarr stores on disk; their layout is checked through napari-ome-zarr's own reader (what
napari uses to open them), not against our own expectations of the JSON.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_unet.ngff import (
    OutputSpec,
    ZarrOutputError,
    ZarrOutputs,
    ZarrReadError,
    read_zarr_image,
    store_state,
)

SPEC = OutputSpec(
    (3, 16, 20),
    np.uint8,
    np.uint8,
    [0, 255],
    ["membrane", "cell"],
    (50.0, 4.0, 4.0),
    ("nm", "nm", "nm"),
    "em",
)
RUN = {"input": "/data/em.tif", "model": "abc", "tta": False}


def _fill(outputs: ZarrOutputs, zs) -> None:
    rng = np.random.default_rng(0)
    for z in zs:
        outputs.labels[z] = (rng.random((16, 20)) > 0.5).astype(np.uint8) * 255
        outputs.probabilities[z] = rng.random((2, 16, 20)).astype(np.float32)
        outputs.slice_done(z, np.full((16, 20), z, np.uint8))


def test_the_stores_open_in_napari_ome_zarr_with_the_voxel_size(tmp_path):
    from napari_ome_zarr import napari_get_reader

    labels, probs = tmp_path / "em.zarr", tmp_path / "em_probabilities.zarr"
    outputs = ZarrOutputs.open(labels, probs, SPEC, RUN)
    _fill(outputs, range(3))
    assert outputs.finish()
    layers = napari_get_reader(str(labels))(str(labels))
    kinds = {kind: (data, kw) for data, kw, kind in layers}
    image, image_kw = kinds["image"]
    label_data, label_kw = kinds["labels"]
    assert list(image_kw["scale"]) == [50.0, 4.0, 4.0] and list(label_kw["scale"]) == [50.0, 4.0, 4.0]
    assert np.array_equal(np.asarray(image[0])[2], np.full((16, 20), 2, np.uint8))  # the input copy
    assert np.array_equal(np.asarray(label_data[0]), outputs.labels[:])
    [(prob_data, prob_kw, kind)] = napari_get_reader(str(probs))(str(probs))
    assert kind == "image" and prob_kw["channel_axis"] == 0 and tuple(prob_data[0].shape) == (2, 3, 16, 20)
    assert [name.split(": ")[-1] for name in prob_kw["name"]] == ["membrane", "cell"]
    # one slice per chunk: what a slice's task writes is its own files
    assert zarr.open_group(str(labels), mode="r")["labels/segmentation/0"].chunks == (1, 16, 20)


def test_a_store_is_marked_complete_only_when_every_slice_is_done(tmp_path):
    labels, probs = tmp_path / "a.zarr", tmp_path / "p.zarr"
    outputs = ZarrOutputs.open(labels, probs, SPEC, RUN)
    _fill(outputs, [0, 2])
    assert outputs.pending() == [1]
    assert not outputs.finish()
    assert store_state(labels) == "partial" and store_state(probs) == "partial"
    _fill(outputs, [1])
    assert outputs.finish()
    assert store_state(labels) == "complete" and store_state(probs) == "complete"


def test_an_unfinished_store_is_resumed_only_by_the_same_run(tmp_path):
    labels, probs = tmp_path / "a.zarr", tmp_path / "p.zarr"
    first = ZarrOutputs.open(labels, probs, SPEC, RUN)
    _fill(first, [0])
    first.record_plan({"tile": 96, "batch_size": 1})
    again = ZarrOutputs.open(labels, probs, SPEC, RUN)
    assert (
        again.done_before == 1 and again.pending() == [1, 2] and again.plan == {"tile": 96, "batch_size": 1}
    )
    assert np.array_equal(again.labels[0], first.labels[0])
    with pytest.raises(ZarrOutputError, match=r"other settings \(tta\)"):
        ZarrOutputs.open(labels, probs, SPEC, {**RUN, "tta": True})
    fresh = ZarrOutputs.open(labels, probs, SPEC, {**RUN, "tta": True}, overwrite=True)
    assert fresh.done_before == 0 and fresh.plan is None and not fresh.labels[0].any()


def test_finished_or_foreign_stores_are_replaced_only_with_overwrite(tmp_path):
    labels = tmp_path / "a.zarr"
    outputs = ZarrOutputs.open(labels, None, SPEC, RUN)
    _fill_labels_only(outputs)
    assert outputs.finish()
    with pytest.raises(ZarrOutputError, match="already exists; pass --overwrite"):
        ZarrOutputs.open(labels, None, SPEC, RUN)
    foreign = tmp_path / "theirs.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["mine"] = True
    with pytest.raises(ZarrOutputError, match="already exists"):
        ZarrOutputs.open(foreign, None, SPEC, RUN)
    assert dict(zarr.open_group(str(foreign), mode="r").attrs) == {"mine": True}  # untouched
    # a half run whose probabilities store went missing cannot be resumed
    half = ZarrOutputs.open(tmp_path / "h.zarr", tmp_path / "hp.zarr", SPEC, RUN)
    del half
    import shutil

    shutil.rmtree(tmp_path / "hp.zarr")
    with pytest.raises(ZarrOutputError, match="missing or not its probabilities"):
        ZarrOutputs.open(tmp_path / "h.zarr", tmp_path / "hp.zarr", SPEC, RUN)


def _fill_labels_only(outputs: ZarrOutputs) -> None:
    for z in range(3):
        outputs.labels[z] = 255
        outputs.slice_done(z, np.zeros((16, 20), np.uint8))


def test_zarr_inputs_give_their_image_with_the_voxel_size(tmp_path):
    labels = tmp_path / "a.zarr"
    outputs = ZarrOutputs.open(labels, None, SPEC, RUN)
    _fill_labels_only(outputs)
    data, scale, units = read_zarr_image(labels)  # an OME-Zarr image group: its level 0
    assert data.shape == (3, 16, 20) and scale == (50.0, 4.0, 4.0) and units == ("nm", "nm", "nm")
    plain = zarr.create_array(
        str(tmp_path / "plain.zarr"), shape=(1, 4, 10, 12), chunks=(1, 1, 10, 12), dtype="u2"
    )
    plain[0, 1] = 7
    data, scale, units = read_zarr_image(tmp_path / "plain.zarr")  # the singleton axis dropped
    assert data.shape == (4, 10, 12) and scale == (1.0, 1.0, 1.0) and int(np.asarray(data[1]).max()) == 7
    zarr.create_array(str(tmp_path / "four.zarr"), shape=(2, 4, 10, 12), dtype="u1")
    with pytest.raises(ZarrReadError, match=r"expected a \(Y, X\) or \(Z, Y, X\) image"):
        read_zarr_image(tmp_path / "four.zarr")
    with pytest.raises(ZarrReadError, match="not a readable Zarr store"):
        read_zarr_image(tmp_path / "missing.zarr")


def test_napari_opens_the_stores_with_napari_unet_and_napari_ome_zarr(tmp_path):
    import npe2

    npe2.PluginManager.instance().discover()  # napari does this at start-up
    labels, probs = tmp_path / "em.zarr", tmp_path / "em_probabilities.zarr"
    outputs = ZarrOutputs.open(labels, probs, SPEC, RUN)
    _fill(outputs, range(3))
    assert outputs.finish()
    for plugin in ("napari-unet", "napari-ome-zarr"):
        layers = npe2.read([str(labels)], plugin_name=plugin, stack=False)
        kinds = sorted(kind for _, _, kind in layers)
        assert kinds == ["image", "labels"], plugin
        [label_data] = [d for d, _, kind in layers if kind == "labels"]
        label_data = label_data[0] if isinstance(label_data, list) else label_data
        assert np.array_equal(np.asarray(label_data), outputs.labels[:]), plugin
        assert all(tuple(kw["scale"]) == (50.0, 4.0, 4.0) for _, kw, _ in layers), plugin
        [(prob, kw, kind)] = npe2.read([str(probs)], plugin_name=plugin, stack=False)
        prob = prob[0] if isinstance(prob, list) else prob
        assert kind == "image" and kw["channel_axis"] == 0 and tuple(prob.shape) == (2, 3, 16, 20), plugin
    from napari_unet._zarr_reader import get_reader

    assert get_reader(str(tmp_path / "x.tif")) is None and get_reader(str(tmp_path / "missing.zarr")) is None


def test_instances_are_a_second_label_image_that_resumes_and_napari_opens(tmp_path):
    import npe2

    from napari_unet.ngff import InstanceStore, ZarrOutputError, instances_group

    npe2.PluginManager.instance().discover()
    labels = tmp_path / "em.zarr"
    outputs = ZarrOutputs.open(labels, tmp_path / "em_p.zarr", SPEC, RUN)
    _fill(outputs, range(3))
    path = instances_group(labels)
    store = InstanceStore.open(path, SPEC.shape, SPEC.scale, SPEC.units, RUN, resume=False, overwrite=False)
    store.write_local(0, np.ones(SPEC.shape[1:], np.uint32))
    store.write_linked(0, np.full(SPEC.shape[1:], 7, np.uint32), 7)
    assert store_state(path) == "partial" and store.link_position() == (1, 7)
    # the same run resumes where it stopped; other settings are refused without --overwrite
    again = InstanceStore.open(path, SPEC.shape, SPEC.scale, SPEC.units, RUN, resume=True, overwrite=False)
    assert again.slice_state(0) == 2 and again.link_position() == (1, 7)
    with pytest.raises(ZarrOutputError, match="other settings; pass --overwrite"):
        InstanceStore.open(
            path, SPEC.shape, SPEC.scale, SPEC.units, {**RUN, "tta": True}, resume=True, overwrite=False
        )
    with pytest.raises(ZarrOutputError, match="not linked yet"):
        again.finish(7)
    for z in (1, 2):
        again.write_linked(z, np.full(SPEC.shape[1:], 7, np.uint32), 7)
    again.finish(7)
    assert store_state(path) == "complete" and sorted(zarr.open_group(str(path), mode="r").keys()) == ["0"]
    assert outputs.finish()
    for plugin in ("napari-unet", "napari-ome-zarr"):
        layers = npe2.read([str(labels)], plugin_name=plugin, stack=False)
        assert sorted(kind for _, _, kind in layers) == ["image", "labels", "labels"], plugin
        data = [d[0] if isinstance(d, list) else d for d, _, kind in layers if kind == "labels"]
        assert any(np.asarray(d).dtype == np.uint32 and int(np.asarray(d).max()) == 7 for d in data), plugin


def test_a_standalone_instances_store_opens_as_labels_in_napari_unet(tmp_path):
    from napari_unet._zarr_reader import read_zarr_layers
    from napari_unet.ngff import InstanceStore

    path = tmp_path / "ids.zarr"  # what `--instances ids.zarr` writes: a label image at the store's root
    store = InstanceStore.open(path, SPEC.shape, SPEC.scale, SPEC.units, RUN, resume=False, overwrite=False)
    for z in range(SPEC.shape[0]):
        store.write_local(z, np.ones(SPEC.shape[1:], np.uint32))
        store.write_linked(z, np.full(SPEC.shape[1:], 5, np.uint32), 5)
    store.finish(5)
    [(data, kwargs, kind)] = read_zarr_layers(str(path))
    assert kind == "labels" and int(np.asarray(data).max()) == 5
    assert tuple(kwargs["scale"]) == tuple(SPEC.scale)
