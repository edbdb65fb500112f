"""A new user's first minutes in a real viewer on a 1366 × 768 screen: the docks fit, and the annotations follow
the Labels layer the user makes, never the sample's ground truth or napari-unet's own outputs."""

from __future__ import annotations

import numpy as np

from napari_unet._widgets._layers import owner_metadata
from napari_unet._widgets.segment import SegmentWidget
from napari_unet._widgets.train import TrainWidget

SCREEN = (1366, 768)
TITLE_AND_TASKBAR = 40  # what a laptop's window frame and task bar leave out of 768 px


def _docks(viewer):
    _d1, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    _d2, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment with U-Net")
    assert isinstance(train, TrainWidget) and isinstance(segment, SegmentWidget)
    return train, segment


def _inside(widget, window) -> bool:
    """Whether ``widget`` is shown and wholly inside ``window``'s client area."""
    from qtpy.QtCore import QPoint, QRect

    if not widget.isVisible():
        return False
    top_left = widget.mapTo(window, QPoint(0, 0))
    return QRect(QPoint(0, 0), window.size()).contains(QRect(top_left, widget.size()))


def test_both_docks_fit_a_laptop_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-unet", "em_membranes")
    image = viewer.layers[0]
    viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="strokes", scale=image.scale)
    train, segment = _docks(viewer)
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SCREEN)
    qtbot.wait(200)

    hint = window.minimumSizeHint()
    assert hint.width() <= SCREEN[0] and hint.height() <= SCREEN[1] - TITLE_AND_TASKBAR, hint
    assert window.height() <= SCREEN[1]
    # the buttons a user presses are on the screen, not below its edge
    for button in (train.train_button.native, segment.run_button.native, train.save_button.native):
        assert _inside(button, window), button.text()
    # every control of the Train form can be scrolled to (the form scrolls, the window does not grow)
    train.advanced.value = True
    segment.advanced.value = True
    qtbot.wait(100)
    assert window.minimumSizeHint().height() <= SCREEN[1] - TITLE_AND_TASKBAR

    # a long status line is elided on one line: it never grows the dock
    before = window.minimumSizeHint()
    long = "it. 1200/4000 · loss 0.412 · best val. Dice 0.812 @ 1100 · 1:23 left · " + "strokes re-read " * 12
    train.status.value = long
    segment.status.value = long
    qtbot.wait(100)
    assert window.minimumSizeHint() == before
    assert train.status.value == long and train.status.native.toolTip() == long  # the whole text is kept
    assert train.status.native.height() < 2.5 * train.status.native.fontMetrics().height()


def test_the_labels_layer_a_user_adds_becomes_the_annotations_not_the_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "em_membranes")
    image, truth = viewer.layers
    assert truth.metadata["ground_truth"]
    train, _segment = _docks(viewer)
    assert train.image_layer.value is image
    assert train.labels_layer.value is truth  # the only Labels layer, offered but ...

    strokes = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="Labels", scale=image.scale)
    assert train.labels_layer.value is strokes  # ... the layer the user adds for painting takes over

    viewer.layers.selection.active = truth  # looking at the ground truth does not make it the annotations
    assert train.labels_layer.value is strokes
    viewer.add_labels(np.zeros((2, 32, 32), np.uint8), name="other image's strokes")
    assert train.labels_layer.value is strokes  # another image's shape: not for this image
    second = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="more strokes", scale=image.scale)
    assert train.labels_layer.value is second
    viewer.layers.selection.active = strokes  # selecting a user's layer chooses it
    assert train.labels_layer.value is strokes

    # napari-unet's own outputs are never offered, not even for an instant while they are being added
    seen = []
    train.labels_layer.changed.connect(seen.append)
    output = viewer.add_labels(
        np.zeros(image.data.shape, np.uint8), name="EM U-Net", metadata=owner_metadata("labels", "x")
    )
    assert output not in train.labels_layer.choices and output not in seen
    assert train.labels_layer.value is strokes

    # removing the chosen layer falls back to another user layer, not to the ground truth
    viewer.layers.remove(strokes)
    assert train.labels_layer.value is second
    viewer.layers.remove(second)
    assert train.labels_layer.value is truth  # only the ground truth fits now: offered again

    # a user who picks the ground truth in the combo box (dense training) keeps it
    mine = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="mine", scale=image.scale)
    assert train.labels_layer.value is mine
    train.labels_layer.value = truth
    train.labels_layer.native.activated.emit(train.labels_layer.native.currentIndex())
    mine.name = "mine, renamed"  # any layer-list change re-checks the choice
    assert train.labels_layer.value is truth


