"""After training, the Train widget lists where to paint next; a click shows that slice (a real viewer, CPU)."""

from __future__ import annotations

import numpy as np

from napari_unet._widgets._layers import current_index

TIMEOUT = 60_000


def test_the_ranked_slices_appear_after_training_and_a_click_moves_the_viewer(
    make_napari_viewer, qtbot, em_strokes
):
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    image, strokes = em_strokes
    layer = viewer.add_image(image, name="em", scale=(2.0, 1.0, 1.0))
    viewer.add_labels(strokes, name="strokes", scale=(2.0, 1.0, 1.0))
    _dock, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    train.advanced.value = True
    train.depth.value, train.features.value, train.patch.value, train.batch_size.value = 2, 4, 32, 2
    train.budget_unit.value, train.budget.value, train.device.value = "iterations", 3, "cpu"
    panel = train.next_slices
    assert panel.rows.count() == 0 and panel.rows.isHidden()  # nothing before a model exists
    with qtbot.waitSignal(train.runner.finished, timeout=TIMEOUT) as blocker:
        assert train.train()
    assert blocker.args[0].error is None
    qtbot.waitUntil(lambda: not panel.runner.busy, timeout=TIMEOUT)  # started by the end of training
    rows = [panel.rows.item(i).text() for i in range(panel.rows.count())]
    assert len(rows) == 3 and not panel.rows.isHidden()  # the strokes on slice 0 are sparse: all 3 slices
    assert rows[0].startswith(f"slice {panel.suggestions[0].z} — ")
    assert panel.layer is layer

    panel.native.show()
    target = panel.suggestions[-1]
    viewer.dims.set_current_step(0, (target.z + 1) % 3)
    rect = panel.rows.visualItemRect(panel.rows.item(len(rows) - 1))
    qtbot.mouseClick(panel.rows.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert current_index(viewer, layer) == target.z
    camera = getattr(viewer, "scene", viewer).camera
    np.testing.assert_allclose(camera.center[-2:], target.center)

    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT):  # and again on demand
        panel.button.native.click()
    assert panel.rows.count() == 3
