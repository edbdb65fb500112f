"""The Segment widget's objects and uncertainty layers in a real viewer, with the tiny seeded test model on CPU."""

from __future__ import annotations

import csv

import numpy as np

from napari_unet._widgets._layers import OWNER_KEY, layer_choices
from napari_unet._widgets.segment import SCOPE_SLICE, SIZE_PHYSICAL, SegmentWidget
from napari_unet.instances import measure_objects
from napari_unet.session import session_for
from napari_unet.uncertainty import entropy_map

TIMEOUT = 30_000


def _image(shape=(3, 64, 64)):
    return np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)


def _widget(viewer, tiny_model) -> SegmentWidget:
    _dock, w = viewer.window.add_plugin_dock_widget("napari-unet", "Segment with U-Net")
    w.device.value = "cpu"
    session_for(viewer).set(tiny_model[0], tiny_model[1], description="tiny test model")
    return w


def _run(qtbot, w):
    with qtbot.waitSignal(w.runner.finished, timeout=TIMEOUT) as blocker:
        assert w.run()
    outcome = blocker.args[0]
    assert outcome.error is None and not outcome.cancelled, outcome.error
    return outcome


def _shown(widget) -> bool:
    """Not hidden (the viewer itself is not shown in these tests)."""
    return not widget.native.isHidden()


def test_objects_layer_has_one_features_row_per_object_in_the_images_units(
    make_napari_viewer, qtbot, tiny_model
):
    viewer = make_napari_viewer()
    data = _image()
    scale, translate = (40.0, 4.0, 4.0), (0.0, 100.0, 200.0)
    image = viewer.add_image(data, name="em", scale=scale, translate=translate, units=("nm", "nm", "nm"))
    w = _widget(viewer, tiny_model)
    assert not w.objects.value and not _shown(w.objects_class) and not _shown(w.objects_size)  # folded
    w.objects.value = True
    assert _shown(w.objects_class) and _shown(w.export_button) and _shown(w.objects_size)
    assert w.objects_class.value == 2  # the model's last class first (its values are [1, 2])
    assert [c for c in w.objects_class.choices] == [2, 1]
    w.objects_mode.value, w.objects_preset.value, w.min_size.value = "2d", "cells", "5"
    w.uncertainty.value = True
    outcome = _run(qtbot, w)

    assert [layer.name for layer in viewer.layers] == [
        "em",
        "em U-Net",
        "em U-Net objects",
        "em U-Net uncertainty",
    ]
    objects = viewer.layers["em U-Net objects"]
    assert objects.data.dtype == np.uint32 and objects.data.shape == data.shape
    np.testing.assert_allclose(objects.scale, scale)
    np.testing.assert_allclose(objects.translate, translate)
    assert objects.metadata[OWNER_KEY]["role"] == "objects" and objects.metadata[OWNER_KEY]["unit"] == "nm"
    assert objects not in layer_choices(viewer, type(objects))(None)  # never offered as an input

    features = objects.features
    ids = np.unique(objects.data)
    ids = ids[ids > 0]
    assert len(ids) > 1 and len(features) == len(ids)  # one row per object
    assert list(features.columns) == [
        "index",
        "label",
        "volume_nm3",
        "centroid_z_nm",
        "centroid_y_nm",
        "centroid_x_nm",
        "mean_probability",
        "n_slices",
    ]
    np.testing.assert_array_equal(features["label"], ids)
    np.testing.assert_array_equal(features["index"], ids)  # napari's row of each label value
    prob = outcome.value.objects  # the job's own objects: the layer shows them as they are
    np.testing.assert_array_equal(objects.data, prob.result.labels)
    table = measure_objects(objects.data, voxel_size=scale)
    np.testing.assert_allclose(features["volume_nm3"], table["volume"])  # voxels x 40 x 4 x 4 nm
    np.testing.assert_allclose(features["centroid_y_nm"], table["centroid_y"] + 100.0)  # world coordinates
    np.testing.assert_allclose(features["centroid_x_nm"], table["centroid_x"] + 200.0)
    assert features["mean_probability"].between(0.5, 1.0).all()
    assert (features["n_slices"] >= 1).all() and features["n_slices"].max() <= 3
    assert "objects (2D" in w.status.value

    uncertainty = viewer.layers["em U-Net uncertainty"]
    assert uncertainty.metadata[OWNER_KEY]["role"] == "uncertainty"
    assert uncertainty.data.shape == data.shape and float(np.max(uncertainty.data)) <= 1.0
    np.testing.assert_allclose(uncertainty.scale, scale)
    assert uncertainty not in layer_choices(viewer, type(image))(None)

    # a second run updates both layers in place
    w.min_size.value = "1000000"  # nothing is that big: no objects
    _run(qtbot, w)
    assert (
        viewer.layers["em U-Net objects"] is objects and viewer.layers["em U-Net uncertainty"] is uncertainty
    )
    assert not objects.data.any() and len(objects.features) == 0
    assert len(viewer.layers) == 4


