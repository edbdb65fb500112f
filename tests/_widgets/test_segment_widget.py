"""The "Segment with U-Net" widget in a real viewer, with a tiny real model (depth 2, 4 features) on CPU."""

from __future__ import annotations

import numpy as np

from napari_unet._widgets import segment as segment_module
from napari_unet._widgets._runner import Outcome
from napari_unet._widgets.segment import SCOPE_SLICE, SCOPE_STACK, SegmentWidget
from napari_unet.session import session_for

TIMEOUT = 30_000


def _image(shape=(3, 64, 64)):
    return np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)


def _widget(viewer, tiny_model=None) -> SegmentWidget:
    """The widget as napari makes it (from the manifest, docked, with napari's viewer proxy), on the CPU."""
    _dock, w = viewer.window.add_plugin_dock_widget("napari-unet", "Segment with U-Net")
    assert isinstance(w, SegmentWidget)
    w.device.value = "cpu"  # the engine's CPU result is what the tests compare with
    if tiny_model is not None:
        session_for(viewer).set(tiny_model[0], tiny_model[1], description="tiny test model")
    return w


def _run(qtbot, w: SegmentWidget) -> Outcome:
    with qtbot.waitSignal(w.runner.finished, timeout=TIMEOUT) as blocker:
        assert w.run()
    return blocker.args[0]


def test_both_widgets_load_from_the_manifest_and_share_the_session(make_napari_viewer, tiny_model):
    from napari_unet._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    _dock, trainer = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    _dock, segmenter = viewer.window.add_plugin_dock_widget("napari-unet", "Segment with U-Net")
    assert isinstance(trainer, TrainWidget) and isinstance(segmenter, SegmentWidget)
    # napari gives each plugin widget its own proxy of the viewer: the session must still be the viewer's
    assert trainer.session is segmenter.session is session_for(viewer)
    trainer.session.set(tiny_model[0], tiny_model[1], description="tiny test model")
    assert segmenter.model_info.value == "tiny test model"
    assert "tiny test model" in trainer.model_info.value and trainer.save_button.enabled


def test_whole_stack_adds_one_labels_layer_then_updates_it(
    make_napari_viewer, qtbot, tiny_model, assert_engine_labels
):
    viewer = make_napari_viewer()
    data = _image()
    image = viewer.add_image(data.copy(), name="em", scale=(2.0, 0.5, 0.5), translate=(10.0, 1.0, 2.0))
    w = _widget(viewer, tiny_model)
    assert w.image_layer.value == image  # preselected (napari hands the widget a proxy of the layer)
    assert w.scope.value == SCOPE_STACK

    outcome = _run(qtbot, w)
    assert outcome.error is None and not outcome.cancelled
    assert [layer.name for layer in viewer.layers] == ["em", "em U-Net"]
    out = viewer.layers["em U-Net"]
    assert out.data.shape == data.shape and out.data.dtype == np.uint8
    np.testing.assert_allclose(out.scale, image.scale)
    np.testing.assert_allclose(out.translate, image.translate)
    expected = assert_engine_labels(out.data, tiny_model[0], data)  # what the engine gives on the same model
    assert set(np.unique(expected)) == {1, 2}  # both classes appear, in the model's label values

    out.data = np.full_like(out.data, 7)  # a second run must replace the data of the same layer object
    _run(qtbot, w)
    assert [layer.name for layer in viewer.layers] == ["em", "em U-Net"]
    assert viewer.layers["em U-Net"] is out
    assert_engine_labels(out.data, tiny_model[0], data)
    np.testing.assert_array_equal(image.data, data)  # the user's layer is untouched

    # current slice: only that slice of the same layer is written
    out.data = np.full(out.data.shape, 7, dtype=out.data.dtype)
    viewer.dims.set_current_step(0, 2)
    w.scope.value = SCOPE_SLICE
    _run(qtbot, w)
    assert viewer.layers["em U-Net"] is out and len(viewer.layers) == 2
    assert (out.data[:2] == 7).all()
    np.testing.assert_array_equal(out.data[2], expected[2])
    assert "slice 2" in w.status.value