def test_layer_choices_leave_out_napari_unets_outputs(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((2, 32, 32), np.uint8), name="em")
    probabilities = viewer.add_image(
        np.zeros((2, 2, 32, 32), np.float32),
        name="em U-Net probabilities",
        metadata=owner_metadata("probabilities"),
    )
    train, segment = _docks(viewer)
    for combo in (train.image_layer, segment.image_layer):
        assert image in combo.choices and probabilities not in combo.choices


def test_shortcuts_train_and_segment(make_napari_viewer, qtbot, em_strokes):
    from napari.utils.key_bindings import KeyBinding

    viewer = make_napari_viewer(show=True)
    image, strokes = em_strokes
    viewer.add_image(image, name="em")
    viewer.add_labels(strokes, name="strokes")
    train, segment = _docks(viewer)
    train.advanced.value = True
    train.depth.value, train.features.value, train.patch.value, train.batch_size.value = 2, 4, 32, 2
    train.budget.value = 10.0  # minutes: the second press must cancel it
    train.device.value = segment.device.value = "cpu"
    qtbot.wait(100)  # shown: a shortcut clicks only a button the user can see

    def press(key):
        viewer.keymap[KeyBinding.from_str(key)](viewer)

    with qtbot.waitSignal(train.runner.finished, timeout=60_000) as blocker:
        press("Shift-T")  # Train
        assert train.runner.busy and train.train_button.text == "Cancel"
        qtbot.waitUntil(lambda: bool(train.plot.loss_points), timeout=30_000)
        press("Shift-T")  # Cancel
    assert blocker.args[0].cancelled and "cancelled" in train.status.value
    assert "Shift+T" in train.train_button.tooltip and "Shift+S" in segment.run_button.tooltip

    with qtbot.waitSignal(segment.runner.finished, timeout=60_000) as blocker:
        press("Shift-S")  # Segment, with the model just trained
    assert blocker.args[0].error is None and "em U-Net" in viewer.layers


def test_a_model_trained_earlier_is_offered_again_after_napari_closed(make_napari_viewer, qtbot, em_strokes):
    from napari_unet.session import recent_models

    image, strokes = em_strokes
    first = make_napari_viewer()
    first.add_image(image, name="em")
    first.add_labels(strokes, name="strokes")
    train, _segment = _docks(first)
    train.advanced.value = True
    train.depth.value, train.features.value, train.patch.value, train.batch_size.value = 2, 4, 32, 2
    train.budget_unit.value, train.budget.value, train.device.value = "iterations", 3, "cpu"
    with qtbot.waitSignal(train.runner.finished, timeout=60_000):
        assert train.train()
    kept = train.session.current
    assert kept.kept and "kept in the recent models" in train.model_info.value
    assert recent_models()[0].path == kept.path
    first.close()

    # a new napari session: nothing trained yet, but the kept model is one choice away in both widgets
    second = make_napari_viewer()
    second.add_image(image, name="em")
    train2, segment2 = _docks(second)
    assert segment2.session.current is None and "recent" in segment2.model_info.value
    segment2.model_source.value = "model file"
    assert not segment2.recent.native.isHidden()
    paths = [value for value in segment2.recent.choices if value]
    assert str(kept.path) in paths
    segment2.recent.value = str(kept.path)
    assert str(segment2.model_file.value) == str(kept.path)
    segment2.device.value = "cpu"
    with qtbot.waitSignal(segment2.runner.finished, timeout=60_000) as blocker:
        assert segment2.run()
    assert blocker.args[0].error is None and "em U-Net" in second.layers

    from napari_unet._widgets.train import FILE_MODEL

    train2.model_source.value = FILE_MODEL  # fine-tuning from it: the same list
    assert str(kept.path) in [value for value in train2.model_group.recent.choices if value]


def test_notifications_replace_each_other_instead_of_piling_up(make_napari_viewer, qtbot):
    from napari.utils.notifications import show_info

    from napari_unet._widgets._notify import _toast_text, notify, open_toasts

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SCREEN)
    window.activateWindow()
    qtbot.wait(100)

    def texts():  # (toasts of earlier tests' viewers may still be listed: only the texts are compared)
        return [_toast_text(toast) for toast in open_toasts()]

    first = "Training cancelled at iteration 12. The best model so far is kept."
    notify(first)
    qtbot.waitUntil(lambda: first in texts(), timeout=3000)  # napari shows it from the main thread
    second = "Training could not start: the strokes have one class only."
    notify(second, "error")
    qtbot.waitUntil(lambda: second in texts(), timeout=3000)
    assert first not in texts()
    # napari's own notifications (or another plugin's) are left alone
    show_info("someone else's message")
    qtbot.waitUntil(lambda: "someone else's message" in texts(), timeout=3000)
    notify("Model saved to /tmp/m.pt")
    qtbot.waitUntil(lambda: "Model saved to /tmp/m.pt" in texts(), timeout=3000)
    assert second not in texts() and "someone else's message" in texts()