def test_csv_export_writes_one_row_per_object_with_physical_units(
    make_napari_viewer, qtbot, tiny_model, tmp_path, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(_image(), name="em", scale=(0.05, 0.005, 0.005), units=("µm", "µm", "µm"))
    w = _widget(viewer, tiny_model)
    assert w.export_objects(tmp_path / "none.csv") is None and "no objects" in errors[-1]
    w.objects.value = True
    w.objects_mode.value, w.objects_preset.value = "2d", "cells"
    w.min_size.value, w.min_size_unit.value = "0.000125", SIZE_PHYSICAL  # µm² per section: 5 pixels of 25e-6
    req, _layer = w.request()
    assert req.objects.min_size == 5
    _run(qtbot, w)
    features = viewer.layers["em U-Net objects"].features

    path = tmp_path / "objects.csv"
    assert w.export_objects(path) == path
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header == [
        "label",
        "volume (µm^3)",
        "centroid_z (µm)",
        "centroid_y (µm)",
        "centroid_x (µm)",
        "mean_probability",
        "n_slices",
    ]
    assert len(body) == len(features) > 1  # one row per object
    assert [int(r[0]) for r in body] == list(features["label"])
    np.testing.assert_allclose(
        [float(r[1]) for r in body], features["volume_µm3".replace("µ", "u")], rtol=1e-5
    )
    assert "exported" in w.status.value

    before = path.read_text(encoding="utf-8")
    path.write_text("mine", encoding="utf-8")
    assert w.export_objects(path) is None  # never replaced silently
    assert "exists already" in errors[-1] and path.read_text(encoding="utf-8") == "mine"
    assert w.export_objects(path, overwrite=True) == path and path.read_text(encoding="utf-8") == before


def test_current_slice_objects_and_uncertainty_write_that_slice(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer()
    data = _image()
    viewer.add_image(data, name="em", scale=(2.0, 1.0, 1.0))
    w = _widget(viewer, tiny_model)
    w.objects.value = w.uncertainty.value = True
    w.min_size.value = "5"
    viewer.dims.set_current_step(0, 1)
    w.scope.value = SCOPE_SLICE
    outcome = _run(qtbot, w)
    objects = viewer.layers["em U-Net objects"]
    assert objects.data.shape == data.shape and objects.data.dtype == np.uint32
    assert not objects.data[[0, 2]].any() and objects.data[1].any()
    features = objects.features
    assert "area_px2" in features and (features["centroid_z_px"] == 2.0).all()  # slice 1 at Z step 2
    assert len(features) == len(np.unique(objects.data[1])) - 1
    uncertainty = viewer.layers["em U-Net uncertainty"]
    assert uncertainty.data.shape == data.shape and not np.asarray(uncertainty.data)[[0, 2]].any()
    probs = outcome.value.result.probabilities
    np.testing.assert_allclose(np.asarray(uncertainty.data)[1], entropy_map(probs)[0], atol=1e-6)


def test_objects_inputs_in_words(make_napari_viewer, tiny_model, errors):
    viewer = make_napari_viewer()
    viewer.add_image(_image((64, 64)), name="slice")
    w = _widget(viewer, tiny_model)
    w.objects.value = True
    w.objects_mode.value = "3d"
    assert not w.run() and "3D instances need a (Z, Y, X) stack" in errors[-1]
    w.objects_mode.value = "auto"
    w.min_size.value = "big"
    assert not w.run() and "minimum object size" in errors[-1]
    w.min_size.value = "-3"
    assert not w.run() and "0 or more" in errors[-1]
    assert [layer.name for layer in viewer.layers] == ["slice"]


def test_the_unfolded_objects_group_still_fits_a_laptop_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(_image(), name="em")
    _d1, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train U-Net")
    _d2, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment with U-Net")
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(1366, 768)
    segment.objects.value = segment.uncertainty.value = segment.advanced.value = True
    qtbot.wait(100)
    assert window.minimumSizeHint().height() <= 768 - 40  # the form scrolls; the window does not grow
    assert segment.run_button.native.isVisible()