def test_current_slice_on_a_fresh_stack_creates_full_size_layer(
    make_napari_viewer, qtbot, tiny_model, assert_engine_labels
):
    viewer = make_napari_viewer()
    data = _image()
    image = viewer.add_image(data, name="em", scale=(3.0, 1.0, 1.0), translate=(0.0, 5.0, 0.0))
    viewer.dims.set_current_step(0, 1)
    w = _widget(viewer, tiny_model)
    w.scope.value = SCOPE_SLICE
    _run(qtbot, w)
    out = viewer.layers["em U-Net"]
    assert out.data.shape == (3, 64, 64)  # the image's shape, on the image's pixels
    np.testing.assert_allclose(out.scale, image.scale)
    np.testing.assert_allclose(out.translate, image.translate)
    assert (out.data[[0, 2]] == 0).all()
    assert_engine_labels(out.data[1:2], tiny_model[0], data[1:2])


def test_probabilities_layer_lines_up_with_the_stack(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer()
    viewer.add_image(_image(), name="em", scale=(2.0, 0.5, 0.5))
    w = _widget(viewer, tiny_model)
    w.probabilities.value = True
    _run(qtbot, w)
    probs = viewer.layers["em U-Net probabilities"]
    assert probs.data.shape == (2, 3, 64, 64)  # class axis first, so Z/Y/X align with the image
    np.testing.assert_allclose(probs.scale, (1.0, 2.0, 0.5, 0.5))
    np.testing.assert_allclose(np.asarray(probs.data).sum(axis=0), 1.0, atol=1e-4)
    labels = viewer.layers["em U-Net"].data
    np.testing.assert_array_equal(np.asarray(probs.data).argmax(axis=0) + 1, labels)
    _run(qtbot, w)
    assert len(viewer.layers) == 3


def test_2d_image_and_model_file(make_napari_viewer, qtbot, tiny_model, assert_engine_labels):
    viewer = make_napari_viewer()
    data = _image((64, 80))
    viewer.add_image(data, name="slice", scale=(0.5, 0.25))
    w = _widget(viewer)  # no session model: use the file
    w.model_source.value = "model file"
    w.model_file.value = tiny_model[0]
    w.tile.value = "48"  # several tiles, rounded to a size the network accepts
    w.batch_size.value = " 2 "
    _run(qtbot, w)
    out = viewer.layers["slice U-Net"]
    assert out.data.shape == (64, 80)
    np.testing.assert_allclose(out.scale, (0.5, 0.25))
    assert_engine_labels(out.data, tiny_model[0], data, tile=48, batch_size=2)
    assert "batch 2)" in w.status.value  # the typed batch size reached the engine


def test_disk_backed_output_for_big_lazy_stacks(
    make_napari_viewer, qtbot, tiny_model, monkeypatch, assert_engine_labels
):
    import dask.array as da

    monkeypatch.setattr(segment_module, "RAM_FRACTION", 1e-9)  # every output counts as "bigger than RAM"
    viewer = make_napari_viewer()
    data = _image()
    viewer.add_image(da.from_array(data, chunks=(1, 64, 64)), name="lazy")
    w = _widget(viewer, tiny_model)
    w.probabilities.value = True
    _run(qtbot, w)
    out = viewer.layers["lazy U-Net"]
    assert not isinstance(out.data, np.ndarray)  # a zarr array on disk
    whole = np.asarray(out.data).copy()
    assert_engine_labels(whole, tiny_model[0], data)

    viewer.dims.set_current_step(1, 1)  # axis 0 is the probability layer's class axis
    w.scope.value = SCOPE_SLICE
    out.data[1] = 9  # the zarr-backed layer accepts the one-slice update
    _run(qtbot, w)
    np.testing.assert_array_equal(np.asarray(out.data)[1], whole[1])
    probs = viewer.layers["lazy U-Net probabilities"]
    np.testing.assert_allclose(np.asarray(probs.data).sum(axis=0), 1.0, atol=1e-4)


def test_bad_inputs_are_notifications_in_words(make_napari_viewer, errors, tiny_model):
    viewer = make_napari_viewer()
    w = _widget(viewer)
    assert not w.run()
    assert "image layer" in errors[-1]

    viewer.add_image(_image(), name="em")
    assert not w.run()
    assert "no model in this session" in errors[-1]

    session_for(viewer).set(tiny_model[0], tiny_model[1])
    viewer.layers.clear()
    viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="photo", rgb=True)
    assert not w.run()
    assert "RGB" in errors[-1]

    viewer.layers.clear()
    viewer.add_image(np.zeros((2, 2, 32, 32), np.uint8), name="movie")
    assert not w.run()
    assert "4 dimensions" in errors[-1]

    viewer.layers.clear()
    viewer.add_image(_image(), name="em")
    w.tile.value = "big"
    assert not w.run()
    assert "tile must be 'auto' or a whole number" in errors[-1]
    assert not w.runner.busy and [layer.name for layer in viewer.layers] == ["em"]


