"""The "Train U-Net" widget in a real viewer: real engine, tiny model (depth 2, 4 features), a few iterations."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_unet._widgets._train_job import Preview
from napari_unet._widgets.train import (
    BUDGET_ITERATIONS,
    BUDGET_LIVE,
    BUDGET_MINUTES,
    CONTINUE_MODEL,
    PRESETS,
    PREVIEW_LAYER,
    UI_FIELDS,
    VAL_SHARE,
    TrainWidget,
)
from napari_unet.session import models_dir, session_for

TIMEOUT = 60_000


def _widget(viewer, iterations=6) -> TrainWidget:
    """The widget as napari makes it (from the manifest, docked), set for a tiny, quick model."""
    _dock, w = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    assert isinstance(w, TrainWidget)
    w.advanced.value = True
    w.depth.value, w.features.value = 2, 4
    w.patch.value, w.batch_size.value = 32, 2
    w.val_every.value = 5
    w.budget_unit.value = BUDGET_ITERATIONS
    w.budget.value = iterations
    w.device.value = "cpu"
    return w


def _viewer_with_data(make_napari_viewer, em_strokes):
    viewer = make_napari_viewer()
    image, strokes = em_strokes
    viewer.add_image(image, name="em", scale=(3.0, 1.0, 1.0))
    viewer.add_labels(strokes, name="strokes", scale=(3.0, 1.0, 1.0))
    return viewer, image, strokes


def _train(qtbot, w):
    with qtbot.waitSignal(w.runner.finished, timeout=TIMEOUT) as blocker:
        assert w.train()
    return blocker.args[0]


def test_train_from_sparse_strokes_keeps_model_shows_curve_and_preview(
    make_napari_viewer, qtbot, tmp_path, em_strokes, monkeypatch
):
    import napari_unet._widgets.train as train_widget

    monkeypatch.setattr(train_widget, "PREVIEW_SECONDS", 0.0)  # 6 tiny iterations take less than a preview interval
    viewer, image, strokes = _viewer_with_data(make_napari_viewer, em_strokes)
    viewer.dims.set_current_step(0, 1)
    w = _widget(viewer)
    w.validation.value = VAL_SHARE  # one painted slice: validation only when asked for
    assert w.image_layer.value == viewer.layers["em"]  # preselected
    assert w.labels_layer.value == viewer.layers["strokes"]
    assert not w.save_button.enabled

    shown = []  # (preview layer, the layer list) after each preview the widget showed

    def on_record(record):
        if isinstance(record, Preview):
            shown.append((viewer.layers[PREVIEW_LAYER], [layer.name for layer in viewer.layers]))

    with qtbot.waitSignal(w.runner.finished, timeout=TIMEOUT) as blocker:
        assert w.train()
        w.runner.worker.yielded.connect(on_record)  # after the widget's own handler
    outcome = blocker.args[0]
    assert outcome.error is None and not outcome.cancelled, outcome
    assert "running on CPU" in w.device_info.value
    # the curve: one loss point per iteration and validations at 5 and at the end
    assert [it for it, _ in w.plot.loss_points] == list(range(1, 7))
    assert [it for it, _ in w.plot.val_points] == [5, 6]
    assert w.plot.val_label.startswith("Dice, held-out")  # the score says what it is measured on
    assert "held-out" in w.status.value or "done" in w.status.value
    # the model is kept in the session, as a copy in the data folder that outlives napari (not the run's best.pt)
    model = session_for(viewer).current
    assert model is not None and model.path.is_file() and model.kept and model.path.parent == models_dir()
    assert model.label_values == [1, 2]
    assert "trained on 'em', 6 it." in model.description
    assert w.save_button.enabled and w.train_button.text == "Train"
    # the preview: one layer of the widget's, on the slice the viewer shows, below the strokes (never hiding them),
    # and gone once training has ended
    assert shown and all(names == ["em", PREVIEW_LAYER, "strokes"] for _, names in shown)
    assert len({id(layer) for layer, _ in shown}) == 1  # one layer, updated in place
    assert [layer.name for layer in viewer.layers] == ["em", "strokes"]
    preview = shown[-1][0]
    assert preview.data.shape == (1, 64, 64)  # one slice of the image, on the image's pixels
    np.testing.assert_allclose(preview.scale, viewer.layers["em"].scale)
    np.testing.assert_allclose(preview.translate, (3.0, 0.0, 0.0))  # slice 1 at Z scale 3
    info = preview.metadata["napari_unet"]
    assert info["role"] == "preview" and info["slice"] == 1 and 5 <= info["iteration"] <= 6
    assert set(np.unique(preview.data)) <= set(model.label_values)  # (test_train_job checks the values)
    # the user's layers are untouched
    np.testing.assert_array_equal(viewer.layers["em"].data, image)
    np.testing.assert_array_equal(viewer.layers["strokes"].data, strokes)

    # Save model… (without the dialog) writes a checkpoint that loads
    from napari_unet.checkpoint import load_checkpoint

    dest = w.save_model(tmp_path / "my_model")
    assert dest == tmp_path / "my_model.pt"
    _model, meta = load_checkpoint(dest)
    assert meta["label_values"] == [1, 2]
    assert session_for(viewer).current.saved_to == dest
    assert "saved as my_model.pt" in w.model_info.value

    # fine-tuning the session model starts from it and replaces it
    first = model.path
    w.model_source.value = CONTINUE_MODEL
    w.budget.value = 2
    outcome = _train(qtbot, w)
    assert outcome.error is None
    assert session_for(viewer).current.path != first
    assert len([layer for layer in viewer.layers if layer.name == PREVIEW_LAYER]) <= 1


def test_cancel_stops_fast_keeps_model_and_viewer_stays_responsive(make_napari_viewer, qtbot, em_strokes):
    from napari.utils import progress
    from qtpy.QtCore import QTimer

    viewer, image, strokes = _viewer_with_data(make_napari_viewer, em_strokes)
    names_before = [layer.name for layer in viewer.layers]
    w = _widget(viewer)
    w.budget_unit.value = BUDGET_MINUTES
    w.budget.value = 5.0
    w.val_every.value = 5

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    try:
        assert w.train()
        assert w.train_button.text == "Cancel"
        qtbot.waitUntil(lambda: len(w.plot.loss_points) >= 6, timeout=TIMEOUT)
        bars = [bar for bar in progress._all_instances if str(bar.desc).startswith("Training")]
        assert len(bars) == 1 and bars[0].total == 300  # a 5-minute budget counts seconds
        # the event loop keeps running while training: a 50 Hz timer fires all through a second of it
        n_ticks = len(ticks)
        qtbot.wait(1000)
        assert w.runner.busy
        assert len(ticks) - n_ticks >= 10, f"only {len(ticks) - n_ticks} timer ticks in 1 s of training"
        t0 = time.monotonic()
        with qtbot.waitSignal(w.runner.finished, timeout=5000) as blocker:
            w.train_button.native.click()  # the Train button is the Cancel button now
        stopped_after = time.monotonic() - t0
    finally:
        timer.stop()
    outcome = blocker.args[0]
    assert outcome.cancelled and outcome.error is None
    assert stopped_after < 2.0
    assert outcome.value.path is not None and outcome.value.path.name == "best.pt"
    assert not [bar for bar in progress._all_instances if str(bar.desc).startswith("Training")]
    kept = session_for(viewer).current  # the best model so far is kept (copied into the data folder)
    assert kept.kept and kept.path.read_bytes() == outcome.value.path.read_bytes()
    assert "cancelled" in w.status.value and "left" not in w.status.value
    assert w.train_button.text == "Train" and w.train_button.enabled
    assert [layer.name for layer in viewer.layers] == names_before  # the preview is gone with the run
    np.testing.assert_array_equal(viewer.layers["strokes"].data, strokes)


def test_bad_inputs_are_notifications_in_words(make_napari_viewer, qtbot, errors, em_strokes):
    viewer = make_napari_viewer()
    image, strokes = em_strokes
    w = _widget(viewer)
    assert not w.train()
    assert "image" in errors[-1]

    viewer.add_image(image, name="em")
    assert not w.train()
    assert "Paint a few strokes" in errors[-1]

    viewer.add_labels(np.zeros((3, 32, 32), np.uint8), name="wrong size")
    w.labels_layer.value = viewer.layers["wrong size"]
    assert not w.train()
    assert "do not have the shape" in errors[-1] and "3×32×32" in errors[-1]

    empty = viewer.add_labels(np.zeros_like(strokes), name="empty")
    w.labels_layer.value = empty
    outcome = _train(qtbot, w)
    assert outcome.error is not None
    assert "no annotations" in errors[-1]
    assert errors[-1].startswith("Training could not start:")  # it failed in its setup, not after a while
    assert w.status.value.startswith("not started")

    one_class = viewer.add_labels(np.where(strokes == 1, 1, 0).astype(np.uint8), name="one class")
    w.labels_layer.value = one_class
    _train(qtbot, w)
    assert "only one class" in errors[-1]

    w.model_source.value = CONTINUE_MODEL
    assert not w.train()
    assert "no model in this session" in errors[-1]
    assert session_for(viewer).current is None
    assert [layer.name for layer in viewer.layers] == ["em", "wrong size", "empty", "one class"]


def test_controls_show_the_engine_preset_and_reach_the_config(make_napari_viewer, em_strokes):
    from napari_unet.config import TrainConfig

    viewer, image, strokes = _viewer_with_data(make_napari_viewer, em_strokes)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    assert w.preset.value == "fast — CPU"
    for label, engine in PRESETS.items():
        w.preset.value = label
        shown = TrainConfig.preset(engine).resolved()  # the engine's values for sparse strokes
        for name in UI_FIELDS:
            assert getattr(w, name).value == pytest.approx(getattr(shown, name)), (label, name)
        # the request: the engine's preset with what the controls say on top
        w.patch.value = 64
        expected = TrainConfig.preset(
            engine,
            dense=False,
            depth=shown.depth,
            features=shown.features,
            patch=64,
            batch_size=shown.batch_size,
            lr=float(w.lr.value),
            val_every=w.val_every.value,
            device="auto",
            minutes=2.0,
        )
        assert w.request().config == expected


def test_live_training_previews_within_seconds_learns_new_strokes_and_stop_keeps_the_model(
    make_napari_viewer, qtbot, em_strokes
):
    viewer, image, strokes = _viewer_with_data(make_napari_viewer, em_strokes)
    viewer.dims.set_current_step(0, 1)  # the user looks at slice 1, which has no strokes yet
    layer = viewer.layers["strokes"]
    w = _widget(viewer)
    w.budget_unit.value = BUDGET_LIVE
    assert w.validation_group.native.isHidden() and w.budget.native.isHidden()  # no hold-out, no budget
    req = w.request()
    assert req.live and req.labels is layer.data  # the array the user paints into, not a copy
    assert req.config.iterations is None and req.config.minutes is None and req.config.val_slices is None

    records = []
    t0 = time.monotonic()
    assert w.train()
    w.runner.worker.yielded.connect(records.append)
    assert w.train_button.text == "Stop" and w.status.value.startswith("live")
    qtbot.waitUntil(lambda: PREVIEW_LAYER in viewer.layers, timeout=5000)  # the first preview within 5 s
    first_preview = time.monotonic() - t0
    assert [lay.name for lay in viewer.layers] == ["em", PREVIEW_LAYER, "strokes"]  # below the strokes
    preview = viewer.layers[PREVIEW_LAYER]
    assert preview.metadata["napari_unet"]["slice"] == 1
    qtbot.waitUntil(
        lambda: w.status.value.startswith("live · it."), timeout=5000
    )  # status lines follow the run

    # a stroke painted while training: read within ~1 s, and a later preview shows other weights' answer
    before = preview.data.copy()
    layer.data[1, 30:34, 4:60] = 1
    layer.data[1, 40:50, 40:50] = 2
    layer.refresh()
    t_stroke = time.monotonic()

    def took_in_the_stroke():
        return any("strokes updated on slice(s) [1]" in getattr(r, "message", "") for r in records)

    qtbot.waitUntil(took_in_the_stroke, timeout=5000)
    seen = len(records)
    qtbot.waitUntil(
        lambda: (
            any(isinstance(r, Preview) for r in records[seen:])
            and not np.array_equal(viewer.layers[PREVIEW_LAYER].data, before)
        ),
        timeout=15_000,
    )
    stroke_to_preview = time.monotonic() - t_stroke
    # the preview follows the user to another slice
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(
        lambda: viewer.layers[PREVIEW_LAYER].metadata["napari_unet"]["slice"] == 2, timeout=10_000
    )

    with qtbot.waitSignal(w.runner.finished, timeout=5000) as blocker:
        w.train_button.native.click()  # Stop
    outcome = blocker.args[0]
    assert outcome.cancelled and outcome.error is None
    model = session_for(viewer).current
    assert model is not None and model.kept and model.path.read_bytes() == outcome.value.path.read_bytes()
    assert "trained live on 'em'" in model.description
    assert "stopped" in w.status.value and "model kept" in w.status.value and "cancel" not in w.status.value
    assert w.train_button.text == "Train"
    print(f"first preview {first_preview:.1f} s, stroke to a new preview {stroke_to_preview:.1f} s")
