"""The "where to paint next" list in a real viewer, with the tiny seeded test model on the CPU."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from napari_unet._widgets._layers import current_index
from napari_unet._widgets._next_slices import MAX_ROWS, NextSlicesPanel
from napari_unet.session import session_for

TIMEOUT = 30_000


def _camera(viewer):
    return getattr(viewer, "scene", viewer).camera


def _panel(viewer, image, labels=None):
    return NextSlicesPanel(
        viewer,
        session_for(viewer),
        SimpleNamespace(value=image),
        SimpleNamespace(value=labels),
        SimpleNamespace(value="cpu"),
    )


def test_the_ranked_list_appears_and_a_click_moves_the_viewer_there(make_napari_viewer, qtbot, tiny_model):
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    data = np.random.default_rng(0).integers(0, 255, (8, 64, 64)).astype(np.uint8)
    image = viewer.add_image(data, name="em", scale=(3.0, 0.5, 0.5), translate=(6.0, 10.0, 20.0))
    strokes = viewer.add_labels(np.zeros(data.shape, np.uint8), name="strokes", scale=image.scale)
    strokes.data[5] = 1  # densely annotated: never suggested
    session_for(viewer).set(tiny_model[0], tiny_model[1], description="tiny test model")
    panel = _panel(viewer, image, strokes)
    qtbot.addWidget(panel.native)
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT) as blocker:
        assert panel.start()
    assert blocker.args[0].error is None
    rows = [panel.rows.item(i).text() for i in range(panel.rows.count())]
    assert len(rows) == MAX_ROWS and not panel.rows.isHidden()
    zs = [s.z for s in panel.suggestions]
    assert 5 not in zs and rows[0] == f"slice {zs[0]} — {panel.suggestions[0].score:.2f}"
    scores = [s.score for s in panel.suggestions]
    assert scores == sorted(scores, reverse=True)

    panel.native.show()
    target = panel.suggestions[1]
    viewer.dims.set_current_step(0, 5 if target.z != 5 else 0)
    rect = panel.rows.visualItemRect(panel.rows.item(1))
    qtbot.mouseClick(panel.rows.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert current_index(viewer, image) == target.z  # the viewer shows that slice of the image
    assert viewer.dims.point[0] == 6.0 + 3.0 * target.z
    yc, xc = target.center
    np.testing.assert_allclose(_camera(viewer).center[-2:], (10.0 + 0.5 * yc, 20.0 + 0.5 * xc))
    assert panel.rows.currentRow() == 1


def test_without_a_model_or_on_a_2d_image(make_napari_viewer, qtbot, tiny_model, errors):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(1).integers(0, 255, (48, 40)).astype(np.uint8), name="one")
    panel = _panel(viewer, image)
    qtbot.addWidget(panel.native)
    assert not panel.start() and "Train a model first" in errors[-1]
    session_for(viewer).set(tiny_model[0], tiny_model[1])
    with qtbot.waitSignal(panel.runner.finished, timeout=TIMEOUT):
        assert panel.start()
    assert len(panel.suggestions) == 1 and panel.rows.count() == 1
    panel.go_to(0)
    np.testing.assert_allclose(_camera(viewer).center[-2:], panel.suggestions[0].center)