def test_channel_mismatch_and_broken_file_are_notifications(
    make_napari_viewer, qtbot, errors, tmp_path, two_channel_model
):
    viewer = make_napari_viewer()
    viewer.add_image(_image(), name="em")
    w = _widget(viewer)
    w.model_source.value = "model file"
    w.model_file.value = two_channel_model
    outcome = _run(qtbot, w)
    assert outcome.error is not None
    assert "2 channels" in errors[-1]

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    w.model_file.value = broken
    _run(qtbot, w)
    assert "not a napari-unet checkpoint" in errors[-1]
    assert [layer.name for layer in viewer.layers] == ["em"]  # nothing added on failure
    assert w.run_button.text == "Segment" and w.run_button.enabled


def test_cancel_leaves_layers_unchanged(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer()
    viewer.add_image(_image((40, 256, 256)), name="big")
    w = _widget(viewer, tiny_model)
    w.tile.value = "32"  # many small tiles: many yields
    assert w.run()
    assert w.run_button.text == "Cancel"
    qtbot.waitUntil(lambda: "tile" in w.runner._pbar.desc if w.runner._pbar else False, timeout=TIMEOUT)
    w.run_button.native.click()  # the same button cancels
    with qtbot.waitSignal(w.runner.finished, timeout=2000) as blocker:
        pass
    assert blocker.args[0].cancelled
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert w.run_button.text == "Segment"
    assert "cancelled" in w.status.value


def test_a_big_stack_fills_a_layer_on_disk_that_survives_a_cancel_and_resumes(
    make_napari_viewer, qtbot, tiny_model, monkeypatch, assert_engine_labels
):
    import re

    from napari_unet._widgets import _filling

    monkeypatch.setattr(segment_module, "RAM_FRACTION", 1e-9)  # every stack counts as "bigger than RAM"
    monkeypatch.setattr(_filling, "REFRESH_SECONDS", 0.05)
    viewer = make_napari_viewer()
    data = _image((30, 256, 256))  # long enough for a cancel half-way
    viewer.add_image(data, name="big")
    w = _widget(viewer, tiny_model)
    w.tile.value = "64"  # several tiles per slice: several records per slice
    seen = {}

    def watch(record):  # in the GUI thread, while the job runs
        if getattr(record, "z", 0) >= 2 and "layer" not in seen:
            seen["layer"] = viewer.layers["big U-Net"]  # there before the run ends
            seen["first"] = np.asarray(seen["layer"].data[0]).copy()  # slice 0 is filled in already
            w.runner.cancel()

    assert w.run()
    w.runner.worker.yielded.connect(watch)
    with qtbot.waitSignal(w.runner.finished, timeout=TIMEOUT) as blocker:
        pass
    assert blocker.args[0].cancelled and "layer" in seen
    layer = viewer.layers["big U-Net"]
    assert layer is seen["layer"] and not isinstance(layer.data, np.ndarray)  # kept, on disk
    found = re.search(r"(\d+) of 30 slices", w.status.value)
    assert found and "press Segment again" in w.status.value, w.status.value
    done = int(found.group(1))
    assert 2 <= done < 30
    assert not np.asarray(layer.data[done:]).any()  # the slices not reached are still empty

    records = []
    assert w.run()
    w.runner.worker.yielded.connect(records.append)
    with qtbot.waitSignal(w.runner.finished, timeout=TIMEOUT) as blocker:
        pass
    assert not blocker.args[0].cancelled and blocker.args[0].error is None
    assert {getattr(r, "z", None) for r in records} - {None} == set(range(done, 30))  # only what was left
    assert viewer.layers["big U-Net"] is layer
    expected = assert_engine_labels(layer.data, tiny_model[0], data, tile=64)
    np.testing.assert_array_equal(seen["first"], expected[0])
